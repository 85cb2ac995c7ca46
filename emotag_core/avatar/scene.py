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

    def pose(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None) -> Any:
        """expr [B, E], jaw/rot/trans [B, 3], mouth [B, M, 10] | None -> posed Gaussians (camera space)."""
        verts = self.head[0](self.shape, expr, jaw, rot, trans)  # [B, V, 3]
        return self.avatar.bind(verts, mouth if mouth is not None and self.n_mouth > 0 else None)

    def intrinsics(self, size: int, batch: int) -> Tensor:
        """K [B, 3, 3] at the render size."""
        K = self.K.clone()
        K[:2] *= size / self.frame_size
        return K.expand(batch, 3, 3)

    def composite(self, out: dict[str, Tensor], size: int) -> dict[str, Tensor]:
        """Rasterized maps + the background image -> the same maps with `image` [B, 3, size, size] added."""
        import torch.nn.functional as F

        bg = F.interpolate(self.background, size=(size, size), mode="bilinear", align_corners=False)
        out = dict(out)
        out["image"] = out["colour"] + (1.0 - out["alpha"]) * bg.clamp(0, 1)
        return out

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int) -> dict[str, Tensor]:
        """expr [B, E], jaw/rot/trans [B, 3], mouth [B, M, 10] | None -> image [B, 3, size, size] etc."""
        g = self.pose(expr, jaw, rot, trans, mouth)
        return self.composite(self.rasterize(g, self.intrinsics(size, expr.shape[0]), size), size)


def render_maps(r: Any) -> dict[str, Tensor]:
    """An avatar RenderOutput -> the layout `render` returns (colour/alpha [B, C, H, W], depth [B, H, W], normal)."""
    return {"colour": r.color.permute(0, 3, 1, 2), "alpha": r.alpha.permute(0, 3, 1, 2),
            "depth": r.depth[..., 0], "normal": r.normal}


def gaussian_rasterize(backend: str = "auto") -> Rasterize:
    """The avatar's rasterizer (gsplat on CUDA, the torch compositor on CPU) in the layout `render` needs."""

    def fn(g: Any, K: Tensor, size: int) -> dict[str, Tensor]:
        from emotag_core.avatar import rasterize

        B = K.shape[0]
        view = torch.eye(4, device=K.device, dtype=K.dtype).expand(B, 4, 4)  # Gaussians are in camera space
        return render_maps(rasterize(g, K, view, size, size, background=None, backend=backend))

    fn.backend = backend  # type: ignore[attr-defined]  # the training loop's CUDA-graph path reads it
    return fn


def camera_K(camera: dict[str, Any]) -> Tensor:
    """3x3 intrinsics from the flame table's `camera` metadata (fx, fy, cx, cy)."""
    return torch.tensor([[camera["fx"], 0.0, camera["cx"]], [0.0, camera["fy"], camera["cy"]], [0.0, 0.0, 1.0]])


def build_scene(head: nn.Module, meta: dict[str, Any], n_gaussians: int, seed: int | None = None,
                backend: str = "auto", device: str | torch.device = "cpu") -> IdentityScene:
    """A fresh scene for one identity: Gaussians sampled on its neutral mesh, mouth set from the head model.

    The Gaussian layout (parents, barycentric positions) and the mouth set depend only on the
    head model's topology and `n_gaussians` (Sec. 3.1: a fixed mouth set on the template), so
    every identity matches the GRMN's mouth head. `seed` (default None) overrides that layout
    seed; pass the same value for every identity or leave it None.
    """
    from emotag_core.avatar import GaussianAvatar

    shape = torch.tensor(meta["shape"], dtype=torch.float32, device=device)[None]
    z = head.zeros(1, device=device)
    rest = head(shape, z["expr"], z["jaw"], z["rot"], z["trans"])[0]  # [V, 3] neutral, closed jaw
    mask = None
    ids = getattr(head, "mouth_vertex_ids", None)
    if ids is not None and ids.numel() > 0:
        mask = torch.zeros(rest.shape[0], dtype=torch.bool, device=device)
        mask[ids] = True
    avatar = GaussianAvatar(rest, head.faces, n_gaussians=n_gaussians, mouth_vertex_mask=mask, seed=seed).to(device)
    frame_size = int(meta["frame_size"][0])
    return IdentityScene(head, avatar, shape, camera_K(meta["camera"]), frame_size, gaussian_rasterize(backend)).to(device)
