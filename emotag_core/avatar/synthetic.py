"""Small generated meshes and scenes for tests, benchmarks and CPU smoke runs (no head model needed)."""
from __future__ import annotations

import math

import torch
from torch import Tensor


def uv_sphere(n_lon: int = 16, n_lat: int = 12, radius: float = 0.1) -> tuple[Tensor, Tensor]:
    """A closed UV sphere: verts [V, 3], faces [F, 3] (F = 2 * n_lon * (n_lat - 1)), outward winding."""
    verts = [[0.0, -radius, 0.0]]
    for i in range(1, n_lat):
        th = math.pi * i / n_lat
        for j in range(n_lon):
            ph = 2 * math.pi * j / n_lon
            verts.append([radius * math.sin(th) * math.cos(ph), -radius * math.cos(th), radius * math.sin(th) * math.sin(ph)])
    verts.append([0.0, radius, 0.0])
    top = len(verts) - 1
    faces = []
    ring = lambda i, j: 1 + (i - 1) * n_lon + (j % n_lon)  # noqa: E731
    for j in range(n_lon):
        faces.append([0, ring(1, j), ring(1, j + 1)])
    for i in range(1, n_lat - 1):
        for j in range(n_lon):
            a, b, c, d = ring(i, j), ring(i, j + 1), ring(i + 1, j), ring(i + 1, j + 1)
            faces += [[a, c, b], [b, c, d]]
    for j in range(n_lon):
        faces.append([top, ring(n_lat - 1, j + 1), ring(n_lat - 1, j)])
    v = torch.tensor(verts)
    f = torch.tensor(faces)
    # make winding outward
    tri = v[f]
    n = torch.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], dim=-1)
    flip = (n * tri.mean(1)).sum(-1) < 0
    f[flip] = f[flip][:, [0, 2, 1]]
    return v, f


def grid_with_mouth(n: int = 25, size: float = 0.1, mouth_a: float = 0.025, mouth_b: float = 0.012,
                    depth: float = 0.02) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """A face-like plane (z = 0, facing -z i.e. the camera) with an elliptical pocket pushed back
    (+z) inside the mouth ellipse. -> verts [V, 3], faces [F, 3], lip_points [L, 3] on the rim,
    cavity [V] bool (vertices strictly inside the ellipse)."""
    xs = torch.linspace(-size / 2, size / 2, n)
    yy, xx = torch.meshgrid(xs, xs, indexing="ij")
    r2 = (xx / mouth_a) ** 2 + (yy / mouth_b) ** 2
    cavity = r2 < 1.0
    zz = torch.where(cavity, depth * (1 - r2), torch.zeros_like(r2))
    verts = torch.stack([xx, yy, zz], -1).reshape(-1, 3)
    faces = []
    for i in range(n - 1):
        for j in range(n - 1):
            a, b, c, d = i * n + j, i * n + j + 1, (i + 1) * n + j, (i + 1) * n + j + 1
            faces += [[a, b, c], [b, d, c]]
    t = torch.linspace(0, 2 * math.pi, 21)[:-1]
    lips = torch.stack([mouth_a * torch.cos(t), mouth_b * torch.sin(t), torch.zeros_like(t)], -1)
    return verts, torch.tensor(faces), lips, cavity.reshape(-1)


def look_at_K(size: int, focal: float) -> Tensor:
    """Pinhole intrinsics [3, 3] of a size x size image with the principal point at the centre."""
    return torch.tensor([[focal, 0.0, size / 2], [0.0, focal, size / 2], [0.0, 0.0, 1.0]])


def random_rotation(generator: torch.Generator, max_angle: float = math.pi, dtype=torch.float32) -> Tensor:
    """A random rotation matrix [3, 3] of angle up to `max_angle` (Rodrigues)."""
    axis = torch.randn(3, generator=generator, dtype=torch.float64)
    axis = axis / axis.norm()
    ang = (torch.rand(1, generator=generator, dtype=torch.float64) * 2 - 1) * max_angle
    Kx = torch.tensor([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]], dtype=torch.float64)
    R = torch.eye(3, dtype=torch.float64) + torch.sin(ang) * Kx + (1 - torch.cos(ang)) * Kx @ Kx
    return R.to(dtype)
