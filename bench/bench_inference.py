"""Inference speed on CUDA (issue 7 item 4): audio encoding, GRMN, head model, binding and render at
512x512 with ~60k Gaussians, per part and end to end, at batch 1 and batched.

    python bench/bench_inference.py --batch 1 8 32 --json out.json [--compile] [--wav2vec2]

Parts are timed with CUDA events (median of `--reps` after warm-up); `e2e` is one whole batch
(GRMN -> head -> bind -> rasterize -> uint8 frames copied to the host) timed on the host clock
after a synchronize. `stream` runs the real render loop (`render.driver.animate_stream` with the
`Animator`, log-mel features computed on the CPU as audio arrives) over `--stream-frames` frames.
`graph` / `compile` time `render.graphed.FramePoser`: the posing part (GRMN + head + bind) replayed
from a CUDA graph or compiled, the rasterizer eager. Wav2Vec2 has no weights here: the architecture
(transformers `Wav2Vec2Config()`, the base model) with random weights is saved with
`save_pretrained` and loaded through the project's real loader; speed does not depend on the values.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_render import cuda_time  # noqa: E402 - bench/ is the script's own folder
from emotag_core.config import FlameConfig  # noqa: E402
from emotag_core.flame import load_head_model  # noqa: E402
from emotag_core.io.tables import UPPER_AUS  # noqa: E402
from emotag_core.motion.grmn import GRMN, GRMNSpec  # noqa: E402
from emotag_core.render.driver import Animator, CueTrack, GateControl, animate_stream, apply_gate  # noqa: E402
from emotag_core.render.graphed import FramePoser, GraphedAnimator  # noqa: E402
from emotag_core.teachers.audio import LogMelFeatures  # noqa: E402
from emotag_core.avatar.scene import build_scene  # noqa: E402

SR, FPS = 16000, 25.0


def cuda_ms(fn, warmup: int = 10, reps: int = 50) -> float:
    """Median CUDA-event milliseconds of fn() (host clock when CUDA is absent: a CPU smoke run)."""
    if not torch.cuda.is_available():
        return host_ms(fn, 1, 3)
    return cuda_time(fn, warmup, reps)


def host_ms(fn, warmup: int = 3, reps: int = 20) -> float:
    """Median host-clock milliseconds of fn() (synchronized before and after)."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        ts.append(1e3 * (time.perf_counter() - t0))
    return statistics.median(ts)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Amplitude-modulated harmonic noise at 16 kHz (speed of the features does not depend on content)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    env = np.abs(np.sin(2 * np.pi * 3.0 * t)) ** 2
    x = sum(np.sin(2 * np.pi * f * t) / (k + 1) for k, f in enumerate((140, 280, 420, 840, 1600)))
    return (0.1 * env * x + 0.01 * rng.normal(size=t.shape)).astype(np.float32)


def audio_bench(args, dev: torch.device) -> dict:
    """Per-frame cost of the audio feature backends: whole clip and streamed (render loop's chunks)."""
    from emotag_core.render.audio import FeatureStream, frame_blocks

    res: dict = {}
    audio = speech_like(args.audio_seconds)
    n = int(args.audio_seconds * FPS)
    backends = {"logmel": LogMelFeatures()}
    if args.wav2vec2:
        from transformers import Wav2Vec2Config, Wav2Vec2Model

        from emotag_core.teachers.audio import Wav2Vec2Features

        tmp = Path(tempfile.mkdtemp(prefix="w2v2-random-"))
        torch.manual_seed(0)
        Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(tmp)  # base architecture, random weights
        t0 = time.perf_counter()
        backends["wav2vec2_random"] = Wav2Vec2Features(str(tmp), device=str(dev))
        res["wav2vec2_load_s"] = time.perf_counter() - t0
    for name, be in backends.items():
        for _ in range(2):
            be.features(audio[: SR * 2], 50, FPS)  # warm-up (cuDNN autotune, allocator)
        sync()
        ts = []
        for _ in range(3):
            t0 = time.perf_counter()
            be.features(audio, n, FPS)
            sync()
            ts.append(time.perf_counter() - t0)
        res[f"{name}_clip_ms_per_frame"] = 1e3 * min(ts) / n
        for chunk in (1, 8):
            fs = FeatureStream(be, fps=FPS, context=4 if chunk > 1 else 2, chunk=chunk)
            t0 = time.perf_counter()
            got = sum(len(fs.push(b)) for b in frame_blocks([audio[: SR * 4]], SR, FPS)) + len(fs.finish())
            sync()
            res[f"{name}_stream_chunk{chunk}_ms_per_frame"] = 1e3 * (time.perf_counter() - t0) / got
        res[f"{name}_dim"] = be.feature_dim
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=60_000, help="Gaussians (the open head model rounds to 54 per face)")
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8, 32])
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--audio-seconds", type=float, default=20.0)
    ap.add_argument("--stream-frames", type=int, default=500)
    ap.add_argument("--wav2vec2", action="store_true", help="also time Wav2Vec2-base (random weights) on CUDA")
    ap.add_argument("--compile", action="store_true", help="also time FramePoser(mode='compile')")
    ap.add_argument("--compile-batches", type=int, nargs="+", default=[1], help="batch sizes to compile for")
    ap.add_argument("--deadline-s", type=float, default=170.0, help="skip optional parts past this wall time (s)")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke run of the script (torch rasterizer, no graphs)")
    a = ap.parse_args()
    t_start = time.perf_counter()
    dev = torch.device(a.device)
    torch.manual_seed(0)
    head = load_head_model(FlameConfig(), dev)
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}  # face ~60% of the crop, as ingest
    scene = build_scene(head, meta, a.n, None, "gsplat" if dev.type == "cuda" else "torch", dev)
    with torch.no_grad():  # opaque, textured: every pixel of the face is covered, as after fitting
        scene.avatar.opacity_logit.fill_(2.0)
        scene.avatar.sh.add_(0.3 * torch.randn_like(scene.avatar.sh))
    logmel = LogMelFeatures()
    spec = GRMNSpec(audio_dim=logmel.feature_dim, n_aus=len(UPPER_AUS), identity_dim=128, n_expr=head.n_expr,
                    n_mouth=scene.n_mouth)  # paper sizes: d_model 256, 4 layers, window 16
    grmn = GRMN(spec).to(dev).eval()
    spec768 = GRMNSpec(**{**spec.__dict__, "audio_dim": 768})
    grmn768 = GRMN(spec768).to(dev).eval()
    s = torch.randn(spec.identity_dim, device=dev)
    info = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else platform.processor(), "torch": torch.__version__, "n_gaussians": scene.avatar.n,
            "faces": int(head.faces.shape[0]), "n_mouth": scene.n_mouth, "size": a.size,
            "date": time.strftime("%Y-%m-%d"), "host": platform.node(),
            "grmn_params": sum(p.numel() for p in grmn.parameters())}
    if dev.type == "cuda":
        import gsplat

        info["gsplat"] = gsplat.__version__
    print(json.dumps(info), flush=True)
    rows = []
    gen = torch.Generator(device=dev).manual_seed(0)
    for B in a.batch:
        aw = torch.randn(B, spec.window, spec.audio_dim, device=dev, generator=gen)
        aw768 = torch.randn(B, spec.window, 768, device=dev, generator=gen)
        ew = 5 * torch.rand(B, spec.window, spec.n_aus, device=dev, generator=gen)
        rot = 0.1 * torch.randn(B, 3, device=dev, generator=gen)
        trans = torch.tensor([0.0, 0.0, 0.5], device=dev).expand(B, 3).contiguous()
        sb = s[None].expand(B, -1)
        K = scene.K.clone()
        K[:2] *= a.size / scene.frame_size
        Kb = K.expand(B, 3, 3)
        ctl = GateControl()
        with torch.no_grad():
            out = grmn(aw, ew, sb)
            verts = head(scene.shape, out.expr, out.jaw, rot, trans)
            gs = scene.avatar.bind(verts, out.mouth)
        r: dict = {"batch": B}
        with torch.no_grad():
            r["grmn_ms"] = cuda_ms(lambda: apply_gate(grmn(aw, ew, sb), ctl, spec.n_expr), reps=a.reps)
            r["grmn_w2v_ms"] = cuda_ms(lambda: grmn768(aw768, ew, sb), reps=a.reps)
            r["head_ms"] = cuda_ms(lambda: head(scene.shape, out.expr, out.jaw, rot, trans), reps=a.reps)
            r["bind_ms"] = cuda_ms(lambda: scene.avatar.bind(verts, out.mouth), reps=a.reps)
            r["render_ms"] = cuda_ms(lambda: scene.rasterize(gs, Kb, a.size), reps=a.reps)
            r["render_composite_ms"] = cuda_ms(
                lambda: scene.render(out.expr, out.jaw, rot, trans, out.mouth, a.size), reps=a.reps)

            def e2e(poser=None):
                def fn():
                    if poser is None:
                        o = apply_gate(grmn(aw, ew, sb), ctl, spec.n_expr)
                        img = scene.render(o.expr, o.jaw, rot, trans, o.mouth, a.size)["image"]
                    else:
                        img = poser.render(aw, ew, rot, trans, a.size)
                    return (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu()
                return fn

            r["e2e_gpu_ms"] = host_ms(e2e(), reps=max(10, a.reps // 2))
            r["e2e_gpu_device_ms"] = cuda_ms(e2e(), reps=a.reps)
            poser = FramePoser(grmn, scene, s, batch=B, mode="graph" if dev.type == "cuda" else "eager")
            r["graph_pose_ms"] = cuda_ms(lambda: poser.pose(aw, ew, rot, trans), reps=a.reps)
            r["graph_e2e_gpu_ms"] = host_ms(e2e(poser), reps=max(10, a.reps // 2))
            ref = e2e()().float()
            got = e2e(poser)().float()
            r["graph_vs_eager_max_abs_u8"] = float((ref - got).abs().max())
            del poser
        if a.compile and B in a.compile_batches and time.perf_counter() - t_start < a.deadline_s:
            try:
                t0 = time.perf_counter()
                cp = FramePoser(grmn, scene, s, batch=B, mode="compile")
                r["compile_build_s"] = time.perf_counter() - t0
                with torch.no_grad():
                    r["compile_pose_ms"] = cuda_ms(lambda: cp.pose(aw, ew, rot, trans), reps=a.reps)
                    r["compile_e2e_gpu_ms"] = host_ms(e2e(cp), reps=max(10, a.reps // 2))
                    r["compile_vs_eager_max_abs_u8"] = float((e2e()().float() - e2e(cp)().float()).abs().max())
            except Exception as exc:  # noqa: BLE001 - report, keep the other numbers
                r["compile_error"] = f"{type(exc).__name__}: {exc}"[:300]
        # the real streaming render loop, log-mel features on the CPU as audio arrives
        if time.perf_counter() - t_start < a.deadline_s:
            nf = a.stream_frames if B > 1 else min(a.stream_frames, 250)
            audio = speech_like(nf / FPS, seed=1)
            blocks = [audio[i * 640:(i + 1) * 640] for i in range(nf)]
            rng = np.random.default_rng(0)
            cues = CueTrack(rot=0.1 * rng.normal(size=(100, 3)), trans=np.tile([0, 0, 0.5], (100, 1)),
                            aus=rng.uniform(0, 5, (100, spec.n_aus)), source="random")
            anim = Animator(grmn, scene, s, size=a.size, device=dev)
            animate_stream(anim, blocks[:40], logmel, cues, lambda t, f, x: None, batch_size=B)  # warm-up
            sync()
            tr = animate_stream(anim, blocks, logmel, cues, lambda t, f, x: None, batch_size=B)
            r["stream_fps"] = tr.n_frames / tr.wall_s
            r["stream_frames"] = tr.n_frames
            if dev.type == "cuda":  # the same loop with the CUDA-graph animator
                fast = GraphedAnimator(grmn, scene, s, batch=B, size=a.size, device=dev, mode="graph")
                animate_stream(fast, blocks[:40], logmel, cues, lambda t, f, x: None, batch_size=B)
                sync()
                tr = animate_stream(fast, blocks, logmel, cues, lambda t, f, x: None, batch_size=B)
                r["graph_stream_fps"] = tr.n_frames / tr.wall_s
                r["graph_stream_latency_p95_ms"] = 1e3 * float(np.percentile(tr.latency_s, 95))
                del fast
        r["parts_sum_ms"] = r["grmn_ms"] + r["head_ms"] + r["bind_ms"] + r["render_ms"]
        rows.append(r)
        print(json.dumps(r), flush=True)
    audio_res = audio_bench(a, dev) if time.perf_counter() - t_start < a.deadline_s + 60 else {}
    print(json.dumps(audio_res), flush=True)
    # table: ms per frame
    keys = [k for k in dict.fromkeys(k for r in rows for k in r) if k.endswith("_ms")]
    print(f"{'ms per frame':28s}" + "".join(f"{'B=' + str(r['batch']):>10s}" for r in rows))
    for k in keys:
        print(f"{k:28s}" + "".join(f"{r[k] / r['batch']:10.3f}" if k in r else f"{'-':>10s}" for r in rows))
    for k in ("stream_fps", "graph_stream_fps", "graph_vs_eager_max_abs_u8", "compile_vs_eager_max_abs_u8", "compile_build_s"):
        print(f"{k:28s}" + "".join(f"{r[k]:10.1f}" if k in r else f"{'-':>10s}" for r in rows))
    for k, v in audio_res.items():
        print(f"audio {k}: {v:.4f}")
    if a.json:
        a.json.write_text(json.dumps({"info": info, "rows": rows, "audio": audio_res}, indent=1))


if __name__ == "__main__":
    main()
