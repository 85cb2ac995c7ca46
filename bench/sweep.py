"""Sweeps of the synthetic-truth motion benchmark from one spec file: settings x seeds, run by `dvc exp run --queue`
on the CPU or in-process on the device machine (no dvc there), one table from either.

A spec (`bench/sweeps/<name>.yaml`) holds `base` (the `-S key=value` overrides of every run), `seeds`, and
`variants`: name -> overrides (a list; nested lists flatten, so YAML anchors can share groups of settings) or
{set: [...], seeds: [...]}. Run `<variant>_s<seed>` = base + the variant's overrides + `pretrain.seed=<seed>`,
applied on top of the bench's params (`bench/grmn_synth.params.yaml` merged over params.yaml by
`grmn_synth.py prepare`; a bundle carries that params.yaml). Optional keys: `description`, `bundle` (the device
runs' cwd), `gsplat` (render-based runs: the device needs the gsplat kit), `timeout_s` (per device run),
`keep_preds` (also write the per-frame series), `keep_models` (run names whose trained models stay in
`<out>/<run>/models/`: `pretrain/grmn.pt` is then a prior another job can adapt, e.g. device_adapt_render.py's).

    python bench/sweep.py expand SPEC                       # the runs and their overrides
    python bench/sweep.py queue SPEC [--workdir DIR] [--dry-run]   # dvc exp run --queue per run, then: dvc queue start
    python bench/sweep.py device SPEC --out DIR [--device cuda] [--jobs N]   # runs in the spec's bundle (device machine)
    python bench/sweep.py table SOURCE... [--metrics K,...] [--mean]  # SOURCE: a bench workdir (dvc exp show
                                            # --json there), a saved `dvc exp show --json` file, or a device --out DIR;
                                            # --mean: also the mean over seeds of each (variant, target)

A run whose `audio_features.backend` is not the bundle's own reads the bundle's `features/<backend>/` set instead
(`run_dirs`; made by `grmn_synth.py features` + `bundle --features`, see bench/grmn_synth_features.py).

Both paths write the metrics of `emotag_core.metrics.synth_truth.write_grmn_eval` at
`data/metrics/<target>/grmn_eval.json` (the device: under `<out>/<run>/`, with the run's effective `params.yaml`),
so `table` reads both as `dvc exp show --json` rows.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKDIR = Path(os.environ.get("GRMN_SYNTH_DIR", "/tmp/grmn_synth"))
METRICS = ("test.jaw_r", "val.jaw_r", "before_adapt.jaw_r", "test.gate_intensity_r", "test.expr_mae")
SPEC_KEYS = {"description", "bundle", "gsplat", "timeout_s", "keep_preds", "keep_models", "base", "seeds", "variants"}


@dataclass
class Run:
    name: str
    variant: str
    seed: int
    overrides: list[str]  # key=value, in the order they apply


def _flat(items: Any, where: str) -> list[str]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise ValueError(f"{where}: expected a list of key=value overrides, got {items!r}")
    out: list[str] = []
    for x in items:
        if isinstance(x, list):
            out += _flat(x, where)
        elif isinstance(x, str) and "=" in x:
            out.append(x)
        else:
            raise ValueError(f"{where}: `{x}` is not a key=value override")
    return out


def load_spec(path: Path) -> dict[str, Any]:
    spec = yaml.safe_load(Path(path).read_text())
    if not isinstance(spec, dict) or not isinstance(spec.get("variants"), dict) or not spec["variants"]:
        raise ValueError(f"{path}: a sweep spec needs a `variants` mapping (name -> overrides)")
    unknown = set(spec) - SPEC_KEYS
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(SPEC_KEYS)}")
    return spec


def expand(spec: dict[str, Any]) -> list[Run]:
    """Every (variant, seed) of a spec, in spec order."""
    base = _flat(spec.get("base"), "base")
    runs, names = [], set()
    for v, body in spec["variants"].items():
        body = body if isinstance(body, dict) else {"set": body}
        extra = set(body) - {"set", "seeds"}
        if extra:
            raise ValueError(f"variant {v}: unknown key(s) {sorted(extra)} (set, seeds)")
        for seed in body.get("seeds", spec.get("seeds", [0])):
            name = f"{v}_s{seed}"
            if name in names:
                raise ValueError(f"run {name} appears twice")
            names.add(name)
            runs.append(Run(name, v, int(seed), base + _flat(body.get("set"), f"variant {v}") + [f"pretrain.seed={seed}"]))
    return runs


def parse_value(v: str) -> Any:
    """A `-S key=value` value as DVC reads it: JSON (numbers, true/false/null, lists), else YAML, else the string."""
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        try:
            return yaml.safe_load(v)
        except yaml.YAMLError:
            return v


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """params (a nested dict) with each `key.sub=value` set in order (later wins); `data` is not changed."""
    out = json.loads(json.dumps(data))
    for o in overrides:
        key, _, val = o.lstrip("+").partition("=")
        *path, last = key.split(".")
        d = out
        for k in path:
            d = d.setdefault(k, {})
        d[last] = parse_value(val)
    return out


def with_eval_targets(overrides: list[str]) -> list[str]:
    """`grmn_eval.targets` follows `targets` unless a run sets it (every bench target is synthetic)."""
    keys = [o.lstrip("+").split("=", 1)[0] for o in overrides]
    if "targets" in keys and "grmn_eval.targets" not in keys:
        t = [o for o in overrides if o.lstrip("+").startswith("targets=")][-1]
        return overrides + ["grmn_eval." + t.lstrip("+")]
    return overrides


def queue_commands(spec_name: str, runs: list[Run], params: dict[str, Any]) -> list[list[str]]:
    """One `dvc exp run --queue` per run: the training stages only (`-s`), preprocessing stays as prepared."""
    cmds = []
    for r in runs:
        over = with_eval_targets(r.overrides)
        p = apply_overrides(params, over)
        stages = ["corpus", "pretrain"] + [s for t in p["grmn_eval"]["targets"] for s in (f"geometry@{t}", f"adapt@{t}",
                                                                                           f"grmn_eval@{t}")]
        sets = [a for o in over for a in ("-S", _dvc_set(params, o))]
        cmds.append(["dvc", "exp", "run", "--queue", "-n", f"{spec_name}-{r.name}", *sets, "-s", *stages])
    return cmds


def _dvc_set(params: dict[str, Any], o: str) -> str:
    """`key=val` for a key params.yaml lists, `+key=val` to add one it does not (dvc exp run -S)."""
    d: Any = params
    for k in o.split("=", 1)[0].split("."):
        if not isinstance(d, dict) or k not in d:
            return "+" + o
        d = d[k]
    return o


def queue(spec_path: Path, workdir: Path, dry_run: bool) -> None:
    if workdir.resolve() == REPO:
        raise SystemExit("queue: the workdir is this checkout; use the bench's scratch repo (grmn_synth.py prepare)")
    runs = expand(load_spec(spec_path))
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    cmds = queue_commands(spec_path.stem, runs, params)
    for c in cmds:
        print("+", " ".join(c), flush=True)
        if not dry_run:
            subprocess.run(c, cwd=workdir, check=True)
    if not dry_run:
        print(f"queued {len(cmds)} experiment(s); run them with `cd {workdir} && dvc queue start -j 1`, "
              f"then `python {Path(__file__).relative_to(REPO)} table {workdir}`")


# ---- the device runner (no dvc): same settings, same metrics files


def run_one(run: Run, out: Path, device: str, keep_preds: bool = False, params_path: Path = Path("params.yaml"),
            models_dir: Path | None = None) -> Path:
    """Pretrain + adapt each target + grmn_eval of one run, in this process (cwd: a workdir or bundle with
    params.yaml and data/), through the stages' own recipe (`train.recipe.pretrain_run_indices` / `adapt_run`, the
    adapt stage's split, the models reloaded from their files as grmn_eval reads them), so the same settings give
    the same weights and metrics as the `dvc exp` path. Writes `<out>/<run>/params.yaml`, `run.json`,
    `data/metrics/<t>/grmn_eval.json` and the curves as `curves/*.jsonl` (no dvc); the models (`pretrain/`,
    `<t>/`, as the stages write them) and checkpoints go to `models_dir` (default: a temporary folder, removed)."""
    import tempfile

    from emotag_core.config import load_params

    folder = out / run.name
    folder.mkdir(parents=True, exist_ok=True)
    data = apply_overrides(yaml.safe_load(params_path.read_text()), [f"pretrain.device={device}", f"grmn_eval.device={device}"]
                           + with_eval_targets(run.overrides))
    (folder / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    p = load_params(folder / "params.yaml")
    with tempfile.TemporaryDirectory(prefix=f"sweep-{run.name}-") as tmp:
        _train_and_score(run, p, folder, Path(models_dir or tmp), keep_preds)
    return folder


def _train_and_score(run: Run, p: Any, folder: Path, models: Path, keep_preds: bool) -> None:
    from functools import partial

    import torch

    from emotag_core.metrics.synth_truth import TruthFiles, grmn_eval, split_for, write_grmn_eval
    from emotag_core.split import Split
    from emotag_core.train.checkpoint import load_model
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.live import JsonLinesLog
    from emotag_core.train.recipe import adapt_run, identity_tables, pretrain_run_indices

    def index(i: str) -> Any:
        return build_identity_index(i, identity_tables(Path("data") / "processed" / i))

    a, device = p.adapt, p.pretrain.device  # a run may pin its own (pretrain.device=cpu)
    ckpts, curves = models / ".checkpoints", folder / "curves"
    summary = pretrain_run_indices(p, [index(i) for i in p.corpus], models / "pretrain", ckpts / "pretrain",
                                   partial(JsonLinesLog, curves / "pretrain.jsonl"))
    info: dict[str, Any] = {"run": run.name, "variant": run.variant, "seed": run.seed, "overrides": run.overrides,
                            "device": device, "device_name": torch.cuda.get_device_name() if device.startswith("cuda")
                            else f"cpu ({os.cpu_count()} cores)", "pretrain_s": summary["wall_s"],
                            "pretrain_it_s": summary["it_per_s"],
                            "train_curve": JsonLinesLog.read(curves / "pretrain.jsonl")[-3:], "targets": {}}
    for t in p.grmn_eval.targets:
        ix = index(t)
        split = Split.from_config(a, None, ix.index, ix.meta["fps"])  # the adapt stage's split
        got = adapt_run(p, ix, split, models / "pretrain" / "grmn.pt", models / t, ckpts / t, None,
                        log=partial(JsonLinesLog, curves / f"{t}.jsonl"))
        info["targets"][t] = {"adapt_s": got["wall_s"], "adapt_frames": got["train_frames"]}
        torch.set_num_threads(max(1, p.grmn_eval.threads))  # as the grmn_eval stage
        dev = p.grmn_eval.device
        adapted, pretrained = load_model(models / t / "grmn.pt", dev)[0], load_model(models / "pretrain" / "grmn.pt", dev)[0]
        files = TruthFiles(Path("data") / "synthetic" / t / "truth", Path("data") / "processed" / t / "audio")
        res = grmn_eval(adapted, pretrained, ix, split_for(a, ix), files, dev, keep_preds)
        write_grmn_eval(res, folder / "data" / "metrics" / t / "grmn_eval.json")
        print(json.dumps({"run": run.name, "target": t, **{k: (res.metrics[k.split(".")[0]] or {}).get(k.split(".")[1])
                                                           for k in METRICS}}), flush=True)
    (folder / "run.json").write_text(json.dumps(info, indent=1, default=str))


def device(spec_path: Path, out: Path, dev: str, jobs: int, only: list[str] | None, bundle: Path | None = None,
           extra: list[str] | None = None) -> None:
    """Every run of the spec as its own process (`jobs` at once, 1 torch thread each), cwd = `bundle` (default: the
    spec's `bundle`, a folder made by `grmn_synth.py bundle` holding params.yaml and data/), or a view of it with
    the feature set of the run's `audio_features.backend` (`run_dirs`; `bundle --features whisper` carries one).
    `extra`: overrides appended to every run's (a smoke test: `pretrain.iters=50`)."""
    spec = load_spec(spec_path)
    bundle = Path(bundle or spec.get("bundle") or ".")
    if not (bundle / "params.yaml").exists():
        raise SystemExit(f"device: {bundle}/params.yaml not found; carry the bundle (python bench/grmn_synth.py bundle {bundle})")
    runs = [with_extra(r, extra) for r in expand(spec) if not only or r.name in only]
    out.mkdir(parents=True, exist_ok=True)
    views = tempfile.mkdtemp(prefix="sweep-views-")
    cwd = run_dirs(bundle, runs, Path(views))
    todo, live = list(runs), []
    t0 = time.time()
    while todo or live:
        while todo and len(live) < jobs:
            r = todo.pop(0)
            (out / r.name).mkdir(parents=True, exist_ok=True)
            log = open(out / r.name / "log.txt", "w")
            cmd = [sys.executable, str(Path(__file__).resolve()), "run-one", str(spec_path.resolve()), r.name,
                   "--out", str(out.resolve()), "--device", dev, *(["--set", *extra] if extra else [])]
            path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=cwd[r.name],
                                    env=dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=path))
            live.append((r, log, proc, time.time()))
        time.sleep(1.0)
        for item in list(live):
            r, log, proc, started = item
            if proc.poll() is None and time.time() - started > float(spec.get("timeout_s", 600)):
                proc.kill()
            if proc.poll() is not None:
                log.close()
                live.remove(item)
                print(f"== {r.name}: exit {proc.returncode} after {time.time() - started:.0f} s", flush=True)
    shutil.rmtree(views, ignore_errors=True)
    print(f"{len(runs)} run(s) in {time.time() - t0:.0f} s; table: python bench/sweep.py table {out}")


def with_extra(run: Run, extra: list[str] | None) -> Run:
    """`run` with `extra` overrides applied after its own (`device --set`)."""
    return Run(run.name, run.variant, run.seed, run.overrides + list(extra or [])) if extra else run


def run_dirs(bundle: Path, runs: list[Run], views: Path) -> dict[str, Path]:
    """Each run's cwd: the bundle, or for a run whose `audio_features.backend` is not the bundle's own, a view of
    it with that backend's feature set (`grmn_synth_features.view`; one per backend, under `views`)."""
    from grmn_synth_features import run_backend, view

    params = yaml.safe_load((bundle / "params.yaml").read_text())
    made: dict[str, Path] = {}
    out = {}
    for r in runs:
        b = run_backend(apply_overrides(params, r.overrides))
        if b not in made:
            made[b] = view(bundle, b, views / b)
            print(f"audio_features.backend {b}: runs read {made[b]}", flush=True)
        out[r.name] = made[b]
    return out


# ---- tables: `dvc exp show --json` rows, from dvc or from a device --out folder


def device_rows(out: Path) -> list[dict[str, Any]]:
    """A device --out folder as `dvc exp show --json` entries (name, data: params, metrics)."""
    rows = []
    for folder in sorted(p for p in out.iterdir() if (p / "params.yaml").exists()):
        metrics = {str(m.relative_to(folder)): {"data": json.loads(m.read_text())}
                   for m in sorted((folder / "data" / "metrics").glob("*/grmn_eval.json"))}
        rows.append({"rev": folder.name, "name": folder.name, "data": {
            "params": {"params.yaml": {"data": yaml.safe_load((folder / "params.yaml").read_text())}}, "metrics": metrics}})
    return rows


def exp_rows(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries of `dvc exp show --json` output (baselines and their experiments, flattened)."""
    out = []
    for e in entries:
        if e.get("data") and e["data"].get("metrics") is not None:
            out.append(e)
        for group in e.get("experiments") or []:
            out += exp_rows(group.get("revs") or [])
    return out


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(d, dict):
        return {prefix: d}
    out: dict[str, Any] = {}
    for k, v in d.items():
        out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def table(entries: list[dict[str, Any]], metrics: tuple[str, ...] = METRICS) -> str:
    """Markdown: one row per (experiment, target), the params that differ between rows, then `metrics`."""
    rows = []
    for e in exp_rows(entries):
        params: dict[str, Any] = {}
        for f in e["data"].get("params", {}).values():  # params.yaml (and any other params file), merged
            params.update({k: v for k, v in _flatten(f.get("data", {})).items()
                           if k.split(".")[0] not in ("synthetic", "identities")})
        for path, m in e["data"]["metrics"].items():
            if path.endswith("grmn_eval.json") and "data" in m:
                rows.append((e.get("name") or (e["rev"] if e["rev"] == "workspace" else e["rev"][:7]), Path(path).parent.name, params, _flatten(m["data"])))
    if not rows:
        return "(no grmn_eval metrics found)"
    keys = sorted({k for r in rows for k in r[2]})
    varying = [k for k in keys if len({json.dumps(r[2].get(k), default=str) for r in rows}) > 1 and k != "pretrain.seed"]
    head = ["experiment", "target", *varying, "seed", *metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, target, params, m in rows:
        cells = [name, target, *[_fmt(params.get(k)) for k in varying], _fmt(params.get("pretrain.seed")),
                 *[_fmt(m.get(k)) for k in metrics]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def mean_table(entries: list[dict[str, Any]], metrics: tuple[str, ...] = METRICS) -> str:
    """Markdown: one row per (variant, target): the mean of each metric over the variant's seeds (runs named
    `<variant>_s<seed>`), its min-max, and the number of runs that reported it."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for e in exp_rows(entries):
        name = str(e.get("name") or e["rev"])
        variant = name.rsplit("_s", 1)[0] if name.rsplit("_s", 1)[-1].isdigit() else name
        for path, m in e["data"]["metrics"].items():
            if path.endswith("grmn_eval.json") and "data" in m:
                groups.setdefault((variant, Path(path).parent.name), []).append(_flatten(m["data"]))
    if not groups:
        return "(no grmn_eval metrics found)"
    lines = ["| variant | target | runs | " + " | ".join(f"{k} mean (min-max)" for k in metrics) + " |",
             "|" + " --- |" * (3 + len(metrics))]
    for (variant, target), ms in groups.items():
        cells = []
        for k in metrics:
            v = [m[k] for m in ms if isinstance(m.get(k), (int, float))]
            cells.append(f"{np.mean(v):.3f} ({min(v):.3f}-{max(v):.3f}), n={len(v)}" if v else "-")
        lines.append(f"| {variant} | {target} | {len(ms)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(x: Any) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.3f}"
    return json.dumps(x) if isinstance(x, (list, dict)) else str(x)


def read_source(src: Path) -> list[dict[str, Any]]:
    if src.is_dir() and (src / ".dvc").exists():
        got = subprocess.run(["dvc", "exp", "show", "--json"], cwd=src, check=True, capture_output=True, text=True)
        return json.loads(got.stdout)
    if src.is_dir():
        return device_rows(src)
    return json.loads(src.read_text())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    ex = sub.add_parser("expand", help="print the runs of a spec")
    ex.add_argument("spec", type=Path)
    qu = sub.add_parser("queue", help="dvc exp run --queue for each run (CPU, the bench workdir)")
    qu.add_argument("spec", type=Path)
    qu.add_argument("--workdir", type=Path, default=WORKDIR)
    qu.add_argument("--dry-run", action="store_true", help="print the commands only")
    dv = sub.add_parser("device", help="every run in-process, no dvc (cwd: the bundle)")
    dv.add_argument("spec", type=Path)
    dv.add_argument("--out", type=Path, required=True)
    dv.add_argument("--device", default="cuda")
    dv.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    dv.add_argument("--runs", nargs="*", help="only these run names")
    dv.add_argument("--bundle", type=Path, help="cwd of the runs (default: the spec's `bundle`)")
    dv.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="append these overrides to every run")
    one = sub.add_parser("run-one", help="one run of a spec in this process (what `device` starts)")
    one.add_argument("spec", type=Path)
    one.add_argument("run")
    one.add_argument("--out", type=Path, required=True)
    one.add_argument("--device", default="cpu")
    one.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    tb = sub.add_parser("table", help="markdown table from bench workdirs, dvc exp show --json files or device folders")
    tb.add_argument("sources", nargs="+", type=Path)
    tb.add_argument("--metrics", default=",".join(METRICS))
    tb.add_argument("--mean", action="store_true", help="also the mean over seeds per (variant, target)")
    a = ap.parse_args()
    if a.cmd == "expand":
        for r in expand(load_spec(a.spec)):
            print(r.name, " ".join(f"-S {o}" for o in r.overrides))
    elif a.cmd == "queue":
        queue(a.spec, a.workdir, a.dry_run)
    elif a.cmd == "device":
        device(a.spec, a.out, a.device, a.jobs, a.runs, a.bundle, a.set)
    elif a.cmd == "run-one":
        spec = load_spec(a.spec)
        run = {r.name: r for r in expand(spec)}.get(a.run)
        if run is None:
            raise SystemExit(f"{a.spec}: no run {a.run}; `python bench/sweep.py expand {a.spec}` lists them")
        keep = a.out / run.name / "models" if run.name in (spec.get("keep_models") or []) else None
        run_one(with_extra(run, a.set), a.out, a.device, bool(spec.get("keep_preds", False)), models_dir=keep)
    else:
        entries = [e for s in a.sources for e in read_source(s)]
        print(table(entries, tuple(a.metrics.split(","))))
        if a.mean:
            print("\n" + mean_table(entries, tuple(a.metrics.split(","))))


if __name__ == "__main__":
    main()
