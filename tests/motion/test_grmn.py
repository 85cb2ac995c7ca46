"""Shape, gradient and ablation tests of the Gated Residual Motion Network."""
from __future__ import annotations

import pytest
import torch

from emotag_core.motion.grmn import GRMN, AdaIN, GRMNSpec, N_EMOTIONS

torch.set_num_threads(1)


def spec(**kw) -> GRMNSpec:
    base = dict(audio_dim=20, n_aus=6, identity_dim=12, n_expr=9, n_mouth=5, window=16,
                d_model=32, d_expr=16, n_layers=2, n_heads=4, hidden=32)
    base.update(kw)
    return GRMNSpec(**base)


def inputs(sp: GRMNSpec, b: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, sp.window, sp.audio_dim, generator=g),
            torch.rand(b, sp.window, sp.n_aus, generator=g) * 5,
            torch.randn(b, sp.identity_dim, generator=g))


def test_output_shapes_and_gate_range():
    sp = spec()
    out = GRMN(sp)(*inputs(sp))
    assert out.expr.shape == (3, 9) and out.jaw.shape == (3, 3)
    assert out.mouth.shape == (3, 5, 10)
    assert out.mouth_dmu.shape == (3, 5, 3) and out.mouth_drot.shape == (3, 5, 4) and out.mouth_dscale.shape == (3, 5, 3)
    assert out.z_e.shape == (3, N_EMOTIONS)
    assert out.g.shape == (3, 1) and bool(((out.g >= 0) & (out.g <= 1)).all())
    # Eq. 6 holds exactly on the flat outputs
    flat = torch.cat([out.expr, out.jaw, out.mouth.reshape(3, -1)], dim=1)
    torch.testing.assert_close(flat, out.delta_b + out.g * out.delta_r)


def test_every_parameter_gets_a_gradient():
    sp = spec()
    m = GRMN(sp)
    out = m(*inputs(sp))
    loss = out.expr.pow(2).sum() + out.jaw.pow(2).sum() + out.mouth.pow(2).sum() + out.z_e.pow(2).sum() + out.g.sum()
    loss.backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_identity_changes_output_only_with_adain():
    sp = spec()
    a, au, s = inputs(sp)
    m = GRMN(sp)
    # make the AdaIN MLP non-trivial, as after training
    for p in m.adain_parameters():
        torch.nn.init.normal_(p, std=0.3)
    torch.nn.init.normal_(m.decoder.base[-1].weight, std=0.3)
    o1, o2 = m(a, au, s), m(a, au, s + 1.0)
    assert (o1.expr - o2.expr).abs().max() > 1e-3
    m2 = GRMN(spec(adain=False))
    torch.nn.init.normal_(m2.decoder.base[-1].weight, std=0.3)
    p1, p2 = m2(a, au, s), m2(a, au, s + 1.0)
    torch.testing.assert_close(p1.expr, p2.expr)


def test_adain_normalises_over_time_per_channel():
    ad = AdaIN(8, 4, adaptive=False)
    f = torch.randn(2, 16, 8) * torch.arange(1, 9) + 5.0
    y = ad(f, torch.zeros(2, 4))
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 8), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=1, unbiased=False), torch.ones(2, 8), atol=1e-3, rtol=0)
    # Eq. 5 with gamma, beta from MLP(s)
    ad2 = AdaIN(8, 4, adaptive=True)
    s = torch.randn(2, 4)
    gb = ad2.mlp(s)
    want = (1 + gb[:, None, :8]) * y + gb[:, None, 8:]
    torch.testing.assert_close(ad2(f, s), want, atol=1e-5, rtol=1e-5)


def test_ablation_gate_off_fixes_g_to_one():
    sp = spec(gate=False)
    m = GRMN(sp)
    assert not hasattr(m.decoder, "gate")
    out = m(*inputs(sp))
    assert torch.equal(out.g, torch.ones(3, 1))
    torch.testing.assert_close(out.delta_b + out.delta_r, torch.cat([out.expr, out.jaw, out.mouth.reshape(3, -1)], 1))


def test_ablation_residual_off_removes_branch():
    sp = spec(residual=False)
    m = GRMN(sp)
    names = [n for n, _ in m.named_parameters()]
    assert not any("emo_" in n or "gate" in n for n in names)
    out = m(*inputs(sp))
    assert out.z_e is None and out.delta_r is None
    torch.testing.assert_close(out.delta_b, torch.cat([out.expr, out.jaw, out.mouth.reshape(3, -1)], 1))


def test_ablation_adain_off_has_no_identity_mlp():
    m = GRMN(spec(adain=False))
    names = m.adain_parameter_names()
    assert names and all(n.endswith(("gamma", "beta")) for n in names)
    assert not any(".mlp." in n for n in names)
    assert {n for n, _ in GRMN(spec()).named_parameters()} >= GRMN(spec()).adain_parameter_names()


def test_wrong_feature_dim_is_a_clear_error():
    sp = spec()
    a, au, s = inputs(sp)
    with pytest.raises(ValueError, match="feature_dim"):
        GRMN(sp)(a[..., :10], au, s)


def test_audio_norm_standardises_input_with_stored_stats():
    sp = spec(audio_norm=True)
    torch.manual_seed(0)
    g = GRMN(sp).eval()
    audio, aus, s = inputs(sp)
    mean, std = torch.randn(sp.audio_dim), torch.rand(sp.audio_dim) + 0.5
    g.set_audio_stats(mean, std)
    # the same as a model without input standardisation fed the standardised features
    plain = GRMN(spec()).eval()
    plain.load_state_dict({k: v for k, v in g.state_dict().items() if not k.startswith("audio_")})
    torch.testing.assert_close(g(audio * std + mean, aus, s).delta_b, plain(audio, aus, s).delta_b)
    # stats are buffers: saved with the weights, not trained
    assert {"audio_mean", "audio_std"} <= set(g.state_dict()) and not any(n.startswith("audio_") for n, _ in g.named_parameters())
    with pytest.raises(ValueError, match="std > 0"):
        g.set_audio_stats(mean, torch.zeros(sp.audio_dim))
    with pytest.raises(ValueError, match=r"\[20\]"):
        g.set_audio_stats(mean[:3], std[:3])
    from emotag_core.errors import ConfigError

    with pytest.raises(ConfigError, match="audio_norm"):
        GRMN(spec()).set_audio_stats(mean, std)
    assert "audio_mean" not in GRMN(spec()).state_dict()  # off: old checkpoints keep loading


def test_dropout_acts_in_training_only():
    sp = spec(dropout=0.5)
    torch.manual_seed(0)
    g = GRMN(sp)
    x = inputs(sp)
    g.train()
    assert not torch.equal(g(*x).delta_b, g(*x).delta_b)  # two stochastic passes differ
    g.eval()
    torch.testing.assert_close(g(*x).delta_b, g(*x).delta_b, rtol=0, atol=0)
    assert all(m.p == 0.5 for m in g.modules() if isinstance(m, torch.nn.Dropout))
    assert all(m.p == 0.0 for m in GRMN(spec()).modules() if isinstance(m, torch.nn.Dropout))
    from emotag_core.errors import ConfigError

    with pytest.raises(ConfigError, match="dropout"):
        spec(dropout=1.0)


def test_adain_channel_axis_normalises_each_frame_and_keeps_level_differences():
    ad = AdaIN(8, 4, adaptive=False, axis="channel")
    f = torch.randn(2, 16, 8) * torch.arange(1, 17)[None, :, None] + torch.arange(16.0)[None, :, None]
    y = ad(f, torch.zeros(2, 4))
    torch.testing.assert_close(y.mean(dim=2), torch.zeros(2, 16), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.std(dim=2, unbiased=False), torch.ones(2, 16), atol=1e-3, rtol=0)
    # a frame's pattern across channels survives, whatever the other frames of the window hold
    g = f.clone()
    g[:, :8] = torch.randn(2, 8, 8) * 50
    torch.testing.assert_close(ad(g, torch.zeros(2, 4))[:, 8:], y[:, 8:])
    assert not torch.allclose(AdaIN(8, 4, adaptive=False)(g, torch.zeros(2, 4))[:, 8:],
                              AdaIN(8, 4, adaptive=False)(f, torch.zeros(2, 4))[:, 8:])  # `time` axis: it does not
    sp = spec(adain_axis="channel")
    out = GRMN(sp)(*inputs(sp))
    assert out.jaw.shape == (3, 3) and torch.isfinite(out.delta_b).all()
    from emotag_core.errors import ConfigError

    with pytest.raises(ConfigError, match="adain_axis"):
        spec(adain_axis="batch")


@pytest.mark.parametrize("residual", [True, False])
def test_grow_mouth_keeps_expression_and_jaw_and_adds_small_offsets(residual):
    from emotag_core.errors import ConfigError

    sp = spec(n_mouth=0, residual=residual, gate=residual)
    g = GRMN(sp).eval()
    x = inputs(sp)
    with torch.no_grad():
        before = g(*x)
        assert before.mouth.shape == (3, 0, 10)
        g.grow_mouth(7)
        after = g(*x)
    assert g.spec.n_mouth == 7 and after.mouth.shape == (3, 7, 10)
    torch.testing.assert_close(after.expr, before.expr, rtol=0, atol=0)
    torch.testing.assert_close(after.jaw, before.jaw, rtol=0, atol=0)
    assert 0 < float(after.mouth.abs().max()) < 0.05  # a fresh GRMN's near-zero offsets, not zeros
    flat = torch.cat([after.expr, after.jaw, after.mouth.reshape(3, -1)], dim=1)
    torch.testing.assert_close(flat, after.delta_b + (after.g * after.delta_r if residual else 0))  # Eq. 6 still holds
    with pytest.raises(ConfigError, match="already predicts 7"):
        g.grow_mouth(3)
