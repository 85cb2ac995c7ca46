"""DVC stage `grmn_eval@<id>`: the adapted GRMN of a synthetic target against its known truth.

Scores the held-out clip (`test`), the adaptation clip after `adapt.train_seconds` (`val`) and the pretrained
GRMN before adaptation (`before_adapt`): jaw r vs the true jaw, gate vs the true emotion intensity, expression
MAE vs the true expression, with the audio-energy and tracked-jaw references. Writes
`data/metrics/<id>/grmn_eval.json` (DVC metrics). The fan-out is params `grmn_eval.targets` (synthetic targets
only; empty in the main DAG, listed by the synthetic bench's params). The protocol is
`emotag_core.metrics.synth_truth.grmn_eval`.
"""
from __future__ import annotations

from emotag_core.metrics.synth_truth import TruthFiles, grmn_eval, split_for, write_grmn_eval
from emotag_core.train.checkpoint import load_model
from emotag_core.train.data import build_identity_index
from emotag_core.train.recipe import identity_tables
from stages.common import PRETRAIN_MODELS, Paths, main_for, need, params, stage, sweep


@stage("grmn_eval")
def main(identity: str) -> None:
    import torch

    p, paths = params(), Paths(identity)
    out = paths.metrics_dir / "grmn_eval.json"
    sweep(out.parent)
    torch.set_num_threads(max(1, p.grmn_eval.threads))
    need(paths.models / "grmn.pt", f"the adapted GRMN of `{identity}`", "adapt", identity)
    need(paths.synthetic / "truth", f"the synthetic truth of `{identity}`", "synth", identity)
    ix = build_identity_index(identity, identity_tables(paths.processed))
    dev = p.grmn_eval.device
    adapted, _ = load_model(paths.models / "grmn.pt", dev)
    pretrained = load_model(PRETRAIN_MODELS / "grmn.pt", dev)[0] if (PRETRAIN_MODELS / "grmn.pt").exists() else None
    files = TruthFiles(paths.synthetic / "truth", paths.audio_dir)
    write_grmn_eval(grmn_eval(adapted, pretrained, ix, split_for(p.adapt, ix), files, dev), out)
    print(out.read_text())


if __name__ == "__main__":
    main_for(main)
