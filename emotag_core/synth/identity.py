"""The `synth` job: one synthetic talking-head identity with known truth, written as one folder.

`generate_identity` writes `clipNNN.mp4` (H.264 + AAC; what `ingest` reads), `truth/clipNNN.npz`
(per-frame shape, expr, jaw, rot, trans, K, AUs, emotion label and intensity, phoneme/viseme timeline,
true 2-D landmarks), `truth/clipNNN.json` (utterances, voices, texts) and `identity.json`, atomically.
`identity_config` puts an identity's own options (params `synthetic.<id>`) over `synth`. The DVC stage
`synth@<id>` is a thin door to these.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from emotag_core.config import FlameConfig, SynthConfig, from_dict, to_dict
from emotag_core.errors import EmotagError
from emotag_core.io.atomic import atomic_dir
from emotag_core.progress import NO_PROGRESS, Progress


def identity_config(synth: SynthConfig, options: dict | None, identity: str) -> SynthConfig:
    """`synth` with the identity's own options (`synthetic.<id>`) on top (ConfigError naming a bad key)."""
    return from_dict(SynthConfig, {**to_dict(synth), **(options or {})}, f"synthetic.{identity}")


def load_model(flame: FlameConfig, device: str) -> Any:
    """The head model the corpus is rendered with (`emotag_core.flame.load_head_model`)."""
    try:
        from emotag_core.flame import load_head_model
    except ImportError as exc:
        raise EmotagError(f"synth: emotag_core.flame.load_head_model is not available ({exc}); "
                          "the head model package must be installed with this checkout") from exc
    return load_head_model(flame, device)


def generate_identity(model: Any, cfg: SynthConfig, out_dir: Path,
                      progress: Progress = NO_PROGRESS) -> list[Path]:
    """Write every clip of one identity into `out_dir` (atomically, as one folder); the clip videos.

    model: a HeadModel (`load_model`); progress(frames rendered, frames of all clips).
    """
    import numpy as np
    import torch

    from emotag_core.synth import generator as gen

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    n_frames = int(round(cfg.seconds * cfg.fps))
    total = n_frames * cfg.clips
    done = 0

    def on_frame() -> None:
        nonlocal done
        done += 1
        progress(done, total)

    videos: list[Path] = []
    with atomic_dir(out_dir) as tmp:
        tmp = Path(tmp)
        tmp.chmod(0o755)                                      # mkdtemp makes it private
        (tmp / "truth").mkdir()
        ident = gen.sample_identity(model, cfg)
        app = gen.build_appearance(model, ident, cfg)
        for c in range(cfg.clips):
            videos.append(out_dir / gen.generate_clip(model, ident, app, cfg, c, tmp, on_frame=on_frame).name)
        meta = model.metadata() if hasattr(model, "metadata") else {"flame_model": getattr(model, "name", "?")}
        (tmp / "identity.json").write_text(json.dumps({
            "seed": cfg.seed, "shape": np.asarray(ident.shape).tolist(), "K": ident.K.tolist(),
            "photo": ident.photo, "background": ident.background, "head_model": meta,
            "clips": [v.stem for v in videos], "synth": to_dict(cfg),
        }, indent=1), encoding="utf-8")
    return videos
