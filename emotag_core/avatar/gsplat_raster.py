"""gsplat (CUDA) backend of `rasterize`: features, alpha and accumulated depth in one call.

gsplat is imported here only, on first use, so `import emotag_core.avatar` needs no CUDA build.
Uses gsplat 1.5.3 `rasterization` in render mode RGB+D (the features' channels plus sum w z).
"""
from __future__ import annotations

from torch import Tensor


def rasterize_gsplat(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, features: Tensor,
                     viewmat: Tensor, K: Tensor, width: int, height: int, packed: bool = False,
                     eps2d: float = 0.3, near: float = 0.01, tile: int = 16) -> tuple[Tensor, Tensor, Tensor]:
    """Same contract as `cpu_raster.rasterize_torch`.

    means [B, N, 3], quats [B, N, 4], scales [B, N, 3], opacities [B, N], features [B, N, D],
    viewmat [B, 4, 4], K [B, 3, 3] -> feat [B, H, W, D], alpha [B, H, W, 1], depth acc [B, H, W, 1].
    """
    from gsplat import rasterization

    D = features.shape[-1]
    img, alpha, _ = rasterization(
        means, quats, scales, opacities, features, viewmat[:, None], K[:, None], width, height,
        near_plane=near, eps2d=eps2d, packed=packed, tile_size=tile, render_mode="RGB+D",
        rasterize_mode="classic",
    )                                                       # [B, 1, H, W, D+1], [B, 1, H, W, 1]
    img, alpha = img[:, 0], alpha[:, 0]
    return img[..., :D], alpha, img[..., D:D + 1]
