"""One CI cycle over a shared DVC cache: pull what others computed, reproduce what changed, push.

    python -m pipelines.ci_cycle [--remote NAME] [--targets stage ...]

Used by `.github/workflows/dvc-repro.yml` (users' CI) and by the tests, which run it in two
clones sharing a local-directory remote: the second clone runs no stage command. Prints which
stages ran and which came from the cache, and exits non-zero if `dvc repro` fails.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class CycleResult:
    """Stages that ran, and whether the cache was pulled and pushed."""

    ran: list[str] = field(default_factory=list)
    pulled: bool = False
    pushed: bool = False
    log: str = ""


def _dvc(args: list[str], cwd: Path | None) -> subprocess.CompletedProcess:
    exe = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    return subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True)


def cycle(cwd: Path | None = None, remote: str | None = None, targets: list[str] | None = None,
          push: bool = True) -> CycleResult:
    """pull (missing allowed) → repro → push; returns which stages ran."""
    res = CycleResult()
    rargs = ["-r", remote] if remote else []
    pull = _dvc(["pull", "--allow-missing", *rargs, *(targets or [])], cwd)
    res.pulled = pull.returncode == 0
    rep = _dvc(["repro", *(targets or [])], cwd)
    res.log = rep.stdout + rep.stderr
    res.ran = re.findall(r"Running stage '([^']+)'", res.log)
    if rep.returncode != 0:
        raise RuntimeError(f"dvc repro failed:\n{res.log[-3000:]}")
    if push:
        p = _dvc(["push", *rargs], cwd)
        if p.returncode != 0:
            raise RuntimeError(f"dvc push failed: {p.stderr.strip()}")
        res.pushed = True
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.ci_cycle", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remote")
    ap.add_argument("--no-push", action="store_true")
    ap.add_argument("targets", nargs="*")
    a = ap.parse_args(argv)
    try:
        r = cycle(remote=a.remote, targets=a.targets or None, push=not a.no_push)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"stages run: {len(r.ran)} ({', '.join(r.ran) or 'none: everything came from the cache or was up to date'})")
    print(f"pulled: {r.pulled}, pushed: {r.pushed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
