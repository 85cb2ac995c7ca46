"""The `track` job: FLAME (or open head model) tracking of an identity's landmarks table.

`track_run` reads the landmarks table (and, for the photometric term and the overlay, the frame store),
fits the shared shape and camera, tracks every clip, and writes `flame.parquet` (per frame: valid, expr,
jaw, rot, trans, fit_error_px, neck; metadata: model variant, expression dimension, the shared shape and
camera) and an overlay video (fitted mesh wireframe in green, detected landmarks in red, over the crops)
so a person can check the fit. The DVC stage `track@<id>` is a thin door to it.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from emotag_core.config import FlameConfig, TrackConfig
from emotag_core.errors import InputError
from emotag_core.flame import load_head_model
from emotag_core.flame.tracker import ClipTrack, Tracker
from emotag_core.io.atomic import atomic_path
from emotag_core.io.tables import TableWriter, column_array, read_table
from emotag_core.progress import NO_PROGRESS, Progress

BACKEND = "emotag-landmark-fit"
BACKEND_VERSION = "1"


def read_landmarks(path: Path) -> tuple[list[tuple[str, np.ndarray, np.ndarray, np.ndarray]], dict]:
    """Landmarks table -> [(clip_id, frames [T], landmarks [T, 478, 3], found [T], blendshapes [T, 52])] in
    table order."""
    table, meta = read_table(path, "landmarks", columns=["clip_id", "frame", "face_found", "landmarks", "blendshapes"])
    clip_ids = table.column("clip_id").to_numpy(zero_copy_only=False)
    frames = column_array(table, "frame").astype(np.int64)
    found = column_array(table, "face_found").astype(bool)
    lmk = column_array(table, "landmarks").reshape(-1, 478, 3)
    blend = column_array(table, "blendshapes").reshape(len(frames), -1)
    clips = []
    for c in dict.fromkeys(clip_ids):
        sel = np.nonzero(clip_ids == c)[0]
        sel = sel[np.argsort(frames[sel], kind="stable")]
        clips.append((str(c), frames[sel], lmk[sel], found[sel], blend[sel]))
    return clips, meta


def frame_images(frames_path: Path) -> Callable[[str, np.ndarray], np.ndarray]:
    """(clip_id, frame numbers [T]) -> crops [T, H, W, 3] uint8 from the frame store (photometric term)."""
    from emotag_core.io.frames import FrameStore

    store = FrameStore(frames_path)
    keys = store.keys
    row_of = {(c, int(f)): i for i, (c, f) in enumerate(zip(keys.column("clip_id").to_pylist(),
                                                            keys.column("frame").to_pylist()))}

    def images(clip_id: str, frames: np.ndarray) -> np.ndarray:
        try:
            return np.stack([store.get(row_of[(clip_id, int(f))]) for f in frames])
        except KeyError as exc:
            raise InputError(frames_path, f"clip {clip_id}: frame {exc.args[0][1]} is in the landmarks table but "
                             "not in the frame store", "re-run landmarks on this frame store") from exc
    return images


def write_flame_table(path: Path, tracks: list[ClipTrack], model_meta: dict, shape: np.ndarray,
                      camera: dict, fps: float, size: int, backend: str = BACKEND,
                      backend_version: str = BACKEND_VERSION) -> None:
    """Write `flame.parquet` atomically (one row per frame)."""
    meta = {"fps": fps, "frame_size": [size, size], "backend": backend, "backend_version": backend_version,
            "flame_model": model_meta["flame_model"], "n_expr": int(model_meta["n_expr"]),
            "shape": [float(x) for x in np.asarray(shape).reshape(-1)], "camera": camera,
            "expr_names": model_meta.get("expr_names", []), "model_sha256": model_meta.get("model_sha256", "")}
    with TableWriter(path, "flame", meta) as out:
        for t in tracks:
            out.write({"clip_id": np.array([t.clip_id] * len(t.frame)), "frame": t.frame.astype(np.int32),
                       "valid": t.valid, "expr": t.expr, "jaw": t.jaw, "rot": t.rot, "trans": t.trans,
                       "fit_error_px": t.fit_error_px.astype(np.float32),
                       **({} if t.neck is None else {"neck": t.neck.astype(np.float32)})})


def write_overlay(video: Path, frames_path: Path, tracks: list[ClipTrack], lmk_by_clip: dict[str, np.ndarray],
                  model: torch.nn.Module, shape: torch.Tensor, K: torch.Tensor, fps: float,
                  max_frames: int | None = None) -> int:
    """Mesh wireframe (green) + detected landmarks (red) over the crops -> mp4 (atomic). The mesh is posed with
    the clip's neck rotations where the track has them (the head turns on the neck, the body holds its pose)."""
    import av
    import cv2

    from emotag_core.io.frames import FrameStore

    store = FrameStore(frames_path)
    keys = store.keys
    row_of = {(c, int(f)): i for i, (c, f) in enumerate(zip(keys.column("clip_id").to_pylist(),
                                                            keys.column("frame").to_pylist()))}
    faces = model.faces[: model.n_face_faces].cpu().numpy()
    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), 1), axis=0)
    n = 0
    with atomic_path(video) as tmp:
        with av.open(str(tmp), "w", format="mp4") as out:
            st = out.add_stream("libx264", rate=int(round(fps)))
            st.width = st.height = store.size
            st.pix_fmt = "yuv420p"
            st.options = {"crf": "23", "preset": "veryfast"}
            for t in tracks:
                for s in range(0, len(t.frame), 64):
                    sl = slice(s, s + 64)
                    with torch.no_grad():
                        B = len(t.frame[sl])
                        neck = None if t.neck is None else torch.as_tensor(t.neck[sl])  # the body holds still
                        v = model(shape[None], torch.as_tensor(t.expr[sl]), torch.as_tensor(t.jaw[sl]),
                                  torch.as_tensor(t.rot[sl]), torch.as_tensor(t.trans[sl]), neck=neck)
                        uv = model.project(v, K.expand(B, -1, -1)).numpy()
                    for b in range(B):
                        f = int(t.frame[sl][b])
                        row = row_of.get((t.clip_id, f))
                        img = store.get(row) if row is not None else np.zeros((store.size, store.size, 3), np.uint8)
                        img = np.ascontiguousarray(img)
                        color = (0, 255, 0) if t.valid[s + b] else (255, 160, 0)
                        pts = np.round(uv[b] * 4).astype(np.int32)
                        lines = pts[edges]
                        cv2.polylines(img, list(lines), False, color, 1, cv2.LINE_AA, shift=2)
                        if t.valid[s + b]:
                            for x, y in lmk_by_clip[t.clip_id][s + b, :, :2]:
                                cv2.circle(img, (int(x), int(y)), 1, (255, 0, 0), -1)
                        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
                        for pkt in st.encode(frame):
                            out.mux(pkt)
                        n += 1
                        if max_frames is not None and n >= max_frames:
                            break
            for pkt in st.encode():
                out.mux(pkt)
    return n


def track_run(landmarks_path: Path, frames_path: Path | None, out_table: Path, out_video: Path | None,
              fcfg: FlameConfig, tcfg: TrackConfig,
              progress: Progress = NO_PROGRESS) -> dict[str, float]:
    """Track every clip of an identity into `out_table` (and the overlay `out_video`), both atomic.

    frames_path: the frame store (photometric term when `tcfg.photo_weight > 0`, and the overlay's
    crops); None tracks from landmarks alone and writes no overlay. progress(frames done, total).
    Returns timing stats (frames, seconds, fps) of the fit, table writing and overlay excluded.
    """
    torch.manual_seed(tcfg.seed)
    clips, lmeta = read_landmarks(landmarks_path)
    size = int(lmeta["frame_size"][0])
    fps = float(lmeta["fps"])
    model = load_head_model(fcfg, tcfg.device)
    tracker = Tracker(model, tcfg, size)
    tracker.use_blendshapes(list(lmeta.get("blendshape_names") or []))   # the prior is off for non-ARKit models
    total = sum(len(c[1]) for c in clips)
    t0 = time.perf_counter()
    images = frame_images(frames_path) if tcfg.photo_weight > 0 and frames_path is not None else None
    tracker.fit_identity(clips, images)
    tracks = []
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        progress(done, total)

    for clip_id, frames, lmk, found, blend in clips:
        tracks.append(tracker.track_clip(clip_id, frames, lmk, found, progress=advance, images=images,
                                         blendshapes=blend))
    dt = time.perf_counter() - t0
    shape = tracker.shape.cpu()
    write_flame_table(out_table, tracks, model.metadata(), shape.numpy(), tracker.camera.as_dict(), fps, size)
    if out_video is not None and frames_path is not None:
        model_cpu = model.cpu()
        write_overlay(out_video, frames_path, tracks, {c[0]: c[2] for c in clips}, model_cpu, shape,
                      tracker.camera.K(1), fps)
    return {"frames": total, "seconds": dt, "fps": total / max(dt, 1e-9)}
