"""The pretraining and adaptation loops (paper Sec. 3.3-3.4 and the curriculum of Sec. 4).

Each identity's first `static_iters` steps fit static appearance only (tracked FLAME motion drives
the mesh, only the identity's Gaussians and background learn); after that GRMN drives the motion
and is trained jointly. Adaptation freezes GRMN except its AdaIN modulation parameters and adds
L_Geo. Both loops checkpoint atomically and resume bit-exactly.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from emotag_core.errors import ConfigError, DivergenceError
from emotag_core.motion.grmn import GRMN
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.train import losses
from emotag_core.train.checkpoint import load_latest, save_checkpoint
from emotag_core.train.losses import LossSwitches
from emotag_core.train import fast as _fast
from emotag_core.train.data import Batch, CorpusLoader, Prefetcher

LogFn = Callable[[int, Mapping[str, float]], None]


@dataclass
class LoopConfig:
    """What a loop run needs beyond the model: lengths, rates, sizes and bookkeeping."""

    iters: int
    """Total iterations (each identity's static steps included)."""
    static_iters: int
    """Static-appearance steps per identity before GRMN joins (curriculum stage 1)."""
    lr: float
    """AdamW learning rate."""
    image_size: int
    """Render resolution."""
    checkpoint_every: int
    """Iterations between resumable checkpoints (0 = only at the end)."""
    log_every: int = 10
    """Iterations between logged metrics."""
    weight_decay: float = 0.0
    """AdamW weight decay of the network parameters."""
    lr_schedule: str = "constant"
    """`constant`, or `cosine`: every group's rate follows a cosine from its initial value down to
    `LR_FLOOR` of it at the last iteration (a function of the iteration: resumes exactly)."""
    scene_lr: float | None = None
    """Adaptation: learning rate of the identity's Gaussians and background (None = `lr`)."""
    ema: float = 0.0
    """Pretraining: decay of an exponential moving average of GRMN's weights, copied into the model at
    the end (0 = off, the paper)."""
    anchor: float = 0.0
    """Adaptation: weight of the L2 pull of the tuned GRMN parameters toward their pretrained values
    (adds anchor * (theta - theta_0) to their gradients; 0 = off, the paper)."""
    cuda_graphs: bool = True
    """On CUDA with the gsplat rasterizer: replay the step's pose and loss parts from CUDA graphs
    (`train.fast`; the same losses and gradients, far fewer kernel launches)."""
    preload: bool = True
    """On CUDA: a time-limited loader (adaptation's clip) is decoded onto the device once; a streaming
    one (pretraining) reads ahead in a background thread."""


LR_SCHEDULES = ("constant", "cosine")
LR_FLOOR = 0.01  # cosine schedule: the last iteration's rate, as a fraction of the initial one


def lr_factor(schedule: str, it: int, iters: int) -> float:
    """Learning-rate multiplier of iteration `it` (0-based) of `iters` under `schedule`."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + math.cos(math.pi * it / max(iters - 1, 1)))
    raise ConfigError(f"`pretrain.lr_schedule` must be one of {LR_SCHEDULES}, got {schedule!r}")


def compute_losses(grmn: GRMN, scene: Any, batch: Batch, static: bool, sw: LossSwitches,
                   size: int) -> tuple[Tensor, dict[str, float], Any]:
    """Eq. 10 for one batch: (total loss, per-term values, GRMN output or None).

    With `sw.render` off (motion-only) `scene` may be None and `static` must be False.
    """
    total, terms, out = loss_terms(grmn, scene, batch, static, sw, size)
    values = {k: float(v) for k, v in terms.items()}
    _raise_if_diverged(values, batch.identity, batch.rows)
    return total, values, out


def loss_terms(grmn: GRMN, scene: Any, batch: Batch, static: bool, sw: LossSwitches,
               size: int) -> tuple[Tensor, dict[str, Tensor], Any]:
    """`compute_losses` without reading anything back: per-term values stay detached device tensors.

    The terms and their weights come from `losses.motion_terms` / `image_terms` / `total_loss`, the same
    functions the CUDA-graphed step (`fast.GraphedStep`) calls."""
    out = None
    if static and not sw.render:
        raise ValueError("motion-only training has no static-appearance stage")
    if static:
        expr, jaw, mouth = batch.expr, batch.jaw, None
    else:
        out = grmn(batch.audio, batch.aus, batch.s)
        expr, jaw, mouth = out.expr, out.jaw, out.mouth
    terms: dict[str, Tensor] = {}
    if sw.render:
        r = scene.render(expr, jaw, batch.rot, batch.trans, mouth, size)
        terms.update(losses.image_terms(r, batch.image, sw, batch.depth, batch.normal))
    if out is not None:
        terms.update(losses.motion_terms(out, batch.p_emo, batch.e, batch.expr, batch.jaw, sw))
    total = losses.total_loss(terms, sw, batch.audio.new_zeros(()))  # Eq. 10
    return total, losses.report(terms, total), out


def _raise_if_diverged(terms: Mapping[str, float], identity: str, rows: Any) -> None:
    if not math.isfinite(terms["loss"]):
        bad = [k for k, v in terms.items() if not math.isfinite(v)]
        raise DivergenceError(f"identity `{identity}`, index rows {rows.tolist()}: loss terms {bad} "
                              "are NaN/Inf; lower the learning rate or check these frames' tables")


class _Pending:
    """Loss terms of the iterations not read back yet (CUDA: one device->host copy per log step)."""

    def __init__(self) -> None:
        self.items: list[tuple[int, str, Any, bool, dict[str, Tensor]]] = []

    def add(self, it: int, batch: Batch, static: bool, terms: dict[str, Tensor]) -> None:
        self.items.append((it, batch.identity, batch.rows, static, terms))

    def flush(self) -> list[tuple[int, bool, dict[str, float]]]:
        """Read every pending term back at once; raises DivergenceError at the first non-finite loss."""
        if not self.items:
            return []
        flat = torch.stack([v.float().reshape(()) for *_, t in self.items for v in t.values()]).tolist()
        out, k = [], 0
        for it, identity, rows, static, t in self.items:
            vals = dict(zip(t, flat[k:k + len(t)]))
            k += len(t)
            _raise_if_diverged(vals, identity, rows)
            out.append((it, static, vals))
        self.items = []
        return out


def _loop(grmn: GRMN, scenes: nn.ModuleDict, loader: CorpusLoader, optimizer: torch.optim.Optimizer,
          cfg: LoopConfig, sw: LossSwitches, ckpt_dir: str | Path | None, fingerprint: str, device: str,
          log: LogFn | None, progress: Progress,
          anchors: list[tuple[Tensor, Tensor]] | None = None) -> dict[str, Any]:
    lr_factor(cfg.lr_schedule, 0, 1)  # an unknown schedule fails before any work
    if not 0.0 <= cfg.ema < 1.0:
        raise ConfigError(f"`pretrain.ema` must be in [0, 1) (0 = off), got {cfg.ema}")
    ema = None
    if cfg.ema > 0:  # a running average of GRMN's weights (and buffers), kept beside the trained copy
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
        ema = AveragedModel(grmn, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
    start = 0
    seen = {k: 0 for k in loader.ids}
    last: dict[str, float] = {}  # the last step's loss terms (the summary's `final`)
    state = load_latest(ckpt_dir, fingerprint) if ckpt_dir is not None else None
    if state is not None:
        grmn.load_state_dict(state["grmn"])
        scenes.load_state_dict(state["scenes"])
        optimizer.load_state_dict(state["optimizer"])
        loader.load_state_dict(state["loader"])
        seen = dict(state["seen"])
        start = int(state["iteration"])
        last = dict(state.get("last", {}))  # a kill after the final checkpoint resumes with 0 steps to run
        if ema is not None:
            if "ema" not in state:
                raise ConfigError(f"{ckpt_dir}: the checkpoint has no weight average but `pretrain.ema` is on; "
                                  "clear the checkpoints or turn `pretrain.ema` off")
            ema.load_state_dict(state["ema"])

    cuda = torch.device(device).type == "cuda"
    source: Any = loader
    if cuda and cfg.preload and isinstance(loader, CorpusLoader) and not loader.preloaded:
        if loader.max_seconds is not None:
            loader.preload(device)  # the bounded adaptation clip, decoded once
        else:
            source = Prefetcher(loader, pin=True)  # streaming corpus: read ahead
    fast = None
    if cuda and cfg.cuda_graphs and any(_fast.supported(m, sw, device) for m in scenes.values()):
        # captures happen mid-run (first use per identity): the read-ahead thread must not pin meanwhile
        fast = _fast.GraphedStep(grmn, sw, cfg.image_size,
                                 quiesce=source.paused if isinstance(source, Prefetcher) else None)

    def checkpoint(it: int) -> None:
        if ckpt_dir is None:
            return
        save_checkpoint(ckpt_dir, it, {"fingerprint": fingerprint, "grmn": grmn.state_dict(),
                                       "scenes": scenes.state_dict(), "optimizer": optimizer.state_dict(),
                                       "loader": source.state_dict(), "seen": dict(seen), "last": dict(last),
                                       **({"ema": ema.state_dict()} if ema is not None else {})})

    pending = _Pending()
    ready: list[tuple[int, bool, dict[str, float]]] = []
    progress(start, cfg.iters)

    def emit() -> None:
        nonlocal last
        for i, st, vals in ready:
            last = vals
            if log is not None and (i + 1) % cfg.log_every == 0:
                log(i + 1, dict(vals, static=float(st)))
        ready.clear()

    try:
        for it in range(start, cfg.iters):
            batch = source.next_batch().to(device, non_blocking=cuda)
            static = sw.render and seen[batch.identity] < cfg.static_iters
            seen[batch.identity] += 1
            if cfg.lr_schedule != "constant":  # initial_lr is kept in the optimizer state: exact on resume
                f = lr_factor(cfg.lr_schedule, it, cfg.iters)
                for group in optimizer.param_groups:
                    group["lr"] = group.setdefault("initial_lr", group["lr"]) * f
            optimizer.zero_grad(set_to_none=True)
            scene = scenes[batch.identity] if batch.identity in scenes else None
            if fast is not None and _fast.supported(scene, sw, device):
                total, terms = fast(scene, batch, static)
            else:
                total, terms, _ = loss_terms(grmn, scene, batch, static, sw, cfg.image_size)
            pending.add(it, batch, static, terms)
            if not cuda:  # the CPU reads each loss back at once and stops before a diverged step
                ready += pending.flush()
            total.backward()
            if anchors:  # grad of anchor/2 * ||theta - theta_0||^2 (L2-SP)
                for p, p0 in anchors:
                    if p.grad is not None:
                        p.grad.add_(p.detach() - p0, alpha=cfg.anchor)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(grmn)
            del total  # no autograd graph may outlive its step: a CUDA-graph capture on the next one would see it
            ckpt_now = bool(cfg.checkpoint_every) and (it + 1) % cfg.checkpoint_every == 0 and it + 1 < cfg.iters
            if (it + 1) % cfg.log_every == 0 or ckpt_now:
                ready += pending.flush()  # CUDA: one read-back per log step; a diverged run never checkpoints
            emit()
            progress(it + 1, cfg.iters, **({"loss": last["loss"]} if "loss" in last else {}))
            if ckpt_now:
                checkpoint(it + 1)
        ready += pending.flush()
        emit()
    finally:
        if isinstance(source, Prefetcher):
            source.close()
    if ema is not None:  # the average is the trained model; the final checkpoint holds it (and the average)
        grmn.load_state_dict(ema.module.state_dict())
    checkpoint(cfg.iters)
    return {"iterations": cfg.iters, "resumed_from": start, "final": last, "static_steps": seen}


def _adamw_kw(device: str | torch.device) -> dict[str, Any]:
    """CUDA: the fused AdamW kernel (the same update rule in a few launches instead of dozens)."""
    return {"fused": True} if torch.device(device).type == "cuda" else {}


def pretrain(grmn: GRMN, scenes: Mapping[str, nn.Module], loader: CorpusLoader, cfg: LoopConfig,
             sw: LossSwitches, ckpt_dir: str | Path | None = None, fingerprint: str = "", device: str = "cpu",
             log: LogFn | None = None, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Train GRMN and every corpus identity's scene jointly (Sec. 3.3, pretraining); resumes from `ckpt_dir`.

    progress(iteration, cfg.iters, loss=the last loss read back), from the resumed iteration to cfg.iters."""
    mods = scenes if isinstance(scenes, nn.ModuleDict) else nn.ModuleDict(dict(scenes))
    groups = [{"params": list(grmn.parameters()), "weight_decay": cfg.weight_decay}]
    if len(list(mods.parameters())):  # motion-only runs have no scenes
        groups.append({"params": list(mods.parameters()), "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, **_adamw_kw(device))
    grmn.train()
    return _loop(grmn, mods, loader, opt, cfg, sw, ckpt_dir, fingerprint, device, log, progress)


def freeze_for_adaptation(grmn: GRMN) -> list[nn.Parameter]:
    """Freeze every GRMN weight except the AdaIN modulation parameters (Sec. 3.3); returns those."""
    for p in grmn.parameters():
        p.requires_grad_(False)
    tuned = grmn.adain_parameters()
    for p in tuned:
        p.requires_grad_(True)
    return tuned


def adapt(grmn: GRMN, scene: nn.Module | None, identity: str, loader: CorpusLoader, cfg: LoopConfig, sw: LossSwitches,
          ckpt_dir: str | Path | None = None, fingerprint: str = "", device: str = "cpu",
          log: LogFn | None = None, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Personalise a pretrained GRMN to one identity: AdaIN parameters + the identity's scene (Sec. 3.3).

    `scene` is None in motion-only runs (`sw.render` off): then only the AdaIN parameters learn.
    progress as in `pretrain`.
    """
    tuned = freeze_for_adaptation(grmn)
    mods = nn.ModuleDict({identity: scene}) if scene is not None else nn.ModuleDict()
    groups = [{"params": tuned, "weight_decay": 0.0}]
    if scene is not None:
        groups.append({"params": list(mods.parameters()), "weight_decay": 0.0, "lr": cfg.scene_lr or cfg.lr})
    opt = torch.optim.AdamW(groups, lr=cfg.lr, **_adamw_kw(device))
    grmn.eval()  # no dropout/batch statistics anywhere; frozen weights stay bit-identical
    anchors = [(p, p.detach().clone()) for p in tuned] if cfg.anchor > 0 else None  # the pretrained values
    return _loop(grmn, mods, loader, opt, cfg, sw, ckpt_dir, fingerprint, device, log, progress,
                 anchors)
