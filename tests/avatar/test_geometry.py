"""Depth/normal pseudo-GT (Eq. 14): mesh z-buffer maps, backends, table round trip."""
import numpy as np
import pytest
import torch

from emotag_core.avatar.geometry import (FlameGeometry, SapiensGeometry, decode_maps, encode_maps,
                                         render_mesh_maps)
from emotag_core.avatar.synthetic import look_at_K, uv_sphere
from emotag_core.errors import WeightsMissingError

torch.set_num_threads(1)  # 2 threads on the shared 2-core box wait on descheduled peers


def test_plane_depth_is_exact_and_normals_face_the_camera():
    # a tilted plane z = 0.5 + 0.2 x covering the view
    v = torch.tensor([[-1.0, -1.0, 0.0], [1.0, -1.0, 0.0], [1.0, 1.0, 0.0], [-1.0, 1.0, 0.0]])
    v[:, 2] = 0.5 + 0.2 * v[:, 0]
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    K = look_at_K(32, 20.0)[None]
    depth, normal, mask = render_mesh_maps(v[None], f, K, 32, 32)
    assert mask.all()
    # along a pixel ray (x/z = a): z = 0.5 / (1 - 0.2 a)
    a = (torch.arange(32) + 0.5 - 16) / 20.0
    want = 0.5 / (1 - 0.2 * a)
    assert torch.allclose(depth[0, 7], want, atol=1e-5)
    n_true = torch.nn.functional.normalize(torch.tensor([0.2, 0.0, -1.0]), dim=0)
    assert torch.allclose(normal[0].reshape(-1, 3), n_true.expand(32 * 32, 3), atol=1e-5)


def test_sphere_maps_shapes_ranges_and_occlusion():
    v, f = uv_sphere(32, 20, radius=0.1)
    verts = torch.stack([v + torch.tensor([0.0, 0.0, 0.5]), v + torch.tensor([0.05, 0.0, 0.7])])
    # frame 1 also holds a second sphere in front of it: the nearer surface must win
    both = torch.cat([verts[1:], (v + torch.tensor([0.05, 0.0, 0.35]))[None]], 1)
    f2 = torch.cat([f, f + v.shape[0]])
    K = look_at_K(40, 60.0)[None]
    d0, n0, m0 = render_mesh_maps(verts[:1], f, K, 40, 40)
    assert d0.shape == (1, 40, 40) and n0.shape == (1, 40, 40, 3) and m0.dtype == torch.bool
    assert d0[m0].min() >= 0.4 - 1e-3 and d0[m0].max() <= 0.5 + 1e-3 and (d0[~m0] == 0).all()
    assert torch.allclose(n0[m0].norm(dim=-1), torch.ones(int(m0.sum())), atol=1e-4)
    assert (n0[m0][:, 2] < 0).all() and (n0[~m0] == 0).all()
    assert d0[0, 20, 20] == pytest.approx(0.4, abs=2e-3)
    d1, _, m1 = render_mesh_maps(both, f2, K, 40, 40)
    r = torch.tensor([(24.5 - 20) / 60, (20.5 - 20) / 60, 1.0], dtype=torch.float64)
    c = torch.tensor([0.05, 0.0, 0.35], dtype=torch.float64)
    bq, cq = -2 * r.dot(c), c.dot(c) - 0.1 ** 2                          # ray-sphere: |t r - c| = R
    t = (-bq - torch.sqrt(bq * bq - 4 * r.dot(r) * cq)) / (2 * r.dot(r))
    assert d1[m1].max() < 0.7 and d1[0, 20, 24] == pytest.approx(float(t), abs=3e-3)


def test_flame_backend_scales_intrinsics_and_table_bytes_round_trip():
    v, f = uv_sphere(16, 10, radius=0.1)
    verts = (v + torch.tensor([0.0, 0.0, 0.5]))[None]
    K512 = look_at_K(512, 600.0)[None]
    teacher = FlameGeometry(f, size=32, frame_size=512)
    d, n = teacher.predict(None, verts, K512)
    d_direct, _, _ = render_mesh_maps(verts, f, look_at_K(32, 600.0 / 16)[None], 32, 32)
    assert torch.equal(d, d_direct) and d.shape == (1, 32, 32) and n.shape == (1, 32, 32, 3)
    db, nb = encode_maps(d, n)
    assert len(db[0]) == 32 * 32 * 2 and len(nb[0]) == 32 * 32 * 3 * 2    # float16
    d2, n2 = decode_maps(db[0], nb[0], 32)
    assert torch.allclose(d2, d[0], atol=1e-3) and torch.allclose(n2, n[0], atol=2e-3)


def test_sapiens_backend_missing_weights_and_torchscript_loading(tmp_path):
    with pytest.raises(WeightsMissingError, match="sapiens"):
        SapiensGeometry(None, str(tmp_path / "nope.pt"), size=16)

    class TinyDepth(torch.nn.Module):
        def forward(self, x):                      # [B, 3, h, w] -> [B, 1, h/4, w/4]
            return torch.nn.functional.avg_pool2d(x.mean(1, keepdim=True), 4)

    class TinyNormal(torch.nn.Module):
        def forward(self, x):                      # [B, 3, h, w] -> [B, 3, h/4, w/4]
            return torch.nn.functional.avg_pool2d(x, 4) + torch.tensor([0.0, 0.0, -10.0])[None, :, None, None]

    dp, npth = tmp_path / "depth.pt", tmp_path / "normal.pt"
    torch.jit.save(torch.jit.script(TinyDepth()), str(dp))
    torch.jit.save(torch.jit.script(TinyNormal()), str(npth))
    t = SapiensGeometry(str(dp), str(npth), size=16, input_hw=(64, 48))
    frames = torch.rand(2, 3, 128, 128)
    d, n = t.predict(frames, None, None)
    assert d.shape == (2, 16, 16) and n.shape == (2, 16, 16, 3)
    assert torch.allclose(n.norm(dim=-1), torch.ones(2, 16, 16), atol=1e-5)
    assert t.depth_units == "relative" and np.isfinite(d.numpy()).all()
