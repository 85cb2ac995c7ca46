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
from types import SimpleNamespace
from typing import Any

import numpy as np


def _psnr(mse: float) -> float:
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12)))


def region_table(frames: list[np.ndarray], gt: list[np.ndarray], labels: list[np.ndarray],
                 names: tuple[str, ...]) -> dict[str, Any]:
    """frames, gt [H, W, 3] uint8 and labels [H, W] per frame -> per-label pixel share, error share, PSNR,
    and PSNR of the whole crop with that label's error removed."""
    se, cnt = np.zeros(len(names)), np.zeros(len(names))
    for f, g, lab in zip(frames, gt, labels):
        e = ((f.astype(np.float32) - g.astype(np.float32)) ** 2).mean(-1)  # [H, W]
        se += np.bincount(lab.ravel(), weights=e.ravel(), minlength=len(names))[:len(names)]
        cnt += np.bincount(lab.ravel(), minlength=len(names))[:len(names)]
    n, total = cnt.sum(), se.sum()
    out: dict[str, Any] = {"psnr_pooled": round(_psnr(total / n), 2), "regions": {}}
    for k, name in enumerate(names):
        if cnt[k] == 0:
            continue
        out["regions"][name] = {"pixels": round(float(cnt[k] / n), 3), "error_share": round(float(se[k] / total), 3),
                                "psnr": round(_psnr(se[k] / cnt[k]), 2),
                                "psnr_if_perfect": round(_psnr((total - se[k]) / n), 2)}
    return out


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

    from emotag_core.avatar.plate import MaskRows, background_plate, backdrop, torso_layer
    from emotag_core.io.frames import FrameStore
    from emotag_core.split import Split
    from emotag_core.teachers.segmentation import LABELS

    store = FrameStore(a.data / "frames.parquet")
    masks = MaskRows(a.data / "masks.parquet", store.keys)
    split = Split.from_config(SimpleNamespace(train_seconds=a.train_seconds, eval_from_s=a.eval_from), None,
                              store.keys, float(store.fps))
    held = split.heldout_rows(store.keys)
    train = np.nonzero(split.adapt_mask(len(store.keys)))[0]
    with av.open(str(a.video)) as c:
        render = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    n = min(len(render), len(held))
    gt = [store.get(int(r)) for r in held[:n]]
    side = gt[0].shape[:2][::-1]
    render = [r if r.shape[:2] == gt[0].shape[:2] else cv2.resize(r, side, interpolation=cv2.INTER_AREA)
              for r in render[:n]]
    labels = [masks.get(int(r)) for r in held[:n]]
    plate, _ = background_plate(store, masks, train)
    still = {"frozen": store.get(int(train[-1])), "backdrop": backdrop(plate, torso_layer(store, masks, train))}
    out = {"frames": n, "split": split.describe(), "render": region_table(render, gt, labels, LABELS)}
    for k, img in still.items():
        out[k] = region_table([img] * n, gt, labels, LABELS)
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
