"""The pure-PyTorch rasterizer: correct image formation and exact gradients (float64 gradcheck)."""
import math

import pytest
import torch

from emotag_core.avatar.binding import GaussianAvatar, Gaussians
from emotag_core.avatar.cpu_raster import ALPHA_MAX, ALPHA_MIN, T_MIN, project, rasterize_torch
from emotag_core.avatar.rasterize import eval_sh, rasterize
from emotag_core.avatar.synthetic import look_at_K, uv_sphere
from emotag_core.errors import ConfigError, InputError

torch.set_num_threads(1)  # 2 threads on the shared 2-core box wait on descheduled peers


def _scene(n=12, seed=0, dtype=torch.float64, B=1):
    g = torch.Generator().manual_seed(seed)
    means = torch.cat([(torch.rand(B, n, 2, generator=g, dtype=dtype) - 0.5) * 0.12,
                       0.4 + 0.2 * torch.rand(B, n, 1, generator=g, dtype=dtype)], -1)
    quats = torch.randn(B, n, 4, generator=g, dtype=dtype)
    scales = 0.004 + 0.01 * torch.rand(B, n, 3, generator=g, dtype=dtype)
    opac = 0.3 + 0.6 * torch.rand(B, n, generator=g, dtype=dtype)
    feats = torch.rand(B, n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opac, feats


def _brute_force(means, quats, scales, opac, feats, viewmat, K, W, H):
    """Every pixel against every Gaussian, sorted by depth: the definition, no tiles or chunks."""
    m2, con, z, valid = project(means, quats, scales, viewmat, K, W, H)
    B, N = z.shape
    ys, xs = torch.meshgrid(torch.arange(H, dtype=means.dtype) + 0.5, torch.arange(W, dtype=means.dtype) + 0.5, indexing="ij")
    out = torch.zeros(B, H, W, feats.shape[-1] + 2, dtype=means.dtype)
    for b in range(B):
        order = torch.argsort(z[b])
        T = torch.ones(H, W, dtype=means.dtype)
        done = torch.zeros(H, W, dtype=torch.bool)
        for i in order.tolist():
            if not valid[b, i]:
                continue
            dx, dy = xs - m2[b, i, 0], ys - m2[b, i, 1]
            a, bb, c = con[b, i]
            sig = 0.5 * (a * dx * dx + c * dy * dy) + bb * dx * dy
            al = torch.clamp(opac[b, i] * torch.exp(-sig), max=ALPHA_MAX)
            use = (sig >= 0) & (al >= ALPHA_MIN) & ~done
            nT = T * (1 - al)
            done |= use & (nT <= T_MIN)
            use &= nT > T_MIN
            w = torch.where(use, al * T, torch.zeros_like(al))
            out[b, ..., :-2] += w[..., None] * feats[b, i]
            out[b, ..., -2] += w
            out[b, ..., -1] += w * z[b, i]
            T = torch.where(use, nT, T)
    return out[..., :-2], out[..., -2:-1], out[..., -1:]


def test_tiled_chunked_compositing_matches_the_definition():
    W, H = 40, 28                                   # not a multiple of the tile: edge tiles are cropped
    means, quats, scales, opac, feats = _scene(n=40, seed=1, B=2)
    opac[0, :5] = 0.99                              # saturate some pixels: early termination path
    K = look_at_K(32, 60.0).double()[None].repeat(2, 1, 1)
    K[:, 0, 2], K[:, 1, 2] = W / 2, H / 2
    vm = torch.eye(4, dtype=torch.float64)[None].repeat(2, 1, 1)
    ref = _brute_force(means, quats, scales, opac, feats, vm, K, W, H)
    got = rasterize_torch(means, quats, scales, opac, feats, vm, K, W, H, tile=8, budget=4096)  # many chunks
    for r, o in zip(ref, got):
        assert torch.allclose(r, o, atol=1e-10)
    assert ref[1].max() > 0.99 and ref[1].min() == 0


def test_single_gaussian_peak_depth_and_opacity():
    means = torch.tensor([[[0.0, 0.0, 0.5]]], dtype=torch.float64)
    quats = torch.tensor([[[1.0, 0, 0, 0]]], dtype=torch.float64)
    scales = torch.full((1, 1, 3), 0.01, dtype=torch.float64)
    opac = torch.tensor([[0.7]], dtype=torch.float64)
    K = look_at_K(64, 100.0).double()[None]
    K[0, 0, 2], K[0, 1, 2] = 30.2, 35.7                                       # projected centre
    vm = torch.eye(4, dtype=torch.float64)[None]
    feat, alpha, zacc = rasterize_torch(means, quats, scales, opac, torch.ones(1, 1, 3, dtype=torch.float64), vm, K, 64, 64)
    peak = torch.nonzero(alpha[0, ..., 0] == alpha.max())[0]
    assert peak.tolist() == [35, 30]
    # 2D variance = (f * s / z)^2 = 4 px^2, plus the 0.3 px^2 blur
    var = (100 * 0.01 / 0.5) ** 2 + 0.3
    for (r, c) in ((35, 30), (38, 27), (35, 33)):
        d2 = (c + 0.5 - 30.2) ** 2 + (r + 0.5 - 35.7) ** 2
        assert alpha[0, r, c, 0].item() == pytest.approx(0.7 * math.exp(-0.5 * d2 / var), rel=1e-9)
    hit = alpha > 0
    assert torch.allclose(zacc[hit] / alpha[hit], torch.full_like(zacc[hit], 0.5))
    # behind the camera / near plane: nothing
    feat2, alpha2, _ = rasterize_torch(-means, quats, scales, opac, torch.ones(1, 1, 3, dtype=torch.float64), vm, K, 64, 64)
    assert alpha2.abs().max() == 0


def test_gradcheck_float64_tiny_scene():
    means, quats, scales, opac, feats = _scene(n=5, seed=2)
    K = look_at_K(12, 40.0).double()[None]
    vm = torch.eye(4, dtype=torch.float64)[None]
    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, opac, feats))

    def fn(m, q, s, o, f):
        feat, alpha, zacc = rasterize_torch(m, q, s, o, f, vm, K, 12, 12, tile=4)
        return feat, alpha, zacc

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_gradcheck_through_rasterize_with_background_depth_and_normals():
    means, quats, scales, opac, _ = _scene(n=4, seed=5)
    sh = 0.3 * torch.randn(1, 4, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    K = look_at_K(8, 30.0).double()[None]
    vm = torch.eye(4, dtype=torch.float64)[None]
    vm[0, :3, 3] = torch.tensor([0.01, 0.0, 0.02], dtype=torch.float64)           # a non-identity camera
    bg = torch.tensor([0.2, 0.3, 0.4], dtype=torch.float64)

    def fn(m, q, s, h):
        g = Gaussians(means=m, quats=q, scales=s, opacities=opac[0], sh=h)
        out = rasterize(g, K, vm, 8, 8, background=bg, backend="torch", tile=8)
        return out.color, out.depth, out.normal

    inputs = tuple(t.clone().requires_grad_(True) for t in (means, quats, scales, sh))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)


def test_render_maps_of_a_sphere():
    v, f = uv_sphere(24, 16, radius=0.08)
    av = GaussianAvatar(v, f, n_gaussians=4 * f.shape[0], init_opacity=0.95)
    verts = (v + torch.tensor([0.0, 0.0, 0.5]))[None]
    out = rasterize(av.bind(verts), look_at_K(48, 100.0)[None], torch.eye(4)[None], 48, 48,
                    background=torch.tensor([0.0, 1.0, 0.0]))
    hit = out.alpha[0, ..., 0] > 0.9
    assert hit.sum() > 200 and out.alpha[0, 0, 0, 0] < 1e-3
    assert torch.allclose(out.color[0, 0, 0], torch.tensor([0.0, 1.0, 0.0]), atol=1e-3)     # background
    d = out.depth[0, ..., 0][hit]
    assert d.min() > 0.5 - 0.08 - 0.01 and d.max() < 0.5 + 0.01
    n = out.normal[0][hit]
    assert (n[:, 2] < 0).float().mean() > 0.95                              # facing the camera
    c = out.normal[0, 24, 24] / out.normal[0, 24, 24].norm()
    assert c[2] < -0.95                                                     # centre looks straight back


def test_sh_degree_one_is_view_dependent_and_backend_errors():
    sh = torch.zeros(1, 4, 3)
    sh[0, 3, 0] = 1.0                                                       # x-lobe on red
    r_pos = eval_sh(sh, torch.tensor([[1.0, 0, 0]]))[0, 0]
    r_neg = eval_sh(sh, torch.tensor([[-1.0, 0, 0]]))[0, 0]
    assert r_neg > 0.5 > r_pos
    v, f = uv_sphere(6, 4)
    g = GaussianAvatar(v, f, 100).bind(v[None] + torch.tensor([0, 0, 0.5]))
    with pytest.raises(ConfigError, match="CUDA"):
        rasterize(g, look_at_K(8, 10.0)[None], torch.eye(4)[None], 8, 8, backend="gsplat")
    with pytest.raises(InputError, match="K must be"):
        rasterize(g, look_at_K(8, 10.0), torch.eye(4)[None], 8, 8)
