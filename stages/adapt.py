"""DVC stage `adapt@<id>`: personalise the pretrained GRMN to a target identity (paper Sec. 3.3).

GRMN is frozen except its AdaIN modulation parameters (with ablation `adain: false`, the identity-free
InstanceNorm affine of both streams); the identity's Gaussians and background are fitted on the
adaptation part of its video (`emotag_core.split.Split`: the first `adapt.train_seconds`) with
L_Render + L_KL + L_Score + L_Geo. Writes `data/models/<id>/grmn.pt`, `scene.pt`, `summary.json`;
curves under `data/metrics/<id>/`. The recipe is `emotag_core.train.recipe.adapt_run`.
"""
from __future__ import annotations

from emotag_core.errors import StageMissingError
from emotag_core.split import Split
from emotag_core.train.data import build_identity_index
from emotag_core.train.recipe import adapt_run, identity_tables
from stages.common import DATA, PRETRAIN_MODELS, Paths, main_for, params, progress_bar, stage, sweep

CKPT_ROOT = DATA / "models" / ".checkpoints"


@stage("adapt")
def main(identity: str) -> None:
    p = params()
    paths = Paths(identity)
    sweep(paths.models, paths.metrics_dir)
    if not (PRETRAIN_MODELS / "grmn.pt").exists():
        raise StageMissingError("the pretrained GRMN", PRETRAIN_MODELS / "grmn.pt", "dvc repro pretrain")
    tables = identity_tables(paths.processed)
    if "geometry" not in tables and p.pretrain.render:
        raise StageMissingError(f"the geometry table of `{identity}`", paths.table("geometry"), f"dvc repro geometry@{identity}")
    ix = build_identity_index(identity, tables)
    split = Split.from_config(p.adapt, None, ix.index, ix.meta["fps"])
    with progress_bar(f"adapt@{identity}") as bar:
        adapt_run(p, ix, split, PRETRAIN_MODELS / "grmn.pt", paths.models, CKPT_ROOT / identity, paths.metrics_dir, bar)


if __name__ == "__main__":
    main_for(main)
