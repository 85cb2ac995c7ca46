"""Image-fidelity metrics between rendered and ground-truth frames: PSNR and SSIM (paper Sec. 4).

Both follow scikit-image's definitions (`peak_signal_noise_ratio`, `structural_similarity` with a
Gaussian window of sigma 1.5, population covariance, K1=0.01, K2=0.03) so numbers are comparable
with the talking-head literature; they run batched in torch.
"""
from __future__ import annotations

import numpy as np
import torch

PSNR_CAP_DB = 100.0  # identical frames give +inf; reported as this cap so JSON stays finite


def _as_float(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """[B, H, W, 3] or [H, W, 3] uint8/float -> [B, H, W, C] float64."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    if t.ndim == 3:
        t = t[None]
    if t.ndim != 4:
        raise ValueError(f"expected images [B, H, W, C], got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def _check_pair(a: torch.Tensor, b: torch.Tensor) -> None:
    if a.shape != b.shape:
        raise ValueError(f"rendered and ground-truth frames differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")


def psnr(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, data_range: float = 255.0) -> np.ndarray:
    """Per-frame PSNR in dB. pred, gt: [B, H, W, C] (or one [H, W, C]) -> [B]."""
    a, b = _as_float(pred), _as_float(gt)
    _check_pair(a, b)
    mse = ((a - b) ** 2).flatten(1).mean(1)
    out = 10.0 * torch.log10(data_range ** 2 / mse)
    return torch.nan_to_num(out, posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB).numpy()


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()  # [2r+1]


def ssim(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, data_range: float = 255.0,
         sigma: float = 1.5) -> np.ndarray:
    """Per-frame SSIM (mean over pixels and channels). pred, gt: [B, H, W, C] -> [B].

    Gaussian-weighted statistics; the border of width `radius` is excluded, as scikit-image does.
    """
    pred_t = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred)
    gt_t = torch.as_tensor(np.asarray(gt) if not isinstance(gt, torch.Tensor) else gt)
    if pred_t.ndim == 4 and pred_t.shape == gt_t.shape and pred_t.shape[0] > 1:
        # one frame at a time: float64 temporaries of a whole batch at 512x512 (100s of MB each) cost
        # ~2.5x more in page faults and cache misses than the arithmetic
        return np.concatenate([ssim(pred_t[i:i + 1], gt_t[i:i + 1], data_range, sigma) for i in range(pred_t.shape[0])])
    a, b = _as_float(pred_t), _as_float(gt_t)
    _check_pair(a, b)
    B, H, W, C = a.shape
    w1 = _gaussian_window(sigma)
    k = w1.numel()
    if H < k or W < k:
        raise ValueError(f"SSIM needs frames of at least {k}x{k} pixels, got {H}x{W}")
    x = a.permute(0, 3, 1, 2).reshape(B * C, 1, H, W)
    y = b.permute(0, 3, 1, 2).reshape(B * C, 1, H, W)

    taps = [float(v) for v in w1]

    def blur(z: torch.Tensor) -> torch.Tensor:  # separable Gaussian, 'valid' = skimage's cropped region
        # shifted-slice sums: float64 conv2d on CPU takes the im2col path (~7x slower, GBs of scratch)
        hc, wc = z.shape[-2] - k + 1, z.shape[-1] - k + 1
        r = z[..., 0:hc, :] * taps[0]
        for i in range(1, k):
            r.add_(z[..., i:i + hc, :], alpha=taps[i])
        c = r[..., 0:wc] * taps[0]
        for i in range(1, k):
            c.add_(r[..., i:i + wc], alpha=taps[i])
        return c

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.reshape(B, C, -1).mean(dim=(1, 2)).numpy()
