"""The adapted model of one identity: what `adapt@<id>` writes and inference reads.

A folder with `grmn.pt` (the adapted GRMN, its spec and the identity vector) and `scene.pt` (the
identity's Gaussians, background and tracking metadata). Loading needs only the head-model config
(the scene is rigged to it) and the rasterizer backend: not the training params.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_path

GRMN_FILE, SCENE_FILE = "grmn.pt", "scene.pt"
ADAPTED_FILES = (GRMN_FILE, SCENE_FILE)


def save_adapted(folder: str | Path, grmn: Any, scene: Any, meta: dict[str, Any],
                 n_gaussians: int, seed: int, extra: dict[str, Any] | None = None) -> None:
    """Write grmn.pt (adapted GRMN) and scene.pt (Gaussians, background, identity metadata) atomically."""
    from emotag_core.train.checkpoint import save_model  # the GRMN file format

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder / GRMN_FILE, grmn, extra=dict(extra or {}, identity_vector=meta["identity_vector"]))
    payload = {"kind": "emotag.scene", "version": 1, "meta": meta, "n_gaussians": n_gaussians, "seed": seed,
               "state_dict": {k: v.detach().cpu() for k, v in scene.state_dict().items()}}
    with atomic_path(folder / SCENE_FILE) as tmp:
        torch.save(payload, tmp)


def missing_files(folder: str | Path) -> list[Path]:
    """The files of an adapted model folder that are absent (empty: complete)."""
    return [Path(folder) / f for f in ADAPTED_FILES if not (Path(folder) / f).exists()]


def load_adapted(folder: str | Path, flame: Any, rasterizer: str,
                 device: str | torch.device = "cpu") -> tuple[Any, Any, Tensor]:
    """(adapted GRMN, the identity's scene, identity vector s [1, S]) from an adapt@<id> output folder.

    flame: the `FlameConfig` the scene is rigged to; rasterizer: the scene's backend (`torch` | `gsplat`).
    """
    from emotag_core.flame import load_head_model
    from emotag_core.train.checkpoint import load_model  # the GRMN file format
    from emotag_core.avatar.scene import build_scene

    folder = Path(folder)
    grmn, _extra = load_model(folder / GRMN_FILE, device)
    path = folder / SCENE_FILE
    if not path.exists():
        raise InputError(path, "adapted scene not found", "run `dvc repro adapt@<id>`")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("kind") != "emotag.scene":
        raise InputError(path, "not an adapted scene written by this project", "re-run `dvc repro adapt@<id>`")
    head = load_head_model(flame, device)
    scene = build_scene(head, payload["meta"], payload["n_gaussians"], backend=rasterizer, device=device)
    state = dict(payload["state_dict"])
    plate, torso, motion = state.pop("plate", None), state.pop("torso", None), state.pop("motion", None)
    body = state.pop("body", None)
    scene.load_state_dict(state)
    scene.set_body(body)  # the body pose the neck holds (adapt.neck: tracked), None: a rigid neck
    if plate is not None:  # the layers behind the head (issue 18), when adapt built them
        scene.set_layers(plate[0], torso, motion)
    s = torch.tensor(payload["meta"]["identity_vector"], dtype=torch.float32, device=device)[None]
    return grmn.eval(), scene.eval(), s


def load_animator(folder: str | Path, flame: Any, rasterizer: str, render: Any, size: int,
                  control: Any = None, device: str | None = None, batch: int | None = None) -> Any:
    """Adapted GRMN + the identity's scene + its identity vector, ready to render.

    render: the `RenderConfig` (device, graphed, batch_size, gate_scale, gate_override, size); size: the
    video side (ingest.size). On CUDA (render.graphed auto/true) a `GraphedAnimator` built for `batch` frames
    (default render.batch_size; the last partial batch is padded), else the eager `Animator`.
    """
    from emotag_core.render.driver import GateControl
    from emotag_core.render.graphed import build_animator

    dev = device or render.device
    grmn, scene, s = load_adapted(folder, flame, rasterizer, device=dev)
    return build_animator(grmn, scene, s, graphed=render.graphed, batch=batch or render.batch_size,
                          size=int(size), control=control or GateControl(render.gate_scale, render.gate_override),
                          device=dev, raster_size=render.size)


def animator_kind(animator: Any) -> str:
    """`graph (batch B)` for the CUDA-graph animator, `eager` otherwise (recorded in render.json)."""
    poser = getattr(animator, "poser", None)
    return f"{poser.mode} (batch {poser.batch})" if poser is not None else "eager"
