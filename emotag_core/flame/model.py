"""The head model: FLAME-layout linear blend skinning, shared by real FLAME and the open model.

Both models are held in the same `HeadModel` (one forward path): FLAME 2020/2023 is read through
`smplx.FLAME` and its buffers are taken over; the open default model is read from its npz in the
FLAME file layout. Camera space is OpenCV (x right, y down, z forward, metres); FLAME's own frame
(y up, z out of the face) is turned to face the camera before `rot`/`trans` apply.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from emotag_core.errors import ConfigError, InputError

N_MP_LANDMARKS = 478
FLAME_SHAPE_SPACE = 300  # FLAME files hold 300 shape then (up to) 100 expression components
FLAME_N_VERTS = 5023
FLAME_N_FACES = 9976
FLAME_HOW = ("FLAME is licensed: register and download it at https://flame.is.tue.mpg.de "
             "(FLAME 2020 `generic_model.pkl` or FLAME 2023 `flame2023.pkl`, plus "
             "`mediapipe_landmark_embedding.npz`), then set flame.path in params.yaml")
# FLAME frame (y up, z toward the viewer) -> OpenCV camera frame facing the head
FLAME_TO_CV = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def rodrigues(aa: Tensor) -> Tensor:
    """Axis-angle [..., 3] -> rotation matrices [..., 3, 3] (safe at zero angle)."""
    shape = aa.shape[:-1]
    aa = aa.reshape(-1, 3)
    angle = torch.sqrt((aa * aa).sum(-1, keepdim=True) + 1e-16)  # [N, 1]
    axis = aa / angle
    s, c = torch.sin(angle)[:, :, None], torch.cos(angle)[:, :, None]
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    k = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)[None]
    r = eye + s * k + (1 - c) * (k @ k)
    return r.reshape(*shape, 3, 3)


def matrix_to_axis_angle(r: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] -> axis-angle [..., 3] (angles in [0, pi))."""
    r = r.double()
    cos = ((r[..., 0, 0] + r[..., 1, 1] + r[..., 2, 2] - 1) / 2).clamp(-1, 1)
    angle = torch.acos(cos)
    v = torch.stack([r[..., 2, 1] - r[..., 1, 2], r[..., 0, 2] - r[..., 2, 0], r[..., 1, 0] - r[..., 0, 1]], -1)
    s = torch.sin(angle)
    scale = torch.where(s.abs() < 1e-8, torch.full_like(s, 0.5), angle / (2 * s.clamp_min(1e-12)))
    return (v * scale[..., None]).float()


def project(points: Tensor, K: Tensor) -> Tensor:
    """Pinhole projection: points [B, N, 3] (camera space), K [B, 3, 3] -> pixels [B, N, 2]."""
    z = points[..., 2:3].clamp_min(1e-6)
    xy = points[..., :2] / z
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    return torch.stack([fx * xy[..., 0] + cx, fy * xy[..., 1] + cy], -1)


def intrinsics(focal: float | Tensor, size: int, batch: int = 1) -> Tensor:
    """K [B, 3, 3] of a square `size` image, principal point at the centre."""
    f = torch.as_tensor(focal, dtype=torch.float32).reshape(-1)
    K = torch.zeros(batch, 3, 3, dtype=f.dtype, device=f.device)
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = size / 2
    K[:, 1, 2] = size / 2
    K[:, 2, 2] = 1
    return K


@dataclass
class HeadModelData:
    """Arrays of a head model in the FLAME layout (numpy, float32 / int64)."""

    name: str                      # "open" | "flame2020" | "flame2023"
    v_template: np.ndarray         # [V, 3] metres, FLAME frame
    faces: np.ndarray              # [F, 3]
    shapedirs: np.ndarray          # [V, 3, S]
    exprdirs: np.ndarray           # [V, 3, E]
    posedirs: np.ndarray           # [P, V*3], P = 9 * (J - 1)
    J_regressor: np.ndarray        # [J, V]
    weights: np.ndarray            # [V, J]
    parents: np.ndarray            # [J]
    lmk_vertex_ids: np.ndarray     # [478, 3] vertex triplets per MediaPipe landmark
    lmk_bary: np.ndarray           # [478, 3] barycentric weights (0 rows = not embedded)
    uv: np.ndarray | None = None   # [Vt, 2]
    uv_faces: np.ndarray | None = None  # [F, 3] into uv
    expr_names: list[str] = field(default_factory=list)
    source: str = ""
    sha256: str = ""
    jaw_joint: int = 2


class HeadModel(nn.Module):
    """A FLAME-layout head model; see the package docstring for the contract."""

    def __init__(self, data: HeadModelData, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.name = data.name
        self.source = data.source
        self.sha256 = data.sha256
        self.expr_names = list(data.expr_names)
        self.jaw_joint = data.jaw_joint
        self.neck_joint = int(np.asarray(data.parents)[data.jaw_joint])  # a Python int: no device sync in forward (CUDA graphs)
        t = lambda a: torch.as_tensor(np.asarray(a), dtype=dtype)  # noqa: E731
        self.register_buffer("v_template", t(data.v_template))
        self.register_buffer("faces", torch.as_tensor(np.asarray(data.faces), dtype=torch.long))
        self.register_buffer("shapedirs", t(data.shapedirs))
        self.register_buffer("exprdirs", t(data.exprdirs))
        self.register_buffer("posedirs", t(data.posedirs))
        self.register_buffer("J_regressor", t(data.J_regressor))
        self.register_buffer("weights", t(data.weights))
        self.register_buffer("parents", torch.as_tensor(np.asarray(data.parents), dtype=torch.long))
        self.register_buffer("lmk_vertex_ids", torch.as_tensor(np.asarray(data.lmk_vertex_ids), dtype=torch.long))
        self.register_buffer("lmk_bary", t(data.lmk_bary))
        self.register_buffer("landmark_mask", self.lmk_bary.abs().sum(-1) > 0)  # [478] embedded?
        self.register_buffer("flip", FLAME_TO_CV.to(dtype))
        self.uv: Tensor | None
        self.uv_faces: Tensor | None
        self.register_buffer("uv", None if data.uv is None else t(data.uv))
        self.register_buffer("uv_faces", None if data.uv_faces is None else
                             torch.as_tensor(np.asarray(data.uv_faces), dtype=torch.long))
        # joints are linear in shape/expr: precompute J = J_regressor (v_template + dirs . coeffs)
        self.register_buffer("J_template", self.J_regressor @ self.v_template)                     # [J, 3]
        self.register_buffer("J_shapedirs", torch.einsum("jv,vcs->jcs", self.J_regressor, self.shapedirs))
        self.register_buffer("J_exprdirs", torch.einsum("jv,vcs->jcs", self.J_regressor, self.exprdirs))
        # augmented variant (emotag_core.flame.mouth): empty until `augment_mouth` runs
        self.register_buffer("mouth_vertex_ids", torch.zeros(0, dtype=torch.long))
        self.register_buffer("mouth_faces", torch.zeros(0, 3, dtype=torch.long))
        self.register_buffer("teeth_vertex_ids", torch.zeros(0, dtype=torch.long))
        self.register_buffer("lower_teeth_vertex_ids", torch.zeros(0, dtype=torch.long))
        self.n_face_faces = int(self.faces.shape[0])
        self.augmented = False
        lmk_ids = self.lmk_vertex_ids[self.landmark_mask].unique()
        self.register_buffer("lmk_support", lmk_ids)   # vertices the landmarks read
        remap = torch.full((self.v_template.shape[0],), -1, dtype=torch.long)
        remap[lmk_ids] = torch.arange(len(lmk_ids))
        self.register_buffer("lmk_local_ids", remap[self.lmk_vertex_ids].clamp_min(0))

    # ---- sizes -------------------------------------------------------------------------------
    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def n_expr(self) -> int:
        return int(self.exprdirs.shape[-1])

    @property
    def n_verts(self) -> int:
        return int(self.v_template.shape[0])

    def metadata(self) -> dict[str, Any]:
        """What downstream tables record about the model (variant, dims, provenance)."""
        return {"flame_model": self.name, "n_expr": self.n_expr, "n_shape": self.n_shape,
                "expr_names": self.expr_names, "model_sha256": self.sha256, "n_verts": self.n_verts,
                "augmented": self.augmented}

    # ---- forward -----------------------------------------------------------------------------
    def forward(self, shape: Tensor, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor,
                eyes: Tensor | None = None, vertex_ids: Tensor | None = None,
                neck: Tensor | None = None) -> Tensor:
        """Vertices in camera space [B, V, 3] (or [B, len(vertex_ids), 3]).

        shape [B, S], expr [B, E], jaw [B, 3] axis-angle about the jaw joint, rot [B, 3] head
        rotation (axis-angle, camera frame; 0 = facing the camera), trans [B, 3] metres,
        eyes [B, 6] optional left/right eyeball axis-angle, neck [B, 3] optional neck rotation (FLAME's
        `neck_pose`, body -> head, FLAME frame): `rot`/`trans` place the head, and the base of the neck
        (the root joint's skinning weight) is turned back by `neck` about the neck joint, so the body
        holds the pose rot * neck^-1 while the head turns on the neck. None = a rigid neck (as before).
        """
        B = expr.shape[0]   # shape may be [1, S]: it broadcasts over the batch (cheaper when shared)
        self._check_dims(shape, expr)
        ids = slice(None) if vertex_ids is None else vertex_ids
        v = (self.v_template[ids][None]
             + torch.einsum("vcs,bs->bvc", self.shapedirs[ids], shape)
             + torch.einsum("vcs,bs->bvc", self.exprdirs[ids], expr))                  # [B, n, 3]
        J = (self.J_template[None] + torch.einsum("jcs,bs->bjc", self.J_shapedirs, shape)
             + torch.einsum("jcs,bs->bjc", self.J_exprdirs, expr))                     # [B, J, 3]
        # LBS with the global and neck joints at rest (head pose is `rot`/`trans` below): each posed
        # joint j (jaw, eyes; children of the resting neck) moves v by w_vj ((R_j - I)(v - J_j)),
        # which equals FLAME's LBS under that condition.
        posed = [(self.jaw_joint, jaw)]
        if eyes is not None and J.shape[1] >= 5:
            posed += [(3, eyes[:, :3]), (4, eyes[:, 3:])]
        eye3 = torch.eye(3, dtype=v.dtype, device=v.device)
        feat = torch.zeros(B, J.shape[1] - 1, 9, dtype=v.dtype, device=v.device)
        moves = []
        for j, aa in posed:
            Rm = rodrigues(aa) - eye3                                                  # [B, 3, 3]
            feat[:, j - 1] = Rm.reshape(B, 9)
            moves.append((j, Rm))
        if vertex_ids is None:
            pd = self.posedirs
        else:
            cols = (vertex_ids[:, None] * 3 + torch.arange(3, device=v.device)).reshape(-1)
            pd = self.posedirs[:, cols]
        v_pc = v + (feat.reshape(B, -1) @ pd).reshape(B, -1, 3)                          # pose correctives
        w = self.weights[ids]
        out = v_pc
        for j, Rm in moves:
            out = out + w[None, :, j, None] * ((v_pc - J[:, j, None]) @ Rm.transpose(1, 2))
        v = out
        if neck is not None:   # LBS referenced to the head: body vertices take neck^-1 about the neck joint
            jn = self.neck_joint
            Rn = rodrigues(neck)                                                       # [B, 3, 3]
            Jn = J[:, jn, None]                                                        # [B, 1, 3]
            back = (v - Jn) @ Rn + Jn                                                  # row vectors: R^T (v - J) + J
            v = v + w[None, :, 0, None] * (back - v)
        Rc = rodrigues(rot) @ self.flip                                                # [B, 3, 3]
        return v @ Rc.transpose(1, 2) + trans[:, None]

    def landmarks(self, verts: Tensor) -> Tensor:
        """MediaPipe landmark embedding: verts [B, V, 3] -> [B, 478, 3] (0 where not embedded)."""
        tri = verts[:, self.lmk_vertex_ids]                                            # [B, 478, 3, 3]
        return (tri * self.lmk_bary[None, :, :, None]).sum(2)

    def landmarks_from_params(self, shape: Tensor, expr: Tensor, jaw: Tensor, rot: Tensor,
                              trans: Tensor) -> Tensor:
        """Landmarks [B, 478, 3] computing only the vertices they read (fast path for fitting)."""
        v = self.forward(shape, expr, jaw, rot, trans, vertex_ids=self.lmk_support)   # [B, n, 3]
        tri = v[:, self.lmk_local_ids]
        return (tri * self.lmk_bary[None, :, :, None]).sum(2)

    @staticmethod
    def project(points: Tensor, K: Tensor) -> Tensor:
        """points [B, N, 3], K [B, 3, 3] -> pixels [B, N, 2]."""
        return project(points, K)

    def _check_dims(self, shape: Tensor, expr: Tensor) -> None:
        if shape.shape[-1] != self.n_shape or expr.shape[-1] != self.n_expr:
            raise ConfigError(f"head model `{self.name}` takes shape[{self.n_shape}] and expr[{self.n_expr}], "
                              f"got shape[{shape.shape[-1]}] and expr[{expr.shape[-1]}]")

    def zeros(self, batch: int, device: torch.device | str | None = None) -> dict[str, Tensor]:
        """Neutral parameters for `batch` frames (trans puts the head 0.6 m in front)."""
        dev = device or self.v_template.device
        z = lambda n: torch.zeros(batch, n, device=dev)  # noqa: E731
        trans = z(3)
        trans[:, 2] = 0.6
        return {"shape": z(self.n_shape), "expr": z(self.n_expr), "jaw": z(3), "rot": z(3), "trans": trans}


# ---- loading ---------------------------------------------------------------------------------

def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _read_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = pickle.load(fh, encoding="latin1")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise InputError(path, f"not a readable FLAME pickle ({type(exc).__name__}: {exc})",
                         "re-download it from https://flame.is.tue.mpg.de") from exc
    if not isinstance(data, dict):
        raise InputError(path, f"FLAME pickle holds a {type(data).__name__}, expected a dict")
    return data


def _dense(a: Any) -> np.ndarray:
    if hasattr(a, "toarray"):          # scipy sparse (J_regressor in FLAME files)
        a = a.toarray()
    if hasattr(a, "r"):                # chumpy arrays
        a = a.r
    return np.asarray(a)


FLAME_KEYS = ("v_template", "f", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


def check_flame_file(path: Path, variant: str, n_expr: int | None) -> dict[str, Any]:
    """Read a FLAME pickle and check it against the params (variant, expression dimension)."""
    if not path.exists():
        raise InputError(path, "FLAME model file not found", FLAME_HOW)
    data = _read_pickle(path)
    missing = [k for k in FLAME_KEYS if k not in data]
    if missing:
        raise InputError(path, f"not a FLAME model file: keys {missing} missing "
                               f"(has {sorted(data)[:12]})", FLAME_HOW)
    sd = _dense(data["shapedirs"])
    if n_expr is None:
        raise ConfigError(f"flame.model is `{variant}` but flame.n_expr is null: FLAME's expression "
                          f"dimension must be explicit (50 or 100; {path} holds "
                          f"{max(sd.shape[-1] - FLAME_SHAPE_SPACE, 0)})")
    n_avail = sd.shape[-1] - FLAME_SHAPE_SPACE
    if n_avail < n_expr:
        raise ConfigError(f"flame.n_expr is {n_expr} but {path} holds {max(n_avail, 0)} expression "
                          f"components (shapedirs has {sd.shape[-1]} columns = {FLAME_SHAPE_SPACE} shape + "
                          f"{max(n_avail, 0)} expression); set flame.n_expr <= {max(n_avail, 0)}")
    name = path.name.lower()
    says = "flame2023" if "2023" in name else ("flame2020" if ("2020" in name or "generic_model" in name) else None)
    tagged = data.get("flame_version") or data.get("version")
    if tagged is not None:
        says = "flame2023" if "2023" in str(tagged) else "flame2020" if "2020" in str(tagged) else says
    if says is not None and says != variant:
        raise ConfigError(f"flame.model is `{variant}` but {path} is {says} (by its "
                          f"{'version tag' if tagged is not None else 'file name'}); set flame.model: {says} "
                          f"or point flame.path at a {variant} file")
    return data


def load_mediapipe_embedding(path: Path, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FLAME's `mediapipe_landmark_embedding.npz` -> (vertex triplets [478, 3], bary [478, 3])."""
    if not path.exists():
        raise InputError(path, "MediaPipe landmark embedding not found", FLAME_HOW)
    try:
        e = np.load(path, allow_pickle=True)
        face_idx = np.asarray(e["lmk_face_idx"], dtype=np.int64)
        bary = np.asarray(e["lmk_b_coords"], dtype=np.float32)
        mp_ids = np.asarray(e["landmark_indices"], dtype=np.int64)
    except (KeyError, OSError, ValueError) as exc:
        raise InputError(path, f"not a MediaPipe landmark embedding ({exc}); expected keys "
                               "lmk_face_idx, lmk_b_coords, landmark_indices", FLAME_HOW) from exc
    if len(face_idx) != len(bary) or len(face_idx) != len(mp_ids) or mp_ids.max(initial=0) >= N_MP_LANDMARKS:
        raise InputError(path, "embedding arrays disagree in length or index MediaPipe points >= 478")
    if face_idx.max(initial=0) >= len(faces):
        raise InputError(path, f"embedding names face {face_idx.max()} but the model has {len(faces)} faces",
                         "the embedding belongs to another model version")
    ids = np.zeros((N_MP_LANDMARKS, 3), np.int64)
    w = np.zeros((N_MP_LANDMARKS, 3), np.float32)
    ids[mp_ids] = faces[face_idx]
    w[mp_ids] = bary
    return ids, w


def load_flame(path: Path, variant: str, n_expr: int | None, n_shape: int,
               landmark_embedding: Path | None) -> HeadModelData:
    """Load FLAME 2020/2023 through `smplx.FLAME` into `HeadModelData`."""
    import smplx

    data = check_flame_file(path, variant, n_expr)
    assert n_expr is not None
    emb_path = landmark_embedding or path.parent / "mediapipe_landmark_embedding.npz"
    with tempfile.TemporaryDirectory(prefix="emotag-flame-") as d:
        # smplx wants <dir>/FLAME_NEUTRAL.pkl and <dir>/flame_static_embedding.pkl
        os.symlink(path.resolve(), Path(d) / "FLAME_NEUTRAL.pkl")
        static = path.parent / "flame_static_embedding.pkl"
        if static.exists():
            os.symlink(static.resolve(), Path(d) / "flame_static_embedding.pkl")
        else:  # only smplx's 51 landmarks read it; ours come from the MediaPipe embedding
            with open(Path(d) / "flame_static_embedding.pkl", "wb") as fh:
                pickle.dump({"lmk_face_idx": np.zeros(1, np.int64), "lmk_b_coords": np.ones((1, 3)) / 3}, fh)
        try:
            fl = smplx.FLAME(model_path=d, num_betas=n_shape, num_expression_coeffs=n_expr,
                             batch_size=1, use_face_contour=False)
        except Exception as exc:  # noqa: BLE001 - smplx asserts / shape errors
            raise InputError(path, f"smplx could not load this FLAME file ({type(exc).__name__}: {exc})",
                             FLAME_HOW) from exc
    faces = np.asarray(fl.faces, dtype=np.int64)
    ids, bary = load_mediapipe_embedding(emb_path, faces)
    n_v = fl.v_template.shape[0]
    uv = uv_faces = None
    if "vt" in data and "ft" in data:
        uv, uv_faces = np.asarray(data["vt"], np.float32), np.asarray(data["ft"], np.int64)
    return HeadModelData(
        name=variant, v_template=fl.v_template.numpy(), faces=faces,
        shapedirs=fl.shapedirs.numpy(), exprdirs=fl.expr_dirs.numpy(),
        posedirs=fl.posedirs.numpy().reshape(-1, n_v * 3), J_regressor=fl.J_regressor.numpy(),
        weights=fl.lbs_weights.numpy(), parents=fl.parents.numpy(),
        lmk_vertex_ids=ids, lmk_bary=bary, uv=uv, uv_faces=uv_faces,
        expr_names=[f"psi{i:03d}" for i in range(n_expr)], source=str(path), sha256=sha256_of(path),
    )
