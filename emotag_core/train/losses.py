"""Training objectives (paper Sec. 3.4, Eq. 10-14) and the one place that assembles them.

`motion_terms` (GRMN's outputs), `image_terms` (the rendered maps) and `total_loss` (Eq. 10) are what
every training step calls: the eager step (`loop.loss_terms`) and the CUDA-graphed one (`fast.GraphedStep`)
differ only in how they schedule these calls, never in which terms or weights they use.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from emotag_core.errors import ConfigError

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


@dataclass
class LossSwitches:
    """Which terms of Eq. 10 are on (from AblationConfig and the loop)."""

    kl: bool = True
    """L_KL (Eq. 12)."""
    score: bool = True
    """L_Score (Eq. 13)."""
    geo: bool = False
    """L_Geo (Eq. 14; adaptation only)."""
    param_supervision: float = 0.0
    """Weight of the optional L1 on tracked FLAME expression + jaw (not in the paper)."""
    param_jaw_weight: float = 1.0
    """Weight of the jaw term relative to the expression term inside that L1."""
    render: bool = True
    """L_Render (Eq. 11). Off = motion-only (not the paper): nothing is rasterized, there is no static
    stage, and GRMN learns from `param_supervision` (then required > 0), L_KL and L_Score."""

    def __post_init__(self) -> None:
        if not self.render and self.param_supervision <= 0:
            raise ConfigError("motion-only training (`pretrain.render: false`) needs `pretrain.param_supervision` > 0: "
                              "without L_Render nothing else supervises the base branch")
        if self.param_jaw_weight < 0:
            raise ConfigError(f"`pretrain.param_jaw_weight` must be >= 0, got {self.param_jaw_weight}")
        if not self.render and self.geo:
            raise ConfigError("L_Geo needs rendered depth/normal maps; it cannot run with `pretrain.render: false`")

    @classmethod
    def from_ablation(cls, ablation: Any, geo: bool = False, param_supervision: float = 0.0,
                      render: bool = True, param_jaw_weight: float = 1.0) -> "LossSwitches":
        seg = bool(ablation.seg)
        return cls(kl=seg and bool(ablation.kl) and bool(ablation.residual),
                   score=seg and bool(ablation.score) and bool(ablation.gate) and bool(ablation.residual),
                   geo=geo and render, param_supervision=param_supervision, render=render,
                   param_jaw_weight=param_jaw_weight)


TERMS = ("render", "kl", "score", "param", "gate_mean", "geo")
"""The per-term keys a step reports, in this order (`gate_mean` is a diagnostic, not a loss)."""


def motion_terms(out: Any, p_emo: Tensor, e: Tensor, expr_gt: Tensor, jaw_gt: Tensor,
                 sw: LossSwitches) -> dict[str, Tensor]:
    """GRMN's terms, unweighted: L_KL (Eq. 12), L_Score (Eq. 13), the optional param L1, and `gate_mean`.

    out: a GRMN output (expr [B, E], jaw [B, 3], g [B, 1], z_e [B, 7] | None); p_emo [B, 7], e [B],
    expr_gt [B, E], jaw_gt [B, 3] (tracked FLAME). Values keep their graph (`gate_mean` is detached)."""
    terms: dict[str, Tensor] = {}
    if sw.kl and out.z_e is not None:
        terms["kl"] = kl_loss(p_emo, out.z_e)  # Eq. 12
    if sw.score and out.z_e is not None:
        terms["score"] = score_loss(out.g, e)  # Eq. 13
    if sw.param_supervision > 0:
        terms["param"] = param_loss(out.expr, out.jaw, expr_gt, jaw_gt, sw.param_jaw_weight)
    terms["gate_mean"] = out.g.detach().mean()
    return terms


def image_terms(maps: Mapping[str, Tensor], ref: Tensor, sw: LossSwitches, depth_gt: Tensor | None = None,
                normal_gt: Tensor | None = None) -> dict[str, Tensor]:
    """The rendered maps' terms: L_Render (Eq. 11) and, with `sw.geo` and pseudo-GT given, L_Geo (Eq. 14).

    maps: `image` [B, 3, H, W], `depth` [B, H, W], `normal` [B, H, W, 3] (a scene's composite); ref [B, 3, H, W]."""
    terms = {"render": render_loss(maps["image"], ref)}  # Eq. 11
    if sw.geo and depth_gt is not None and normal_gt is not None:
        terms["geo"] = geo_loss(maps["depth"], depth_gt, maps["normal"], normal_gt)  # Eq. 14
    return terms


def total_loss(terms: Mapping[str, Tensor], sw: LossSwitches, zero: Tensor) -> Tensor:
    """Eq. 10: L = L_Render + L_KL + L_Score [+ param_supervision * L_param] + L_Geo, over the terms present,
    summed in this order onto `zero` (a 0-dim tensor on the batch's device)."""
    total = zero
    for name in ("render", "kl", "score", "param", "geo"):
        if name in terms:
            total = total + (sw.param_supervision * terms[name] if name == "param" else terms[name])
    return total


def report(terms: Mapping[str, Tensor], total: Tensor) -> dict[str, Tensor]:
    """The per-term values a step returns: detached, in `TERMS` order, plus `loss` (the total)."""
    out = {k: terms[k].detach() for k in TERMS if k in terms}
    out["loss"] = total.detach()
    return out
