"""Landmark-fitting head tracker: shared shape + focal, per-frame expression, jaw and head pose.

Fits the head model's MediaPipe landmark embedding to 2-D landmarks (crop pixels) by
minimising reprojection error with L2 priors and a first-difference temporal smoothness term,
batched over frames (Adam, CPU or GPU). Two passes: (1) identity: shape and focal length on a
spread of frames from all clips; (2) per clip, chunk by chunk, the per-frame parameters with
shape and focal fixed, each chunk warm-started from the end of the previous one. Frames without
landmarks take no data term and are linearly interpolated afterwards (valid = False).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from emotag_core.config import TrackConfig
from emotag_core.errors import DivergenceError, InputError
from emotag_core.flame.model import HeadModel, intrinsics, project

IRIS = slice(468, 478)
BLOWUP_PX = 1e5   # a mean squared error beyond this (px^2) is a divergence


@dataclass
class Camera:
    """Pinhole intrinsics of the crop (principal point at the centre)."""

    focal: float
    size: int

    def K(self, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
        return intrinsics(self.focal, self.size, batch).to(device)

    def as_dict(self) -> dict[str, float]:
        c = self.size / 2
        return {"fx": self.focal, "fy": self.focal, "cx": c, "cy": c, "width": self.size, "height": self.size}


@dataclass
class ClipTrack:
    """Per-frame fit of one clip."""

    clip_id: str
    frame: np.ndarray          # [T] int
    valid: np.ndarray          # [T] bool
    expr: np.ndarray           # [T, E]
    jaw: np.ndarray            # [T, 3]
    rot: np.ndarray            # [T, 3]
    trans: np.ndarray          # [T, 3]
    fit_error_px: np.ndarray   # [T] mean landmark error (-1 where invalid)


def _weights(model: HeadModel, cfg: TrackConfig) -> Tensor:
    w = model.landmark_mask.float().clone()   # [478]
    w[IRIS] *= cfg.iris_weight
    return w


def _init_pose(model: HeadModel, lmk: Tensor, found: Tensor, focal: float, size: int) -> tuple[Tensor, Tensor]:
    """rot = 0 and trans from the 2-D centroid and spread of the landmarks. lmk [T, 478, 2]."""
    mask = model.landmark_mask
    z = model.zeros(1)
    ref = model.landmarks_from_params(z["shape"], z["expr"], z["jaw"], torch.zeros(1, 3),
                                      torch.zeros(1, 3))[0, mask]                  # [n, 3] at origin
    r_m = (ref[:, :2] - ref[:, :2].mean(0)).norm(dim=-1).mean()
    pts = lmk[:, mask]                                                                # [T, n, 2]
    c = pts.mean(1)
    spread = (pts - c[:, None]).norm(dim=-1).mean(1).clamp_min(1.0)
    depth = focal * r_m / spread
    depth = torch.where(found, depth, depth[found].median() if found.any() else torch.full_like(depth, 0.6))
    cc = torch.where(found[:, None], c, torch.full_like(c, size / 2))
    tx = (cc[:, 0] - size / 2) * depth / focal - ref[:, 0].mean()
    ty = (cc[:, 1] - size / 2) * depth / focal - ref[:, 1].mean()
    trans = torch.stack([tx, ty, depth - ref[:, 2].mean()], -1)
    return torch.zeros_like(trans), trans


def _fit(model: HeadModel, lmk: Tensor, found: Tensor, cfg: TrackConfig, size: int, *, shape: Tensor,
         log_f: Tensor, fit_identity: bool, init: dict[str, Tensor], iters: int, clip: str,
         frames: np.ndarray, smooth: bool) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """One Adam fit over a batch of frames. lmk [T, 478, 2], found [T] -> params, shape, log_f."""
    T = lmk.shape[0]
    dev = lmk.device
    p = {k: init[k].clone().to(dev).requires_grad_(True) for k in ("expr", "jaw", "rot", "trans")}
    shape = shape.clone().to(dev).requires_grad_(fit_identity)
    log_f = log_f.clone().to(dev).requires_grad_(fit_identity and cfg.fit_focal)
    lr = cfg.lr
    groups = [{"params": [p["expr"]], "lr": lr * 5}, {"params": [p["jaw"], p["rot"]], "lr": lr},
              {"params": [p["trans"]], "lr": lr * 0.5}]
    if fit_identity:
        groups.append({"params": [shape], "lr": lr * 5})
        if cfg.fit_focal:
            groups.append({"params": [log_f], "lr": lr * 2})
    opt = torch.optim.Adam(groups)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=iters,
                                                pct_start=0.1, final_div_factor=50)
    w = _weights(model, cfg).to(dev)                                                  # [478]
    fw = found.float()                                                                # [T]
    denom = (fw.sum() * w.sum()).clamp_min(1.0)
    rigid_until = iters // 5
    for it in range(iters):
        opt.zero_grad(set_to_none=True)
        focal = log_f.exp()
        expr = p["expr"] if it >= rigid_until else p["expr"].detach()
        jaw = p["jaw"] if it >= rigid_until else p["jaw"].detach()
        pts = model.landmarks_from_params(shape[None], expr, jaw, p["rot"], p["trans"])
        K = intrinsics(focal, size, T)
        uv = project(pts, K)                                                         # [T, 478, 2]
        res = ((uv - lmk) ** 2).sum(-1)                                              # [T, 478] px^2
        data = (res * w * fw[:, None]).sum() / denom
        prior = (cfg.expr_prior * (p["expr"] ** 2).sum(-1).mean()
                 + cfg.jaw_prior * ((p["jaw"][:, 1:] ** 2).sum(-1) + torch.relu(-p["jaw"][:, 0]) ** 2).mean())
        if fit_identity:
            prior = prior + cfg.shape_prior * (shape ** 2).sum() / max(T, 1) \
                + 10.0 * (log_f - math.log(cfg.focal_init * size)) ** 2
        loss = data + prior
        if smooth and T > 1:
            d = lambda x: ((x[1:] - x[:-1]) ** 2).sum(-1).mean()  # noqa: E731
            loss = loss + cfg.smooth_weight * (d(p["expr"]) * 2 + d(p["jaw"]) * 500 + d(p["rot"]) * 500
                                               + d(p["trans"]) * 2e4)
        if not torch.isfinite(loss) or data.item() > BLOWUP_PX:
            _raise_divergence(clip, frames, res, p, it, float(loss.detach()))
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        err = (res.detach().sqrt() * (w > 0)).sum(-1) / (w > 0).sum()               # [T] mean px error
    out = {k: v.detach() for k, v in p.items()}
    return out, shape.detach(), log_f.detach(), err


def _raise_divergence(clip: str, frames: np.ndarray, res: Tensor, p: dict[str, Tensor], it: int,
                      loss: float) -> None:
    bad = ~torch.isfinite(res).all(-1)
    for v in p.values():
        bad |= ~torch.isfinite(v).all(-1)
    if not bad.any():
        bad = res.detach().mean(-1) >= res.detach().mean(-1).max()
    i = int(torch.nonzero(bad)[0])
    raise DivergenceError(f"clip {clip}: frame {int(frames[i])}: tracking diverged at step {it} "
                          f"(loss {loss:.3g}); check that frame's landmarks or lower track.lr")


def _interpolate(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of x [T, D] at invalid frames (edges hold the nearest)."""
    if valid.all() or not valid.any():
        return x
    t = np.arange(len(x))
    out = x.copy()
    for d in range(x.shape[1]):
        out[~valid, d] = np.interp(t[~valid], t[valid], x[valid, d])
    return out


class Tracker:
    """Fits a head model to landmark tracks; `fit_identity` once, then `track_clip` per clip."""

    def __init__(self, model: HeadModel, cfg: TrackConfig, size: int) -> None:
        self.model = model
        self.cfg = cfg
        self.size = size
        self.device = torch.device(cfg.device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, cfg.threads))
        self.shape = torch.zeros(model.n_shape, device=self.device)
        self.log_f = torch.tensor(math.log(cfg.focal_init * size), device=self.device)

    @property
    def camera(self) -> Camera:
        return Camera(float(self.log_f.exp()), self.size)

    def _lmk(self, landmarks: np.ndarray) -> Tensor:
        return torch.as_tensor(np.asarray(landmarks, np.float32)[..., :2], device=self.device)

    def fit_identity(self, clips: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]) -> None:
        """Shared shape and focal from frames spread over clips [(clip_id, frames [T], lmk [T, 478, 2+], found [T])]."""
        picks = []
        for clip_id, frames, lmk, found in clips:
            idx = np.nonzero(found)[0]
            picks += [(clip_id, frames[i], lmk[i]) for i in idx]
        if not picks:
            raise InputError(None, "no frame of any clip has landmarks; nothing to track",
                             "check the landmarks stage output (face_found is False everywhere)")
        k = min(self.cfg.identity_frames, len(picks))
        sel = [picks[int(i)] for i in np.linspace(0, len(picks) - 1, k).round().astype(int)]
        lmk = self._lmk(np.stack([s[2] for s in sel]))
        found = torch.ones(k, dtype=torch.bool, device=self.device)
        frames = np.array([s[1] for s in sel])
        rot, trans = _init_pose(self.model, lmk, found, float(self.log_f.exp()), self.size)
        init = {"expr": torch.zeros(k, self.model.n_expr), "jaw": torch.zeros(k, 3), "rot": rot, "trans": trans}
        _, self.shape, self.log_f, _ = _fit(
            self.model, lmk, found, self.cfg, self.size, shape=self.shape, log_f=self.log_f,
            fit_identity=True, init=init, iters=self.cfg.iters * 2, clip=sel[0][0], frames=frames, smooth=False)

    def track_clip(self, clip_id: str, frames: np.ndarray, landmarks: np.ndarray, found: np.ndarray,
                   progress: callable | None = None) -> ClipTrack:
        """Per-frame parameters of one clip: landmarks [T, 478, 2+] in crop pixels, found [T]."""
        T = len(frames)
        found = np.asarray(found, bool)
        if not found.any():
            raise InputError(None, f"clip {clip_id}: no frame has landmarks; nothing to track",
                             "drop the clip or re-run landmarks")
        E = self.model.n_expr
        out = {"expr": np.zeros((T, E), np.float32), "jaw": np.zeros((T, 3), np.float32),
               "rot": np.zeros((T, 3), np.float32), "trans": np.zeros((T, 3), np.float32)}
        err = np.full(T, -1.0, np.float32)
        prev: dict[str, Tensor] | None = None
        step = self.cfg.chunk
        for s in range(0, T, step):
            sl = slice(s, min(T, s + step))
            n = sl.stop - sl.start
            lmk = self._lmk(landmarks[sl])
            fnd = torch.as_tensor(found[sl], device=self.device)
            rot, trans = _init_pose(self.model, lmk, fnd, float(self.log_f.exp()), self.size)
            init = {"expr": torch.zeros(n, E), "jaw": torch.zeros(n, 3), "rot": rot, "trans": trans}
            if prev is not None:   # warm start from the end of the previous chunk (rotation, expression)
                for k in ("expr", "jaw", "rot"):
                    init[k] = prev[k][-1:].expand(n, -1).clone()
            if fnd.any():
                p, _, _, e = _fit(self.model, lmk, fnd, self.cfg, self.size, shape=self.shape, log_f=self.log_f,
                                  fit_identity=False, init=init, iters=self.cfg.iters, clip=clip_id,
                                  frames=frames[sl], smooth=True)
            else:
                p, e = init, torch.full((n,), -1.0)
            for k in out:
                out[k][sl] = p[k].cpu().numpy()
            err[sl] = np.where(found[sl], e.cpu().numpy(), -1.0)
            prev = p
            if progress is not None:
                progress(n)
        for k in out:
            out[k] = _interpolate(out[k], found)
        return ClipTrack(clip_id, np.asarray(frames), found.copy(), out["expr"], out["jaw"], out["rot"],
                         out["trans"], err)
