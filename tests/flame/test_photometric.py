"""The tracker's photometric term (track.photo_weight): its Jacobian, its albedo, and that it
corrects landmark errors that change from frame to frame on a textured render with known truth."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig, TrackConfig
from emotag_core.flame import load_head_model
from emotag_core.flame.model import intrinsics
from emotag_core.flame.photometric import prepare_images
from emotag_core.flame.tracker import Tracker
from emotag_core.synth.render import render_textured

SIZE, T = 128, 6


@pytest.fixture(scope="module")
def scene():
    """A textured open head model rendered at known parameters (6 frames, 128 px)."""
    torch.set_num_threads(1)
    model = load_head_model(FlameConfig())
    g = torch.Generator().manual_seed(0)
    expr = 0.5 * torch.randn(T, model.n_expr, generator=g)
    jaw = torch.zeros(T, 3)
    jaw[:, 0] = torch.linspace(0.0, 0.15, T)
    rot = 0.04 * torch.randn(T, 3, generator=g)
    trans = torch.tensor([0.0, 0.0, 0.5]).repeat(T, 1) + 0.005 * torch.randn(T, 3, generator=g)
    shape = torch.zeros(1, model.n_shape)
    focal = 2.0 * SIZE
    with torch.no_grad():
        v = model(shape, expr, jaw, rot, trans)
        px = model.project(v, intrinsics(focal, SIZE).expand(T, -1, -1))
        lmk = model.project(model.landmarks(v), intrinsics(focal, SIZE).expand(T, -1, -1)).numpy()
    rng = np.random.default_rng(0)   # a blotchy texture: features everywhere on the face
    tex = rng.uniform(0, 255, (16, 16, 3))
    tex = np.kron(tex, np.ones((16, 16, 1))).astype(np.uint8)
    faces = model.faces.numpy()
    uv = np.c_[model.uv.numpy()[:, 0], 1 - model.uv.numpy()[:, 1]]
    uv_corner = uv[faces].astype(np.float32)
    bg = np.full((SIZE, SIZE, 3), 90, np.uint8)
    frames = np.stack([render_textured(np.c_[px[t].numpy(), v[t, :, 2].numpy()], faces, uv_corner, tex, bg)[0]
                       for t in range(T)])
    truth = {"expr": expr, "jaw": jaw, "rot": rot, "trans": trans}
    return model, frames, lmk, px.numpy(), truth


def _cfg(**kw) -> TrackConfig:
    return replace(TrackConfig(), identity_frames=T, fit_focal=False, focal_init=2.0, photo_size=SIZE,
                   photo_blur=1.0, **kw)


def test_prepare_images_luminance_and_size():
    crops = np.zeros((2, 64, 64, 3), np.uint8)
    crops[..., 1] = 255
    out = prepare_images(crops, 32, 0.0)
    assert out.shape == (2, 1, 32, 32)
    assert torch.allclose(out, torch.full_like(out, 0.587), atol=1e-5)
    with pytest.raises(Exception, match="crops"):
        prepare_images(crops[..., 0], 32, 0.0)


def test_photometric_jacobian_matches_finite_differences(scene):
    model, frames, lmk, _, truth = scene
    tr = Tracker(model, _cfg(photo_weight=1e4), SIZE)
    theta = tr._pack(truth["expr"], truth["jaw"], truth["rot"], truth["trans"])
    term = tr._image_term(frames)
    photo = tr._fit_albedo(theta, tr.phi, term)
    found = torch.ones(T)
    r, J, Jq = tr._photo_rows(theta, tr.phi, found, photo, 2)
    assert float(r.abs().max()) < 0.5 and (photo[2] > 0).float().mean() > 0.7   # albedo explains the frames
    E = model.n_expr
    for k, h in ((0, 1e-2), (E, 2e-3), (E + 3, 2e-3), (E + 6, 2e-4), (E + 8, 2e-4)):
        d = torch.zeros_like(theta)
        d[:, k] = h
        fd = (tr._photo_rows(theta + d, tr.phi, found, photo, 0)[0]
              - tr._photo_rows(theta - d, tr.phi, found, photo, 0)[0]) / (2 * h)
        c = torch.corrcoef(torch.stack([fd.flatten(), J[..., k].flatten()]))[0, 1]
        assert c > 0.9, (k, float(c))
    d = torch.zeros_like(tr.phi)
    d[0] = 1e-2
    fd = (tr._photo_rows(theta, tr.phi + d, found, photo, 0)[0] - tr._photo_rows(theta, tr.phi - d, found, photo, 0)[0]) / 2e-2
    assert torch.corrcoef(torch.stack([fd.flatten(), Jq[..., 0].flatten()]))[0, 1] > 0.9


def test_photometric_term_corrects_per_frame_landmark_errors(scene):
    """Landmarks jittered by a different rigid shift each frame: the albedo (a mean over frames)
    is right, so the image term pulls each frame back; a landmark-only fit follows the jitter."""
    model, frames, lmk, px, _ = scene
    rng = np.random.default_rng(1)
    shift = rng.normal(0, 2.5, (T, 1, 2))
    shift -= shift.mean(0)
    noisy = np.concatenate([lmk + shift, np.zeros((T, 478, 1))], -1).astype(np.float32)
    found = np.ones(T, bool)
    frame_ids = np.arange(T)
    images = lambda clip, fr: frames[np.asarray(fr)]  # noqa: E731
    errs = {}
    for w in (0.0, 3e4):
        tr = Tracker(model, _cfg(photo_weight=w), SIZE)
        tr.fit_identity([("c", frame_ids, noisy, found)], images)
        t = tr.track_clip("c", frame_ids, noisy, found, images=images)
        with torch.no_grad():
            v = model(tr.shape[None], *(torch.as_tensor(a) for a in (t.expr, t.jaw, t.rot, t.trans)))
            fit = model.project(v, intrinsics(tr.camera.focal, SIZE).expand(T, -1, -1)).numpy()
        errs[w] = float(np.linalg.norm(fit[:, :478] - px[:, :478], axis=-1).mean())
        assert (tr.albedo is not None) == (w > 0)
    assert errs[3e4] < 0.6 * errs[0.0], errs
