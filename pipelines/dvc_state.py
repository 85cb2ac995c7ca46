"""DVC as the single source of truth: what is stale, and recording work done outside `dvc repro`.

Parallel identities must not fight over DVC's repo lock. So a flow asks DVC once, up front,
which stages are stale (`dvc status --json`), runs the stage commands itself (each stage writes
its outputs atomically and touches only its own identity's folder), and at the end records all
finished stages in one `dvc commit` call. Afterwards `dvc status` is clean and `dvc repro` does
nothing, exactly as if `dvc repro` had run them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from emotag_core.errors import EmotagError
from stages.registry import PREPROCESS  # noqa: F401 - re-exported for the flows' callers


def _dvc() -> list[str]:
    exe = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    return [exe]


def stale_stages(targets: list[str] | None = None, cwd: Path | None = None) -> set[str]:
    """Names (`stage@id`) that `dvc status` reports as changed (or never run)."""
    out = subprocess.run(_dvc() + ["status", "--json", *(targets or [])], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise EmotagError(f"`dvc status` failed: {out.stderr.strip() or out.stdout.strip()}")
    text = out.stdout.strip() or "{}"
    return set(json.loads(text))


def commit(stages: list[str], cwd: Path | None = None) -> None:
    """Record finished stages in dvc.lock (and the cache) in one locked call."""
    if not stages:
        return
    out = subprocess.run(_dvc() + ["commit", "-f", "-q", *stages], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        raise EmotagError(f"`dvc commit` failed: {out.stderr.strip()}")


def stage_commands(cwd: Path | None = None) -> dict[str, str]:
    """`stage@id` -> the shell command dvc.yaml gives it (read once, without taking the lock)."""
    from dvc.repo import Repo

    with Repo(str(cwd or Path("."))) as repo:
        return {s.addressing.rsplit(":", 1)[-1]: s.cmd for s in repo.index.stages if s.cmd}


def run_stage(name: str, cmd: str, cwd: Path | None = None, log: Path | None = None) -> float:
    """Run one stage's command; raises StageFailed with the stage's last error line."""
    import time

    t0 = time.perf_counter()
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    out = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True, text=True, env=env)
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a", encoding="utf-8") as fh:
            fh.write(f"$ {cmd}\n{out.stdout}{out.stderr}\n")
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr or out.stdout).strip().splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit code {out.returncode}"
        if out.returncode < 0 or out.returncode in (137, 143):
            why = f"killed ({out.returncode})"
        raise StageFailed(f"{name}: {why}", transient=out.returncode != 2)
    return time.perf_counter() - t0


class StageFailed(EmotagError):
    """A stage subprocess failed; `transient` is False for input errors (exit code 2)."""

    def __init__(self, msg: str, transient: bool) -> None:
        super().__init__(msg)
        self.transient = transient
