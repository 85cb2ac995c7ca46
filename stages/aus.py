"""DVC stage `aus@<id>`: OpenFace-named AU intensities (0-5) with an availability list."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from emotag_core.config import AusConfig
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import OPENFACE_AUS, TableReader, TableWriter, column_array
from emotag_core.teachers import aus
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


def _meta(fps: float, size: int, teacher: object, available: tuple[str, ...]) -> dict:
    return {"fps": fps, "frame_size": [size, size], "backend": teacher.name,  # type: ignore[attr-defined]
            "backend_version": teacher.version, "aus": list(OPENFACE_AUS),  # type: ignore[attr-defined]
            "available_aus": list(available), "scale": aus.SCALE}


def run_mediapipe(landmarks_path: Path, out_path: Path, cfg: AusConfig, progress: bool = True) -> int:
    """AUs from the landmarks table: stream raw activations, calibrate per clip, write atomically."""
    teacher = aus.MediapipeAus(cfg)
    reader = TableReader(landmarks_path, "landmarks")
    names = reader.meta["blendshape_names"]
    size = int(reader.meta["frame_size"][0])
    keys_c, keys_f, found, raw = [], [], [], []
    with progress_bar(reader.num_rows, "aus (mediapipe)", progress) as bar:
        task = bar.add_task("aus", total=reader.num_rows)
        for batch in reader.iter_batches(1024, columns=["clip_id", "frame", "face_found", "blendshapes", "landmarks"]):
            t = pa.Table.from_batches([batch])
            lm = column_array(t, "landmarks").reshape(-1, 478, 3)
            raw.append(teacher.raw(column_array(t, "blendshapes"), names, lm))
            keys_c.append(t.column("clip_id").to_numpy(zero_copy_only=False))
            keys_f.append(t.column("frame").to_numpy())
            found.append(column_array(t, "face_found").astype(bool))
            bar.advance(task, t.num_rows)
    clip = np.concatenate(keys_c) if keys_c else np.array([], object)
    frame = np.concatenate(keys_f) if keys_f else np.array([], np.int32)
    ff = np.concatenate(found) if found else np.array([], bool)
    r = np.concatenate(raw) if raw else np.zeros((0, len(OPENFACE_AUS)), np.float32)
    values = np.zeros_like(r)
    for c in dict.fromkeys(clip.tolist()):  # per-clip (per-person) rest offset
        m = clip == c
        values[m] = teacher.calibrate(r[m], teacher.baseline(r[m], ff[m]), ff[m])
    with TableWriter(out_path, "aus", _meta(float(reader.meta["fps"]), size, teacher, teacher.available)) as out:
        out.write({"clip_id": clip, "frame": frame.astype(np.int32),
                   **aus.AuFrames(ff, values, teacher.available).columns()})
        return out.rows


def run_openface_csv(frames_path: Path, out_path: Path, cfg: AusConfig) -> int:
    """AUs imported from `<csv_dir>/<clip_id>.csv`, aligned to the frame store's frames."""
    teacher = aus.OpenFaceCsvAus(cfg)
    store = FrameStore(frames_path)
    keys = store.keys
    clip = keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = keys.column("frame").to_numpy()
    t = keys.column("t").to_numpy()
    tracks = {c: aus.read_openface_csv(teacher.csv_for(c)) for c in store.clip_ids}  # all CSVs checked first
    available = tuple(a for a in OPENFACE_AUS if all(a in tr.available for tr in tracks.values()))
    with TableWriter(out_path, "aus", _meta(store.fps, store.size, teacher, available)) as out:
        for c, tr in tracks.items():
            m = clip == c
            res = teacher.predict(tr, frame[m], t[m], store.fps)
            res.aus[:, [j for j, a in enumerate(OPENFACE_AUS) if a not in available]] = 0.0
            out.write({"clip_id": clip[m], "frame": frame[m], **res.columns()})
        return out.rows


def run_pyfeat(frames_path: Path, out_path: Path, cfg: AusConfig, progress: bool = True) -> int:
    """AUs of every frame through py-feat's detector."""
    teacher = aus.PyFeatAus(cfg)  # WeightsMissingError before any work
    store = FrameStore(frames_path)
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    with TableWriter(out_path, "aus", _meta(store.fps, store.size, teacher, teacher.available)) as out, \
            progress_bar(len(store), "aus (py-feat)", progress) as bar:
        task = bar.add_task("aus", total=len(store))
        for rows, images in store.iter_batches(cfg.batch_size):
            out.write({"clip_id": clip[rows], "frame": frame[rows], **teacher.predict(images).columns()})
            bar.advance(task, len(rows))
        return out.rows


@stage("aus")
def main(identity: str) -> None:
    p = params().aus
    paths = Paths(identity)
    sweep(paths.processed)
    out = paths.table("aus")
    if p.backend == "mediapipe":
        run_mediapipe(need(paths.table("landmarks"), "the landmarks table", "landmarks", identity), out, p)
    elif p.backend == "openface_csv":
        run_openface_csv(need(paths.table("frames"), "the frame store", "ingest", identity), out, p)
    elif p.backend == "pyfeat":
        run_pyfeat(need(paths.table("frames"), "the frame store", "ingest", identity), out, p)
    else:
        from emotag_core.teachers import get_backend

        get_backend("aus", p.backend)  # ConfigError listing the known backends


if __name__ == "__main__":
    main_for(main)
