"""Speaker robustness of GRMN's audio input: per-clip CMVN (pretrain.clip_norm) and log-mel augmentation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.errors import ConfigError
from emotag_core.io.tables import TableReader, column_array
from emotag_core.train.audio_aug import AudioAugment, RunningCMVN, clip_cmvn_stats
from emotag_core.train.data import CorpusLoader, build_identity_index
from train.toydata import AUDIO_DIM, SIZE, write_identity

torch.set_num_threads(1)


def _raw(paths):  # every audio row and its clip -> [N, D], [N]
    t = TableReader(paths["audio_features"], "audio_features").read()
    return column_array(t, "feature").astype(np.float64), np.asarray(t.column("clip_id").to_pylist())


def _centres(loader, ix, rows):  # the window's centre frame of each loaded row -> [N, D]
    b = loader.load(ix.identity, np.asarray(rows))
    return b.audio[:, loader.window // 2].double().numpy()


def test_loader_standardises_each_clip_with_its_own_statistics(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0, clips=(30, 20))
    ix = build_identity_index("a", paths)
    x, clips = _raw(paths)
    raw = CorpusLoader([ix], 2, SIZE, with_images=False)
    cmvn = CorpusLoader([ix], 2, SIZE, with_images=False, clip_norm=True)
    for c, rows in (("c0", range(0, 30)), ("c1", range(30, 50))):
        xc = x[clips == c]
        want = (xc - xc.mean(0)) / np.maximum(xc.std(0), 1e-3)
        got = _centres(cmvn, ix, rows)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.mean(0), 0.0, atol=1e-5)
        np.testing.assert_allclose(got.std(0), 1.0, atol=1e-4)
        assert not np.allclose(_centres(raw, ix, rows), got, atol=1e-3)  # it does change the input
    # a time-limited loader (adaptation on the first second) uses only what it may see of the clip
    ad = CorpusLoader([ix], 2, SIZE, with_images=False, clip_norm=True, max_seconds=0.4)  # frames 0..9 of c0
    x0 = x[:10]
    np.testing.assert_allclose(_centres(ad, ix, range(10)), (x0 - x0.mean(0)) / np.maximum(x0.std(0), 1e-3),
                               rtol=1e-5, atol=1e-5)


def test_running_cmvn_reaches_the_whole_clip_statistics():
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(57, 5))
    r = RunningCMVN(5)
    with pytest.raises(ValueError):
        r(x[:1])
    r.push(x[:7])
    np.testing.assert_allclose(r.mean, x[:7].mean(0), atol=1e-12)  # only what has arrived
    for k in range(7, 57, 10):
        r.push(x[k:k + 10])
    mu, sd = clip_cmvn_stats(x)
    np.testing.assert_allclose(r.mean, mu, atol=1e-10)
    np.testing.assert_allclose(r.std, sd, atol=1e-10)
    np.testing.assert_allclose(r(x), (x - mu) / sd, atol=1e-5)


def test_augment_shift_gain_and_masks_do_what_they_name():
    m, stack, w = 10, 2, 8
    base = np.zeros((1, w, stack * m), np.float32)
    base[..., 3] = 1.0  # band 3 of hop 0
    base[..., m + 3] = 1.0  # band 3 of hop 1
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        y = AudioAugment(shift_bins=2, n_bands=m)(base, rng).reshape(1, w, stack, m)
        band = int(np.argmax(y[0, 0, 0]))
        assert np.all(y[0, :, :, band] == 1.0) and y.sum() == w * stack  # the same shift in every hop and frame
        seen.add(band - 3)
    assert seen == {-2, -1, 0, 1, 2}
    y = AudioAugment(gain_std=0.5, n_bands=m)(np.zeros((4, w, stack * m), np.float32), np.random.default_rng(1))
    off = y.reshape(4, w, stack, m)
    assert np.all(off == off[:, :1, :1])  # one offset per band, shared by every frame and hop of a window
    assert off[:, 0, 0].std() > 0.2 and not np.allclose(off[0], off[1])  # ... drawn per band and per window
    ones = np.ones((16, w, stack * m), np.float32)
    y = AudioAugment(freq_masks=1, freq_mask_width=3, n_bands=m)(ones, np.random.default_rng(2)).reshape(16, w, stack, m)
    zero_bands = (y == 0).all(axis=(1, 2))  # [16, m]
    assert ((y == 0) == zero_bands[:, None, None, :]).all()  # whole bands in every frame/hop, nothing else
    assert 1 <= zero_bands.sum(1).min() and zero_bands.sum(1).max() <= 3
    y = AudioAugment(time_masks=3, time_mask_width=3, n_bands=m)(ones, np.random.default_rng(3))
    zero_frames = (y == 0).all(axis=2)  # [16, w]
    assert ((y == 0) == zero_frames[:, :, None]).all() and zero_frames.any()
    assert not zero_frames[:, w // 2].any()  # the centre frame (GRMN's prediction target) is never masked
    with pytest.raises(ConfigError):
        AudioAugment(shift_bins=1, n_bands=3)(ones, rng)  # 20 features are not hops of 3 bands
    with pytest.raises(ConfigError):
        AudioAugment(gain_std=-1.0)


def test_loader_augments_sampled_batches_only_and_resumes_identically(tmp_path):
    paths = write_identity(tmp_path, "a", seed=0)
    ix = build_identity_index("a", paths)
    aug = AudioAugment(gain_std=0.3, shift_bins=1, n_bands=4, time_masks=1)
    assert AUDIO_DIM % 4 == 0
    plain = CorpusLoader([ix], 4, SIZE, seed=3, with_images=False)
    a1 = CorpusLoader([ix], 4, SIZE, seed=3, with_images=False, audio_aug=aug)
    off = CorpusLoader([ix], 4, SIZE, seed=3, with_images=False, audio_aug=AudioAugment())  # every knob off
    b_plain, b_aug, b_off = plain.next_batch(), a1.next_batch(), off.next_batch()
    np.testing.assert_array_equal(b_plain.rows, b_aug.rows)
    assert torch.equal(b_plain.audio, b_off.audio) and not torch.allclose(b_plain.audio, b_aug.audio)
    assert torch.equal(a1.load("a", b_aug.rows).audio, b_plain.audio)  # evaluation reads are never augmented
    state = a1.state_dict()
    nxt = a1.next_batch()
    a2 = CorpusLoader([ix], 4, SIZE, seed=3, with_images=False, audio_aug=aug)
    a2.load_state_dict(state)
    assert torch.equal(a2.next_batch().audio, nxt.audio)  # draws come from the loader's resumable rng


def test_recipe_builds_the_augmentation_spec_and_loader_from_params(tmp_path):
    from emotag_core.config import Params
    from emotag_core.train.recipe import audio_augment, corpus_loader, grmn_spec

    p = Params()
    assert audio_augment(p.pretrain) is None and not p.pretrain.clip_norm  # defaults: both off
    p.pretrain.aug_gain_std, p.pretrain.aug_shift_bins, p.pretrain.clip_norm = 0.2, 2, True
    a = audio_augment(p.pretrain)
    assert a is not None and a.gain_std == 0.2 and a.shift_bins == 2 and a.n_bands == 80
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0))
    spec = grmn_spec(p.pretrain, p.ablation, p.audio_features.window, ix.meta, 3)
    assert spec.clip_norm
    loader = corpus_loader([ix], p.pretrain, spec)  # the pretraining loader: augmented, per-clip normalised
    assert loader.audio_aug is not None and loader.clip_norm and loader.max_seconds is None
