"""DVC stage `audio_features@<id>`: one audio feature vector per video frame (paper Sec. 3.2.1, A)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from emotag_core.config import AudioFeaturesConfig
from emotag_core.io.frames import FrameStore
from emotag_core.teachers import audio
from stages.common import Paths, main_for, need, params, stage, sweep


def _bar(label: str, enabled: bool):  # noqa: ANN202 - rich Progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                    TimeRemainingColumn(), disable=not enabled)


def run(frames_path: Path, audio_for: Callable[[str], Path], out_path: Path, cfg: AudioFeaturesConfig,
        progress: bool = True) -> int:
    """`emotag_core.teachers.audio.write_features` with a progress bar. Returns rows written."""
    store = FrameStore(frames_path)
    with _bar("audio_features", progress) as bar:
        task = bar.add_task("audio_features", total=len(store))
        return audio.write_features(frames_path, audio_for, out_path, cfg, lambda n: bar.advance(task, n))


@stage("audio_features")
def main(identity: str) -> None:
    p = params().audio_features
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    run(frames, paths.audio, paths.table("audio_features"), p)


if __name__ == "__main__":
    main_for(main)
