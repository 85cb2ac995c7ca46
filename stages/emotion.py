"""DVC stage `emotion@<id>`: per-frame emotion teacher (paper Sec. 3.2.4, Eq. 9).

The job is `emotag_core.teachers.emotion.emotion_run` (face crops from the landmarks table).
"""
from __future__ import annotations

from emotag_core.teachers.emotion import emotion_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("emotion")
def main(identity: str) -> None:
    p = params().emotion
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    landmarks = need(paths.table("landmarks"), "the landmarks table", "landmarks", identity)
    with progress_bar(f"emotion@{identity} ({p.backend})") as bar:
        emotion_run(frames, landmarks, paths.table("emotion"), p, bar)


if __name__ == "__main__":
    main_for(main)
