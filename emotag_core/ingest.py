"""Ingest: raw talking-head videos -> 25 fps face-centred square crops + 16 kHz mono audio.

Two streaming passes per clip keep memory constant in video length:

1. `analyse_clip`: decode, resample to the output rate, detect faces on a downscaled copy of
   every `detect_every`-th output frame, decode the audio to WAV; link detections into tracks,
   pick the largest persistent face, interpolate and Gaussian-smooth its box over time.
2. `write_clip`: decode again, crop each output frame with its smoothed box, JPEG-encode, and
   append row groups to the frame store.

Only per-frame numbers (a few floats per frame) are held between the passes, never images.
"""
from __future__ import annotations

import contextlib
import logging
import math
import re
import unicodedata
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.config import IngestConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.io import audio as audio_io
from emotag_core.io import video as video_io

log = logging.getLogger("emotag.ingest")

# Files in a raw identity folder that are never media (metadata, notes).
SIDECAR_SUFFIXES = {".yaml", ".yml", ".json", ".md", ".txt", ".csv", ".py", ".toml", ".dvc"}

Progress = Callable[[int], None]


# --------------------------------------------------------------------------------------------
# Face detection
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _native_stderr_muted() -> Iterator[None]:
    """Silence native (C++) writes to file descriptor 2 inside the block."""
    import os
    import sys

    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # stderr replaced (pytest capture, notebooks)
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


class FaceDetector:
    """MediaPipe's BlazeFace face detector (short-range model), run on CPU through mediapipe.tasks.

    Why this detector: it is a real, trained face detector that ships offline (the
    `face_detector.tflite` inside the `face_landmarker.task` bundle, see `emotag_core.assets`),
    it is the detector MediaPipe's FaceLandmarker (the landmark teacher downstream) itself uses,
    so crops are framed the way that teacher expects, and it runs in ~3-5 ms per 320 px frame on
    one CPU core. Its limit: faces must cover a reasonable part of the frame (short-range model);
    `ingest.detect_size` trades recall of small faces for speed.
    """

    name = "mediapipe-blazeface-short-range"

    def __init__(self, model: str | Path | bytes | None = None, min_confidence: float = 0.5) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        buf = self._model_bytes(model)
        opts = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_buffer=buf),
                                          min_detection_confidence=float(min_confidence))
        with _native_stderr_muted():  # LiteRT prints INFO lines on fd 2 that no env var silences
            self._det = vision.FaceDetector.create_from_options(opts)
            self._detect_one(np.zeros((64, 64, 3), np.uint8))  # first call logs an alignment warning

    @staticmethod
    def _model_bytes(model: str | Path | bytes | None) -> bytes:
        if isinstance(model, bytes):
            return model
        if model is None:
            from emotag_core.assets import asset_path

            model = asset_path("face_landmarker.task")
        path = Path(model)  # type: ignore[arg-type]
        if path.suffix == ".tflite":
            return path.read_bytes()
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read("face_detector.tflite")
        except (zipfile.BadZipFile, KeyError) as exc:
            raise InputError(path, "not a MediaPipe .task bundle holding face_detector.tflite",
                             "run `emotag fetch-assets`") from exc

    @property
    def version(self) -> str:
        import mediapipe

        return str(mediapipe.__version__)

    def detect(self, rgb: np.ndarray, tiles: bool = True) -> np.ndarray:
        """[H, W, 3] uint8 RGB -> detections [K, 5]: x0, y0, x1, y1 (image pixels), score.

        The model sees a 128x128 letterboxed copy, so in a wide frame faces shrink by the long
        side; with `tiles`, square tiles (side = the short side, overlapping) are searched too and
        duplicates merged (NMS), keeping faces as large as the frame's short side allows.
        """
        h, w = rgb.shape[:2]
        found = [self._detect_one(rgb)]
        if tiles and max(h, w) > 1.3 * min(h, w):
            side = min(h, w)
            n = int(math.ceil((max(h, w) - side) / (0.75 * side))) + 1
            for o in np.linspace(0, max(h, w) - side, n).round().astype(int):
                tile = rgb[:, o:o + side] if w > h else rgb[o:o + side]
                d = self._detect_one(tile)
                d[:, [0, 2] if w > h else [1, 3]] += o
                found.append(d)
        return nms(np.concatenate(found))

    def _detect_one(self, rgb: np.ndarray) -> np.ndarray:
        import mediapipe as mp

        res = self._det.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
        out = np.zeros((len(res.detections), 5), np.float64)
        for i, d in enumerate(res.detections):
            b = d.bounding_box
            out[i] = (b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height,
                      d.categories[0].score if d.categories else 0.0)
        return out

    def close(self) -> None:
        if self._det is not None:
            with _native_stderr_muted():
                self._det.close()
            self._det = None  # type: ignore[assignment]

    def __enter__(self) -> "FaceDetector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------------------------
# Tracks: link per-frame detections, choose the face
# --------------------------------------------------------------------------------------------

def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a [N, 4+] and b [M, 4+] (x0, y0, x1, y1) -> [N, M]."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: (z[:, 2] - z[:, 0]) * (z[:, 3] - z[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


def nms(dets: np.ndarray, max_iou: float = 0.4) -> np.ndarray:
    """Non-maximum suppression of detections [K, 5] (highest score wins) -> [K', 5]."""
    if len(dets) <= 1:
        return dets
    order = np.argsort(-dets[:, 4])
    keep: list[int] = []
    for i in order:
        if not keep or iou(dets[i:i + 1], dets[keep]).max() <= max_iou:
            keep.append(int(i))
    return dets[keep]


@dataclass
class Track:
    """One face followed through a clip: the output frames it was detected on and its boxes."""

    frames: list[int] = field(default_factory=list)
    boxes: list[np.ndarray] = field(default_factory=list)  # each [5]: x0, y0, x1, y1, score

    @property
    def median_side(self) -> float:
        b = np.stack(self.boxes)
        return float(np.median(np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])))

    def describe(self, n_detect: int, fps: float) -> dict[str, Any]:
        b = np.stack(self.boxes)
        return {"median_side_px": round(self.median_side, 1), "coverage": round(len(self.frames) / max(n_detect, 1), 3),
                "mean_score": round(float(b[:, 4].mean()), 3),
                "first_s": round(self.frames[0] / fps, 2), "last_s": round(self.frames[-1] / fps, 2)}


def link_tracks(detections: Sequence[tuple[int, np.ndarray]], max_gap: int, min_iou: float = 0.2) -> list[Track]:
    """Greedy IoU linking of per-frame detections [(frame, [K, 5])] into tracks; a track may be
    continued after at most `max_gap` frames without a match."""
    tracks: list[Track] = []
    for frame, dets in detections:
        live = [t for t in tracks if frame - t.frames[-1] <= max_gap]
        used: set[int] = set()
        if live and len(dets):
            last = np.stack([t.boxes[-1] for t in live])
            m = iou(last, dets)
            for flat in np.argsort(-m, axis=None):
                ti, di = np.unravel_index(flat, m.shape)
                if m[ti, di] < min_iou:
                    break
                if live[ti].frames[-1] == frame or di in used:
                    continue
                live[ti].frames.append(frame)
                live[ti].boxes.append(dets[di])
                used.add(int(di))
        for di in range(len(dets)):
            if di not in used:
                tracks.append(Track([frame], [dets[di]]))
    return tracks


def merge_fragments(tracks: list[Track], max_dist: float = 2.0, max_size_ratio: float = 1.5) -> list[Track]:
    """Join tracks of one face broken by a long gap (the face left the frame or was missed): a
    later track continues an earlier one when they never overlap in time, and the later one starts
    near (within `max_dist` face sides) and at a similar size as the earlier one ended."""
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: t.frames[0]):
        best, best_d = None, math.inf
        for o in out:
            if o.frames[-1] >= t.frames[0]:
                continue
            a, b = o.boxes[-1], t.boxes[0]
            sa, sb = max(a[2] - a[0], a[3] - a[1]), max(b[2] - b[0], b[3] - b[1])
            if max(sa, sb) > max_size_ratio * max(min(sa, sb), 1e-6):
                continue
            d = math.hypot((a[0] + a[2] - b[0] - b[2]) / 2, (a[1] + a[3] - b[1] - b[3]) / 2) / max(sa, sb)
            if d < max_dist and d < best_d:
                best, best_d = o, d
        if best is None:
            out.append(Track(list(t.frames), list(t.boxes)))
        else:
            best.frames += t.frames
            best.boxes += t.boxes
    return out


def choose_track(tracks: list[Track], n_detect: int, face_index: int | None, fps: float,
                 where: Path) -> tuple[Track | None, dict[str, Any]]:
    """Pick the largest face among those that persist (detected on at least half as many sampled
    frames as the most persistent face); `face_index` picks another in that size order."""
    if not tracks:
        return None, {"chosen": None, "requested": face_index, "candidates": []}
    best_cov = max(len(t.frames) for t in tracks)
    persistent = sorted((t for t in tracks if len(t.frames) >= 0.5 * best_cov), key=lambda t: -t.median_side)
    cands = [t.describe(n_detect, fps) for t in persistent]
    idx = 0 if face_index is None else int(face_index)
    if not 0 <= idx < len(persistent):
        raise ConfigError(f"{where}: ingest.face_index={face_index} but only {len(persistent)} persistent face(s) "
                          f"found (largest first: {[c['median_side_px'] for c in cands]} px); choose 0..{len(persistent) - 1}")
    return persistent[idx], {"chosen": idx, "requested": face_index, "n_persistent": len(persistent),
                             "n_tracks": len(tracks), "candidates": cands}


def gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along axis 0 of [N, C] (edges held: 'nearest' padding)."""
    r = int(math.ceil(4 * sigma))
    g = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    g /= g.sum()
    pad = np.concatenate([np.repeat(x[:1], r, 0), x, np.repeat(x[-1:], r, 0)])
    return np.stack([np.convolve(pad[:, c], g, mode="valid") for c in range(x.shape[1])], axis=1)


def smooth_track(track: Track | None, n: int, detect_every: int, sigma_frames: float, box_scale: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-output-frame crop boxes from a track's sparse detections.

    Returns boxes [n, 3] (centre x, centre y, side; source pixels), det_conf [n], face_found [n].
    Gaps are interpolated linearly (ends held), then the box is Gaussian-smoothed over time.
    """
    if track is None or not track.frames:
        return np.zeros((n, 3)), np.zeros(n, np.float32), np.zeros(n, bool)
    f = np.asarray(track.frames, np.float64)
    b = np.stack(track.boxes)
    side = box_scale * np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    cx, cy = 0.5 * (b[:, 0] + b[:, 2]), 0.5 * (b[:, 1] + b[:, 3])
    k = np.arange(n, dtype=np.float64)
    box = np.stack([np.interp(k, f, cx), np.interp(k, f, cy), np.interp(k, f, side)], axis=1)
    if sigma_frames > 0 and n > 1:
        box = gaussian_smooth(box, sigma_frames)
    # a frame has the face when its nearest sampled frame detected it
    hit = np.zeros(n, bool)
    conf = np.zeros(n, np.float32)
    nearest = np.clip(np.round(k / detect_every).astype(int) * detect_every, 0, None)
    seen = dict(zip(track.frames, b[:, 4]))
    for i in range(n):
        s = seen.get(int(nearest[i]))
        if s is None and nearest[i] >= n:  # the tail past the last sample: look back
            s = seen.get(int(nearest[i]) - detect_every)
        if s is not None:
            hit[i], conf[i] = True, s
    return box, conf, hit


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive (start, end) index ranges where `mask` is True."""
    m = np.concatenate([[False], np.asarray(mask, bool), [False]])
    d = np.flatnonzero(np.diff(m.astype(np.int8)))
    return [(int(a), int(b) - 1) for a, b in zip(d[::2], d[1::2])]


def format_ranges(ranges: list[tuple[int, int]], fps: float, limit: int = 6) -> str:
    parts = [f"{a}-{b} ({a / fps:.2f}-{(b + 1) / fps:.2f} s)" for a, b in ranges[:limit]]
    more = f" and {len(ranges) - limit} more" if len(ranges) > limit else ""
    return ", ".join(parts) + more


# --------------------------------------------------------------------------------------------
# Crops
# --------------------------------------------------------------------------------------------

def crop_square(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """[H, W, 3] uint8 + box (x0, y0, side) in `img` pixels -> [size, size, 3] uint8; outside the
    image is black. Sub-pixel box positions are honoured (bilinear), so a smooth box gives a
    smooth crop."""
    import cv2

    x0, y0, side = float(box[0]), float(box[1]), float(box[2])
    s = size / side
    m = np.array([[s, 0.0, -x0 * s], [0.0, s, -y0 * s]], np.float64)
    interp = cv2.INTER_AREA if s < 0.5 else cv2.INTER_LINEAR
    if interp == cv2.INTER_AREA:  # warpAffine cannot area-average: crop then resize
        xi0, yi0 = int(math.floor(x0)), int(math.floor(y0))
        xi1, yi1 = int(math.ceil(x0 + side)), int(math.ceil(y0 + side))
        pad = cv2.copyMakeBorder(img[max(yi0, 0):max(yi1, 0), max(xi0, 0):max(xi1, 0)],
                                 max(-yi0, 0), max(yi1 - img.shape[0], 0), max(-xi0, 0), max(xi1 - img.shape[1], 0),
                                 cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return cv2.resize(pad, (size, size), interpolation=cv2.INTER_AREA)
    return cv2.warpAffine(img, m, (size, size), flags=interp, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


# --------------------------------------------------------------------------------------------
# Clips
# --------------------------------------------------------------------------------------------

def find_media(folder: str | Path) -> list[Path]:
    """Candidate media files of a raw identity folder (sorted; hidden and sidecar files skipped).
    Every candidate must be a usable video: a stray non-video file is reported, not ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "identity source folder not found", "put the video(s) there or fix params.yaml")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and not p.name.startswith(".") and p.suffix.lower() not in SIDECAR_SUFFIXES)
    if not files:
        raise InputError(folder, "holds no video file", "copy the identity's video(s) into it")
    return files


def clip_id_for(path: Path, taken: set[str] | None = None) -> str:
    """A file-system and table safe clip id from a file stem (ASCII-folded, spaces -> `_`)."""
    import hashlib

    stem = unicodedata.normalize("NFKD", path.stem).encode("ascii", "ignore").decode()
    cid = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._") or ""
    if not re.search(r"[A-Za-z0-9]", cid):
        cid = "clip_" + hashlib.sha1(path.stem.encode()).hexdigest()[:8]
    taken = taken if taken is not None else set()
    base, i = cid, 1
    while cid in taken:
        i += 1
        cid = f"{base}_{i}"
    taken.add(cid)
    return cid


@dataclass
class ClipPlan:
    """Everything pass 2 needs for one clip (a few numbers per output frame, no images)."""

    clip_id: str
    info: video_io.VideoInfo
    n: int
    """Output frames kept (after trimming to the shorter of audio and video)."""
    box: np.ndarray  # [n, 3] centre x, centre y, side (display source pixels)
    det_conf: np.ndarray  # [n]
    face_found: np.ndarray  # [n] bool
    face: dict[str, Any]
    audio_samples: int
    notes: list[str] = field(default_factory=list)

    @property
    def face_ratio(self) -> float:
        return float(self.face_found.mean()) if self.n else 0.0

    def boxes_xywh(self) -> np.ndarray:
        """[n, 4] crop boxes as x0, y0, side, side (the `frames.box` column)."""
        b = self.box
        return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 2] / 2, b[:, 2], b[:, 2]], axis=1).astype(np.float32)

    def summary(self) -> str:
        """One line for the log: frames, face ratio, what was resampled / trimmed."""
        return (f"{self.clip_id}: {self.n} frames, face in {100 * self.face_ratio:.0f}%"
                + (f"; {'; '.join(self.notes)}" if self.notes else ""))


def analyse_clip(path: str | Path, clip_id: str, cfg: IngestConfig, wav_out: str | Path, detector: FaceDetector,
                 progress: Progress | None = None) -> ClipPlan:
    """Pass 1 of one clip: probe, detect faces, decode audio to `wav_out`, choose and smooth the
    face box. Raises InputError (naming the file and why) for unusable input."""
    path = Path(path)
    info = video_io.probe(path)
    if info.audio is None:
        raise InputError(path, "video has no audio track; ingest needs the speech that drives the avatar",
                         "mux the audio in (e.g. `ffmpeg -i video -i speech.wav -c:v copy -shortest out.mp4`)")
    fps = float(cfg.fps)
    stats = video_io.DecodeStats()
    detections: list[tuple[int, np.ndarray]] = []
    n_video = 0
    for of in video_io.resample_frames(path, fps, stats):
        if of.index % cfg.detect_every == 0:
            img = video_io.to_rgb(of.frame, info.rotation, cfg.detect_size)
            d = detector.detect(img)
            d[:, :4] *= info.width / img.shape[1]  # back to display source pixels
            detections.append((of.index, d))
        n_video = of.index + 1
        if progress is not None:
            progress(1)
    if n_video == 0:
        raise InputError(path, "no video frame decodes; the file is truncated or corrupt")
    video_io.check_complete(info, stats.end_t)
    notes: list[str] = []
    if abs(info.fps - fps) > 1e-3 or stats.variable_rate:
        vfr = " variable" if stats.variable_rate else ""
        notes.append(f"resampled{vfr} {info.fps:.3f} fps -> {fps:g} fps")
    if info.rotation:
        notes.append(f"rotated {info.rotation} deg")
    video_s = n_video / fps
    if video_s < cfg.min_duration_s:
        raise InputError(path, f"clip is {video_s:.2f} s long, shorter than ingest.min_duration_s={cfg.min_duration_s}",
                         "use a longer clip")

    # audio: decode at most the video's length, aligned to the first video frame
    sr = int(cfg.sample_rate)
    cap = int(round(n_video * sr / fps))
    samples = audio_io.decode_to_wav(path, wav_out, sr, max_samples=cap, start_s=stats.first_t)
    if samples == 0:
        raise InputError(path, "audio track holds no decodable samples")
    n_audio = int(math.floor(samples * fps / sr + 1e-9))
    n = min(n_video, n_audio)
    keep = int(round(n * sr / fps))
    audio_io.truncate_wav(wav_out, keep)
    audio_s = info.audio.duration_s if (info.audio.duration_s and n_audio >= n_video) else samples / sr
    if abs(audio_s - video_s) > 1.0 / fps:
        shorter = "audio" if audio_s < video_s else "video"
        notes.append(f"trimmed to the shorter {shorter}: video {video_s:.2f} s, audio {audio_s:.2f} s -> {n / fps:.2f} s")
    offset = info.audio.start_s - (stats.first_t or 0.0)
    if abs(offset) > 0.5 / fps:
        notes.append(f"audio starts {abs(offset):.2f} s {'after' if offset > 0 else 'before'} the video: "
                     + ("padded with silence" if offset > 0 else "lead cut"))
    if info.audio.sample_rate != sr or info.audio.channels != 1:
        notes.append(f"audio {info.audio.channels} ch {info.audio.sample_rate} Hz -> mono {sr} Hz")
    if n / fps < cfg.min_duration_s:
        raise InputError(path, f"clip is {n / fps:.2f} s long after trimming to the audio, shorter than "
                               f"ingest.min_duration_s={cfg.min_duration_s}", "use a longer clip")

    # faces: link, choose, smooth
    n_detect = len(detections)
    tracks = merge_fragments(link_tracks(detections, max_gap=max(cfg.detect_every, int(round(fps))) * 2))
    track, face = choose_track(tracks, n_detect, cfg.face_index, fps, path)
    box, conf, found = smooth_track(track, n_video, cfg.detect_every, cfg.smooth_sigma_s * fps, cfg.box_scale)
    box, conf, found = box[:n], conf[:n], found[:n]
    ratio = float(found.mean()) if n else 0.0
    if ratio < cfg.min_face_ratio:
        missing = runs(~found)
        raise InputError(path, f"no face in frames {format_ranges(missing, fps)} (face in {100 * ratio:.0f}% of {n} "
                               f"frames at {fps:g} fps, need {100 * cfg.min_face_ratio:.0f}%)",
                         "trim the clip to where the face is visible or lower ingest.min_face_ratio")
    if face.get("n_persistent", 0) > 1:
        log.info("%s: %d persistent faces; using #%d (median side %.0f px); set ingest.face_index to pick another",
                 path, face["n_persistent"], face["chosen"], face["candidates"][face["chosen"]]["median_side_px"])
        notes.append(f"{face['n_persistent']} faces, tracked #{face['chosen']} (largest first)")
    return ClipPlan(clip_id, info, n, box, conf, found, face, keep, notes)


def write_clip(plan: ClipPlan, cfg: IngestConfig, write: Callable[[dict[str, Any]], None],
               progress: Progress | None = None) -> None:
    """Pass 2 of one clip: decode again, crop every output frame with its smoothed box, JPEG-encode,
    and hand `write` one row group (`cfg.row_group_frames` rows, `frames` table columns) at a time."""
    from emotag_core.io.frames import encode_jpeg

    info, size, fps = plan.info, int(cfg.size), float(cfg.fps)
    boxes = plan.boxes_xywh()  # [n, 4] display source pixels
    # decode at a reduced size when the smallest crop is still >= the output size (4K sources)
    shrink = min(1.0, size / max(float(boxes[:, 2].min()), 1.0)) if plan.n else 1.0
    max_side = None if shrink >= 0.999 else int(math.ceil(max(info.width, info.height) * shrink))
    buf: dict[str, list[Any]] = {k: [] for k in ("clip_id", "frame", "t", "src_t", "box", "det_conf", "face_found", "jpeg")}
    img, scale = None, 1.0

    def flush() -> None:
        if buf["frame"]:
            cols = dict(buf)
            cols["box"] = np.stack(cols["box"]).astype(np.float32)
            write(cols)
            for v in buf.values():
                v.clear()

    for of in video_io.resample_frames(plan.info.path, fps, max_frames=plan.n):
        if img is None or of.new_source:
            img = video_io.to_rgb(of.frame, info.rotation, max_side, fmt="bgr24")  # cv2's order: no swap to encode
            scale = img.shape[1] / info.width
        k = of.index
        b = boxes[k]
        crop = crop_square(img, np.array([b[0] * scale, b[1] * scale, b[2] * scale]), size)
        buf["clip_id"].append(plan.clip_id)
        buf["frame"].append(k)
        buf["t"].append(of.t)
        buf["src_t"].append(of.src_t)
        buf["box"].append(b)
        buf["det_conf"].append(float(plan.det_conf[k]))
        buf["face_found"].append(bool(plan.face_found[k]))
        buf["jpeg"].append(encode_jpeg(crop, cfg.jpeg_quality, bgr=True))
        if len(buf["frame"]) >= cfg.row_group_frames:
            flush()
        if progress is not None:
            progress(1)
    written = buf["frame"][-1] + 1 if buf["frame"] else None
    flush()
    if written is not None and written != plan.n:
        raise InputError(plan.info.path, f"second decode gave {written} frames, first gave {plan.n}; the decoder is "
                                         "not deterministic on this file", "re-encode the video")


def frames_meta(plans: Sequence[ClipPlan], cfg: IngestConfig, detector: FaceDetector) -> dict[str, Any]:
    """Metadata of the `frames` table for these clips."""
    return {
        "fps": float(cfg.fps), "frame_size": [int(cfg.size), int(cfg.size)],
        "backend": detector.name, "backend_version": detector.version,
        "source": {p.clip_id: {**p.info.summary(), "frames": p.n, "face_ratio": round(p.face_ratio, 4),
                               "notes": p.notes} for p in plans},
        "audio": {p.clip_id: {"file": f"audio/{p.clip_id}.wav", "sample_rate": int(cfg.sample_rate),
                              "samples": p.audio_samples} for p in plans},
        "face_index": {p.clip_id: p.face for p in plans},
        "crop": {"box_scale": cfg.box_scale, "smooth_sigma_s": cfg.smooth_sigma_s, "detect_every": cfg.detect_every,
                 "detect_size": cfg.detect_size, "jpeg_quality": cfg.jpeg_quality},
    }
