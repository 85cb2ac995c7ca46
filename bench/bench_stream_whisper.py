"""`render --stream` with Whisper features (issue 19 item 2): time to the first frame and per-frame latency.

    python bench/bench_stream_whisper.py --device cpu|cuda [--seconds 10] [--json out.json]

The avatar is a fresh random one (FLAME-rigged Gaussians from `avatar.scene.build_scene`, a paper-size
GRMN with random weights, audio_dim 384): speed does not depend on the values. The driving audio is real
speech, fed at real-time pace (`render.api.render_stream`, realtime=True) one video frame at a time.
Features: the Whisper tiny.en encoder through `render.audio.WhisperStream` with `render.stream_*`
defaults (or the flags), from, in this order: `--weights` (the fp16 encoder export), the carry folder
`.emotag-cache/whisper_port/encoder_fp16.safetensors` (`bench/bench_audio_whisper_export.py`; the GPU
machine has no ctranslate2), the packaged CTranslate2 model, or `--random` (tiny.en sizes, random).
Audio: `--audio FILE`, else the carry folder's reference.npz (12 s of real speech), else the packaged
LibriVox reading. A warm-up render (2 s, not paced) loads kernels first, as a live session would.
Reported: first frame - first audio (the first block's arrival), latency p50 / p95 / max (frame out - the real-time end of its audio), the
feature call per frame p50 / p95, the lookahead (features + GRMN window), FPS, and the latency drift
(last quarter's median - second quarter's: grows when the loop does not keep up with real time).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotag_core.render.audio import StreamOptions  # noqa: E402
from emotag_core.teachers import whisper as W  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PORT = ROOT / ".emotag-cache" / "whisper_port"
SR, FPS = 16000, 25.0


def features(a: argparse.Namespace, tmp: Path) -> tuple[W.WhisperFeatures, str]:
    dev = a.device
    if a.random:
        from emotag_core.teachers.whisper_toy import write_random_encoder

        return W.WhisperFeatures(weights=write_random_encoder(tmp / "rand.safetensors"), engine="torch",
                                 device=dev), "random tiny.en-size weights (torch)"
    w = a.weights or (PORT / "encoder_fp16.safetensors")
    if Path(w).is_file() and (dev != "cpu" or a.engine == "torch"):
        return W.WhisperFeatures(weights=w, engine="torch", device=dev), f"fp16 export {Path(w).name} (torch)"
    return W.WhisperFeatures(engine=a.engine if dev == "cpu" else "torch", device=dev), "packaged model.bin"


def speech(a: argparse.Namespace) -> tuple[np.ndarray, str]:
    if (PORT / "reference.npz").is_file() and not a.audio:
        return np.load(PORT / "reference.npz")["audio_int16"].astype(np.float32) / 32767, "reference.npz (12 s)"
    from emotag_core.teachers.audio import read_audio

    if a.audio:
        return read_audio(a.audio), str(a.audio)
    from emotag_core.assets import asset_home

    files = sorted((asset_home() / "speech" / "pocketsphinx").glob("sense_and_sensibility_*.wav"))
    return np.concatenate([read_audio(p) for p in files]), "LibriVox (pocketsphinx sdist)"


def animator(dev: torch.device, n: int, size: int, audio_dim: int, rasterizer: str):  # noqa: ANN201 - Animator
    from emotag_core.avatar.scene import build_scene
    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model
    from emotag_core.io.tables import UPPER_AUS
    from emotag_core.motion.grmn import GRMN, GRMNSpec
    from emotag_core.render.driver import Animator

    torch.manual_seed(0)
    head = load_head_model(FlameConfig(), dev)
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    if rasterizer == "auto":
        rasterizer = "gsplat" if dev.type == "cuda" else "torch"
    scene = build_scene(head, meta, n, None, rasterizer, dev)
    with torch.no_grad():
        scene.avatar.opacity_logit.fill_(2.0)
    spec = GRMNSpec(audio_dim=audio_dim, n_aus=len(UPPER_AUS), identity_dim=128, n_expr=head.n_expr,
                    n_mouth=scene.n_mouth)
    return Animator(GRMN(spec).to(dev), scene, torch.randn(128), size=size, device=dev, raster_size=size)


def drift(lat: list[float]) -> float | None:
    """Median latency of the last quarter of frames - of the second quarter: ~0 when the loop keeps up."""
    q = len(lat) // 4
    return float(np.median(lat[3 * q:]) - np.median(lat[q: 2 * q])) if q else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--engine", default="ctranslate2", help="CPU engine with the packaged model (ctranslate2 | torch)")
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--random", action="store_true")
    ap.add_argument("--audio", type=Path, default=None)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--gaussians", type=int, default=None, help="default: 60000 on cuda, 5000 on cpu")
    ap.add_argument("--size", type=int, default=None, help="output side; default 512 on cuda, 128 on cpu")
    d = StreamOptions()
    ap.add_argument("--lookahead", type=float, default=d.lookahead_s)
    ap.add_argument("--left", type=float, default=d.left_context_s)
    ap.add_argument("--chunk", type=float, default=d.chunk_s)
    ap.add_argument("--rasterizer", default="auto", help="auto (gsplat on cuda, torch on cpu) | gsplat | torch")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    from emotag_core.render.api import render_stream
    from emotag_core.render.driver import CueTrack

    if a.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA here")
    torch.set_num_threads(1 if a.device == "cuda" else 2)
    dev = torch.device(a.device)
    with tempfile.TemporaryDirectory() as tmp:
        be, source = features(a, Path(tmp))
    x, audio_src = speech(a)
    x = x[: int(a.seconds * SR) // 640 * 640]
    n = a.gaussians or (60000 if dev.type == "cuda" else 5000)
    size = a.size or (512 if dev.type == "cuda" else 128)
    an = animator(dev, n, size, be.feature_dim, a.rasterizer)
    rng = np.random.default_rng(0)
    cues = CueTrack(rot=rng.normal(0, 0.05, (50, 3)), trans=np.tile([0, 0, 0.5], (50, 1)),
                    aus=rng.uniform(0, 2, (50, an.grmn.spec.n_aus)).astype(np.float32), source="random cues")
    opts = StreamOptions(lookahead_s=a.lookahead, left_context_s=a.left, chunk_s=a.chunk)
    blocks = lambda y: [y[i: i + 640] for i in range(0, len(y), 640)]  # noqa: E731
    render_stream(an, blocks(x[: 2 * SR]), be, cues, realtime=False, stream_options=opts)   # warm-up
    tr = render_stream(an, blocks(x), be, cues, realtime=True, stream_options=opts)   # paced: latency from due times
    s = tr.summary()
    out = {"device": torch.cuda.get_device_name() if dev.type == "cuda" else f"cpu ({platform.processor() or 'x86'})",
           "date": time.strftime("%Y-%m-%d"), "features": source, "engine": be.engine, "audio": audio_src,
           "seconds": len(x) / SR, "gaussians": n, "size": size, "rasterizer": an.scene.backend, "options": opts.__dict__,
           **{k: s[k] for k in ("frames", "fps", "lookahead_s", "first_frame_from_audio_s", "latency_p50_s",
                                "latency_p95_s", "latency_max_s", "feature_p50_s", "feature_p95_s")},
           "latency_drift_s": drift(tr.latency_s)}
    out["first_frame_within_1s"] = bool(out["first_frame_from_audio_s"] < 1.0)
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
