"""The tracker's landmark function: same landmarks as the head model, analytic Jacobians = autograd."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig, TrackConfig
from emotag_core.flame import intrinsics, load_head_model
from emotag_core.flame.model import rodrigues
from emotag_core.flame.tracker import Tracker, _block_tridiag_solve, _rodrigues_d


def _params(tr: Tracker, T: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    theta = torch.randn(T, tr.fn.P, generator=g, dtype=torch.float64) * 0.2
    theta[:, -1] = 0.6
    theta[0, tr.fn.E:tr.fn.E + 6] = 0.0            # jaw and head rotation exactly at zero (special case)
    phi = torch.randn(tr.fn.Q, generator=g, dtype=torch.float64) * 0.5
    phi[-1] = np.log(1.8 * 512)
    return theta, phi


@pytest.mark.parametrize("variant", ["open", "flame2020", "ict"])
def test_landmarks_match_head_model_and_jacobians_match_autograd(variant, request):
    if variant in ("open", "ict"):
        cfg = FlameConfig(model=variant)
    else:   # the small FLAME-layout fixture: a subset of landmarks embedded, FLAME's joint layout
        cfg = FlameConfig(model="flame2020", path=str(request.getfixturevalue("flame_file")), n_expr=50, n_shape=20)
    model = load_head_model(cfg).double()                # own copy: the shared fixture stays float32
    tr = Tracker(model, TrackConfig(), 512)
    T = 3
    theta, phi = _params(tr, T, seed=0)
    E, S = tr.fn.E, tr.fn.S
    uv, Jt, Jp = tr.fn(theta, phi, jacobian=True, shared=True)
    verts = model(phi[None, :S].expand(T, -1), theta[:, :E], theta[:, E:E + 3], theta[:, E + 3:E + 6],
                  theta[:, E + 6:])
    ref = model.project(model.landmarks(verts), intrinsics(phi[-1].exp(), 512, T).double())[:, tr.lmk_ids]
    assert (uv - ref).abs().max() < 1e-4
    for t in range(T):
        Jt_ad, Jp_ad = torch.autograd.functional.jacobian(lambda th, ph: tr.fn(th[None], ph)[0][0],
                                                          (theta[t], phi))
        assert torch.allclose(Jt[t], Jt_ad, rtol=1e-7, atol=1e-6)
        assert torch.allclose(Jp[t], Jp_ad, rtol=1e-7, atol=1e-6)


def test_rodrigues_derivative():
    aa = torch.tensor([[0.0, 0.0, 0.0], [1e-4, 2e-4, -1e-4], [0.3, -0.2, 0.1], [2.5, 0.3, -1.0]], dtype=torch.float64)
    R, dR = _rodrigues_d(aa)
    ref = torch.func.vmap(torch.func.jacfwd(rodrigues))(aa).permute(0, 3, 1, 2)
    assert torch.allclose(R, rodrigues(aa)) and torch.allclose(dR, ref, atol=1e-9)


def test_block_tridiagonal_solve_matches_dense():
    g = torch.Generator().manual_seed(1)
    T, P = 6, 4
    X = torch.randn(T, P, P, generator=g, dtype=torch.float64)
    A = X @ X.transpose(1, 2) + 3 * torch.eye(P, dtype=torch.float64)
    c = torch.rand(P, generator=g, dtype=torch.float64)
    b = torch.randn(T, P, generator=g, dtype=torch.float64)
    dense = torch.zeros(T * P, T * P, dtype=torch.float64)
    for t in range(T):
        dense[t * P:(t + 1) * P, t * P:(t + 1) * P] = A[t]
        if t + 1 < T:
            dense[t * P:(t + 1) * P, (t + 1) * P:(t + 2) * P] = -torch.diag(c)
            dense[(t + 1) * P:(t + 2) * P, t * P:(t + 1) * P] = -torch.diag(c)
    x = _block_tridiag_solve(A, c, b)
    assert torch.allclose(x.reshape(-1), torch.linalg.solve(dense, b.reshape(-1)), atol=1e-10)
