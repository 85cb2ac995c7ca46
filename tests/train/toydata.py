"""Tiny synthetic identity tables (real schemas, real writers) and a toy differentiable scene.

Shared by the training tests and the kill-and-resume subprocess (`resume_run.py`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from emotag_core.io.frames import encode_jpeg
from emotag_core.io.tables import EMOTION_LABELS, OPENFACE_AUS, write_table

N_EXPR, AUDIO_DIM, ID_DIM, N_MOUTH, SIZE = 4, 8, 6, 3, 16


def _common(backend: str = "toy") -> dict:
    return {"fps": 25.0, "frame_size": [SIZE, SIZE], "backend": backend, "backend_version": "0"}


def write_identity(root: Path, ident: str, seed: int, clips: tuple[int, ...] = (30, 20), geometry: bool = False) -> dict[str, Path]:
    """Write frames/audio_features/aus/emotion/identity/flame (+geometry) tables for one identity."""
    rng = np.random.default_rng(seed)
    d = root / ident
    d.mkdir(parents=True, exist_ok=True)
    cid = [f"c{i}" for i, n in enumerate(clips) for _ in range(n)]
    fr = np.concatenate([np.arange(n) for n in clips]).astype(np.int32)
    n = len(fr)
    key = {"clip_id": cid, "frame": fr}
    jaw_open = np.abs(np.sin(np.arange(n) / 3.0)).astype(np.float32)
    imgs = [(np.clip(rng.normal(120, 30, (SIZE, SIZE, 3)) + 100 * j, 0, 255)).astype(np.uint8) for j in jaw_open]
    paths = {t: d / f"{t}.parquet" for t in ("frames", "audio_features", "aus", "emotion", "identity", "flame")}
    write_table(paths["frames"], "frames", {**key, "t": fr / 25.0, "src_t": fr / 25.0, "box": np.zeros((n, 4)),
                "det_conf": np.ones(n), "face_found": np.ones(n, bool), "jpeg": [encode_jpeg(i) for i in imgs]},
                {**_common(), "source": "toy", "audio": "toy.wav", "face_index": 0}, row_group_size=8)
    feat = rng.normal(size=(n, AUDIO_DIM)).astype(np.float32)
    feat[:, 0] = jaw_open
    write_table(paths["audio_features"], "audio_features", {**key, "feature": feat},
                {**_common(), "feature_dim": AUDIO_DIM, "sample_rate": 16000, "window": 16}, row_group_size=16)
    write_table(paths["aus"], "aus", {**key, "face_found": np.ones(n, bool),
                **{a: rng.uniform(0, 5, n).astype(np.float32) for a in OPENFACE_AUS}},
                {**_common(), "aus": list(OPENFACE_AUS), "available_aus": list(OPENFACE_AUS), "scale": "0-5"})
    p = rng.dirichlet(np.ones(7), n).astype(np.float32)
    write_table(paths["emotion"], "emotion", {**key, "face_found": np.ones(n, bool), "probs": p, "score": 1 - p[:, 6]},
                {**_common(), "labels": list(EMOTION_LABELS)})
    emb = rng.normal(size=(3, ID_DIM)).astype(np.float32)
    write_table(paths["identity"], "identity", {"clip_id": ["c0"] * 3, "frame": np.arange(3, dtype=np.int32),
                "neutral_p": np.ones(3, np.float32), "face_detected": np.ones(3, bool), "embedding": emb},
                {**_common(), "embedding_dim": ID_DIM, "identity_vector": emb.mean(0).tolist(), "top_k": 3})
    valid = np.ones(n, bool)
    valid[3] = False
    jaw = np.zeros((n, 3), np.float32)
    jaw[:, 0] = 0.2 * jaw_open
    write_table(paths["flame"], "flame", {**key, "valid": valid, "expr": rng.normal(size=(n, N_EXPR)) * 0.1,
                "jaw": jaw, "rot": np.zeros((n, 3)), "trans": np.tile([0, 0, 0.6], (n, 1)),
                "fit_error_px": np.ones(n)},
                {**_common(), "flame_model": "open", "n_expr": N_EXPR, "shape": [0.0] * 5,
                 "camera": {"fx": 20.0, "fy": 20.0, "cx": 8.0, "cy": 8.0}})
    if geometry:
        paths["geometry"] = d / "geometry.parquet"
        dm = np.full((n, 8, 8), 0.6, np.float16)
        dm[:, :2] = 0
        nm = np.zeros((n, 8, 8, 3), np.float16)
        nm[..., 2] = -1
        write_table(paths["geometry"], "geometry", {**key, "depth": [x.tobytes() for x in dm],
                    "normal": [x.tobytes() for x in nm]}, {**_common(), "map_size": 8})
    return paths


class ToyScene(nn.Module):
    """A differentiable stand-in for head model + Gaussians: image = sigmoid(appearance + motion @ basis)."""

    def __init__(self, seed: int, n_expr: int = N_EXPR, n_mouth: int = N_MOUTH, size: int = SIZE) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.n_mouth = n_mouth
        self.appearance = nn.Parameter(torch.zeros(1, 3, size, size))
        self.register_buffer("basis", torch.randn(n_expr + 3 + 10 * n_mouth, 3 * size * size, generator=g) * 0.3)

    def render(self, expr, jaw, rot, trans, mouth, size):
        b = expr.shape[0]
        m = mouth.reshape(b, -1) if mouth is not None else expr.new_zeros(b, 10 * self.n_mouth)
        x = (torch.cat([expr, jaw, m], 1) @ self.basis).reshape(b, 3, size, size)
        img = torch.sigmoid(self.appearance + x)
        depth = 0.5 + img.mean(1)
        normal = torch.nn.functional.normalize(img.permute(0, 2, 3, 1) - 0.5, dim=-1)
        return {"image": img, "colour": img, "alpha": torch.ones_like(img[:, :1]), "depth": depth, "normal": normal}
