"""bench/grmn_synth_features.py and the bundle / device path of a second feature set: compact storage is lossless
(or exactly float16-rounded), a bundle carries both sets, a view swaps in the run's backend, and a device run
with `audio_features.backend=whisper` trains and is scored on those features."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "tests"))

import grmn_synth  # noqa: E402
import grmn_synth_features as gf  # noqa: E402
import sweep  # noqa: E402


def _second_set(workdir: Path, ident: str, backend: str = "whisper", dim: int = 24, seed: int = 0) -> np.ndarray:
    """A fake `backend` feature set of `ident` (other values and width, same rows and schema) under features/."""
    src = workdir / "data" / "processed" / ident / gf.TABLE
    t = pq.read_table(src)
    x = np.random.default_rng(seed).normal(size=(t.num_rows, dim)).astype(np.float32) * 3.0
    meta = {k: v for k, v in (t.schema.metadata or {}).items()}
    meta[b"emotag.backend"], meta[b"emotag.feature_dim"] = json.dumps(backend).encode(), str(dim).encode()
    col = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), dim)
    schema = pa.schema([f if f.name != "feature" else pa.field("feature", col.type, nullable=f.nullable)
                        for f in t.schema], metadata=meta)
    t = pa.table([t.column("clip_id"), t.column("frame"), col], schema=schema)
    dst = gf.feature_path(workdir, backend, ident)
    dst.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(t, dst)
    return x


@pytest.fixture()
def workdir(tmp_path):
    from metrics.synth_target import CORPUS, TARGET, make_workdir

    w = make_workdir(tmp_path / "w")
    feats = {i: _second_set(w, i, seed=k) for k, i in enumerate((CORPUS, TARGET))}
    return w, feats


def test_compact_is_lossless_or_exactly_fp16(workdir, tmp_path):
    from metrics.synth_target import TARGET

    from emotag_core.io.tables import TableReader

    w, _ = workdir
    src = w / "data" / "processed" / TARGET / gf.TABLE
    x = gf.read_features(src)
    gf.compact(src, tmp_path / "a.parquet")
    gf.compact(src, tmp_path / "b.parquet", fp16=True)
    assert np.array_equal(gf.read_features(tmp_path / "a.parquet"), x)
    y = gf.read_features(tmp_path / "b.parquet")
    assert np.array_equal(y, x.astype(np.float16).astype(np.float32)) and not np.array_equal(y, x)
    a, b = TableReader(tmp_path / "a.parquet", "audio_features"), TableReader(tmp_path / "b.parquet", "audio_features")
    assert a.meta == TableReader(src, "audio_features").meta and "bundle_storage" not in a.meta
    assert "float16" in b.meta["bundle_storage"] and b.meta["backend"] == a.meta["backend"]
    assert pq.read_table(tmp_path / "a.parquet").equals(pq.read_table(src))
    d = gf.compare(x, y)
    assert 0 < d["max_abs"] < 1e-2 and d["rel_rms"] < 1e-3 and d["min_cos"] > 0.9999


def test_bundle_carries_both_sets_and_a_view_swaps_them(workdir, tmp_path):
    from metrics.synth_target import CORPUS, TARGET

    from emotag_core.train.data import build_identity_index
    from emotag_core.train.recipe import identity_tables

    w, feats = workdir
    b = tmp_path / "bundle"
    sizes = grmn_synth.make_bundle(w, b, [CORPUS, TARGET], features=["whisper"], fp16=["whisper"])
    assert set(sizes) == {"native", "whisper", "other"} and min(sizes.values()) > 0
    info = json.loads((b / "bundle.json").read_text())
    assert info["features"] == ["whisper"] and info["fp16"] == ["whisper"] and info["ids"] == [CORPUS, TARGET]
    native = gf.read_features(w / "data" / "processed" / TARGET / gf.TABLE)
    assert np.array_equal(gf.read_features(b / "data" / "processed" / TARGET / gf.TABLE), native)  # lossless
    assert gf.native_backend(b, TARGET) == "bench"  # bench_train.write_identity's tables
    assert gf.view(b, "bench", tmp_path / "v_native") == b.resolve()  # the native set: the bundle itself
    v = gf.view(b, "whisper", tmp_path / "v_whisper")
    ix = build_identity_index(TARGET, identity_tables(v / "data" / "processed" / TARGET))
    assert ix.meta["audio_backend"] == "whisper" and ix.meta["feature_dim"] == 24
    got = gf.read_features(v / "data" / "processed" / TARGET / gf.TABLE)
    assert np.array_equal(got, feats[TARGET].astype(np.float16).astype(np.float32))
    assert (v / "params.yaml").read_text() == (b / "params.yaml").read_text()
    assert (v / "data" / "synthetic" / TARGET / "truth").is_dir()
    with pytest.raises(SystemExit, match="no wav2vec2 features"):
        gf.view(b, "wav2vec2", tmp_path / "v_w2v")


def test_device_runs_pick_the_feature_set_of_their_backend(workdir, tmp_path, one_torch_thread):
    from metrics.synth_target import CORPUS, TARGET

    w, _ = workdir
    b = tmp_path / "bundle"
    grmn_synth.make_bundle(w, b, [CORPUS, TARGET], features=["whisper"], fp16=["native", "whisper"])
    runs = [sweep.Run("L_s0", "L", 0, ["pretrain.iters=2", "audio_features.backend=bench", "pretrain.seed=0"]),
            sweep.Run("W_s0", "W", 0, ["pretrain.iters=2", "audio_features.backend=whisper", "pretrain.seed=0"])]
    dirs = sweep.run_dirs(b, runs, tmp_path / "views")
    assert dirs["L_s0"] == b.resolve() and dirs["W_s0"] == tmp_path / "views" / "whisper"
    cwd = os.getcwd()
    try:
        for r in runs:
            os.chdir(dirs[r.name])
            sweep.run_one(r, tmp_path / "out", "cpu", models_dir=tmp_path / "models" / r.name)
    finally:
        os.chdir(cwd)
    import torch

    # the whisper run's network reads 24-d features, the log-mel one the native width
    dims = {r.name: torch.load(tmp_path / "models" / r.name / "pretrain" / "grmn.pt", weights_only=False)
            ["extra"]["feature_dim"] for r in runs}
    native_dim = json.loads(pq.read_schema(w / "data" / "processed" / TARGET / gf.TABLE).metadata[b"emotag.feature_dim"])
    assert dims == {"L_s0": native_dim, "W_s0": 24}
    rows = sweep.table(sweep.device_rows(tmp_path / "out"), ("test.jaw_r", "test.energy_r")).splitlines()
    assert "audio_features.backend" in rows[0] and "| W_s0 | t_syn | whisper |" in rows[3]
    assert yaml.safe_load((tmp_path / "out" / "W_s0" / "params.yaml").read_text())["audio_features"]["backend"] == "whisper"
