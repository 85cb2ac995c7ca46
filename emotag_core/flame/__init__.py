"""Head models in the FLAME layout: real FLAME (through smplx) or the open default model.

API (the contract other parts build on; CONTRIBUTING.md, "Geometry conventions"):

    model = load_head_model(cfg: FlameConfig, device) -> HeadModel   # an nn.Module
    model.faces            [F, 3] long   skin faces first, then intra-oral faces (augmented)
    model.n_shape, model.n_expr          sizes of the shape / expression spaces
    model.uv               [V, 2] or None; model.uv_faces [F, 3] when UV topology differs
    model(shape [B, S], expr [B, E], jaw [B, 3], rot [B, 3], trans [B, 3]) -> verts [B, V, 3]
                           camera space: metres, OpenCV (x right, y down, z forward); rot = 0
                           faces the camera; jaw is FLAME's jaw axis-angle (x > 0 opens)
    model.landmarks(verts) -> [B, 478, 3]   MediaPipe landmark embedding
    model.landmark_mask    [478] bool       which MediaPipe points the model embeds
    model.landmarks_from_params(shape, expr, jaw, rot, trans) -> [B, 478, 3]  (fast path)
    model.project(points [B, N, 3], K [B, 3, 3]) -> [B, N, 2] pixels; `intrinsics(f, size)` -> K
    augmented variant (cfg.augment_mouth, default on):
    model.mouth_vertex_ids [M] (teeth + cavity), model.teeth_vertex_ids, model.mouth_faces [Fm, 3],
    model.n_face_faces     (faces[:n_face_faces] is the skin)
    model.metadata()       dict recorded in tables (flame_model, n_expr, expr_names, ...)

`cfg.model`: "open" (built from MediaPipe's canonical mesh + py-feat's AU->mesh model, shipped in
`assets/open_head.npz`), "flame2020" or "flame2023" (licensed; `cfg.path` to the `.pkl`,
`cfg.n_expr` explicit, `cfg.landmark_embedding` = FLAME's `mediapipe_landmark_embedding.npz`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from emotag_core.config import FlameConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.flame.model import (
    HeadModel,
    HeadModelData,
    intrinsics,
    load_flame,
    matrix_to_axis_angle,
    project,
    rodrigues,
    sha256_of,
)
from emotag_core.flame.open_model import OPEN_MODEL_FILE

__all__ = ["HeadModel", "HeadModelData", "load_head_model", "load_open_model_data", "intrinsics",
           "project", "rodrigues", "matrix_to_axis_angle", "OPEN_MODEL_FILE"]

_OPEN_HOW = ("regenerate it with `python -m emotag_core.flame.open_model` "
             "(needs `emotag fetch-assets` and py-feat)")


def load_open_model_data(path: Path | None = None) -> HeadModelData:
    """Read the open model file (FLAME layout npz) into `HeadModelData`."""
    path = Path(path or OPEN_MODEL_FILE)
    if not path.exists():
        raise InputError(path, "open head model file not found", _OPEN_HOW)
    try:
        d = np.load(path, allow_pickle=False)
        n_s, n_e = int(d["n_shape"]), int(d["n_expr"])
        sd = d["shapedirs"]
        data = HeadModelData(
            name="open", v_template=d["v_template"], faces=d["f"],
            shapedirs=sd[..., :n_s], exprdirs=sd[..., n_s:n_s + n_e],
            posedirs=d["posedirs"].reshape(-1, d["posedirs"].shape[-1]).T.copy(),
            J_regressor=d["J_regressor"], weights=d["weights"],
            parents=np.where(d["kintree_table"][0] > 1000, -1, d["kintree_table"][0]).astype(np.int64),
            lmk_vertex_ids=d["lmk_vertex_ids"], lmk_bary=d["lmk_b_coords"],
            uv=d["vt"], uv_faces=None, expr_names=[str(x) for x in d["expr_names"]],
            source=str(path), sha256=sha256_of(path),
        )
        meta = json.loads(str(d["meta"]))
    except (KeyError, ValueError, OSError) as exc:
        raise InputError(path, f"not an open head model file ({exc})", _OPEN_HOW) from exc
    if sd.shape[-1] != n_s + n_e or meta.get("model") != "open":
        raise InputError(path, "open model file is inconsistent (shapedirs width or model tag)", _OPEN_HOW)
    if len(data.uv) != len(data.v_template):  # UVs cover the 468 mesh vertices; iris points reuse neighbours'
        extra = len(data.v_template) - len(data.uv)
        data.uv = np.concatenate([data.uv, np.repeat(data.uv[-1:], extra, 0)])
    return data


def load_head_model(cfg: FlameConfig, device: torch.device | str = "cpu") -> HeadModel:
    """The head model named by `cfg` (checked against its file), on `device`."""
    if cfg.model == "open":
        if cfg.path is not None and not str(cfg.path).endswith(".npz"):
            raise ConfigError(f"flame.model is `open` but flame.path is {cfg.path} (a FLAME file?); "
                              "set flame.model: flame2020/flame2023 to use FLAME, or flame.path: null")
        data = load_open_model_data(Path(cfg.path) if cfg.path else None)
        if cfg.n_expr is not None and cfg.n_expr != data.exprdirs.shape[-1]:
            raise ConfigError(f"flame.n_expr is {cfg.n_expr} but the open model has "
                              f"{data.exprdirs.shape[-1]} expression components (its own dimension, "
                              "not padded); set flame.n_expr: null")
        if cfg.n_shape is not None and cfg.n_shape < data.shapedirs.shape[-1]:
            data.shapedirs = data.shapedirs[..., :cfg.n_shape]
    elif cfg.model in ("flame2020", "flame2023"):
        if cfg.path is None:
            raise ConfigError(f"flame.model is `{cfg.model}` but flame.path is null; FLAME is licensed: "
                              "download it from https://flame.is.tue.mpg.de and set flame.path to the .pkl")
        emb = Path(cfg.landmark_embedding) if cfg.landmark_embedding else None
        data = load_flame(Path(cfg.path), cfg.model, cfg.n_expr, cfg.n_shape or 100, emb)
    else:
        raise ConfigError(f"flame.model must be open, flame2020 or flame2023, got {cfg.model!r}")
    sets = None
    if cfg.augment_mouth:
        from emotag_core.flame.mouth import augment_mouth

        data, sets = augment_mouth(data)
    model = HeadModel(data)
    if sets is not None:
        model.mouth_vertex_ids = torch.as_tensor(sets["mouth_vertex_ids"], dtype=torch.long)
        model.teeth_vertex_ids = torch.as_tensor(sets["teeth_vertex_ids"], dtype=torch.long)
        model.mouth_faces = torch.as_tensor(sets["mouth_faces"], dtype=torch.long)
        model.lower_teeth_vertex_ids = torch.as_tensor(sets["lower_teeth_vertex_ids"], dtype=torch.long)
        model.n_face_faces = int(sets["n_face_faces"])
        model.augmented = True
    return model.to(device)
