"""Static 2-D guesses of what is behind and around the head on held-out frames (issue 18), scored outside the head.

Every variant is built from the adaptation rows only and scored against the real held-out frames outside the
masks table's `head` label (mean of per-frame PSNR), plus the plate alone on the `background` label (pooled):

- frozen: the last adaptation frame;
- static: the plate + torso layer the avatar composites over (`avatar.plate`);
- nn<k>: the person pixels (hair, neck, torso) of the k adaptation frames nearest in head pose (rot, trans,
  standardised) averaged over the static backdrop: what a pose-conditioned 2-D layer could at best retrieve;
- nn<k>_img: the same with the k frames nearest in image (an oracle: it looks at the held-out frame);
- mean_frame: the mean adaptation frame (the per-pixel MSE-optimal still image).

    python bench/backdrop_variants.py --data <repo>/data/processed/seated --train-seconds 5 --eval-from 5
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data/processed/<id> (frames, masks, flame)")
    ap.add_argument("--train-seconds", type=float, default=5.0)
    ap.add_argument("--eval-from", type=float, default=5.0)
    a = ap.parse_args()

    from emotag_core.io.tables import TableReader, column_array
    from emotag_core.metrics.image import psnr
    from emotag_core.teachers.segmentation import BACKGROUND, HAIR, HEAD, NECK, TORSO
    from region_errors import split_rows, static_backdrop  # bench scripts import each other as top-level modules

    store, masks, split, train, held = split_rows(a.data, a.train_seconds, a.eval_from)
    fl = TableReader(a.data / "flame.parquet", "flame").read(columns=["rot", "trans"])
    pose = np.concatenate([column_array(fl, k) for k in ("rot", "trans")], 1)  # [N, 6], frame-store rows
    plate, static = static_backdrop(store, masks, train)
    static = static.astype(np.float32)
    imgs = np.stack([store.get(int(r)) for r in train])  # [A, H, W, 3] uint8 (random access by the nearest ones)
    person = np.stack([np.isin(masks.get(int(r)), (HAIR, NECK, TORSO)) for r in train])  # [A, H, W]
    mu, sd = pose[train].mean(0), pose[train].std(0) + 1e-6
    z_train = (pose[train] - mu) / sd

    def retrieved(idx: np.ndarray) -> np.ndarray:
        w = person[idx].astype(np.float32)[..., None]
        den = w.sum(0)
        colour = np.where(den > 0, (imgs[idx] * w).sum(0) / np.maximum(den, 1e-6), 0.0)
        alpha = den / len(idx)
        return colour * alpha + static * (1 - alpha)

    names = ["frozen", "static", "mean_frame", *[f"nn{k}" for k in (1, 3, 5)], "nn1_img", "nn3_img"]
    scores: dict[str, list[float]] = {k: [] for k in names}
    still = {"frozen": imgs[-1].astype(np.float32), "static": static, "mean_frame": imgs.mean(0, dtype=np.float32)}
    bg_se = bg_n = 0.0
    for r in held:
        gt = store.get(int(r)).astype(np.float32)
        lab = masks.get(int(r))
        keep = lab != HEAD
        for k, img in still.items():
            scores[k].append(float(psnr(img, gt, mask=keep)[0]))
        near = np.argsort((((z_train - (pose[r] - mu) / sd)) ** 2).sum(1))
        for k in (1, 3, 5):
            scores[f"nn{k}"].append(float(psnr(retrieved(near[:k]), gt, mask=keep)[0]))
        by_img = np.argsort([float((((im - gt) ** 2).mean(-1) * keep).mean()) for im in imgs])
        for k in (1, 3):
            scores[f"nn{k}_img"].append(float(psnr(retrieved(by_img[:k]), gt, mask=keep)[0]))
        bg = lab == BACKGROUND
        bg_se += float((((plate.astype(np.float32) - gt) ** 2).mean(-1) * bg).sum())
        bg_n += float(bg.sum())
    out = {"frames": int(len(held)), "split": split.describe(),
           "not_head_psnr": {k: round(float(np.mean(v)), 2) for k, v in scores.items()},
           "plate_alone_on_background_psnr": round(float(10 * np.log10(255 ** 2 / (bg_se / max(bg_n, 1)))), 2)}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
