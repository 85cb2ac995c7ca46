"""DVC stage `audio_features@<id>`: one audio feature vector per video frame (paper Sec. 3.2.1, A).

The job is `emotag_core.teachers.audio.write_features` (rows follow the frame store; one wav per clip).
"""
from __future__ import annotations

from emotag_core.teachers import audio
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("audio_features")
def main(identity: str) -> None:
    pp = params()
    p = pp.audio_features
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    with progress_bar(f"audio_features@{identity}") as bar:
        audio.write_features(frames, paths.audio, paths.table("audio_features"), p, bar, fps=pp.ingest.fps)


if __name__ == "__main__":
    main_for(main)
