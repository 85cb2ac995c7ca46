"""Render speed of the FLAME-rigged avatar on CUDA: binding + gsplat rasterization, fwd and fwd+bwd,
beside the raw gsplat floor (pre-posed Gaussians, RGB only) measured in the same run.

    python bench/bench_render.py --n 60000 --size 512 --batch 1 8 --json out.json
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotag_core.avatar.binding import GaussianAvatar  # noqa: E402
from emotag_core.avatar.rasterize import rasterize  # noqa: E402
from emotag_core.avatar.synthetic import look_at_K, random_rotation, uv_sphere  # noqa: E402


def cuda_time(fn, warmup: int = 10, reps: int = 50) -> float:
    """Median milliseconds of fn() over `reps` CUDA-event-timed runs."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        fn()
        e.record()
        torch.cuda.synchronize()
        times.append(s.elapsed_time(e))
    return statistics.median(times)


def head_mesh(kind: str):
    if kind == "open":
        from emotag_core.config import FlameConfig
        from emotag_core.flame import load_head_model

        head = load_head_model(FlameConfig(), "cpu")
        with torch.no_grad():
            v = head(**head.zeros(1))[0]
        return v - v.mean(0), head.faces
    v, f = uv_sphere(100, 51, radius=0.09)          # 10,000 faces, about FLAME's 9,976
    return v, f


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60_000)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--mesh", default="sphere10k", choices=["sphere10k", "open"])
    ap.add_argument("--sh-degree", type=int, default=0)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--compile", action="store_true", help="also time bind through torch.compile")
    a = ap.parse_args()
    dev = torch.device("cuda")
    from gsplat import rasterization

    v, f = head_mesh(a.mesh)
    av = GaussianAvatar(v, f, n_gaussians=a.n, sh_degree=a.sh_degree).to(dev)
    with torch.no_grad():
        av.opacity_logit.fill_(2.0)
        av.sh.add_(0.3 * torch.randn_like(av.sh))
    rows = []
    gen = torch.Generator().manual_seed(0)
    for B in a.batch:
        verts = torch.stack([v @ random_rotation(gen, 0.3).T + torch.tensor([0.0, 0.0, 0.5]) for _ in range(B)]).to(dev)
        K = look_at_K(a.size, 1.1 * a.size).to(dev)[None].repeat(B, 1, 1)
        vm = torch.eye(4, device=dev)[None].repeat(B, 1, 1)
        bg = torch.ones(3, device=dev)
        with torch.no_grad():
            g0 = av.bind(verts)
        # raw gsplat floor: already-posed Gaussians, RGB colours, one call
        means, quats, scales = (t.detach().clone().requires_grad_(True) for t in (g0.means, g0.quats, g0.scales))
        opac = g0.opacities.detach()[None].repeat(B, 1).requires_grad_(True)
        cols = (0.5 + 0.28209479177387814 * g0.sh[:, 0]).detach()[None].repeat(B, 1, 1).requires_grad_(True)

        def floor_fwd():
            with torch.no_grad():
                rasterization(means, quats, scales, opac, cols, vm[:, None], K[:, None], a.size, a.size, packed=False)

        def floor_fb():
            img, alpha, _ = rasterization(means, quats, scales, opac, cols, vm[:, None], K[:, None], a.size, a.size, packed=False)
            img.sum().backward()

        def ours_fwd(geom: bool):
            def fn():
                with torch.no_grad():
                    rasterize(av.bind(verts), K, vm, a.size, a.size, background=bg, with_geometry=geom)
            return fn

        def ours_fb(geom: bool):
            def fn():
                out = rasterize(av.bind(verts), K, vm, a.size, a.size, background=bg, with_geometry=geom)
                (out.color.sum() + out.depth.sum() + out.normal.sum()).backward()
            return fn

        def bind_only():
            with torch.no_grad():
                av.bind(verts)

        res = {
            "batch": B,
            "gsplat_floor_fwd_ms": cuda_time(floor_fwd, reps=a.reps),
            "gsplat_floor_fwdbwd_ms": cuda_time(floor_fb, reps=a.reps),
            "bind_ms": cuda_time(bind_only, reps=a.reps),
            "bind_render_rgb_fwd_ms": cuda_time(ours_fwd(False), reps=a.reps),
            "bind_render_geo_fwd_ms": cuda_time(ours_fwd(True), reps=a.reps),
            "bind_render_rgb_fwdbwd_ms": cuda_time(ours_fb(False), reps=a.reps),
            "bind_render_geo_fwdbwd_ms": cuda_time(ours_fb(True), reps=a.reps),
        }
        if a.compile:
            try:
                cbind = torch.compile(av.bind, mode="max-autotune-no-cudagraphs", dynamic=False)

                def cbind_only():
                    with torch.no_grad():
                        cbind(verts)

                def c_fwd():
                    with torch.no_grad():
                        rasterize(cbind(verts), K, vm, a.size, a.size, background=bg, with_geometry=True)

                def c_fb():
                    out = rasterize(cbind(verts), K, vm, a.size, a.size, background=bg, with_geometry=True)
                    (out.color.sum() + out.depth.sum() + out.normal.sum()).backward()

                res["compiled_bind_ms"] = cuda_time(cbind_only, reps=a.reps)
                res["compiled_bind_render_geo_fwd_ms"] = cuda_time(c_fwd, reps=a.reps)
                res["compiled_bind_render_geo_fwdbwd_ms"] = cuda_time(c_fb, reps=a.reps)
            except Exception as exc:  # noqa: BLE001 - report and carry on with the eager numbers
                print(f"torch.compile failed: {type(exc).__name__}: {exc}"[:400])
        rows.append(res)
    info = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "n_gaussians": av.n,
            "faces": int(f.shape[0]), "size": a.size, "mesh": a.mesh, "sh_degree": a.sh_degree,
            "date": time.strftime("%Y-%m-%d"), "host": platform.node()}
    import gsplat

    info["gsplat"] = gsplat.__version__
    print(json.dumps(info))
    keys = list(dict.fromkeys(k for r in rows for k in r if k != "batch"))
    print(f"{'metric':32s}" + "".join(f"{'B=' + str(r['batch']) + ' ms/frame':>16s}" for r in rows))
    for k in keys:
        print(f"{k:36s}" + "".join(f"{r[k] / r['batch']:16.3f}" if k in r else f"{'-':>16s}" for r in rows))
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
