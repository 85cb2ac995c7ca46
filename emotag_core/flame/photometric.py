"""Photometric term of the tracker (analysis by synthesis against a per-identity albedo).

Surface points (barycentric samples of the face triangles, intra-oral geometry excluded) are
projected with the tracked parameters and the crop is sampled there. A per-identity albedo per
surface point is the visibility-weighted mean of those samples over the identity frames; the
residual of a frame is (image at the projected point - albedo), with its Jacobian by the chain
rule through the image gradient (`d r / d theta = grad I . d uv / d theta`). Sampling the image
at projected mesh points is the inverse of rasterising the textured mesh: for a visible surface
both give the same image error, and this way costs one bilinear lookup per point.

Why: the landmark detector's error on a face is a per-identity offset that the landmark fit
follows (the fitted shape takes it on); the image itself is not biased, so agreeing with one
albedo across frames pulls the mesh onto the face's texture.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from emotag_core.errors import InputError

# barycentric samples per triangle: three points near the corners (their winding gives the
# triangle's facing) -> 3 points per face triangle
SAMPLE_BARY = ((0.6, 0.2, 0.2), (0.2, 0.6, 0.2), (0.2, 0.2, 0.6))
LUMA = (0.299, 0.587, 0.114)

ImageSource = Callable[[str, np.ndarray], np.ndarray]
"""(clip_id, frame numbers [T]) -> crops [T, H, W, 3] uint8 (the frames the landmarks came from)."""


def surface_points(faces: Tensor, n_face_faces: int) -> tuple[Tensor, Tensor]:
    """Barycentric surface samples of the face triangles: vertex ids [P, 3] and weights [P, 3]."""
    f = faces[:n_face_faces]                                                     # [F, 3]
    k = len(SAMPLE_BARY)
    tri = f.repeat_interleave(k, 0)                                              # [F*k, 3]
    bary = torch.tensor(SAMPLE_BARY, dtype=torch.float32, device=f.device).repeat(len(f), 1)
    return tri, bary


def prepare_images(crops: np.ndarray, size: int, blur_px: float) -> Tensor:
    """Crops [T, H, W, 3] uint8 -> luminance [T, 1, size, size] in [0, 1], Gaussian-blurred by
    `blur_px` (in crop pixels; widens the basin of the image term)."""
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise InputError(None, f"photometric term: expected crops [T, H, W, 3], got {crops.shape}",
                         "pass the frame store's RGB crops")
    x = torch.as_tensor(np.ascontiguousarray(crops)).float()                     # [T, H, W, 3]
    y = (x @ torch.tensor(LUMA)).div_(255.0)[:, None]                            # [T, 1, H, W]
    H = y.shape[-1]
    if size != H:
        y = F.interpolate(y, size=(size, size), mode="area" if size < H else "bilinear",
                          **({} if size < H else {"align_corners": False}))
    sigma = blur_px * size / H
    if sigma > 0.3:
        r = int(np.ceil(2.5 * sigma))
        g = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float32) / sigma) ** 2)
        g = g / g.sum()
        y = F.conv2d(F.pad(y, (r, r, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
        y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), g.view(1, 1, -1, 1))
    return y


class ImageTerm:
    """Images of a batch of frames with their gradients, sampled at crop-pixel positions."""

    def __init__(self, images: Tensor, crop_size: int) -> None:
        self.img = images                                                        # [T, 1, S, S]
        S = images.shape[-1]
        self.scale = S / crop_size                                               # crop px -> image px
        gx = torch.zeros_like(images)
        gy = torch.zeros_like(images)
        gx[..., 1:-1] = (images[..., 2:] - images[..., :-2]) / 2
        gy[..., 1:-1, :] = (images[..., 2:, :] - images[..., :-2, :]) / 2
        self.stack = torch.cat([images, gx * self.scale, gy * self.scale], 1)   # [T, 3, S, S] (grads per crop px)
        self.S = S

    def sample(self, uv: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """uv [T, P, 2] crop px -> intensity [T, P], d I / d uv [T, P, 2], inside-the-image mask [T, P]."""
        S = self.S
        pix = uv * self.scale - 0.5                                              # image px, centres at integers
        grid = (pix + 0.5) / S * 2 - 1
        out = F.grid_sample(self.stack, grid[:, None].to(self.stack.dtype), mode="bilinear",
                            padding_mode="border", align_corners=False)[:, :, 0]  # [T, 3, P]
        inside = ((pix >= 1) & (pix <= S - 2)).all(-1)
        return out[:, 0], out[:, 1:].transpose(1, 2), inside


def facing(uv: Tensor, n_tri: int, front: float) -> Tensor:
    """Front-facing mask [T, P] of the triangle samples from the winding of their projections
    (samples come in triangles of len(SAMPLE_BARY) points, see `surface_points`); `front` (+1 or -1)
    is the sign of the signed screen area of a triangle that faces the camera."""
    T = uv.shape[0]
    k = len(SAMPLE_BARY)
    t = uv[:, : n_tri * k].reshape(T, n_tri, k, 2)
    a, b, c = t[:, :, 0], t[:, :, 1], t[:, :, 2]
    area = (b[..., 0] - a[..., 0]) * (c[..., 1] - a[..., 1]) - (b[..., 1] - a[..., 1]) * (c[..., 0] - a[..., 0])
    return (area * front > 0).repeat_interleave(k, 1)


def estimate_albedo(intensity: Tensor, vis: Tensor) -> tuple[Tensor, Tensor]:
    """Per-point albedo [P] as the visibility-weighted mean over frames of intensity [T, P], and
    the share of frames that saw each point [P]."""
    w = vis.float()
    n = w.sum(0)
    return (intensity * w).sum(0) / n.clamp_min(1.0), n / max(1, intensity.shape[0])
