"""Mouth region (Sec. 3.1): lifted lip landmarks, nearest vertices, constrained region growing."""
import torch

from emotag_core.avatar.binding import GaussianAvatar
from emotag_core.avatar.mouth import (MOUTH_LANDMARKS, MouthRegionConfig, gaussians_in_region, grow_mouth_region,
                                      lift_landmarks, nearest_vertices, vertex_neighbours)
from emotag_core.avatar.synthetic import grid_with_mouth

FWD = torch.tensor([0.0, 0.0, -1.0])   # the face looks at the camera (-z)


def test_region_is_the_pocket_and_its_rim_only():
    v, f, lips, cavity = grid_with_mouth()
    region = grow_mouth_region(v, f, lips, forward=FWD)
    assert region[cavity].all(), "every intra-oral vertex is reached"
    # nothing far from the mouth on the flat face
    r2 = (v[:, 0] / 0.025) ** 2 + (v[:, 1] / 0.012) ** 2
    assert not region[r2 > 1.15 ** 2 * 1.05].any()
    assert region.sum() < 2 * cavity.sum() + len(lips) * 2


def test_region_growing_is_contiguous_over_mesh_edges():
    v, f, lips, cavity = grid_with_mouth()
    # a detached patch of geometry inside the mouth's footprint (e.g. a loose part) is not reached
    extra_v = torch.tensor([[0.0, 0.0, 0.01], [0.002, 0.0, 0.01], [0.0, 0.002, 0.01]])
    v2 = torch.cat([v, extra_v])
    f2 = torch.cat([f, torch.tensor([[0, 1, 2]]) + v.shape[0]])
    region = grow_mouth_region(v2, f2, lips, forward=FWD)
    assert not region[v.shape[0]:].any()
    assert region[: v.shape[0]][cavity].all()


def test_depth_constraint_limits_growth_into_the_head():
    v, f, lips, cavity = grid_with_mouth(depth=0.04)
    shallow = grow_mouth_region(v, f, lips, forward=FWD, cfg=MouthRegionConfig(depth=0.2))   # 0.2 * width = 1 cm
    assert not shallow[v[:, 2] > 0.0101].any()
    assert shallow[cavity & (v[:, 2] < 0.009)].all()


def test_default_forward_and_allowed_mask():
    v, f, lips, cavity = grid_with_mouth()
    # mesh centroid behind the face plane, so the default forward must point to -z
    back = torch.tensor([[0.0, 0.0, 0.5]])
    v2 = torch.cat([v, back])
    r_default = grow_mouth_region(v2, f, lips)[: v.shape[0]]
    assert torch.equal(r_default, grow_mouth_region(v, f, lips, forward=FWD))
    allowed = v[:, 1] <= 0                                   # only the upper half may join
    r = grow_mouth_region(v, f, lips, forward=FWD, allowed=allowed)
    seeds = nearest_vertices(v, lips)
    grown = r.clone()
    grown[seeds] = False
    assert not grown[~allowed].any() and r[cavity & allowed].all()


def test_lift_and_nearest_vertices():
    v, f, _, _ = grid_with_mouth(n=11)
    fid = torch.tensor([0, 7, 33])
    bary = torch.tensor([[1.0, 0, 0], [0.2, 0.3, 0.5], [0, 0, 1.0]])
    pts = lift_landmarks(v, f, fid, bary)
    assert torch.allclose(pts[0], v[f[0, 0]]) and torch.allclose(pts[2], v[f[33, 2]])
    assert torch.allclose(pts[1], 0.2 * v[f[7, 0]] + 0.3 * v[f[7, 1]] + 0.5 * v[f[7, 2]])
    assert nearest_vertices(v, pts[[0, 2]]).tolist() == [int(f[0, 0]), int(f[33, 2])]
    nb = vertex_neighbours(f, v.shape[0])
    assert nb[0].tolist() == [1, 11] and nb[12].tolist() == [1, 2, 11, 13, 22, 23]
    assert len(MOUTH_LANDMARKS) == 40 and len(set(MOUTH_LANDMARKS)) == 40


def test_mouth_gaussians_are_fixed_and_inside():
    v, f, lips, _ = grid_with_mouth()
    region = grow_mouth_region(v, f, lips, forward=FWD)
    a1 = GaussianAvatar(v, f, n_gaussians=4 * f.shape[0], mouth_vertex_mask=region, seed=0)
    a2 = GaussianAvatar(v, f, n_gaussians=4 * f.shape[0], mouth_vertex_mask=region, seed=0)
    assert torch.equal(a1.mouth_gaussians, a2.mouth_gaussians)
    idx = a1.mouth_gaussians
    assert torch.equal(idx, idx.sort().values)
    # every mouth Gaussian sits on a triangle touching the region; all-region triangles are all in
    tri_in = region[f[a1.parent]]
    assert tri_in[idx].any(-1).all()
    full = tri_in.all(-1)
    assert set(full.nonzero().flatten().tolist()) <= set(idx.tolist())
    assert torch.equal(gaussians_in_region(torch.zeros_like(region), f, a1.parent, a1.bary), idx[:0])


def test_mouth_region_on_the_open_head_model():
    from emotag_core.avatar.mouth import mouth_region_for_head
    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    head = load_head_model(FlameConfig(), "cpu")
    verts, region = mouth_region_for_head(head)
    assert region.shape == (head.n_verts,)
    # the augmented intra-oral geometry (cavity + teeth) is reached from the lips
    assert region[head.mouth_vertex_ids].float().mean() > 0.9
    assert region[head.teeth_vertex_ids].float().mean() > 0.9
    # nose tip, eye corners, chin and forehead are not
    lm = head.landmarks(verts[None])[0]
    far = nearest_vertices(verts, lm[[1, 4, 33, 263, 152, 10]])
    assert not region[far].any()
    av = GaussianAvatar(verts, head.faces, n_gaussians=20 * head.faces.shape[0], mouth_vertex_mask=region)
    assert 0 < av.n_mouth < 0.5 * av.n


def test_mouth_set_is_identity_independent():
    """Two identities (different shapes) on one template get the same Gaussian layout and mouth set."""
    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model
    from emotag_core.avatar.scene import build_scene

    torch.set_num_threads(1)
    head = load_head_model(FlameConfig(), "cpu")
    gen = torch.Generator().manual_seed(0)
    cam = {"fx": 1000.0, "fy": 1000.0, "cx": 256.0, "cy": 256.0}
    scenes = [build_scene(head, {"shape": (2.0 * torch.randn(head.n_shape, generator=gen)).tolist(),
                                 "frame_size": [512, 512], "camera": cam}, n_gaussians=3000, backend="torch")
              for _ in range(2)]
    a, b = scenes[0].avatar, scenes[1].avatar
    assert not torch.allclose(scenes[0].shape, scenes[1].shape)
    assert a.n_mouth > 0 and a.n_mouth == b.n_mouth
    assert torch.equal(a.mouth_gaussians, b.mouth_gaussians)
    assert torch.equal(a.parent, b.parent) and torch.equal(a.bary, b.bary)
    # the mouth set is the Gaussians whose barycentric centre lies on the template's intra-oral vertices
    mask = torch.zeros(head.n_verts, dtype=torch.bool)
    mask[head.mouth_vertex_ids] = True
    assert torch.equal(a.mouth_gaussians, gaussians_in_region(mask, head.faces, a.parent, a.bary))
    # another budget changes the layout deterministically, still equal across identities
    c = build_scene(head, {"shape": scenes[1].shape[0].tolist(), "frame_size": [512, 512], "camera": cam},
                    n_gaussians=1500, backend="torch").avatar
    assert c.n != a.n
