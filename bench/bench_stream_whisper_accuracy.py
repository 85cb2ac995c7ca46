"""Streamed against offline Whisper features (issue 19 item 2): the error as a function of lookahead and left context.

Input: the packaged LibriVox reading (pocketsphinx's 5 `sense_and_sensibility` wavs, concatenated; `emotag
fetch-assets`), its first `--seconds`. Reference: `WhisperFeatures.features` on the whole cut (offline).
Streamed: `render.audio.WhisperStream` fed one video frame of audio at a time. Reports, per setting,
the relative RMS (||f - ref|| / ||ref||) and the mean / min per-frame cosine, and the seconds per chunk.
Usage: python bench/bench_stream_whisper_accuracy.py [--seconds 8] [--engine ctranslate2] [--lookahead ...]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emotag_core.render.audio import WhisperStream  # noqa: E402
from emotag_core.teachers import whisper as W  # noqa: E402

SR, FPS = 16000, 25.0


def librivox(seconds: float) -> np.ndarray:
    """The packaged LibriVox reading (~24.7 s), first `seconds`, cut to whole video frames -> [N]."""
    from emotag_core.assets import asset_home
    from emotag_core.teachers.audio import read_audio

    d = asset_home() / "speech" / "pocketsphinx"
    files = sorted(d.glob("sense_and_sensibility_*.wav"))
    if not files:
        raise SystemExit(f"no LibriVox wavs in {d}: run `emotag fetch-assets`")
    x = np.concatenate([read_audio(p) for p in files])[: int(seconds * SR)]
    return x[: len(x) // 640 * 640]


def streamed(be: W.WhisperFeatures, x: np.ndarray, **kw: float | bool) -> tuple[np.ndarray, WhisperStream]:
    s = WhisperStream(be, FPS, **kw)  # type: ignore[arg-type]
    out = [s.push(x[i * 640: (i + 1) * 640]) for i in range(len(x) // 640)]
    return np.concatenate(out + [s.finish()]), s


def compare(f: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """rel RMS and per-frame cosine of f [T, D] against ref [T, D]."""
    c = (f * ref).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(ref, axis=1)
    return {"rel_rms": float(np.sqrt(((f - ref) ** 2).mean() / (ref ** 2).mean())),
            "cos_mean": float(c.mean()), "cos_min": float(c.min())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--engine", default="ctranslate2")
    ap.add_argument("--lookahead", type=float, nargs="+", default=[0.2, 0.3, 0.5, 1.0])
    ap.add_argument("--left", type=float, nargs="+", default=[1.0, 2.0, 4.0, 8.0])
    ap.add_argument("--chunk", type=float, default=0.2)
    ap.add_argument("--unpadded", action="store_true", help="also the unpadded (context-only) encodes")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    x = librivox(a.seconds)
    be = W.WhisperFeatures(engine=a.engine)
    ref = be.features(x, len(x) // 640, FPS)
    rows = []
    pads = [True, False] if a.unpadded else [True]
    for look, left, pad in itertools.product(a.lookahead, a.left, pads):
        chunk = min(a.chunk, look)
        t0 = time.perf_counter()
        f, s = streamed(be, x, lookahead_s=look, left_context_s=left, chunk_s=chunk, padded=pad)
        wall = time.perf_counter() - t0
        r = {"lookahead_s": look, "left_context_s": left, "chunk_s": chunk, "padded": pad, **compare(f, ref),
             "s_per_chunk": float(np.mean(s.compute_s)) if s.compute_s else None, "wall_s": wall}
        rows.append(r)
        print(json.dumps(r), flush=True)
    if a.json:
        a.json.write_text(json.dumps({"seconds": a.seconds, "engine": be.engine, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
