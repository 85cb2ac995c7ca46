"""Background plate: recovers a known background behind a moving foreground, fills unseen pixels,
and reads the adaptation rows only."""
from __future__ import annotations

import numpy as np
import pytest

from emotag_core.avatar.plate import background_plate

H = W = 64


class _Seq:
    """frames/masks with a record of the rows read; held-out rows raise."""

    def __init__(self, items: list[np.ndarray], held_out: set[int]) -> None:
        self.items, self.held_out, self.read = items, held_out, set()

    def get(self, i: int) -> np.ndarray:
        if i in self.held_out:
            raise AssertionError(f"held-out row {i} was read")
        self.read.add(i)
        return self.items[i]


def _scene(n: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    bg = np.stack([xx * 4, yy * 4, (xx + yy) * 2], -1).clip(0, 255).astype(np.uint8)   # smooth, known
    frames, masks = [], []
    for t in range(n):
        img = bg.copy()
        lab = np.zeros((H, W), np.uint8)
        x0 = 4 + 3 * t                                       # a foreground square moving right
        img[20:50, x0:x0 + 16] = rng.integers(0, 255, (30, 16, 3))
        lab[20:50, x0:x0 + 16] = 4
        img[0:20, 28:36] = 255                               # a static pillar: never background
        lab[0:20, 28:36] = 1
        noise = rng.normal(0, 2, img.shape)
        frames.append(np.clip(img + noise, 0, 255).astype(np.uint8))
        masks.append(lab)
    return bg, frames, masks


def test_plate_recovers_seen_background_and_fills_unseen() -> None:
    bg, frames, masks = _scene()
    rows = list(range(8))
    plate, seen = background_plate(_Seq(frames, set()), _Seq(masks, set()), rows, erode_px=1)
    assert not seen[5:15, 30:34].any()                                 # under the pillar
    assert seen[25:45, 10:20].all()                                    # uncovered once the square moved
    err = np.abs(plate.astype(float) - bg)[seen]
    assert err.mean() < 1.5 and np.percentile(err, 99) < 6             # median over frames of the background
    # the unseen pillar is inpainted from its surroundings, not left black or white
    fill = plate[5:15, 30:34].astype(float)
    assert np.abs(fill - bg[5:15, 30:34]).mean() < 20
    assert fill.min() > 0 and fill.max() < 255


def test_plate_reads_adaptation_rows_only() -> None:
    bg, frames, masks = _scene()
    held = set(range(8, 12))
    f, m = _Seq(frames, held), _Seq(masks, held)
    background_plate(f, m, range(8))
    assert f.read == set(range(8)) and m.read == set(range(8))


def test_plate_needs_rows() -> None:
    bg, frames, masks = _scene(2)
    with pytest.raises(ValueError):
        background_plate(_Seq(frames, set()), _Seq(masks, set()), [])
