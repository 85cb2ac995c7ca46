"""The tests' tiny adapted identity (`emotag_core.serve.tiny`) in a work folder with a params.yaml sized for
the CPU, in the layout `emotag serve` reads (not the full DAG)."""
from __future__ import annotations

from pathlib import Path

import yaml

from emotag_core.config import FlameConfig
from emotag_core.serve.tiny import speech_wav, write_adapted, write_cue_tables

IDENTITY = "anna"
__all__ = ["IDENTITY", "make_workdir", "speech_wav"]


def make_workdir(root: Path, repo_root: Path, size: int = 96, raster: int = 48, n_gaussians: int = 600,
                 serve: dict | None = None) -> Path:
    """`root` with params.yaml, data/models/anna and data/processed/anna; returns root."""
    from emotag_core.flame import load_head_model

    write_adapted(root / "data" / "models" / IDENTITY, n_gaussians)
    proc = root / "data" / "processed" / IDENTITY
    proc.mkdir(parents=True)
    write_cue_tables(proc, load_head_model(FlameConfig(), "cpu").n_expr)
    p = yaml.safe_load((repo_root / "params.yaml").read_text())
    p["identities"] = {IDENTITY: {"role": "target", "source": f"data/raw/{IDENTITY}"},
                       "bob": {"role": "target", "source": "data/raw/bob"}}  # bob: listed, never adapted
    p["corpus"], p["targets"] = [], [IDENTITY, "bob"]
    p["ingest"]["size"] = size
    p["audio_features"]["backend"] = "logmel"  # the tiny GRMN reads 320-d log-mel windows
    p["flame"]["model"] = "open"  # the tables above are the library default head model's (FlameConfig())
    p["render"].update(size=raster, device="cpu", threads=1, cue_clip=None)
    p["serve"].update(serve or {})
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root
