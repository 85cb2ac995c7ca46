"""DVC stage `emotion@<id>`: per-frame emotion teacher (paper Sec. 3.2.4, Eq. 9)."""
from __future__ import annotations

from pathlib import Path


from emotag_core.config import EmotionConfig
from emotag_core.errors import InputError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableReader, TableWriter
from emotag_core.teachers import emotion
from emotag_core.teachers.landmarks import face_boxes
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


def run(frames_path: Path, landmarks_path: Path, out_path: Path, cfg: EmotionConfig, progress: bool = True) -> int:
    """Emotion distribution + score of every frame; face crops from the landmarks table."""
    teacher = emotion.load(cfg.backend, cfg)  # WeightsMissingError before any work
    store = FrameStore(frames_path)
    lm = TableReader(landmarks_path, "landmarks")
    if lm.num_rows != len(store):
        raise InputError(landmarks_path, f"{lm.num_rows} rows but the frame store has {len(store)}",
                         "re-run the landmarks stage on this frame store")
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
            "backend_version": teacher.version, "labels": list(emotion.LABELS)}
    lm_batches = lm.iter_batches(cfg.batch_size, columns=["clip_id", "frame", "face_found", "landmarks"])
    with TableWriter(out_path, "emotion", meta) as out, progress_bar(len(store), f"emotion ({teacher.name})", progress) as bar:
        task = bar.add_task("emotion", total=len(store))
        for rows, images in store.iter_batches(cfg.batch_size):
            b = next(lm_batches)
            lm_frame = b.column("frame").to_numpy()
            if len(lm_frame) != len(rows) or (lm_frame != frame[rows]).any() or \
                    (b.column("clip_id").to_numpy(zero_copy_only=False) != clip[rows]).any():
                raise InputError(landmarks_path, f"rows do not match the frame store at frame row {int(rows[0])}",
                                 "re-run the landmarks stage on this frame store")
            found = b.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
            pts = b.column("landmarks").flatten().to_numpy().reshape(-1, 478, 3)
            probs = teacher.predict(images, face_boxes(pts, found, store.size, cfg.crop_scale))
            out.write({"clip_id": clip[rows], "frame": frame[rows], "face_found": found,
                       "probs": probs, "score": emotion.emotion_score(probs)})
            bar.advance(task, len(rows))
        return out.rows


@stage("emotion")
def main(identity: str) -> None:
    p = params().emotion
    paths = Paths(identity)
    sweep(paths.processed)
    run(need(paths.table("frames"), "the frame store", "ingest", identity),
        need(paths.table("landmarks"), "the landmarks table", "landmarks", identity),
        paths.table("emotion"), p)


if __name__ == "__main__":
    main_for(main)
