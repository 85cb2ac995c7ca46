"""The frame store: 25 fps face crops as JPEG bytes in Parquet row groups (`frames.parquet`).

Random access reads one row group (32 frames by default) and decodes one JPEG; streaming reads
go row group by row group, so memory is bounded whatever the video length.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from emotag_core.errors import InputError
from emotag_core.io.tables import TableReader, column_array

KEY_COLUMNS = ["clip_id", "frame", "t", "src_t", "box", "det_conf", "face_found"]


def encode_jpeg(image: np.ndarray, quality: int = 92, bgr: bool = False) -> bytes:
    """[H, W, 3] uint8 RGB (BGR with `bgr=True`, which skips a channel swap) -> JPEG bytes."""
    import cv2

    img = np.ascontiguousarray(image) if bgr else cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


def decode_jpeg(data: bytes) -> np.ndarray:
    """JPEG bytes -> [H, W, 3] uint8 RGB."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError("corrupt JPEG in frame store")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)  # in place; a numpy [..., ::-1] copy is ~10x slower


class FrameStore:
    """Reader of `frames.parquet`: per-frame keys without images, images on demand."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._r = TableReader(self.path, "frames")
        self.meta: dict[str, Any] = self._r.meta
        self._keys = self._r.read(columns=KEY_COLUMNS)
        # row-group offsets for random access
        md = self._r._pf.metadata
        self._rg_start = np.cumsum([0] + [md.row_group(i).num_rows for i in range(md.num_row_groups)])
        self._cache: tuple[int, list[bytes]] | None = None

    def __len__(self) -> int:
        return self._keys.num_rows

    @property
    def keys(self) -> pa.Table:
        """Per-frame columns except the image: clip_id, frame, t, src_t, box, det_conf, face_found."""
        return self._keys

    @property
    def clip_ids(self) -> list[str]:
        """Clip ids in store order."""
        seen: dict[str, None] = {}
        for c in self._keys.column("clip_id").to_pylist():
            seen.setdefault(c, None)
        return list(seen)

    @property
    def size(self) -> int:
        return int(self.meta["frame_size"][0])

    @property
    def fps(self) -> float:
        return float(self.meta["fps"])

    def face_found(self) -> np.ndarray:
        return column_array(self._keys, "face_found").astype(bool)

    def get(self, i: int) -> np.ndarray:
        """Frame at store row `i` -> [H, W, 3] uint8 RGB."""
        if not 0 <= i < len(self):
            raise IndexError(f"{self.path}: frame row {i} out of range 0..{len(self) - 1}")
        rg = int(np.searchsorted(self._rg_start, i, side="right") - 1)
        if self._cache is None or self._cache[0] != rg:
            jpegs = self._r.read_row_group(rg, columns=["jpeg"]).column("jpeg").to_pylist()
            self._cache = (rg, jpegs)
        try:
            return decode_jpeg(self._cache[1][i - int(self._rg_start[rg])])
        except ValueError as exc:
            raise InputError(self.path, f"frame row {i}: {exc}", "re-run ingest") from exc

    def iter_batches(self, batch_size: int = 32, rows: np.ndarray | None = None
                     ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (row indices [B], images [B, H, W, 3] uint8) in store order, streaming."""
        order = np.arange(len(self)) if rows is None else np.asarray(rows)
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            yield idx, np.stack([self.get(int(i)) for i in idx])
