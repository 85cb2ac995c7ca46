"""Face detection, tracks and crop boxes of the ingest step (`emotag_core.ingest`).

BlazeFace detections every `detect_every` output frames are linked into tracks, the largest persistent
face is chosen, its box interpolated and Gaussian-smoothed over time (`smooth_track`); `fixed_box` turns
those boxes into one box per clip (`ingest.crop: fixed`) and `background_motion` measures how much the
background moves under it.
"""
from __future__ import annotations

import contextlib
import logging
import math
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import ConfigError, InputError

log = logging.getLogger("emotag.ingest")


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


def _inter_over_min(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection area over the smaller box's area of two boxes [>=4] (x0, y0, x1, y1)."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    small = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(max(w, 0.0) * max(h, 0.0) / max(small, 1e-9))


def merge_scales(tracks: list[Track], min_overlap: float = 0.6, min_agree: float = 0.8,
                 min_shared: int = 3) -> list[Track]:
    """Join tracks of one face found at two scales. The whole frame and a tile (`FaceDetector.detect`) can give
    nested boxes of one face whose IoU is below the NMS threshold (e.g. 192 vs 312 px in a portrait video), so
    linking makes two tracks of it, each with gaps where its scale was missed. A smaller track whose boxes lie
    inside a larger one's (intersection over the smaller area > `min_overlap` on `min_agree` of at least
    `min_shared` frames both detected) fills the larger one's gaps, mapped to the larger one's scale and offset
    (medians over the shared frames); the larger track keeps its own boxes."""
    out: list[Track] = []
    for t in sorted(tracks, key=lambda t: -t.median_side):
        tb = dict(zip(t.frames, t.boxes))
        for o in out:
            ob = dict(zip(o.frames, o.boxes))
            shared = sorted(set(ob) & set(tb))
            if len(shared) < min_shared or np.mean([_inter_over_min(ob[f], tb[f]) > min_overlap
                                                    for f in shared]) < min_agree:
                continue
            a, b = np.stack([ob[f] for f in shared]), np.stack([tb[f] for f in shared])  # [S, 5]
            wa, ha, wb, hb = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
            sw, sh = np.median(wa / wb), np.median(ha / hb)  # size ratios large / small
            dx = np.median(((a[:, 0] + a[:, 2]) - (b[:, 0] + b[:, 2])) / 2 / wb)  # centre offset, small sides
            dy = np.median(((a[:, 1] + a[:, 3]) - (b[:, 1] + b[:, 3])) / 2 / hb)
            for f in set(tb) - set(ob):
                x0, y0, x1, y1, score = tb[f][:5]
                w, h = x1 - x0, y1 - y0
                cx, cy = (x0 + x1) / 2 + dx * w, (y0 + y1) / 2 + dy * h
                ob[f] = np.array([cx - sw * w / 2, cy - sh * h / 2, cx + sw * w / 2, cy + sh * h / 2, score])
            o.frames = sorted(ob)
            o.boxes = [ob[f] for f in o.frames]
            break
        else:
            out.append(Track(list(t.frames), list(t.boxes)))
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


def fixed_box(box: np.ndarray, found: np.ndarray, shift_y: float = 0.0, pct: float = 2.0) -> np.ndarray:
    """One crop box for a whole clip (`ingest.crop: fixed`): the square that holds the per-frame boxes
    [n, 3] (centre x, centre y, side) of the frames with a face (their 2nd-98th percentile extent, so a
    stray detection does not widen it), moved down by `shift_y` x its side. Returns [n, 3], every row equal."""
    b = box[found] if found.any() else box
    x0, x1 = np.percentile(b[:, 0] - b[:, 2] / 2, pct), np.percentile(b[:, 0] + b[:, 2] / 2, 100 - pct)
    y0, y1 = np.percentile(b[:, 1] - b[:, 2] / 2, pct), np.percentile(b[:, 1] + b[:, 2] / 2, 100 - pct)
    side = max(x1 - x0, y1 - y0)
    one = np.array([(x0 + x1) / 2, (y0 + y1) / 2 + shift_y * side, side])
    return np.repeat(one[None], len(box), 0)


def background_motion(crops: Sequence[np.ndarray], faces: Sequence[np.ndarray], work: int = 128) -> float:
    """How far the background moves under a fixed crop: the largest drift (output-crop pixels) of the
    median optical flow (OpenCV Farneback) over background pixels, accumulated over consecutive sampled
    crops [H, W, 3] uint8. faces: the face box [3] (cx, cy, side, crop pixels) of each crop; the head
    and a torso column below it are left out. NaN when fewer than 5% of the pixels are background."""
    import cv2

    if len(crops) < 2:
        return 0.0
    h = crops[0].shape[0]
    s = work / h
    yy, xx = np.mgrid[0:work, 0:work].astype(np.float32) / s
    drift, worst, prev = np.zeros(2), 0.0, None
    for img, f in zip(crops, faces):
        g = cv2.cvtColor(cv2.resize(img, (work, work), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
        cx, cy, side = (float(v) for v in f)
        head = (np.abs(xx - cx) < 0.75 * side) & (yy > cy - 0.9 * side)
        torso = (np.abs(xx - cx) < 1.6 * side) & (yy > cy + 0.5 * side)
        bg = ~(head | torso)
        if prev is not None:
            if bg.mean() < 0.05:
                return float("nan")
            flow = cv2.calcOpticalFlowFarneback(prev, g, None, 0.5, 3, 15, 3, 5, 1.2, 0)
            drift += np.median(flow[bg], axis=0) / s
            worst = max(worst, float(np.hypot(*drift)))
        prev = g
    return worst


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
