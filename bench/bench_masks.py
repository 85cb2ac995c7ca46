"""Speed of the person masks (frames/s) on the sample, and a picture strip: frame | labels | plate.

    taskset -c 0,1 python bench/bench_masks.py DATA_DIR [--frames 100] [--out /tmp/masks_bench]

DATA_DIR holds frames.parquet, landmarks.parquet and flame.parquet (e.g. data/processed/sample).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--adapt-frames", type=int, default=125, help="rows of the plate (the adaptation part)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/masks_bench"))
    a = ap.parse_args()
    import cv2
    import torch

    from emotag_core.avatar.plate import background_plate
    from emotag_core.config import load_params
    from emotag_core.io.frames import FrameStore
    from emotag_core.teachers.segmentation import COLOURS, MaskStore, masks_run, overlay

    torch.set_num_threads(1)
    p = load_params("params.yaml")
    a.out.mkdir(parents=True, exist_ok=True)
    res = masks_run(a.data / "frames.parquet", a.data / "landmarks.parquet", a.data / "flame.parquet",
                    a.out / "masks.parquet", p.masks, p.flame, None, max_frames=a.frames)
    res_ov = masks_run(a.data / "frames.parquet", a.data / "landmarks.parquet", a.data / "flame.parquet",
                       a.out / "masks.parquet", p.masks, p.flame, a.out / "masks_overlay.mp4", max_frames=a.frames)
    store, masks = FrameStore(a.data / "frames.parquet"), MaskStore(a.out / "masks.parquet")
    plate, seen = background_plate(store, masks, range(min(a.adapt_frames, len(masks))))
    rows = []
    for i in np.linspace(0, len(masks) - 1, 3).round().astype(int):
        img, lab = store.get(int(i)), masks.get(int(i))
        rows.append(np.concatenate([img, overlay(img, lab), COLOURS[lab], plate], 1))
    cv2.imwrite(str(a.out / "strip.png"), cv2.cvtColor(np.concatenate(rows, 0)[::2, ::2], cv2.COLOR_RGB2BGR))
    print(json.dumps({"frames": res["rows"], "fps": round(res["fps"], 1), "fps_with_overlay": round(res_ov["fps"], 1),
                      "pose_found": res["pose_found"], "plate_seen": float(seen.mean()),
                      "label_fraction": {k: round(v, 3) for k, v in res["label_fraction"].items()}}))


if __name__ == "__main__":
    main()
