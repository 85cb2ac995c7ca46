"""VHAP importer on a fixture in VHAP's export layout (flame_param/*.npz + transforms.json)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("smplx", reason="smplx is not installed: its lbs() is the reference the VHAP import is checked against")
from smplx.lbs import lbs  # noqa: E402

from emotag_core.errors import ConfigError, InputError  # noqa: E402
from emotag_core.flame.model import FLAME_TO_CV, rodrigues  # noqa: E402
from emotag_core.flame.vhap import import_vhap  # noqa: E402


def _write_fixture(root, model, T=4, seed=0):
    rng = np.random.default_rng(seed)
    (root / "flame_param").mkdir(parents=True)
    shape = rng.normal(0, 0.5, 300).astype(np.float32)            # VHAP keeps 300; model reads its own
    # camera 0.8 m in front of the world origin, looking at it, slightly rotated (c2w, OpenGL axes)
    Rc = rodrigues(torch.tensor([[0.1, -0.2, 0.05]], dtype=torch.float64))[0].numpy()
    c2w = np.eye(4)
    c2w[:3, :3] = Rc
    c2w[:3, 3] = Rc @ np.array([0.0, 0.0, 0.8])
    frames, params = [], []
    for t in range(T):
        p = {"expr": rng.normal(0, 0.5, (1, model.n_expr)).astype(np.float32),
             "jaw_pose": np.array([[0.1 + 0.05 * t, 0.0, 0.0]], np.float32),
             "rotation": rng.normal(0, 0.2, (1, 3)).astype(np.float32),
             "neck_pose": rng.normal(0, 0.1, (1, 3)).astype(np.float32),
             "eyes_pose": np.zeros((1, 6), np.float32),
             "translation": rng.normal(0, 0.02, (1, 3)).astype(np.float32),
             "shape": shape, "static_offset": np.zeros((1, 5023, 3), np.float32)}
        np.savez(root / "flame_param" / f"{t:05d}.npz", **p)
        params.append(p)
        frames.append({"timestep_index": t, "camera_index": 0, "transform_matrix": c2w.tolist(),
                       "file_path": f"images/{t:05d}_00.png", "flame_param_path": f"flame_param/{t:05d}.npz"})
    (root / "transforms.json").write_text(json.dumps(
        {"fl_x": 1100.0, "fl_y": 1100.0, "cx": 256.0, "cy": 256.0, "w": 512, "h": 512, "frames": frames}))
    return params, c2w


def _vhap_camera_verts(m, p, w2c):
    """What VHAP renders for one frame's params `p`: FLAME LBS (global about the root, neck about the neck
    joint) + translation, in OpenCV camera space. Returns (shape [1, S], expr [1, E], verts [1, V, 3])."""
    shape = torch.as_tensor(p["shape"][: m.n_shape])[None]
    expr = torch.as_tensor(p["expr"])
    full = torch.cat([torch.as_tensor(p["rotation"]), torch.as_tensor(p["neck_pose"]),
                      torch.as_tensor(p["jaw_pose"]), torch.zeros(1, 6)], 1)
    world, _ = lbs(torch.cat([shape, expr], 1), full, m.v_template[None],
                   torch.cat([m.shapedirs, m.exprdirs], -1), m.posedirs, m.J_regressor, m.parents, m.weights)
    world = world + torch.as_tensor(p["translation"])[:, None]
    return shape, expr, (world @ w2c[:3, :3].T + w2c[:3, 3]) @ FLAME_TO_CV.T


def test_vhap_import_reproduces_vhap_geometry(open_model, tmp_path):
    m = open_model
    params, c2w = _write_fixture(tmp_path / "vhap", m)
    imp = import_vhap(tmp_path / "vhap", m)
    assert imp.camera == {"fx": 1100.0, "fy": 1100.0, "cx": 256.0, "cy": 256.0, "width": 512, "height": 512}
    assert list(imp.track.frame) == [0, 1, 2, 3] and imp.track.valid.all()
    w2c = torch.as_tensor(np.linalg.inv(c2w), dtype=torch.float32)
    for t, p in enumerate(params):
        shape, expr, want = _vhap_camera_verts(m, p, w2c)
        got = m(shape, expr, torch.as_tensor(imp.track.jaw[t:t + 1]), torch.as_tensor(imp.track.rot[t:t + 1]),
                torch.as_tensor(imp.track.trans[t:t + 1]))
        face = m.weights[:, 1] + m.weights[:, 2] > 0.999              # vertices that follow the neck rigidly
        assert torch.allclose(got[0, face], want[0, face], atol=2e-5)


def test_vhap_import_errors(open_model, tmp_path):
    with pytest.raises(InputError, match="transforms.json"):
        import_vhap(tmp_path, open_model)
    _write_fixture(tmp_path / "v", open_model)
    d = dict(np.load(tmp_path / "v" / "flame_param" / "00002.npz"))
    d["expr"] = np.zeros((1, 100), np.float32)
    np.savez(tmp_path / "v" / "flame_param" / "00002.npz", **d)
    with pytest.raises(ConfigError, match="100.*19|19.*100"):
        import_vhap(tmp_path / "v", open_model)


def test_vhap_neck_keeps_the_body_on_the_ict_model(tmp_path):
    """With the imported `neck`, every vertex (the base of the neck too) matches VHAP's FLAME LBS."""
    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    m = load_head_model(FlameConfig(model="ict"))
    params, c2w = _write_fixture(tmp_path / "vhap", m)
    imp = import_vhap(tmp_path / "vhap", m)
    w2c = torch.as_tensor(np.linalg.inv(c2w), dtype=torch.float32)
    base = m.weights[:, 0] > 0.5
    assert base.sum() > 50
    for t, p in enumerate(params):
        shape, expr, want = _vhap_camera_verts(m, p, w2c)
        tk = imp.track
        got = m(shape, expr, torch.as_tensor(tk.jaw[t:t + 1]), torch.as_tensor(tk.rot[t:t + 1]),
                torch.as_tensor(tk.trans[t:t + 1]), neck=torch.as_tensor(tk.neck[t:t + 1]))
        assert float((got[0] - want[0]).norm(dim=-1).max()) < 2e-4                  # float32 rounding
        rigid = m(shape, expr, torch.as_tensor(tk.jaw[t:t + 1]), torch.as_tensor(tk.rot[t:t + 1]),
                  torch.as_tensor(tk.trans[t:t + 1]))
        assert float((rigid[0, base] - want[0, base]).norm(dim=-1).mean()) > 1e-3   # the neck matters there
