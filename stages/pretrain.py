"""DVC stage `pretrain`: GRMN + per-identity Gaussians on the multi-identity corpus (paper Sec. 3.3).

Resumes from `data/models/.checkpoints/pretrain/` after a kill (same params -> same result);
writes `data/models/pretrain/grmn.pt` + `summary.json` and dvclive curves under
`data/metrics/pretrain/`. The recipe is `emotag_core.train.recipe.pretrain_run`.
"""
from __future__ import annotations

import sys

from emotag_core.train.recipe import pretrain_run
from stages.common import CORPUS_DIR, DATA, PRETRAIN_METRICS, PRETRAIN_MODELS, params, progress_bar, stage, sweep

CKPT_ROOT = DATA / "models" / ".checkpoints"


@stage("pretrain")
def main() -> None:
    sweep(PRETRAIN_MODELS, CKPT_ROOT)
    with progress_bar("pretrain") as bar:
        pretrain_run(params(), CORPUS_DIR, PRETRAIN_MODELS, CKPT_ROOT / "pretrain", PRETRAIN_METRICS, bar)


if __name__ == "__main__":
    sys.exit(main())
