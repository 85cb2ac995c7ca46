"""Loss functions: values a wrong implementation would get wrong."""
from __future__ import annotations

import torch

from emotag_core.train import losses


def test_ssim_identity_and_penalty():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 32, 32, generator=g)
    assert abs(float(losses.ssim(x, x)) - 1.0) < 1e-5
    noisy = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    assert float(losses.ssim(noisy, x)) < 0.9
    assert float(losses.render_loss(x, x)) < 1e-5
    # Eq. 11: L1 + 0.2 * (1 - SSIM)
    want = (noisy - x).abs().mean() + 0.2 * (1 - losses.ssim(noisy, x))
    torch.testing.assert_close(losses.render_loss(noisy, x), want)


def test_kl_zero_at_match_and_direction():
    p = torch.tensor([[0.1, 0.0, 0.0, 0.6, 0.1, 0.0, 0.2]])
    z = torch.log(p.clamp_min(1e-12))
    assert float(losses.kl_loss(p, z)) < 1e-6
    z2 = torch.zeros(1, 7)
    want = float((p[p > 0] * (p[p > 0].log() - torch.log(torch.tensor(1 / 7)))).sum())
    assert abs(float(losses.kl_loss(p, z2)) - want) < 1e-5


def test_score_and_geo():
    g = torch.tensor([[0.2], [0.9]])
    e = torch.tensor([0.0, 1.0])
    assert abs(float(losses.score_loss(g, e)) - 0.15) < 1e-6
    d_gt = torch.zeros(1, 4, 4)
    d_gt[:, 1:3, 1:3] = 2.0
    d = d_gt + 0.5  # background pixels (gt 0) differ too but are ignored
    n = torch.zeros(1, 4, 4, 3)
    n[..., 2] = 1.0
    val = losses.geo_loss(d, d_gt, n, n)
    assert abs(float(val) - 0.01 * 0.5) < 1e-6
    n2 = torch.zeros(1, 4, 4, 3)
    n2[..., 0] = 1.0  # perpendicular: 1 - cos = 1
    assert abs(float(losses.geo_loss(d_gt, d_gt, n2, n)) - 0.001) < 1e-6


def test_param_loss_jaw_weight_scales_only_the_jaw_term():
    import pytest

    from emotag_core.errors import ConfigError
    from emotag_core.train.loop import LossSwitches

    g = torch.Generator().manual_seed(0)
    expr, expr_gt, jaw, jaw_gt = (torch.randn(4, n, generator=g) for n in (9, 9, 3, 3))
    e_term = (expr - expr_gt).abs().mean()
    j_term = (jaw - jaw_gt).abs().mean()
    for w in (0.0, 1.0, 4.0):
        torch.testing.assert_close(losses.param_loss(expr, jaw, expr_gt, jaw_gt, w), e_term + w * j_term)
    torch.testing.assert_close(losses.param_loss(expr, jaw, expr_gt, jaw_gt), e_term + j_term)  # default: equal
    with pytest.raises(ConfigError, match="param_jaw_weight"):
        LossSwitches(param_supervision=1.0, param_jaw_weight=-1.0)
    from emotag_core.config import AblationConfig

    assert LossSwitches.from_ablation(AblationConfig(), param_supervision=1.0, param_jaw_weight=3.0).param_jaw_weight == 3.0
