"""emotag_core.split: one split, checked against the three codings it replaces (same rows selected)."""
from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from emotag_core.errors import InputError
from emotag_core.split import Segment, Split, last_clip

# ---- the old codings, as they were written before the Split (stages/render.py, stages/evaluate.py,
# emotag_core/train/data.py CorpusLoader(max_seconds=...), bench/grmn_synth.py evaluate_model(from_s=...))


def old_heldout_start(train_seconds: float, eval_from_s: float, fps: float, n_frames: int | None) -> int | None:
    h0 = int(round(eval_from_s * fps))
    if n_frames is None or n_frames > h0:
        return h0
    train_end = int(round(train_seconds * fps))
    return train_end if n_frames > train_end else None


def old_evaluate_rows(clip_ids: np.ndarray, frames: np.ndarray, clip: str, h0: int | None) -> np.ndarray:
    in_clip = clip_ids == clip
    rows = np.nonzero(in_clip & (frames >= (h0 if h0 is not None else 1 << 62)))[0]
    return rows[np.argsort(frames[rows])]


def old_loader_pool(usable: np.ndarray, max_seconds: float, fps: float) -> np.ndarray:
    ok = usable.copy()
    n_keep = int(round(max_seconds * fps))
    return np.nonzero(ok & (np.arange(len(ok)) < n_keep))[0]


def old_synth_rows(clips: list[str], usable: np.ndarray, t_all: np.ndarray, clip: str, from_s: float) -> np.ndarray:
    return np.array([i for i, c in enumerate(clips) if c == clip and usable[i] and t_all[i] >= from_s], dtype=np.int64)


def table(lengths: dict[str, int], shuffle_seed: int | None = None) -> dict[str, np.ndarray]:
    clip_ids = np.concatenate([[c] * n for c, n in lengths.items()]).astype(str)
    frames = np.concatenate([np.arange(n) for n in lengths.values()]).astype(np.int64)
    if shuffle_seed is not None:  # rows of a clip out of frame order (the Split must sort them)
        rng = np.random.default_rng(shuffle_seed)
        for c in lengths:
            i = np.nonzero(clip_ids == c)[0]
            frames[i] = rng.permutation(frames[i])
    return {"clip_id": clip_ids, "frame": frames}


def cfg(train_seconds: float = 5.0, eval_from_s: float = 10.0, max_frames: int | None = None):
    return SimpleNamespace(train_seconds=train_seconds, eval_from_s=eval_from_s), SimpleNamespace(max_frames=max_frames)


@pytest.mark.parametrize("n,train_s,from_s", list(itertools.product(
    [1, 100, 124, 125, 126, 200, 249, 250, 251, 400], [0.5, 5.0, 5.02, 7.3], [5.0, 10.0, 10.04, 12.5])))
def test_heldout_matches_render_and_evaluate(n: int, train_s: float, from_s: float) -> None:
    clips = table({"a": n, "b": 60}, shuffle_seed=n)
    a, e = cfg(train_s, from_s)
    s = Split.from_config(a, e, clips, fps=25.0)
    h0 = old_heldout_start(train_s, from_s, 25.0, n)
    assert s.heldout_start == h0
    assert s.adapt_clip == "a" and s.adapt_clip_frames == n
    want = old_evaluate_rows(clips["clip_id"], clips["frame"], "a", h0)
    np.testing.assert_array_equal(s.heldout_rows(clips), want)
    assert s.adapt_segment == Segment("a", 0, int(round(train_s * 25.0)))  # render's cue range
    assert s.shortened == (h0 is not None and h0 < int(round(from_s * 25)))


@pytest.mark.parametrize("train_s", [0.5, 4.96, 5.0, 5.02, 9.0])
def test_adapt_rows_match_the_loaders_time_limit(train_s: float) -> None:
    clips = table({"a": 180, "b": 90})
    usable = np.random.default_rng(1).random(270) > 0.2
    s = Split.from_config(*cfg(train_s), clips, fps=25.0)
    np.testing.assert_array_equal(np.nonzero(usable & s.adapt_mask(270))[0], old_loader_pool(usable, train_s, 25.0))


def test_synthetic_protocol_matches_grmn_synth() -> None:
    fps = 25.0
    clips = table({"clip000": 300, "clip001": 210})
    t = clips["frame"] / fps
    usable = np.random.default_rng(2).random(510) > 0.1
    test_clip = last_clip(clips)
    assert test_clip == "clip001"
    s = Split.from_config(*cfg(5.0), clips, fps=fps, heldout_clip=test_clip)
    names = clips["clip_id"].tolist()
    np.testing.assert_array_equal(s.heldout_rows(clips, usable), old_synth_rows(names, usable, t, "clip001", 0.0))
    assert s.validation == Segment("clip000", 125)
    np.testing.assert_array_equal(s.validation.rows(clips, usable), old_synth_rows(names, usable, t, "clip000", 5.0))


def test_limit_and_nothing_held_out() -> None:
    clips = table({"a": 400})
    s = Split.from_config(*cfg(5.0, 10.0, max_frames=7), clips, fps=25.0)
    np.testing.assert_array_equal(s.heldout_rows(clips, limited=True), np.arange(250, 257))
    assert len(s.heldout_rows(clips)) == 150
    assert s.validation == Segment("a", 125, 250)
    short = Split.from_config(*cfg(5.0, 10.0), table({"a": 100}), fps=25.0)
    assert short.heldout is None and len(short.heldout_rows(table({"a": 100}))) == 0
    assert "nothing held out" in short.describe()


def test_bad_inputs() -> None:
    with pytest.raises(InputError, match="held-out clip `zz`"):
        Split.from_config(*cfg(), table({"a": 10}), fps=25.0, heldout_clip="zz")
    with pytest.raises(InputError, match="no frames"):
        Split.from_config(*cfg(), {"clip_id": np.zeros(0, str), "frame": np.zeros(0, int)}, fps=25.0)


def test_sample_frame_store_matches_old_codings() -> None:
    """On the real sample identity's frame store, when it has been ingested (data/processed/sample)."""
    path = Path("data/processed/sample/frames.parquet")
    if not path.exists():
        pytest.skip("data/processed/sample/frames.parquet absent (run `dvc repro ingest@sample`)")
    from emotag_core.config import load_params
    from emotag_core.io.frames import FrameStore

    p = load_params()
    store = FrameStore(path)
    keys = store.keys
    c = keys.column("clip_id").to_numpy(zero_copy_only=False).astype(str)
    f = keys.column("frame").to_numpy()
    clip = store.clip_ids[0]
    s = Split.from_config(p.adapt, p.evaluate, keys, fps=p.ingest.fps)
    h0 = old_heldout_start(p.adapt.train_seconds, p.adapt.eval_from_s, p.ingest.fps, int((c == clip).sum()))
    assert s.adapt_clip == clip and s.heldout_start == h0
    np.testing.assert_array_equal(s.heldout_rows(keys), old_evaluate_rows(c, f, clip, h0))
