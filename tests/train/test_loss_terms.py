"""The eager step and the CUDA-graphed step assemble Eq. 10 from the same functions (`losses.motion_terms`,
`image_terms`, `total_loss`), with every switch, so a weight one path forgets cannot hide.

The graphed step's parts (`fast._Pose`, `fast._Maps`) are plain modules and its rasterizer is the scene's
(`avatar.scene.rasterize_splats`, the torch one here): with the CUDA-graph capture replaced by the module
itself the step runs on the CPU, which checks its composition here without a GPU
(tests/train/test_fast_gpu.py checks the captured graphs on CUDA)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.io.tables import UPPER_AUS
from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.train import fast, losses
from emotag_core.train.data import CorpusLoader, build_identity_index
from emotag_core.train.loop import LossSwitches, loss_terms

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
SIZE, N = 32, 600
JAW3 = dict(geo=True, param_supervision=1.0, param_jaw_weight=3.0)  # non-default switches (issue 16)


def _setup(tmp_path):
    from bench_train import FEAT_DIM, ID_DIM, write_identity  # real schemas, synthetic values

    from emotag_core.avatar.scene import build_scene
    from emotag_core.flame import load_head_model

    torch.manual_seed(0)
    torch.set_num_threads(1)
    head = load_head_model(FlameConfig(), "cpu")
    ix = build_identity_index("t", write_identity(tmp_path, "t", 3, head.n_expr, head.n_shape, (20,), SIZE, True))
    scene = build_scene(head, ix.meta, N, None, "torch", "cpu")
    with torch.no_grad():
        scene.avatar.sh.add_(0.5 * torch.randn_like(scene.avatar.sh))
        scene.background.uniform_(0, 1)
    spec = GRMNSpec(audio_dim=FEAT_DIM, n_aus=len(UPPER_AUS), identity_dim=ID_DIM, n_expr=head.n_expr,
                    n_mouth=scene.n_mouth, d_model=16, d_expr=8, n_layers=1, n_heads=2, hidden=16)
    grmn = GRMN(spec).eval()
    batch = CorpusLoader([ix], 2, SIZE, seed=0, with_geometry=True, max_seconds=0.8).next_batch()
    return scene, grmn, batch


def test_motion_terms_carry_the_jaw_weight():
    g = torch.Generator().manual_seed(0)
    expr, expr_gt = torch.randn(4, 9, generator=g), torch.randn(4, 9, generator=g)
    jaw, jaw_gt = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    out = type("Out", (), {"expr": expr, "jaw": jaw, "g": torch.rand(4, 1, generator=g), "z_e": None})()
    e_term, j_term = (expr - expr_gt).abs().mean(), (jaw - jaw_gt).abs().mean()
    for w in (1.0, 3.0):
        sw = LossSwitches(param_supervision=2.0, param_jaw_weight=w)
        terms = losses.motion_terms(out, torch.zeros(4, 7), torch.zeros(4), expr_gt, jaw_gt, sw)
        torch.testing.assert_close(terms["param"], e_term + w * j_term)
        assert set(terms) == {"param", "gate_mean"}  # no z_e: no L_KL, no L_Score
        zero = torch.zeros(())
        torch.testing.assert_close(losses.total_loss(terms, sw, zero), 2.0 * (e_term + w * j_term))  # gate_mean not summed
    assert "param" not in losses.motion_terms(out, torch.zeros(4, 7), torch.zeros(4), expr_gt, jaw_gt, LossSwitches())


@pytest.mark.parametrize("static", [False, True])
def test_graphed_step_composes_the_eager_terms_on_the_cpu(tmp_path, monkeypatch, static):
    """`GraphedStep` with its captures run as plain calls equals `loop.loss_terms` (terms, total, every gradient)
    under `param_supervision=1, param_jaw_weight=3, geo` on. Before issue 16 the graphed pose part called
    `param_loss` without the jaw weight: its `param` term was expr + 1 * jaw, which the last assertion shows
    is far outside the tolerance here."""
    scene, grmn, batch = _setup(tmp_path)
    sw = LossSwitches(**JAW3)
    monkeypatch.setattr(fast.GraphedStep, "_graph", lambda self, fn, args, what: fn)  # no capture on the CPU
    params = [p for m in (grmn, scene) for p in m.parameters()]

    def run(step):
        for p in params:
            p.grad = None
        total, terms = step()
        total.backward()
        return total.detach(), terms, [None if p.grad is None else p.grad.clone() for p in params]

    tot_g, terms_g, grads_g = run(lambda: fast.GraphedStep(grmn, sw, SIZE)(scene, batch, static))
    tot_e, terms_e, grads_e = run(lambda: loss_terms(grmn, scene, batch, static, sw, SIZE)[:2])
    assert list(terms_g) == list(terms_e)
    assert set(terms_e) == ({"render", "geo", "loss"} if static else {"render", "kl", "score", "param", "gate_mean", "geo", "loss"})
    for k, v in terms_e.items():
        torch.testing.assert_close(terms_g[k], v, rtol=1e-6, atol=1e-7, msg=k)
    torch.testing.assert_close(tot_g, tot_e, rtol=1e-6, atol=1e-7)
    assert sum(g is not None for g in grads_e) > 0
    for ge, gg in zip(grads_e, grads_g):
        assert (ge is None) == (gg is None)
        if ge is not None:
            torch.testing.assert_close(gg, ge, rtol=1e-5, atol=1e-7)
    if not static:  # the old graphed term (jaw weight 1) is nowhere near the eager one
        with torch.no_grad():
            out = grmn(batch.audio, batch.aus, batch.s)
            w1 = losses.param_loss(out.expr, out.jaw, batch.expr, batch.jaw, 1.0)
        assert abs(float(w1) - float(terms_e["param"])) > 1e3 * (1e-7 + 1e-6 * abs(float(terms_e["param"])))
