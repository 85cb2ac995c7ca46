"""Importer for VHAP's exported FLAME tracks (`flame_param/*.npz` + `transforms.json`).

VHAP applies the global `rotation` about FLAME's root joint and the `neck_pose` about the neck
joint, then adds `translation`, in a world frame seen by NeRF-style cameras (`transform_matrix`
= camera-to-world, OpenGL axes). Our tables hold the head pose in the OpenCV camera frame
(`HeadModel.forward`), so each frame's pose is re-expressed there; the neck rotation is folded
into the head rotation (exact for vertices that follow the neck rigidly: the face) and kept as the
`neck` column (VHAP's `neck_pose`, FLAME frame), so `forward(..., neck=)` keeps the base of the neck
on VHAP's body pose.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from emotag_core.errors import ConfigError, InputError
from emotag_core.flame.model import FLAME_TO_CV, HeadModel, matrix_to_axis_angle, rodrigues
from emotag_core.flame.tracker import ClipTrack

VHAP_KEYS = ("expr", "jaw_pose", "rotation", "translation", "shape")


@dataclass
class VhapImport:
    """One VHAP sequence re-expressed for the `flame` table."""

    track: ClipTrack
    shape: np.ndarray            # [S] (the model's leading components)
    camera: dict[str, float]     # fx, fy, cx, cy, width, height


def _frame_records(root: Path) -> list[dict]:
    tf = root / "transforms.json"
    if not tf.exists():
        raise InputError(tf, "VHAP transforms.json not found", "point the importer at VHAP's export folder")
    try:
        meta = json.loads(tf.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(tf, f"not valid JSON ({exc})") from exc
    frames = meta.get("frames")
    if not frames:
        raise InputError(tf, "no `frames` list", "is this VHAP's `export_as_nerf_dataset` output?")
    recs = []
    for i, fr in enumerate(frames):
        rec = {k: fr.get(k, meta.get(k)) for k in ("fl_x", "fl_y", "cx", "cy", "w", "h")}
        missing = [k for k, v in rec.items() if v is None]
        if missing or "transform_matrix" not in fr:
            raise InputError(tf, f"frame {i}: intrinsics/extrinsics missing {missing or ['transform_matrix']}")
        rec["c2w"] = np.asarray(fr["transform_matrix"], np.float64)
        rec["t"] = int(fr.get("timestep_index", i))
        rec["camera"] = int(fr.get("camera_index", 0))
        p = fr.get("flame_param_path")
        rec["param"] = root / p if p else root / "flame_param" / f"{rec['t']:05d}.npz"
        recs.append(rec)
    return recs


def import_vhap(root: str | Path, model: HeadModel, camera_index: int | None = None,
                clip_id: str | None = None) -> VhapImport:
    """Read a VHAP export folder into per-frame head parameters in our camera convention."""
    root = Path(root)
    recs = _frame_records(root)
    cams = sorted({r["camera"] for r in recs})
    cam = cams[0] if camera_index is None else camera_index
    if cam not in cams:
        raise InputError(root / "transforms.json", f"camera {cam} not present (have {cams})")
    recs = sorted([r for r in recs if r["camera"] == cam], key=lambda r: r["t"])
    F = FLAME_TO_CV.double()
    out: dict[str, list] = {k: [] for k in ("expr", "jaw", "rot", "trans", "neck")}
    shape0 = None
    for r in recs:
        p = r["param"]
        if not p.exists():
            raise InputError(p, f"timestep {r['t']}: FLAME parameter file missing", "re-export from VHAP")
        d = np.load(p)
        missing = [k for k in VHAP_KEYS if k not in d.files]
        if missing:
            raise InputError(p, f"keys {missing} missing (has {d.files})", "is this a VHAP flame_param file?")
        g = lambda k, n: np.asarray(d[k], np.float64).reshape(-1)[:n] if k in d.files else np.zeros(n)  # noqa: E731
        expr = np.asarray(d["expr"], np.float64).reshape(-1)
        if expr.shape[0] != model.n_expr:
            raise ConfigError(f"{p}: VHAP expression has {expr.shape[0]} components but the head model "
                              f"`{model.name}` (flame.n_expr) has {model.n_expr}; set flame.n_expr: {expr.shape[0]}")
        shape = np.asarray(d["shape"], np.float64).reshape(-1)
        if shape.shape[0] < model.n_shape:
            shape = np.concatenate([shape, np.zeros(model.n_shape - shape.shape[0])])
        shape = shape[: model.n_shape]
        shape0 = shape if shape0 is None else shape0
        rot_g, neck, t = g("rotation", 3), g("neck_pose", 3), g("translation", 3)
        with torch.no_grad():
            sh = torch.as_tensor(shape, dtype=torch.float32)[None]
            ex = torch.as_tensor(expr, dtype=torch.float32)[None]
            J = (model.J_template[None] + torch.einsum("jcs,bs->bjc", model.J_shapedirs, sh)
                 + torch.einsum("jcs,bs->bjc", model.J_exprdirs, ex))[0].double()   # [J, 3]
        Rg = rodrigues(torch.as_tensor(rot_g)[None])[0]
        Rn = rodrigues(torch.as_tensor(neck)[None])[0]
        J0, J1 = J[0], J[1]
        c = Rg @ (J1 - Rn @ J1 - J0) + J0 + torch.as_tensor(t)           # world offset of the head
        w2c = torch.linalg.inv(torch.as_tensor(r["c2w"]))
        R_wc, t_wc = w2c[:3, :3], w2c[:3, 3]
        R = F @ R_wc @ Rg @ Rn @ F                                        # head rotation, camera frame
        out["rot"].append(matrix_to_axis_angle(R[None])[0].numpy())
        out["trans"].append((F @ (R_wc @ c + t_wc)).numpy())
        out["jaw"].append(g("jaw_pose", 3))
        out["neck"].append(neck)
        out["expr"].append(expr)
    first = recs[0]
    camera = {"fx": float(first["fl_x"]), "fy": float(first["fl_y"]), "cx": float(first["cx"]),
              "cy": float(first["cy"]), "width": int(first["w"]), "height": int(first["h"])}
    T = len(recs)
    track = ClipTrack(clip_id or root.name, np.array([r["t"] for r in recs]), np.ones(T, bool),
                      np.stack(out["expr"]).astype(np.float32), np.stack(out["jaw"]).astype(np.float32),
                      np.stack(out["rot"]).astype(np.float32), np.stack(out["trans"]).astype(np.float32),
                      np.zeros(T, np.float32), np.stack(out["neck"]).astype(np.float32))
    return VhapImport(track, np.asarray(shape0, np.float32), camera)
