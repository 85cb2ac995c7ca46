"""DVC stage `geometry@<id>`: depth and normal pseudo-ground-truth for L_Geo (paper Sec. 3.4, Eq. 14).

Backends (params `geometry.backend`): `flame` renders the tracked head mesh of `flame.parquet`
(offline; metric camera z), `sapiens` runs the user's Sapiens TorchScript depth and normal
checkpoints on the frames (relative depth). Maps are geometry.size square, float16.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from emotag_core.avatar.geometry import FlameGeometry, SapiensGeometry, encode_maps
from emotag_core.config import FlameConfig, GeometryConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableReader, TableWriter, column_array
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep

VERSION = "1"


def camera_K(meta: dict, frame_size: int) -> torch.Tensor:
    """Intrinsics [3, 3] in crop pixels from the flame table's `camera` metadata."""
    cam = meta.get("camera")
    if not isinstance(cam, dict) or not all(k in cam for k in ("fx", "fy", "cx", "cy")):
        raise InputError(None, f"flame table metadata `camera` must hold fx, fy, cx, cy; got {cam!r}",
                         "re-run the track stage")
    K = torch.tensor([[cam["fx"], 0.0, cam["cx"]], [0.0, cam["fy"], cam["cy"]], [0.0, 0.0, 1.0]])
    K[:2] *= frame_size / float(cam.get("width", frame_size))
    return K


def run_flame(flame_path: Path, out_path: Path, cfg: GeometryConfig, flame_cfg: FlameConfig,
              progress: bool = True) -> int:
    """Render the tracked mesh of every row of `flame.parquet` into depth/normal maps."""
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
    with TableWriter(out_path, "geometry", out_meta) as out, progress_bar(reader.num_rows, "geometry (flame)", progress) as bar:
        task = bar.add_task("geometry", total=reader.num_rows)
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
            bar.advance(task, B)
        return out.rows


def run_sapiens(frames_path: Path, out_path: Path, cfg: GeometryConfig, progress: bool = True) -> int:
    """Sapiens depth and normals of every frame of the frame store."""
    teacher = SapiensGeometry(cfg.weights_path, cfg.normal_weights_path, cfg.size, device=cfg.device)
    store = FrameStore(frames_path)
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    out_meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
                "backend_version": VERSION, "map_size": cfg.size, "depth_units": teacher.depth_units}
    with TableWriter(out_path, "geometry", out_meta) as out, progress_bar(len(store), "geometry (sapiens)", progress) as bar:
        task = bar.add_task("geometry", total=len(store))
        for rows, images in store.iter_batches(cfg.batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
            depth, normal = teacher.predict(x, None, None)
            db, nb = encode_maps(depth, normal)
            out.write({"clip_id": clip[rows], "frame": frame[rows], "depth": db, "normal": nb})
            bar.advance(task, len(rows))
        return out.rows


@stage("geometry")
def main(identity: str) -> None:
    p = params()
    cfg = p.geometry
    paths = Paths(identity)
    sweep(paths.processed)
    torch.set_num_threads(max(1, cfg.threads))
    if cfg.backend == "flame":
        run_flame(need(paths.table("flame"), "the FLAME track", "track", identity), paths.table("geometry"), cfg, p.flame)
    elif cfg.backend == "sapiens":
        run_sapiens(need(paths.table("frames"), "the frame store", "ingest", identity), paths.table("geometry"), cfg)
    else:
        raise ConfigError(f"params: geometry.backend must be `flame` or `sapiens`, got {cfg.backend!r}")


if __name__ == "__main__":
    main_for(main)
