"""How well the layers behind the head predict the held-out frames (issue 18): static median vs pose-moved layers.

Scores the backdrop alone (plate + layers, no Gaussians) against the real held-out frames, outside the head mask
(the head is the avatar's job), for `adapt.layer_motion: static` and `pose`, plus the frozen frame. Reads an
identity's preprocessed tables (frames, masks, flame) from a DVC workdir; adaptation rows = the split's.

    python bench/bench_layer_motion.py --data /tmp/real/repo/data/processed/seated --train-seconds 5 --eval-from 5
    python bench/bench_layer_motion.py ... --png /tmp/layers.png   # a strip: truth | static | pose | error (pose)
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="data/processed/<id> of a workdir")
    ap.add_argument("--train-seconds", type=float, default=5.0)
    ap.add_argument("--eval-from", type=float, default=5.0)
    ap.add_argument("--ridge", type=float, default=1.0)
    ap.add_argument("--png", type=Path, default=None)
    a = ap.parse_args()

    from emotag_core.avatar.layer_motion import fit_layers, layer_theta, warp_layers
    from emotag_core.avatar.plate import background_plate, backdrop, torso_layer
    from emotag_core.io.tables import TableReader, column_array
    from emotag_core.metrics.image import psnr
    from emotag_core.teachers.segmentation import HEAD
    from region_errors import split_rows  # bench scripts import each other as top-level modules

    store, masks, _, train, held = split_rows(a.data, a.train_seconds, a.eval_from)  # the adapt stage's split
    fl = TableReader(a.data / "flame.parquet", "flame").read(columns=["clip_id", "frame", "rot", "trans"])
    pose = np.concatenate([column_array(fl, k) for k in ("rot", "trans")], 1)  # flame rows = frame-store rows here
    t0 = time.perf_counter()
    plate, _ = background_plate(store, masks, train)
    static = torso_layer(store, masks, train)
    t1 = time.perf_counter()
    layers, coef, info = fit_layers(store, masks, train, pose[train], ridge=a.ridge)
    t2 = time.perf_counter()

    S = plate.shape[0]
    lay = torch.from_numpy(layers).permute(0, 3, 1, 2).float() / 255
    lay = torch.cat([lay[:, :3] * lay[:, 3:], lay[:, 3:]], 1)
    base = torch.from_numpy(plate).permute(2, 0, 1)[None].float() / 255
    p_static, p_pose, p_frozen, strip = [], [], [], []
    frozen = store.get(int(train[-1])).astype(np.float32)
    static_img = backdrop(plate, static).astype(np.float32)
    for k, r in enumerate(held):
        gt = store.get(int(r)).astype(np.float32)
        keep = masks.get(int(r)) != HEAD
        rot = torch.from_numpy(pose[r:r + 1, :3]).float()
        tr = torch.from_numpy(pose[r:r + 1, 3:]).float()
        moved = warp_layers(base, lay, layer_theta(torch.from_numpy(coef), rot, tr))[0].permute(1, 2, 0).numpy() * 255
        p_static.append(psnr(static_img, gt, mask=keep))
        p_pose.append(psnr(moved, gt, mask=keep))
        p_frozen.append(psnr(frozen, gt, mask=keep))
        if a.png is not None and k in np.linspace(0, len(held) - 1, 4).round().astype(int):
            err = np.abs(moved - gt).mean(-1, keepdims=True).repeat(3, -1) * 4 * keep[..., None]
            strip.append(np.concatenate([gt, static_img, moved, np.clip(err, 0, 255)], 1))
    out = {"held_out_frames": len(held), "adapt_rows": len(train), "not_head_psnr": {
        "frozen": round(float(np.mean(p_frozen)), 2), "static": round(float(np.mean(p_static)), 2),
        "pose": round(float(np.mean(p_pose)), 2)}, "fit": info,
        "seconds": {"static": round(t1 - t0, 1), "pose": round(t2 - t1, 1)}, "size": S}
    print(json.dumps(out, indent=1))
    if a.png is not None:
        import cv2

        img = np.concatenate(strip, 0).astype(np.uint8)
        cv2.imwrite(str(a.png), cv2.cvtColor(cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2)), cv2.COLOR_RGB2BGR))


if __name__ == "__main__":
    main()
