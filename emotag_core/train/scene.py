"""One identity's renderable scene: head model + FLAME-rigged Gaussians + a static background.

`IdentityScene.render` takes FLAME motion (expression, jaw, head pose) and the mouth-Gaussian
offsets that GRMN predicts, and returns the composited image with its alpha, depth and normal
maps. The Gaussians and the background are the identity's trainable appearance; the head model
is shared and fixed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import Tensor, nn


class Scene(Protocol):
    """What the training loops need from an identity's scene."""

    n_mouth: int

    def parameters(self) -> Any: ...

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int) -> dict[str, Tensor]: ...


# rasterize(gaussians, K [B, 3, 3] at `size`, size) -> {"colour" [B, 3, H, W], "alpha" [B, 1, H, W],
#                                                      "depth" [B, H, W], "normal" [B, H, W, 3]}
Rasterize = Callable[..., dict[str, Tensor]]


class IdentityScene(nn.Module):
    """Head model (fixed) + GaussianAvatar (trainable) + background image (trainable)."""

    def __init__(self, head: nn.Module, avatar: nn.Module, shape: Tensor, K: Tensor, frame_size: int,
                 rasterize: Rasterize, background_size: int = 64) -> None:
        super().__init__()
        self.head = [head]  # a list: shared, not a submodule (not saved with each identity)
        self.avatar = avatar
        self.register_buffer("shape", shape.reshape(1, -1).float())  # [1, S] tracked identity shape
        self.register_buffer("K", K.reshape(3, 3).float())  # intrinsics at `frame_size`
        self.frame_size = int(frame_size)
        self.rasterize = rasterize
        self.background = nn.Parameter(torch.full((1, 3, background_size, background_size), 0.5))

    @property
    def n_mouth(self) -> int:
        return int(self.avatar.n_mouth)

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int) -> dict[str, Tensor]:
        """expr [B, E], jaw/rot/trans [B, 3], mouth [B, M, 10] | None -> image [B, 3, size, size] etc."""
        import torch.nn.functional as F

        verts = self.head[0](self.shape, expr, jaw, rot, trans)  # [B, V, 3]
        g = self.avatar.bind(verts, mouth if mouth is not None and self.n_mouth > 0 else None)
        K = self.K.clone()
        K[:2] *= size / self.frame_size
        out = self.rasterize(g, K.expand(expr.shape[0], 3, 3), size)
        bg = F.interpolate(self.background, size=(size, size), mode="bilinear", align_corners=False)
        alpha = out["alpha"]
        out = dict(out)
        out["image"] = out["colour"] + (1.0 - alpha) * bg.clamp(0, 1)
        return out
