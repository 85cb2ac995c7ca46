"""DVC stage `render@<id>`: the adapted identity driven by new audio -> mp4s with sound (Sec. 3.3).

Writes `data/renders/<id>/` (`<name>.mp4` per driving audio + `render.json`); the job is
`emotag_core.render.jobs.render_identity`, the held-out frames come from `emotag_core.split.Split`.
Ad-hoc renders (`emotag render <id> <audio>`, live with `--stream`) go to `renders/<id>/`, outside DVC.
"""
from __future__ import annotations

from emotag_core.render.adapted import load_animator
from emotag_core.render.jobs import feature_backend, render_identity
from stages.common import Paths, main_for, need_adapted, params, progress_bar, stage, sweep, target_files


@stage("render")
def main(identity: str) -> None:
    import torch

    p, paths = params(), Paths(identity)
    sweep(paths.renders.parent)
    torch.set_num_threads(max(1, p.render.threads))
    need_adapted(identity, paths)
    files = target_files(identity, paths, audio=not p.render.audio)
    split = files.split(p.adapt, None, p.ingest.fps)
    animator = load_animator(paths.models, p.flame, p.pretrain.rasterizer, p.render, p.ingest.size)
    with progress_bar(f"render@{identity}") as bar:
        render_identity(files, split, animator, feature_backend(p.audio_features, p.ingest.fps, animator),
                        p.render, paths.renders, log=lambda s: print(s, flush=True), progress=bar)


if __name__ == "__main__":
    main_for(main)
