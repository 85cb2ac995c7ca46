"""DVC stage `render@<id>`: the adapted identity driven by new audio -> mp4s with sound (Sec. 3.3).

Writes `data/renders/<id>/` (`<name>.mp4` per driving audio + `render.json`); the job is
`emotag_core.render.jobs.render_identity`, the held-out frames come from `emotag_core.split.Split`.
`stream()` is the live mode behind `emotag render --stream`.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.config import Params
from emotag_core.render.adapted import ADAPTED_FILES, animator_kind  # noqa: F401 - animator_kind: re-exported
from emotag_core.render.driver import Animator, GateControl
from emotag_core.render.jobs import TargetFiles, feature_backend, render_identity, stream_identity
from stages.common import Paths, main_for, need, params, stage, sweep


def need_adapted(identity: str, paths: Paths) -> Path:
    """The adapted model folder of `identity`; StageMissingError (`dvc repro adapt@<id>`) if absent."""
    for f in ADAPTED_FILES:
        need(paths.models / f, f"the adapted model of `{identity}`", "adapt", identity)
    return paths.models


def target_files(identity: str, paths: Paths, audio: bool = True) -> TargetFiles:
    """The identity's tables (and audio folder), checked: StageMissingError naming the stage to run."""
    for table, st in (("frames", "ingest"), ("flame", "track"), ("aus", "aus")):
        need(paths.table(table), f"the `{table}` table of `{identity}`", st, identity)
    if audio:
        need(paths.audio_dir, "the identity's audio", "ingest", identity)
    return TargetFiles(identity, paths.processed)


def load_animator(identity: str, p: Params, paths: Paths, control: GateControl | None = None,
                  device: str | None = None, batch: int | None = None) -> Animator:
    """The adapted identity ready to render (see `emotag_core.render.adapted.load_animator`)."""
    from emotag_core.render.adapted import load_animator as load

    return load(need_adapted(identity, paths), p.flame, p.pretrain.rasterizer, p.render, p.ingest.size,
                control=control, device=device, batch=batch)


@stage("render")
def main(identity: str) -> None:
    import torch

    p, paths = params(), Paths(identity)
    sweep(paths.renders.parent)
    torch.set_num_threads(max(1, p.render.threads))
    need_adapted(identity, paths)
    files = target_files(identity, paths, audio=not p.render.audio)
    split = files.split(p.adapt, None, p.ingest.fps)
    render_identity(files, split, load_animator(identity, p, paths), feature_backend(p.audio_features, p.ingest.fps),
                    p.render, paths.renders, log=lambda s: print(s, flush=True))


def stream(identity: str, audio: str | Path | Iterable[np.ndarray], out: str | Path | None = None,
           realtime: bool = True, on_frame: Callable[[int, np.ndarray], None] | None = None,
           params_path: str | Path = "params.yaml") -> dict[str, Any]:
    """`emotag render --stream`: render `audio` live for an adapted identity; returns the latency summary.

    audio: a file (read at real-time pace if `realtime`) or an iterable of float32 16 kHz blocks.
    """
    p, paths = params(params_path), Paths(identity)
    return stream_identity(target_files(identity, paths, audio=False), load_animator(identity, p, paths, batch=1),
                           feature_backend(p.audio_features, p.ingest.fps), p.render.cue_clip, p.render.cue_mode,
                           audio, p.ingest.fps, out=out, realtime=realtime, on_frame=on_frame)


if __name__ == "__main__":
    main_for(main)
