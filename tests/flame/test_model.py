"""Head model: FLAME loader on a generated pickle, variant/dimension checks, the open model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.flame import load_head_model


def test_flame_loader_matches_smplx(flame_file):
    import smplx  # noqa: F401
    from emotag_core.flame.model import FLAME_TO_CV

    cfg = FlameConfig(model="flame2020", path=str(flame_file), n_expr=50, n_shape=20, augment_mouth=False)
    m = load_head_model(cfg)
    assert (m.n_expr, m.n_shape) == (50, 20)
    g = torch.Generator().manual_seed(1)
    shape, expr = torch.randn(2, 20, generator=g), torch.randn(2, 50, generator=g)
    jaw = torch.tensor([[0.2, 0.0, 0.0], [0.1, 0.05, 0.0]])
    ours = m(shape, expr, jaw, torch.zeros(2, 3), torch.zeros(2, 3))
    # reference: smplx.lbs with the file's arrays (global and neck at rest)
    from smplx.lbs import lbs
    full = torch.cat([torch.zeros(2, 6), jaw, torch.zeros(2, 6)], 1)
    ref, _ = lbs(torch.cat([shape, expr], 1), full, m.v_template[None].expand(2, -1, -1),
                 torch.cat([m.shapedirs, m.exprdirs], -1), m.posedirs, m.J_regressor, m.parents, m.weights)
    assert torch.allclose(ours, ref @ FLAME_TO_CV.T, atol=1e-5)
    assert m.landmark_mask.sum() == len(np.union1d(np.arange(0, 468, 4), [13, 14, 78, 308]))


def test_flame_variant_and_dimension_errors(flame_file, tmp_path):
    with pytest.raises(ConfigError, match="flame2023.*flame2020|flame2020.*flame2023"):
        load_head_model(FlameConfig(model="flame2023", path=str(flame_file), n_expr=50))
    with pytest.raises(ConfigError, match="150.*100"):
        load_head_model(FlameConfig(model="flame2020", path=str(flame_file), n_expr=150))
    with pytest.raises(ConfigError, match="explicit"):
        load_head_model(FlameConfig(model="flame2020", path=str(flame_file), n_expr=None))
    with pytest.raises(ConfigError, match="19|own"):
        load_head_model(FlameConfig(model="open", n_expr=50))
    missing = tmp_path / "nope" / "generic_model.pkl"
    with pytest.raises(InputError, match="flame.is.tue.mpg.de") as ei:
        load_head_model(FlameConfig(model="flame2020", path=str(missing), n_expr=50))
    assert str(missing) in str(ei.value)
    bad = tmp_path / "generic_model.pkl"
    bad.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match=str(bad)):
        load_head_model(FlameConfig(model="flame2020", path=str(bad), n_expr=50))


def test_flame_augmented_mouth(flame_file):
    m = load_head_model(FlameConfig(model="flame2020", path=str(flame_file), n_expr=50, n_shape=10))
    assert m.augmented and len(m.mouth_vertex_ids) > 0 and m.faces.shape[0] > m.n_face_faces


def _lip_gap(m, jaw_open: float) -> float:
    z = m.zeros(1)
    z["jaw"][0, 0] = jaw_open
    lm = m.landmarks(m(**z))
    return float(lm[0, 14, 1] - lm[0, 13, 1])   # camera y points down: lower lip below upper


def test_open_model_contract_and_jaw(open_model):
    m = open_model
    assert m.faces.dtype == torch.long and m.faces.max() < m.n_verts
    assert m.uv is not None and m.uv.shape == (m.n_verts, 2)
    assert m.n_expr == len(m.expr_names) and "AU26" not in m.expr_names   # jaw drop is the jaw joint's job
    assert _lip_gap(m, 0.3) > _lip_gap(m, 0.0) + 0.01                     # opens > 1 cm
    z = m.zeros(1)
    v0 = m(**z)
    z["jaw"][0, 0] = 0.3
    v1 = m(**z)
    moved = (v1 - v0).norm(dim=-1)[0]
    lower = m.lower_teeth_vertex_ids
    upper = m.teeth_vertex_ids[~torch.isin(m.teeth_vertex_ids, lower)]
    assert moved[upper].max() < 1e-6 and moved[lower].min() > 1e-3     # upper teeth on the head, lower on the jaw
    assert moved[10] < 1e-6                                            # forehead (landmark 10) stays


def test_open_model_expression_orthogonal_to_jaw(open_model):
    m = open_model
    z = m.zeros(1)
    z["trans"][:] = 0
    eps = 1e-3
    base = m(**z)[0]
    z["jaw"][0, 0] = eps
    jaw_field = ((m(**z)[0] - base) / eps)[: 478].reshape(-1)          # skin + iris vertices
    E = m.exprdirs[:478].reshape(-1, m.n_expr)
    cos = (E.T @ jaw_field) / (E.norm(dim=0) * jaw_field.norm())
    assert cos.abs().max() < 0.02
    # and expression bases really move the face (not degenerate)
    assert (E.norm(dim=0) > 1e-3).all()


def test_project_helper(open_model):
    from emotag_core.flame import intrinsics
    pts = torch.tensor([[[0.0, 0.0, 1.0], [0.1, -0.05, 0.5]]])
    uv = open_model.project(pts, intrinsics(1000.0, 512))
    assert torch.allclose(uv, torch.tensor([[[256.0, 256.0], [456.0, 156.0]]]))
