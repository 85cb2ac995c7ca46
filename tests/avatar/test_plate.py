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


def test_torso_layer_is_the_median_person_with_coverage_alpha() -> None:
    from emotag_core.avatar.plate import backdrop, torso_layer

    rng = np.random.default_rng(3)
    frames, masks = [], []
    for t in range(10):
        img = np.full((H, W, 3), 30, np.uint8)
        lab = np.zeros((H, W), np.uint8)
        img[40:64, 10:54] = (200, 120, 60)                 # the torso, still
        lab[40:64, 10:54] = 4
        if t < 3:                                          # a hand passes in 3 of 10 frames: the median ignores it
            img[44:54, 20:30] = 255
        img[0:40, 20:44] = rng.integers(0, 255, (40, 24, 3))   # the head (label 1): never in the layer
        lab[0:40, 20:44] = 1
        frames.append(img)
        masks.append(lab)
    held = {7, 8, 9}
    rgba = torso_layer(_Seq(frames, held), _Seq(masks, held), range(7), feather_px=0)
    assert rgba.shape == (H, W, 4) and rgba.dtype == np.uint8
    assert (rgba[48, 25, :3] == (200, 120, 60)).all()      # median over 7 rows: the hand (3) is out-voted
    assert (rgba[40:64, 10:54, 3] == 255).all() and (rgba[0:40, :, 3] == 0).all()
    plate = np.full((H, W, 3), 90, np.uint8)
    out = backdrop(plate, rgba)
    assert (out[50, 30] == (200, 120, 60)).all() and (out[10, 5] == 90).all()
    soft = torso_layer(_Seq(frames, held), _Seq(masks, held), range(7), feather_px=2)
    assert 0 < soft[40, 30, 3] < 255 and soft[60, 30, 3] == 255 and soft[30, 30, 3] == 0  # soft edge, no halo


def test_scene_composites_head_over_torso_over_plate_at_full_size() -> None:
    import torch

    from emotag_core.avatar.scene import IdentityScene

    class _Avatar(torch.nn.Module):
        n_mouth = 0

    sc = IdentityScene(torch.nn.Identity(), _Avatar(), torch.zeros(3), torch.eye(3), 64)
    assert not sc.has_layers
    plate = torch.zeros(3, 64, 64, dtype=torch.uint8)
    plate[0] = 255                                                     # a red plate
    torso = torch.zeros(4, 64, 64, dtype=torch.uint8)
    torso[2, 32:], torso[3, 32:] = 255, 255                            # a blue torso on the lower half
    sc.set_layers(plate, torso)
    assert sc.has_layers and "plate" in sc.state_dict() and "torso" in sc.state_dict()
    colour = torch.zeros(1, 3, 16, 16)
    alpha = torch.zeros(1, 1, 16, 16)
    colour[..., 4:8, 4:8], alpha[..., 4:8, 4:8] = 1.0, 1.0             # a white head, top-left
    img = sc.composite({"colour": colour, "alpha": alpha}, 16, out_size=64)["image"]
    assert img.shape == (1, 3, 64, 64)
    assert torch.allclose(img[0, :, 2, 60], torch.tensor([1.0, 0, 0]))  # plate
    assert torch.allclose(img[0, :, 60, 60], torch.tensor([0, 0, 1.0]))  # torso over plate
    assert torch.allclose(img[0, :, 24, 24], torch.ones(3))              # head over both
    small = sc.composite({"colour": colour, "alpha": alpha}, 16)["image"]  # training size: layers resized
    assert small.shape == (1, 3, 16, 16) and torch.allclose(small[0, :, 1, 15], torch.tensor([1.0, 0, 0]))
    sc.set_over(torch.tensor([0, 255, 0], dtype=torch.uint8).reshape(3, 1, 1))   # onto a green colour
    img = sc.composite({"colour": colour, "alpha": alpha}, 16, out_size=64)["image"]
    assert torch.allclose(img[0, :, 2, 60], torch.tensor([0, 1.0, 0])) and torch.allclose(img[0, :, 60, 60], torch.tensor([0, 0, 1.0]))
    with pytest.raises(Exception, match="uint8"):
        sc.set_layers(plate.float(), torso)
