"""Tracker speed on a saved landmarks table, per torch device (CPU here, CUDA on the GPU machine).

    python bench/bench_track_device.py LANDMARKS.parquet [--tile 20] [--devices cuda cpu] [--chunk 256]

The first clip of the table is repeated `--tile` times (a long clip from a short table), then the
open head model is fitted as the `track` stage does (identity fit + per-frame chunks). Prints one
JSON line per device: frames, seconds, frames/s (wall; CUDA synchronised), and the mean landmark
fit error as a sanity check. Needs only torch, numpy and pyarrow (runs on the device machine).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def run(landmarks: Path, device: str, tile: int, chunk: int, threads: int) -> dict:
    import torch

    from emotag_core.config import FlameConfig, TrackConfig
    from emotag_core.flame import load_head_model
    from emotag_core.flame.tracker import Tracker
    from emotag_core.flame.track import read_landmarks

    clips, meta = read_landmarks(landmarks)
    cid, frames, lmk, found = clips[0][:4]
    lmk, found = np.tile(lmk, (tile, 1, 1)), np.tile(found, tile)
    frames = np.arange(len(found))
    size = int(meta["frame_size"][0])
    cfg = replace(TrackConfig(), device=device, chunk=chunk, threads=threads)
    model = load_head_model(FlameConfig(), device)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    # warm-up (CUDA context, kernels) on a short piece, not timed
    w = Tracker(model, cfg, size)
    w.fit_identity([(cid, frames[:32], lmk[:32], found[:32])])
    w.track_clip(cid, frames[:64], lmk[:64], found[:64])
    sync()
    tr = Tracker(model, cfg, size)
    t0, c0 = time.perf_counter(), time.process_time()
    tr.fit_identity([(cid, frames, lmk, found)])
    sync()
    t1 = time.perf_counter()
    res = tr.track_clip(cid, frames, lmk, found)
    sync()
    t2, c2 = time.perf_counter(), time.process_time()
    n = len(frames)
    name = torch.cuda.get_device_name() if device.startswith("cuda") else f"{os.cpu_count()} CPU cores"
    return {"device": device, "name": name, "torch": torch.__version__, "frames": n, "chunk": chunk,
            "identity_s": round(t1 - t0, 3), "track_s": round(t2 - t1, 3), "fps": round(n / (t2 - t0), 1),
            "fps_track_only": round(n / (t2 - t1), 1),
            "cpu_s": round(c2 - c0, 3), "fps_per_cpu_s": round(n / max(c2 - c0, 1e-9), 1), "fit_px": round(float(res.fit_error_px[res.valid].mean()), 3),
            "load": round(os.getloadavg()[0], 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("landmarks", type=Path)
    ap.add_argument("--devices", nargs="+", default=["cpu"])
    ap.add_argument("--tile", type=int, default=20)
    ap.add_argument("--chunk", type=int, nargs="+", default=[256])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    for d in args.devices:
        for c in args.chunk:
            print(json.dumps(run(args.landmarks, d, args.tile, c, args.threads)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
