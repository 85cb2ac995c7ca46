"""DVC stage `synth@<id>`: a synthetic talking-head identity with known truth.

Writes `data/synthetic/<id>/`: `clipNNN.mp4` (H.264 + AAC, 25 fps; what `ingest@<id>` reads),
`truth/clipNNN.npz` (per-frame shape, expr, jaw, rot, trans, K, AUs, emotion label and
intensity, phoneme/viseme timeline, true 2-D landmarks), `truth/clipNNN.json` (utterances,
voices, texts) and `identity.json`. Per-id options under params `synthetic.<id>` override
`synth` (at least `seed`).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from emotag_core.config import FlameConfig, SynthConfig, from_dict, to_dict
from emotag_core.errors import ConfigError, EmotagError
from emotag_core.io.atomic import atomic_dir
from stages.common import Paths, main_for, params, stage


def identity_config(synth: SynthConfig, options: dict, identity: str) -> SynthConfig:
    """`synth` with the identity's own options (`synthetic.<id>`) on top."""
    return from_dict(SynthConfig, {**to_dict(synth), **(options or {})}, f"synthetic.{identity}")


def load_model(flame: FlameConfig, device: str):  # noqa: ANN201 - HeadModel
    """The head model the corpus is rendered with (`emotag_core.flame.load_head_model`)."""
    try:
        from emotag_core.flame import load_head_model
    except ImportError as exc:
        raise EmotagError(f"synth: emotag_core.flame.load_head_model is not available ({exc}); "
                          "the head model package must be installed with this checkout") from exc
    return load_head_model(flame, device)


def generate_identity(model, cfg: SynthConfig, out_dir: Path, quiet: bool = False) -> list[Path]:  # noqa: ANN001
    """Write every clip of one identity into `out_dir` (atomically, as one folder)."""
    import numpy as np
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from emotag_core.synth import generator as gen

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    n_frames = int(round(cfg.seconds * cfg.fps))
    videos: list[Path] = []
    with atomic_dir(out_dir) as tmp, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True, quiet=quiet), transient=True, disable=quiet) as bar:
        tmp = Path(tmp)
        tmp.chmod(0o755)                                      # mkdtemp makes it private
        (tmp / "truth").mkdir()
        ident = gen.sample_identity(model, cfg)
        app = gen.build_appearance(model, ident, cfg)
        task = bar.add_task(f"synth {out_dir.name}", total=n_frames * cfg.clips)
        for c in range(cfg.clips):
            videos.append(out_dir / gen.generate_clip(model, ident, app, cfg, c, tmp,
                                                      on_frame=lambda: bar.advance(task)).name)
        meta = model.metadata() if hasattr(model, "metadata") else {"flame_model": getattr(model, "name", "?")}
        (tmp / "identity.json").write_text(json.dumps({
            "seed": cfg.seed, "shape": np.asarray(ident.shape).tolist(), "K": ident.K.tolist(),
            "photo": ident.photo, "background": ident.background, "head_model": meta,
            "clips": [v.stem for v in videos], "synth": to_dict(cfg),
        }, indent=1), encoding="utf-8")
    return videos


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
    generate_identity(model, cfg, out)


if __name__ == "__main__":
    main_for(main)
