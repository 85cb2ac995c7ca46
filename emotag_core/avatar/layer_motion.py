"""Layers that follow the person (issue 18): hair moves with the head, neck and torso with the body.

Under a fixed crop the background stays put, but the person does not: a static median of the hair and torso
(`avatar.plate.torso_layer`) is blurred by the sway and ghosts at every edge while the head turns. Here each
layer (a set of mask labels) gets, from the adaptation rows only:

- per row, a 2-D affine warp A_r from the layer's own frame to the video frame, by OpenCV's ECC on the masked
  grey image (`cv2.findTransformECC`), in two passes (to the middle row, then to the first pass's layer);
- the layer: the masked median of the rows warped back by A_r^-1 (`stabilised_layer`), sharper than the
  static median;
- its motion: a ridge regression of the warp (as `affine_grid`'s theta, normalised coordinates) on the tracked
  head pose [rot, trans] (`fit_motion`), so a render driven by any pose moves the layer (`layer_theta`,
  `warp_layers`). Poorly predicted motion falls back towards the adaptation's mean warp.

Peers (ER-NeRF, TalkingGaussian, InsTaG) condition a torso network on the head pose; this is the 2-D, closed-form
version of that idea, fitted in seconds.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

N_POSE = 6  # pose features: rot (axis-angle, 3) + trans (3)
BODY_LABELS = (3, 4)  # neck, torso (emotag_core.teachers.segmentation.LABELS)
HAIR_LABELS = (2,)


class _Frames(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W, 3] uint8 RGB


class _Masks(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W] uint8 labels


@dataclass
class LayerFit:
    """One moving layer fitted on the adaptation rows."""

    rgba: np.ndarray  # [H, W, 4] uint8, in the layer's own (reference) frame
    warps: np.ndarray  # [N, 2, 3] float64: layer pixel -> frame pixel, per adaptation row
    coef: np.ndarray  # [N_POSE + 1, 6] float32: [rot, trans, 1] -> theta (2x3, row-major)
    r2: float  # fraction of the warps' variance (theta) the pose explains on the adaptation rows
    ecc_failed: int  # rows where ECC did not converge (left out of the layer and the fit)


def _grey(img: np.ndarray, side: int) -> np.ndarray:
    import cv2

    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    return cv2.resize(g, (side, side), interpolation=cv2.INTER_AREA) if g.shape[0] != side else g


def _ecc(template: np.ndarray, mask: np.ndarray, image: np.ndarray, init: np.ndarray, iters: int,
         levels: int = 3) -> tuple[np.ndarray, bool, float]:
    """2x3 rigid warp A (rotation + translation, template pixel -> image pixel) maximising ECC over `mask`;
    (init, False, -1) on failure; else (A, True, the correlation coefficient ECC reached).

    Coarse to fine: translation at 1/2^(levels-1) of the side, then rotation + translation at each finer level
    (a wider basin than one level: a sway of tens of pixels). Rigid, not affine: a masked affine fit drifts in
    scale and shear where the layer's edge meets a flat background."""
    import cv2

    warp, cc = init.astype(np.float64).copy(), -1.0
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iters, 1e-5)
    side = template.shape[0]
    for lev in range(levels - 1, -1, -1):
        f = 2 ** lev
        n = side // f
        if n < 40 and lev > 0:  # too coarse for ECC's own smoothing
            continue
        down = lambda x, interp=cv2.INTER_AREA: cv2.resize(x, (n, n), interpolation=interp)  # noqa: E731
        m = down(mask.astype(np.uint8), cv2.INTER_NEAREST)
        if not m.any():
            continue
        w = _scale_warp(warp, 1.0 / f).astype(np.float32)
        motion = cv2.MOTION_TRANSLATION if lev == levels - 1 and levels > 1 else cv2.MOTION_EUCLIDEAN
        try:
            cc, w = cv2.findTransformECC(down(template), down(image), w, motion, crit, m, 5)
        except cv2.error:
            if lev == 0:
                return init, False, -1.0
            continue  # a coarse level that does not converge: the finer ones start from the last warp
        warp = _scale_warp(w.astype(np.float64), float(f))
    if not np.isfinite(warp).all() or np.abs(warp[:, :2] - np.eye(2)).max() > 0.5:  # a run-away fit
        return init, False, -1.0
    return warp, True, float(cc)


def _scale_warp(A: np.ndarray, s: float) -> np.ndarray:
    """A warp in pixels of a side-s0 image -> the same warp for an image s times larger (pixel centres)."""
    S = np.array([[s, 0, 0.5 * (s - 1)], [0, s, 0.5 * (s - 1)], [0, 0, 1.0]])
    return (S @ np.vstack([A, [0, 0, 1]]) @ np.linalg.inv(S))[:2]


def stabilised_layer(frames: _Frames, masks: _Masks, rows: Sequence[int], labels: Sequence[int],
                     work_side: int = 256, passes: int = 2, iters: int = 60, feather_px: int = 2
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(rgba [H, W, 4] uint8 in the layer's frame, warps [N, 2, 3] layer px -> frame px, aligned [N] bool).

    Pass 1 aligns every row to the middle row's masked image, pass 2 to pass 1's layer. The colour is the
    masked median of the rows warped into the layer's frame; alpha the fraction of rows labelled so there,
    feathered by `feather_px` (as `plate.torso_layer`)."""
    import cv2

    from emotag_core.avatar.plate import _masked_median  # layer_motion builds on plate, never the reverse

    rows = [int(r) for r in rows]
    if not rows:
        raise ValueError("stabilised_layer needs at least one adaptation row")
    imgs = [frames.get(r) for r in rows]
    labs = [np.isin(masks.get(r), labels) for r in rows]
    H, W = imgs[0].shape[:2]
    s = H / work_side
    grey = [_grey(x, work_side) for x in imgs]
    small = [cv2.resize(m.astype(np.uint8), (work_side, work_side), interpolation=cv2.INTER_NEAREST) for m in labs]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (7, 7))
    mid = len(rows) // 2
    tmpl, tmask = grey[mid], cv2.dilate(small[mid], kernel)
    warps = np.tile(np.eye(2, 3), (len(rows), 1, 1))
    ok = np.ones(len(rows), bool)
    for p in range(max(1, passes)):
        prev = np.eye(2, 3)
        order = list(range(mid, len(rows))) + list(range(mid - 1, -1, -1))  # walk out from the middle
        for i in order:
            if i == mid - 1:  # the second walk starts again from the middle row
                prev = warps[mid]
            inits = [warps[i]] if p else [prev, np.eye(2, 3)]  # the neighbour's warp, or none
            best = max((_ecc(tmpl, tmask, grey[i], x, iters) for x in inits), key=lambda r: r[2]) \
                if tmask.any() else (inits[0], False, -1.0)
            warps[i], ok[i] = best[0], best[1]
            prev = warps[i]
        full = np.stack([_scale_warp(A, s) for A in warps])
        stack = np.stack([cv2.warpAffine(x, A, (W, H), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                         borderMode=cv2.BORDER_REPLICATE) for x, A in zip(imgs, full)])
        valid = np.stack([cv2.warpAffine(m.astype(np.uint8), A, (W, H), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                         borderValue=0) > 0 for m, A in zip(labs, full)])
        valid &= ok[:, None, None] if ok.any() else True  # rows whose alignment failed do not vote
        med, count = _masked_median(stack, valid)
        if p + 1 < passes:  # the next pass aligns to this layer
            seen = (count > ok.sum() // 2).astype(np.uint8)
            tmpl = _grey(np.clip(med, 0, 255).astype(np.uint8), work_side)
            tmask = cv2.resize(seen, (work_side, work_side), interpolation=cv2.INTER_NEAREST)
    alpha = count.astype(np.float32) / max(1, int(ok.sum()))
    if feather_px > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather_px) * (count > 0)
    rgba = np.concatenate([np.clip(np.round(med), 0, 255).astype(np.uint8),
                           np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)[..., None]], -1)
    return rgba, full, ok


def theta_of(A: np.ndarray, H: int, W: int) -> np.ndarray:
    """Warps A [N, 2, 3] (layer px -> frame px) -> affine_grid thetas [N, 2, 3] (frame -> layer, normalised,
    align_corners=False)."""
    Nm = np.array([[2.0 / W, 0, 1.0 / W - 1], [0, 2.0 / H, 1.0 / H - 1], [0, 0, 1.0]])
    A3 = np.concatenate([A, np.tile([[[0.0, 0.0, 1.0]]], (len(A), 1, 1))], 1)
    return (Nm @ np.linalg.inv(A3) @ np.linalg.inv(Nm))[:, :2]


def fit_motion(pose: np.ndarray, theta: np.ndarray, ridge: float = 1.0) -> tuple[np.ndarray, float]:
    """pose [N, 6] (rot, trans), theta [N, 2, 3] -> (coef [7, 6] float32: [rot, trans, 1] -> theta, R^2).

    Ridge on standardised pose (lambda = ridge * N), then folded back to raw units; R^2 of the fit on the rows."""
    X = np.asarray(pose, np.float64).reshape(len(pose), N_POSE)
    Y = np.asarray(theta, np.float64).reshape(len(theta), 6)
    mu, sd = X.mean(0), X.std(0) + 1e-8
    Z = (X - mu) / sd
    ym = Y.mean(0)
    Wz = np.linalg.solve(Z.T @ Z + ridge * len(Z) * np.eye(N_POSE), Z.T @ (Y - ym))  # [6, 6]
    pred = Z @ Wz + ym
    var = ((Y - ym) ** 2).sum()
    r2 = float(1.0 - ((Y - pred) ** 2).sum() / var) if var > 1e-12 else 0.0
    W_raw = Wz / sd[:, None]
    bias = ym - mu @ W_raw
    return np.concatenate([W_raw, bias[None]], 0).astype(np.float32), r2


def fit_layer(frames: _Frames, masks: _Masks, rows: Sequence[int], pose: np.ndarray, labels: Sequence[int],
              ridge: float = 1.0) -> LayerFit:
    """One moving layer from the adaptation `rows` and their tracked pose [N, 6]."""
    rgba, warps, ok = stabilised_layer(frames, masks, rows, labels)
    H, W = rgba.shape[:2]
    use = ok if ok.sum() >= 2 else np.ones_like(ok)  # the fit leaves out rows ECC could not align
    coef, r2 = fit_motion(np.asarray(pose)[use], theta_of(warps[use], H, W), ridge)
    return LayerFit(rgba, warps, coef, r2, int((~ok).sum()))


def layer_theta(coef: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
    """coef [L, 7, 6], rot/trans [B, 3] -> theta [B, L, 2, 3] (affine_grid's, frame -> layer)."""
    phi = torch.cat([rot, trans, torch.ones_like(rot[:, :1])], -1).to(coef.dtype)  # [B, 7]
    return torch.einsum("bf,lfk->blk", phi, coef).reshape(rot.shape[0], coef.shape[0], 2, 3)


def warp_layers(base: Tensor, layers: Tensor, theta: Tensor) -> Tensor:
    """Composite moving layers over `base`: base [1|B, 3, S, S], layers [L, 4, S, S] (premultiplied RGB +
    alpha, in [0, 1], drawn first to last), theta [B, L, 2, 3] -> [B, 3, S, S]."""
    import torch.nn.functional as F

    B, L = theta.shape[:2]
    S = layers.shape[-1]
    img = base.expand(B, -1, -1, -1)
    for k in range(L):
        grid = F.affine_grid(theta[:, k], [B, 4, S, S], align_corners=False)
        w = F.grid_sample(layers[k:k + 1].expand(B, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros",
                          align_corners=False)
        img = w[:, :3] + img * (1.0 - w[:, 3:])
    return img


def fit_layers(frames: _Frames, masks: _Masks, rows: Sequence[int], pose: np.ndarray, ridge: float = 1.0
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Body (neck + torso) then hair: (layers [2, H, W, 4] uint8, coef [2, 7, 6] float32, summary)."""
    fits = [fit_layer(frames, masks, rows, pose, lab, ridge) for lab in (BODY_LABELS, HAIR_LABELS)]
    span = [float(np.abs(f.warps[:, :, 2] - f.warps[:, :, 2].mean(0)).max()) for f in fits]
    info = {"layers": ["neck+torso", "hair"], "pose_r2": [round(f.r2, 3) for f in fits],
            "max_shift_px": [round(x, 1) for x in span], "ecc_failed": [f.ecc_failed for f in fits]}
    return np.stack([f.rgba for f in fits]), np.stack([f.coef for f in fits]), info


def scene_layers(frames_path: str | Path, masks_path: str | Path, rows: Sequence[int], max_frames: int = 64,
                 pose: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    """The background plate [H, W, 3] and the layers around the head (uint8) of one clip from its adaptation
    `rows` only (frame-store rows), their motion, and a summary (rows used, fraction of the plate never seen, ...).

    pose None: one static torso layer [1, H, W, 4] (hair, neck, torso) and motion None; pose [N, 6] (the rows'
    tracked rot, trans): a neck+torso and a hair layer [2, H, W, 4] that follow the head pose, motion [2, 7, 6]
    (`fit_layers`)."""
    from emotag_core.avatar.plate import MaskRows, background_plate, torso_layer
    from emotag_core.io.frames import FrameStore

    store = FrameStore(frames_path)
    masks = MaskRows(masks_path, store.keys)
    plate, seen = background_plate(store, masks, rows, max_frames=max_frames)
    info: dict[str, Any] = {"rows": len(rows), "plate_inpainted": round(float(1 - seen.mean()), 4)}
    if pose is not None:
        layers, motion, fit = fit_layers(store, masks, rows, pose)
        return plate, layers, motion, {**info, **fit}
    torso = torso_layer(store, masks, rows, max_frames=max_frames)
    return plate, torso[None], None, {**info, "torso_cover": round(float((torso[..., 3] > 127).mean()), 4)}
