"""Where a held-out render's error is (issue 18): its squared error split by the masks table's labels.

For each label of the real frames' segmentation (background, head, hair, neck, torso, outside) it reports the
share of pixels, the share of the render's summed squared error, the region's own PSNR, and the whole-crop PSNR
the render would reach if that region alone were perfect. The frozen frame (last adaptation frame) and the
static backdrop (plate + torso layer, `avatar.plate`, from the adaptation rows only) are scored per region on the
same frames, so a region that no layer or Gaussian improves shows up. PSNR here is pooled over all frames and
pixels (one MSE), so it is a little below evaluate's per-frame mean.

    python bench/region_errors.py --data <repo>/data/processed/seated --video results/heldout_av.mp4 \
        --train-seconds 5 --eval-from 5 [--json out.json]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def _psnr(mse: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


class RegionErrors:
    """Summed squared error and pixel count per label, one frame at a time (no frames kept)."""

    def __init__(self, names: tuple[str, ...]) -> None:
        self.names = names
        self.se, self.cnt = np.zeros(len(names)), np.zeros(len(names))

    def add(self, pred: np.ndarray, gt: np.ndarray, labels: np.ndarray) -> None:
        """pred, gt [H, W, 3] uint8; labels [H, W] (indices into `names`)."""
        e = ((pred.astype(np.float32) - gt.astype(np.float32)) ** 2).mean(-1)  # [H, W]
        k = len(self.names)
        self.se += np.bincount(labels.ravel(), weights=e.ravel(), minlength=k)[:k]
        self.cnt += np.bincount(labels.ravel(), minlength=k)[:k]

    def table(self) -> dict[str, Any]:
        """Per-label pixel share, error share, PSNR, and PSNR of the whole crop with that label's error removed."""
        n, total = self.cnt.sum(), self.se.sum()
        out: dict[str, Any] = {"psnr_pooled": round(_psnr(total / n), 2), "regions": {}}
        for k, name in enumerate(self.names):
            if self.cnt[k] == 0:
                continue
            out["regions"][name] = {"pixels": round(float(self.cnt[k] / n), 3),
                                    "error_share": round(float(self.se[k] / total), 3),
                                    "psnr": round(_psnr(self.se[k] / self.cnt[k]), 2),
                                    "psnr_if_perfect": round(_psnr((total - self.se[k]) / n), 2)}
        return out


def region_table(frames: list[np.ndarray], gt: list[np.ndarray], labels: list[np.ndarray],
                 names: tuple[str, ...]) -> dict[str, Any]:
    """`RegionErrors` over whole lists: frames, gt [H, W, 3] uint8 and labels [H, W] per frame."""
    acc = RegionErrors(names)
    for f, g, lab in zip(frames, gt, labels):
        acc.add(f, g, lab)
    return acc.table()


def split_rows(data: Path, train_seconds: float, eval_from: float) -> tuple[Any, Any, Any, np.ndarray, np.ndarray]:
    """An identity's frame store, mask rows, `emotag_core.split.Split` and its adaptation / held-out row indices
    (the adapt stage's split for these two params) -> (store, masks, split, train [A], held [N])."""
    from emotag_core.avatar.plate import MaskRows
    from emotag_core.config import AdaptConfig
    from emotag_core.io.frames import FrameStore
    from emotag_core.split import Split

    store = FrameStore(data / "frames.parquet")
    masks = MaskRows(data / "masks.parquet", store.keys)
    split = Split.from_config(AdaptConfig(train_seconds=train_seconds, eval_from_s=eval_from), None,
                              store.keys, float(store.fps))
    return store, masks, split, np.nonzero(split.adapt_mask(len(store.keys)))[0], split.heldout_rows(store.keys)


def static_backdrop(store: Any, masks: Any, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The plate [H, W, 3] and the plate + torso layer [H, W, 3] (uint8) the avatar composites over."""
    from emotag_core.avatar.plate import background_plate, backdrop, torso_layer

    plate, _ = background_plate(store, masks, train)
    return plate, backdrop(plate, torso_layer(store, masks, train))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data/processed/<id> (frames, masks)")
    ap.add_argument("--video", type=Path, required=True, help="the held-out render (mp4), frame 0 = first held-out")
    ap.add_argument("--train-seconds", type=float, default=5.0)
    ap.add_argument("--eval-from", type=float, default=5.0)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()

    import av
    import cv2

    from emotag_core.teachers.segmentation import LABELS

    store, masks, split, train, held = split_rows(a.data, a.train_seconds, a.eval_from)
    still = {"frozen": store.get(int(train[-1])), "backdrop": static_backdrop(store, masks, train)[1]}
    acc = {k: RegionErrors(LABELS) for k in ("render", *still)}
    n = 0
    with av.open(str(a.video)) as c:
        for row, f in zip(held, c.decode(video=0)):  # streamed: one frame in memory at a time
            gt, lab = store.get(int(row)), masks.get(int(row))
            r = f.to_ndarray(format="rgb24")
            if r.shape != gt.shape:
                r = cv2.resize(r, gt.shape[:2][::-1], interpolation=cv2.INTER_AREA)
            acc["render"].add(r, gt, lab)
            for k, img in still.items():
                acc[k].add(img, gt, lab)
            n += 1
    out = {"frames": n, "split": split.describe(), **{k: v.table() for k, v in acc.items()}}
    print(f"{a.video} ({n} frames; {split.describe()}): whole crop, pooled PSNR render "
          f"{out['render']['psnr_pooled']} / frozen {out['frozen']['psnr_pooled']} / backdrop {out['backdrop']['psnr_pooled']}")
    print(f"{'region':10s} {'pixels':>7s} {'err share':>9s} {'render':>7s} {'frozen':>7s} {'backdrop':>8s} {'if perfect':>10s}")
    for name, r in out["render"]["regions"].items():
        print(f"{name:10s} {r['pixels']:7.1%} {r['error_share']:9.1%} {r['psnr']:7.2f} "
              f"{out['frozen']['regions'][name]['psnr']:7.2f} {out['backdrop']['regions'][name]['psnr']:8.2f} "
              f"{r['psnr_if_perfect']:10.2f}")
    if a.json is not None:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
