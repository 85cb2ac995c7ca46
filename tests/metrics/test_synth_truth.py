"""The synthetic-truth motion evaluation (grmn_eval): the array metrics and the protocol on a tiny target."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emotag_core.metrics.motion import motion_scores, pearson, truth_at


def _truth(n=50, e=4, fps=25.0, seed=0):
    rng = np.random.default_rng(seed)
    return {"fps": np.float64(fps), "jaw": rng.normal(size=(n, 3)), "expr": rng.normal(size=(n, e)),
            "emotion_strength": rng.uniform(0, 1, n), "emotion": rng.integers(0, 7, n)}


def test_truth_at_picks_the_nearest_frame_and_clamps():
    tr = _truth()
    got = truth_at(tr, np.array([0.0, 0.019, 0.021, 1.0, 99.0]))  # frames 0, 0, 1, 25, clamped to 49
    np.testing.assert_array_equal(got["jaw"], tr["jaw"][[0, 0, 1, 25, 49], 0])
    np.testing.assert_array_equal(got["expr"], tr["expr"][[0, 0, 1, 25, 49]])
    np.testing.assert_array_equal(got["intensity"], tr["emotion_strength"][[0, 0, 1, 25, 49]])
    with pytest.raises(ValueError, match="emotion_strength"):
        truth_at({k: v for k, v in tr.items() if k != "emotion_strength"}, np.zeros(2))


def _series(tr, rng):
    n = len(tr["jaw"])
    return {"jaw": 2.0 * tr["jaw"] + 1.0, "g": tr["intensity"] ** 3, "expr": tr["expr"] + 0.25,
            "track_jaw": -tr["jaw"], "track_expr": tr["expr"] - 0.5, "e": rng.normal(size=n),
            "e_aus": np.full(n, 0.3)}


def test_motion_scores_on_known_series():
    rng = np.random.default_rng(1)
    tr = truth_at(_truth(), np.arange(40) / 25.0)
    s = motion_scores(_series(tr, rng), tr, energy=tr["jaw"] * 0 + np.arange(40))
    assert s["jaw_r"] == pytest.approx(1.0)               # an affine map of the truth
    assert s["tracked_jaw_r"] == pytest.approx(-1.0)
    assert 0.8 < s["gate_intensity_r"] < 1.0               # monotone, not linear
    assert s["aus_e_intensity_r"] is None                  # constant series: r undefined
    assert s["expr_mae"] == pytest.approx(0.25) and s["expr_mae_tracked"] == pytest.approx(0.5)
    assert s["expr_mae_zero"] == pytest.approx(np.abs(tr["expr"]).mean())
    assert s["gate_mean"] == pytest.approx(float(np.mean(tr["intensity"] ** 3)))
    assert s["energy_r"] == pytest.approx(pearson(np.arange(40), tr["jaw"]))
    bad = dict(_series(tr, rng), g=np.zeros(39))
    with pytest.raises(ValueError, match="differ"):
        motion_scores(bad, tr, np.zeros(40))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    from .synth_target import make_workdir

    return make_workdir(tmp_path_factory.mktemp("grmn_eval"))


def _model(workdir):
    import torch

    from emotag_core.config import load_params
    from emotag_core.motion.grmn import GRMN
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.recipe import grmn_spec, identity_tables

    p = load_params(workdir / "params.yaml")
    ix = build_identity_index("t_syn", identity_tables(workdir / "data" / "processed" / "t_syn"))
    torch.manual_seed(0)
    return GRMN(grmn_spec(p.pretrain, p.ablation, p.audio_features.window, ix.meta, 8)), ix, p


def test_grmn_eval_scores_the_split_against_the_truth(workdir, one_torch_thread):
    from emotag_core.metrics.synth_truth import PARTS, TruthFiles, grmn_eval, split_for, write_grmn_eval

    grmn, ix, p = _model(workdir)
    files = TruthFiles(workdir / "data/synthetic/t_syn/truth", workdir / "data/processed/t_syn/audio")
    split = split_for(p.adapt, ix)
    res = grmn_eval(grmn, grmn, ix, split, files, keep_preds=True)
    m = res.metrics
    usable = ix.index.column("usable").to_numpy(zero_copy_only=False)
    clips = np.asarray(ix.index.column("clip_id").to_pylist())
    assert m["test"]["clip"] == "c1" and m["test"]["frames"] == int((usable & (clips == "c1")).sum())
    assert m["val"]["clip"] == "c0" and m["val"]["start_frame"] == 125
    assert m["val"]["frames"] == int(usable[:150][125:].sum())
    for part in PARTS:  # the truth jaw is the tracked jaw: r = 1 only if the truth rows line up with the frames
        assert m[part]["tracked_jaw_r"] == pytest.approx(1.0, abs=1e-6), part
        assert m[part]["voices"] == "es, it"
    assert m["before_adapt"] == m["test"]  # the same model on the same frames
    assert len(res.preds["val"]["jaw"]) == m["val"]["frames"]
    out = workdir / "out" / "grmn_eval.json"
    write_grmn_eval(res, out, extra={"run": "x"})
    back = json.loads(out.read_text())
    assert back["run"] == "x" and back["test"]["jaw_r"] == pytest.approx(m["test"]["jaw_r"])
    assert (workdir / "out" / "grmn_eval_preds.json.gz").exists()
    none = grmn_eval(grmn, None, ix, split, files)
    assert none.metrics["before_adapt"] is None and not none.preds


def test_grmn_eval_refuses_a_target_without_truth(workdir, tmp_path):
    from emotag_core.errors import InputError
    from emotag_core.metrics.synth_truth import TruthFiles, grmn_eval, split_for

    grmn, ix, p = _model(workdir)
    with pytest.raises(InputError, match="synthetic identities"):
        grmn_eval(grmn, None, ix, split_for(p.adapt, ix), TruthFiles(tmp_path, workdir / "data/processed/t_syn/audio"))
