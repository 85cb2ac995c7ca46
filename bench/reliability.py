"""Full-count reliability run (`make reliability`): the bad-input corpus through the real CLI and
`dvc repro`, then kill-and-resume trials over ingest, track, pretrain, adapt and render on the
CPU smoke profile with tiny overrides. Prints the BENCHMARKS.md rows and writes a JSON record.

    python bench/reliability.py [--work DIR] [--trials N] [--skip-corpus] [--skip-kill] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from reliability import killresume  # noqa: E402
from reliability.corpus import build  # noqa: E402
from reliability.harness import Scratch  # noqa: E402
from reliability.run_corpus import run_corpus, summary_rows  # noqa: E402

KILL_STAGES = ("ingest", "track", "pretrain", "adapt", "render")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emotag-reliability"))
    ap.add_argument("--trials", type=int, default=4, help="kill trials per stage (5 stages)")
    ap.add_argument("--skip-corpus", action="store_true")
    ap.add_argument("--skip-kill", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "reliability.json")
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    record: dict = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()}, {platform.python_version()}"}
    fail = False
    if not a.skip_corpus:
        corpus = a.work / "corpus"
        cases = build(corpus)
        t0 = time.perf_counter()
        results = run_corpus(Scratch(a.work / "corpus_repo", {"ingest.size": 128}), corpus, cases,
                             group_handled=False)
        counts = summary_rows(results)
        record["corpus"] = {"counts": counts, "wall_s": round(time.perf_counter() - t0), "results": [asdict(r) for r in results]}
        for r in results:
            print(f"{r.case:30s} {r.group:8s} expect {r.expect:8s} got {r.outcome:8s} {'ok' if r.ok else 'FAIL'}  {r.detail[:120]}")
        print("corpus:", counts)
        fail |= counts["failures"] > 0
    if not a.skip_kill:
        repo = a.work / "kill_repo"
        s = Scratch(repo, killresume.TINY)
        t0 = time.perf_counter()
        r = s.run("dvc", "repro", "--no-commit", "render@sample")  # every input of the trials, uninterrupted
        if r.returncode != 0:
            print(r.stdout[-3000:])
            return 1
        print(f"kill/resume: inputs built in {time.perf_counter() - t0:.0f} s")
        trials = killresume.run_trials(s, a.work / "kill_ref", {st: a.trials for st in KILL_STAGES}, seed=0)
        by = {st: [t for t in trials if t.stage == st] for st in KILL_STAGES}
        record["kill_resume"] = {st: {"trials": len(ts), "killed_mid_run": sum(t.killed for t in ts),
                                      "identical": sum(t.identical for t in ts), "stale": sum(bool(t.stale) for t in ts),
                                      "modes": sorted({m for t in ts for m in t.modes}),
                                      "details": [asdict(t) for t in ts]} for st, ts in by.items()}
        for st, v in record["kill_resume"].items():
            print(f"| {st} | {v['trials']} | {v['killed_mid_run']} | {v['identical']} | {v['stale']} | {', '.join(v['modes'])} |")
        fail |= any(not t.identical or t.stale for t in trials)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(record, indent=1, default=str))
    print(f"wrote {a.out}")
    return 1 if fail else 0


if __name__ == "__main__":
    sys.exit(main())
