"""DVC stage `landmarks@<id>`: 478 MediaPipe landmarks, 52 blendshapes, head transform per frame.

The job is `emotag_core.teachers.landmarks.landmarks_run`.
"""
from __future__ import annotations

from emotag_core.teachers.landmarks import landmarks_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("landmarks")
def main(identity: str) -> None:
    p = params().landmarks
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    with progress_bar(f"landmarks@{identity}") as bar:
        landmarks_run(frames, paths.table("landmarks"), p, bar)


if __name__ == "__main__":
    main_for(main)
