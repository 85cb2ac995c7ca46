"""Identities per hour of the `onboard` Prefect flow, and its scaling with workers (issue 8).

    python bench/bench_onboard.py [--ids 4] [--seconds 8] [--workers 1 2] [--work /tmp/emotag-onboard]

Cuts `--ids` different stretches of `--seconds` from the sample video into a generic-layout tree
(`<root>/<identity>/clip.mp4`), then for each worker count onboards the whole tree in a fresh clone
of this repository (`python -m pipelines.onboard --dataset generic --workers W`: adapter →
params → every preprocessing stage of every identity → one `dvc commit`) and times it end to end,
Prefect start-up included. Prints one markdown row per worker count and writes a JSON record.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import av

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "sample.mp4"


def video_seconds(path: Path) -> float:
    with av.open(str(path)) as c:
        return float(c.duration) / av.time_base


def cut_tree(root: Path, n: int, seconds: float) -> list[str]:
    """`n` identity folders, each one `seconds`-long stretch of the sample (video + audio)."""
    total = video_seconds(SAMPLE)
    if seconds > total:
        raise SystemExit(f"--seconds {seconds} is longer than {SAMPLE} ({total:.1f} s)")
    ids = []
    for i in range(n):
        start = (total - seconds) * i / max(n - 1, 1)
        d = root / f"person_{i:02d}"
        d.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{start:.2f}", "-t", f"{seconds:.2f}", "-i", str(SAMPLE),
                        "-c:v", "libx264", "-preset", "veryfast", "-c:a", "aac", str(d / "clip.mp4")], check=True)
        ids.append(d.name)
    return ids


def onboard(work: Path, tree: Path, workers: int) -> dict:
    clone = work / f"repo_w{workers}"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "pipelines.onboard", "--dataset", "generic", "--root", str(tree),
                        "--workers", str(workers)], cwd=clone, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        print(r.stdout[-3000:], r.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"onboard with {workers} workers failed (exit {r.returncode})")
    # every preprocessing stage of the onboarded identities must now be up to date in DVC's eyes
    # (their render/evaluate stages are not part of onboarding and stay never-run)
    from pipelines.dvc_state import PREPROCESS, stale_stages

    stale = sorted(s for s in stale_stages(cwd=clone) if s.split("@")[0] in PREPROCESS and "@person_" in s)
    if stale:
        raise SystemExit(f"onboard with {workers} workers left stale stages: {stale}")
    return {"workers": workers, "wall_s": round(wall, 1), "stale_after": stale}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ids", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--work", type=Path, default=Path("/tmp/emotag-onboard"))
    ap.add_argument("--json", type=Path, default=REPO / "bench" / "results" / "bench_onboard.json")
    a = ap.parse_args()
    tree = a.work / "tree"
    if tree.exists():
        shutil.rmtree(tree)
    ids = cut_tree(tree, a.ids, a.seconds)
    rows = []
    for w in a.workers:
        res = onboard(a.work, tree, w)
        res["ids_per_hour"] = round(len(ids) * 3600 / res["wall_s"], 1)
        res["video_s_per_wall_s"] = round(len(ids) * a.seconds / res["wall_s"], 3)
        rows.append(res)
        print(f"| onboard {len(ids)} ids x {a.seconds:g} s, {w} worker(s) | {res['wall_s']} s | "
              f"{res['ids_per_hour']} ids/h | {res['video_s_per_wall_s']} s of video per s |", flush=True)
    base = rows[0]["wall_s"] * rows[0]["workers"]
    for r in rows:
        r["speedup_vs_first"] = round(rows[0]["wall_s"] / r["wall_s"], 2)
        r["efficiency"] = round(base / (r["wall_s"] * r["workers"]), 2)
    rec = {"date": time.strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, {platform.machine()}",
           "load_before": os.getloadavg(), "ids": len(ids), "seconds_per_id": a.seconds, "runs": rows}
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(rec, indent=1))
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
