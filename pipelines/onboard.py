"""Prefect flow `onboard`: a dataset's layout → identities in params → all preprocessed in parallel.

    python -m pipelines.onboard --dataset mead --root /data/MEAD --workers 4
    python -m pipelines.onboard --dataset hdtf --root HDTF_dataset --videos /data/hdtf --limit 70
    python -m pipelines.onboard --dataset generic --root /data/people --runner dask --workers 8

Each identity's stages run as a chain of Prefect tasks (retried on transient failures such as a
killed worker process); identities run in parallel on the chosen task runner (threads by
default, a Dask cluster with `--runner dask`, or `--address tcp://scheduler:8786` for a real
cluster). One identity's failure never stops the others. DVC stays the source of truth: the flow
runs only what `dvc status` calls stale and records what finished with one `dvc commit`.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from emotag_core.datasets import Identity, write_manifest
from emotag_core.errors import EmotagError
from pipelines import dvc_state
from stages import registry
from stages.common import Paths
from stages.registry import PREPROCESS


@dataclass
class IdentityResult:
    """What happened to one identity in a flow run."""

    id: str
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: str | None = None
    attempts: int = 0
    seconds: float = 0.0


def discover(dataset: str, root: Path, videos: Path | None = None, role: str | None = None,
             limit: int | None = None) -> list[Identity]:
    """Identities of a dataset through its adapter."""
    if dataset == "mead":
        from emotag_core.datasets import mead

        return mead.scan(root, role=role or "target")[: limit or None]
    if dataset == "hdtf":
        from emotag_core.datasets import hdtf

        return hdtf.scan(root, videos or root, role=role or "corpus", limit=limit)
    if dataset == "generic":
        from emotag_core.datasets import generic

        return generic.scan(root, role=role or "target")[: limit or None]
    raise EmotagError(f"unknown dataset `{dataset}` (mead, hdtf, generic)")


def register(identities: list[Identity], repo: Path = Path(".")) -> None:
    """Write each identity's clip manifest under data/raw/<id>/ and list it in params.yaml (and the DAG)."""
    for ident in identities:
        write_manifest(ident, Paths(ident.id, repo).raw)
    registry.register_identities([(i.id, i.role) for i in identities], repo / registry.PARAMS, repo / registry.DVC_YAML)


def _transient_only(task, task_run, state) -> bool:
    """Retry killed/crashed stages; never retry a stage that rejected its input (exit 2)."""
    try:
        exc = state.result(raise_on_failure=False)
    except BaseException:  # noqa: BLE001 - a crashed state has no result to read
        return True
    return bool(getattr(exc, "transient", True))


def _make_flow(task_runner, retries: int, retry_delay: float):
    from prefect import flow, task

    @task(retries=retries, retry_delay_seconds=retry_delay, retry_condition_fn=_transient_only,
          task_run_name="{stage}@{identity}")
    def stage_task(stage: str, identity: str, cmd: str, cwd: str, log: str) -> float:
        return dvc_state.run_stage(f"{stage}@{identity}", cmd, cwd=Path(cwd), log=Path(log))

    @task(task_run_name="preprocess@{identity}")
    def identity_task(identity: str, names: list[str], cmds: dict[str, str], cwd: str, log: str) -> dict:
        # one identity's stages in dependency order, each a (retried) nested task; the pool's slots
        # go to identities, so no worker sits blocked on a stage's upstream future
        res: dict = {"ran": [], "failed": None}
        for st in names:
            try:
                stage_task(st, identity, cmds[st], cwd, log)
            except BaseException as exc:  # noqa: BLE001 - reported per identity, the others go on
                res["failed"] = f"{st}: {exc}"
                break
            res["ran"].append(st)
        return res

    @flow(name="onboard", task_runner=task_runner)
    def onboard_flow(todo: dict[str, list[str]], cmds: dict[str, str], cwd: str, log_dir: str) -> dict[str, dict]:
        futs = {ident: identity_task.submit(ident, names, {st: cmds[f"{st}@{ident}"] for st in names}, cwd,
                                            f"{log_dir}/{ident}.log")
                for ident, names in todo.items()}
        out: dict[str, dict] = {}
        for ident, fut in futs.items():
            try:
                out[ident] = fut.result()
            except BaseException as exc:  # noqa: BLE001 - e.g. the worker running it died for good
                out[ident] = {"ran": [], "failed": f"{type(exc).__name__}: {exc}"}
        return out

    return onboard_flow


def preprocess(ids: list[str], workers: int = 2, runner: str = "thread", address: str | None = None,
               retries: int = 2, retry_delay: float = 1.0, stages: tuple[str, ...] = PREPROCESS,
               repo: Path = Path(".")) -> list[IdentityResult]:
    """Bring every identity's preprocessing up to date; returns a summary per identity."""
    t0 = time.perf_counter()
    stale = dvc_state.stale_stages(cwd=repo)
    todo: dict[str, list[str]] = {}
    results = {i: IdentityResult(i) for i in ids}
    for i in ids:
        names = [s for s in stages if f"{s}@{i}" in stale]
        # a stale stage makes everything after it stale too (dependency order)
        if names:
            first = stages.index(names[0])
            names = list(stages[first:])
        todo[i] = names
        results[i].skipped = [s for s in stages if s not in names]
    todo = {k: v for k, v in todo.items() if v}
    if todo:
        if runner == "dask":
            from prefect_dask import DaskTaskRunner

            tr = DaskTaskRunner(address=address) if address else DaskTaskRunner(
                cluster_kwargs={"n_workers": workers, "threads_per_worker": 1, "processes": True})
        else:
            from prefect.task_runners import ThreadPoolTaskRunner

            tr = ThreadPoolTaskRunner(max_workers=workers)
        flow_fn = _make_flow(tr, retries, retry_delay)
        log_dir = str(registry.onboard_logs(repo).resolve())
        cmds = dvc_state.stage_commands(repo)
        out = flow_fn(todo, cmds, str(repo.resolve()), log_dir)
        done: list[str] = []
        for ident, res in out.items():
            results[ident].ran = res["ran"]
            results[ident].failed = res["failed"]
            done += [f"{s}@{ident}" for s in res["ran"]]
        dvc_state.commit(done, cwd=repo)
    for r in results.values():
        r.seconds = time.perf_counter() - t0
    return list(results.values())


def print_summary(results: list[IdentityResult]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="onboard: per-identity summary")
    for c in ("identity", "ran", "up to date", "status"):
        t.add_column(c)
    for r in results:
        t.add_row(r.id, ", ".join(r.ran) or "-", str(len(r.skipped)),
                  f"[red]failed: {r.failed}[/]" if r.failed else "[green]ok[/]")
    Console().print(t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.onboard", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", required=True, choices=["mead", "hdtf", "generic"])
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--videos", type=Path, help="HDTF: folder of downloaded videos")
    ap.add_argument("--role", choices=["target", "corpus"])
    ap.add_argument("--limit", type=int)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runner", choices=["thread", "dask"], default="thread")
    ap.add_argument("--address", help="Dask scheduler address of an existing cluster")
    ap.add_argument("--retries", type=int, default=2)
    ap.add_argument("--stages", default=",".join(PREPROCESS), help="comma-separated subset, in order")
    a = ap.parse_args(argv)
    try:
        idents = discover(a.dataset, a.root, a.videos, a.role, a.limit)
        register(idents)
        results = preprocess([i.id for i in idents], a.workers, a.runner, a.address, a.retries,
                             stages=tuple(s for s in a.stages.split(",") if s))
    except EmotagError as exc:
        print(f"onboard: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    print_summary(results)
    return 1 if any(r.failed for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
