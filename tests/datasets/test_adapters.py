import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotag_core.datasets import generic, hdtf, mead, read_manifest, write_manifest
from emotag_core.errors import InputError


def touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(b"\x00")
    return p


def mead_tree(root: Path, actors=("M003", "W009"), emotions=("happy", "sad", "neutral"), levels=(1, 2, 3), n=3):
    for a in actors:
        for e in emotions:
            for lv in (levels if e != "neutral" else (1,)):
                for k in range(1, n + 1):
                    touch(root / a / "video" / "front" / e / f"level_{lv}" / f"{k:03d}.mp4")
                    touch(root / a / "video" / "left_30" / e / f"level_{lv}" / f"{k:03d}.mp4")
                    touch(root / a / "audio" / e / f"level_{lv}" / f"{k:03d}.m4a")
    return root


def test_mead_front_view_labels_and_split(tmp_path):
    ids = mead.scan(mead_tree(tmp_path))
    assert [i.id for i in ids] == ["mead_M003", "mead_W009"]
    clips = ids[0].clips
    assert len(clips) == (2 * 3 + 1) * 3  # happy, sad at 3 levels + neutral at 1, 3 sentences each
    c = next(c for c in clips if c.clip_id == "sad_l2_002")
    assert c.labels == {"emotion": "sad", "level": 2, "sentence": "002", "view": "front"}
    assert "/front/" in c.source and c.audio.endswith("audio/sad/level_2/002.m4a")
    tests = [c for c in clips if c.split == "test"]
    assert {c.labels["sentence"] for c in tests} == {"003"}
    assert all("surprised" != c.labels["emotion"] for c in clips)


def test_mead_emotion_names_map_to_deepface_labels_and_filter(tmp_path):
    mead_tree(tmp_path, actors=("M005",), emotions=("surprised", "disgusted", "angry"), n=1)
    ids = mead.scan(tmp_path, emotions=("surprised", "angry"))
    assert {c.labels["emotion"] for c in ids[0].clips} == {"surprise", "angry"}


def test_mead_bad_layouts_named(tmp_path):
    touch(tmp_path / "M003" / "video" / "front" / "happyish" / "level_1" / "001.mp4")
    with pytest.raises(InputError, match="happyish"):
        mead.scan(tmp_path)
    with pytest.raises(InputError, match="no MEAD actor"):
        mead.scan(tmp_path / "M003" / "video")


ANNOT = "Radio11.mp4 00:30-01:00 01:30-02:30\nMissing.mp4 00:01-00:09\n"


def test_hdtf_clip_ranges_and_names(tmp_path):
    (tmp_path / "HDTF_dataset").mkdir()
    (tmp_path / "HDTF_dataset" / "RD_annotion_time.txt").write_text(ANNOT)
    touch(tmp_path / "videos" / "Radio11.mp4")
    ids = hdtf.scan(tmp_path / "HDTF_dataset", tmp_path / "videos")
    assert [i.id for i in ids] == ["hdtf_RD_Radio11"]
    assert [(c.clip_id, c.start, c.end) for c in ids[0].clips] == [("Radio11_0", 30.0, 60.0), ("Radio11_1", 90.0, 150.0)]
    held = hdtf.scan(tmp_path / "HDTF_dataset", tmp_path / "videos", test_seconds=10)[0].clips
    assert held[-1].split == "test" and (held[-1].start, held[-1].end) == (140.0, 150.0) and held[1].end == 140.0


@pytest.mark.parametrize("line,err", [("A.mp4 1:0-2:00", "bad time range"), ("A.mp4 02:00-01:00", "ends before"),
                                      ("A.mp4", "no time range")])
def test_hdtf_bad_annotation_lines(tmp_path, line, err):
    f = tmp_path / "WDA_annotion_time.txt"
    f.write_text(line + "\n")
    with pytest.raises(InputError, match=err):
        hdtf.parse_annotation(f)


def test_generic_layout_and_manifest_round_trip(tmp_path):
    touch(tmp_path / "ppl" / "anna" / "a b.MOV")
    touch(tmp_path / "ppl" / "anna" / "notes.txt")
    touch(tmp_path / "ppl" / "bo" / "x.webm")
    ids = generic.scan(tmp_path / "ppl")
    assert [(i.id, [c.clip_id for c in i.clips]) for i in ids] == [("anna", ["a_b"]), ("bo", ["x"])]
    write_manifest(ids[0], tmp_path / "raw" / "anna")
    back = read_manifest(tmp_path / "raw" / "anna")
    assert [c.source for c in back] == [c.source for c in ids[0].clips]
    doc = json.loads((tmp_path / "raw" / "anna" / "clips.json").read_text())
    assert doc["dataset"] == "generic"


def test_manifest_errors_name_the_file(tmp_path):
    (tmp_path / "clips.json").write_text("{not json")
    with pytest.raises(InputError, match="clips.json"):
        read_manifest(tmp_path)
    (tmp_path / "clips.json").write_text(json.dumps({"clips": [{"clip_id": "a", "source": "a.mp4", "start": 5, "end": 2}]}))
    with pytest.raises(InputError, match="end 2 is not after start 5"):
        read_manifest(tmp_path)


name_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), min_size=1, max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actor=name_st, sentences=st.lists(st.integers(0, 999), min_size=1, max_size=5, unique=True),
       level=st.integers(1, 3))
def test_mead_adapter_property(tmp_path_factory, actor, sentences, level):
    root = tmp_path_factory.mktemp("mead")
    if actor in (".", ".."):
        return
    for s in sentences:
        touch(root / actor / "video" / "front" / "happy" / f"level_{level}" / f"{s:03d}.mp4")
    ids = mead.scan(root)
    assert len(ids) == 1
    clips = ids[0].clips
    assert len(clips) == len(sentences)
    assert len({c.clip_id for c in clips}) == len(clips)  # ids unique
    assert sum(c.split == "test" for c in clips) == 1
    assert all(c.labels["level"] == level for c in clips)
    import re

    assert re.fullmatch(r"[A-Za-z0-9_.-]+", ids[0].id)


@settings(max_examples=60, deadline=None)
@given(spans=st.lists(st.tuples(st.integers(0, 5000), st.integers(1, 600)), min_size=1, max_size=6))
def test_hdtf_parse_property(tmp_path_factory, spans):
    f = tmp_path_factory.mktemp("h") / "RD_annotion_time.txt"
    text = " ".join(f"{a // 60:02d}:{a % 60:02d}-{(a + d) // 60:02d}:{(a + d) % 60:02d}" for a, d in spans)
    f.write_text(f"V.mp4 {text}\n")
    got = hdtf.parse_annotation(f)["V.mp4"]
    assert got == [(float(a), float(a + d)) for a, d in spans]


@pytest.mark.parametrize("field,value,match", [
    ("source", None, r"clip 0 \(`a`\): `source` must be a file path"),
    ("start", "1s", r"`start` must be seconds"),
    ("clip_id", 7, r"`clip_id` must be a non-empty string"),
    ("split", "val", r"`split` must be `train` or `test`"),
])
def test_manifest_field_of_the_wrong_type_is_named(tmp_path, field, value, match):
    clip = {"clip_id": "a", "source": "a.mp4", field: value}  # a hand-edited manifest (null source crashed before)
    (tmp_path / "clips.json").write_text(json.dumps({"clips": [clip]}))
    with pytest.raises(InputError, match=match) as exc:
        read_manifest(tmp_path)
    assert "clips.json" in str(exc.value)
