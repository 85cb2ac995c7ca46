"""The training step on CUDA with everything but the rasterizer replayed from CUDA graphs.

It composes the scene's steps (`avatar.scene`: pose -> splat inputs | rasterize | maps -> composite) and
the loss terms (`losses.motion_terms`, `image_terms`, `total_loss`) that the eager step composes.

At batch 1 and 512x512 a step is launch bound: GRMN (4 Transformer layers, two 112k-wide decoder
heads), the head model, the binding (Eq. 7-8), the splat features, the map post-step and the
losses launch close to a thousand small kernels forward and backward, while the rasterizer itself
takes ~1 ms. This module computes exactly what `loop.loss_terms` computes, in three parts:

    pose   (CUDA graph, forward + backward): [GRMN ->] head model -> binding -> splat features
                                              [+ L_KL, L_Score, param L1 from GRMN's outputs]
    gsplat (eager: it sizes its tile lists on the host, which a graph cannot hold)
    maps   (CUDA graph, forward + backward): map post-step -> background composite -> L_Render, L_Geo

The graphs come from `torch.cuda.make_graphed_callables` (autograd-aware: gradients reach the
same parameters as the eager step), captured on first use per (identity, stage); parameters are
read in place, so optimizer steps and `load_state_dict` are seen by every replay.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

from emotag_core.avatar.scene import Splats, camera_view, maps, rasterize_splats, splat_inputs
from emotag_core.train import losses


def supported(scene: Any, sw: Any, device: str | torch.device) -> bool:
    """Whether the graphed step can run this scene: CUDA, an IdentityScene with the gsplat rasterizer."""
    from emotag_core.avatar.scene import IdentityScene

    return (torch.device(device).type == "cuda" and sw.render and isinstance(scene, IdentityScene)
            and scene.backend in ("auto", "gsplat"))


class _Pose(nn.Module):
    """[GRMN ->] head model -> binding -> splat inputs (+ GRMN's loss terms); a graphed callable."""

    def __init__(self, grmn: nn.Module | None, scene: Any, sw: Any, viewmat: Tensor) -> None:
        super().__init__()
        self.grmn = grmn
        self.avatar = scene.avatar
        self._scene = [scene]  # not a submodule: only the avatar's parameters are graph inputs
        self.sw = sw
        self.register_buffer("viewmat", viewmat)
        self.terms: list[str] = []

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        scene, sw = self._scene[0], self.sw
        if self.grmn is None:  # static stage: tracked motion
            expr, jaw, rot, trans = args
            return splat_inputs(scene.pose(expr, jaw, rot, trans, None), self.viewmat)
        audio, aus, s, rot, trans, p_emo, e, expr_t, jaw_t = args
        out = self.grmn(audio, aus, s)
        splat = splat_inputs(scene.pose(out.expr, out.jaw, rot, trans, out.mouth), self.viewmat)
        terms = losses.motion_terms(out, p_emo, e, expr_t, jaw_t, sw)  # the eager step's terms and weights
        self.terms = list(terms)
        return (*splat, *terms.values())


class _Maps(nn.Module):
    """Splatted features -> maps -> composite -> L_Render (Eq. 11) [+ L_Geo (Eq. 14)]; a graphed callable."""

    def __init__(self, scene: Any, sw: Any, size: int) -> None:
        super().__init__()
        self.background = scene.background  # the only parameter this part reads
        self._scene = [scene]
        self.sw = sw
        self.size = size
        self.posed = bool(getattr(scene, "moving_layers", False))  # then rot, trans [B, 3] follow `ref`
        self.terms: list[str] = []

    def forward(self, feat: Tensor, alpha: Tensor, zacc: Tensor, ref: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        pose, geo = (rest[:2], rest[2:]) if self.posed else ((None, None), rest)
        r = self._scene[0].composite(maps(feat, alpha, zacc), self.size, None, *pose)
        terms = losses.image_terms(r, ref, self.sw, *geo)  # L_Render (Eq. 11) [+ L_Geo (Eq. 14)]
        self.terms = list(terms)
        return tuple(terms.values())


class GraphedStep:
    """`loop.compute_losses` for IdentityScenes on CUDA, from CUDA graphs; returns tensors, never syncs
    beyond gsplat's own read of its intersection count.

    `timing` (a dict) switches on synchronized per-phase timers (milliseconds appended per phase),
    for benchmarks only. `quiesce`: a context manager factory entered around every capture, in which no
    other thread may call CUDA (e.g. `Prefetcher.paused`: a capture sees every thread's CUDA calls).
    """

    def __init__(self, grmn: nn.Module, sw: Any, size: int, timing: dict[str, list[float]] | None = None,
                 quiesce: Callable[[], AbstractContextManager[Any]] | None = None) -> None:
        self.grmn = grmn
        self.sw = sw
        self.size = size
        self.timing = timing
        self.quiesce = quiesce
        self._pose: dict[tuple[str, bool], Callable[..., Any]] = {}
        self._maps: dict[tuple[str, bool], Callable[..., Any]] = {}
        self._terms: dict[tuple[str, bool], list[str]] = {}  # per (identity, static): the pose graph's terms
        self._map_terms: dict[tuple[str, bool], list[str]] = {}  # per (identity, geo): the maps graph's terms
        self._K: dict[str, Tensor] = {}

    def _mark(self, name: str, t0: float) -> float:
        torch.cuda.synchronize()
        t1 = time.perf_counter()
        self.timing.setdefault(name, []).append(1e3 * (t1 - t0))  # type: ignore[union-attr]
        return t1

    def _graph(self, fn: nn.Module, args: tuple[Tensor, ...], what: str) -> Callable[..., Any]:
        """Capture `fn` (forward + backward). No autograd graph of an earlier step may still be alive."""
        from emotag_core.errors import ConfigError

        sample = tuple(a.detach().clone().requires_grad_(a.requires_grad) for a in args)
        try:
            with self.quiesce() if self.quiesce is not None else nullcontext():
                return torch.cuda.make_graphed_callables(fn, sample, num_warmup_iters=3, allow_unused_input=True)
        except Exception as exc:  # a failed capture leaves the CUDA context unusable: stop with a way out
            raise ConfigError(f"training step: CUDA-graph capture of {what} failed ({type(exc).__name__}: {exc}); "
                              "set `pretrain.cuda_graphs: false` to train with the eager step") from exc

    def __call__(self, scene: Any, batch: Any, static: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """(total loss, per-term detached tensors) of one batch, as `loop.compute_losses` defines them."""
        sw, size, B = self.sw, self.size, batch.image.shape[0]
        key = (batch.identity, static)
        t = time.perf_counter() if self.timing is not None else 0.0
        if batch.identity not in self._K:
            self._K[batch.identity] = scene.intrinsics(size, B).contiguous()
        K = self._K[batch.identity]
        if key not in self._pose:
            mod = _Pose(None if static else self.grmn, scene, sw, camera_view(B, K).contiguous())
            args = self._pose_args(batch, static)
            with torch.no_grad():
                mod(*args)  # records which loss terms the graph returns
            self._terms[key] = list(mod.terms)
            self._pose[key] = self._graph(mod, args, f"the {'static' if static else 'joint'} pose of `{batch.identity}`")
        out = self._pose[key](*self._pose_args(batch, static))  # type: ignore[misc]
        splats = Splats(*out[:5])
        named = dict(zip(self._terms[key], out[5:]))
        if self.timing is not None:
            t = self._mark("pose_fwd" if static else "grmn_pose_fwd", t)
        view = self._pose_view(B, K)
        feat, alpha, zacc = rasterize_splats(splats, view, K, size, scene.backend)  # eager: gsplat sizes on the host
        if self.timing is not None:
            t = self._mark("gsplat_fwd", t)
        geo = sw.geo and batch.depth is not None and batch.normal is not None
        posed = (batch.rot, batch.trans) if getattr(scene, "moving_layers", False) else ()  # the layers follow the pose
        margs = (feat, alpha, zacc, batch.image) + posed + ((batch.depth, batch.normal) if geo else ())
        mkey = (batch.identity, geo)
        if mkey not in self._maps:
            mod = _Maps(scene, sw, size)
            with torch.no_grad():
                mod(*margs)  # records which loss terms the graph returns
            self._map_terms[mkey] = list(mod.terms)
            self._maps[mkey] = self._graph(mod, margs, f"the loss maps of `{batch.identity}`")
        lt = self._maps[mkey](*margs)  # type: ignore[misc]
        named.update(zip(self._map_terms[mkey], lt))
        if self.timing is not None:
            t = self._mark("maps_losses_fwd", t)
        total = losses.total_loss(named, sw, batch.audio.new_zeros(()))  # Eq. 10, as the eager step sums it
        return total, losses.report(named, total)

    def _pose_view(self, B: int, K: Tensor) -> Tensor:
        if not hasattr(self, "_view"):
            self._view = camera_view(B, K)
        return self._view

    @staticmethod
    def _pose_args(batch: Any, static: bool) -> tuple[Tensor, ...]:
        if static:
            return batch.expr, batch.jaw, batch.rot, batch.trans
        return batch.audio, batch.aus, batch.s, batch.rot, batch.trans, batch.p_emo, batch.e, batch.expr, batch.jaw
