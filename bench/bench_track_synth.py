"""Tracker accuracy and speed, end to end on the synthetic corpus (issue 4's "must show").

    python bench/bench_track_synth.py --ids 4 --seconds 8 --size 512 [--append]

For each synthetic identity (seed 100, 101, ...): `synth` renders its mp4 with known truth ->
`ingest` re-crops it to 512x512 -> `landmarks` (MediaPipe) -> `track` fits the head model. The
fit is compared with the true parameters (`emotag_core.flame.truth_eval`): mean 2-D distance of the
projected skin vertices in crop pixels (truth mapped through the ingest box, the fit through the
tracker's own camera) and the jaw rotation angle. Targets: <= 3 px and <= 3 degrees. Tracking
speed is frames / (identity fit + per-clip fits), wall clock and process CPU time; the shared
dev box's load average is recorded beside it. `--append` adds a row to BENCHMARKS.md.

The same function (`run_identity`) backs `tests/flame/test_track_e2e.py` on a short identity.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_PX = 3.0
TARGET_JAW_DEG = 3.0
TARGET_FPS = 25.0


def machine() -> str:
    """Cores, arch, Python and the 1-minute load average (the dev machine is shared)."""
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.python_implementation()} "
            f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")


def prepare_identity(params, seed: int, seconds: float, size: int, work: Path, quiet: bool = True) -> Path:  # noqa: ANN001
    """synth -> ingest -> landmarks of one identity into `work` (each step skipped if its output exists)."""
    from emotag_core.config import SynthConfig, from_dict, to_dict
    from emotag_core.flame import load_head_model
    from emotag_core.ingest import ingest_folder
    from emotag_core.teachers.landmarks import landmarks_run
    from emotag_core.synth.identity import generate_identity

    work.mkdir(parents=True, exist_ok=True)
    syn = work / "synthetic"
    if not syn.exists():
        cfg = from_dict(SynthConfig, {**to_dict(params.synth), "seed": seed, "seconds": seconds, "size": size,
                                      "clips": 1}, "synth")
        generate_identity(load_head_model(params.flame, cfg.device), cfg, syn)
    if not (work / "frames.parquet").exists():
        ingest_folder(syn, work / "frames.parquet", work / "audio", params.ingest, quiet=quiet)
    if not (work / "landmarks.parquet").exists():
        landmarks_run(work / "frames.parquet", work / "landmarks.parquet", params.landmarks)
    return work


def prepare_folder(params, source: Path, work: Path, quiet: bool = True) -> Path:  # noqa: ANN001
    """ingest -> landmarks of a folder of real videos (e.g. data/sample) into `work`; the landmarks table."""
    from emotag_core.ingest import ingest_folder
    from emotag_core.teachers.landmarks import landmarks_run

    work.mkdir(parents=True, exist_ok=True)
    if not (work / "frames.parquet").exists():
        ingest_folder(source, work / "frames.parquet", work / "audio", params.ingest, quiet=quiet)
    if not (work / "landmarks.parquet").exists():
        landmarks_run(work / "frames.parquet", work / "landmarks.parquet", params.landmarks)
    return work / "landmarks.parquet"


def landmark_clips(path: Path) -> tuple[list[tuple], dict]:
    """Landmarks table -> [(clip_id, frames, landmarks, found, blendshapes [T, 52])] and its metadata."""
    from emotag_core.flame.track import read_landmarks

    return read_landmarks(path)   # [(clip_id, frames, landmarks, found, blendshapes)], metadata


def track_identity(params, work: Path, track_cfg=None) -> dict:  # noqa: ANN001
    """Track a prepared identity and measure the fit against its truth; returns numbers."""
    import pyarrow.parquet as pq
    import torch

    from emotag_core.flame import load_head_model
    from emotag_core.flame.tracker import Tracker
    from emotag_core.flame.truth_eval import track_accuracy
    from emotag_core.flame.track import frame_images, read_landmarks

    tcfg = track_cfg or params.track
    torch.manual_seed(tcfg.seed)
    clips, meta = read_landmarks(work / "landmarks.parquet")
    size = int(meta["frame_size"][0])
    model = load_head_model(params.flame, tcfg.device)
    tracker = Tracker(model, tcfg, size)
    tracker.use_blendshapes(meta.get("blendshape_names", []))   # ICT: MediaPipe scores as the prior
    n = sum(len(c[1]) for c in clips)
    images = frame_images(work / "frames.parquet") if tcfg.photo_weight > 0 else None
    w0, c0 = time.perf_counter(), time.process_time()
    tracker.fit_identity(clips, images)
    w1, c1 = time.perf_counter(), time.process_time()
    tracks = [tracker.track_clip(*c[:4], images=images, blendshapes=c[4] if len(c) > 4 else None) for c in clips]
    if tcfg.device.startswith("cuda"):
        torch.cuda.synchronize()
    w2, c2 = time.perf_counter(), time.process_time()
    fr = pq.read_table(work / "frames.parquet", columns=["clip_id", "frame", "box"])
    cids = fr.column("clip_id").to_numpy(zero_copy_only=False)
    box_all = np.stack(fr.column("box").to_numpy(zero_copy_only=False))
    frame_all = fr.column("frame").to_numpy()
    model_cpu = model.cpu()
    per_clip = []
    for t in tracks:
        truth = dict(np.load(work / "synthetic" / "truth" / f"{t.clip_id}.npz"))
        sel = np.nonzero(cids == t.clip_id)[0]
        box = box_all[sel[np.argsort(frame_all[sel])]]
        fit = {"expr": t.expr, "jaw": t.jaw, "rot": t.rot, "trans": t.trans, "valid": t.valid}
        acc = track_accuracy(model_cpu, truth, box, size, fit, tracker.shape.cpu().numpy(), tracker.camera.focal,
                             t.clip_id)
        per_clip.append(acc)
    regions = {k: np.concatenate([a.region_px[k][a.valid] for a in per_clip]) for k in per_clip[0].region_px}
    v = np.concatenate([a.vertex_px[a.valid] for a in per_clip])
    j = np.concatenate([a.jaw_deg[a.valid] for a in per_clip])
    fit_px = np.concatenate([t.fit_error_px[t.valid] for t in tracks])
    return {"frames": n, "vertex_px": float(v.mean()), "vertex_px_p95": float(np.percentile(v, 95)),
            "jaw_deg": float(j.mean()), "jaw_deg_p95": float(np.percentile(j, 95)),
            "landmark_fit_px": float(fit_px.mean()), "focal": tracker.camera.focal,
            **{f"{k}_visible_px": float(np.nanmean(e)) for k, e in regions.items()},
            "identity_s": w1 - w0, "clips_s": w2 - w1, "wall_s": w2 - w0, "cpu_s": (c2 - c1) + (c1 - c0),
            "fps": n / (w2 - w0), "fps_cpu": n / max((c2 - c1) + (c1 - c0), 1e-9)}


def run_identity(params, seed: int, seconds: float, size: int, work: Path, track_cfg=None,  # noqa: ANN001
                 quiet: bool = True) -> dict:
    """One synthetic identity end to end (mp4 -> ingest -> landmarks -> track) against its truth."""
    return track_identity(params, prepare_identity(params, seed, seconds, size, work, quiet), track_cfg)


def bench_row(results: list[dict], args: argparse.Namespace, command: str) -> str:
    """A BENCHMARKS.md table row of the aggregated results."""
    n = sum(r["frames"] for r in results)
    w = lambda k: sum(r[k] * r["frames"] for r in results) / n  # noqa: E731 - frame-weighted mean
    wall = sum(r["wall_s"] for r in results)
    cpu = sum(r["cpu_s"] for r in results)
    return (f"| {len(results)} ids x {args.seconds:g} s, synth {args.size} px (seeds {args.seed0}..{args.seed0 + len(results) - 1})"
            f" | {w('vertex_px'):.2f} px (p95 {max(r['vertex_px_p95'] for r in results):.2f}) | {w('jaw_deg'):.2f} deg "
            f"| {n / wall:.1f} fr/s wall, {n / cpu:.1f} fr/CPU-s | {w('landmark_fit_px'):.2f} px | `{command}` "
            f"| {machine()}, device {results[0].get('device', 'cpu')} | {date.today().isoformat()} |")


def main(argv: list[str] | None = None) -> int:
    from emotag_core.config import load_params

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ids", type=int, default=4, help="synthetic identities (seeds seed0, seed0+1, ...)")
    ap.add_argument("--seed0", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--size", type=int, default=512, help="rendered frame side of the synthetic videos")
    ap.add_argument("--work", type=Path, default=Path("/tmp/emotag-bench-track"), help="scratch folder (reused)")
    ap.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    ap.add_argument("--device", default=None, help="override track.device (e.g. cuda)")
    ap.add_argument("--model", default=None, help="override flame.model (synth renders and track fits with it)")
    ap.add_argument("--photo-weight", type=float, default=None, help="override track.photo_weight (photometric term)")
    ap.add_argument("--shape-std", type=float, default=None, help="override synth.shape_std")
    ap.add_argument("--calib-iters", type=int, default=None, help="override synth.texture_calib_iters")
    ap.add_argument("--shape-asym", type=float, default=None, help="override synth.shape_asym")
    ap.add_argument("--append", action="store_true", help="append a row to BENCHMARKS.md")
    args = ap.parse_args(argv)
    params = load_params(args.params)
    suffix = ""                                               # synth overrides get their own scratch folders
    if args.model is not None:
        params = replace(params, flame=replace(params.flame, model=args.model))
        suffix += f"_{args.model}"
    if args.shape_std is not None:
        params = replace(params, synth=replace(params.synth, shape_std=args.shape_std))
        suffix += f"_std{args.shape_std:g}"
    if args.shape_asym is not None:
        params = replace(params, synth=replace(params.synth, shape_asym=args.shape_asym))
        suffix += f"_asym{args.shape_asym:g}"
    if args.calib_iters is not None:
        params = replace(params, synth=replace(params.synth, texture_calib_iters=args.calib_iters))
        suffix += f"_calib{args.calib_iters}"
    tcfg = params.track if args.device is None else replace(params.track, device=args.device)
    if args.photo_weight is not None:
        tcfg = replace(tcfg, photo_weight=args.photo_weight)
    results = []
    for k in range(args.ids):
        seed = args.seed0 + k
        work = args.work / f"s{seed}_{args.size}_{args.seconds:g}{suffix}"
        r = run_identity(params, seed, args.seconds, args.size, work, tcfg, quiet=True)
        r["device"] = tcfg.device
        results.append(r)
        print(json.dumps({"seed": seed, **{k2: round(v, 3) if isinstance(v, float) else v for k2, v in r.items()}}))
    cmd = "python bench/bench_track_synth.py " + " ".join(argv if argv is not None else sys.argv[1:])
    row = bench_row(results, args, cmd.strip())
    print(row)
    if args.append:
        with open(ROOT / "BENCHMARKS.md", "a", encoding="utf-8") as fh:
            fh.write(row + "\n")
    ok = all(r["vertex_px"] <= TARGET_PX and r["jaw_deg"] <= TARGET_JAW_DEG for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
