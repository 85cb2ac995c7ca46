"""Differentiable pure-PyTorch 3DGS rasterizer (any device; used on CPU, for tests and CI).

Same image formation as gsplat's classic 3DGS kernels: EWA projection with a 0.3 px blur,
Gaussians culled behind the near plane, per-tile front-to-back alpha blending sorted by
camera depth, alpha = min(0.999, o * exp(-sigma)) dropped under 1/255, and a pixel stops
once its transmittance would fall to 1e-4. Autograd provides the backward pass. Memory is
bounded by processing tiles in chunks (`budget` pair evaluations at a time); tiles are sorted
by list length so each chunk is padded only to its own longest list.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from emotag_core.avatar.binding import quat_to_rotmat

ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.999
T_MIN = 1e-4


def project(means: Tensor, quats: Tensor, scales: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int,
            eps2d: float = 0.3, near: float = 0.01) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """EWA splatting of 3D Gaussians to the image plane.

    means/quats/scales [B, N, 3|4|3] (world), viewmat [B, 4, 4] (world -> OpenCV camera),
    K [B, 3, 3] -> means2d [B, N, 2] (pixels), conics [B, N, 3] (inverse 2D covariance a, b, c),
    depths [B, N] (camera z), valid [B, N] bool.
    """
    Rv, tv = viewmat[:, :3, :3], viewmat[:, :3, 3]
    mc = torch.einsum("bij,bnj->bni", Rv, means) + tv[:, None]          # [B, N, 3]
    M = quat_to_rotmat(quats) * scales[..., None, :]                    # [B, N, 3, 3] R S
    cov = M @ M.transpose(-1, -2)
    cov_c = Rv[:, None] @ cov @ Rv[:, None].transpose(-1, -2)
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]                          # [B, 1]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    x, y, z = mc.unbind(-1)
    zs = torch.where(z > near, z, torch.ones_like(z))                   # keep culled entries finite
    # clamp the Jacobian's x/z, y/z to 1.3x the field of view (as the CUDA kernels do)
    lim_xp = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    lim_xn = cx / fx + 0.3 * (0.5 * width / fx)
    lim_yp = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    lim_yn = cy / fy + 0.3 * (0.5 * height / fy)
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_xn), lim_xp)
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_yn), lim_yp)
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs ** 2, zero, fy / zs, -fy * ty / zs ** 2], -1).reshape(*zs.shape, 2, 3)
    c2 = J @ cov_c @ J.transpose(-1, -2)                                 # [B, N, 2, 2]
    a = c2[..., 0, 0] + eps2d
    b = 0.5 * (c2[..., 0, 1] + c2[..., 1, 0])
    c = c2[..., 1, 1] + eps2d
    det = a * c - b * b
    valid = (z > near) & (det > 0)
    det = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det, -b / det, a / det], -1)
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], -1)
    return means2d, conics, z, valid


@torch.no_grad()
def _tile_lists(means2d: Tensor, conics: Tensor, depths: Tensor, opac: Tensor, valid: Tensor,
                width: int, height: int, tile: int) -> tuple[Tensor, Tensor, Tensor]:
    """Sorted (tile, depth) intersection lists -> tile ids [Tn], padded gaussian ids [Tn, K] (-1 pad)."""
    B, N = depths.shape
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    # bounding box of the ellipse where alpha can reach 1/255 (opacity-aware extent)
    det = 1.0 / (conics[..., 0] * conics[..., 2] - conics[..., 1] ** 2).clamp_min(1e-30)
    var_x = conics[..., 2] * det
    var_y = conics[..., 0] * det
    ext = torch.sqrt(2.0 * torch.log((opac / ALPHA_MIN).clamp_min(1.0))).clamp_max(3.33)
    rx = torch.ceil(ext * var_x.clamp_min(0).sqrt())
    ry = torch.ceil(ext * var_y.clamp_min(0).sqrt())
    mx, my = means2d[..., 0], means2d[..., 1]
    ok = valid & (opac >= ALPHA_MIN) & (rx > 0) & (ry > 0)
    ok &= (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
    x0 = torch.floor((mx - rx) / tile).clamp(0, tw).long()
    x1 = torch.ceil((mx + rx) / tile).clamp(0, tw).long()
    y0 = torch.floor((my - ry) / tile).clamp(0, th).long()
    y1 = torch.ceil((my + ry) / tile).clamp(0, th).long()
    nx, ny = (x1 - x0) * ok, (y1 - y0) * ok
    cnt = (nx * ny).flatten()                                         # [B*N]
    total = int(cnt.sum())
    dev = means2d.device
    if total == 0:
        return torch.zeros(0, dtype=torch.long, device=dev), torch.zeros(0, 0, dtype=torch.long, device=dev), \
            torch.zeros(0, dtype=torch.long, device=dev)
    gid = torch.repeat_interleave(torch.arange(B * N, device=dev), cnt)           # flat b*N + n
    local = torch.arange(total, device=dev) - torch.repeat_interleave(torch.cumsum(cnt, 0) - cnt, cnt)
    nxf = nx.flatten()[gid]
    tx = x0.flatten()[gid] + local % nxf.clamp_min(1)
    ty = y0.flatten()[gid] + local // nxf.clamp_min(1)
    b = gid // N
    tile_id = (b * th + ty) * tw + tx                                               # global tile index
    rank = torch.empty(B * N, dtype=torch.long, device=dev)
    order = torch.argsort(depths.flatten(), stable=True)             # only order within a tile matters
    rank[order] = torch.arange(B * N, device=dev)
    key = tile_id * (B * N) + rank[gid]
    s = torch.argsort(key)
    tile_s, gid_s = tile_id[s], gid[s]
    tiles, counts = torch.unique_consecutive(tile_s, return_counts=True)
    Kmax = int(counts.max())
    starts = torch.cumsum(counts, 0) - counts
    pos = torch.arange(total, device=dev) - torch.repeat_interleave(starts, counts)
    row = torch.repeat_interleave(torch.arange(tiles.numel(), device=dev), counts)
    padded = torch.full((tiles.numel(), Kmax), -1, dtype=torch.long, device=dev)
    padded[row, pos] = gid_s
    return tiles, padded, counts


def _chunks(counts: list[int], area: int, budget: int, slack: float = 1.5) -> list[tuple[int, int, int]]:
    """Split tiles sorted by descending list length into (start, end, K) chunks.

    Each chunk is padded only to its own longest list K (within `slack` of every list in it) and
    holds at most `budget` pixel-Gaussian pairs (at least one tile), so the padding waste is
    bounded by `slack` instead of by the longest list in the whole image.
    """
    out, s, n = [], 0, len(counts)
    while s < n:
        k = counts[s]
        cap = max(1, budget // (area * k))
        e = s + 1
        while e < n and e - s < cap and counts[e] * slack >= k:
            e += 1
        out.append((s, e, k))
        s = e
    return out


def rasterize_torch(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, features: Tensor,
                    viewmat: Tensor, K: Tensor, width: int, height: int, tile: int = 8,
                    budget: int = 1 << 22, eps2d: float = 0.3, near: float = 0.01) -> tuple[Tensor, Tensor, Tensor]:
    """Render features, alpha and accumulated depth.

    means [B, N, 3], quats [B, N, 4], scales [B, N, 3], opacities [B, N], features [B, N, D],
    viewmat [B, 4, 4], K [B, 3, 3] -> feat [B, H, W, D] (sum_i w_i f_i, no background),
    alpha [B, H, W, 1] (sum_i w_i), depth [B, H, W, 1] (sum_i w_i z_i, not normalised).
    The image does not depend on `tile` or `budget` (they trade memory for speed only).
    """
    B, N = means.shape[:2]
    D = features.shape[-1]
    dt, dev = means.dtype, means.device
    means2d, conics, depths, valid = project(means, quats, scales, viewmat, K, width, height, eps2d, near)
    tiles, padded, counts = _tile_lists(means2d.detach(), conics.detach(), depths.detach(), opacities.detach(),
                                        valid, width, height, tile)
    tw, th = math.ceil(width / tile), math.ceil(height / tile)
    P = tile * tile
    out = torch.zeros(B * th * tw, P, D + 2, dtype=dt, device=dev)
    if tiles.numel() == 0:
        return _untile(out, B, th, tw, tile, width, height, D)
    # flattened per-gaussian attributes (ids b*N + n) plus one zero-opacity entry (id B*N) for padding
    pad = lambda x: torch.cat([x, x.new_zeros((1,) + x.shape[1:])], 0)  # noqa: E731
    mx, my = pad(means2d[..., 0].reshape(B * N)), pad(means2d[..., 1].reshape(B * N))
    ca, cb, cc = (pad(conics[..., i].reshape(B * N)) for i in range(3))
    op = pad(opacities.reshape(B * N))
    fz = pad(torch.cat([features.reshape(B * N, D), depths.reshape(B * N, 1)], -1))  # [B*N+1, D+1]
    padded = torch.where(padded >= 0, padded, torch.full_like(padded, B * N))
    # longest lists first: each chunk is padded to its own longest list only
    counts, perm = torch.sort(counts, descending=True, stable=True)
    tiles, padded = tiles[perm], padded[perm]
    ly, lx = torch.meshgrid(torch.arange(tile, device=dev), torch.arange(tile, device=dev), indexing="ij")
    lx, ly = lx.flatten().to(dt) + 0.5, ly.flatten().to(dt) + 0.5                # [P] pixel centres
    results = []
    for s, e, k in _chunks(counts.tolist(), P, budget):
        t_ids = tiles[s:e]
        gi = padded[s:e, :k]                                                         # [t, K]
        px = (t_ids % tw).to(dt)[:, None] * tile + lx                               # [t, P]
        py = ((t_ids // tw) % th).to(dt)[:, None] * tile + ly
        dx = px[:, :, None] - mx[gi][:, None, :]                                     # [t, P, K]
        dy = py[:, :, None] - my[gi][:, None, :]
        sigma = 0.5 * (ca[gi][:, None] * dx * dx + cc[gi][:, None] * dy * dy) + cb[gi][:, None] * dx * dy
        alpha = torch.clamp_max(op[gi][:, None] * torch.exp(-sigma), ALPHA_MAX)     # [t, P, K]
        alpha = torch.where((sigma >= 0) & (alpha >= ALPHA_MIN), alpha, torch.zeros_like(alpha))
        T_incl = torch.cumprod(1 - alpha, -1)
        T_excl = torch.cat([torch.ones_like(T_incl[..., :1]), T_incl[..., :-1]], -1)
        w = alpha * T_excl * (T_incl > T_MIN)                                        # front-to-back weights
        acc = torch.bmm(w, fz[gi])                                                   # [t, P, D+1]
        results.append(torch.cat([acc[..., :D], w.sum(-1, keepdim=True), acc[..., D:]], -1))
    out = out.index_copy(0, tiles, torch.cat(results, 0))
    return _untile(out, B, th, tw, tile, width, height, D)


def _untile(out: Tensor, B: int, th: int, tw: int, tile: int, width: int, height: int, D: int):
    img = out.reshape(B, th, tw, tile, tile, D + 2).permute(0, 1, 3, 2, 4, 5).reshape(B, th * tile, tw * tile, D + 2)
    img = img[:, :height, :width]
    return img[..., :D], img[..., D:D + 1], img[..., D + 1:D + 2]
