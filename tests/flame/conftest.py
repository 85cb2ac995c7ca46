"""Fixtures: the open model, a tiny FLAME file in the real pickle layout, synthetic landmark tracks."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.flame import HeadModel, intrinsics, load_head_model, load_open_model_data


@pytest.fixture(scope="session", autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def open_model() -> HeadModel:
    return load_head_model(FlameConfig(model="open"))


def write_flame_fixture(folder: Path, name: str = "generic_model.pkl", n_expr_file: int = 100, seed: int = 0) -> Path:
    """A small head in FLAME's pickle layout (300 shape + n_expr_file expression columns) plus
    FLAME's MediaPipe embedding file; geometry borrowed from the open model, bases random."""
    rng = np.random.default_rng(seed)
    d = load_open_model_data()
    V = len(d.v_template)
    shapedirs = rng.normal(0, 1e-3, (V, 3, 300 + n_expr_file)).astype(np.float64)
    posedirs = rng.normal(0, 1e-4, (V, 3, 36))
    data = {
        "v_template": d.v_template.astype(np.float64), "f": d.faces.astype(np.uint32),
        "shapedirs": shapedirs, "posedirs": posedirs, "J_regressor": d.J_regressor.astype(np.float64),
        "weights": d.weights.astype(np.float64), "kintree_table": np.array([[4294967295, 0, 1, 1, 1], [0, 1, 2, 3, 4]]),
        "bs_style": "lbs", "bs_type": "lrotmin",
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    # embedding: a subset of MediaPipe points, each on a face that contains its vertex
    mp_ids = np.union1d(np.arange(0, 468, 4), [13, 14, 78, 308])  # FLAME's embedding covers the lips
    faces = d.faces
    face_idx = np.array([int(np.nonzero((faces == i).any(1))[0][0]) for i in mp_ids])
    bary = np.array([(faces[f] == i).astype(np.float64) for f, i in zip(face_idx, mp_ids)])
    np.savez(folder / "mediapipe_landmark_embedding.npz", lmk_face_idx=face_idx, lmk_b_coords=bary,
             landmark_indices=mp_ids)
    return path


@pytest.fixture(scope="session")
def flame_file(tmp_path_factory) -> Path:
    return write_flame_fixture(tmp_path_factory.mktemp("flame"))


def synthetic_track(model: HeadModel, T: int, size: int = 512, focal: float = 1.7 * 512, noise: float = 0.3,
                    seed: int = 0) -> dict:
    """Known parameters and their projected (noisy) landmarks."""
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, T)[:, None]
    truth = {
        "shape": torch.randn(1, model.n_shape, generator=g) * 0.6,
        "expr": (torch.sin(5 * t + torch.rand(1, model.n_expr, generator=g) * 6) * 0.7).clamp_min(-0.3),
        "jaw": torch.cat([(0.15 * (1 + torch.sin(12 * t))).clamp(0, 0.3), torch.zeros(T, 2)], 1),
        "rot": torch.cat([0.15 * torch.sin(3 * t), 0.25 * torch.sin(2 * t), 0.05 * torch.cos(4 * t)], 1),
        "trans": torch.cat([0.01 * torch.sin(t), 0.004 + 0 * t, 0.55 + 0.03 * torch.sin(2 * t)], 1),
    }
    K = intrinsics(focal, size, T)
    with torch.no_grad():
        v = model(truth["shape"], truth["expr"], truth["jaw"], truth["rot"], truth["trans"])
        uv_v = model.project(v, K)
        lm = model.landmarks(v)
        uv = model.project(lm, K) + torch.randn(T, 478, 2, generator=g) * noise
    lmk = torch.cat([uv, lm[..., 2:]], -1).numpy()
    return {"truth": truth, "lmk": lmk, "verts_px": uv_v, "focal": focal, "size": size}
