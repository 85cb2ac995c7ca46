"""A faster per-frame path for inference on CUDA: the part of a frame before rasterization,
replayed from a captured CUDA graph (or compiled with torch.compile).

At batch 1 a frame is kernel-launch bound: GRMN (4 Transformer layers), the head model and the
binding (Eq. 7-8) launch a few hundred small kernels that each finish in microseconds. This
module runs that part ("posing": audio/AU windows + identity + head pose -> GRMN -> the scene's
`pose` and `splat_inputs` steps, `emotag_core.avatar.scene`) as one CUDA-graph replay for a fixed
batch size. The scene's rasterize, maps and composite steps stay eager: gsplat sizes its tile
lists on the host (a device-to-host read of the intersection count), which a graph cannot hold.

    poser = FramePoser(grmn, scene, s, batch=1, mode="graph")
    colour = poser.render(audio_win, aus_win, rot, trans, size=512)   # [B, 3, H, W] in [0, 1]
    animator = GraphedAnimator(grmn, scene, s, batch=1, device="cuda")  # for render.driver.animate_stream
    animator = build_animator(grmn, scene, s, graphed="auto", batch=8, device="cuda")  # what render@<id> uses

Modes: `eager` (plain calls, the reference), `graph` (torch.cuda.CUDAGraph capture, CUDA only),
`compile` (torch.compile of the posing function, any device). Outputs match `eager` to float
rounding (tests/render/test_graphed.py, marked gpu); BENCHMARKS.md has the measured gains.
`build_animator` picks the graphed animator on CUDA and the eager `Animator` on the CPU (`render.graphed`).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from emotag_core.avatar.scene import Splats, camera_view, maps, rasterize_splats, splat_inputs
from emotag_core.errors import ConfigError, InputError
from emotag_core.motion.grmn import GRMN
from emotag_core.render.driver import Animated, Animator, GateControl, apply_gate

PoseMode = Literal["eager", "graph", "compile"]


@dataclasses.dataclass
class Posed:
    """One batch of posed frames (views into the poser's static buffers in `graph` mode)."""

    means: Tensor  # [B, N, 3] camera space
    quats: Tensor  # [B, N, 4]
    scales: Tensor  # [B, N, 3]
    g: Tensor  # [B, 1] gate actually used (after the control)
    jaw: Tensor  # [B, 3]
    g_pred: Tensor  # [B, 1] gate the network predicted (before the control)
    p_emo: Tensor | None  # [B, 7] softmax(z_e); None without the residual branch
    opacities: Tensor  # [B, N]
    features: Tensor  # [B, N, 6] RGB seen from the camera + camera-space normal

    @property
    def splats(self) -> Splats:
        """What the rasterizer step takes (`avatar.scene.rasterize_splats`)."""
        return Splats(self.means, self.quats, self.scales, self.opacities, self.features)


class FramePoser:
    """GRMN + gate control + the scene's pose and splat-input steps for a fixed batch size, eager / graphed /
    compiled; `draw` runs the scene's remaining steps (rasterize -> maps -> composite) eagerly.

    `scene` is an `emotag_core.avatar.scene.IdentityScene` (head model, avatar, shape, K, background).
    """

    def __init__(self, grmn: GRMN, scene: Any, s: Tensor, batch: int, mode: PoseMode = "graph",
                 control: GateControl | None = None, warmup: int = 3) -> None:
        if mode not in ("eager", "graph", "compile"):
            raise ConfigError(f"FramePoser: mode must be eager, graph or compile, got {mode!r}")
        self.grmn = grmn.eval()
        self.scene = scene
        self.batch = int(batch)
        self.mode = mode
        self.control = control or GateControl()
        dev = scene.K.device
        if mode == "graph" and dev.type != "cuda":
            raise ConfigError("FramePoser: mode 'graph' needs the model on CUDA; use 'eager' or 'compile'")
        self.device = dev
        self.s = torch.as_tensor(s, dtype=torch.float32, device=dev).reshape(1, -1).expand(self.batch, -1).contiguous()
        sp = grmn.spec
        B = self.batch
        # static input buffers: graph replays read these, so new inputs are copied in
        self._in = {
            "audio": torch.zeros(B, sp.window, sp.audio_dim, device=dev),  # [B, W, D]
            "aus": torch.zeros(B, sp.window, sp.n_aus, device=dev),  # [B, W, A]
            "rot": torch.zeros(B, 3, device=dev),
            "trans": torch.zeros(B, 3, device=dev),
        }
        self._in["trans"][:, 2] = 0.6
        self._view = camera_view(B, self._in["rot"])  # [B, 4, 4]: the scene's Gaussians are in camera space
        self._fn = self._pose
        self._graph: torch.cuda.CUDAGraph | None = None
        self._out: tuple[Tensor, ...] | None = None
        if mode == "compile":
            self._fn = torch.compile(self._pose, dynamic=False)
        if mode in ("graph", "compile"):
            self._capture(warmup)

    def set_control(self, control: GateControl) -> None:
        """Change the gate control between two `pose` calls; a captured graph bakes the control in, so it is
        captured again (eager and compiled modes read it at the next call)."""
        if control == self.control:
            return
        self.control = control
        if self._graph is not None:
            self._graph = None
            self._capture(1)

    # -- the posing function: everything before rasterization -----------------------------------
    def _pose(self, audio: Tensor, aus: Tensor, rot: Tensor, trans: Tensor) -> tuple[Tensor, ...]:
        raw = self.grmn(audio, aus, self.s)
        out = apply_gate(raw, self.control, self.grmn.spec.n_expr)  # Eq. 6 with the controlled gate
        mouth = out.mouth if out.mouth.shape[1] > 0 else None
        sp = splat_inputs(self.scene.pose(out.expr, out.jaw, rot, trans, mouth), self._view)  # Eq. 7-8
        p_emo = None if raw.z_e is None else raw.z_e.softmax(-1)
        return sp.means, sp.quats, sp.scales, out.g, out.jaw, raw.g, p_emo, sp.opacities, sp.features

    @torch.no_grad()
    def _capture(self, warmup: int) -> None:
        if self.mode == "compile":  # compile + autotune happen on the first calls
            for _ in range(max(1, warmup)):
                self._fn(**self._in)
            return
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):  # warm-up off the capture stream (cuBLAS handles, lazy init)
            for _ in range(max(1, warmup)):
                self._pose(**self._in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._out = self._pose(**self._in)

    @torch.no_grad()
    def pose(self, audio_win: Tensor, aus_win: Tensor, rot: Tensor, trans: Tensor) -> Posed:
        """audio_win [B, W, D], aus_win [B, W, A], rot/trans [B, 3] -> Posed (B = the poser's batch)."""
        if audio_win.shape[0] != self.batch:
            raise InputError(None, f"FramePoser built for batch {self.batch}, got {audio_win.shape[0]} frames",
                             "pad the last batch or build a poser per batch size")
        if self.mode == "eager":
            res = self._pose(audio_win.to(self.device), aus_win.to(self.device), rot.to(self.device),
                             trans.to(self.device))
        else:
            for k, v in zip(("audio", "aus", "rot", "trans"), (audio_win, aus_win, rot, trans)):
                self._in[k].copy_(v, non_blocking=True)
            if self._graph is not None:
                self._graph.replay()
                assert self._out is not None
                res = self._out
            else:
                res = self._fn(**self._in)
        return Posed(*res)

    @torch.no_grad()
    def draw(self, posed: Posed, size: int, out_size: int | None = None, rot: Tensor | None = None,
             trans: Tensor | None = None) -> Tensor:
        """Rasterize posed Gaussians at `size` over the scene's background -> colour [B, 3, S, S] in [0, 1]
        (S = out_size or size: the scene's layers are composited at S; rot/trans [B, 3]: the pose moving layers follow)."""
        sc = self.scene
        K = sc.intrinsics(size, self.batch)
        r = maps(*rasterize_splats(posed.splats, self._view, K, size, sc.backend))
        return sc.composite(r, size, out_size, rot, trans)["image"]  # the scene's own steps, as IdentityScene.render runs them

    def render(self, audio_win: Tensor, aus_win: Tensor, rot: Tensor, trans: Tensor, size: int) -> Tensor:
        """pose + draw: [B, W, D], [B, W, A], [B, 3], [B, 3] -> [B, 3, size, size]."""
        return self.draw(self.pose(audio_win, aus_win, rot, trans), size, None, rot.to(self.device), trans.to(self.device))


class GraphedAnimator(Animator):
    """A drop-in `render.driver.Animator` whose posing runs through a `FramePoser` (graph by default).

    Batches smaller than `batch` (the last one of a clip) are padded by repeating their last frame.
    """

    def __init__(self, grmn: GRMN, scene: Any, s: Tensor, batch: int, size: int = 512,
                 control: GateControl | None = None, device: str | torch.device = "cpu",
                 mode: PoseMode = "graph", raster_size: int | None = None) -> None:
        super().__init__(grmn, scene, s, size=size, control=control, device=device)
        self.raster_size = int(raster_size or size)
        self.poser = FramePoser(grmn, scene, s, batch, mode=mode, control=self.control)

    def set_control(self, control: GateControl) -> None:
        super().set_control(control)
        self.poser.set_control(control)

    @torch.no_grad()
    def __call__(self, audio_win: np.ndarray, aus_win: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> Animated:
        """audio_win [n, W, D], aus_win [n, W, A], rot/trans [n, 3] (n <= batch) -> Animated."""
        B, n = self.poser.batch, len(audio_win)
        if n > B:
            raise InputError(None, f"GraphedAnimator built for batch {B}, got {n} frames", "use render batch_size <= batch")
        pad = np.r_[np.arange(n), np.full(B - n, n - 1)]
        t = [torch.as_tensor(np.asarray(x)[pad], dtype=torch.float32).to(self.device, non_blocking=True)
             for x in (audio_win, aus_win, rot, trans)]
        posed = self.poser.pose(*t)
        layered = self.size if getattr(self.scene, "has_layers", False) else None
        img = self.poser.draw(posed, self.raster_size, layered, t[2], t[3])  # [B, 3, H, W]
        if img.shape[-1] != self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        frames = (img[:n].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return Animated(frames, posed.g[:n].reshape(-1).cpu().numpy(), posed.g_pred[:n].reshape(-1).cpu().numpy(),
                        None if posed.p_emo is None else posed.p_emo[:n].cpu().numpy(), posed.jaw[:n].cpu().numpy())


def build_animator(grmn: GRMN, scene: Any, s: Tensor, *, graphed: Literal["auto"] | bool = "auto", batch: int = 8,
                   size: int = 512, control: GateControl | None = None, device: str | torch.device = "cpu",
                   raster_size: int | None = None) -> Animator:
    """The animator inference runs with: `GraphedAnimator` (CUDA-graph posing, batch `batch`) when
    `graphed` is True, or "auto" on a CUDA device; else the eager `Animator`. Same frames, gate
    control and traces either way (graph = eager to float rounding)."""
    dev = torch.device(device)
    if graphed not in ("auto", True, False):
        raise ConfigError(f"render.graphed must be auto, true or false, got {graphed!r}")
    use_graph = dev.type == "cuda" if graphed == "auto" else bool(graphed)
    if use_graph and dev.type != "cuda":
        raise ConfigError(f"render.graphed: true needs a CUDA device (render.device is {device}); "
                          "set render.graphed: auto or false on the CPU")
    if use_graph:
        return GraphedAnimator(grmn, scene, s, batch=batch, size=size, control=control, device=dev, mode="graph",
                               raster_size=raster_size)
    return Animator(grmn, scene, s, size=size, control=control, device=dev, raster_size=raster_size)
