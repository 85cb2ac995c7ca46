"""Tracker: recovers known parameters from projected landmarks; gaps and divergence."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.config import TrackConfig
from emotag_core.errors import DivergenceError
from emotag_core.flame import intrinsics
from emotag_core.flame.tracker import Tracker

from .conftest import synthetic_track

CFG = TrackConfig(iters=120, identity_frames=16, chunk=64)


@pytest.fixture(scope="module")
def fitted(open_model):
    T = 40
    syn = synthetic_track(open_model, T, seed=3)
    found = np.ones(T, bool)
    found[20:24] = False
    lmk = syn["lmk"].copy()
    lmk[20:24] = 0.0                                   # garbage where there is no face
    tr = Tracker(open_model, CFG, syn["size"])
    tr.fit_identity([("c0", np.arange(T), lmk, found)])
    res = tr.track_clip("c0", np.arange(T), lmk, found)
    return syn, found, tr, res


def test_recovers_known_parameters(open_model, fitted):
    syn, found, tr, res = fitted
    T = len(found)
    with torch.no_grad():
        v = open_model(tr.shape[None], torch.as_tensor(res.expr), torch.as_tensor(res.jaw),
                       torch.as_tensor(res.rot), torch.as_tensor(res.trans))
        uv = open_model.project(v, intrinsics(tr.camera.focal, syn["size"], T))
    err = (uv - syn["verts_px"]).norm(dim=-1).mean(-1).numpy()          # mean 2-D vertex error per frame
    assert err[found].mean() < 1.5
    jaw_err = np.degrees(np.abs(res.jaw[:, 0] - syn["truth"]["jaw"][:, 0].numpy()))
    assert jaw_err[found].mean() < 3.0                                  # issue 4 target: <= 3 deg
    rot_err = np.degrees(np.abs(res.rot - syn["truth"]["rot"].numpy()))
    assert rot_err[found].mean() < 4.0
    assert res.fit_error_px[found].mean() < 1.5


def test_gap_frames_interpolated_not_fitted(fitted):
    syn, found, tr, res = fitted
    assert not res.valid[20:24].any() and res.valid[found].all()
    assert (res.fit_error_px[~found] == -1).all()
    # interpolated between the neighbours, not fitted to the zeroed landmarks
    for k in ("jaw", "rot", "trans"):
        a, b = getattr(res, k)[19], getattr(res, k)[24]
        mid = getattr(res, k)[21]
        lo, hi = np.minimum(a, b) - 1e-6, np.maximum(a, b) + 1e-6
        assert ((mid >= lo) & (mid <= hi)).all()
    with torch.no_grad():   # the interpolated pose still lands near the true face (smooth motion)
        v = tr.model(tr.shape[None], torch.as_tensor(res.expr[20:24]), torch.as_tensor(res.jaw[20:24]),
                     torch.as_tensor(res.rot[20:24]), torch.as_tensor(res.trans[20:24]))
        uv = tr.model.project(v, intrinsics(tr.camera.focal, syn["size"], 4))
    assert (uv - syn["verts_px"][20:24]).norm(dim=-1).mean() < 6.0


def test_divergence_names_clip_and_frame(open_model):
    T = 8
    syn = synthetic_track(open_model, T, seed=1)
    lmk = syn["lmk"].copy()
    lmk[5, 100] = np.nan
    tr = Tracker(open_model, TrackConfig(iters=5, identity_frames=4), syn["size"])
    with pytest.raises(DivergenceError, match=r"clip c7: frame 5"):
        tr.track_clip("c7", np.arange(T), lmk, np.ones(T, bool))
