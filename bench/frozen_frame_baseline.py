"""The frozen-frame baseline (issue 18) on the same held-out frames the evaluate stage scores, beside the render.

    python bench/frozen_frame_baseline.py sample --strip strip.png

Frozen frame = the last adaptation frame, repeated for every held-out frame. Prints PSNR/SSIM of the
held-out render and of the frozen frame (whole crop, at the render's resolution, as `evaluate` scores it),
and the same for the frozen frame blurred to the render's size; writes a ground truth | render | error |
frozen strip for three held-out frames.
"""
from __future__ import annotations

import argparse
import json

import cv2
import numpy as np

from emotag_core.config import load_params
from emotag_core.io.frames import FrameStore
from emotag_core.metrics.evaluate import read_mp4
from emotag_core.metrics.image import psnr, ssim
from emotag_core.split import Split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("identity")
    ap.add_argument("--strip", default=None)
    a = ap.parse_args()
    p = load_params()
    store = FrameStore(f"data/processed/{a.identity}/frames.parquet")
    split = Split.from_config(p.adapt, p.evaluate, store.keys, p.ingest.fps)
    rows = split.heldout_rows(store.keys)
    pred = np.stack(read_mp4(f"data/renders/{a.identity}/heldout.mp4", len(rows)))
    rows = rows[:len(pred)]
    gt = np.stack([store.get(int(r)) for r in rows])
    frozen = store.get(int(rows[0]) - 1)                           # last adaptation frame of the clip
    small = p.pretrain.image_size                                 # the avatar's render resolution
    blur = cv2.resize(cv2.resize(frozen, (small, small), interpolation=cv2.INTER_AREA), frozen.shape[:2][::-1],
                      interpolation=cv2.INTER_LINEAR)
    out = {}
    for name, x in (("render", pred), ("frozen", np.repeat(frozen[None], len(gt), 0)),
                    ("frozen_blurred", np.repeat(blur[None], len(gt), 0))):
        out[f"psnr_{name}"] = float(np.mean(psnr(x, gt)))
        out[f"ssim_{name}"] = float(np.mean(ssim(x, gt)))
    out["frames"] = int(len(gt))
    print(json.dumps(out, indent=1))
    if a.strip:
        picks = np.linspace(0, len(gt) - 1, 3).astype(int)
        tiles = []
        for i in picks:
            r = cv2.resize(pred[i], gt.shape[1:3][::-1]) if pred[i].shape != gt[i].shape else pred[i]
            err = np.clip(np.abs(r.astype(np.int16) - gt[i]).sum(-1) * 2, 0, 255).astype(np.uint8)
            tiles.append(np.concatenate([gt[i], r, np.repeat(err[..., None], 3, -1), frozen], 1))
        cv2.imwrite(a.strip, cv2.cvtColor(np.concatenate(tiles, 0), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
