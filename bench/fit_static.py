"""Static appearance fitting benchmark: fit an identity's Gaussians on its training frames, report
self-reconstruction PSNR on held-out frames (full crop, and `masked_psnr` inside the tracked-mesh
silhouette), save a picture ground truth | render | error.

    python bench/fit_static.py --identity sample --device cuda --out bench/results
    python bench/fit_static.py --synthetic --device cuda --out bench/results

Real mode needs data/processed/<id>/frames.parquet and flame.parquet (ingest@, track@). Synthetic
mode renders a textured ground-truth avatar on the open head model driven by random expression,
jaw and pose sequences, then fits a fresh avatar to its training frames.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotag_core.avatar.binding import SH_C0, GaussianAvatar  # noqa: E402
from emotag_core.avatar.fit import (StaticFitConfig, evaluate_static, fit_static, head_masks,  # noqa: E402
                                    render_frames)
from emotag_core.avatar.mouth import mouth_region_for_head  # noqa: E402
from emotag_core.config import FlameConfig  # noqa: E402


def load_real(identity: str, root: Path, train_seconds: float, eval_from_s: float, eval_every: int,
              flame_cfg: FlameConfig, device: torch.device):
    from emotag_core.flame import load_head_model
    from emotag_core.io.frames import FrameStore
    from emotag_core.io.tables import column_array, read_table

    proc = root / "data" / "processed" / identity
    fs = FrameStore(proc / "frames.parquet")
    tab, meta = read_table(proc / "flame.parquet", "flame")
    cam = meta["camera"]
    size = fs.size
    head = load_head_model(flame_cfg, device)
    keys = fs.keys
    row_of = {(c, int(f)): i for i, (c, f) in enumerate(zip(keys.column("clip_id").to_pylist(),
                                                           keys.column("frame").to_pylist()))}
    t_all = column_array(keys, "t")
    clip, frame = tab.column("clip_id").to_pylist(), tab.column("frame").to_pylist()
    valid = column_array(tab, "valid").astype(bool)
    rows = np.array([row_of.get((c, int(f)), -1) for c, f in zip(clip, frame)])
    ok = (rows >= 0) & valid
    t = np.where(rows >= 0, t_all[np.clip(rows, 0, None)], -1)
    train = np.nonzero(ok & (t < train_seconds))[0]
    held = np.nonzero(ok & (t >= eval_from_s))[0][::eval_every]
    shape = torch.tensor(meta["shape"], dtype=torch.float32, device=device)[None]
    K = torch.tensor([[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]], dtype=torch.float32)
    K[:2] *= size / float(cam.get("width", size))

    def take(sel):
        p = {k: torch.from_numpy(column_array(tab, k)[sel]).float().to(device) for k in ("expr", "jaw", "rot", "trans")}
        with torch.no_grad():
            verts = head(shape.expand(len(sel), -1), p["expr"], p["jaw"], p["rot"], p["trans"])
        imgs = torch.from_numpy(np.stack([fs.get(int(rows[i])) for i in sel])).to(device)
        return imgs, verts

    tr, ho = take(train), take(held)
    return head, shape, K.to(device), size, tr, ho, {"identity": identity, "train_frames": len(train),
                                                     "heldout_frames": len(held), "camera": cam}


def texture_image(size: int = 256) -> torch.Tensor:
    try:
        from skimage.data import astronaut

        img = torch.from_numpy(astronaut()).float() / 255.0
    except ImportError:
        y, x = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
        img = torch.stack([0.5 + 0.4 * torch.sin(12 * x), 0.5 + 0.4 * torch.sin(9 * y), 0.5 + 0.3 * torch.cos(20 * x * y)], -1)
    return img


def synthetic_sequence(head, T: int, seed: int, device):
    g = torch.Generator().manual_seed(seed)
    t = torch.linspace(0, 1, T)[:, None]
    def smooth(dim, amp):
        ph = torch.rand(1, dim, generator=g) * 6.28
        fr = 1 + 3 * torch.rand(1, dim, generator=g)
        return amp * torch.sin(6.28 * fr * t + ph)
    z = head.zeros(T, device)
    expr = smooth(head.n_expr, 0.8)
    jaw = torch.zeros(T, 3)
    jaw[:, 0] = 0.15 + smooth(1, 0.15)[:, 0]
    rot = z["rot"].cpu() + smooth(3, 0.2)
    trans = z["trans"].cpu() + smooth(3, 0.01)
    jaw = z["jaw"].cpu() + jaw
    with torch.no_grad():
        return head(z["shape"].to(device), expr.to(device), jaw.to(device), rot.to(device), trans.to(device))


def load_synthetic(n_gt: int, size: int, device, T_train: int = 60, T_held: int = 20):
    from emotag_core.flame import load_head_model

    head = load_head_model(FlameConfig(), device)
    with torch.no_grad():
        rest = head(**head.zeros(1, device))[0]
    K = torch.tensor([[2.0 * size, 0, size / 2], [0, 2.0 * size, size / 2], [0, 0, 1]], device=device)
    gt = GaussianAvatar(rest, head.faces, n_gaussians=n_gt, seed=123, init_opacity=0.95).to(device)
    uv = head.uv.to(device)[head.faces[gt.parent]]                      # [N, 3, 2]
    uvg = (gt.bary[..., None] * uv).sum(1)
    tex = texture_image().to(device)
    h, w = tex.shape[:2]
    col = tex[(uvg[:, 1].clamp(0, 1) * (h - 1)).long(), (uvg[:, 0].clamp(0, 1) * (w - 1)).long()]
    with torch.no_grad():
        gt.sh[:, 0] = (col - 0.5) / SH_C0
        gt.rot_l.add_(0.2 * torch.randn_like(gt.rot_l))
    y, x = torch.meshgrid(torch.linspace(0, 1, size, device=device), torch.linspace(0, 1, size, device=device), indexing="ij")
    bg = torch.stack([0.3 + 0.4 * x, 0.35 + 0.2 * y, 0.5 - 0.3 * x * y], -1)
    vtr = synthetic_sequence(head, T_train, 1, device)
    vho = synthetic_sequence(head, T_held, 2, device)
    imgs_tr = (render_frames(gt, bg, vtr, K, size) * 255).round().to(torch.uint8)
    imgs_ho = (render_frames(gt, bg, vho, K, size) * 255).round().to(torch.uint8)
    return head, None, K, size, (imgs_tr, vtr), (imgs_ho, vho), {"identity": "synthetic(open head, astronaut texture)",
                                                                 "train_frames": T_train, "heldout_frames": T_held}


def save_triptych(path: Path, gt: torch.Tensor, pred: torch.Tensor) -> None:
    """ground truth | render | error (|diff| x4) as one PNG."""
    from torchvision.io import write_png

    err = ((pred - gt).abs().mean(-1, keepdim=True) * 4).clamp(0, 1).expand_as(gt)
    img = torch.cat([gt, pred, err], 1)
    write_png((img * 255).round().to(torch.uint8).permute(2, 0, 1).cpu(), str(path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--identity", default="sample")
    ap.add_argument("--root", type=Path, default=Path("."))
    ap.add_argument("--synthetic", action="store_true", help="fit the generated scene instead of an identity")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--n-gaussians", type=int, default=60_000)
    ap.add_argument("--iters", type=int, default=1000)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--train-seconds", type=float, default=5.0)
    ap.add_argument("--eval-from-s", type=float, default=10.0)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="StaticFitConfig overrides, e.g. lr_position=5e-4")
    ap.add_argument("--tag", default="", help="suffix of the output file names")
    a = ap.parse_args()
    dev = torch.device(a.device)
    a.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    t0 = time.time()
    mode = "synthetic"
    if not a.synthetic:
        proc = a.root / "data" / "processed" / a.identity
        if (proc / "frames.parquet").exists() and (proc / "flame.parquet").exists():
            from emotag_core.config import load_params

            flame_cfg = load_params(a.root / "params.yaml").flame
            data = load_real(a.identity, a.root, a.train_seconds, a.eval_from_s, a.eval_every, flame_cfg, dev)
            mode = "real"
        else:
            print(f"{proc}: frames.parquet/flame.parquet missing; fitting the synthetic scene instead")
    if mode == "synthetic":
        data = load_synthetic(3 * a.n_gaussians, 512, dev)
    head, shape, K, size, (img_tr, v_tr), (img_ho, v_ho), info = data
    t_load = time.time() - t0
    rest, region = mouth_region_for_head(head, shape)
    av = GaussianAvatar(rest.to(dev), head.faces, n_gaussians=a.n_gaussians, mouth_vertex_mask=region).to(dev)
    cfg = StaticFitConfig(iters=a.iters, batch_size=a.batch_size)
    for kv in a.set:
        k, v = kv.split("=", 1)
        if not hasattr(cfg, k):
            raise SystemExit(f"--set: StaticFitConfig has no field {k!r}")
        setattr(cfg, k, type(getattr(cfg, k))(v) if not isinstance(getattr(cfg, k), bool) else v.lower() == "true")
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t1 = time.time()
    m_tr = head_masks(v_tr, head.faces, K[None].expand(len(v_tr), 3, 3), size)
    from emotag_core.progress import RichProgress

    with RichProgress("static fit", every_s=30) as bar:
        res = fit_static(av, img_tr, v_tr, K, cfg, masks=m_tr, progress=bar)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    t_fit = time.time() - t1
    m_ho = head_masks(v_ho, head.faces, K[None].expand(len(v_ho), 3, 3), size)
    ev_ho = evaluate_static(av, res.background, img_ho, v_ho, K, masks=m_ho)
    ev_tr = evaluate_static(av, res.background, img_tr[::4], v_tr[::4], K, masks=m_tr[::4])
    pick = len(v_ho) // 2
    pred = render_frames(av, res.background, v_ho[pick:pick + 1], K, size)[0]
    tag = ("synthetic" if mode == "synthetic" else a.identity) + a.tag
    pic = a.out / f"fit_static_{tag}.png"
    save_triptych(pic, img_ho[pick].float() / 255.0, pred)
    out = {"mode": mode, **info, "config": {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}, "n_gaussians": av.n, "n_mouth_gaussians": av.n_mouth, "iters": a.iters,
           "batch_size": a.batch_size, "heldout": ev_ho, "train": ev_tr, "fit_seconds": round(t_fit, 1),
           "load_seconds": round(t_load, 1), "loss_first": res.losses[0], "loss_last": float(np.mean(res.losses[-20:])),
           "device": torch.cuda.get_device_name() if dev.type == "cuda" else "cpu",
           "date": time.strftime("%Y-%m-%d"), "picture": pic.name}
    (a.out / f"fit_static_{tag}.json").write_text(json.dumps(out, indent=1, default=str))
    print(json.dumps(out, default=str))
    print(f"held-out PSNR {ev_ho['psnr']:.2f} dB (masked_psnr {ev_ho['masked_psnr']:.2f} dB) on {ev_ho['frames']} "
          f"frames; train PSNR {ev_tr['psnr']:.2f} dB; fit {t_fit:.1f} s for {a.iters} iters")


if __name__ == "__main__":
    main()
