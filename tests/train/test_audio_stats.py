"""GRMN input standardisation: corpus statistics of the audio features (pretrain.audio_norm)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.errors import InputError
from emotag_core.io.tables import TableReader, column_array
from emotag_core.train.audio_stats import audio_feature_stats
from emotag_core.train.data import CorpusLoader, build_identity_index
from emotag_core.train.loop import LoopConfig, LossSwitches, adapt
from train.toydata import AUDIO_DIM, ID_DIM, N_EXPR, N_MOUTH, SIZE, write_identity

torch.set_num_threads(1)


def test_stats_match_numpy_over_every_table(tmp_path):
    paths = [write_identity(tmp_path, i, seed=s)["audio_features"] for s, i in enumerate("ab")]
    x = np.concatenate([column_array(TableReader(p, "audio_features").read(), "feature") for p in paths]).astype(np.float64)
    mean, std = audio_feature_stats(paths)  # row groups of 16: several per table, streamed
    assert mean.shape == (AUDIO_DIM,) and std.shape == (AUDIO_DIM,)
    np.testing.assert_allclose(mean.numpy(), x.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std.numpy(), np.maximum(x.std(0), 1e-3), rtol=1e-4, atol=1e-6)
    one, _ = audio_feature_stats(paths[:1])
    assert not torch.allclose(one, mean)  # the second table counts
    with pytest.raises(InputError):
        audio_feature_stats([])


def test_stats_survive_adaptation_and_pretrain_stage_sets_them(tmp_path):
    from emotag_core.config import Params
    from emotag_core.motion.grmn import GRMN
    from emotag_core.train.recipe import grmn_spec, init_audio_norm

    paths = write_identity(tmp_path, "t", seed=3)
    ix = build_identity_index("t", paths)
    p = Params()
    p.pretrain.audio_norm, p.pretrain.d_model, p.pretrain.n_layers, p.pretrain.hidden = True, 16, 1, 16
    torch.manual_seed(0)
    grmn = GRMN(grmn_spec(p.pretrain, p.ablation, p.audio_features.window, ix.meta, N_MOUTH))
    assert grmn.spec.audio_norm and grmn.spec.identity_dim == ID_DIM and grmn.spec.n_expr == N_EXPR
    init_audio_norm(grmn, [ix])
    mean, std = audio_feature_stats([paths["audio_features"]])
    assert torch.equal(grmn.audio_mean, mean) and torch.equal(grmn.audio_std, std)
    before = {k: v.clone() for k, v in grmn.state_dict().items()}
    cfg = LoopConfig(iters=5, static_iters=0, lr=1e-2, image_size=SIZE, checkpoint_every=0, log_every=1)
    loader = CorpusLoader([ix], 2, SIZE, seed=0, with_images=False, max_seconds=1.0)
    adapt(grmn, None, "t", loader, cfg, LossSwitches(render=False, param_supervision=1.0))
    changed = {k for k, v in grmn.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and changed <= grmn.adain_parameter_names()  # statistics and non-AdaIN weights untouched


def test_stats_travel_with_the_saved_model(tmp_path):
    from emotag_core.motion.grmn import GRMN, GRMNSpec
    from emotag_core.train.checkpoint import load_model, save_model

    g = GRMN(GRMNSpec(audio_dim=AUDIO_DIM, n_aus=6, identity_dim=ID_DIM, n_expr=N_EXPR, n_mouth=N_MOUTH, d_model=16,
                      d_expr=8, n_layers=1, n_heads=2, hidden=16, audio_norm=True, adain_axis="channel"))
    g.set_audio_stats(torch.arange(AUDIO_DIM, dtype=torch.float32), torch.full((AUDIO_DIM,), 2.0))
    save_model(tmp_path / "grmn.pt", g)
    back, _ = load_model(tmp_path / "grmn.pt")
    assert back.spec.audio_norm and back.spec.adain_axis == "channel"
    assert torch.equal(back.audio_mean, g.audio_mean) and torch.equal(back.audio_std, g.audio_std)
