"""Shared machinery of the reliability checks: a scratch copy of the repository (a git clone of
HEAD, so code and params.yaml agree even while others edit the working tree), running the real CLI and `dvc repro` in it, and
scanning it for partial outputs and stale temporary files.

Used by tests/reliability/ (reduced counts) and bench/reliability.py (full counts).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
TMP_PREFIX = ".tmp-"


def set_dotted(data: dict, key: str, value: Any) -> None:
    """data['a']['b'] = value for key 'a.b' (creating sections as needed)."""
    *head, last = key.split(".")
    for k in head:
        data = data.setdefault(k, {})
    data[last] = value


class Scratch:
    """A throw-away clone of the repository where the CLI and DVC run for real."""

    def __init__(self, root: Path, overrides: Mapping[str, Any] | None = None, source: Path = REPO) -> None:
        self.root = Path(root)
        if not (self.root / ".git").exists():
            subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(source), str(self.root)], check=True)
            if overrides:
                self.edit_params(overrides)
        self.tmpdir = self.root / ".probe_tmp"  # TMPDIR of every command: must stay empty
        self.tmpdir.mkdir(exist_ok=True)
        venv_bin = Path(sys.executable).parent
        self.env = {**os.environ, "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
                    "PYTHONPATH": str(self.root), "TMPDIR": str(self.tmpdir), "COLUMNS": "400",
                    "OMP_NUM_THREADS": "1", "DVC_NO_ANALYTICS": "1", "PYTHONUNBUFFERED": "1",
                    "TQDM_DISABLE": "1"}

    # --- params -----------------------------------------------------------------------------
    def params_text(self) -> str:
        return (self.root / "params.yaml").read_text(encoding="utf-8")

    def edit_params(self, overrides: Mapping[str, Any]) -> None:
        import yaml

        data = yaml.safe_load(self.params_text())
        for k, v in overrides.items():
            set_dotted(data, k, v)
        (self.root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")

    # --- commands -----------------------------------------------------------------------------
    def run(self, *cmd: str, timeout: float = 900) -> subprocess.CompletedProcess:
        """Run a command in the scratch repo; stdout and stderr merged into `.stdout`."""
        return subprocess.run(list(cmd), cwd=self.root, env=self.env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout)

    def emotag(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "stages.cli", *args)

    def repro(self, *targets: str, single: bool = False, keep_going: bool = True) -> tuple[int, dict[str, str]]:
        """`dvc repro` the targets; returns (exit code, {stage name: its section of the log})."""
        cmd = ["dvc", "repro", "--no-commit"] + (["-k"] if keep_going else []) + (["-s"] if single else []) + list(targets)
        r = self.run(*cmd)
        return r.returncode, split_stages(r.stdout)

    # --- scans --------------------------------------------------------------------------------
    def temp_leftovers(self) -> list[Path]:
        """Stale `.tmp-*` siblings under data/ and anything left in the commands' TMPDIR."""
        data = self.root / "data"
        left = sorted(data.rglob(f"{TMP_PREFIX}*")) if data.exists() else []
        caches = ("torchinductor_", "matplotlib-", "numba")  # libraries' own caches, not ours
        return left + sorted(p for p in self.tmpdir.iterdir() if not p.name.startswith(caches))

    def outputs_of(self, identity: str) -> list[Path]:
        out: list[Path] = []
        for folder in ("processed", "models", "renders", "reports"):
            p = self.root / "data" / folder / identity
            if p.exists():
                out += [q for q in sorted(p.rglob("*")) if q.is_file()]
        return out


_RUNNING = re.compile(r"^Running stage '([^']+)':", re.M)
_FAILED = re.compile(r"failed to reproduce '([^']+)'[^\n]*", re.M)
_SUMMARY = re.compile(r"^[^\n]*failed to reproduce stages: [^\n]*$", re.M)  # DVC -k's closing list of failed stages


def split_stages(log: str) -> dict[str, str]:
    """Cut a `dvc repro` log into per-stage sections; DVC's final 'failed to reproduce' lines are
    appended to the stage they name."""
    sections: dict[str, str] = {}
    marks = list(_RUNNING.finditer(log))
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(log)
        name = m.group(1)
        # the last section runs to the end of the log, where DVC -k may summarise other stages' failures
        text = _SUMMARY.sub("", log[m.start():end])
        sections[name] = _FAILED.sub(lambda f: f.group(0) if f.group(1) == name else "", text)
    for m in _FAILED.finditer(log):
        sections.setdefault(m.group(1), "")
        if m.group(0) not in sections[m.group(1)]:
            sections[m.group(1)] += "\n" + m.group(0)
    return sections


def one_line(text: str) -> str:
    return " ".join(text.split())


def stage_failed(section: str) -> bool:
    return bool(re.search(r"failed to reproduce|exited with", section))


def exit_code_of(section: str) -> int | None:
    m = re.search(r"exited with (-?\d+)", section)
    return int(m.group(1)) if m else (None if stage_failed(section) else 0)
