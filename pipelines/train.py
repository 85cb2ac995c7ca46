"""Prefect flow `train`: pretrain → adapt → render → evaluate, through DVC.

    python -m pipelines.train [--targets sample anna] [--retries 1]

Each step is `dvc repro <stage>` (so DVC decides what is stale and records results; a second
run recomputes nothing). Pretraining runs once; then each target is adapted, rendered and
evaluated. Steps of one target run in order; targets run one after another (they share the
DVC lock, and on one machine the training steps already use every core). A failed target is
reported in the summary and does not stop the others.
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from emotag_core.errors import EmotagError


def _repro(target: str, cwd: Path) -> list[str]:
    exe = shutil.which("dvc") or str(Path(sys.executable).with_name("dvc"))
    out = subprocess.run([exe, "repro", target], cwd=cwd, capture_output=True, text=True)
    if out.returncode != 0:
        lines = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.strip()]
        raise EmotagError(f"dvc repro {target} failed: {lines[-1] if lines else out.returncode}")
    return re.findall(r"Running stage '([^']+)'", out.stdout)


def train(targets: list[str], repo: Path = Path("."), retries: int = 1) -> dict[str, dict]:
    """Run the flow; returns per-target {'ran': [...], 'failed': str | None}."""
    from prefect import flow, task

    @task(retries=retries, retry_delay_seconds=2, task_run_name="dvc repro {target}")
    def repro(target: str) -> list[str]:
        return _repro(target, repo)

    @flow(name="train")
    def train_flow() -> dict[str, dict]:
        summary: dict[str, dict] = {"pretrain": {"ran": repro("pretrain"), "failed": None}}
        for t in targets:
            res: dict = {"ran": [], "failed": None}
            for st in ("adapt", "render", "evaluate"):
                try:
                    res["ran"] += repro(f"{st}@{t}")
                except Exception as exc:  # noqa: BLE001 - one target's failure is reported, not fatal
                    res["failed"] = f"{st}: {exc}"
                    break
            summary[t] = res
        return summary

    return train_flow()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", nargs="*")
    ap.add_argument("--retries", type=int, default=1)
    a = ap.parse_args(argv)
    from emotag_core.config import load_params

    targets = a.targets or load_params().targets
    summary = train(targets, retries=a.retries)
    from rich.console import Console
    from rich.table import Table

    t = Table(title="train: summary")
    for c in ("step", "stages run", "status"):
        t.add_column(c)
    for k, v in summary.items():
        t.add_row(k, ", ".join(v["ran"]) or "up to date", f"[red]{v['failed']}[/]" if v["failed"] else "[green]ok[/]")
    Console().print(t)
    return 1 if any(v["failed"] for v in summary.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
