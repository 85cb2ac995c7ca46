"""Tracking accuracy against known truth (the synthetic corpus): 2-D vertex error and jaw angle.

The synthetic clips are rendered at their own size and intrinsics; ingest re-crops every frame
with a box (x0, y0, side) in source pixels and rescales it to the crop size. The true mesh is
projected with the true camera in source pixels and mapped through that same box; the fitted mesh
is projected with the tracker's own camera in crop pixels. Both are compared in crop pixels.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from emotag_core.errors import InputError
from emotag_core.flame.model import HeadModel, intrinsics, rodrigues


@dataclass
class TrackAccuracy:
    """Per-frame errors of one clip (frames where the tracker had landmarks)."""

    clip_id: str
    vertex_px: np.ndarray     # [T] mean 2-D distance of projected skin vertices, crop pixels
    jaw_deg: np.ndarray       # [T] angle of the relative jaw rotation, degrees
    valid: np.ndarray         # [T] bool: the tracker had landmarks on this frame
    region_px: dict[str, np.ndarray] = field(default_factory=dict)  # region -> [T] mean over its visible vertices

    def summary(self) -> dict[str, float]:
        v = self.valid
        out = {"frames": int(v.sum()), "vertex_px_mean": float(self.vertex_px[v].mean()),
               "vertex_px_p95": float(np.percentile(self.vertex_px[v], 95)),
               "jaw_deg_mean": float(self.jaw_deg[v].mean()),
               "jaw_deg_p95": float(np.percentile(self.jaw_deg[v], 95))}
        for k, e in self.region_px.items():
            ok = v & np.isfinite(e)
            out[f"{k}_px_mean"] = float(e[ok].mean()) if ok.any() else float("nan")
        return out


def source_to_crop(px: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Source-frame pixels [T, N, 2] -> crop pixels through per-frame boxes [T, 4] (x0, y0, side, side)."""
    box = np.asarray(box, np.float64)
    scale = size / box[:, 2]
    return ((px - box[:, None, :2]) * scale[:, None, None]).astype(np.float32)


def skin_vertex_ids(model: HeadModel) -> Tensor:
    """Vertices of the face surface (the intra-oral mesh of the augmented model excluded). [n]"""
    keep = torch.ones(model.n_verts, dtype=torch.bool, device=model.v_template.device)
    if model.mouth_vertex_ids.numel():
        keep[model.mouth_vertex_ids] = False
    return torch.nonzero(keep)[:, 0]


def region_vertex_ids(model: HeadModel) -> dict[str, Tensor]:
    """Vertex sets reported separately: `face` and `head_neck` for models with parts (ICT), else `face` =
    the skin."""
    names = getattr(model, "part_names", None)
    if not names:
        return {"face": skin_vertex_ids(model)}
    return {p: torch.nonzero(model.part == names.index(p))[:, 0] for p in ("face", "head_neck")}


def facing_camera(model: HeadModel, verts: Tensor) -> Tensor:
    """Which vertices face the camera [B, V] bool (area-weighted normals of the surface faces; the camera
    sits at the origin), a cheap stand-in for visibility on a convex-ish head."""
    f = model.faces[:model.n_face_faces]
    tri = verts[:, f]                                                           # [B, F, 3, 3]
    n = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)
    vn = torch.zeros_like(verts).index_add_(1, f.reshape(-1), n.repeat_interleave(3, 1))
    ref = (vn * verts).sum(-1)
    # outward normals point away from the head's centre; facing the camera = normal toward the origin
    c = verts.mean(1, keepdim=True)
    outward = ((vn * (verts - c)).sum(-1) > 0).float().mean(-1, keepdim=True) > 0.5
    return torch.where(outward, ref < 0, ref > 0)


def jaw_angle_deg(jaw_true: np.ndarray, jaw_fit: np.ndarray) -> np.ndarray:
    """Geodesic angle between two axis-angle jaw rotations [T, 3] -> [T] degrees."""
    r = rodrigues(torch.as_tensor(jaw_true, dtype=torch.float64)).transpose(-1, -2) \
        @ rodrigues(torch.as_tensor(jaw_fit, dtype=torch.float64))                     # [T, 3, 3]
    cos = ((r.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
    return np.degrees(torch.acos(cos).numpy())


@torch.no_grad()
def _project(model: HeadModel, ids: Tensor, shape: Tensor, expr: np.ndarray, jaw: np.ndarray, rot: np.ndarray,
             trans: np.ndarray, K: Tensor, chunk: int = 256) -> np.ndarray:
    out = []
    dev = model.v_template.device
    for s in range(0, len(expr), chunk):
        sl = slice(s, s + chunk)
        t = lambda a: torch.as_tensor(np.asarray(a[sl], np.float32), device=dev)  # noqa: E731
        v = model(shape[None].to(dev), t(expr), t(jaw), t(rot), t(trans), vertex_ids=ids)
        out.append(model.project(v, K.to(dev).expand(v.shape[0], -1, -1)).cpu().numpy())
    return np.concatenate(out)


def track_accuracy(model: HeadModel, truth: Mapping[str, np.ndarray], box: np.ndarray, size: int,
                   fit: Mapping[str, np.ndarray], shape: np.ndarray, focal: float, clip_id: str = "") -> TrackAccuracy:
    """Errors of a fitted clip against its truth.

    truth: the synth `truth/<clip>.npz` arrays (shape [S], expr [T, E], jaw/rot/trans [T, 3], K [3, 3]
    of the source frame); box [T, 4] the ingest crop boxes (frames.parquet `box`); fit: expr, jaw,
    rot, trans [T, ...] and valid [T] from the tracker, with its shared shape [S] and focal (crop px).
    """
    T = len(truth["expr"])
    for k in ("expr", "jaw", "rot", "trans", "valid"):
        if len(fit[k]) != T:
            raise InputError(None, f"clip {clip_id}: fitted `{k}` has {len(fit[k])} frames, truth has {T}",
                             "track the same frames that the synth stage wrote (ingest at the synth fps)")
    if len(box) != T:
        raise InputError(None, f"clip {clip_id}: {len(box)} crop boxes for {T} truth frames",
                         "re-run ingest on the synthetic identity at its own fps")
    ids = skin_vertex_ids(model)
    K_true = torch.as_tensor(np.asarray(truth["K"], np.float32))[None]
    true_src = _project(model, ids, torch.as_tensor(np.asarray(truth["shape"], np.float32)), truth["expr"],
                        truth["jaw"], truth["rot"], truth["trans"], K_true)             # [T, n, 2] source px
    true_crop = source_to_crop(true_src, box, size)
    fit_crop = _project(model, ids, torch.as_tensor(np.asarray(shape, np.float32)), fit["expr"], fit["jaw"],
                        fit["rot"], fit["trans"], intrinsics(focal, size))               # [T, n, 2] crop px
    vertex_px = np.linalg.norm(fit_crop - true_crop, axis=-1).mean(-1)
    # per region, visible (camera-facing in the true pose) vertices only
    all_ids = torch.arange(model.n_verts)
    region_px = {}
    regions = region_vertex_ids(model)
    with torch.no_grad():
        sh = torch.as_tensor(np.asarray(truth["shape"], np.float32))[None]
        vis = []
        for s in range(0, T, 64):
            sl = slice(s, s + 64)
            tt = lambda a: torch.as_tensor(np.asarray(a[sl], np.float32))  # noqa: E731
            v = model(sh, tt(truth["expr"]), tt(truth["jaw"]), tt(truth["rot"]), tt(truth["trans"]))
            vis.append(facing_camera(model, v).numpy())
        vis = np.concatenate(vis)                                                       # [T, V]
    true_all = source_to_crop(_project(model, all_ids, sh[0], truth["expr"], truth["jaw"], truth["rot"],
                                       truth["trans"], K_true), box, size)
    fit_all = _project(model, all_ids, torch.as_tensor(np.asarray(shape, np.float32)), fit["expr"], fit["jaw"],
                       fit["rot"], fit["trans"], intrinsics(focal, size))
    d_all = np.linalg.norm(fit_all - true_all, axis=-1)                                  # [T, V]
    for name, rid in regions.items():
        r = rid.numpy()
        m = vis[:, r]
        region_px[name] = np.where(m.any(1), (d_all[:, r] * m).sum(1) / np.maximum(m.sum(1), 1), np.nan)
    return TrackAccuracy(clip_id, vertex_px, jaw_angle_deg(truth["jaw"], fit["jaw"]), np.asarray(fit["valid"], bool),
                         region_px)
