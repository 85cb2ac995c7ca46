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


def _as_mask(mask: np.ndarray | torch.Tensor | None, like: torch.Tensor) -> torch.Tensor | None:
    """[B, H, W] (or [H, W]) bool -> [B, H, W] float64, checked against images [B, H, W, C]."""
    if mask is None:
        return None
    m = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
    if m.ndim == 2:
        m = m[None]
    if tuple(m.shape) != tuple(like.shape[:3]):
        raise ValueError(f"mask must be [B, H, W] = {tuple(like.shape[:3])}, got {tuple(m.shape)}")
    return m.to(torch.float64)


def psnr(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, data_range: float = 255.0,
         mask: np.ndarray | torch.Tensor | None = None) -> np.ndarray:
    """Per-frame PSNR in dB. pred, gt: [B, H, W, C] (or one [H, W, C]) -> [B].
    mask [B, H, W] bool: the mean squared error over those pixels only (NaN for an empty mask)."""
    a, b = _as_float(pred), _as_float(gt)
    _check_pair(a, b)
    m = _as_mask(mask, a)
    if m is None:
        mse = ((a - b) ** 2).flatten(1).mean(1)
    else:
        mse = (((a - b) ** 2).mean(-1) * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    out = 10.0 * torch.log10(data_range ** 2 / mse)
    out = torch.nan_to_num(out, posinf=PSNR_CAP_DB).clamp(max=PSNR_CAP_DB)
    if m is not None:  # an empty mask scores nothing (not the cap, not 0)
        out = torch.where(m.flatten(1).sum(1) > 0, out, torch.full_like(out, float("nan")))
    return out.numpy()


def _gaussian_window(sigma: float = 1.5, truncate: float = 3.5) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()  # [2r+1]


def ssim_and_masked(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor,
                    mask: np.ndarray | torch.Tensor, data_range: float = 255.0,
                    sigma: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """(SSIM over the whole frame [B], SSIM over `mask` [B]) from one SSIM map per frame (half the work of
    two `ssim` calls). pred, gt: [B, H, W, C]; mask: [B, H, W] bool."""
    out = [ssim(pred[i:i + 1], gt[i:i + 1], data_range, sigma, np.asarray(mask)[i:i + 1], _both=True)
           for i in range(len(pred))]
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def ssim(pred: np.ndarray | torch.Tensor, gt: np.ndarray | torch.Tensor, data_range: float = 255.0,
         sigma: float = 1.5, mask: np.ndarray | torch.Tensor | None = None, _both: bool = False) -> np.ndarray:
    """Per-frame SSIM (mean over pixels and channels). pred, gt: [B, H, W, C] -> [B].

    Gaussian-weighted statistics; the border of width `radius` is excluded, as scikit-image does.
    mask [B, H, W] bool: the mean of the SSIM map over those pixels only (NaN for an empty mask).
    """
    pred_t = torch.as_tensor(np.asarray(pred) if not isinstance(pred, torch.Tensor) else pred)
    gt_t = torch.as_tensor(np.asarray(gt) if not isinstance(gt, torch.Tensor) else gt)
    if pred_t.ndim == 4 and pred_t.shape == gt_t.shape and pred_t.shape[0] > 1:
        # one frame at a time: float64 temporaries of a whole batch at 512x512 (100s of MB each) cost
        # ~2.5x more in page faults and cache misses than the arithmetic
        ms = [None] * pred_t.shape[0] if mask is None else [np.asarray(mask)[i:i + 1] for i in range(pred_t.shape[0])]
        return np.concatenate([ssim(pred_t[i:i + 1], gt_t[i:i + 1], data_range, sigma, ms[i])
                               for i in range(pred_t.shape[0])])
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
    m = _as_mask(mask, a)
    if m is not None:  # the map covers the valid region: crop the mask the same way
        r0 = (k - 1) // 2
        mc = m[:, r0:r0 + s.shape[-2], r0:r0 + s.shape[-1]]  # [B, h, w]
        sm = s.reshape(B, C, s.shape[-2], s.shape[-1]).mean(1)
        masked = ((sm * mc).flatten(1).sum(1) / mc.flatten(1).sum(1)).numpy()
        if _both:
            return s.reshape(B, C, -1).mean(dim=(1, 2)).numpy(), masked  # type: ignore[return-value]
        return masked
    return s.reshape(B, C, -1).mean(dim=(1, 2)).numpy()
