"""DVC stage `aus@<id>`: OpenFace-named AU intensities (0-5) with an availability list.

Backends (params `aus.backend`): `mediapipe` reads the landmarks table, `openface_csv` and `pyfeat` the
frame store. The job is `emotag_core.teachers.aus.aus_run`.
"""
from __future__ import annotations

from emotag_core.teachers.aus import aus_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("aus")
def main(identity: str) -> None:
    p = params().aus
    paths = Paths(identity)
    sweep(paths.processed)
    landmarks = frames = None
    if p.backend == "mediapipe":
        landmarks = need(paths.table("landmarks"), "the landmarks table", "landmarks", identity)
    elif p.backend in ("openface_csv", "pyfeat"):
        frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    with progress_bar(f"aus@{identity} ({p.backend})") as bar:
        aus_run(frames, landmarks, paths.table("aus"), p, bar)


if __name__ == "__main__":
    main_for(main)
