"""Intra-oral geometry: teeth and a mouth cavity rigged to the jaw (the augmented mesh).

The paper takes FLAME's teeth from GaussianAvatars; here the same idea is built for any
FLAME-layout model: the mouth opening is found as the mesh boundary loop nearest to the inner
lip landmarks, a cavity (a tapering tube closed at the back) is grown from that loop, and an
upper and a lower dental arch are placed behind the lips. Upper teeth follow the head, lower
teeth the jaw joint; the cavity blends the lip ring's skinning into a half-open back wall.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import numpy as np

from emotag_core.errors import InputError
from emotag_core.flame.model import HeadModelData

MP_INNER_LIP_MID = (13, 14)     # MediaPipe upper/lower inner-lip midpoints
MP_MOUTH_CORNERS = (78, 308)    # inner mouth corners
CAVITY_RINGS = 4
ARCH_SEGMENTS = 12


def boundary_loops(faces: np.ndarray) -> list[list[int]]:
    """Ordered boundary vertex loops of a triangle mesh."""
    count: dict[tuple[int, int], int] = defaultdict(int)
    directed: dict[int, int] = {}
    for t in faces:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            count[(min(a, b), max(a, b))] += 1
    for t in faces:
        for a, b in ((t[0], t[1]), (t[1], t[2]), (t[2], t[0])):
            if count[(min(a, b), max(a, b))] == 1:
                directed[int(a)] = int(b)
    loops, seen = [], set()
    for start in directed:
        if start in seen:
            continue
        loop, cur = [], start
        while cur not in seen and cur in directed:
            seen.add(cur)
            loop.append(cur)
            cur = directed[cur]
        if len(loop) >= 3:
            loops.append(loop)
    return loops


def _landmark_points(data: HeadModelData, ids: tuple[int, ...]) -> np.ndarray:
    v = data.v_template
    return np.stack([(v[data.lmk_vertex_ids[i]] * data.lmk_bary[i][:, None]).sum(0) for i in ids])


def augment_mouth(data: HeadModelData) -> tuple[HeadModelData, dict[str, np.ndarray]]:
    """Append the cavity and teeth; returns the new model data and index sets.

    Index sets: `mouth_vertex_ids` [M] (all new vertices), `teeth_vertex_ids`, `mouth_faces`
    [Fm, 3] (the new faces, also appended to `faces`), `n_face_faces` (skin faces come first).
    """
    v = data.v_template.astype(np.float64)
    lm_mid = _landmark_points(data, MP_INNER_LIP_MID)
    if np.allclose(lm_mid, 0):
        raise InputError(data.source or None, "the landmark embedding lacks the inner-lip points 13/14",
                         "use a MediaPipe embedding that covers the lips")
    centre = lm_mid.mean(0)
    loops = boundary_loops(data.faces)
    if not loops:
        raise InputError(data.source or None, "the mesh has no mouth opening (no boundary loop)")
    loop = min(loops, key=lambda lp: np.linalg.norm(v[lp].mean(0) - centre))
    loop_v = v[loop]
    if np.linalg.norm(loop_v.mean(0) - centre) > 0.02:
        raise InputError(data.source or None, "no mesh boundary loop near the lips (mouth closed?)")
    corners = _landmark_points(data, MP_MOUTH_CORNERS)
    width = float(np.linalg.norm(corners[0] - corners[1]))         # mouth width (~4-5 cm)
    n_j = data.weights.shape[1]
    jaw = data.jaw_joint
    head_joint = int(data.parents[jaw])
    lower = loop_v[:, 1] < centre[1]

    new_v: list[np.ndarray] = []
    new_w: list[np.ndarray] = []
    anchor: list[tuple[np.ndarray, np.ndarray, float]] = []  # (anchor ids, anchor weights, expr scale)
    new_f: list[tuple[int, int, int]] = []
    base = v.shape[0]

    def add(p: np.ndarray, w: np.ndarray, ids: np.ndarray, aw: np.ndarray, escale: float) -> int:
        new_v.append(p)
        new_w.append(w)
        anchor.append((ids, aw, escale))
        return base + len(new_v) - 1

    # cavity: rings shrinking toward a back wall 3.5 cm behind the lips
    ring_ids = [np.asarray(loop)]
    w_loop = data.weights[loop]
    w_back = np.zeros(n_j)
    w_back[jaw], w_back[head_joint] = 0.5, 0.5
    for k in range(1, CAVITY_RINGS + 1):
        a = k / CAVITY_RINGS
        shrink = 1 - 0.55 * a
        pts = centre + (loop_v - centre) * shrink - np.array([0, 0, 0.035 * a]) \
            + np.array([0, -0.008 * np.sin(np.pi * a), 0])
        ids = []
        for i, p in enumerate(pts):
            w = (1 - a) * w_loop[i] + a * w_back
            ids.append(add(p, w, np.array([loop[i]]), np.array([1.0]), 1 - a))
        ring_ids.append(np.asarray(ids))
    back_c = add(centre - np.array([0, 0, 0.035]), w_back, np.asarray(loop), np.full(len(loop), 1 / len(loop)), 0.0)
    n = len(loop)
    for r0, r1 in zip(ring_ids[:-1], ring_ids[1:]):
        for i in range(n):
            j = (i + 1) % n
            new_f.append((int(r0[i]), int(r1[i]), int(r1[j])))
            new_f.append((int(r0[i]), int(r1[j]), int(r0[j])))
    for i in range(n):
        new_f.append((int(ring_ids[-1][i]), back_c, int(ring_ids[-1][(i + 1) % n])))
    n_cavity_faces = len(new_f)

    # teeth: two arches (bands) behind the lips, upper on the head, lower on the jaw
    teeth: list[int] = []
    z_front = float(loop_v[:, 2].max()) - 0.006
    half = 0.42 * width
    depth = 0.032
    y_mid = float(centre[1])
    mid_ids = np.asarray(loop)
    mid_w = np.full(len(loop), 1 / len(loop))
    for upper in (True, False):
        w = np.zeros(n_j)
        w[head_joint if upper else jaw] = 1.0
        y_edge = y_mid + (0.0005 if upper else -0.0005)
        y_root = y_edge + (0.009 if upper else -0.008)
        cols = []
        for s in range(ARCH_SEGMENTS + 1):
            th = np.pi * s / ARCH_SEGMENTS                     # 0..pi around the arch
            x = -half * np.cos(th) * (1.0 if upper else 0.93)
            z = z_front - depth * (1 - np.sin(th)) - (0.0 if upper else 0.002)
            top = add(np.array([x, y_root, z]), w, mid_ids, mid_w, 0.0)
            bot = add(np.array([x, y_edge, z]), w, mid_ids, mid_w, 0.0)
            cols.append((top, bot))
            teeth += [top, bot]
        for (a0, b0), (a1, b1) in zip(cols[:-1], cols[1:]):
            new_f.append((a0, b0, b1))
            new_f.append((a0, b1, a1))

    P = np.stack(new_v)
    W = np.stack(new_w)
    # orient the cavity so its normals face the mouth opening (the camera looks in along -z)
    f_arr = np.asarray(new_f, np.int64)
    allv = np.concatenate([v, P])
    tri = allv[f_arr[:n_cavity_faces]]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = centre - np.array([0, 0, 0.0175]) - tri.mean(1)
    if (np.einsum("ij,ij->i", nrm, inward) < 0).mean() > 0.5:
        f_arr[:n_cavity_faces] = f_arr[:n_cavity_faces, ::-1]
    tri = allv[f_arr[n_cavity_faces:]]
    nrm = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    if (nrm[:, 2] < 0).mean() > 0.5:                           # teeth face forward (+z)
        f_arr[n_cavity_faces:] = f_arr[n_cavity_faces:, ::-1]

    def extend(dirs: np.ndarray, use_escale: bool) -> np.ndarray:
        rows = []
        for ids, aw, es in anchor:
            d = np.tensordot(aw, dirs[ids], axes=(0, 0))
            rows.append(d * (es if use_escale else 1.0))
        return np.concatenate([dirs, np.stack(rows)]).astype(np.float32)

    n_new = len(P)
    posedirs = data.posedirs.reshape(data.posedirs.shape[0], -1, 3)
    posedirs = np.concatenate([posedirs, np.zeros((posedirs.shape[0], n_new, 3), posedirs.dtype)], 1)
    uv = data.uv
    if uv is not None and data.uv_faces is None and len(uv) == len(v):
        # new vertices take the UV of their nearest lip-loop vertex
        near = [loop[int(np.argmin(np.linalg.norm(loop_v - p, axis=1)))] for p in P]
        uv = np.concatenate([uv, uv[near]])
    uv_faces = data.uv_faces
    if uv_faces is not None:
        uv_faces = np.concatenate([uv_faces, np.zeros_like(f_arr)])  # intra-oral faces have no texture
    out = replace(
        data,
        v_template=np.concatenate([data.v_template, P]).astype(np.float32),
        faces=np.concatenate([data.faces, f_arr]),
        shapedirs=extend(data.shapedirs, False),
        exprdirs=extend(data.exprdirs, True),
        posedirs=posedirs.reshape(posedirs.shape[0], -1),
        J_regressor=np.concatenate([data.J_regressor, np.zeros((n_j, n_new), np.float32)], 1),
        weights=np.concatenate([data.weights, W]).astype(np.float32),
        uv=uv, uv_faces=uv_faces,
    )
    sets = {
        "mouth_vertex_ids": np.arange(base, base + n_new),
        "teeth_vertex_ids": np.asarray(teeth),
        "lower_teeth_vertex_ids": np.asarray(teeth[len(teeth) // 2:]),
        "mouth_faces": f_arr,
        "n_face_faces": np.array(len(data.faces)),
        "lip_loop": np.asarray(loop),
    }
    return out, sets
