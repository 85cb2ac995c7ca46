"""The adapted model of one identity (what `adapt@<id>` writes and `render@<id>` reads)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_path
from emotag_core.motion.grmn import GRMN
from emotag_core.train.checkpoint import load_model, save_model
from emotag_core.train.scene import IdentityScene, build_scene

GRMN_FILE, SCENE_FILE = "grmn.pt", "scene.pt"


def save_adapted(folder: str | Path, grmn: GRMN, scene: IdentityScene, meta: dict[str, Any],
                 n_gaussians: int, seed: int, extra: dict[str, Any] | None = None) -> None:
    """Write grmn.pt (adapted GRMN) and scene.pt (Gaussians, background, identity metadata) atomically."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(folder / GRMN_FILE, grmn, extra=dict(extra or {}, identity_vector=meta["identity_vector"]))
    payload = {"kind": "emotag.scene", "version": 1, "meta": meta, "n_gaussians": n_gaussians, "seed": seed,
               "state_dict": {k: v.detach().cpu() for k, v in scene.state_dict().items()}}
    with atomic_path(folder / SCENE_FILE) as tmp:
        torch.save(payload, tmp)


def load_adapted(folder: str | Path, p: Any, device: str | torch.device = "cpu") -> tuple[GRMN, IdentityScene, Tensor]:
    """(adapted GRMN, the identity's scene, identity vector s [1, S]) from an adapt@<id> output folder."""
    from emotag_core.flame import load_head_model

    folder = Path(folder)
    grmn, extra = load_model(folder / GRMN_FILE, device)
    path = folder / SCENE_FILE
    if not path.exists():
        raise InputError(path, "adapted scene not found", "run `dvc repro adapt@<id>`")
    payload = torch.load(path, map_location="cpu", weights_only=False)
    head = load_head_model(p.flame, device)
    scene = build_scene(head, payload["meta"], payload["n_gaussians"], backend=p.pretrain.rasterizer, device=device)
    scene.load_state_dict(payload["state_dict"])
    s = torch.tensor(payload["meta"]["identity_vector"], dtype=torch.float32, device=device)[None]
    return grmn.eval(), scene.eval(), s
