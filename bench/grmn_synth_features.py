"""Extra audio feature sets for the synthetic-truth bench (issue 19 item 4: GRMN on log-mel vs Whisper).

The bench workdir (`grmn_synth.py prepare`) holds each identity's features as its DAG computed them
(`data/processed/<id>/audio_features.parquet`, the params' backend: log-mel). Another backend's features of the
same frames and audio go beside it, outside the DVC outputs, at `features/<backend>/<id>/audio_features.parquet`
(`grmn_synth.py features --backend whisper`: `emotag_core.teachers.audio.write_features`, the DAG's own job,
with only `audio_features.backend` changed). A bundle (`grmn_synth.py bundle --features whisper`) carries them in
the same layout, and `sweep.py device` runs a run whose `audio_features.backend` names such a set in a view of
the bundle (`view`) where that set replaces the native `audio_features.parquet` (symbolic links, no copy).

Storage (`compact`): bundles rewrite float columns with Parquet's byte-stream-split encoding and zstd, lossless
(the log-mel tables shrink to ~55%). `fp16=True` also rounds the feature column to float16 values, still
stored as float32 (the readers and schemas are unchanged; the dropped mantissa bits compress away); the
table's metadata then says so (`bundle_storage`). `compare` measures what the rounding changes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

FEATURES = "features"
TABLE = "audio_features.parquet"


def feature_path(root: Path, backend: str, ident: str) -> Path:
    """Where `backend`'s features of `ident` live under a workdir or bundle `root`."""
    return Path(root) / FEATURES / backend / ident / TABLE


def native_backend(root: Path, ident: str) -> str:
    """The backend of the DAG's own `data/processed/<ident>/audio_features.parquet` (its schema metadata)."""
    from emotag_core.io.tables import TableReader

    return str(TableReader(Path(root) / "data" / "processed" / ident / TABLE, "audio_features").meta["backend"])


def compute(workdir: Path, ids: list[str], backend: str, settings: dict[str, Any] | None = None) -> list[Path]:
    """`backend`'s features of each prepared identity's frames and wavs, as the audio_features stage writes them
    (the workdir params' `audio_features` section with `backend` and `settings` replaced). Skips up-to-date files
    (newer than the frame store). Returns the files."""
    from emotag_core.config import from_dict, load_params, to_dict
    from emotag_core.teachers.audio import write_features

    base = load_params(Path(workdir) / "params.yaml").audio_features
    cfg = from_dict(type(base), {**to_dict(base), **(settings or {}), "backend": backend}, "features")
    out = []
    for ident in ids:
        src = Path(workdir) / "data" / "processed" / ident
        dst = feature_path(workdir, backend, ident)
        frames = src / "frames.parquet"
        if not frames.exists():
            raise SystemExit(f"features: {frames} not found; prepare {ident} first (grmn_synth.py prepare --ids {ident})")
        if dst.exists() and dst.stat().st_mtime > frames.stat().st_mtime:
            out.append(dst)
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        n = write_features(frames, lambda clip, d=src: d / "audio" / f"{clip}.wav", dst, cfg)
        print(f"{backend} features of {ident}: {n} rows -> {dst}", flush=True)
        out.append(dst)
    return out


def compact(src: Path, dst: Path, fp16: bool = False, level: int = 9) -> None:
    """Rewrite a bench table losslessly smaller (float columns byte-stream-split + zstd, no dictionary), same
    schema, metadata and row groups of 1024; `fp16`: the `feature` column rounded to float16 values first."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(src)
    if fp16:
        i = table.schema.get_field_index("feature")
        col = table.column(i).combine_chunks()
        dim = col.type.list_size
        x = col.flatten().to_numpy().astype(np.float16).astype(np.float32)
        field = table.schema.field(i)
        table = table.set_column(i, field, pa.FixedSizeListArray.from_arrays(pa.array(x, pa.float32()), dim))
        meta = dict(table.schema.metadata or {})
        meta[b"emotag.bundle_storage"] = json.dumps("feature rounded to float16 (stored as float32)").encode()
        table = table.replace_schema_metadata(meta)
    floats = [c.path for c in pq.ParquetFile(src).schema if c.physical_type in ("FLOAT", "DOUBLE")]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    pq.write_table(table, tmp, row_group_size=1024, compression="zstd", compression_level=level,
                   use_dictionary=[c.path for c in pq.ParquetFile(src).schema if c.path not in floats],
                   use_byte_stream_split=floats or False)
    os.replace(tmp, dst)


def read_features(path: Path) -> np.ndarray:
    """The feature column of an audio_features table -> [rows, D] float32."""
    import pyarrow.parquet as pq

    col = pq.read_table(path, columns=["feature"]).column("feature").combine_chunks()
    return col.flatten().to_numpy().reshape(len(col), col.type.list_size).astype(np.float32)


def compare(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """How far features b [N, D] are from a [N, D]: max |diff|, RMS diff / RMS a, min and mean row cosine."""
    d = b.astype(np.float64) - a
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return {"max_abs": float(np.abs(d).max()), "rel_rms": float(np.sqrt((d ** 2).mean() / (a.astype(np.float64) ** 2).mean())),
            "min_cos": float(cos.min()), "mean_cos": float(cos.mean())}


def view(bundle: Path, backend: str, dest: Path) -> Path:
    """A folder that reads as `bundle` with `backend`'s feature set as every identity's audio_features.parquet
    (symbolic links into the bundle; `params.yaml` copied). The native backend returns `bundle` itself."""
    bundle = Path(bundle).resolve()
    ids = sorted(p.name for p in (bundle / "data" / "processed").iterdir() if p.is_dir())
    if not ids:
        raise SystemExit(f"{bundle}/data/processed holds no identities; make the bundle with grmn_synth.py bundle")
    if native_backend(bundle, ids[0]) == backend:
        return bundle
    missing = [i for i in ids if not feature_path(bundle, backend, i).exists()]
    if missing:
        raise SystemExit(f"{bundle}: no {backend} features of {missing[:3]}{' ...' if len(missing) > 3 else ''} "
                         f"(looked in {feature_path(bundle, backend, missing[0])}); make the bundle with "
                         f"`python bench/grmn_synth.py features --backend {backend}` then `bundle ... --features {backend}`")
    dest = Path(dest)
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "data" / "processed").mkdir(parents=True)
    shutil.copy(bundle / "params.yaml", dest / "params.yaml")
    for extra in ("bundle.json",):
        if (bundle / extra).exists():
            shutil.copy(bundle / extra, dest / extra)
    for entry in (bundle / "data").iterdir():
        if entry.name != "processed":
            (dest / "data" / entry.name).symlink_to(entry)
    for ident in ids:
        d = dest / "data" / "processed" / ident
        d.mkdir()
        for f in (bundle / "data" / "processed" / ident).iterdir():
            (d / f.name).symlink_to(feature_path(bundle, backend, ident) if f.name == TABLE else f)
    return dest


def run_backend(params: dict[str, Any]) -> str:
    """The `audio_features.backend` of a run's effective params (the bench default: logmel)."""
    return str((params.get("audio_features") or {}).get("backend", "logmel"))
