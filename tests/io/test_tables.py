import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emotag_core.errors import SchemaError
from emotag_core.io import tables
from emotag_core.io.tables import EMOTION_LABELS, read_table, write_table

META = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0",
        "labels": list(EMOTION_LABELS)}


def emotion_cols(n: int) -> dict:
    p = np.random.default_rng(0).dirichlet(np.ones(7), n).astype(np.float32)
    return {"clip_id": ["c"] * n, "frame": np.arange(n, dtype=np.int32), "face_found": [True] * n,
            "probs": p, "score": (1 - p[:, 6]).astype(np.float32)}


def test_round_trip_keeps_values_and_metadata(tmp_path):
    cols = emotion_cols(10)
    write_table(tmp_path / "e.parquet", "emotion", cols, META)
    t, meta = read_table(tmp_path / "e.parquet", "emotion")
    assert meta["labels"] == list(EMOTION_LABELS)
    assert meta["schema"] == "emotion" and meta["schema_version"] == tables.SCHEMA_VERSION
    np.testing.assert_allclose(tables.column_array(t, "probs"), cols["probs"])
    assert t.column("frame").to_pylist() == list(range(10))


def test_dynamic_width_from_metadata(tmp_path):
    feats = np.random.default_rng(1).normal(size=(5, 80)).astype(np.float32)
    meta = dict(META, feature_dim=80, sample_rate=16000, window=16)
    meta.pop("labels")
    write_table(tmp_path / "a.parquet", "audio_features",
                {"clip_id": ["c"] * 5, "frame": np.arange(5), "feature": feats}, meta)
    t, m = read_table(tmp_path / "a.parquet", "audio_features")
    assert tables.column_array(t, "feature").shape == (5, 80)
    with pytest.raises(SchemaError, match="width"):
        write_table(tmp_path / "b.parquet", "audio_features",
                    {"clip_id": ["c"] * 5, "frame": np.arange(5), "feature": feats[:, :10]}, meta)


def test_missing_metadata_refused_before_writing(tmp_path):
    with pytest.raises(SchemaError, match="labels"):
        write_table(tmp_path / "e.parquet", "emotion", emotion_cols(2), {k: v for k, v in META.items() if k != "labels"})
    assert list(tmp_path.iterdir()) == []


def test_nan_refused_and_nothing_left_behind(tmp_path):
    cols = emotion_cols(4)
    cols["score"][2] = np.nan
    with pytest.raises(SchemaError, match="score"):
        write_table(tmp_path / "e.parquet", "emotion", cols, META)
    assert list(tmp_path.iterdir()) == []


def test_missing_column_named(tmp_path):
    cols = emotion_cols(3)
    del cols["score"]
    with pytest.raises(SchemaError, match="score"):
        write_table(tmp_path / "e.parquet", "emotion", cols, META)


def _rewrite(path, fn):
    t = pq.read_table(path)
    t = fn(t)
    pq.write_table(t, path)


def test_reader_names_wrong_dtype(tmp_path):
    p = tmp_path / "e.parquet"
    write_table(p, "emotion", emotion_cols(3), META)
    _rewrite(p, lambda t: t.set_column(t.schema.get_field_index("score"), pa.field("score", pa.float64()),
                                       t.column("score").cast(pa.float64())).replace_schema_metadata(t.schema.metadata))
    with pytest.raises(SchemaError, match=r"e\.parquet: column `score` has type double"):
        read_table(p, "emotion")


def test_reader_rejects_foreign_schema_version_and_wrong_table(tmp_path):
    p = tmp_path / "e.parquet"
    write_table(p, "emotion", emotion_cols(3), META)
    meta = dict(pq.read_schema(p).metadata)
    meta[b"emotag.schema_version"] = b"99"
    _rewrite(p, lambda t: t.replace_schema_metadata(meta))
    with pytest.raises(SchemaError, match="schema version 99"):
        read_table(p, "emotion")
    write_table(p, "emotion", emotion_cols(3), META)
    with pytest.raises(SchemaError, match="expected `aus`"):
        read_table(p, "aus")


def test_reader_rejects_non_parquet_and_expect_mismatch(tmp_path):
    p = tmp_path / "x.parquet"
    p.write_bytes(b"not parquet at all")
    with pytest.raises(SchemaError, match="not a readable Parquet"):
        read_table(p, "emotion")
    write_table(p, "emotion", emotion_cols(3), META)
    with pytest.raises(SchemaError, match="fps"):
        read_table(p, "emotion", expect={"fps": 30.0})


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 40), clip=st.text(min_size=1, max_size=12),
       scores=st.lists(st.floats(0, 1, width=32), min_size=40, max_size=40))
def test_round_trip_property(tmp_path_factory, n, clip, scores):
    d = tmp_path_factory.mktemp("prop")
    cols = emotion_cols(n)
    cols["clip_id"] = [clip] * n
    cols["score"] = np.asarray(scores[:n], np.float32)
    write_table(d / "e.parquet", "emotion", cols, META)
    t, _ = read_table(d / "e.parquet", "emotion")
    assert t.num_rows == n
    assert t.column("clip_id").to_pylist() == [clip] * n
    np.testing.assert_array_equal(tables.column_array(t, "score"), cols["score"])


@settings(max_examples=30, deadline=None)
@given(junk=st.binary(min_size=0, max_size=300))
def test_reader_never_crashes_on_junk(tmp_path_factory, junk):
    p = tmp_path_factory.mktemp("junk") / "e.parquet"
    p.write_bytes(junk)
    with pytest.raises(SchemaError):
        read_table(p, "emotion")
