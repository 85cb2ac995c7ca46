"""Layers that follow the head pose (avatar.layer_motion): the warp convention, a known sway recovered from
the frames and predicted from the pose, and the scene compositing them per frame."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.avatar.layer_motion import (fit_layers, fit_motion, layer_theta, stabilised_layer, theta_of,
                                             warp_layers)

S = 96


def _texture(seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    t = rng.integers(0, 255, (S // 4, S // 4, 3)).astype(np.uint8)
    return cv2.resize(t, (S, S), interpolation=cv2.INTER_CUBIC)  # smooth texture ECC can lock onto


def _sway(n: int = 24, seed: int = 0):
    """A textured 'torso' block that shifts right by 20 px per unit of pose[:, 0] (and a hair block that
    shifts down with pose[:, 4]) over a flat grey background; labels 4 (torso) and 2 (hair)."""
    import cv2

    rng = np.random.default_rng(seed)
    pose = np.zeros((n, 6))
    pose[:, 0] = rng.uniform(-0.3, 0.3, n)
    pose[:, 4] = rng.uniform(-0.2, 0.2, n)
    tex_b, tex_h = _texture(1), _texture(2)
    frames, masks = [], []
    for p in pose:
        img = np.full((S, S, 3), 128, np.uint8)
        lab = np.zeros((S, S), np.uint8)
        for tex, (y0, y1, x0, x1), A, v in (
                (tex_b, (56, 90, 20, 76), np.array([[1, 0, 20 * p[0]], [0, 1, 0]]), 4),
                (tex_h, (8, 40, 30, 66), np.array([[1, 0, 0], [0, 1, 25 * p[4]]]), 2)):
            m = np.zeros((S, S), np.uint8)
            m[y0:y1, x0:x1] = 1
            wm = cv2.warpAffine(m, A, (S, S), flags=cv2.INTER_NEAREST) > 0
            wt = cv2.warpAffine(tex, A, (S, S), flags=cv2.INTER_LINEAR)
            img[wm], lab[wm] = wt[wm], v
        frames.append(img)
        masks.append(lab)
    return pose, frames, masks


class _Seq:
    def __init__(self, items: list[np.ndarray]) -> None:
        self.items = items

    def get(self, i: int) -> np.ndarray:
        return self.items[i]


def test_theta_matches_opencv_warp() -> None:
    import cv2

    img = _texture()
    A = np.array([[1.02, 0.03, 5.0], [-0.02, 0.98, -3.0]])  # layer px -> frame px
    want = cv2.warpAffine(img, A, (S, S), flags=cv2.INTER_LINEAR)  # frame(A x) = layer(x)
    lay = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    lay = torch.cat([lay, torch.ones_like(lay[:, :1])], 1)
    theta = torch.from_numpy(theta_of(A[None], S, S)).float()[None]  # [1, 1, 2, 3]
    got = warp_layers(torch.zeros(1, 3, S, S), lay, theta)[0].permute(1, 2, 0).numpy() * 255
    inner = (slice(10, S - 10), slice(10, S - 10))
    assert np.abs(got[inner] - want[inner]).mean() < 1.0


def test_fit_motion_recovers_a_linear_law_and_r2() -> None:
    rng = np.random.default_rng(0)
    pose = rng.normal(size=(50, 6))
    true = np.zeros((7, 6))
    true[6] = [1, 0, 0, 0, 1, 0]
    true[0, 2] = 0.3  # x shift follows rot[0]
    theta = (np.c_[pose, np.ones(50)] @ true).reshape(50, 2, 3)
    coef, r2 = fit_motion(pose, theta, ridge=1e-4)
    assert r2 > 0.999 and np.allclose(coef, true, atol=1e-3)
    noise = fit_motion(pose, np.tile(np.eye(2, 3), (50, 1, 1)) + rng.normal(0, 0.01, (50, 2, 3)), ridge=1.0)
    assert noise[1] < 0.2  # pose does not explain noise


def test_stabilised_layer_is_sharper_than_the_static_median() -> None:
    from emotag_core.avatar.plate import torso_layer

    pose, frames, masks = _sway()
    rows = list(range(len(frames)))
    rgba, warps, ok = stabilised_layer(_Seq(frames), _Seq(masks), rows, (4,), work_side=S)
    assert ok.all()
    shift = warps[:, 0, 2] - warps[len(rows) // 2, 0, 2]
    true = 20 * (pose[:, 0] - pose[len(rows) // 2, 0])
    assert np.abs(shift - true).max() < 1.0  # ECC finds the sway, px
    static = torso_layer(_Seq(frames), _Seq(masks), rows, labels=(4,))
    inner = (slice(62, 84), slice(32, 64))
    truth = frames[len(rows) // 2][inner].astype(float)  # the layer's frame is the middle row's
    err = [float(np.abs(x[inner][..., :3] - truth).mean()) for x in (rgba, static)]
    assert err[0] < 4.0 and err[0] < 0.3 * err[1], err  # the static median smears the swaying texture


def test_fit_layers_predicts_held_out_frames_from_pose() -> None:
    pose, frames, masks = _sway(30)
    train, held = list(range(20)), list(range(20, 30))
    layers, coef, info = fit_layers(_Seq(frames), _Seq(masks), train, pose[train], ridge=1e-3)
    assert layers.shape == (2, S, S, 4) and coef.shape == (2, 7, 6)
    assert min(info["pose_r2"]) > 0.9, info
    lay = torch.from_numpy(layers).permute(0, 3, 1, 2).float() / 255
    lay = torch.cat([lay[:, :3] * lay[:, 3:], lay[:, 3:]], 1)
    grey = torch.full((1, 3, S, S), 128 / 255)
    theta = layer_theta(torch.from_numpy(coef), torch.from_numpy(pose[held, :3]).float(),
                        torch.from_numpy(pose[held, 3:]).float())
    moved = warp_layers(grey, lay, theta).permute(0, 2, 3, 1).numpy() * 255
    still = warp_layers(grey, lay, theta[:1].expand(len(held), -1, -1, -1)).permute(0, 2, 3, 1).numpy() * 255
    gt = np.stack([frames[i] for i in held]).astype(np.float32)
    err_moved, err_still = np.abs(moved - gt).mean(), np.abs(still - gt).mean()
    assert err_moved < 0.5 * err_still, (err_moved, err_still)


def test_scene_moves_layers_with_the_pose_and_keeps_static_ones() -> None:
    from emotag_core.avatar.scene import IdentityScene

    class _Avatar(torch.nn.Module):
        n_mouth = 0

    sc = IdentityScene(torch.nn.Identity(), _Avatar(), torch.zeros(3), torch.eye(3), 64)
    plate = torch.zeros(3, 64, 64, dtype=torch.uint8)
    layer = torch.zeros(1, 4, 64, 64, dtype=torch.uint8)
    layer[0, 2, 24:40, 24:40], layer[0, 3, 24:40, 24:40] = 255, 255  # a blue square
    coef = torch.zeros(1, 7, 6)
    coef[0, 6] = torch.tensor([1.0, 0, 0, 0, 1, 0])
    coef[0, 3, 2] = -0.5  # theta's x offset = -0.5 trans_x: the square moves right by 16 px per unit
    sc.set_layers(plate, layer, coef)
    assert sc.moving_layers and "motion" in sc.state_dict()
    head = {"colour": torch.zeros(2, 3, 64, 64), "alpha": torch.zeros(2, 1, 64, 64)}
    rot, trans = torch.zeros(2, 3), torch.tensor([[0.0, 0, 0.6], [1.0, 0, 0.6]])
    img = sc.composite(head, 64, None, rot, trans)["image"]
    cx = [float((img[i, 2].sum(0) * torch.arange(64)).sum() / img[i, 2].sum()) for i in range(2)]
    assert abs(cx[0] - 31.5) < 0.5 and abs(cx[1] - cx[0] - 16) < 0.5
    mean = sc.composite(head, 64)["image"]  # no pose: the zero-pose warp
    assert torch.allclose(mean[0], img[0], atol=1e-6)
    with pytest.raises(Exception, match="motion"):
        sc.set_layers(plate, layer, torch.zeros(2, 7, 6))
    sc.set_layers(plate, layer[0])  # static: as before, the pose is ignored
    assert not sc.moving_layers
    a = sc.composite(head, 64, None, rot, trans)["image"]
    assert torch.equal(a[0], a[1])
