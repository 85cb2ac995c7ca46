"""Kill-and-resume trials: SIGKILL a long stage at a random point, rerun it, and check its outputs
equal an uninterrupted run's and that no temporary file is left.

Comparison per file: Parquet tables, WAVs and other plain files bitwise; torch checkpoints by
their tensors (exact equality); mp4 by decoded video frames and audio samples (exact), because
the container stores an encoder-version string; JSON summaries by every key except timings.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .harness import Scratch

# Tiny CPU smoke overrides written into the scratch params.yaml (the `-S`-style profile of the trials).
TINY = {
    "synth.seconds": 3.0, "synth.size": 128,
    "ingest.size": 128,
    "track.iters": 30,
    "identity.top_k": 10,
    "geometry.size": 64,
    "pretrain.iters": 30, "pretrain.static_iters": 5, "pretrain.n_gaussians": 400, "pretrain.image_size": 32,
    "pretrain.checkpoint_every": 5, "pretrain.log_every": 5,
    "adapt.iters": 20, "adapt.static_iters": 5, "adapt.checkpoint_every": 5,
    "render.batch_size": 4,
}

# stage -> (command, outputs relative to the scratch root, checkpoint folders cleared before a trial)
_STAGES = {
    "ingest": (["python", "-m", "stages.ingest", "{id}"],
               ["data/processed/{id}/frames.parquet", "data/processed/{id}/audio"], []),
    "track": (["python", "-m", "stages.track", "{id}"],
              ["data/processed/{id}/flame.parquet", "data/processed/{id}/track_overlay.mp4"], []),
    "pretrain": (["python", "-m", "stages.pretrain"], ["data/models/pretrain"], ["data/models/.checkpoints/pretrain"]),
    "adapt": (["python", "-m", "stages.adapt", "{id}"], ["data/models/{id}"], ["data/models/.checkpoints/{id}"]),
    "render": (["python", "-m", "stages.render", "{id}"], ["data/renders/{id}"], []),
}
IDENTITY = {"id": "sample"}  # the target identity the per-identity trials run on


class _Stages(dict):
    def __getitem__(self, k):
        cmd, outs, ck = _STAGES[k]
        f = lambda xs: [x.format(**IDENTITY) for x in xs]  # noqa: E731
        return f(cmd), f(outs), f(ck)


STAGES = _Stages({k: None for k in _STAGES})
TIMING_KEYS = {"wall_s", "it_per_s", "fps", "resumed_from", "loader_row_group_reads", "latency_ms", "train_s",
               "elapsed_s", "time_s", "seconds"}


@dataclass
class Trial:
    """One kill-and-resume trial."""

    stage: str
    kill_at_s: float
    killed: bool            # the process was still running when the kill came
    identical: bool
    stale: list[str]
    modes: list[str]        # comparison used per file kind
    detail: str
    resume_s: float


def _files(paths: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        if p.is_dir():
            out.update({str(q.relative_to(p.parent)): q for q in sorted(p.rglob("*")) if q.is_file()})
        elif p.exists():
            out[p.name] = p
    return out


def _strip(x):
    if isinstance(x, dict):
        return {k: _strip(v) for k, v in x.items() if k not in TIMING_KEYS and not k.endswith("_s")}
    if isinstance(x, list):
        return [_strip(v) for v in x]
    return x


def _tensors_equal(a, b) -> bool:
    import torch

    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_tensors_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _decode_mp4(p: Path) -> tuple[np.ndarray, np.ndarray]:
    import av

    with av.open(str(p)) as c:
        v = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    with av.open(str(p)) as c:
        a = [f.to_ndarray() for f in c.decode(audio=0)] if c.streams.audio else []
    return v, (np.concatenate(a, axis=-1) if a else np.zeros(0))


def same_file(a: Path, b: Path) -> tuple[bool, str]:
    """(equal?, comparison mode) for one output file against its reference."""
    suf = a.suffix.lower()
    if suf in (".pt", ".pth", ".ckpt"):
        import torch

        return _tensors_equal(torch.load(a, map_location="cpu", weights_only=False),
                              torch.load(b, map_location="cpu", weights_only=False)), "tensors"
    if suf == ".json":
        return _strip(json.loads(a.read_text())) == _strip(json.loads(b.read_text())), "json-no-timings"
    if suf == ".mp4":
        va, aa = _decode_mp4(a)
        vb, ab = _decode_mp4(b)
        return va.shape == vb.shape and np.array_equal(va, vb) and np.array_equal(aa, ab), "decoded-mp4"
    if suf in (".tsv", ".csv") or "plots" in a.parts:
        return True, "skipped-curves"  # dvclive curves hold wall-clock columns
    return a.read_bytes() == b.read_bytes(), "bitwise"


def snapshot(scratch: Scratch, stage: str, dest: Path) -> None:
    """Copy the stage's current (uninterrupted) outputs to `dest` as the reference."""
    for rel in STAGES[stage][1]:
        src = scratch.root / rel
        d = dest / rel
        d.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, d, dirs_exist_ok=True)
        elif src.exists():
            shutil.copy2(src, d)


def _clear(scratch: Scratch, stage: str) -> None:
    cmd, outs, ckpts = STAGES[stage]
    for rel in outs + ckpts:  # what `dvc repro` removes before a rerun (+ the checkpoint store)
        p = scratch.root / rel
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _run_stage(scratch: Scratch, stage: str, kill_after: float | None) -> tuple[int | None, float]:
    cmd = STAGES[stage][0]
    t0 = time.perf_counter()
    proc = subprocess.Popen([cmd[0] if cmd[0] != "python" else str(Path(scratch.env["PATH"].split(os.pathsep)[0]) / "python"),
                             *cmd[1:]], cwd=scratch.root, env=scratch.env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    if kill_after is None:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise RuntimeError(f"{stage} failed: {err.decode()[-1500:]}")
        return proc.returncode, time.perf_counter() - t0
    try:
        proc.wait(timeout=kill_after)
        return proc.returncode, time.perf_counter() - t0  # finished before the kill
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None, time.perf_counter() - t0


def reference(scratch: Scratch, stage: str, ref_root: Path) -> float:
    """Run the stage uninterrupted from clean outputs; snapshot; return its wall time."""
    _clear(scratch, stage)
    _, dt = _run_stage(scratch, stage, None)
    snapshot(scratch, stage, ref_root / stage)
    return dt


def trial(scratch: Scratch, stage: str, ref_root: Path, wall_s: float, rng: random.Random) -> Trial:
    """Kill `stage` at a random point of its uninterrupted wall time, rerun, compare with the reference."""
    _clear(scratch, stage)
    kill_at = rng.uniform(0.15, 0.9) * wall_s
    rc, _ = _run_stage(scratch, stage, kill_at)
    killed = rc is None
    _, dt = _run_stage(scratch, stage, None)  # the resume (what `dvc repro` runs again)
    ref = _files([ref_root / stage / rel for rel in STAGES[stage][1]])
    got = _files([scratch.root / rel for rel in STAGES[stage][1]])
    problems, modes = [], set()
    if set(ref) != set(got):
        problems.append(f"files differ: missing {sorted(set(ref) - set(got))}, extra {sorted(set(got) - set(ref))}")
    for k in sorted(set(ref) & set(got)):
        ok, mode = same_file(got[k], ref[k])
        modes.add(mode)
        if not ok:
            problems.append(f"{k} differs ({mode})")
    stale = [str(p) for p in scratch.temp_leftovers()]
    return Trial(stage, round(kill_at, 2), killed, not problems, stale, sorted(modes), "; ".join(problems), round(dt, 1))


def run_trials(scratch: Scratch, ref_root: Path, per_stage: dict[str, int], seed: int = 0, log=print) -> list[Trial]:
    """References then `per_stage[s]` kill trials for each stage (the chain's inputs must exist)."""
    rng = random.Random(seed)
    out: list[Trial] = []
    for stage, n in per_stage.items():
        wall = reference(scratch, stage, ref_root)
        log(f"kill/resume: {stage} uninterrupted {wall:.1f} s")
        for _ in range(n):
            t = trial(scratch, stage, ref_root, wall, rng)
            log(f"kill/resume: {stage} killed at {t.kill_at_s:.1f} s (killed={t.killed}) -> identical={t.identical} "
                f"stale={t.stale} {t.detail}")
            out.append(t)
    return out
