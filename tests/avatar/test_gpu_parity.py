"""gsplat (CUDA) vs the pure-PyTorch rasterizer on the same scene: images and gradients agree."""
import pytest
import torch

from emotag_core.avatar.binding import GaussianAvatar
from emotag_core.avatar.rasterize import rasterize
from emotag_core.avatar.synthetic import look_at_K, random_rotation, uv_sphere

pytestmark = pytest.mark.gpu


def _scene(device, B=2, size=96, sh_degree=1):
    torch.manual_seed(0)
    v, f = uv_sphere(24, 16, radius=0.08)
    av = GaussianAvatar(v, f, n_gaussians=6 * f.shape[0], sh_degree=sh_degree, seed=1).to(device)
    with torch.no_grad():
        av.sh.add_(0.5 * torch.randn_like(av.sh))
        av.opacity_logit.add_(torch.randn_like(av.opacity_logit))
        av.rot_l.add_(0.3 * torch.randn_like(av.rot_l))
        av.log_scale_l.add_(0.3 * torch.randn_like(av.log_scale_l))
    gen = torch.Generator().manual_seed(2)
    verts = torch.stack([v @ random_rotation(gen, 0.5).T + torch.tensor([0.01 * b, 0.0, 0.5]) for b in range(B)]).to(device)
    K = look_at_K(size, 1.2 * size).to(device)[None].repeat(B, 1, 1)
    vm = torch.eye(4, device=device)[None].repeat(B, 1, 1)
    bg = torch.rand(B, 3, device=device)
    return av, verts, K, vm, bg, size


def _render_and_grads(backend, av, verts, K, vm, bg, size, weights):
    av.zero_grad()
    out = rasterize(av.bind(verts), K, vm, size, size, background=bg, backend=backend)
    loss = sum((w * m).sum() for w, m in zip(weights, (out.color, out.alpha, out.depth, out.normal)))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in av.named_parameters()}
    return out, grads


def test_gsplat_matches_torch_backend_images_and_gradients():
    dev = torch.device("cuda")
    av, verts, K, vm, bg, size = _scene(dev)
    with torch.no_grad():
        ref = rasterize(av.bind(verts), K, vm, size, size, background=bg, backend="torch")
    g = torch.Generator(device=dev).manual_seed(3)
    weights = [torch.rand(m.shape, device=dev, generator=g) for m in (ref.color, ref.alpha, ref.depth, ref.normal)]
    out_t, gr_t = _render_and_grads("torch", av, verts, K, vm, bg, size, weights)
    out_g, gr_g = _render_and_grads("gsplat", av, verts, K, vm, bg, size, weights)
    assert out_t.alpha.max() > 0.99 and (out_t.alpha < 1e-3).any()       # both head and background present
    for name in ("color", "alpha", "depth", "normal"):
        a, b = getattr(out_t, name), getattr(out_g, name)
        diff = (a - b).abs()
        print(f"{name}: mean |d| {diff.mean():.2e}, p99 {diff.flatten().quantile(0.99):.2e}, max {diff.max():.2e}")
        assert diff.mean() < 1e-4, name
        assert diff.flatten().quantile(0.99) < 2e-3, name
    for name, gt in gr_t.items():
        gg = gr_g[name]
        rel = (gt - gg).norm() / gt.norm()
        cos = torch.nn.functional.cosine_similarity(gt.flatten(), gg.flatten(), dim=0)
        print(f"grad {name}: rel err {rel:.2e}, cos {cos:.6f}")
        assert rel < 2e-2 and cos > 0.999, name


def test_gsplat_backend_is_auto_on_cuda_and_batches_independently():
    dev = torch.device("cuda")
    av, verts, K, vm, bg, size = _scene(dev, B=3, sh_degree=0)
    with torch.no_grad():
        both = rasterize(av.bind(verts), K, vm, size, size, background=bg)
        one = rasterize(av.bind(verts[1:2]), K[1:2], vm[1:2], size, size, background=bg[1:2], backend="gsplat")
    assert torch.allclose(both.color[1:2], one.color, atol=1e-5)
    assert not torch.allclose(both.color[0], both.color[1], atol=1e-3)
