"""The corpus index and the lazy multi-identity loader."""
from __future__ import annotations

import numpy as np
import pytest

from emotag_core.errors import SchemaError
from emotag_core.io.tables import UPPER_AUS, column_array, read_table
from emotag_core.train.data import CorpusLoader, build_identity_index, check_compatible
from train.toydata import AUDIO_DIM, N_EXPR, write_identity


def test_index_and_batches_match_tables(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0)
    ix = build_identity_index("a", paths)
    assert ix.meta["feature_dim"] == AUDIO_DIM and ix.meta["n_expr"] == N_EXPR
    usable = ix.index.column("usable").to_numpy()
    assert not usable[3] and usable.sum() == 49  # frame 3 has an invalid track
    loader = CorpusLoader([ix], batch_size=4, image_size=8, seed=1, cache_row_groups=3)
    b = loader.next_batch()
    assert b.image.shape == (4, 3, 8, 8) and b.audio.shape == (4, 16, AUDIO_DIM) and b.aus.shape == (4, 16, 6)
    assert 3 not in b.rows.tolist()
    feat, _ = read_table(paths["audio_features"], "audio_features")
    f = column_array(feat, "feature")
    aus, _ = read_table(paths["aus"], "aus")
    # window around each frame, clamped inside its own clip (clip c1 starts at row 30)
    for k, r in enumerate(b.rows):
        clip0, n = (0, 30) if r < 30 else (30, 20)
        want = np.clip(r - clip0 + np.arange(-8, 8), 0, n - 1) + clip0
        np.testing.assert_allclose(b.audio[k].numpy(), f[want])
        np.testing.assert_allclose(b.aus[k, :, 1].numpy(), column_array(aus, UPPER_AUS[1])[want])
    assert len(loader.cache) <= 3  # bounded, whatever the table sizes


def test_loader_state_resumes_the_same_draws(tmp_path):
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    check_compatible(ixs)
    l1 = CorpusLoader(ixs, 2, 8, seed=5)
    [l1.sample() for _ in range(3)]
    st = l1.state_dict()
    want = [l1.sample() for _ in range(4)]
    l2 = CorpusLoader(ixs, 2, 8, seed=99)
    l2.load_state_dict(st)
    got = [l2.sample() for _ in range(4)]
    assert [(i, r.tolist()) for i, r in want] == [(i, r.tolist()) for i, r in got]
    assert {i for i, _ in want + [l1.sample() for _ in range(20)]} == {"a", "b"}


def test_time_limit_and_geometry(tmp_path):
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0, geometry=True))
    loader = CorpusLoader([ix], 4, 8, seed=0, with_geometry=True, max_seconds=0.4)  # first 10 frames
    for _ in range(5):
        b = loader.next_batch()
        assert b.rows.max() < 10
    assert b.depth.shape == (4, 8, 8) and b.normal.shape == (4, 8, 8, 3)
    assert float(b.depth[0, 0, 0]) == 0.0 and abs(float(b.depth[0, 5, 5]) - 0.6) < 1e-3


def test_mismatched_tables_are_named(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0)
    other = write_identity(tmp_path, "b", seed=0, clips=(30, 21))
    paths["aus"] = other["aus"]
    with pytest.raises(SchemaError, match="aus.parquet"):
        build_identity_index("a", paths)
