"""Property-based tests: the Parquet schema readers and the dataset adapters either accept an
input or raise the project's named error naming the file, whatever the metadata, columns, bytes
or manifest/annotation text; they never crash with a foreign exception."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotag_core.datasets import hdtf, read_manifest, sanitize
from emotag_core.errors import InputError, SchemaError
from emotag_core.io import tables
from emotag_core.io.tables import EMOTION_LABELS, TableReader, read_table, write_table

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
META = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0", "labels": list(EMOTION_LABELS)}


@pytest.fixture(scope="module")
def good_table(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("tbl") / "emotion.parquet"
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), 12).astype(np.float32)
    write_table(p, "emotion", {"clip_id": ["c"] * 12, "frame": np.arange(12, dtype=np.int32),
                               "face_found": [True] * 12, "probs": probs, "score": 1 - probs[:, 6]}, META)
    return p


json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                           | st.text(max_size=8), lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=4), c, max_size=3),
                           max_leaves=8)
meta_keys = st.sampled_from(["schema", "schema_version", "fps", "frame_size", "backend", "backend_version", "labels", "other"])
raw_value = st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=12))


def _read_or_named_error(path: Path, name: str) -> bool:
    """True if the table reads; SchemaError naming the file is the only allowed failure."""
    try:
        t, _ = read_table(path, name)
    except SchemaError as exc:
        assert path.name in str(exc), str(exc)
        return False
    assert t.num_rows == 12
    return True


@SETTINGS
@given(edits=st.dictionaries(meta_keys, raw_value, min_size=1, max_size=4), drop=st.lists(meta_keys, max_size=3))
def test_fuzzed_metadata_is_read_or_named(good_table, tmp_path, edits, drop):
    t = pq.read_table(good_table)
    md = dict(t.schema.metadata)
    for k in drop:
        md.pop(f"emotag.{k}".encode(), None)
    for k, v in edits.items():
        md[f"emotag.{k}".encode()] = v
    p = tmp_path / "fuzz.parquet"
    pq.write_table(t.replace_schema_metadata(md), p)
    ok = _read_or_named_error(p, "emotion")
    meta = tables.decode_meta({k: v for k, v in md.items() if k.startswith(b"emotag.")}) if ok else None
    if ok:  # accepted metadata satisfies the contract the reader promises
        assert meta["schema"] == "emotion" and meta["schema_version"] == tables.SCHEMA_VERSION
        assert all(k in meta for k in tables.SPECS["emotion"].required_meta)


column_edit = st.sampled_from(["drop", "to_float64", "to_string", "to_int64", "nan", "rename"])


@SETTINGS
@given(col=st.sampled_from(["clip_id", "frame", "face_found", "probs", "score"]), edit=column_edit)
def test_fuzzed_columns_are_refused_by_name(good_table, tmp_path, col, edit):
    t = pq.read_table(good_table)
    md = t.schema.metadata
    i = t.schema.get_field_index(col)
    c = t.column(i)
    if edit == "drop":
        t = t.remove_column(i)
    elif edit == "rename":
        t = t.rename_columns([n if n != col else col + "_x" for n in t.column_names])
    elif edit == "nan":
        if not (pa.types.is_floating(c.type) or pa.types.is_fixed_size_list(c.type)):
            return
        vals = c.to_pylist()
        vals[5] = [float("nan")] * len(vals[5]) if isinstance(vals[5], list) else float("nan")
        t = t.set_column(i, t.schema.field(i), pa.array(vals, type=c.type))
    else:
        target = {"to_float64": pa.float64(), "to_string": pa.string(), "to_int64": pa.int64()}[edit]
        if c.type == target:
            return
        try:
            t = t.set_column(i, pa.field(col, target), c.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return  # not representable: nothing to test
    p = tmp_path / "cols.parquet"
    pq.write_table(t.replace_schema_metadata(md), p)
    with pytest.raises(SchemaError) as e:
        read_table(p, "emotion")
    assert "cols.parquet" in str(e.value) and (col in str(e.value) or "NaN" in str(e.value))
    # the streaming reader refuses it too (stages read in batches)
    with pytest.raises(SchemaError):
        for _ in TableReader(p, "emotion").iter_batches(4):
            pass


@SETTINGS
@given(cut=st.floats(0.0, 0.98), junk=st.binary(max_size=64))
def test_truncated_or_garbage_bytes_are_named(good_table, tmp_path, cut, junk):
    data = good_table.read_bytes()
    p = tmp_path / "cut.parquet"
    p.write_bytes(data[: int(len(data) * cut)] + junk)
    with pytest.raises(SchemaError, match="cut.parquet"):
        read_table(p, "emotion")


# --- dataset adapters ---------------------------------------------------------------------------

clip_obj = st.fixed_dictionaries({}, optional={
    "clip_id": st.text(max_size=6) | st.integers(), "source": st.text(max_size=10) | st.none() | st.integers(),
    "start": st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=50) | st.none() | st.text(max_size=3),
    "end": st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=50) | st.none(),
    "split": st.sampled_from(["train", "test"]), "labels": st.dictionaries(st.text(max_size=3), json_values, max_size=2),
    "bogus": json_values})
manifest_doc = st.one_of(json_values, st.fixed_dictionaries({"clips": st.lists(clip_obj, max_size=3) | json_values}))


@SETTINGS
@given(doc=manifest_doc, raw=st.booleans(), junk=st.text(max_size=20))
def test_fuzzed_manifest_is_read_or_named(tmp_path, doc, raw, junk):
    d = tmp_path / "m"
    d.mkdir(exist_ok=True)
    (d / "clips.json").write_text(junk if raw else json.dumps(doc), encoding="utf-8")
    try:
        clips = read_manifest(d)
    except InputError as exc:
        assert "clips.json" in str(exc)
        return
    assert isinstance(clips, list)
    for c in clips:  # accepted clips are usable: a path and an ordered time range
        assert isinstance(c.source, str) and Path(c.source).is_absolute()
        if isinstance(c.start, (int, float)) and isinstance(c.end, (int, float)):
            assert c.end > c.start


line = st.one_of(
    st.tuples(st.from_regex(r"[A-Za-z_]{1,8}", fullmatch=True),
              st.lists(st.tuples(st.integers(0, 99), st.integers(0, 59), st.integers(0, 99), st.integers(0, 59)),
                       max_size=3)).map(lambda t: t[0] + " " + " ".join(f"{a:02d}:{b:02d}-{c:02d}:{d:02d}" for a, b, c, d in t[1])),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24))


@SETTINGS
@given(lines=st.lists(line, max_size=6))
def test_fuzzed_hdtf_annotation_is_parsed_or_named(tmp_path, lines):
    p = tmp_path / "RD_annotion_time.txt"
    p.write_text("\n".join(lines), encoding="utf-8")
    try:
        out = hdtf.parse_annotation(p)
    except InputError as exc:
        assert "RD_annotion_time.txt" in str(exc) and re.search(r"line \d+", str(exc))
        return
    for name, spans in out.items():
        assert name and spans and all(b > a >= 0 for a, b in spans)


@settings(max_examples=200, deadline=None)
@given(name=st.text(max_size=30))
def test_sanitize_gives_a_valid_id(name):
    s = sanitize(name)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", s) or s == "clip", s
