"""DVC stage `synth@<id>`: a synthetic talking-head identity with known truth.

Writes `data/synthetic/<id>/`: `clipNNN.mp4` (H.264 + AAC, 25 fps; what `ingest@<id>` reads),
`truth/clipNNN.npz` (per-frame shape, expr, jaw, rot, trans, K, AUs, emotion label and
intensity, phoneme/viseme timeline, true 2-D landmarks), `truth/clipNNN.json` (utterances,
voices, texts) and `identity.json`. Per-id options under params `synthetic.<id>` override
`synth` (at least `seed`). The job is `emotag_core.synth.identity.generate_identity`.
"""
from __future__ import annotations

import shutil

from emotag_core.errors import ConfigError
from emotag_core.synth.identity import generate_identity, identity_config, load_model
from stages.common import Paths, main_for, params, progress_bar, stage


@stage("synth")
def main(identity: str) -> None:
    p = params()
    if identity not in p.synthetic:
        raise ConfigError(f"params: `{identity}` is not under `synthetic:`; add `{identity}: {{seed: N}}` there")
    cfg = identity_config(p.synth, p.synthetic[identity], identity)
    out = Paths(identity).synthetic
    for stale in out.parent.glob(f".tmp-{out.name}.*"):   # leftovers of a killed run of this id only
        shutil.rmtree(stale, ignore_errors=True)
    model = load_model(p.flame, cfg.device)
    with progress_bar(f"synth@{identity}") as bar:
        generate_identity(model, cfg, out, bar)


if __name__ == "__main__":
    main_for(main)
