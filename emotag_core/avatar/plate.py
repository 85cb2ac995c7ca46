"""The layers behind the head, per clip (issue 18, items 3-4): a background plate and a torso layer.

The render composites head, then torso, then plate (`avatar.scene.IdentityScene.composite`); under a
fixed crop (`ingest.crop: fixed`) both stay put in crop coordinates.

Built only from the rows it is given (the adaptation frames; the caller never passes held-out
ones): a per-pixel median over the frames where that pixel is labelled background (or padding
beyond the source frame), after shrinking the background away from the person's outline by
`erode_px`, so a mislabelled halo does not leak in. Pixels never seen as background are filled
with OpenCV's inpainting (Telea).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np


class _Frames(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W, 3] uint8 RGB


class _Masks(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W] uint8 labels (emotag_core.teachers.segmentation.LABELS)


def _spread(rows: Sequence[int], max_frames: int, what: str) -> list[int]:
    """At most `max_frames` of `rows`, evenly spaced (ValueError naming `what` when there are none)."""
    rows = [int(r) for r in rows]
    if not rows:
        raise ValueError(f"{what} needs at least one adaptation row")
    if len(rows) > max_frames:
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, max_frames).round()]
    return rows


def _masked_median(x: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel median of images x [N, H, W, 3] uint8 over the samples where v [N, H, W] is True
    -> (median [H, W, 3] float32, count [H, W]); pixels with no valid sample are 0."""
    count = v.sum(0)
    key = np.where(v[..., None], x.astype(np.uint16), np.uint16(256))  # invalid samples sort last
    key.sort(axis=0)
    lo, hi = np.clip((count - 1) // 2, 0, None), np.clip(count // 2, 0, None)
    gl = np.take_along_axis(key, lo[None, ..., None].repeat(3, -1), 0)[0].astype(np.float32)
    gh = np.take_along_axis(key, hi[None, ..., None].repeat(3, -1), 0)[0].astype(np.float32)
    return np.where(count[..., None] > 0, (gl + gh) / 2, 0.0).astype(np.float32), count


def background_plate(frames: _Frames, masks: _Masks, rows: Sequence[int], erode_px: int = 4,
                     max_frames: int = 64, inpaint_radius: int = 5,
                     background_labels: Sequence[int] = (0, 5)) -> tuple[np.ndarray, np.ndarray]:
    """Plate [H, W, 3] uint8 RGB and seen [H, W] bool (pixels observed as background at least once).

    frames.get(i) / masks.get(i) are read for the `rows` given only (at most `max_frames` of them,
    evenly spaced). background_labels: label values counted as background (default background and
    outside-the-source padding).
    """
    import cv2

    rows = _spread(rows, max_frames, "background_plate")
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1,) * 2) if erode_px > 0 else None
    stack, valid = [], []
    for r in rows:
        img = frames.get(r)
        bg = np.isin(masks.get(r), background_labels).astype(np.uint8)
        if kernel is not None:
            bg = cv2.erode(bg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        stack.append(img)
        valid.append(bg.astype(bool))
    med, count = _masked_median(np.stack(stack), np.stack(valid))   # [H, W, 3], [H, W]
    plate = np.clip(np.round(med), 0, 255).astype(np.uint8)
    seen = count > 0  # the median is 0 there
    if (~seen).any():
        plate = cv2.inpaint(plate, (~seen).astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)
    return plate, seen


def torso_layer(frames: _Frames, masks: _Masks, rows: Sequence[int], max_frames: int = 64,
                labels: Sequence[int] = (2, 3, 4), feather_px: int = 2) -> np.ndarray:
    """The static 2-D layer of the person around the head: RGBA [H, W, 4] uint8.

    Colour: the per-pixel median over the `rows` where the pixel is labelled hair, neck or torso
    (`labels`); alpha: the fraction of those rows, feathered by a Gaussian of `feather_px`, so a
    shoulder that moves a little gets a soft edge instead of a seam. Pixels never labelled so are
    transparent.
    """
    import cv2

    rows = _spread(rows, max_frames, "torso_layer")
    med, count = _masked_median(np.stack([frames.get(r) for r in rows]),
                                np.stack([np.isin(masks.get(r), labels) for r in rows]))
    rgb = np.clip(np.round(med), 0, 255).astype(np.uint8)
    alpha = count.astype(np.float32) / len(rows)
    if feather_px > 0:
        alpha = cv2.GaussianBlur(alpha, (0, 0), feather_px) * (count > 0)  # soft inside, 0 where never seen
    return np.concatenate([rgb, np.clip(np.round(alpha * 255), 0, 255).astype(np.uint8)[..., None]], -1)


def backdrop(plate: np.ndarray, torso: np.ndarray | None) -> np.ndarray:
    """What the head is composited over: the torso layer (RGBA [H, W, 4] uint8) over the plate or any
    other image ([H, W, 3] uint8) -> [H, W, 3] uint8."""
    if torso is None:
        return plate
    a = torso[..., 3:].astype(np.float32) / 255.0
    out = torso[..., :3].astype(np.float32) * a + plate.astype(np.float32) * (1.0 - a)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


class MaskRows:
    """Label maps of a `masks` table by frame-store row (checked to describe the same frames)."""

    def __init__(self, masks_path: str | Path, frame_keys: Any) -> None:
        from emotag_core.errors import InputError
        from emotag_core.io.tables import TableReader

        t = TableReader(masks_path, "masks").read(columns=["clip_id", "frame", "labels"])
        same = (t.column("clip_id").to_pylist() == frame_keys.column("clip_id").to_pylist()
                and t.column("frame").to_pylist() == frame_keys.column("frame").to_pylist())
        if not same:
            raise InputError(masks_path, "the masks table does not describe the frame store's frames",
                             "re-run `dvc repro masks@<id>` after ingest")
        self._labels = t.column("labels")

    def get(self, i: int) -> np.ndarray:
        from emotag_core.teachers.segmentation import decode_labels

        return decode_labels(self._labels[int(i)].as_py())
