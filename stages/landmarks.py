"""DVC stage `landmarks@<id>`: 478 MediaPipe landmarks, 52 blendshapes, head transform per frame."""
from __future__ import annotations

from pathlib import Path

from emotag_core.config import LandmarksConfig
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableWriter
from emotag_core.teachers import landmarks
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


def run(frames_path: Path, out_path: Path, cfg: LandmarksConfig, progress: bool = True) -> int:
    """Landmarks of every frame of a frame store into `out_path` (atomic); returns frames written."""
    with landmarks.load(cfg.backend, cfg) as teacher:  # fails here, before any work, if the model is missing
        store = FrameStore(frames_path)
        teacher.fps = store.fps
        keys = store.keys
        clip_ids = keys.column("clip_id").to_numpy(zero_copy_only=False)
        frames = keys.column("frame").to_numpy()
        meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
                "backend_version": teacher.version, "blendshape_names": list(landmarks.BLENDSHAPE_NAMES)}
        with TableWriter(out_path, "landmarks", meta) as out, progress_bar(len(store), "landmarks", progress) as bar:
            task = bar.add_task("landmarks", total=len(store))
            for rows, images in store.iter_batches(cfg.batch_size):
                res = teacher.predict(images, clip_ids[rows], frames[rows])
                out.write({"clip_id": clip_ids[rows], "frame": frames[rows], **res.columns()})
                bar.advance(task, len(rows))
            return out.rows


@stage("landmarks")
def main(identity: str) -> None:
    p = params().landmarks
    paths = Paths(identity)
    sweep(paths.processed)
    run(need(paths.table("frames"), "the frame store", "ingest", identity), paths.table("landmarks"), p)


if __name__ == "__main__":
    main_for(main)
