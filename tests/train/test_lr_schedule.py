"""Pretraining learning-rate schedule (pretrain.lr_schedule)."""
from __future__ import annotations

import pytest
import torch

from emotag_core.errors import ConfigError
from emotag_core.train.data import CorpusLoader, build_identity_index
from emotag_core.train.loop import LR_FLOOR, LoopConfig, LossSwitches, lr_factor, pretrain
from train.test_loop import small_grmn
from train.toydata import SIZE, write_identity

torch.set_num_threads(1)


def test_cosine_factor_runs_from_one_to_the_floor():
    f = [lr_factor("cosine", i, 11) for i in range(11)]
    assert f[0] == pytest.approx(1.0) and f[-1] == pytest.approx(LR_FLOOR)
    assert all(a > b for a, b in zip(f, f[1:]))
    assert f[5] == pytest.approx(LR_FLOOR + (1 - LR_FLOOR) / 2)
    assert all(lr_factor("constant", i, 11) == 1.0 for i in range(11))
    with pytest.raises(ConfigError, match="lr_schedule"):
        lr_factor("step", 0, 10)


def _train(tmp_path, schedule: str, iters: int) -> dict[str, torch.Tensor]:
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0))
    torch.manual_seed(0)
    grmn = small_grmn()
    cfg = LoopConfig(iters=iters, static_iters=0, lr=5e-2, image_size=SIZE, checkpoint_every=0, lr_schedule=schedule)
    pretrain(grmn, {}, CorpusLoader([ix], 2, SIZE, seed=0, with_images=False), cfg,
             LossSwitches(render=False, param_supervision=1.0))
    return grmn.state_dict()


def test_schedule_changes_training_only_after_the_first_step(tmp_path):
    same = _train(tmp_path, "cosine", 1), _train(tmp_path, "constant", 1)  # step 0 runs at the full rate
    assert all(torch.equal(same[0][k], same[1][k]) for k in same[0])
    a, b = _train(tmp_path, "cosine", 4), _train(tmp_path, "constant", 4)
    assert any(not torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ConfigError, match="lr_schedule"):
        _train(tmp_path, "linear", 2)
