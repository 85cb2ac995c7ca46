"""One rasterize() for both backends: colour, alpha, depth and normals of posed Gaussians.

Shared by the backends (so they render the same function): SH -> RGB per Gaussian seen from the
camera centre, per-Gaussian normals (the shortest scale axis, turned to face the camera, in
camera space), and the post-step (depth and normal divided by alpha, background composited).
The backend only splats features [B, N, D] and accumulates alpha and depth.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from emotag_core.avatar.binding import Gaussians, quat_to_rotmat
from emotag_core.errors import ConfigError, InputError

Backend = Literal["auto", "gsplat", "torch"]

_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (-0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
       -0.4570457994644658, 1.445305721320277, -0.5900435899266435)
_C0 = 0.28209479177387814


@dataclass
class RenderOutput:
    """What a render returns; every map is [B, H, W, C] in camera space."""

    color: Tensor   # [B, H, W, 3] RGB with the background composited: I = sum w c + (1 - alpha) bg
    alpha: Tensor   # [B, H, W, 1] accumulated opacity of the Gaussians
    depth: Tensor   # [B, H, W, 1] expected camera z (sum w z / alpha), 0 where alpha < 1e-3
    normal: Tensor  # [B, H, W, 3] expected camera-space normal (sum w n / alpha), 0 where alpha < 1e-3


def eval_sh(sh: Tensor, dirs: Tensor) -> Tensor:
    """Real SH (degree 0..3) to RGB: sh [..., K, 3], dirs [..., 3] (unit) -> [..., 3] >= 0."""
    K = sh.shape[-2]
    out = _C0 * sh[..., 0, :]
    if K > 1:
        x, y, z = (dirs[..., i:i + 1] for i in range(3))
        out = out - _C1 * y * sh[..., 1, :] + _C1 * z * sh[..., 2, :] - _C1 * x * sh[..., 3, :]
        if K > 4:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (out + _C2[0] * xy * sh[..., 4, :] + _C2[1] * yz * sh[..., 5, :]
                   + _C2[2] * (2 * zz - xx - yy) * sh[..., 6, :] + _C2[3] * xz * sh[..., 7, :]
                   + _C2[4] * (xx - yy) * sh[..., 8, :])
            if K > 9:
                out = (out + _C3[0] * y * (3 * xx - yy) * sh[..., 9, :] + _C3[1] * xy * z * sh[..., 10, :]
                       + _C3[2] * y * (4 * zz - xx - yy) * sh[..., 11, :]
                       + _C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12, :]
                       + _C3[4] * x * (4 * zz - xx - yy) * sh[..., 13, :]
                       + _C3[5] * z * (xx - yy) * sh[..., 14, :] + _C3[6] * x * (xx - 3 * yy) * sh[..., 15, :])
    return torch.clamp_min(out + 0.5, 0.0)


def gaussian_features(g: Gaussians, viewmat: Tensor, with_normals: bool = True) -> Tensor:
    """Per-Gaussian features to splat: RGB [B, N, 3] (+ camera-space normal [B, N, 3])."""
    B = g.batch
    sh = g.sh if g.sh.ndim == 4 else g.sh[None].expand(B, *g.sh.shape)
    if sh.shape[-2] == 1:
        rgb = torch.clamp_min(_C0 * sh[..., 0, :] + 0.5, 0.0)
    else:
        Rv, tv = viewmat[:, :3, :3], viewmat[:, :3, 3]
        cam = -torch.einsum("bji,bj->bi", Rv, tv)                     # camera centre in world
        dirs = torch.nn.functional.normalize(g.means - cam[:, None], dim=-1)
        rgb = eval_sh(sh, dirs)
    if not with_normals:
        return rgb
    R = quat_to_rotmat(g.quats)                                       # [B, N, 3, 3]
    axis = g.scales.argmin(-1)                                        # shortest axis
    n = torch.gather(R, 3, axis[..., None, None].expand(*axis.shape, 3, 1))[..., 0]   # [B, N, 3]
    Rv, tv = viewmat[:, :3, :3], viewmat[:, :3, 3]
    n_c = torch.einsum("bij,bnj->bni", Rv, n)
    m_c = torch.einsum("bij,bnj->bni", Rv, g.means) + tv[:, None]
    n_c = torch.where((n_c * m_c).sum(-1, keepdim=True) > 0, -n_c, n_c)  # face the camera
    return torch.cat([rgb, n_c], -1)


def _check(g: Gaussians, K: Tensor, viewmat: Tensor) -> None:
    B = g.batch
    if K.shape != (B, 3, 3):
        raise InputError(None, f"K must be [B={B}, 3, 3], got {tuple(K.shape)}")
    if viewmat.shape != (B, 4, 4):
        raise InputError(None, f"viewmat must be [B={B}, 4, 4], got {tuple(viewmat.shape)}")


def resolve_backend(backend: Backend, device: torch.device) -> str:
    """'auto' -> gsplat on CUDA, torch elsewhere; an explicit choice is checked."""
    if backend == "auto":
        return "gsplat" if device.type == "cuda" else "torch"
    if backend == "gsplat" and device.type != "cuda":
        raise ConfigError("rasterize: backend 'gsplat' needs CUDA tensors; use backend='torch' on CPU")
    if backend not in ("gsplat", "torch"):
        raise ConfigError(f"rasterize: unknown backend {backend!r}; use 'auto', 'gsplat' or 'torch'")
    return backend


def rasterize(g: Gaussians, K: Tensor, viewmat: Tensor, width: int, height: int,
              background: Tensor | None = None, backend: Backend = "auto", with_geometry: bool = True,
              **kw) -> RenderOutput:
    """Render posed Gaussians.

    K [B, 3, 3] (pixels), viewmat [B, 4, 4] (world -> OpenCV camera; identity when the Gaussians
    are already in camera space), background [3], [B, 3] or [B, H, W, 3] (default black).
    with_geometry=False skips normals (depth and normal come back as zeros of the right shape).
    """
    _check(g, K, viewmat)
    which = resolve_backend(backend, g.means.device)
    feats = gaussian_features(g, viewmat, with_normals=with_geometry)
    B, N = g.batch, g.n
    opac = g.opacities if g.opacities.ndim == 2 else g.opacities[None].expand(B, N)
    if which == "gsplat":
        from emotag_core.avatar.gsplat_raster import rasterize_gsplat as fn
    else:
        from emotag_core.avatar.cpu_raster import rasterize_torch as fn
    feat, alpha, zacc = fn(g.means, g.quats, g.scales, opac, feats, viewmat, K, width, height, **kw)
    return finish_maps(feat, alpha, zacc, background, with_geometry)


def finish_maps(feat: Tensor, alpha: Tensor, zacc: Tensor, background: Tensor | None = None,
                with_geometry: bool = True) -> RenderOutput:
    """The post-step of `rasterize`: splatted features [B, H, W, D], alpha and accumulated depth
    [B, H, W, 1] -> colour (background composited), alpha, depth and normal maps."""
    rgb = feat[..., :3]
    if background is not None:
        bg = background
        if bg.ndim == 1:
            bg = bg[None, None, None]
        elif bg.ndim == 2:
            bg = bg[:, None, None]
        rgb = rgb + (1 - alpha) * bg
    hit = alpha > 1e-3
    a = torch.where(hit, alpha, torch.ones_like(alpha))
    depth = torch.where(hit, zacc / a, torch.zeros_like(zacc))
    if with_geometry:
        normal = torch.where(hit, feat[..., 3:6] / a, torch.zeros_like(feat[..., 3:6]))
    else:
        normal = torch.zeros_like(rgb)
    return RenderOutput(color=rgb, alpha=alpha, depth=depth, normal=normal)
