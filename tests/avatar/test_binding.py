"""Binding math (Eq. 3, 7, 8): Gaussians ride their triangles rigidly and scale with them."""
import math

import pytest
import torch

from emotag_core.avatar.binding import (MOUTH_OFFSET_DIM, GaussianAvatar, face_frames, quat_mul,
                                        quat_to_rotmat, rotmat_to_quat)
from emotag_core.avatar.synthetic import random_rotation, uv_sphere
from emotag_core.errors import InputError

torch.set_num_threads(1)  # 2 threads on the shared 2-core box wait on descheduled peers


@pytest.fixture(scope="module")
def avatar():
    v, f = uv_sphere(12, 8)
    return GaussianAvatar(v, f, n_gaussians=3 * f.shape[0], seed=3), v, f


def test_equal_count_per_triangle_and_barycentric_init(avatar):
    av, v, f = avatar
    counts = torch.bincount(av.parent, minlength=f.shape[0])
    assert (counts == 3).all()
    assert (av.bary >= 0).all() and torch.allclose(av.bary.sum(-1), torch.ones(av.n))
    g = av.bind(v[None])
    want = (av.bary[:, :, None] * v[f[av.parent]]).sum(1)        # Eq. 3
    assert torch.allclose(g.means[0], want, atol=1e-6)
    # same seed -> same layout; other seed -> different
    assert torch.equal(GaussianAvatar(v, f, 3 * f.shape[0], seed=3).bary, av.bary)
    assert not torch.equal(GaussianAvatar(v, f, 3 * f.shape[0], seed=4).bary, av.bary)


def test_a_budget_below_one_per_triangle_is_honoured():
    """A dense mesh (the ICT head: 15,748 triangles) under a small budget (the CPU profile's 2,000) gets
    exactly that many Gaussians, one per triangle on distinct triangles, instead of one on every triangle."""
    v, f = uv_sphere(24, 16)
    F = f.shape[0]
    av = GaussianAvatar(v, f, n_gaussians=F // 4)
    assert av.n == F // 4 and av.parent.unique().numel() == F // 4
    assert torch.equal(GaussianAvatar(v, f, n_gaussians=F // 4).parent, av.parent)  # the topology's layout
    # each Gaussian covers its share of the surface: 4x the area of a triangle's own, so 2x the spacing
    full = GaussianAvatar(v, f, n_gaussians=F, seed=0)
    ratio = (av.log_scale_l[:, 0] - full.log_scale_l[av.parent, 0]).exp()
    assert torch.allclose(ratio, torch.full_like(ratio, 2.0), rtol=1e-4)
    g = av.bind(v[None])
    assert torch.allclose(g.means[0], (av.bary[:, :, None] * v[f[av.parent]]).sum(1), atol=1e-6)
    with pytest.raises(InputError, match="n_gaussians"):
        GaussianAvatar(v, f, n_gaussians=0)


def test_rigid_motion_moves_gaussians_rigidly(avatar):
    av, v, f = avatar
    with torch.no_grad():                                   # non-trivial local attributes
        av.mu_l.add_(0.1 * torch.randn_like(av.mu_l))
        av.rot_l.copy_(torch.randn_like(av.rot_l))
        av.log_scale_l.add_(0.2 * torch.randn_like(av.log_scale_l))
    gen = torch.Generator().manual_seed(0)
    R = random_rotation(gen)
    t = torch.tensor([0.02, -0.01, 0.5])
    g0 = av.bind(v[None])
    g1 = av.bind((v @ R.T + t)[None])
    assert torch.allclose(g1.means[0], g0.means[0] @ R.T + t, atol=1e-5)
    assert torch.allclose(g1.scales, g0.scales, rtol=1e-4)
    assert torch.allclose(quat_to_rotmat(g1.quats[0]), R @ quat_to_rotmat(g0.quats[0]), atol=1e-5)
    # uniform scaling of the mesh scales Gaussian sizes and positions alike (k in Eq. 7)
    g2 = av.bind((2.0 * v)[None])
    assert torch.allclose(g2.scales, 2.0 * g0.scales, rtol=1e-4)
    assert torch.allclose(g2.means, 2.0 * g0.means, atol=1e-6)


def test_local_deformation_moves_only_the_touched_triangles(avatar):
    av, v, f = avatar
    v2 = v.clone()
    v2[5] += torch.tensor([0.0, 0.0, 0.03])
    g0, g1 = av.bind(v[None]), av.bind(v2[None])
    touched = (f[av.parent] == 5).any(-1)
    moved = (g1.means - g0.means).norm(dim=-1)[0] > 1e-7
    assert torch.equal(moved, touched)


def test_face_frames_orthonormal():
    v, f = uv_sphere(8, 6)
    R, C, k = face_frames(v[None], f)
    eye = torch.eye(3).expand_as(R)
    assert torch.allclose(R.transpose(-1, -2) @ R, eye, atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(R.shape[:2]), atol=1e-5)
    assert (k > 0).all()


def test_rotmat_quat_roundtrip_including_half_turns():
    gen = torch.Generator().manual_seed(1)
    Rs = [random_rotation(gen, dtype=torch.float64) for _ in range(50)]
    Rs += [torch.diag(torch.tensor(d, dtype=torch.float64)) for d in ([1, -1, -1], [-1, 1, -1], [-1, -1, 1])]
    R = torch.stack(Rs)
    assert torch.allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-6)
    q1, q2 = torch.randn(2, 4, dtype=torch.float64)
    assert torch.allclose(quat_to_rotmat(quat_mul(q1, q2)), quat_to_rotmat(q1) @ quat_to_rotmat(q2), atol=1e-9)


def test_mouth_offsets_touch_only_mouth_gaussians():
    v, f = uv_sphere(12, 8)
    mask = v[:, 2] > 0.07                                    # a cap of the sphere as "mouth"
    av = GaussianAvatar(v, f, n_gaussians=2 * f.shape[0], mouth_vertex_mask=mask)
    M = av.n_mouth
    assert 0 < M < av.n
    off = torch.randn(2, M, MOUTH_OFFSET_DIM) * 0.01
    g0 = av.bind(v[None].repeat(2, 1, 1))
    g1 = av.bind(v[None].repeat(2, 1, 1), mouth_offsets=off)
    changed = ((g1.means - g0.means).abs().sum(-1) > 0).any(0)
    assert changed.nonzero().flatten().tolist() == av.mouth_gaussians.tolist()
    assert torch.allclose(g1.means[:, av.mouth_gaussians], g0.means[:, av.mouth_gaussians] + off[..., :3])  # Eq. 8
    assert torch.allclose(g1.scales[:, av.mouth_gaussians], g0.scales[:, av.mouth_gaussians] * off[..., 7:].exp(), rtol=1e-5)
    with pytest.raises(InputError, match="mouth_offsets"):
        av.bind(v[None], mouth_offsets=torch.zeros(1, M + 1, MOUTH_OFFSET_DIM))


def test_gradients_reach_local_attributes(avatar):
    av, v, f = avatar
    g = av.bind(v[None] + torch.tensor([0, 0, 0.5]))
    (g.means.sum() + g.scales.sum() + g.quats.sum() + g.opacities.sum() + g.sh.sum()).backward()
    for p in (av.mu_l, av.rot_l, av.log_scale_l, av.opacity_logit, av.sh):
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert math.isfinite(float(av.mu_l.grad.sum()))
