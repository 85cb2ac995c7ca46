"""Time (and optionally profile) smoke-profile pretrain iterations on this CPU: data, GRMN, render, backward.

    python bench/bench_smoke_iter.py [--iters 6] [--threads 1] [--profile] [--static]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--static", action="store_true", help="static-appearance steps (no GRMN)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from emotag_core.flame import load_head_model
    from emotag_core.motion.grmn import GRMN
    from emotag_core.train.loop import LossSwitches, compute_losses
    from emotag_core.avatar.scene import build_scene
    from emotag_core.config import load_params
    from emotag_core.train.recipe import corpus_loader, grmn_spec, read_corpus

    p = load_params("params.yaml")
    c = p.pretrain
    indices = read_corpus(Path("data/processed/_corpus"))
    head = load_head_model(p.flame, "cpu")
    scenes = {ix.identity: build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer) for ix in indices}
    n_mouth = next(iter(scenes.values())).n_mouth
    spec = grmn_spec(c, p.ablation, p.audio_features.window, indices[0].meta, n_mouth)
    grmn = GRMN(spec)
    loader = corpus_loader(indices, c, spec)  # the pretrain stage's loader
    sw = LossSwitches.from_ablation(p.ablation)
    params_ = list(grmn.parameters()) + [q for s in scenes.values() for q in s.parameters()]
    opt = torch.optim.AdamW(params_, lr=c.lr)
    print(f"N={scenes[indices[0].identity].avatar.n} gaussians, mouth={n_mouth}, size={c.image_size}, "
          f"batch={c.batch_size}, threads={a.threads}")

    def step() -> dict[str, float]:
        t0 = time.perf_counter()
        batch = loader.next_batch()
        t1 = time.perf_counter()
        opt.zero_grad()
        total, terms, _ = compute_losses(grmn, scenes[batch.identity], batch, a.static, sw, c.image_size)
        t2 = time.perf_counter()
        total.backward()
        opt.step()
        t3 = time.perf_counter()
        return {"data": t1 - t0, "fwd": t2 - t1, "bwd": t3 - t2}

    step()  # warm-up
    if a.profile:
        import cProfile
        import pstats

        pr = cProfile.Profile()
        pr.enable()
    rows = [step() for _ in range(a.iters)]
    if a.profile:
        pr.disable()
        pstats.Stats(pr).sort_stats("cumulative").print_stats(35)
    for k in ("data", "fwd", "bwd"):
        v = sorted(r[k] for r in rows)
        print(f"{k}: median {v[len(v) // 2]:.3f} s")
    print(f"per iteration: {sum(sum(r.values()) for r in rows) / len(rows):.3f} s")


if __name__ == "__main__":
    main()
