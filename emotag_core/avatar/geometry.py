"""Depth and normal maps of a triangle mesh (a small z-buffer rasterizer) and the L_Geo pseudo-GT
backends of `geometry@<id>` (paper Sec. 3.4, Eq. 14); the job is `geometry_run`.

Backends: `flame` renders the tracked head mesh (offline, no weights); `sapiens` runs TorchScript
depth and normal checkpoints on the frames (the paper's choice; the user supplies the files).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F
from torch import Tensor

from emotag_core.config import FlameConfig, GeometryConfig
from emotag_core.errors import ConfigError, InputError, WeightsMissingError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableReader, TableWriter, column_array
from emotag_core.progress import NO_PROGRESS, Progress


def vertex_normals(verts: Tensor, faces: Tensor) -> Tensor:
    """Area-weighted vertex normals: verts [B, V, 3], faces [F, 3] -> [B, V, 3] unit."""
    tri = verts[:, faces]
    fn = torch.cross(tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0], dim=-1)   # [B, F, 3]
    vn = torch.zeros_like(verts)
    for j in range(3):
        vn.index_add_(1, faces[:, j], fn)
    return F.normalize(vn, dim=-1)


@torch.no_grad()
def render_mesh_maps(verts: Tensor, faces: Tensor, K: Tensor, width: int, height: int,
                     near: float = 1e-3, chunk: int = 1 << 22) -> tuple[Tensor, Tensor, Tensor]:
    """Z-buffer depth, normal and coverage of camera-space meshes.

    verts [B, V, 3] (OpenCV camera space, metres), faces [F, 3], K [B, 3, 3] (pixels of the
    width x height map) -> depth [B, H, W] (camera z, 0 = background), normal [B, H, W, 3]
    (interpolated vertex normals, unit, facing the camera, 0 = background), mask [B, H, W] bool.
    Sampled at pixel centres; depth is perspective-correct.
    """
    faces = faces.long()
    B, dev = verts.shape[0], verts.device
    vn = vertex_normals(verts, faces)
    depth = torch.zeros(B, height, width, device=dev, dtype=verts.dtype)
    normal = torch.zeros(B, height, width, 3, device=dev, dtype=verts.dtype)
    for b in range(B):
        v = verts[b]
        z = v[:, 2]
        uv = torch.stack([K[b, 0, 0] * v[:, 0] / z.clamp_min(near) + K[b, 0, 2],
                          K[b, 1, 1] * v[:, 1] / z.clamp_min(near) + K[b, 1, 2]], -1)   # [V, 2]
        tri_uv, tri_z = uv[faces], z[faces]                          # [F, 3, 2], [F, 3]
        ok = (tri_z > near).all(1)
        lo = torch.floor(tri_uv.min(1).values - 0.5).clamp(min=0)
        hi = torch.ceil(tri_uv.max(1).values - 0.5)
        hi = torch.minimum(hi, torch.tensor([width - 1.0, height - 1.0], device=dev, dtype=verts.dtype))
        ok &= (hi >= lo).all(1)
        fidx = torch.nonzero(ok).flatten()
        nx = (hi[fidx, 0] - lo[fidx, 0] + 1).long()
        ny = (hi[fidx, 1] - lo[fidx, 1] + 1).long()
        cnt = nx * ny
        zbuf = torch.full((height * width,), float("inf"), device=dev, dtype=verts.dtype)
        # pass 1: nearest depth per pixel; pass 2: write attributes of the winning face
        best_face = torch.full((height * width,), -1, device=dev, dtype=torch.long)
        for pass_ in (0, 1):
            start = 0
            cum = torch.cumsum(cnt, 0)
            while start < fidx.numel():
                # faces [start, stop) with at most `chunk` pixel candidates
                stop = int(torch.searchsorted(cum, (cum[start] - cnt[start]) + chunk, right=True))
                stop = max(stop, start + 1)
                fs, c = fidx[start:stop], cnt[start:stop]
                rep = torch.repeat_interleave(torch.arange(fs.numel(), device=dev), c)
                local = torch.arange(int(c.sum()), device=dev) - torch.repeat_interleave(torch.cumsum(c, 0) - c, c)
                nxr = nx[start:stop][rep]
                px = lo[fs, 0][rep] + (local % nxr) + 0.5
                py = lo[fs, 1][rep] + (local // nxr) + 0.5
                f = fs[rep]
                a, bb, cc = tri_uv[f, 0], tri_uv[f, 1], tri_uv[f, 2]
                area = (bb[:, 0] - a[:, 0]) * (cc[:, 1] - a[:, 1]) - (bb[:, 1] - a[:, 1]) * (cc[:, 0] - a[:, 0])
                w0 = ((bb[:, 0] - px) * (cc[:, 1] - py) - (bb[:, 1] - py) * (cc[:, 0] - px))
                w1 = ((cc[:, 0] - px) * (a[:, 1] - py) - (cc[:, 1] - py) * (a[:, 0] - px))
                w2 = ((a[:, 0] - px) * (bb[:, 1] - py) - (a[:, 1] - py) * (bb[:, 0] - px))
                good = area.abs() > 1e-12
                sa = torch.where(good, area, torch.ones_like(area))
                l0, l1, l2 = w0 / sa, w1 / sa, w2 / sa
                inside = good & (l0 >= 0) & (l1 >= 0) & (l2 >= 0)
                # perspective-correct weights: interpolate 1/z linearly in screen space
                iz = l0 / tri_z[f, 0] + l1 / tri_z[f, 1] + l2 / tri_z[f, 2]
                zz = 1.0 / iz.clamp_min(1e-12)
                pid = (py.long()) * width + px.long()
                if pass_ == 0:
                    zbuf.scatter_reduce_(0, pid[inside], zz[inside], reduce="amin")
                else:
                    win = inside & (zz <= zbuf[pid])
                    best_face.scatter_reduce_(0, pid[win], f[win], reduce="amax")
                    # attributes of the winners (ties resolved to the largest face id)
                    win &= best_face[pid] == f
                    p0, p1, p2 = (l / tri_z[f, j] * zz for j, l in enumerate((l0, l1, l2)))
                    fv = faces[f]
                    n = p0[:, None] * vn[b, fv[:, 0]] + p1[:, None] * vn[b, fv[:, 1]] + p2[:, None] * vn[b, fv[:, 2]]
                    normal[b].view(-1, 3)[pid[win]] = n[win]
                start = stop
        hit = torch.isfinite(zbuf)
        depth[b].view(-1)[hit] = zbuf[hit]
    mask = depth > 0
    # unit normals facing the camera (view ray through the pixel is +z-ish in camera space)
    ys, xs = torch.meshgrid(torch.arange(height, device=dev, dtype=verts.dtype) + 0.5,
                            torch.arange(width, device=dev, dtype=verts.dtype) + 0.5, indexing="ij")
    ray = torch.stack([(xs[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None],
                       (ys[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None],
                       torch.ones(B, height, width, device=dev, dtype=verts.dtype)], -1)
    normal = F.normalize(normal, dim=-1)
    normal = torch.where(((normal * ray).sum(-1, keepdim=True) > 0), -normal, normal)
    normal = normal * mask[..., None]
    return depth, normal, mask


# --- pseudo-GT backends -------------------------------------------------------------------------

class GeometryTeacher(Protocol):
    """Per-frame depth and normal pseudo-ground-truth at a fixed map size."""

    name: str
    depth_units: str

    def predict(self, frames: Tensor | None, verts: Tensor | None, K: Tensor | None) -> tuple[Tensor, Tensor]:
        """frames [B, 3, H, W] in [0, 1] and/or verts [B, V, 3] + K [B, 3, 3] (frame pixels)
        -> depth [B, S, S] (0 = background), normal [B, S, S, 3] (camera space, unit or 0)."""
        ...


class FlameGeometry:
    """Renders the tracked mesh: metric camera-space z and smooth normals (offline backend)."""

    name = "flame"
    depth_units = "metres_z"
    needs = "verts"

    def __init__(self, faces: Tensor, size: int, frame_size: int) -> None:
        self.faces = faces.long()
        self.size = size
        self.frame_size = frame_size

    def predict(self, frames: Tensor | None, verts: Tensor | None, K: Tensor | None) -> tuple[Tensor, Tensor]:
        if verts is None or K is None:
            raise InputError(None, "flame geometry backend needs tracked vertices and intrinsics")
        s = self.size / self.frame_size
        Ks = K.clone()
        Ks[:, :2] *= s                      # pixel units of the smaller map
        depth, normal, _ = render_mesh_maps(verts, self.faces.to(verts.device), Ks, self.size, self.size)
        return depth, normal


class SapiensGeometry:
    """Sapiens depth and normal TorchScript checkpoints (the paper's teacher).

    Input: RGB resized to `input_hw`, normalised with ImageNet mean/std in 0..255 units; depth
    output [B, 1, h, w] (relative, larger = farther), normal output [B, 3, h, w]. Both are resized
    to the map size; depth is relative (the loss must be scale-invariant), background not masked.
    """

    name = "sapiens"
    depth_units = "relative"
    needs = "frames"
    MEAN = (123.675, 116.28, 103.53)
    STD = (58.395, 57.12, 57.375)

    def __init__(self, depth_path: str | None, normal_path: str | None, size: int,
                 input_hw: tuple[int, int] = (1024, 768), device: str = "cpu") -> None:
        how = ("download the Sapiens depth and normal TorchScript checkpoints (e.g. "
               "sapiens_0.3b_render_people_..._torchscript.pt2) and set geometry.weights_path / "
               "geometry.normal_weights_path, or use geometry.backend: flame")
        paths = [p for p in (depth_path, normal_path)]
        missing = [p for p in paths if not p or not Path(p).is_file()]
        if missing:
            raise WeightsMissingError("sapiens", [p or "(geometry.weights_path / normal_weights_path unset)" for p in missing], how)
        self.depth = torch.jit.load(str(depth_path), map_location=device).eval()
        self.normal = torch.jit.load(str(normal_path), map_location=device).eval()
        self.size, self.input_hw, self.device = size, tuple(input_hw), device

    @torch.no_grad()
    def predict(self, frames: Tensor | None, verts: Tensor | None, K: Tensor | None) -> tuple[Tensor, Tensor]:
        if frames is None:
            raise InputError(None, "sapiens geometry backend needs frames")
        x = F.interpolate(frames.to(self.device).float() * 255.0, size=self.input_hw, mode="bilinear", align_corners=False)
        mean = torch.tensor(self.MEAN, device=x.device)[None, :, None, None]
        std = torch.tensor(self.STD, device=x.device)[None, :, None, None]
        x = (x - mean) / std
        d = self.depth(x)
        n = self.normal(x)
        d = F.interpolate(d.float(), size=(self.size, self.size), mode="bilinear", align_corners=False)[:, 0]
        n = F.interpolate(n.float(), size=(self.size, self.size), mode="bilinear", align_corners=False)
        n = F.normalize(n, dim=1).permute(0, 2, 3, 1)
        return d, n


def encode_maps(depth: Tensor, normal: Tensor) -> tuple[list[bytes], list[bytes]]:
    """Maps -> float16 bytes per frame (the `geometry` table's binary columns)."""
    d = depth.detach().cpu().to(torch.float16).numpy()
    n = normal.detach().cpu().to(torch.float16).numpy()
    return [x.tobytes() for x in d], [x.tobytes() for x in n]


def decode_maps(depth_bytes: bytes, normal_bytes: bytes, size: int) -> tuple[Tensor, Tensor]:
    """One row of the `geometry` table -> depth [S, S], normal [S, S, 3] float32."""
    import numpy as np

    d = np.frombuffer(depth_bytes, dtype=np.float16)
    n = np.frombuffer(normal_bytes, dtype=np.float16)
    if d.size != size * size or n.size != size * size * 3:
        raise InputError(None, f"geometry row has {d.size} depth / {n.size} normal values, expected map_size {size}")
    return torch.from_numpy(d.astype("float32").reshape(size, size)), torch.from_numpy(n.astype("float32").reshape(size, size, 3))


# -- the `geometry` job: one table per identity ---------------------------------------------------------
VERSION = "1"


def camera_K(meta: dict, frame_size: int) -> Tensor:
    """Intrinsics [3, 3] in crop pixels from the flame table's `camera` metadata."""
    cam = meta.get("camera")
    if not isinstance(cam, dict) or not all(k in cam for k in ("fx", "fy", "cx", "cy")):
        raise InputError(None, f"flame table metadata `camera` must hold fx, fy, cx, cy; got {cam!r}",
                         "re-run the track stage")
    K = torch.tensor([[cam["fx"], 0.0, cam["cx"]], [0.0, cam["fy"], cam["cy"]], [0.0, 0.0, 1.0]])
    K[:2] *= frame_size / float(cam.get("width", frame_size))
    return K


def run_flame(flame_path: Path, out_path: Path, cfg: GeometryConfig, flame_cfg: FlameConfig,
              progress: Progress = NO_PROGRESS) -> int:
    """Render the tracked mesh of every row of `flame.parquet` into depth/normal maps; rows written."""
    from emotag_core.flame import load_head_model

    dev = torch.device(cfg.device)
    reader = TableReader(flame_path, "flame")
    meta = reader.meta
    head = load_head_model(flame_cfg, dev)
    if meta.get("n_expr") != head.n_expr:
        raise ConfigError(f"{flame_path}: tracked with n_expr={meta.get('n_expr')} but params flame gives a model "
                          f"with {head.n_expr}; re-run track@ or fix params `flame`")
    size = int(meta["frame_size"][0])
    K = camera_K(meta, size).to(dev)
    shape = torch.tensor(meta["shape"], dtype=torch.float32, device=dev)[None]
    teacher = FlameGeometry(head.faces, cfg.size, size)
    out_meta = {"fps": meta["fps"], "frame_size": meta["frame_size"], "backend": teacher.name,
                "backend_version": VERSION, "map_size": cfg.size, "depth_units": teacher.depth_units,
                "flame_model": meta.get("flame_model")}
    with TableWriter(out_path, "geometry", out_meta) as out:
        for batch in reader.iter_batches(cfg.batch_size):
            b = pa.Table.from_batches([batch])
            p = {k: torch.tensor(column_array(b, k), dtype=torch.float32, device=dev) for k in ("expr", "jaw", "rot", "trans")}
            B = b.num_rows
            with torch.no_grad():
                verts = head(shape.expand(B, -1), p["expr"], p["jaw"], p["rot"], p["trans"])
            depth, normal = teacher.predict(None, verts, K[None].expand(B, 3, 3))
            db, nb = encode_maps(depth, normal)
            out.write({"clip_id": b.column("clip_id").to_numpy(zero_copy_only=False),
                       "frame": b.column("frame").to_numpy(), "depth": db, "normal": nb})
            progress(out.rows, reader.num_rows)
        return out.rows


def run_sapiens(frames_path: Path, out_path: Path, cfg: GeometryConfig,
                progress: Progress = NO_PROGRESS) -> int:
    """Sapiens depth and normals of every frame of the frame store; rows written."""
    teacher = SapiensGeometry(cfg.weights_path, cfg.normal_weights_path, cfg.size, device=cfg.device)
    store = FrameStore(frames_path)
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    out_meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
                "backend_version": VERSION, "map_size": cfg.size, "depth_units": teacher.depth_units}
    with TableWriter(out_path, "geometry", out_meta) as out:
        for rows, images in store.iter_batches(cfg.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
            depth, normal = teacher.predict(x, None, None)
            db, nb = encode_maps(depth, normal)
            out.write({"clip_id": clip[rows], "frame": frame[rows], "depth": db, "normal": nb})
            progress(out.rows, len(store))
        return out.rows


def geometry_run(flame_path: Path | None, frames_path: Path | None, out_path: Path, cfg: GeometryConfig,
                 flame_cfg: FlameConfig, progress: Progress = NO_PROGRESS) -> int:
    """The `geometry` table of an identity (atomic) with backend `cfg.backend`; rows written.

    `flame` renders the tracked mesh of `flame_path` (the head model of `flame_cfg`); `sapiens` runs
    on the frame store `frames_path`. An unknown backend is a ConfigError before any work.
    """
    if cfg.backend not in ("flame", "sapiens"):
        raise ConfigError(f"params: geometry.backend must be `flame` or `sapiens`, got {cfg.backend!r}")
    src = flame_path if cfg.backend == "flame" else frames_path
    if src is None:
        what = "FLAME track" if cfg.backend == "flame" else "frame store"
        raise InputError(None, f"geometry backend `{cfg.backend}` reads the {what}, and none was given",
                         f"pass the {what}'s path")
    if cfg.backend == "flame":
        return run_flame(src, out_path, cfg, flame_cfg, progress)
    return run_sapiens(src, out_path, cfg, progress)
