"""DVC stage `geometry@<id>`: depth and normal pseudo-ground-truth for L_Geo (paper Sec. 3.4, Eq. 14).

Backends (params `geometry.backend`): `flame` renders the tracked head mesh of `flame.parquet`
(offline; metric camera z), `sapiens` runs the user's Sapiens TorchScript depth and normal
checkpoints on the frames (relative depth). Maps are geometry.size square, float16.
The job is `emotag_core.avatar.geometry.geometry_run`.
"""
from __future__ import annotations

import torch

from emotag_core.avatar.geometry import geometry_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("geometry")
def main(identity: str) -> None:
    p = params()
    cfg = p.geometry
    paths = Paths(identity)
    sweep(paths.processed)
    torch.set_num_threads(max(1, cfg.threads))
    flame = frames = None
    if cfg.backend == "flame":
        flame = need(paths.table("flame"), "the FLAME track", "track", identity)
    elif cfg.backend == "sapiens":
        frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    with progress_bar(f"geometry@{identity} ({cfg.backend})") as bar:
        geometry_run(flame, frames, paths.table("geometry"), cfg, p.flame, bar)


if __name__ == "__main__":
    main_for(main)
