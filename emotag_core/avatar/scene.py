"""One identity's renderable scene, as a pipeline of public steps (paper Sec. 3.1-3.2, Eq. 3, 7-8):

    pose           FLAME motion (+ GRMN's mouth offsets) -> posed Gaussians       `IdentityScene.pose`
    splat inputs   posed Gaussians -> means, quats, scales, opacities, features  `splat_inputs`
    rasterize      splat inputs -> splatted features, alpha, accumulated depth   `rasterize_splats`
    maps           -> colour, alpha, depth, normal maps                          `maps`
    composite      maps + the identity's background -> `image`                   `IdentityScene.composite`

`IdentityScene.render` runs them in order. The training step (`train.loop`), the CUDA-graphed training
step (`train.fast`) and the graphed animator (`render.graphed`) compose these same steps; they differ
only in which of them a CUDA graph replays. The Gaussians and the background are the identity's trainable
appearance; the head model is shared and fixed.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Protocol

import torch
from torch import Tensor, nn

from emotag_core.errors import InputError


class Scene(Protocol):
    """What the training loops need from an identity's scene."""

    n_mouth: int

    def parameters(self) -> Any: ...

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int) -> dict[str, Tensor]: ...


class Splats(NamedTuple):
    """What a rasterizer backend splats (a tuple: a CUDA graph can return it as its outputs)."""

    means: Tensor  # [B, N, 3] camera space
    quats: Tensor  # [B, N, 4]
    scales: Tensor  # [B, N, 3]
    opacities: Tensor  # [B, N] in (0, 1)
    features: Tensor  # [B, N, 6]: RGB seen from the camera + camera-space normal


def camera_view(batch: int, like: Tensor) -> Tensor:
    """The view matrix [B, 4, 4] of a scene: identity (its Gaussians are posed in camera space)."""
    return torch.eye(4, device=like.device, dtype=like.dtype).expand(batch, 4, 4)


def splat_inputs(g: Any, viewmat: Tensor) -> Splats:
    """Posed Gaussians -> Splats: SH -> RGB per Gaussian from the camera centre, normals, opacities [B, N]."""
    from emotag_core.avatar.rasterize import gaussian_features

    feats = gaussian_features(g, viewmat, with_normals=True)  # [B, N, 6]
    B, N = g.batch, g.n
    opac = g.opacities if g.opacities.ndim == 2 else g.opacities[None].expand(B, N)
    return Splats(g.means, g.quats, g.scales, opac, feats)


def rasterize_splats(s: Splats, viewmat: Tensor, K: Tensor, size: int,
                     backend: str = "auto") -> tuple[Tensor, Tensor, Tensor]:
    """Splats, viewmat [B, 4, 4], K [B, 3, 3] -> feat [B, H, W, 6], alpha [B, H, W, 1], depth acc [B, H, W, 1]
    (H = W = size) with gsplat (CUDA) or the torch compositor (`backend`: auto, gsplat, torch)."""
    from emotag_core.avatar.rasterize import resolve_backend

    B = s.means.shape[0]
    if K.shape != (B, 3, 3) or viewmat.shape != (B, 4, 4):
        raise InputError(None, f"rasterize: K must be [B={B}, 3, 3] and viewmat [B, 4, 4], got "
                               f"{tuple(K.shape)} and {tuple(viewmat.shape)}")
    if resolve_backend(backend, s.means.device) == "gsplat":  # type: ignore[arg-type]
        from emotag_core.avatar.gsplat_raster import rasterize_gsplat as fn
    else:
        from emotag_core.avatar.cpu_raster import rasterize_torch as fn
    return fn(*s, viewmat, K, size, size)


def maps(feat: Tensor, alpha: Tensor, zacc: Tensor) -> dict[str, Tensor]:
    """Splatted features, alpha, accumulated depth -> colour/alpha [B, C, H, W], depth [B, H, W], normal [B, H, W, 3]."""
    from emotag_core.avatar.rasterize import finish_maps

    return render_maps(finish_maps(feat, alpha, zacc))


def render_maps(r: Any) -> dict[str, Tensor]:
    """An avatar RenderOutput -> the layout `render` returns (colour/alpha [B, C, H, W], depth [B, H, W], normal)."""
    return {"colour": r.color.permute(0, 3, 1, 2), "alpha": r.alpha.permute(0, 3, 1, 2),
            "depth": r.depth[..., 0], "normal": r.normal}


class IdentityScene(nn.Module):
    """Head model (fixed) + GaussianAvatar (trainable) + background image (trainable), rasterized by `backend`."""

    def __init__(self, head: nn.Module, avatar: nn.Module, shape: Tensor, K: Tensor, frame_size: int,
                 backend: str = "auto", background_size: int = 64) -> None:
        super().__init__()
        self.head = [head]  # a list: shared, not a submodule (not saved with each identity)
        self.avatar = avatar
        self.register_buffer("shape", shape.reshape(1, -1).float())  # [1, S] tracked identity shape
        self.register_buffer("K", K.reshape(3, 3).float())  # intrinsics at `frame_size`
        self.frame_size = int(frame_size)
        self.backend = backend
        self.background = nn.Parameter(torch.full((1, 3, background_size, background_size), 0.5))

    @property
    def n_mouth(self) -> int:
        return int(self.avatar.n_mouth)

    def pose(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None) -> Any:
        """expr [B, E], jaw/rot/trans [B, 3], mouth [B, M, 10] | None -> posed Gaussians (camera space, Eq. 7-8).
        With a body pose (`set_body`) the head turns on the neck and the base of the neck holds the body's pose."""
        neck = self.neck(rot)
        verts = self.head[0](self.shape, expr, jaw, rot, trans, **({} if neck is None else {"neck": neck}))  # [B, V, 3]
        # a GRMN without a mouth head (motion-only, [B, 0, 10]) leaves the mouth Gaussians where the mesh puts them
        use = mouth is not None and self.n_mouth > 0 and mouth.shape[1] > 0
        return self.avatar.bind(verts, mouth if use else None)

    def set_body(self, body: Tensor | None) -> None:
        """body [3, 3]: the clip's body rotation (camera frame, as `rot`), which the base of the neck holds
        while the head turns (the track's split: body = R(rot) F R(neck)^T F); None: a rigid neck. Saved with
        the scene."""
        from emotag_core.flame.model import FLAME_TO_CV

        if body is None:
            for k in ("body", "_neck_l", "_neck_r"):
                self._buffers.pop(k, None)
            return
        if tuple(body.shape) != (3, 3):
            raise InputError(None, f"set_body: body must be a [3, 3] rotation, got {tuple(body.shape)}")
        F = FLAME_TO_CV.to(self.K.device)
        # neck = F body^T R F (FLAME frame): keep the left factor F body^T and F as buffers, so the step makes
        # no host tensors (a CUDA graph can capture it)
        self.register_buffer("body", body.float().contiguous().to(self.K.device))
        self.register_buffer("_neck_l", F @ self.body.T, persistent=False)
        self.register_buffer("_neck_r", F.clone(), persistent=False)

    def neck(self, rot: Tensor) -> Tensor | None:
        """rot [B, 3] -> the neck rotation [B, 3] (axis-angle, FLAME frame, body -> head) that holds the body
        pose, or None without one (rigid neck)."""
        if getattr(self, "body", None) is None:
            return None
        from emotag_core.flame.model import matrix_to_axis_angle, rodrigues

        return matrix_to_axis_angle(self._neck_l @ rodrigues(rot) @ self._neck_r)

    def intrinsics(self, size: int, batch: int) -> Tensor:
        """K [B, 3, 3] at the render size."""
        K = self.K.clone()
        K[:2] *= size / self.frame_size
        return K.expand(batch, 3, 3)

    def rasterize(self, g: Any, K: Tensor, size: int) -> dict[str, Tensor]:
        """Posed Gaussians, K [B, 3, 3] at `size` -> maps (splat inputs -> rasterize -> maps)."""
        view = camera_view(K.shape[0], K)
        return maps(*rasterize_splats(splat_inputs(g, view), view, K, size, self.backend))

    # -- the layers behind the head (issue 18): a background plate and a torso layer, from the adaptation frames
    @property
    def has_layers(self) -> bool:
        """True when the head is composited over the identity's torso layer and background plate."""
        return getattr(self, "plate", None) is not None and self.plate.numel() > 0

    def set_layers(self, plate: Tensor, torso: Tensor | None, motion: Tensor | None = None) -> None:
        """plate [3, H, W] uint8 (the scene behind the person); torso [4, H, W] or [L, 4, H, W] uint8 RGBA layers
        (hair, neck, torso), drawn first to last over the plate, at the frame size; saved with the scene.
        motion [L, 7, 6] float (`avatar.layer_motion`): each layer follows the head pose ([rot, trans, 1] ->
        affine_grid theta); None: the layers stay put. From then on `composite` puts the head over them."""
        if plate.dtype != torch.uint8 or plate.ndim != 3 or plate.shape[0] != 3:
            raise InputError(None, f"set_layers: plate must be [3, H, W] uint8, got {tuple(plate.shape)} {plate.dtype}")
        if torso is not None and torso.ndim == 3:
            torso = torso[None]
        if torso is not None and (torso.dtype != torch.uint8 or tuple(torso.shape[1:]) != (4, *plate.shape[1:])):
            raise InputError(None, f"set_layers: torso must be [L, 4, H, W] uint8 like the plate, got {tuple(torso.shape)}")
        if motion is not None and (torso is None or tuple(motion.shape) != (torso.shape[0], 7, 6)):
            raise InputError(None, f"set_layers: motion must be [L={0 if torso is None else torso.shape[0]}, 7, 6], "
                                   f"got {tuple(motion.shape)}")
        dev = self.K.device
        self.register_buffer("plate", plate[None].contiguous().to(dev))
        self.register_buffer("torso", (torso if torso is not None else torch.zeros(1, 4, *plate.shape[1:],
                                                                         dtype=torch.uint8)).contiguous().to(dev))
        self.register_buffer("motion", None if motion is None else motion.float().contiguous().to(dev))
        self.over: Tensor | None = None
        self._backdrops: dict[tuple[int, str], Tensor] = {}

    @property
    def moving_layers(self) -> bool:
        """True when the layers follow the head pose (`set_layers(..., motion=...)`)."""
        return self.has_layers and getattr(self, "motion", None) is not None

    def set_over(self, image: Tensor | None) -> None:
        """Render onto another backdrop: image [3, H, W] uint8 (or a colour, [3, 1, 1]) in place of the plate
        (the torso layer stays on top); None: back to the plate. Not saved."""
        self.over = None if image is None else image.to(self.K.device)
        self._backdrops = {}

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._backdrops = {}  # the layers may change in place
        return super().load_state_dict(*args, **kwargs)

    def backdrop(self, size: int) -> Tensor:
        """[1, 3, size, size] in [0, 1]: the layers over the plate (or `set_over`'s image), resized; moving layers
        at the adaptation's mean pose. Fixed buffers: computed once per size and device (not every training step)."""
        return self._cached(("backdrop", int(size)), lambda: self._backdrop(int(size)))

    def _cached(self, key: tuple[Any, ...], make: Any) -> Tensor:
        key = (*key, str(self.plate.device))
        cache = self.__dict__.setdefault("_backdrops", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def _base(self, size: int) -> Tensor:
        """The plate (or `set_over`'s image) [1, 3, size, size] in [0, 1]."""
        import torch.nn.functional as F

        base = self.plate if getattr(self, "over", None) is None else self.over
        base = base.float().div(255.0).reshape(1, 3, *base.shape[-2:])
        if base.shape[-2:] != self.plate.shape[-2:]:
            base = F.interpolate(base, size=tuple(self.plate.shape[-2:]), mode="bilinear", align_corners=False)
        if base.shape[-1] != size:
            base = F.interpolate(base, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return base

    def _layers(self, size: int) -> Tensor:
        """The layers [L, 4, size, size] in [0, 1], RGB premultiplied by alpha."""
        import torch.nn.functional as F

        t = self.torso.float() / 255.0
        t = torch.cat([t[:, :3] * t[:, 3:], t[:, 3:]], 1)
        if t.shape[-1] != size:
            t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return t

    def _backdrop(self, size: int) -> Tensor:
        import torch.nn.functional as F

        if self.moving_layers:  # the warp at a zero pose (the regression's bias)
            zero = self.motion.new_zeros(1, 3)
            return self.backdrop_at(size, zero, zero)
        img = self._base(self.plate.shape[-1])  # static layers: composited at the frame size, then resized
        for layer in self.torso.float() / 255.0:
            a = layer[None, 3:]
            img = layer[None, :3] * a + img * (1.0 - a)
        if img.shape[-1] != size:
            img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        return img

    def backdrop_at(self, size: int, rot: Tensor, trans: Tensor) -> Tensor:
        """[B, 3, size, size]: the layers moved to the head pose rot/trans [B, 3] (`avatar.layer_motion`) over
        the plate; `backdrop(size)` when the layers do not move."""
        if not self.moving_layers:
            return self.backdrop(size)
        from emotag_core.avatar.layer_motion import layer_theta, warp_layers

        base = self._cached(("base", int(size)), lambda: self._base(int(size)))
        layers = self._cached(("layers", int(size)), lambda: self._layers(int(size)))
        return warp_layers(base, layers, layer_theta(self.motion, rot, trans))

    def composite(self, out: dict[str, Tensor], size: int, out_size: int | None = None, rot: Tensor | None = None,
                  trans: Tensor | None = None) -> dict[str, Tensor]:
        """Rasterized maps + what lies behind the head -> the same maps with `image` [B, 3, S, S] added
        (S = out_size or size). With layers: head, then hair/torso, then plate; else the learned background.
        out_size: upsample colour and alpha (bilinear) to it first, so the layers stay at full resolution.
        rot/trans [B, 3]: the head pose that moving layers follow (None: their mean pose)."""
        import torch.nn.functional as F

        out = dict(out)
        if out_size is not None and int(out_size) != size:
            size = int(out_size)
            for k in ("colour", "alpha"):
                out[k] = F.interpolate(out[k], size=(size, size), mode="bilinear", align_corners=False)
        if self.has_layers:
            bg = self.backdrop_at(size, rot, trans) if rot is not None and trans is not None else self.backdrop(size)
        else:
            bg = F.interpolate(self.background, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
        out["image"] = out["colour"] + (1.0 - out["alpha"]) * bg
        return out

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int, out_size: int | None = None) -> dict[str, Tensor]:
        """expr [B, E], jaw/rot/trans [B, 3], mouth [B, M, 10] | None -> image [B, 3, S, S] etc.
        (rasterized at `size`; S = out_size or size, see `composite`)."""
        g = self.pose(expr, jaw, rot, trans, mouth)
        return self.composite(self.rasterize(g, self.intrinsics(size, expr.shape[0]), size), size, out_size, rot, trans)


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
    return IdentityScene(head, avatar, shape, camera_K(meta["camera"]), frame_size, backend).to(device)
