"""The open default head model: built from open face-model data that packages ship.

Sources (both real face-model data, see `assets/PROVENANCE.md`):
- MediaPipe's canonical face mesh (468 vertices, 898 triangles, UVs) from the
  `geometry_pipeline_metadata_landmarks.binarypb` inside `face_landmarker.task` (Apache-2.0);
- py-feat's linear AU->mesh model `au_to_mesh_pls_v4.npz` (20 AU bases over the 478-point
  MediaPipe mesh, MIT) for the expression space and the 10 iris points.

The result is written in the FLAME file layout (`v_template, f, shapedirs, posedirs,
J_regressor, weights, kintree_table, vt, ft` plus the MediaPipe landmark embedding) as an npz,
so the same loader and LBS serve FLAME and this model. Regenerate with
`python -m emotag_core.flame.open_model` (deterministic; needs the asset `face_landmarker.task`
and py-feat installed).
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError

ASSET_DIR = Path(__file__).parent / "assets"
OPEN_MODEL_FILE = ASSET_DIR / "open_head.npz"
OPEN_MODEL_VERSION = 1
CM = 0.01  # canonical mesh units -> metres

# MediaPipe mesh index sets
UPPER_INNER = (191, 80, 81, 82, 13, 312, 311, 310, 415)
LOWER_INNER = (95, 88, 178, 87, 14, 317, 402, 318, 324)
UPPER_OUTER = (185, 40, 39, 37, 0, 267, 269, 270, 409)
LOWER_OUTER = (146, 91, 181, 84, 17, 314, 405, 321, 375)
INNER_CORNERS = (78, 308)
OUTER_CORNERS = (61, 291)
FACE_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
             152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)
JAW_PIVOT = (93, 323, 132, 361)   # face-edge points in front of the ears: the jaw joint lies between
LEFT_IRIS, RIGHT_IRIS = (468, 469, 470, 471, 472), (473, 474, 475, 476, 477)
N_LAPLACIAN = 15                  # Laplacian eigenvectors per axis in the shape space
EXPR_MAX_DISP = 0.004             # metres: an expression basis moves its most-moved vertex 4 mm per unit
JAW_OVERLAP_DROP = 0.3            # drop an AU basis if jaw rotation explains more than this share of it
JOINTS = ("global", "neck", "jaw", "eye_left", "eye_right")  # FLAME's joint order
PARENTS = np.array([-1, 0, 1, 1, 1])


# ---- reading the sources -------------------------------------------------------------------

def _varint(b: bytes, i: int) -> tuple[int, int]:
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def _proto_fields(b: bytes) -> list[tuple[int, int, Any]]:
    """Minimal protobuf wire-format reader: [(field, wire_type, value)]."""
    i, out = 0, []
    while i < len(b):
        key, i = _varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = _varint(b, i)
        elif w == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif w == 5:
            v, i = b[i:i + 4], i + 4
        elif w == 1:
            v, i = b[i:i + 8], i + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {w}")
        out.append((f, w, v))
    return out


def read_canonical_mesh(task_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe canonical face mesh from a FaceLandmarker `.task` bundle.

    Returns vertices [468, 3] (cm, y up, z toward the viewer), UVs [468, 2], triangles [898, 3].
    """
    try:
        with zipfile.ZipFile(task_path) as z:
            blob = z.read("geometry_pipeline_metadata_landmarks.binarypb")
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise InputError(task_path, f"no canonical face geometry in this bundle ({exc})",
                         "run `emotag fetch-assets`") from exc
    mesh = next(v for f, w, v in _proto_fields(blob) if f == 1 and w == 2)   # canonical_mesh: Mesh3d
    fields = _proto_fields(mesh)
    vb = np.array([struct.unpack("<f", v)[0] for f, w, v in fields if f == 3], np.float32).reshape(-1, 5)
    ib = np.array([v for f, w, v in fields if f == 4], np.int64).reshape(-1, 3)
    return vb[:, :3], vb[:, 3:5], ib


def read_au_model(npz_path: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """py-feat AU->mesh PLS model: mean mesh [478, 3], AU bases [20, 478, 3], AU names."""
    d = np.load(npz_path, allow_pickle=False)
    names = [str(a) for a in d["au_columns"]]
    inputs = [str(a) for a in d["input_columns"]]
    coef = d["coef"].reshape(len(inputs), 3, -1).transpose(0, 2, 1)   # stored as [in, xyz, vertex]
    idx = [inputs.index(a) for a in names]
    return d["mean_aligned_mesh"].astype(np.float64), coef[idx].astype(np.float64), names


def _similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """s, A (orthogonal, reflection allowed), t minimising |s A src + t - dst|."""
    ms, md = src.mean(0), dst.mean(0)
    a, b = src - ms, dst - md
    u, sv, vt = np.linalg.svd(b.T @ a)
    A = u @ vt
    s = sv.sum() / (a * a).sum()
    return float(s), A, md - s * A @ ms


# ---- mesh helpers ----------------------------------------------------------------------------

def _laplacian(n: int, faces: np.ndarray) -> np.ndarray:
    """Uniform graph Laplacian [n, n] of the triangle mesh."""
    adj = np.zeros((n, n))
    for a, b in ((0, 1), (1, 2), (2, 0)):
        adj[faces[:, a], faces[:, b]] = 1
        adj[faces[:, b], faces[:, a]] = 1
    return np.diag(adj.sum(1)) - adj


def _harmonic(L: np.ndarray, fixed: dict[int, float]) -> np.ndarray:
    """Solve L w = 0 on free vertices with w fixed on `fixed` (smooth interpolation)."""
    n = L.shape[0]
    ids = np.array(sorted(fixed))
    vals = np.array([fixed[i] for i in ids])
    free = np.setdiff1d(np.arange(n), ids)
    w = np.zeros(n)
    w[ids] = vals
    w[free] = np.linalg.solve(L[np.ix_(free, free)] + 1e-9 * np.eye(len(free)), -L[np.ix_(free, ids)] @ vals)
    return np.clip(w, 0, 1)


def _rigid_fields(v: np.ndarray) -> np.ndarray:
    """Infinitesimal rigid motions + uniform scale of points v [N, 3] -> [7, N*3]."""
    c = v - v.mean(0)
    out = []
    for k in range(3):
        t = np.zeros_like(v)
        t[:, k] = 1
        out.append(t)
        axis = np.eye(3)[k]
        out.append(np.cross(axis, c))
    out.append(c)
    return np.stack([o.reshape(-1) for o in out])


def _orthonormal_rows(m: np.ndarray) -> np.ndarray:
    q, _ = np.linalg.qr(m.T)
    return q.T


# ---- building --------------------------------------------------------------------------------

def build_open_model(task_path: Path, au_path: Path) -> dict[str, Any]:
    """The open head model's arrays in the FLAME file layout (plus metadata)."""
    canon, uv, tris = read_canonical_mesh(task_path)
    mean, au_bases, au_names = read_au_model(au_path)
    n_mesh = canon.shape[0]                                   # 468
    # py-feat's aligned space -> canonical space (similarity on the shared 468 vertices)
    s, A, t = _similarity(mean[:n_mesh], canon.astype(np.float64))
    iris = (s * mean[n_mesh:] @ A.T + t)                      # [10, 3] cm
    v = np.concatenate([canon.astype(np.float64), iris]) * CM  # [478, 3] metres
    au = np.einsum("kvc,dc->kvd", au_bases, s * A) * CM       # [20, 478, 3] metres per AU unit
    n_v = v.shape[0]

    # open the mouth: drop the triangles that close the lips (all corners on the inner lip ring)
    inner = set(UPPER_INNER) | set(LOWER_INNER) | set(INNER_CORNERS)
    keep = ~np.all(np.isin(tris, list(inner)), axis=1)
    faces = tris[keep]

    # joints (FLAME order): global, neck, jaw, eye_left, eye_right, as vertex averages
    J_reg = np.zeros((5, n_v))
    for j, ids in ((0, (152, 93, 323)), (1, (152, 93, 323)), (2, JAW_PIVOT)):
        J_reg[j, list(ids)] = 1 / len(ids)
    for j, ring in ((3, LEFT_IRIS[1:]), (4, RIGHT_IRIS[1:])):  # eyeball centre: iris ring pulled back
        back = 234 if v[ring[0], 0] < 0 else 454
        z_iris, z_back = v[list(ring), 2].mean(), v[back, 2]
        a = 1 - 0.012 / (z_iris - z_back)                      # 12 mm behind the iris
        J_reg[j, list(ring)] = a / len(ring)
        J_reg[j, back] += 1 - a
    J = J_reg @ v

    # jaw skinning weights: harmonic field, 1 on the lower lip and mandible, 0 above the mouth
    L = _laplacian(n_v, faces)
    L[n_mesh:, n_mesh:] += np.eye(n_v - n_mesh)               # iris points are not on the mesh
    y_corner = v[OUTER_CORNERS[0], 1]
    y_nose = v[2, 1]
    fixed: dict[int, float] = {}
    for i in range(n_mesh):
        if v[i, 1] > y_nose - 0.002:
            fixed[i] = 0.0
    for i in FACE_OVAL:
        if v[i, 1] < y_corner - 0.005:
            fixed[i] = 1.0
        elif v[i, 1] > v[JAW_PIVOT[0], 1]:
            fixed[i] = 0.0
    for i in UPPER_INNER + UPPER_OUTER:
        fixed[i] = 0.0
    for i in LOWER_INNER + LOWER_OUTER:
        fixed[i] = 1.0
    for i in INNER_CORNERS + OUTER_CORNERS:
        fixed[i] = 0.4
    for i in range(n_mesh, n_v):
        fixed[i] = 0.0
    w_jaw = _harmonic(L, fixed)
    weights = np.zeros((n_v, 5))
    weights[:, 2] = w_jaw
    weights[:, 1] = 1 - w_jaw
    weights[list(LEFT_IRIS), :] = np.eye(5)[3]
    weights[list(RIGHT_IRIS), :] = np.eye(5)[4]

    # expression space: AU bases with jaw rotation and rigid motion projected out
    jaw_fields = np.stack([(w_jaw[:, None] * np.cross(np.eye(3)[k], v - J[2])).reshape(-1) for k in range(3)])
    rigid = _orthonormal_rows(_rigid_fields(v))
    nuisance = _orthonormal_rows(np.concatenate([jaw_fields, _rigid_fields(v)]))
    kept, names, dropped = [], [], {}
    for b, name in zip(au, au_names):
        flat = b.reshape(-1)
        non_rigid = flat - rigid.T @ (rigid @ flat)
        resid = flat - nuisance.T @ (nuisance @ flat)
        jaw_frac = 1 - np.linalg.norm(resid) / np.linalg.norm(non_rigid)   # share explained by the jaw
        if jaw_frac > JAW_OVERLAP_DROP:
            dropped[name] = round(float(jaw_frac), 3)
            continue
        r = resid.reshape(-1, 3)
        kept.append(r * (EXPR_MAX_DISP / np.linalg.norm(r, axis=1).max()))
        names.append(name)
    exprdirs = np.stack(kept, -1)                               # [478, 3, E]

    # shape space: anisotropic scale + smooth (low-frequency Laplacian) offsets per axis
    Lm = _laplacian(n_mesh, faces)
    evals, evecs = np.linalg.eigh(Lm)
    c = v - v[:n_mesh].mean(0)
    dirs = [np.eye(3)[k] * c[:, [k]] * 0.08 for k in range(3)]  # 8 % size per unit
    for k in range(1, N_LAPLACIAN + 1):
        e = evecs[:, k] / np.abs(evecs[:, k]).max()
        amp = 0.006 * np.sqrt(evals[1] / evals[k])              # 6 mm at the lowest frequency
        for axis in range(3):
            d = np.zeros((n_v, 3))
            d[:n_mesh, axis] = e * amp
            dirs.append(d)
    shapedirs = np.stack(dirs, -1)
    # iris points follow the mean offset of their eye's contour ring
    for ring in (LEFT_IRIS, RIGHT_IRIS):
        near = np.argsort(np.linalg.norm(v[:n_mesh] - v[ring[0]], axis=1))[:8]
        shapedirs[list(ring)] = shapedirs[near].mean(0)[None]
        exprdirs[list(ring)] = exprdirs[near].mean(0)[None]

    n_s, n_e = shapedirs.shape[-1], exprdirs.shape[-1]
    return {
        # FLAME layout (shapedirs holds shape then expression; expression starts at n_shape)
        "v_template": v.astype(np.float32),
        "f": faces.astype(np.int64),
        "shapedirs": np.concatenate([shapedirs, exprdirs], -1).astype(np.float32),
        "posedirs": np.zeros((n_v, 3, 36), np.float32),
        "J_regressor": J_reg.astype(np.float32),
        "weights": weights.astype(np.float32),
        "kintree_table": np.stack([np.array([2**32 - 1, 0, 1, 1, 1]), np.arange(5)]).astype(np.int64),
        "vt": uv.astype(np.float32),                      # UVs of the 468 mesh vertices
        "ft": faces.astype(np.int64),
        # MediaPipe landmark embedding: landmark i is vertex i
        "lmk_vertex_ids": np.repeat(np.arange(n_v)[:, None], 3, 1).astype(np.int64),
        "lmk_b_coords": np.tile(np.array([[1.0, 0.0, 0.0]], np.float32), (n_v, 1)),
        # metadata
        "n_shape": np.array(n_s), "n_expr": np.array(n_e),
        "expr_names": np.array(names), "joint_names": np.array(JOINTS),
        "meta": np.array(json.dumps({
            "model": "open", "version": OPEN_MODEL_VERSION, "n_shape": n_s, "n_expr": n_e,
            "expr_names": names, "dropped_aus_jaw_or_rigid_overlap": dropped,
            "units": "metres; FLAME frame (y up, z toward the viewer)",
            "expr_unit": f"one unit moves the basis' most-moved vertex {EXPR_MAX_DISP * 1000:.0f} mm",
        })),
    }


def write_open_model(out: Path = OPEN_MODEL_FILE, task_path: Path | None = None,
                     au_path: Path | None = None) -> Path:
    """Generate the open model file (atomic write)."""
    from emotag_core.assets import asset_path, packaged_file
    from emotag_core.io.atomic import atomic_path

    task_path = task_path or asset_path("face_landmarker.task")
    au_path = au_path or packaged_file("feat", "resources/au_to_mesh_pls_v4.npz")
    arrays = build_open_model(Path(task_path), Path(au_path))
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)
    return out


if __name__ == "__main__":
    p = write_open_model()
    d = np.load(p)
    print(f"wrote {p} ({p.stat().st_size / 1e6:.2f} MB): {json.loads(str(d['meta']))}")
