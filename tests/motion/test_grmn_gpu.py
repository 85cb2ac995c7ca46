"""GRMN on CUDA computes the same function as on the CPU (outputs and gradients), paper-size model."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from emotag_core.motion.grmn import GRMN, GRMNSpec

pytestmark = pytest.mark.gpu


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm().clamp_min(1e-12))


@pytest.mark.parametrize("conv_tf32", [False, True])
def test_grmn_cpu_cuda_parity(conv_tf32):
    """conv_tf32=True is PyTorch's default on CUDA: cuDNN convolutions (the audio CNN) in TF32."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = conv_tf32
    torch.manual_seed(0)
    # the paper profile's sizes (d_model 256, 4 layers) with Wav2Vec2-base features and a FLAME-like head
    sp = GRMNSpec(audio_dim=768, n_aus=6, identity_dim=128, n_expr=50, n_mouth=400)
    cpu = GRMN(sp).train()
    with torch.no_grad():  # trained-like decoder scales so the outputs are not ~0
        for m in (cpu.decoder.base[-1], cpu.decoder.emo_decoder[-1]):
            m.weight.normal_(std=0.05)
        for p in cpu.adain_parameters():
            p.normal_(std=0.1)
    gpu = copy.deepcopy(cpu).cuda()
    g = torch.Generator().manual_seed(1)
    B = 8
    a = torch.randn(B, sp.window, sp.audio_dim, generator=g)
    e = torch.rand(B, sp.window, sp.n_aus, generator=g) * 5
    s = torch.randn(B, sp.identity_dim, generator=g)
    oc = cpu(a, e, s)
    og = gpu(a.cuda(), e.cuda(), s.cuda())
    tol = 5e-3 if conv_tf32 else 1e-4  # tf32 rounds operands to 10 mantissa bits
    for k in ("expr", "jaw", "mouth", "g", "z_e", "delta_b", "delta_r"):
        r = _rel(getattr(og, k).cpu(), getattr(oc, k))
        assert r < tol, (k, r)
    assert float(og.g.min()) >= 0 and float(og.g.max()) <= 1

    def loss(o):
        return o.expr.pow(2).sum() + o.jaw.pow(2).sum() + o.mouth.pow(2).sum() + o.z_e.logsumexp(-1).sum() + o.g.sum()

    loss(oc).backward()
    loss(og).backward()
    # biases right before AdaIN's instance norm over time: a constant over time is normalised away,
    # so their gradient is 0 analytically and only cancellation noise on either device
    before_in = {"encoder.au.mlp.4.bias", f"encoder.audio.transformer.layers.{sp.n_layers - 1}.linear2.bias"}
    med = float(torch.tensor([float(p.grad.norm()) for p in cpu.parameters()]).median())
    worst, zero = {}, []
    for (n, pc), (_, pg) in zip(cpu.named_parameters(), gpu.named_parameters()):
        assert pg.grad is not None and torch.isfinite(pg.grad).all(), n
        if n in before_in:
            zero.append(n)
            assert float(pc.grad.norm()) < 1e-3 * med and float(pg.grad.norm()) < 1e-3 * med, n
            continue
        if conv_tf32:  # TF32 rounding compounds through backward: compare directions
            cos = F.cosine_similarity(pg.grad.cpu().double().flatten(), pc.grad.double().flatten(), dim=0)
            worst[n] = 1.0 - float(cos)
        else:
            worst[n] = _rel(pg.grad.cpu(), pc.grad)
    bad = {n: r for n, r in worst.items() if r > (1e-2 if conv_tf32 else 1e-3)}
    assert not bad, bad
    assert len(zero) == 2, zero


def test_grmn_batch_invariance_on_cuda():
    """A frame's motion does not depend on which other frames share its batch (no cross-talk)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    sp = GRMNSpec(audio_dim=320, n_aus=6, identity_dim=128, n_expr=19, n_mouth=50)
    m = GRMN(sp).cuda().eval()
    g = torch.Generator(device="cuda").manual_seed(0)
    a = torch.randn(32, sp.window, sp.audio_dim, device="cuda", generator=g)
    e = torch.rand(32, sp.window, sp.n_aus, device="cuda", generator=g) * 5
    s = torch.randn(32, sp.identity_dim, device="cuda", generator=g)
    with torch.no_grad():
        full = m(a, e, s)
        for i in (0, 17, 31):
            one = m(a[i:i + 1], e[i:i + 1], s[i:i + 1])
            for k in ("delta_b", "delta_r", "g", "z_e"):
                assert _rel(getattr(one, k)[0], getattr(full, k)[i]) < 1e-4, (i, k)
