"""The rasteriser on tiny scenes: coverage, z-buffer order, perspective-correct texture lookup."""
from __future__ import annotations

import numpy as np

from emotag_core.synth.render import rasterize, render_textured, sample_bilinear, vertex_normals


def test_zbuffer_keeps_the_nearer_triangle_whatever_the_order():
    # two overlapping triangles covering the image centre; the second is nearer
    far = [[2, 2, 5.0], [60, 2, 5.0], [2, 60, 5.0]]
    near = [[10, 10, 2.0], [60, 10, 2.0], [10, 60, 2.0]]
    for order in ((far, near), (near, far)):
        pts = np.array(order[0] + order[1], dtype=float)
        r = rasterize(pts, np.array([[0, 1, 2], [3, 4, 5]]), 64, 64)
        near_id = 1 if order[1] is near else 0
        assert r.tri[20, 20] == near_id and abs(r.depth[20, 20] - 2.0) < 1e-5
        assert r.tri[4, 4] == 1 - near_id and abs(r.depth[4, 4] - 5.0) < 1e-5
        assert r.tri[63, 63] == -1 and np.isinf(r.depth[63, 63])


def test_coverage_matches_the_triangle_area_and_barycentrics_sum_to_one():
    pts = np.array([[0, 0, 1.0], [40, 0, 1.0], [0, 40, 1.0]])
    r = rasterize(pts, np.array([[0, 1, 2]]), 64, 64)
    assert abs(r.mask.sum() - 0.5 * 41 * 41) < 45            # edge pixels are the only slack
    assert np.allclose(r.bary[r.mask].sum(1), 1.0, atol=1e-5)
    # a pixel's barycentrics reproduce its own position
    ys, xs = np.nonzero(r.mask)
    pos = np.einsum("nk,kc->nc", r.bary[ys, xs], pts[:, :2])
    assert np.allclose(pos, np.c_[xs, ys], atol=1e-4)


def test_texture_lookup_is_perspective_correct():
    # a quad receding in depth with a left/right two-colour texture: the colour boundary
    # (u = 0.5) must appear where the 3-D midpoint projects, not at the screen midpoint
    f, c = 50.0, 32.0
    X = np.array([[-1, -1, 2.0], [1, -1, 6.0], [1, 1, 6.0], [-1, 1, 2.0]])
    screen = np.c_[f * X[:, 0] / X[:, 2] + c, f * X[:, 1] / X[:, 2] + c, X[:, 2]]
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    uv = np.array([[0, 0], [1, 0], [1, 1], [0, 1]], dtype=float)
    tex = np.zeros((8, 8, 3), np.uint8)
    tex[:, 4:] = 255                                          # right half white
    img, r = render_textured(screen, faces, uv[faces], tex, np.full((64, 64, 3), 128, np.uint8))
    row = img[32, :, 0].astype(int)
    mid3d = f * 0.0 / 4.0 + c                                 # X=(0, 0, 4) projects to x = c
    screen_mid = 0.5 * (screen[0, 0] + screen[1, 0])
    boundary = np.argmax(row > 128)
    assert abs(boundary - mid3d) <= 1.5 and abs(boundary - screen_mid) > 5
    assert (img[r.tri < 0] == 128).all()                      # background untouched


def test_bilinear_sampling_and_normals():
    img = np.arange(16, dtype=np.float32).reshape(4, 4, 1)
    assert np.isclose(sample_bilinear(img, np.array([[1.5, 2.0]]))[0, 0], 9.5)
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=float)
    n = vertex_normals(v, np.array([[0, 1, 2]]))
    assert np.allclose(n, [0, 0, 1])
