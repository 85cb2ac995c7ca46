"""The intra-oral region Omega_mouth and its Gaussians G_mouth (paper Sec. 3.1, last paragraph).

Mouth landmarks are lifted onto the (augmented, intra-oral) mesh by barycentric interpolation,
snapped to their nearest vertices, and grown over the mesh's edge graph under geometric
constraints into one contiguous region. Gaussians whose barycentric centre falls inside the
region form the mouth subset that receives the residual offsets of Eq. 8.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from emotag_core.errors import InputError

# MediaPipe Face Mesh lip contours (indices into the 478-point landmark set).
MP_INNER_LIPS = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
MP_OUTER_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
MOUTH_LANDMARKS = MP_INNER_LIPS + MP_OUTER_LIPS


@dataclass
class MouthRegionConfig:
    footprint_scale: float = 1.15
    """Dilation of the lips' ellipse (seen along the face's forward axis) that bounds growth."""
    front_margin: float = 0.1
    """How far in front of the lips (fraction of the lips' width) the region may reach."""
    depth: float = 1.0
    """How far behind the lips (fraction of the lips' width) the region may reach."""
    bridge: float = 0.08
    """Growth also steps between vertices closer than this (fraction of the lips' width), so
    separate intra-oral parts (teeth, tongue) next to the grown surface join it."""


def lift_landmarks(verts: Tensor, faces: Tensor, face_idx: Tensor, bary: Tensor) -> Tensor:
    """Barycentric lift of 2D landmarks embedded on the mesh: verts [V, 3] -> points [L, 3]."""
    tri = verts[faces[face_idx.long()]]                     # [L, 3, 3]
    return (bary[..., None] * tri).sum(-2)


def nearest_vertices(verts: Tensor, points: Tensor) -> Tensor:
    """Index of the nearest mesh vertex for each point: verts [V, 3], points [L, 3] -> [L] long."""
    return torch.cdist(points.double(), verts.double()).argmin(1)


def vertex_neighbours(faces: Tensor, n_verts: int) -> list[np.ndarray]:
    """Edge-graph adjacency of a triangle mesh: one sorted neighbour array per vertex."""
    f = faces.long().cpu().numpy()
    e = np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]])
    e = np.unique(np.sort(np.concatenate([e, e[:, ::-1]]), axis=1), axis=0)
    a = np.concatenate([e[:, 0], e[:, 1]])
    b = np.concatenate([e[:, 1], e[:, 0]])
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    starts = np.searchsorted(a, np.arange(n_verts + 1))
    return [b[starts[i]:starts[i + 1]] for i in range(n_verts)]


def grow_mouth_region(verts: Tensor, faces: Tensor, lip_points: Tensor, forward: Tensor | None = None,
                      cfg: MouthRegionConfig | None = None, allowed: Tensor | None = None) -> Tensor:
    """Omega_mouth as a vertex mask [V] bool, grown from the lips over the mesh's edges.

    verts [V, 3] (rest mesh), faces [F, 3], lip_points [L, 3] (lifted mouth landmarks),
    forward [3] (direction the face looks at, e.g. towards the camera; default: from the lips'
    plane, pointing away from the mesh centroid), allowed [V] bool (optional extra restriction,
    e.g. the augmented mesh's lips + intra-oral vertices). A vertex joins when it is reached over
    mesh edges from a seed and lies (a) inside the lips' ellipse seen along `forward`, dilated
    by `footprint_scale`, and (b) between `depth` lip-widths behind and `front_margin` in front
    of the lips' plane.
    """
    cfg = cfg or MouthRegionConfig()
    if lip_points.ndim != 2 or lip_points.shape[0] < 3:
        raise InputError(None, f"need at least 3 lifted mouth landmarks [L, 3], got {tuple(lip_points.shape)}")
    V = verts.shape[0]
    P = verts.detach().double().cpu()
    L = lip_points.detach().double().cpu()
    centre = L.mean(0)
    # lips' plane: the two largest principal directions of the lip points
    _, _, vt = torch.linalg.svd(L - centre, full_matrices=False)
    if forward is None:
        fwd = vt[2]
        if torch.dot(fwd, centre - P.mean(0)) < 0:
            fwd = -fwd
    else:
        fwd = forward.detach().double().cpu()
        fwd = fwd / fwd.norm()
    # in-plane axes orthogonal to forward
    a1 = vt[0] - torch.dot(vt[0], fwd) * fwd
    a1 = a1 / a1.norm()
    a2 = torch.linalg.cross(fwd, a1)

    def plane_coords(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        d = x - centre
        return d @ a1, d @ a2, d @ fwd

    lu, lv, _ = plane_coords(L)
    ru = lu.abs().max().clamp_min(1e-9) * cfg.footprint_scale
    rv = lv.abs().max().clamp_min(1e-9) * cfg.footprint_scale
    width = 2 * lu.abs().max()
    u, v, w = plane_coords(P)
    ok = ((u / ru) ** 2 + (v / rv) ** 2 <= 1.0) & (w <= cfg.front_margin * width) & (w >= -cfg.depth * width)
    if allowed is not None:
        ok &= allowed.detach().cpu().bool()
    seeds = nearest_vertices(P, L).unique()
    nbrs = vertex_neighbours(faces, V)
    cand = torch.nonzero(ok).flatten()
    if cfg.bridge > 0 and cand.numel() > 1:            # proximity edges among admissible vertices
        near = torch.cdist(P[cand], P[cand]) <= cfg.bridge * width
        for i, row in zip(cand.tolist(), near):
            extra = cand[row].numpy()
            nbrs[i] = np.union1d(nbrs[i], extra[extra != i])
    okn = ok.numpy()
    region = np.zeros(V, dtype=bool)
    frontier = [int(s) for s in seeds.tolist()]
    region[frontier] = True  # the snapped landmarks themselves always belong
    while frontier:
        nxt = []
        for i in frontier:
            for j in nbrs[i]:
                if not region[j] and okn[j]:
                    region[j] = True
                    nxt.append(int(j))
        frontier = nxt
    return torch.from_numpy(region)


def mouth_region_for_head(head, shape: Tensor | None = None, cfg: MouthRegionConfig | None = None) -> tuple[Tensor, Tensor]:
    """Omega_mouth of a head model (`emotag_core.flame` HeadModel) at its neutral pose.

    Lifts the MediaPipe lip landmarks with the model's barycentric landmark embedding, grows the
    region over the augmented mesh, and returns (rest verts [V, 3], vertex mask [V] bool).
    """
    B = 1
    z = head.zeros(B)
    if shape is not None:
        z["shape"] = shape.reshape(1, -1).to(z["shape"])
    with torch.no_grad():
        verts = head(**z)                                   # [1, V, 3], facing the camera
        lm = head.landmarks(verts)[0]                       # [478, 3]
    ids = torch.tensor(MOUTH_LANDMARKS)
    ids = ids[head.landmark_mask[ids].cpu()]
    region = grow_mouth_region(verts[0], head.faces, lm[ids], forward=torch.tensor([0.0, 0.0, -1.0]), cfg=cfg)
    return verts[0], region


def gaussians_in_region(vertex_mask: Tensor, faces: Tensor, parent: Tensor, bary: Tensor) -> Tensor:
    """Sorted indices [M] of the Gaussians whose centre lies in the region.

    The per-vertex indicator is interpolated with each Gaussian's barycentric weights
    (Eq. 3); a centre is inside where that value is >= 0.5.
    """
    m = vertex_mask.to(bary.device).float()[faces.long()]   # [F, 3]
    inside = (m[parent] * bary).sum(-1) >= 0.5
    return torch.nonzero(inside).flatten()
