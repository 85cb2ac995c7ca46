"""pretrain.score_target: L_Score's target e (Eq. 13) from the emotion teacher (Eq. 9) or the upper-face AU table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.errors import ConfigError
from emotag_core.io.tables import OPENFACE_AUS, TableReader, column_array, write_table
from emotag_core.train.au_score import SCORE_AUS, au_intensity_score
from emotag_core.train.data import CorpusLoader, build_identity_index
from train.toydata import SIZE, _common, write_identity

torch.set_num_threads(1)
CLIPS = (30, 20)


def _hand_aus(paths, au01: np.ndarray, au45: np.ndarray | None = None) -> None:
    """Replace the identity's AU table: every AU at a resting 0.5 except AU01 (and AU45 if given)."""
    n = len(au01)
    cid = [f"c{i}" for i, m in enumerate(CLIPS) for _ in range(m)]
    fr = np.concatenate([np.arange(m) for m in CLIPS]).astype(np.int32)
    cols = {a: np.full(n, 0.5, np.float32) for a in OPENFACE_AUS}
    cols["AU01"] = au01.astype(np.float32)
    if au45 is not None:
        cols["AU45"] = au45.astype(np.float32)
    write_table(paths["aus"], "aus", {"clip_id": cid, "frame": fr, "face_found": np.ones(n, bool), **cols},
                {**_common(), "aus": list(OPENFACE_AUS), "available_aus": list(OPENFACE_AUS), "scale": "0-5"})


def test_au_score_is_monotone_in_activation_and_in_unit_range():
    rng = np.random.default_rng(0)
    act = rng.permutation(np.linspace(0.0, 4.0, 40))  # AU01 ramp, shuffled in time
    x = np.tile([0.3, 0.2, 0.1, 0.4, 0.2], (40, 1)).astype(np.float64)
    assert SCORE_AUS[0] == "AU01" and "AU45" not in SCORE_AUS and len(SCORE_AUS) == x.shape[1]
    x[:, 0] = 0.3 + act
    e = au_intensity_score(x)
    assert e.shape == (40,) and e.min() >= 0.0 and e.max() <= 1.0
    order = np.argsort(act)
    assert np.all(np.diff(e[order]) >= 0) and e[order][-1] == 1.0 and e[order][0] == 0.0
    assert np.corrcoef(e, act)[0, 1] > 0.99
    # a second AU adds to the score; a NaN frame scores 0 and does not shift the others
    x2 = x.copy()
    x2[5, 1] += 3.0
    assert au_intensity_score(x2)[5] >= e[5]
    x3 = np.vstack([x, np.full((1, 5), np.nan)])
    e3 = au_intensity_score(x3)
    assert e3[-1] == 0.0 and np.allclose(e3[:-1], e)
    assert np.all(au_intensity_score(np.ones((10, 5))) == 0.0)  # no activation above neutral
    with pytest.raises(ValueError):
        au_intensity_score(np.zeros((0, 5)))


def test_loader_aus_target_follows_the_au_table_per_clip(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0, clips=CLIPS)
    rng = np.random.default_rng(1)
    au01 = np.concatenate([rng.permutation(np.linspace(0, 4, CLIPS[0])), 2 * rng.permutation(np.linspace(0, 4, CLIPS[1]))])
    au45 = rng.uniform(0, 5, len(au01))  # blinks: must not move the score
    _hand_aus(paths, au01, au45)
    ix = build_identity_index("a", paths)
    loader = CorpusLoader([ix], 4, SIZE, with_images=False, score_target="aus")
    for (lo, hi) in ((0, 30), (30, 50)):
        rows = np.arange(lo, hi)
        e = loader.load("a", rows).e.double().numpy()
        a = au01[lo:hi]
        assert e.min() >= 0 and e.max() <= 1 and np.isclose(e.max(), 1.0, atol=1e-6)
        order = np.argsort(a)
        assert np.all(np.diff(e[order]) >= -1e-7)  # monotone in AU01 activation, whatever AU45 does
        x = np.tile([0.5] * len(SCORE_AUS), (hi - lo, 1))
        x[:, 0] = a
        np.testing.assert_allclose(e, au_intensity_score(x), atol=1e-6)
    # per clip: clip 1's AU01 is twice clip 0's range, yet both span [0, 1] (a fixed per-clip rule)
    # batches mixing clips and unsorted rows get each frame's own value
    mixed = np.array([45, 2, 31, 17])
    full = np.concatenate([loader.load("a", np.arange(0, 30)).e.numpy(), loader.load("a", np.arange(30, 50)).e.numpy()])
    np.testing.assert_array_equal(loader.load("a", mixed).e.numpy(), full[mixed])
    # a time-limited loader (adaptation) takes the neutral level and scale from what it may see only
    ad = CorpusLoader([ix], 4, SIZE, with_images=False, score_target="aus", max_seconds=0.4)  # frames 0..9
    x = np.tile([0.5] * len(SCORE_AUS), (10, 1))
    x[:, 0] = au01[:10]
    np.testing.assert_allclose(ad.load("a", np.arange(10)).e.double().numpy(), au_intensity_score(x), atol=1e-6)
    # the preloaded pool (CUDA adaptation path) gathers the same values
    ad.preload("cpu")
    b = ad.next_batch()
    np.testing.assert_array_equal(b.e.numpy(), ad.load("a", b.rows).e.numpy())


def test_teacher_target_is_the_emotion_score_bit_for_bit(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0, clips=CLIPS)
    ix = build_identity_index("a", paths)
    want = column_array(TableReader(paths["emotion"], "emotion").read(columns=["score"]), "score").astype(np.float32)
    default = CorpusLoader([ix], 8, SIZE, with_images=False, seed=3)
    teacher = CorpusLoader([ix], 8, SIZE, with_images=False, seed=3, score_target="teacher")
    aus = CorpusLoader([ix], 8, SIZE, with_images=False, seed=3, score_target="aus")
    for _ in range(3):
        b0, b1, b2 = default.next_batch(), teacher.next_batch(), aus.next_batch()
        np.testing.assert_array_equal(b0.rows, b1.rows)
        for k in ("audio", "aus", "s", "p_emo", "e", "expr", "jaw", "rot", "trans"):
            assert torch.equal(getattr(b0, k), getattr(b1, k)), k
            if k != "e":  # the aus target changes e only
                assert torch.equal(getattr(b0, k), getattr(b2, k)), k
        # toy table: one emotion row per index row, same order
        np.testing.assert_array_equal(b0.e.numpy(), want[ix.index.column("row_emotion").to_numpy()[b0.rows]])
        assert not torch.equal(b0.e, b2.e)


def test_score_target_param_default_and_bad_value(tmp_path):
    from emotag_core.config import Params

    assert Params().pretrain.score_target == "teacher"  # the paper (Eq. 9), both profiles
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0))
    with pytest.raises(ConfigError, match="score_target"):
        CorpusLoader([ix], 2, SIZE, with_images=False, score_target="au")
