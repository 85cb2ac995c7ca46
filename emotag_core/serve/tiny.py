"""A random adapted identity on disk, for trying `emotag serve` and load-testing it without the DAG: adapt@<id>'s
`grmn.pt` + `scene.pt` (a random GRMN and a scene with a random, visible appearance) and the three tables the
demo's cues come from. It looks like a coloured blob, not a person: it measures the pipeline, not the quality.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from emotag_core.config import FlameConfig
from emotag_core.io.tables import OPENFACE_AUS, UPPER_AUS, write_table


def speech_wav(path: Path, seconds: float = 1.6, seed: int = 0) -> Path:
    """A speech-like WAV (syllable-rate envelope over noise and a voiced tone), 16 kHz mono."""
    from emotag_core.io.audio import write_wav

    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    env = np.clip(np.sin(2 * np.pi * 3.5 * t), 0, None) ** 2
    x = env * (0.3 * np.sin(2 * np.pi * 140 * t) + 0.1 * rng.normal(size=t.size))
    write_wav(path, x.astype(np.float32), sr)
    return path


def write_adapted(models: Path, n_gaussians: int = 600, d_model: int = 16, d_expr: int = 8, n_layers: int = 1,
                  n_heads: int = 2, hidden: int = 16, seed: int = 0) -> None:
    """adapt@<id>'s output folder `models` (grmn.pt, scene.pt) with a random GRMN and a random-looking scene."""
    from emotag_core.avatar.scene import build_scene
    from emotag_core.flame import load_head_model
    from emotag_core.motion.grmn import GRMN, GRMNSpec
    from emotag_core.render.adapted import save_adapted

    torch.manual_seed(seed)
    head = load_head_model(FlameConfig(), "cpu")
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    scene = build_scene(head, meta, n_gaussians, None, "auto", "cpu")
    with torch.no_grad():  # a visible appearance and background, as after fitting
        scene.avatar.sh.add_(0.5 * torch.randn_like(scene.avatar.sh))
        scene.avatar.opacity_logit.add_(2.0)
        scene.background.fill_(0.25)
    spec = GRMNSpec(audio_dim=320, n_aus=len(UPPER_AUS), identity_dim=8, n_expr=head.n_expr, n_mouth=scene.n_mouth,
                    d_model=d_model, d_expr=d_expr, n_layers=n_layers, n_heads=n_heads, hidden=hidden)
    grmn = GRMN(spec).eval()
    with torch.no_grad():  # residual branch big enough that the gate shows in the frames
        for m in (grmn.decoder.base[-1], grmn.decoder.emo_decoder[-1]):
            m.weight.normal_(std=0.05)
    meta["identity_vector"] = torch.randn(8).tolist()
    save_adapted(models, grmn, scene, meta, n_gaussians, seed=seed)


def write_cue_tables(proc: Path, n_expr: int, n: int = 30) -> None:
    """The `frames`, `flame` and `aus` tables (one clip `c0` of `n` frames) that the cues come from."""
    from emotag_core.serve.media import JpegEncoder

    rng = np.random.default_rng(1)
    proc.mkdir(parents=True, exist_ok=True)
    common = {"fps": 25.0, "frame_size": [64, 64], "backend": "test", "backend_version": "0"}
    key = {"clip_id": ["c0"] * n, "frame": np.arange(n, dtype=np.int32)}
    jpeg = JpegEncoder()(np.full((64, 64, 3), 128, np.uint8))
    write_table(proc / "frames.parquet", "frames", {**key, "t": np.arange(n) / 25.0, "src_t": np.arange(n) / 25.0,
                "box": np.zeros((n, 4)), "det_conf": np.ones(n), "face_found": np.ones(n, bool), "jpeg": [jpeg] * n},
                {**common, "source": "test", "audio": "c0.wav", "face_index": 0})
    write_table(proc / "aus.parquet", "aus", {**key, "face_found": np.ones(n, bool),
                **{a: rng.uniform(0, 3, n).astype(np.float32) for a in OPENFACE_AUS}},
                {**common, "aus": list(OPENFACE_AUS), "available_aus": list(OPENFACE_AUS), "scale": "0-5"})
    write_table(proc / "flame.parquet", "flame", {**key, "valid": np.ones(n, bool), "expr": np.zeros((n, n_expr)),
                "jaw": np.zeros((n, 3)), "rot": rng.normal(size=(n, 3)) * 0.03,
                "trans": np.tile([0.0, 0.0, 0.55], (n, 1)), "fit_error_px": np.ones(n), "neck": np.zeros((n, 3))},
                {**common, "flame_model": "open", "n_expr": n_expr, "shape": [0.0] * 10,
                 "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}})
