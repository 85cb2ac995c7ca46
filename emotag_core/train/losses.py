"""Training objectives (paper Sec. 3.4, Eq. 10-14)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

LAMBDA_DSSIM = 0.2  # paper Sec. 4
LAMBDA_DEPTH = 0.01
LAMBDA_NORMAL = 0.001


def _gauss_window(size: int, sigma: float, channels: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    w = g[:, None] * g[None, :]
    return w.expand(channels, 1, size, size).contiguous()


def ssim(img: Tensor, ref: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Mean SSIM of img vs ref, both [B, C, H, W] in [0, 1] -> scalar (Gaussian window, as in 3DGS)."""
    c = img.shape[1]
    w = _gauss_window(window, sigma, c, img.device, img.dtype)
    pad = window // 2
    mu_x = F.conv2d(img, w, padding=pad, groups=c)
    mu_y = F.conv2d(ref, w, padding=pad, groups=c)
    sxx = F.conv2d(img * img, w, padding=pad, groups=c) - mu_x ** 2
    syy = F.conv2d(ref * ref, w, padding=pad, groups=c) - mu_y ** 2
    sxy = F.conv2d(img * ref, w, padding=pad, groups=c) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean()


def render_loss(img: Tensor, ref: Tensor, lambda_dssim: float = LAMBDA_DSSIM) -> Tensor:
    """L_Render = L1 + lambda_D-SSIM * (1 - SSIM) (Eq. 11); img, ref [B, 3, H, W] -> scalar."""
    return (img - ref).abs().mean() + lambda_dssim * (1.0 - ssim(img, ref))


def kl_loss(p_emo: Tensor, z_e: Tensor) -> Tensor:
    """L_KL = KL(p_emo || softmax(z_e)) (Eq. 12); p_emo [B, 7] rows sum to 1, z_e [B, 7] logits -> scalar."""
    log_q = F.log_softmax(z_e, dim=-1)
    p = p_emo.clamp_min(0)
    p = p / p.sum(dim=-1, keepdim=True).clamp_min(1e-8)
    return F.kl_div(log_q, p, reduction="batchmean")


def score_loss(g: Tensor, e: Tensor) -> Tensor:
    """L_Score = |g - e| (Eq. 13); g [B, 1] or [B], e [B] -> scalar."""
    return (g.reshape(-1) - e.reshape(-1)).abs().mean()


def depth_loss(depth: Tensor, depth_gt: Tensor, mask: Tensor) -> Tensor:
    """L1 between rendered and pseudo-GT depth where the pseudo-GT has a face; [B, H, W] each -> scalar."""
    m = mask.to(depth.dtype)
    return ((depth - depth_gt).abs() * m).sum() / m.sum().clamp_min(1.0)


def normal_loss(normal: Tensor, normal_gt: Tensor, mask: Tensor) -> Tensor:
    """1 - cosine between rendered and pseudo-GT normals on the mask; normals [B, H, W, 3], mask [B, H, W]."""
    m = mask.to(normal.dtype)
    cos = F.cosine_similarity(normal, normal_gt, dim=-1, eps=1e-6)
    return ((1.0 - cos) * m).sum() / m.sum().clamp_min(1.0)


def geo_loss(depth: Tensor, depth_gt: Tensor, normal: Tensor, normal_gt: Tensor,
             lambda_d: float = LAMBDA_DEPTH, lambda_n: float = LAMBDA_NORMAL) -> Tensor:
    """L_Geo = lambda_D L_D + lambda_N L_N (Eq. 14, adaptation only); depth [B, H, W], normal [B, H, W, 3].

    Pixels where the pseudo-GT depth is 0 (background) are ignored.
    """
    mask = depth_gt > 0
    return lambda_d * depth_loss(depth, depth_gt, mask) + lambda_n * normal_loss(normal, normal_gt, mask)


def param_loss(expr: Tensor, jaw: Tensor, expr_gt: Tensor, jaw_gt: Tensor, jaw_weight: float = 1.0) -> Tensor:
    """Optional L1 on tracked FLAME expression + jaw_weight * jaw (not in the paper; `pretrain.param_supervision`).

    expr, expr_gt [B, E]; jaw, jaw_gt [B, 3] -> scalar (each term a mean over its elements)."""
    return (expr - expr_gt).abs().mean() + jaw_weight * (jaw - jaw_gt).abs().mean()
