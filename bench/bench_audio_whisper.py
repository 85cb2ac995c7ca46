"""Speed of the `whisper` audio backend on this machine: audio seconds per wall second (x real time).

Real speech (pyannote.audio's packaged 30 s sample, tiled to the length asked) through
`WhisperFeatures.features` (log-mel + encoder windows + pooling to 25 fps), best of `--repeat` runs.
Usage: python bench/bench_audio_whisper.py [--seconds 120] [--engine ctranslate2] [--threads 0] [--repeat 3]
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

from emotag_core.assets import asset_path
from emotag_core.teachers import whisper as W
from emotag_core.teachers.audio import read_audio


def rate(feats: W.WhisperFeatures, x: np.ndarray, repeat: int) -> float:
    n = int(len(x) / 16000 * 25)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        f = feats.features(x, n, 25.0)
        best = min(best, time.perf_counter() - t0)
    assert f.shape == (n, 384) and np.isfinite(f).all()
    return len(x) / 16000 / best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, nargs="+", default=[120.0, 30.0, 10.0, 4.0])
    ap.add_argument("--engine", default="ctranslate2", choices=["ctranslate2", "torch"])
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--unpadded", action="store_true")
    a = ap.parse_args()
    speech = read_audio(asset_path("pyannote_sample.wav"))
    feats = W.WhisperFeatures(engine=a.engine, threads=a.threads, pad_to_30s=not a.unpadded)
    feats.features(speech[: 16000 * 5], 125, 25.0)                     # warm-up
    load = os.getloadavg()[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {load:.1f}; engine {a.engine}"
          f" ({feats.version}), threads {a.threads}, {'unpadded' if a.unpadded else 'padded to 30 s'}")
    for s in a.seconds:
        x = np.tile(speech, int(np.ceil(s / 30.0)))[: int(s * 16000)]
        print(f"  {s:6.0f} s of speech: {rate(feats, x, a.repeat):6.1f}x real time")


if __name__ == "__main__":
    main()
