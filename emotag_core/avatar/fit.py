"""Static appearance fitting (the paper's first 1,000 iterations, Sec. 4 'Implementation Details').

Fits one identity's Gaussians to its tracked frames with the rendering loss of Eq. 11
(L1 + lambda * D-SSIM). What is rendered and what is composited: the Gaussians render the head
(FLAME surface + intra-oral parts) with their own alpha; everything the head model does not
cover (hair, neck, torso, room) is a per-identity background image B, learned jointly at
`bg_scale` of the crop resolution, initialised from the per-pixel median of the training frames
outside the tracked mesh, and composited behind the head: I = render + (1 - alpha) * B.
Pretraining and adaptation reuse `fit_static` and `render_loss`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emotag_core.avatar.binding import GaussianAvatar, SH_C0
from emotag_core.avatar.cpu_raster import project
from emotag_core.avatar.geometry import render_mesh_maps
from emotag_core.avatar.rasterize import rasterize
from emotag_core.errors import DivergenceError, InputError
from emotag_core.progress import NO_PROGRESS, Progress


@dataclass
class StaticFitConfig:
    iters: int = 1000
    """Optimiser steps (paper: the first 1,000 iterations optimise static appearance only)."""
    batch_size: int = 4
    """Frames per step."""
    lambda_dssim: float = 0.2
    """Weight of the D-SSIM term of Eq. 11 (paper: 0.2)."""
    lr_position: float = 5e-3
    """Adam lr of the local positions mu_l (triangle units)."""
    lr_rotation: float = 5e-3
    """Adam lr of the local rotations r_l."""
    lr_scale: float = 5e-3
    """Adam lr of the local log-scales s_l."""
    lr_opacity: float = 5e-2
    """Adam lr of the opacity logits."""
    lr_sh: float = 2.5e-2
    """Adam lr of the SH coefficients."""
    lr_background: float = 1e-2
    """Adam lr of the background image."""
    bg_scale: float = 0.5
    """Resolution of the learned background relative to the crop."""
    init_colors: bool = True
    """Start each Gaussian's colour from the training frame pixel it projects to."""
    seed: int = 0
    """Seed of the frame sampling order."""
    backend: str = "auto"
    """Rasterizer backend: auto (gsplat on CUDA), gsplat or torch."""


@dataclass
class StaticFitResult:
    background: Tensor                       # [H, W, 3] learned background at crop resolution
    losses: list[float] = field(default_factory=list)


def _gauss_window(size: int = 11, sigma: float = 1.5, device=None, dtype=None) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - size // 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Mean SSIM of images [B, H, W, C] in [0, 1] (11x11 Gaussian window, sigma 1.5)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    C = x.shape[1]
    w = _gauss_window(device=x.device, dtype=x.dtype).expand(C, 1, 11, 11)
    conv = lambda t: F.conv2d(t, w, padding=5, groups=C)  # noqa: E731
    mx, my = conv(x), conv(y)
    sxx = conv(x * x) - mx * mx
    syy = conv(y * y) - my * my
    sxy = conv(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def render_loss(pred: Tensor, gt: Tensor, lambda_dssim: float = 0.2) -> Tensor:
    """Eq. 11: L1(I, I_gt) + lambda * (1 - SSIM(I, I_gt)); images [B, H, W, 3]."""
    return (pred - gt).abs().mean() + lambda_dssim * (1 - ssim(pred, gt))


def psnr(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> float:
    """PSNR in dB of [B, H, W, 3] images in [0, 1]; `mask` [B, H, W] restricts the pixels."""
    se = (pred.clamp(0, 1) - gt) ** 2
    if mask is not None:
        m = mask[..., None].expand_as(se)
        mse = se[m].mean()
    else:
        mse = se.mean()
    return float(10 * torch.log10(1.0 / mse.clamp_min(1e-12)))


def _as_float(frames: Tensor) -> Tensor:
    return frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()


class Background(nn.Module):
    """A learned per-identity background image, upsampled to the crop size."""

    def __init__(self, init: Tensor, scale: float) -> None:      # init [H, W, 3] in [0, 1]
        super().__init__()
        H, W = init.shape[:2]
        self.size = (H, W)
        small = F.interpolate(init.permute(2, 0, 1)[None], scale_factor=scale, mode="area")
        self.image = nn.Parameter(torch.logit(small.clamp(0.01, 0.99)))

    def forward(self) -> Tensor:                                  # -> [H, W, 3]
        up = F.interpolate(torch.sigmoid(self.image), size=self.size, mode="bilinear", align_corners=False)
        return up[0].permute(1, 2, 0)


@torch.no_grad()
def head_masks(verts: Tensor, faces: Tensor, K: Tensor, size: int, chunk: int = 16) -> Tensor:
    """Silhouette of the tracked mesh per frame: verts [T, V, 3], K [T, 3, 3] -> [T, H, W] bool."""
    out = []
    for s in range(0, verts.shape[0], chunk):
        _, _, m = render_mesh_maps(verts[s:s + chunk], faces, K[s:s + chunk], size, size)
        out.append(m)
    return torch.cat(out)


@torch.no_grad()
def init_colors_from_frame(avatar: GaussianAvatar, frame: Tensor, verts: Tensor, K: Tensor) -> None:
    """Set SH DC so each Gaussian starts with the colour of the pixel its centre projects to.

    frame [H, W, 3] float, verts [1, V, 3], K [1, 3, 3]. Gaussians facing away keep their colour.
    """
    H, W = frame.shape[:2]
    g = avatar.bind(verts)
    m2, _, z, valid = project(g.means, g.quats, g.scales, torch.eye(4, device=verts.device)[None], K, W, H)
    u = m2[0, :, 0].round().long().clamp(0, W - 1)
    v = m2[0, :, 1].round().long().clamp(0, H - 1)
    rgb = frame[v, u]                                                   # [N, 3]
    avatar.sh[:, 0] = torch.where(valid[0, :, None], (rgb - 0.5) / SH_C0, avatar.sh[:, 0])


def fit_static(avatar: GaussianAvatar, frames: Tensor, verts: Tensor, K: Tensor, cfg: StaticFitConfig,
               masks: Tensor | None = None, progress: Progress = NO_PROGRESS) -> StaticFitResult:
    """Fit the avatar's static appearance (and local geometry) to tracked frames.

    frames [T, H, W, 3] uint8 or float in [0, 1] (on the fitting device), verts [T, V, 3] tracked
    mesh in camera space, K [T, 3, 3] or [3, 3] intrinsics in crop pixels, masks [T, H, W] bool
    (tracked-mesh silhouettes; computed when None, used for the background's initial value).
    Returns the learned background and the loss curve; the avatar is updated in place.
    progress(iteration, cfg.iters, loss=...) after each step.
    """
    T, H, W = frames.shape[:3]
    dev = verts.device
    if verts.shape[0] != T:
        raise InputError(None, f"{T} frames but {verts.shape[0]} tracked meshes", "pass one mesh per frame")
    K = K.to(dev).float()
    if K.ndim == 2:
        K = K[None].expand(T, 3, 3)
    if masks is None:
        masks = head_masks(verts, avatar.faces, K, W)
    # background init: per-pixel median of the frames outside the head (all frames where always covered)
    with torch.no_grad():
        f = _as_float(frames[: min(T, 64)])
        m = masks[: f.shape[0], ..., None]
        masked = torch.where(m, torch.full_like(f, float("nan")), f)
        bg0 = torch.nanmedian(masked, dim=0).values
        bg0 = torch.where(torch.isnan(bg0), f.median(0).values, bg0)
    bg = Background(bg0, cfg.bg_scale).to(dev)
    if cfg.init_colors:
        init_colors_from_frame(avatar, _as_float(frames[0]), verts[:1], K[:1])
    opt = torch.optim.Adam([
        {"params": [avatar.mu_l], "lr": cfg.lr_position},
        {"params": [avatar.rot_l], "lr": cfg.lr_rotation},
        {"params": [avatar.log_scale_l], "lr": cfg.lr_scale},
        {"params": [avatar.opacity_logit], "lr": cfg.lr_opacity},
        {"params": [avatar.sh], "lr": cfg.lr_sh},
        {"params": bg.parameters(), "lr": cfg.lr_background},
    ], eps=1e-15)
    gen = torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    for it in range(cfg.iters):
        idx = torch.randint(0, T, (min(cfg.batch_size, T),), generator=gen).to(dev)
        gt = _as_float(frames[idx])
        out = rasterize(avatar.bind(verts[idx]), K[idx], torch.eye(4, device=dev)[None].expand(len(idx), 4, 4),
                        W, H, background=bg()[None], backend=cfg.backend, with_geometry=False)
        loss = render_loss(out.color, gt, cfg.lambda_dssim)
        if not torch.isfinite(loss):
            raise DivergenceError(f"static fit: loss is {float(loss)} at iteration {it} (frames {idx.tolist()})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        progress(it + 1, cfg.iters, loss=losses[-1])
    return StaticFitResult(background=bg().detach(), losses=losses)


@torch.no_grad()
def evaluate_static(avatar: GaussianAvatar, background: Tensor, frames: Tensor, verts: Tensor, K: Tensor,
                    masks: Tensor | None = None, backend: str = "auto", chunk: int = 8) -> dict[str, float]:
    """PSNR over the full crop and inside the tracked-mesh silhouette (`masked_psnr`) on frames."""
    T, H, W = frames.shape[:3]
    dev = verts.device
    K = K.to(dev).float()
    if K.ndim == 2:
        K = K[None].expand(T, 3, 3)
    if masks is None:
        masks = head_masks(verts, avatar.faces, K, W)
    se, n, se_m, n_m = 0.0, 0, 0.0, 0
    for s in range(0, T, chunk):
        sl = slice(s, s + chunk)
        gt = _as_float(frames[sl])
        B = gt.shape[0]
        out = rasterize(avatar.bind(verts[sl]), K[sl], torch.eye(4, device=dev)[None].expand(B, 4, 4), W, H,
                        background=background[None], backend=backend, with_geometry=False)
        e = (out.color.clamp(0, 1) - gt) ** 2
        se += float(e.sum())
        n += e.numel()
        m = masks[sl][..., None].expand_as(e)
        se_m += float(e[m].sum())
        n_m += int(m.sum())
    to_db = lambda s, c: 10 * math.log10(1.0 / max(s / max(c, 1), 1e-12))  # noqa: E731
    return {"psnr": to_db(se, n), "masked_psnr": to_db(se_m, n_m), "frames": T}


@torch.no_grad()
def render_frames(avatar: GaussianAvatar, background: Tensor, verts: Tensor, K: Tensor, size: int,
                  backend: str = "auto") -> Tensor:
    """Renders [T, H, W, 3] in [0, 1] of the avatar over its background."""
    T = verts.shape[0]
    K = K.float()
    if K.ndim == 2:
        K = K[None].expand(T, 3, 3)
    out = rasterize(avatar.bind(verts), K, torch.eye(4, device=verts.device)[None].expand(T, 4, 4), size, size,
                    background=background[None], backend=backend, with_geometry=False)
    return out.color.clamp(0, 1)

