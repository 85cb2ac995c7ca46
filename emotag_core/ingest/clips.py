"""The two streaming passes over one clip (`emotag_core.ingest`): `analyse_clip` (probe, detect, audio, boxes)
and `write_clip` (crop, JPEG-encode, hand row groups to the frame store), plus the frame store's metadata."""
from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.config import IngestConfig
from emotag_core.errors import InputError
from emotag_core.ingest.faces import (FaceDetector, background_motion, choose_track, crop_square, fixed_box,
                                      format_ranges, link_tracks, merge_fragments, merge_scales, runs,
                                      smooth_track)
from emotag_core.io import audio as audio_io
from emotag_core.io import video as video_io

log = logging.getLogger("emotag.ingest")

# Files in a raw identity folder that are never media (metadata, notes).
SIDECAR_SUFFIXES = {".yaml", ".yml", ".json", ".md", ".txt", ".csv", ".py", ".toml", ".dvc"}

Advance = Callable[[int], None]   # "n more frames done" (`emotag_core.progress.Steps` counts them)


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
    face_box: np.ndarray | None = None  # [n, 3] the smoothed face box x box_scale (display source pixels)
    background_motion_px: float | None = None
    """Under `ingest.crop: fixed`: background drift measured by `write_clip` (output-crop pixels)."""

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
                 progress: Advance | None = None) -> ClipPlan:
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
    tracks = merge_scales(merge_fragments(link_tracks(detections, max_gap=max(cfg.detect_every, int(round(fps))) * 2)))
    track, face = choose_track(tracks, n_detect, cfg.face_index, fps, path)
    box, conf, found = smooth_track(track, n_video, cfg.detect_every, cfg.smooth_sigma_s * fps, cfg.box_scale)
    box, conf, found = box[:n], conf[:n], found[:n]
    face_box = box.copy()
    if cfg.crop == "fixed" and n:
        box = fixed_box(box, found, cfg.crop_shift_y)
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
    return ClipPlan(clip_id, info, n, box, conf, found, face, keep, notes, face_box=face_box)


def write_clip(plan: ClipPlan, cfg: IngestConfig, write: Callable[[dict[str, Any]], None],
               progress: Advance | None = None) -> None:
    """Pass 2 of one clip: decode again, crop every output frame with its smoothed box, JPEG-encode,
    and hand `write` one row group (`cfg.row_group_frames` rows, `frames` table columns) at a time."""
    import cv2

    from emotag_core.io.frames import encode_jpeg

    info, size, fps = plan.info, int(cfg.size), float(cfg.fps)
    boxes = plan.boxes_xywh()  # [n, 4] display source pixels
    # decode at a reduced size when the smallest crop is still >= the output size (4K sources)
    shrink = min(1.0, size / max(float(boxes[:, 2].min()), 1.0)) if plan.n else 1.0
    max_side = None if shrink >= 0.999 else int(math.ceil(max(info.width, info.height) * shrink))
    buf: dict[str, list[Any]] = {k: [] for k in ("clip_id", "frame", "t", "src_t", "box", "det_conf", "face_found", "jpeg")}
    img, scale = None, 1.0
    probe_crops: list[np.ndarray] = []   # fixed crop: every detect_every-th crop, for the camera-motion check
    probe_faces: list[np.ndarray] = []

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
        if cfg.crop == "fixed" and plan.face_box is not None and plan.face_found[k] and k % max(cfg.detect_every, 1) == 0:
            f, z = plan.face_box[k], size / b[2]
            probe_crops.append(cv2.resize(crop, (128, 128), interpolation=cv2.INTER_AREA))
            probe_faces.append(np.array([(f[0] - b[0]) * z, (f[1] - b[1]) * z, f[2] / max(cfg.box_scale, 1.0) * z]))
        if len(buf["frame"]) >= cfg.row_group_frames:
            flush()
        if progress is not None:
            progress(1)
    written = buf["frame"][-1] + 1 if buf["frame"] else None
    flush()
    if written is not None and written != plan.n:
        raise InputError(plan.info.path, f"second decode gave {written} frames, first gave {plan.n}; the decoder is "
                                         "not deterministic on this file", "re-encode the video")
    if probe_crops:
        check_background_motion(plan, cfg, probe_crops, [f * 128 / size for f in probe_faces], 128 / size)


def check_background_motion(plan: ClipPlan, cfg: IngestConfig, crops: list[np.ndarray], faces: list[np.ndarray],
                            scale: float) -> None:
    """Measure the background's drift under the fixed crop; warn (naming the clip) above `cfg.max_background_motion_px`."""
    px = background_motion(crops, faces) / scale
    plan.background_motion_px = None if not np.isfinite(px) else round(float(px), 2)
    if plan.background_motion_px is None:
        plan.notes.append("background motion not measured (too little background in the crop)")
    elif px > cfg.max_background_motion_px:
        msg = (f"background moves {px:.1f} px under the fixed crop (camera motion?), above "
               f"ingest.max_background_motion_px={cfg.max_background_motion_px:g}")
        log.warning("%s (clip %s): %s; for hand-held video set ingest.crop: smooth", plan.info.path, plan.clip_id, msg)
        plan.notes.append(msg + "; consider ingest.crop: smooth")


def frames_meta(plans: Sequence[ClipPlan], cfg: IngestConfig, detector: FaceDetector) -> dict[str, Any]:
    """Metadata of the `frames` table for these clips."""
    return {
        "fps": float(cfg.fps), "frame_size": [int(cfg.size), int(cfg.size)],
        "backend": detector.name, "backend_version": detector.version,
        "source": {p.clip_id: {**p.info.summary(), "frames": p.n, "face_ratio": round(p.face_ratio, 4),
                               "background_motion_px": p.background_motion_px,
                               "notes": p.notes} for p in plans},
        "audio": {p.clip_id: {"file": f"audio/{p.clip_id}.wav", "sample_rate": int(cfg.sample_rate),
                              "samples": p.audio_samples} for p in plans},
        "face_index": {p.clip_id: p.face for p in plans},
        "crop": {"mode": cfg.crop, "shift_y": cfg.crop_shift_y, "box_scale": cfg.box_scale, "smooth_sigma_s": cfg.smooth_sigma_s, "detect_every": cfg.detect_every,
                 "detect_size": cfg.detect_size, "jpeg_quality": cfg.jpeg_quality},
    }
