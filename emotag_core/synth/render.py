"""A small textured triangle rasteriser (CPU, vectorised numpy) with a z-buffer.

Conventions: screen points are `(x, y, z)` with x, y in pixels (pixel centres at integer
coordinates, x right, y down, as in OpenCV) and z the camera-space depth in metres (> 0).
Barycentric weights are perspective-correct. Triangles are two-sided.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Raster:
    """Which triangle covers each pixel, where inside it, and how far away."""

    tri: np.ndarray
    """[H, W] int64 triangle index, -1 where no triangle covers the pixel."""
    bary: np.ndarray
    """[H, W, 3] float32 perspective-correct barycentric weights (0 on background)."""
    depth: np.ndarray
    """[H, W] float32 camera-space depth, +inf on background."""

    @property
    def mask(self) -> np.ndarray:
        return self.tri >= 0


def rasterize(screen: np.ndarray, faces: np.ndarray, height: int, width: int, near: float = 1e-4) -> Raster:
    """Rasterise triangles `faces` [F, 3] of points `screen` [V, 3] (x px, y px, depth) with a z-buffer."""
    screen = np.asarray(screen, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    tri_xyz = screen[faces]                                   # [F, 3, 3]
    x, y, z = tri_xyz[..., 0], tri_xyz[..., 1], tri_xyz[..., 2]
    x0 = np.ceil(x.min(1)).clip(0, width)
    x1 = np.floor(x.max(1)).clip(-1, width - 1)
    y0 = np.ceil(y.min(1)).clip(0, height)
    y1 = np.floor(y.max(1)).clip(-1, height - 1)
    denom = (y[:, 1] - y[:, 2]) * (x[:, 0] - x[:, 2]) + (x[:, 2] - x[:, 1]) * (y[:, 0] - y[:, 2])
    ok = (x1 >= x0) & (y1 >= y0) & (np.abs(denom) > 1e-12) & (z.min(1) > near)
    idx = np.nonzero(ok)[0]
    tri_out = np.full((height, width), -1, dtype=np.int64)
    bary_out = np.zeros((height, width, 3), dtype=np.float32)
    depth_out = np.full((height, width), np.inf, dtype=np.float32)
    if idx.size == 0:
        return Raster(tri_out, bary_out, depth_out)
    w = (x1[idx] - x0[idx] + 1).astype(np.int64)
    h = (y1[idx] - y0[idx] + 1).astype(np.int64)
    n = w * h
    owner = np.repeat(np.arange(idx.size), n)                 # candidate (triangle, pixel) pairs
    start = np.cumsum(n) - n
    local = np.arange(n.sum()) - np.repeat(start, n)
    ww = w[owner]
    px = x0[idx][owner] + local % ww
    py = y0[idx][owner] + local // ww
    f = idx[owner]
    xa, ya = x[f], y[f]
    dn = denom[f]
    l0 = ((ya[:, 1] - ya[:, 2]) * (px - xa[:, 2]) + (xa[:, 2] - xa[:, 1]) * (py - ya[:, 2])) / dn
    l1 = ((ya[:, 2] - ya[:, 0]) * (px - xa[:, 2]) + (xa[:, 0] - xa[:, 2]) * (py - ya[:, 2])) / dn
    l2 = 1.0 - l0 - l1
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    f, px, py = f[inside], px[inside].astype(np.int64), py[inside].astype(np.int64)
    lam = np.stack([l0[inside], l1[inside], l2[inside]], 1)  # screen-space barycentrics
    inv_z = lam / z[f]                                        # perspective correction
    inv_depth = inv_z.sum(1)
    depth = 1.0 / inv_depth
    pix = py * width + px
    order = np.lexsort((depth, pix))                          # nearest first within each pixel
    first = np.ones(order.size, dtype=bool)
    first[1:] = pix[order[1:]] != pix[order[:-1]]
    win = order[first]
    flat_tri = tri_out.reshape(-1)
    flat_tri[pix[win]] = f[win]
    bary_out.reshape(-1, 3)[pix[win]] = (inv_z[win] / inv_depth[win, None]).astype(np.float32)
    depth_out.reshape(-1)[pix[win]] = depth[win].astype(np.float32)
    return Raster(tri_out, bary_out, depth_out)


def interpolate(raster: Raster, corner_attr: np.ndarray) -> np.ndarray:
    """Interpolate per-corner attributes `corner_attr` [F, 3, C] at every pixel -> [H, W, C]."""
    tri = np.where(raster.mask, raster.tri, 0)
    vals = np.einsum("hwk,hwkc->hwc", raster.bary, corner_attr[tri])
    vals[~raster.mask] = 0.0
    return vals


def sample_bilinear(image: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Sample `image` [H, W, C] at pixel coordinates `xy` [..., 2] (x right, y down), clamped at borders."""
    h, w = image.shape[:2]
    x = np.clip(xy[..., 0], 0, w - 1)
    y = np.clip(xy[..., 1], 0, h - 1)
    x0 = np.floor(x).astype(np.int64).clip(0, w - 2 if w > 1 else 0)
    y0 = np.floor(y).astype(np.int64).clip(0, h - 2 if h > 1 else 0)
    x1 = np.minimum(x0 + 1, w - 1)
    y1 = np.minimum(y0 + 1, h - 1)
    fx = (x - x0)[..., None]
    fy = (y - y0)[..., None]
    img = image.astype(np.float32, copy=False)
    top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
    bot = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
    return top * (1 - fy) + bot * fy


def vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted unit vertex normals of `verts` [V, 3] -> [V, 3]."""
    v = verts[faces]
    fn = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0])
    idx = faces.reshape(-1)
    n = np.stack([np.bincount(idx, np.repeat(fn[:, c], 3), minlength=len(verts)) for c in range(3)], 1)
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)


def interpolate_at(raster: Raster, corner_attr: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Interpolate per-corner attributes [F, 3, C] at flat covered pixel indices [N] -> [N, C]."""
    tri = raster.tri.reshape(-1)[pixels]
    b = raster.bary.reshape(-1, 3)[pixels]
    a = corner_attr[tri]                                      # [N, 3, C]
    return a[:, 0] * b[:, 0:1] + a[:, 1] * b[:, 1:2] + a[:, 2] * b[:, 2:3]


def lambert(normals: np.ndarray, light: tuple[float, float, float] = (0.3, 0.4, 1.0),
            ambient: float = 0.5) -> np.ndarray:
    """Two-sided Lambert shading factor [N] of normals [N, 3] under a light shining along `light`."""
    n = normals / np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-12)
    n = np.where(n[:, 2:3] > 0, -n, n)                        # face the camera (camera looks along +z)
    l = -np.asarray(light, dtype=np.float64)
    l = l / np.linalg.norm(l)                                 # from the surface towards the light
    return ambient + (1.0 - ambient) * np.clip(n @ l, 0.0, 1.0)


def render_textured(screen: np.ndarray, faces: np.ndarray, uv_corner: np.ndarray, texture: np.ndarray,
                    background: np.ndarray, normals_corner: np.ndarray | None = None,
                    tint_corner: np.ndarray | None = None) -> tuple[np.ndarray, Raster]:
    """Render a textured mesh over `background` [H, W, 3] (uint8) -> ([H, W, 3] uint8, raster).

    `uv_corner` [F, 3, 2] are texture coordinates in [0, 1] per triangle corner (u right,
    v down in the texture image); `tint_corner` [F, 3, 4] optionally blends an RGB colour
    (first 3) with weight (4th) over the texture (e.g. the dark inside of an open mouth);
    `normals_corner` [F, 3, 3] turns on Lambert shading.
    """
    h, w = background.shape[:2]
    raster = rasterize(screen, faces, h, w)
    pixels = np.flatnonzero(raster.mask)
    th, tw = texture.shape[:2]
    uv = interpolate_at(raster, uv_corner, pixels)
    rgb = sample_bilinear(texture, uv * np.array([tw - 1, th - 1], dtype=uv.dtype))
    if tint_corner is not None:
        tint = interpolate_at(raster, tint_corner, pixels)
        a = np.clip(tint[:, 3:4], 0, 1)
        rgb = rgb * (1 - a) + tint[:, :3] * a
    if normals_corner is not None:
        rgb = rgb * lambert(interpolate_at(raster, normals_corner, pixels))[:, None]
    out = background.reshape(-1, 3).copy()
    out[pixels] = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    return out.reshape(h, w, 3), raster
