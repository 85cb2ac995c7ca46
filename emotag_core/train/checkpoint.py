"""Resumable training checkpoints and the saved GRMN model file.

A checkpoint holds everything a run needs to continue bit-exactly: model and optimiser state,
torch and loader RNG state, and the iteration. It is written atomically (temp file + rename),
so a kill at any moment leaves either the previous checkpoint or the new one.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import torch

from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_path
from emotag_core.motion.grmn import GRMN, GRMNSpec

_NAME = re.compile(r"^ckpt-(\d{9})\.pt$")


def save_checkpoint(folder: str | Path, iteration: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Write `state` (plus torch RNG state) as checkpoint `iteration` atomically; keep the newest `keep`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"ckpt-{iteration:09d}.pt"
    payload = dict(state, iteration=iteration, torch_rng=torch.get_rng_state())
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    for old in list_checkpoints(folder)[:-keep]:
        old.unlink(missing_ok=True)
    return path


def list_checkpoints(folder: str | Path) -> list[Path]:
    """Checkpoints in `folder`, oldest first."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(p for p in folder.iterdir() if _NAME.match(p.name))


def clear_checkpoints(folder: str | Path) -> None:
    """Remove a finished run's checkpoint folder: checkpoints only serve a killed run, and a finished
    one must not make a later run (new code, same params) "resume" at its end and skip training."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def load_latest(folder: str | Path, fingerprint: str | None = None) -> dict[str, Any] | None:
    """The newest checkpoint whose fingerprint matches (None if there is none); restores torch's RNG."""
    for path in reversed(list_checkpoints(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception:  # a checkpoint from a crashed disk write: fall back to the previous one
            continue
        if fingerprint is not None and state.get("fingerprint") != fingerprint:
            return None
        torch.set_rng_state(state["torch_rng"])
        state["path"] = str(path)
        return state
    return None


def save_model(path: str | Path, grmn: GRMN, extra: dict[str, Any] | None = None) -> None:
    """Save a GRMN (spec + weights + metadata such as the audio backend) atomically."""
    payload = {"kind": "emotag.grmn", "version": 1, "spec": dataclasses.asdict(grmn.spec),
               "state_dict": {k: v.detach().cpu() for k, v in grmn.state_dict().items()}, "extra": extra or {}}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[GRMN, dict[str, Any]]:
    """Load a GRMN saved by `save_model` -> (model in eval mode on `device`, extra metadata)."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "GRMN model file not found", "run `dvc repro pretrain` (or adapt@<id>) first")
    payload = torch.load(p, map_location="cpu", weights_only=False)
    if not isinstance(payload, dict) or payload.get("kind") != "emotag.grmn":
        raise InputError(p, "not a GRMN model file written by this project", "re-run the stage that writes it")
    model = GRMN(GRMNSpec(**payload["spec"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval(), payload["extra"]
