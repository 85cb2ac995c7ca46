"""Background plate: one still image of the scene behind the person, per clip (issue 18, item 3).

Built only from the rows it is given (the adaptation frames; the caller never passes held-out
ones): a per-pixel median over the frames where that pixel is labelled background (or padding
beyond the source frame), after shrinking the background away from the person's outline by
`erode_px`, so a mislabelled halo does not leak in. Pixels never seen as background are filled
with OpenCV's inpainting (Telea).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class _Frames(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W, 3] uint8 RGB


class _Masks(Protocol):
    def get(self, i: int) -> np.ndarray: ...   # [H, W] uint8 labels (emotag_core.teachers.segmentation.LABELS)


def background_plate(frames: _Frames, masks: _Masks, rows: Sequence[int], erode_px: int = 4,
                     max_frames: int = 64, inpaint_radius: int = 5,
                     background_labels: Sequence[int] = (0, 5)) -> tuple[np.ndarray, np.ndarray]:
    """Plate [H, W, 3] uint8 RGB and seen [H, W] bool (pixels observed as background at least once).

    frames.get(i) / masks.get(i) are read for the `rows` given only (at most `max_frames` of them,
    evenly spaced). background_labels: label values counted as background (default background and
    outside-the-source padding).
    """
    import cv2

    rows = [int(r) for r in rows]
    if not rows:
        raise ValueError("background_plate needs at least one adaptation row")
    if len(rows) > max_frames:
        rows = [rows[int(i)] for i in np.linspace(0, len(rows) - 1, max_frames).round()]
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1,) * 2) if erode_px > 0 else None
    stack, valid = [], []
    for r in rows:
        img = frames.get(r)
        bg = np.isin(masks.get(r), background_labels).astype(np.uint8)
        if kernel is not None:
            bg = cv2.erode(bg, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        stack.append(img)
        valid.append(bg.astype(bool))
    x = np.stack(stack)                                  # [N, H, W, 3]
    v = np.stack(valid)                                  # [N, H, W]
    count = v.sum(0)                                     # [H, W]
    # masked median: invalid samples sort last (sentinel 256), take the middle of the valid ones
    key = np.where(v[..., None], x.astype(np.uint16), np.uint16(256))
    key.sort(axis=0)
    lo = np.clip((count - 1) // 2, 0, None)
    hi = np.clip(count // 2, 0, None)
    gl = np.take_along_axis(key, lo[None, ..., None].repeat(3, -1), 0)[0].astype(np.float32)
    gh = np.take_along_axis(key, hi[None, ..., None].repeat(3, -1), 0)[0].astype(np.float32)
    plate = np.clip(np.round((gl + gh) / 2), 0, 255).astype(np.uint8)
    seen = count > 0
    plate[~seen] = 0
    if (~seen).any():
        plate = cv2.inpaint(plate, (~seen).astype(np.uint8), inpaint_radius, cv2.INPAINT_TELEA)
    return plate, seen
