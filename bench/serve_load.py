"""Load test of `emotag serve`'s app on 127.0.0.1: N concurrent clients, each uploading a speech clip and reading
its frame stream to the end, until `--requests` renders are served or `--timeout` s pass (bounded in count and
time). Reports throughput (frames/s over all clients, renders/min), time to first frame (upload start -> first
frame on the client, p50/p95), failures, and 429s apart (past `--queue` a client is told busy; it retries
after 0.5 s, so 429s appear only when N exceeds the bound).

The avatar is a random adapted identity of the profile's sizes (`emotag_core.serve.tiny`: the profile's
pretrain.n_gaussians and GRMN sizes, ingest.size output rasterized at render.size), so the cost per frame
is the profile's; `--models/--processed` take a real adapted identity instead.

    python bench/serve_load.py --clients 4 --queue 4 --requests 8 --seconds 2      # CPU smoke profile
    python bench/serve_load.py --clients 6 --queue 4 --requests 8 --seconds 2      # past the bound: 429s
    python bench/serve_load.py --device cuda --profile params.paper.yaml ...        # the GPU
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def build(args: argparse.Namespace, tmp: Path):  # noqa: ANN201 - (Renderer, ServeConfig, device label)
    import dataclasses

    import torch

    from emotag_core.config import FlameConfig, load_params
    from emotag_core.flame import load_head_model
    from emotag_core.render.jobs import TargetFiles
    from emotag_core.serve.jobs import Renderer, load_avatar
    from emotag_core.serve.tiny import write_adapted, write_cue_tables

    p = load_params(args.profile)
    p.render.device, p.render.cue_clip = args.device, None
    torch.set_num_threads(args.threads)
    models, processed = args.models, args.processed
    if models is None:
        pt = p.pretrain
        models, processed = tmp / "models", tmp / "processed"
        write_adapted(models, pt.n_gaussians, pt.d_model, pt.d_expr, pt.n_layers, pt.n_heads, pt.hidden)
        write_cue_tables(processed, load_head_model(FlameConfig(), "cpu").n_expr, n=50)
        p.audio_features = dataclasses.replace(p.audio_features, backend="logmel")  # serve.tiny's GRMN reads log-mel
    cfg = dataclasses.replace(p.serve, queue_size=args.queue, workers=args.workers, max_audio_s=60.0)
    renderer = Renderer(lambda: ["bench"], lambda _i: load_avatar(models, TargetFiles("bench", processed), p, args.device),
                        tmp / "out", cfg.queue_size, cfg.workers, cfg.jpeg_quality, keep_jobs=4)
    label = f"cuda ({torch.cuda.get_device_name(0)})" if args.device.startswith("cuda") else args.device
    return renderer, cfg, label, p


async def load(args: argparse.Namespace, tmp: Path) -> dict:
    import aiohttp
    from aiohttp import web

    from emotag_core.serve.app import make_app
    from emotag_core.serve.jobs import FRAME_HEADER
    from emotag_core.serve.tiny import speech_wav

    renderer, cfg, label, p = build(args, tmp)
    wav = speech_wav(tmp / "speech.wav", args.seconds, seed=3).read_bytes()
    runner = web.AppRunner(make_app(renderer, cfg, label))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)  # 127.0.0.1 only
    await site.start()
    port = runner.addresses[0][1]
    base = f"http://127.0.0.1:{port}"
    t_end = time.perf_counter() + args.timeout
    served: list[dict] = []
    failures: list[str] = []
    busy = 0
    started = 0
    async with aiohttp.ClientSession() as s:
        # warm-up: the avatar loads on the first request (not counted)
        r = await s.post(f"{base}/api/jobs", params={"identity": "bench"}, data=wav)
        d = await r.json()
        async with s.ws_connect(f"{base}{d['events']}") as ws:
            async for m in ws:
                if m.type == aiohttp.WSMsgType.TEXT and json.loads(m.data)["type"] in ("done", "error"):
                    break

        async def client(k: int) -> None:
            nonlocal busy, started
            while time.perf_counter() < t_end and started < args.requests:
                started += 1
                t0 = time.perf_counter()
                try:
                    r = await s.post(f"{base}/api/jobs", params={"identity": "bench"}, data=wav)
                    d = await r.json()
                    if r.status == 429:
                        busy += 1
                        started -= 1
                        await asyncio.sleep(0.5)
                        continue
                    if r.status != 202:
                        failures.append(f"{r.status}: {d}")
                        continue
                    first, n = None, 0
                    async with s.ws_connect(f"{base}{d['events']}") as ws:
                        async for m in ws:
                            if m.type == aiohttp.WSMsgType.BINARY:
                                FRAME_HEADER.unpack_from(m.data)
                                first = first if first is not None else time.perf_counter() - t0
                                n += 1
                            elif m.type == aiohttp.WSMsgType.TEXT:
                                msg = json.loads(m.data)
                                if msg["type"] == "error":
                                    failures.append(msg["error"])
                                    break
                                if msg["type"] == "done":
                                    served.append({"ttff": first, "frames": n, "wall": time.perf_counter() - t0,
                                                   "render_fps": msg["summary"]["fps"],
                                                   "queue_wait_s": msg["summary"]["queue_wait_s"]})
                                    break
                except aiohttp.ClientError as exc:
                    failures.append(f"{type(exc).__name__}: {exc}")

        t0 = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(args.clients)))
        wall = time.perf_counter() - t0
    await runner.cleanup()
    ttff = np.array([x["ttff"] for x in served if x["ttff"] is not None])
    frames = sum(x["frames"] for x in served)
    return {"clients": args.clients, "queue": args.queue, "workers": args.workers, "device": label,
            "profile": args.profile, "output_px": p.ingest.size, "raster_px": p.render.size or p.ingest.size,
            "n_gaussians": p.pretrain.n_gaussians, "audio_s": args.seconds, "served": len(served),
            "failed": len(failures), "busy_429": busy, "wall_s": round(wall, 2),
            "frames_per_s": round(frames / wall, 2), "renders_per_min": round(60 * len(served) / wall, 2),
            "ttff_p50_s": round(float(np.percentile(ttff, 50)), 3) if len(ttff) else None,
            "ttff_p95_s": round(float(np.percentile(ttff, 95)), 3) if len(ttff) else None,
            "queue_wait_p50_s": round(float(np.median([x["queue_wait_s"] for x in served])), 3) if served else None,
            "render_fps_mean": round(float(np.mean([x["render_fps"] for x in served])), 2) if served else None,
            "timed_out": time.perf_counter() >= t_end, "failures": failures[:5]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--queue", type=int, default=4, help="serve.queue_size: requests at once")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--requests", type=int, default=8, help="stop after this many served renders")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of each request's speech")
    ap.add_argument("--timeout", type=float, default=300.0, help="stop after this many seconds")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--profile", default="params.yaml")
    ap.add_argument("--models", type=Path, default=None, help="a real adapt@<id> folder (with --processed)")
    ap.add_argument("--processed", type=Path, default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve_load-") as tmp:
        print(json.dumps(asyncio.run(load(args, Path(tmp)))))


if __name__ == "__main__":
    main()
