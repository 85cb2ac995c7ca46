"""Wall time of a no-op `dvc repro` over N identities' preprocessing stages (issue 8 target: <= 5 s for 10).

    python bench/bench_dvc_noop.py [--n 10] [--source sample]

Builds a scratch clone of this repository in /tmp whose DAG is the preprocessing stages of N
identities (raw source: a copy of `--source`'s; processed outputs: copies of its existing ones,
so no stage has to run), records them with one `dvc commit`, then times a plain `dvc repro`
(a no-op: everything is up to date) three times. Note: naming each stage as a target instead
makes DVC re-parse dvc.yaml and dvc.lock once per target (~1 s each here), so a plain
`dvc repro` (or one target downstream) is the fast way to check a large DAG.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = ("ingest", "landmarks", "audio_features", "aus", "emotion", "identity", "track", "geometry")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    ap.add_argument("--source", default="sample")
    ap.add_argument("--profile", action="store_true", help="keep the clone and dump a cProfile of one run")
    a = ap.parse_args()
    dvc = str(Path(sys.executable).with_name("dvc"))
    src_proc = REPO / "data" / "processed" / a.source
    if not (src_proc / "geometry.parquet").exists():
        print(f"run `dvc repro geometry@{a.source}` first", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="emotag-noop-") as d:
        if a.profile:
            d = tempfile.mkdtemp(prefix="emotag-noop-keep-")
        clone = Path(d) / "repo"
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
        params = yaml.safe_load((clone / "params.yaml").read_text())
        src_raw = Path(params["identities"][a.source]["source"])
        ids = [f"noop_{i:02d}" for i in range(a.n)]
        # the preprocessing DAG of exactly these identities: no synthetic corpus, no training stages
        params.update(identities={}, synthetic={}, corpus=[], targets=[])
        dag = yaml.safe_load((clone / "dvc.yaml").read_text())
        dag["stages"] = {k: v for k, v in dag["stages"].items() if k in STAGES}
        (clone / "dvc.yaml").write_text(yaml.safe_dump(dag, sort_keys=False))
        for i in ids:
            shutil.copytree(REPO / src_raw, clone / "data" / "raw" / i)
            shutil.copytree(src_proc, clone / "data" / "processed" / i)
            params["identities"][i] = {"role": "target", "source": f"data/raw/{i}"}
        (clone / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        targets = [f"{s}@{i}" for i in ids for s in STAGES]
        subprocess.run([dvc, "commit", "-f", "-q", *targets], cwd=clone, check=True)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            out = subprocess.run([dvc, "repro"], cwd=clone, capture_output=True, text=True)
            times.append(time.perf_counter() - t0)
            if out.returncode != 0 or "Running stage" in out.stdout:
                print(out.stdout[-2000:], out.stderr[-2000:], file=sys.stderr)
                return 1
        if a.profile:
            subprocess.run([dvc, "repro", "--cprofile-dump", str(Path(d) / "repro.prof")], cwd=clone, capture_output=True)
            print(f"clone kept at {clone}; profile {Path(d) / 'repro.prof'}")
        print(f"no-op dvc repro of {len(targets)} stages over {a.n} identities: "
              f"median {statistics.median(times):.2f} s (runs: {', '.join(f'{t:.2f}' for t in times)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
