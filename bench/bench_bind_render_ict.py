"""Bind + render per frame on CUDA with the ICT head model (the issue 17 budget: <= 1 ms/frame at batch 8),
beside the raw gsplat floor (pre-posed Gaussians, RGB only) in the same run.

    python bench/bench_bind_render_ict.py --n 60000 --size 512 --batch 8 --json out.json

Per batch: the ICT head posed by `HeadModel.forward` (random expression, jaw, head turn, neck), Gaussians
bound to its faces (`GaussianAvatar.bind`, mouth set = the model's own intra-oral vertices) and rasterized
by gsplat. Reports ms per batch and per frame for head + bind + render, bind + render, and the floor.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_render import cuda_time  # noqa: E402

from emotag_core.avatar.binding import GaussianAvatar  # noqa: E402
from emotag_core.avatar.rasterize import rasterize  # noqa: E402
from emotag_core.avatar.synthetic import look_at_K  # noqa: E402
from emotag_core.config import FlameConfig  # noqa: E402
from emotag_core.flame import load_head_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, nargs="+", default=[60_000])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, nargs="+", default=[8])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    dev = torch.device("cuda")
    from gsplat import rasterization

    head = load_head_model(FlameConfig(model="ict"), dev)
    z = head.zeros(1, dev)
    with torch.no_grad():
        rest = head(**z)[0]
    mask = torch.zeros(head.n_verts, dtype=torch.bool, device=dev)
    mask[head.mouth_vertex_ids.to(dev)] = True
    rows = []
    g = torch.Generator(device="cpu").manual_seed(0)
    for n in a.n:
        av = GaussianAvatar(rest, head.faces, n_gaussians=n, mouth_vertex_mask=mask).to(dev)
        with torch.no_grad():
            av.opacity_logit.fill_(2.0)
        for B in a.batch:
            p = {"shape": torch.zeros(1, head.n_shape, device=dev),
                 "expr": (torch.rand(B, head.n_expr, generator=g) * 0.3).to(dev),
                 "jaw": torch.tensor([[0.15, 0.0, 0.0]] * B, device=dev),
                 "rot": (torch.randn(B, 3, generator=g) * 0.1).to(dev),
                 "trans": torch.tensor([[0.0, 0.0, 0.6]] * B, device=dev)}
            neck = (torch.randn(B, 3, generator=g) * 0.1).to(dev)
            K = look_at_K(a.size, 2.0 * a.size).to(dev)[None].repeat(B, 1, 1)
            vm = torch.eye(4, device=dev)[None].repeat(B, 1, 1)
            bg = torch.ones(3, device=dev)
            with torch.no_grad():
                verts = head(**p, neck=neck)
                g0 = av.bind(verts)
            means, quats, scales = g0.means, g0.quats, g0.scales
            opac = g0.opacities[None].repeat(B, 1) if g0.opacities.dim() == 1 else g0.opacities
            cols = (0.5 + 0.28209479177387814 * g0.sh[:, 0])[None].repeat(B, 1, 1) if g0.sh.dim() == 3 else None

            def floor():
                with torch.no_grad():
                    rasterization(means, quats, scales, opac, cols, vm[:, None], K[:, None], a.size, a.size,
                                  packed=False)

            def bind_render():
                with torch.no_grad():
                    rasterize(av.bind(verts), K, vm, a.size, a.size, background=bg, with_geometry=False)

            def head_bind_render():
                with torch.no_grad():
                    rasterize(av.bind(head(**p, neck=neck)), K, vm, a.size, a.size, background=bg,
                              with_geometry=False)

            r = {"n_gaussians": n, "batch": B, "n_verts": head.n_verts, "n_faces": int(head.faces.shape[0]),
                 "gsplat_floor_ms": cuda_time(floor, reps=a.reps), "bind_render_ms": cuda_time(bind_render, reps=a.reps),
                 "head_bind_render_ms": cuda_time(head_bind_render, reps=a.reps),
                 "gpu": torch.cuda.get_device_name(), "torch": torch.__version__}
            for k in ("gsplat_floor_ms", "bind_render_ms", "head_bind_render_ms"):
                r[k.replace("_ms", "_ms_per_frame")] = r[k] / B
            r["meets_1ms_per_frame"] = r["bind_render_ms_per_frame"] <= 1.0
            rows.append(r)
            print(json.dumps(r))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
