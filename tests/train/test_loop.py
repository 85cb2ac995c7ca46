"""Training loops: freezing in adaptation, ablation switches, exact resume after SIGKILL."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from emotag_core.config import AblationConfig
from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.train.data import CorpusLoader, build_identity_index
from emotag_core.train.loop import LoopConfig, LossSwitches, adapt, compute_losses, pretrain
from train.toydata import AUDIO_DIM, ID_DIM, N_EXPR, N_MOUTH, SIZE, ToyScene, write_identity

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent


def small_grmn(**kw) -> GRMN:
    return GRMN(GRMNSpec(audio_dim=AUDIO_DIM, n_aus=6, identity_dim=ID_DIM, n_expr=N_EXPR, n_mouth=N_MOUTH,
                         d_model=16, d_expr=8, n_layers=1, n_heads=2, hidden=16, **kw))


def test_adapt_changes_only_adain_and_scene(tmp_path):
    paths = write_identity(tmp_path, "t", seed=3, geometry=True)
    ix = build_identity_index("t", paths)
    torch.manual_seed(0)
    grmn = small_grmn()
    before = {k: v.clone() for k, v in grmn.state_dict().items()}
    scene = ToyScene(7)
    app0 = scene.appearance.detach().clone()
    loader = CorpusLoader([ix], 2, SIZE, seed=0, with_geometry=True, max_seconds=1.0)
    terms = []
    cfg = LoopConfig(iters=12, static_iters=2, lr=1e-2, image_size=SIZE, checkpoint_every=0, log_every=1)
    adapt(grmn, scene, "t", loader, cfg, LossSwitches(geo=True), log=lambda s, t: terms.append(t))
    adain = grmn.adain_parameter_names()
    after = grmn.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed and changed <= adain  # every non-AdaIN weight bit-identical
    assert changed == {k for k in adain}  # and AdaIN really was tuned
    assert not torch.equal(scene.appearance, app0)
    assert "geo" in terms[-1] and terms[-1]["geo"] > 0


def test_adapt_anchor_pulls_adain_toward_pretrained(tmp_path):
    ix = build_identity_index("t", write_identity(tmp_path, "t", seed=3))

    def drift(anchor: float) -> float:
        torch.manual_seed(0)
        grmn = small_grmn()
        before = {k: v.clone() for k, v in grmn.state_dict().items()}
        cfg = LoopConfig(iters=40, static_iters=0, lr=2e-2, image_size=SIZE, checkpoint_every=0, anchor=anchor)
        adapt(grmn, None, "t", CorpusLoader([ix], 4, SIZE, seed=0, with_images=False, max_seconds=1.0), cfg,
              LossSwitches(param_supervision=1.0, render=False))
        after = grmn.state_dict()
        assert all(torch.equal(after[k], before[k]) for k in after if k not in grmn.adain_parameter_names())
        return sum(float((after[k] - before[k]).pow(2).sum()) for k in grmn.adain_parameter_names()) ** 0.5

    free, mild, strong = drift(0.0), drift(1.0), drift(50.0)
    assert free > 0 and strong < mild < free  # the pull grows with its weight
    assert strong < 0.5 * free


def test_ablation_switches_remove_their_terms(tmp_path):
    ix = build_identity_index("a", write_identity(tmp_path, "a", seed=0))
    batch = CorpusLoader([ix], 2, SIZE, seed=0).next_batch()
    cases = {"seg": set(), "kl": {"score"}, "score": {"kl"}, "gate": {"kl"}, "residual": set(), "adain": {"kl", "score"}}
    for name, want in cases.items():
        ab = AblationConfig(**{name: False})
        grmn = small_grmn(adain=ab.adain, residual=ab.residual, gate=ab.gate)
        _, terms, out = compute_losses(grmn, ToyScene(0), batch, False, LossSwitches.from_ablation(ab), SIZE)
        assert {"kl", "score"} & set(terms) == want, name
        if name == "gate":
            assert torch.equal(out.g, torch.ones_like(out.g))
        if name == "residual":
            assert out.z_e is None and not any("emo_" in n for n, _ in grmn.named_parameters())
    _, terms, _ = compute_losses(small_grmn(), ToyScene(0), batch, False, LossSwitches(param_supervision=1.0), SIZE)
    assert {"render", "kl", "score", "param"} <= set(terms)
    # static stage: GRMN is not run, no motion loss terms
    _, terms, out = compute_losses(small_grmn(), ToyScene(0), batch, True, LossSwitches(), SIZE)
    assert out is None and set(terms) == {"render", "loss"}


def test_pretrain_learns(tmp_path):
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    torch.manual_seed(0)
    log = []
    cfg = LoopConfig(iters=60, static_iters=5, lr=5e-2, image_size=SIZE, checkpoint_every=0, log_every=1)
    pretrain(small_grmn(), {"a": ToyScene(0), "b": ToyScene(1)}, CorpusLoader(ixs, 4, SIZE, seed=0), cfg,
             LossSwitches(), log=lambda s, t: log.append(t))
    first = sum(t["render"] for t in log[:5]) / 5
    last = sum(t["render"] for t in log[-5:]) / 5
    assert last < 0.9 * first
    assert any("kl" in t for t in log) and any("kl" not in t for t in log)  # static stage, then joint


def test_kill_and_resume_gives_identical_weights(tmp_path):
    """A pretraining subprocess killed with SIGKILL mid-run, then rerun, ends bit-identical to an uninterrupted run."""
    sys.path.insert(0, str(HERE))
    import resume_run

    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    proc = subprocess.Popen([sys.executable, str(HERE / "resume_run.py"), str(run_dir), str(tmp_path / "run.pt"), "0.15"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    resume_run.main(ref_dir, tmp_path / "ref.pt", 0.0)  # the uninterrupted reference, meanwhile
    t0 = time.time()
    while time.time() - t0 < 120 and proc.poll() is None:
        ck = sorted((run_dir / "ckpt").glob("ckpt-*.pt")) if (run_dir / "ckpt").exists() else []
        if ck and int(ck[-1].stem.split("-")[1]) >= 10:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # land between checkpoints
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "run.pt").exists(), "the run finished before it was killed"
    resume_run.main(run_dir, tmp_path / "run.pt", 0.0)
    ref = torch.load(tmp_path / "ref.pt")
    run = torch.load(tmp_path / "run.pt")
    assert 10 <= run["resumed_from"] < resume_run.ITERS and ref["resumed_from"] == 0
    for k, v in ref["grmn"].items():
        assert torch.equal(v, run["grmn"][k]), k
    for ident in ref["scenes"]:
        for k, v in ref["scenes"][ident].items():
            assert torch.equal(v, run["scenes"][ident][k]), (ident, k)


def test_motion_only_trains_on_params_without_rendering_or_images(tmp_path):
    """`pretrain.render: false`: nothing is rasterized or decoded; GRMN fits the tracked expr/jaw."""
    import pytest

    from emotag_core.errors import ConfigError

    with pytest.raises(ConfigError, match="param_supervision"):
        LossSwitches(render=False)
    with pytest.raises(ConfigError, match="L_Geo"):
        LossSwitches(render=False, geo=True, param_supervision=1.0)
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    loader = CorpusLoader(ixs, 8, SIZE, seed=0, with_images=False)
    assert loader.next_batch().image.numel() == 0
    torch.manual_seed(0)
    grmn = small_grmn()
    log = []
    sw = LossSwitches(render=False, param_supervision=1.0)
    cfg = LoopConfig(iters=80, static_iters=20, lr=1e-2, image_size=SIZE, checkpoint_every=0, log_every=1)
    summary = pretrain(grmn, {}, loader, cfg, sw, log=lambda s, t: log.append(t))
    assert all("render" not in t and "param" in t and "kl" in t and "score" in t for t in log)
    assert all(t["static"] == 0.0 for t in log)  # no static-appearance stage without rendering
    assert sum(summary["static_steps"].values()) == 80
    # the tracked jaw supervised the prediction: it beats the neutral (closed-jaw) starting point clearly
    b = CorpusLoader(ixs, 40, SIZE, seed=5, with_images=False).next_batch()
    with torch.no_grad():
        pred = grmn.eval()(b.audio, b.aus, b.s).jaw[:, 0]
    assert (pred - b.jaw[:, 0]).abs().mean() < 0.7 * b.jaw[:, 0].abs().mean()
    # adaptation without a scene: only the AdaIN parameters move
    before = {k: v.clone() for k, v in grmn.state_dict().items()}
    ad_loader = CorpusLoader([ixs[0]], 4, SIZE, seed=1, with_images=False, max_seconds=1.0)
    cfg = LoopConfig(iters=6, static_iters=3, lr=1e-2, image_size=SIZE, checkpoint_every=0, log_every=1)
    adapt(grmn, None, "a", ad_loader, cfg, sw)
    changed = {k for k, v in grmn.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == grmn.adain_parameter_names()


def test_rerun_after_the_final_checkpoint_reports_the_same_summary(tmp_path):
    """Killed after the last checkpoint but before the model/summary were written: the rerun has no
    step left to run and must still report the same final losses and per-identity step counts."""
    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    cfg = LoopConfig(iters=8, static_iters=2, lr=1e-2, image_size=SIZE, checkpoint_every=4, log_every=1)

    def run():
        torch.manual_seed(0)
        return pretrain(small_grmn(), {"a": ToyScene(0), "b": ToyScene(1)}, CorpusLoader(ixs, 2, SIZE, seed=0), cfg,
                        LossSwitches(), ckpt_dir=tmp_path / "ckpt", fingerprint="f")

    first = run()
    again = run()  # resumes from the final checkpoint (iteration 8)
    assert first["resumed_from"] == 0 and again["resumed_from"] == cfg.iters
    assert first["final"] and again["final"] == first["final"]
    assert again["static_steps"] == first["static_steps"]


def test_pretrain_ema_is_the_average_of_the_iterates_and_resumes_exactly(tmp_path):
    """`pretrain.ema`: the pretrained model is the exponential moving average of the iterates (first one
    copied, then d * avg + (1 - d) * w), and a run resumed from a mid-run checkpoint ends bit-identical."""
    import pytest

    from emotag_core.errors import ConfigError

    ixs = [build_identity_index(i, write_identity(tmp_path, i, seed=s)) for s, i in enumerate("ab")]
    sw = LossSwitches(render=False, param_supervision=1.0)
    d, n = 0.6, 4

    def run(iters, ema=0.0, ckpt=None, every=0):
        torch.manual_seed(0)
        g = small_grmn()
        cfg = LoopConfig(iters=iters, static_iters=0, lr=1e-2, image_size=SIZE, checkpoint_every=every, ema=ema)
        pretrain(g, {}, CorpusLoader(ixs, 4, SIZE, seed=0, with_images=False), cfg, sw, ckpt_dir=ckpt,
                 fingerprint="f")
        return g.state_dict()

    iterates = [run(k) for k in range(1, n + 1)]  # constant rate: run k ends at the k-th iterate of a long run
    avg = {k: v.clone() for k, v in iterates[0].items()}
    for w in iterates[1:]:
        for k in avg:
            if avg[k].is_floating_point():
                avg[k] = d * avg[k] + (1 - d) * w[k]
    got = run(n, ema=d, ckpt=tmp_path / "ck", every=2)
    assert not torch.equal(got["encoder.audio.cnn.0.weight"], iterates[-1]["encoder.audio.cnn.0.weight"])  # not the last iterate
    for k, v in avg.items():
        assert torch.allclose(got[k], v, atol=1e-6), k
    (tmp_path / "ck" / f"ckpt-{n:09d}.pt").unlink()  # killed after the mid-run checkpoint (iteration 2)
    assert [p.name for p in (tmp_path / "ck").glob("ckpt-*.pt")]
    again = run(n, ema=d, ckpt=tmp_path / "ck", every=2)
    for k, v in got.items():
        assert torch.equal(v, again[k]), k
    with pytest.raises(ConfigError, match="pretrain.ema"):
        run(1, ema=1.0)
