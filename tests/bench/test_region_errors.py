"""bench/region_errors.py: the per-label split of a render's squared error adds up and names the right region."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # bench scripts import as top-level modules

import region_errors  # noqa: E402


def test_error_split_by_label_sums_to_the_whole_and_finds_the_wrong_region() -> None:
    names = ("background", "head", "hair")
    rng = np.random.default_rng(0)
    gt = [rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for _ in range(3)]
    labels = [np.repeat(np.array([0, 0, 1, 1, 1, 2, 2, 2], np.uint8)[None], 8, 0) for _ in range(3)]
    render = []
    for g, lab in zip(gt, labels):
        r = g.astype(np.int16)
        r[lab == 2] += 40  # only the hair is wrong
        r[lab == 1] += 4
        render.append(np.clip(r, 0, 255).astype(np.uint8))
    out = region_errors.region_table(render, gt, labels, names)
    reg = out["regions"]
    assert abs(sum(r["error_share"] for r in reg.values()) - 1.0) < 1e-2
    assert abs(sum(r["pixels"] for r in reg.values()) - 1.0) < 1e-2
    assert reg["hair"]["error_share"] > 0.9 and reg["background"]["error_share"] == 0.0
    assert reg["background"]["psnr"] > 100  # a perfect region: capped, not infinite
    # the whole crop with the hair fixed is far better than as rendered
    assert reg["hair"]["psnr_if_perfect"] > out["psnr_pooled"] + 10
    assert reg["head"]["psnr_if_perfect"] < out["psnr_pooled"] + 0.5
