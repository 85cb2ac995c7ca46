"""Parquet table contracts shared by every stage.

Every table is keyed by `(clip_id, frame)`; its pyarrow schema and required metadata are
owned here (`SPECS`) and checked on write and on read. Metadata values are JSON, stored under
`emotag.<key>` in the Parquet schema metadata.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emotag_core.errors import SchemaError
from emotag_core.io.atomic import atomic_path

SCHEMA_VERSION = 1
META_PREFIX = "emotag."

# Metadata every table carries (DESIGN.md: schema version, fps, frame size, backend + version).
COMMON_META = ("schema", "schema_version", "fps", "frame_size", "backend", "backend_version")

KEY_FIELDS = [pa.field("clip_id", pa.string(), nullable=False), pa.field("frame", pa.int32(), nullable=False)]

EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # DeepFace order
OPENFACE_AUS = (
    "AU01", "AU02", "AU04", "AU05", "AU06", "AU07", "AU09", "AU10", "AU12",
    "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26", "AU45",
)  # OpenFace FeatureExtraction intensity set (AUxx_r), 0-5 scale
UPPER_AUS = ("AU01", "AU04", "AU05", "AU06", "AU07", "AU45")  # paper's expression feature E
LOWER_AUS = ("AU09", "AU10", "AU12", "AU14", "AU15", "AU17", "AU20", "AU23", "AU25", "AU26")
N_LANDMARKS = 478
N_BLENDSHAPES = 52


def _vec(n: int, t: pa.DataType = pa.float32()) -> pa.DataType:
    return pa.list_(t, n)


@dataclass(frozen=True)
class TableSpec:
    """A table contract: columns (name -> type) and the metadata keys it must carry."""

    name: str
    fields: tuple[pa.Field, ...]
    meta: tuple[str, ...] = ()
    keyed: bool = True
    # variable-width fixed-size lists whose width comes from metadata (e.g. feature_dim)
    dynamic_width: Mapping[str, str] = field(default_factory=dict)
    # columns whose bytes are already compressed (JPEG): stored uncompressed, which reads faster
    precompressed: tuple[str, ...] = ()
    # this table's schema version (bumped when its columns change; older files are refused on read)
    version: int = SCHEMA_VERSION
    # float columns a writer may leave out, filled with this constant (a column added after its writers)
    fill: Mapping[str, float] = field(default_factory=dict)

    def schema(self, meta: Mapping[str, Any]) -> pa.Schema:
        fields = list(KEY_FIELDS) if self.keyed else []
        for f in self.fields:
            if f.name in self.dynamic_width:
                width = int(meta[self.dynamic_width[f.name]])
                f = pa.field(f.name, pa.list_(pa.float32(), width), nullable=f.nullable)
            fields.append(f)
        return pa.schema(fields, metadata=encode_meta(meta))

    @property
    def required_meta(self) -> tuple[str, ...]:
        return COMMON_META + self.meta


SPECS: dict[str, TableSpec] = {}


def register(spec: TableSpec) -> TableSpec:
    """Add a table contract to `SPECS` (one per table name)."""
    SPECS[spec.name] = spec
    return spec


register(TableSpec(
    "frames",
    (
        pa.field("t", pa.float64()),            # seconds from clip start
        pa.field("src_t", pa.float64()),        # timestamp of the source frame used
        pa.field("box", _vec(4)),               # crop box in source pixels: x0, y0, side, side
        pa.field("det_conf", pa.float32()),     # detector confidence (0 when no face)
        pa.field("face_found", pa.bool_()),
        pa.field("jpeg", pa.binary()),          # the 512x512 crop, JPEG-encoded
    ),
    meta=("source", "audio", "face_index"),
    precompressed=("jpeg",),  # zstd gains <3% on JPEG and costs ~30% of random-read speed (BENCHMARKS.md)
))
register(TableSpec(
    "landmarks",
    (
        pa.field("face_found", pa.bool_()),
        pa.field("landmarks", _vec(N_LANDMARKS * 3)),  # x, y in crop pixels, z (MediaPipe scale)
        pa.field("blendshapes", _vec(N_BLENDSHAPES)),
        pa.field("transform", _vec(16)),               # facial transformation matrix, row-major 4x4
    ),
    meta=("blendshape_names",),
))
register(TableSpec(
    "audio_features",
    (pa.field("feature", _vec(1)),),
    meta=("feature_dim", "sample_rate", "window"),
    dynamic_width={"feature": "feature_dim"},
))
register(TableSpec(
    "aus",
    (pa.field("face_found", pa.bool_()),) + tuple(pa.field(a, pa.float32()) for a in OPENFACE_AUS),
    meta=("aus", "available_aus", "scale"),
))
register(TableSpec(
    "emotion",
    (
        pa.field("face_found", pa.bool_()),
        pa.field("probs", _vec(len(EMOTION_LABELS))),  # rows sum to 1, DeepFace label order
        pa.field("score", pa.float32()),               # e = 1 - p(neutral) (Eq. 9)
    ),
    meta=("labels",),
))
register(TableSpec(
    "identity",
    (
        pa.field("neutral_p", pa.float32()),            # p(neutral) of the frames used
        pa.field("face_detected", pa.bool_()),          # embedder found the face (False: crop's central box)
        pa.field("embedding", _vec(1)),                 # per-frame embedding (L2-normalised)
    ),
    meta=("embedding_dim", "identity_vector", "top_k"),  # identity_vector: s, L2-normalised mean
    dynamic_width={"embedding": "embedding_dim"},
))
register(TableSpec(
    "flame",
    (
        pa.field("valid", pa.bool_()),                  # False: no landmarks, interpolated
        pa.field("expr", _vec(1)),
        pa.field("jaw", _vec(3)),                       # axis-angle
        pa.field("rot", _vec(3)),                       # head rotation, axis-angle
        pa.field("trans", _vec(3)),
        pa.field("fit_error_px", pa.float32()),
        pa.field("neck", _vec(3)),                      # v2: neck rotation (FLAME frame, body -> head); 0 = rigid neck
    ),
    meta=("flame_model", "n_expr", "shape", "camera"),
    dynamic_width={"expr": "n_expr"},
    version=2, fill={"neck": 0.0},
))
register(TableSpec(
    "geometry",
    (
        pa.field("depth", pa.binary()),                 # float16 [S, S], camera-space z, 0 = background
        pa.field("normal", pa.binary()),                # float16 [S, S, 3], camera space, unit length
    ),
    meta=("map_size",),  # writers also record depth_units: metres_z (flame) | relative (sapiens)
))
register(TableSpec(
    "masks",
    (
        pa.field("labels", pa.binary()),                # [H, W] uint8 label map, PNG-encoded; values index `labels`
        pa.field("pose_found", pa.bool_()),             # the pose model found a person in this frame
        pa.field("shoulders", _vec(4)),                 # left x, y, right x, y in crop pixels (-1: no pose)
        pa.field("shoulder_vis", _vec(2)),              # visibility probability of the two shoulders
        pa.field("person_frac", pa.float32()),          # fraction of the crop labelled person
    ),
    meta=("labels", "encoding", "models"),  # label order, "png", segmentation/pose model names and files
))


def encode_meta(meta: Mapping[str, Any]) -> dict[bytes, bytes]:
    return {f"{META_PREFIX}{k}".encode(): json.dumps(v).encode() for k, v in meta.items()}


def decode_meta(raw: Mapping[bytes, bytes] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in (raw or {}).items():
        key = k.decode()
        if key.startswith(META_PREFIX):
            out[key[len(META_PREFIX):]] = json.loads(v.decode())
    return out


def _full_meta(name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    spec = SPECS[name]
    out = {"schema": name, "schema_version": spec.version, **meta}
    missing = [k for k in spec.required_meta if k not in out]
    if missing:
        raise SchemaError(None, f"table `{name}`: metadata missing {missing}", "pass them to the writer")
    return out


def _check_finite(table: pa.Table, path: Path | str) -> None:
    for col in table.column_names:
        arr = table.column(col)
        t = arr.type
        while pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
            t = t.value_type
        if not pa.types.is_floating(t):
            continue
        flat = arr.combine_chunks()
        while pa.types.is_list(flat.type) or pa.types.is_fixed_size_list(flat.type):
            flat = flat.flatten()
        values = flat.to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(values.astype(np.float64, copy=False))
        if bad.any():
            raise SchemaError(path, f"column `{col}` has {int(bad.sum())} NaN/Inf values",
                              "fix the producing stage or re-run it")


def _compression(schema: pa.Schema, spec: TableSpec) -> str | dict[str, str]:
    """zstd for every Parquet leaf column except the spec's precompressed ones."""
    if not spec.precompressed:
        return "zstd"
    import io

    buf = io.BytesIO()
    pq.write_table(schema.empty_table(), buf)  # leaf paths (e.g. `box.list.element`) as Parquet names them
    paths = [c.path for c in pq.ParquetFile(io.BytesIO(buf.getvalue())).schema]
    return {p: ("none" if p.split(".")[0] in spec.precompressed else "zstd") for p in paths}


class TableWriter:
    """Streams record batches into one Parquet file under a temporary name.

    Use as a context manager; the file appears at `path` only if the block finishes.
    """

    def __init__(self, path: str | Path, name: str, meta: Mapping[str, Any], row_group_size: int = 1024,
                 check_finite: bool = True) -> None:
        if name not in SPECS:
            raise SchemaError(path, f"unknown table `{name}`", f"known: {sorted(SPECS)}")
        self.path = Path(path)
        self.name = name
        self.meta = _full_meta(name, meta)
        self.schema = SPECS[name].schema(self.meta)
        self.row_group_size = row_group_size
        self.check_finite = check_finite
        self.rows = 0
        self._ctx = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> "TableWriter":
        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._writer = pq.ParquetWriter(tmp, self.schema, compression=_compression(self.schema, SPECS[self.name]))
        return self

    def write(self, columns: Mapping[str, Any] | pa.RecordBatch | pa.Table) -> None:
        """Append rows given as a column mapping (numpy arrays / lists) or an Arrow batch."""
        assert self._writer is not None, "use TableWriter as a context manager"
        fill = SPECS[self.name].fill
        if fill and isinstance(columns, Mapping) and any(k not in columns for k in fill):
            n = len(next(iter(columns.values())))
            columns = {**columns, **{k: np.full((n, self.schema.field(k).type.list_size), v, np.float32)
                                     for k, v in fill.items() if k not in columns}}
        table = to_arrow(columns, self.schema, self.path)
        if self.check_finite:
            _check_finite(table, self.path)
        self._writer.write_table(table, row_group_size=self.row_group_size)
        self.rows += table.num_rows

    def __exit__(self, et, ev, tb) -> bool:
        assert self._writer is not None and self._ctx is not None
        self._writer.close()
        self._ctx.__exit__(et, ev, tb)
        return False


def to_arrow(columns: Mapping[str, Any] | pa.RecordBatch | pa.Table, schema: pa.Schema, where: Path | str) -> pa.Table:
    """Convert columns to a table of exactly `schema` (order, types), naming any mismatch."""
    if isinstance(columns, (pa.RecordBatch, pa.Table)):
        table = pa.Table.from_batches([columns]) if isinstance(columns, pa.RecordBatch) else columns
        missing = [n for n in schema.names if n not in table.column_names]
        if missing:
            raise SchemaError(where, f"columns missing {missing}")
        try:
            return table.select(schema.names).cast(schema)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise SchemaError(where, f"cannot cast to the table schema: {exc}") from exc
    missing = [n for n in schema.names if n not in columns]
    extra = [n for n in columns if n not in schema.names]
    if missing or extra:
        raise SchemaError(where, f"columns missing {missing}, unexpected {extra}")
    arrays = []
    for f in schema:
        v = columns[f.name]
        try:
            if pa.types.is_fixed_size_list(f.type) and isinstance(v, np.ndarray):
                width = f.type.list_size
                arr2 = np.ascontiguousarray(v, dtype=np.float32)
                arr2 = arr2.reshape(0, width) if arr2.size == 0 else arr2.reshape(len(v), -1)
                if arr2.shape[1] != width:
                    raise SchemaError(where, f"column `{f.name}` has width {arr2.shape[1]}, schema says {width}")
                arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(arr2.reshape(-1)), width))
            else:
                arrays.append(pa.array(v, type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise SchemaError(where, f"column `{f.name}` does not fit {f.type}: {exc}") from exc
    return pa.Table.from_arrays(arrays, schema=schema)


def write_table(path: str | Path, name: str, columns: Mapping[str, Any] | pa.Table, meta: Mapping[str, Any],
                row_group_size: int = 1024) -> None:
    """Write a whole table atomically, checked against its contract."""
    with TableWriter(path, name, meta, row_group_size=row_group_size) as w:
        w.write(columns)


_UNCHECKED = ("jpeg", "depth", "normal", "labels")  # binary payload columns: no float values to check


class TableReader:
    """A checked, lazily-read table: metadata and schema are validated on open."""

    def __init__(self, path: str | Path, name: str, expect: Mapping[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.name = name
        if not self.path.exists():
            raise SchemaError(self.path, f"table `{name}` not found", "run the stage that writes it")
        try:
            self._pf = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise SchemaError(self.path, f"not a readable Parquet file ({exc})", "delete it and re-run its stage") from exc
        try:
            self.meta = decode_meta(self._pf.schema_arrow.metadata)
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            raise SchemaError(self.path, f"schema metadata is not valid JSON ({exc})",
                              "this file was not written by this project's stage; re-run it") from exc
        check_schema(self.path, name, self._pf.schema_arrow, self.meta)
        for k, v in (expect or {}).items():
            if self.meta.get(k) != v:
                raise SchemaError(self.path, f"metadata `{k}` is {self.meta.get(k)!r}, expected {v!r}",
                                  "re-run the producing stage with matching params")

    @property
    def num_rows(self) -> int:
        return self._pf.metadata.num_rows

    @property
    def num_row_groups(self) -> int:
        return self._pf.num_row_groups

    def read(self, columns: list[str] | None = None) -> pa.Table:
        table = self._pf.read(columns=columns)
        _check_finite(table.select([c for c in table.column_names if c not in _UNCHECKED]), self.path)
        return table

    def read_row_group(self, i: int, columns: list[str] | None = None) -> pa.Table:
        table = self._pf.read_row_group(i, columns=columns)
        _check_finite(table.select([c for c in table.column_names if c not in _UNCHECKED]), self.path)
        return table

    def iter_batches(self, batch_size: int = 256, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
        """Stream the table in batches (constant memory in table length); NaN/Inf are refused here too."""
        for batch in self._pf.iter_batches(batch_size=batch_size, columns=columns):
            _check_finite(pa.Table.from_batches([batch]).select(
                [c for c in batch.schema.names if c not in _UNCHECKED]), self.path)
            yield batch


def check_schema(path: Path | str, name: str, schema: pa.Schema, meta: Mapping[str, Any]) -> None:
    """Raise SchemaError naming the file and the field if `schema`/`meta` break table `name`'s contract."""
    if name not in SPECS:
        raise SchemaError(path, f"unknown table `{name}`")
    spec = SPECS[name]
    if meta.get("schema") != name:
        raise SchemaError(path, f"metadata says table `{meta.get('schema')}`, expected `{name}`",
                          "this file was not written by this project's stage; re-run it")
    if meta.get("schema_version") != spec.version:
        raise SchemaError(path, f"schema version {meta.get('schema_version')!r}, this code reads {spec.version}",
                          "re-run the stage to rewrite the table")
    missing_meta = [k for k in spec.required_meta if k not in meta]
    if missing_meta:
        raise SchemaError(path, f"metadata missing {missing_meta}")
    want = spec.schema(meta)
    for f in want:
        idx = schema.get_field_index(f.name)
        if idx < 0:
            raise SchemaError(path, f"column `{f.name}` is missing")
        got = schema.field(idx).type
        if got != f.type:
            raise SchemaError(path, f"column `{f.name}` has type {got}, expected {f.type}")


def read_table(path: str | Path, name: str, columns: list[str] | None = None,
               expect: Mapping[str, Any] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """Read and check a whole table; returns (table, metadata)."""
    r = TableReader(path, name, expect)
    return r.read(columns), r.meta


def column_array(table: pa.Table, name: str) -> np.ndarray:
    """A column as numpy; fixed-size-list columns become [N, width] float32 arrays."""
    col = table.column(name).combine_chunks()
    if pa.types.is_fixed_size_list(col.type):
        width = col.type.list_size
        return col.flatten().to_numpy(zero_copy_only=False).reshape(-1, width)
    return col.to_numpy(zero_copy_only=False)


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(float(x))
