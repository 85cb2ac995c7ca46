"""Benchmark the audio_features and identity stages on one identity (default: sample) on this machine.

Usage: python bench/bench_audio_identity.py [identity]
Reads data/processed/<id>/frames.parquet + audio; uses data/processed/<id>/emotion.parquet when present,
else computes landmarks + emotion into a temp folder first (not timed). Prints BENCHMARKS.md rows.
Calls the library jobs the stages call (`emotag_core.teachers.audio.write_features`, `identity_run`, ...).
"""
from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def main(identity: str = "sample") -> None:
    from emotag_core.config import load_params
    from emotag_core.teachers import audio
    from emotag_core.teachers.identity import identity_run

    torch.set_num_threads(os.cpu_count() or 2)
    p = load_params(ROOT / "params.yaml")
    processed = ROOT / "data" / "processed" / identity       # the stages' layout (stages.common.Paths)

    def audio_for(clip_id: str) -> Path:
        return processed / "audio" / f"{clip_id}.wav"

    frames = processed / "frames.parquet"
    tmp = Path(tempfile.mkdtemp(prefix="bench-"))
    today = datetime.date.today().isoformat()
    cpu = f"{os.cpu_count()}-core CPU"

    t0 = time.perf_counter()
    n = audio.write_features(frames, audio_for, tmp / "audio_features.parquet", p.audio_features)
    dt = time.perf_counter() - t0
    a = audio.read_audio(audio_for(identity)) if audio_for(identity).exists() else None
    pure = ""
    if a is not None and p.audio_features.backend == "logmel":
        lm = audio.LogMelFeatures(n_mels=p.audio_features.n_mels)
        ts = []
        for _ in range(5):
            t1 = time.perf_counter()
            lm.features(a, n)
            ts.append(time.perf_counter() - t1)
        pure = f"; features alone {len(a) / 16000 / np.median(ts):.0f}x real time"
    print(f"| audio_features@{identity} ({p.audio_features.backend}) | {n / dt:.0f} frames/s, "
          f"{n / 25 / dt:.1f}x real time (stage incl. table I/O){pure} | {cpu} | "
          f"`python bench/bench_audio_identity.py {identity}` | {today} |")

    emotion = processed / "emotion.parquet"
    if not emotion.exists():
        from emotag_core.teachers.emotion import emotion_run
        from emotag_core.teachers.landmarks import landmarks_run

        landmarks_run(frames, tmp / "landmarks.parquet", p.landmarks)
        emotion_run(frames, tmp / "landmarks.parquet", tmp / "emotion.parquet", p.emotion)
        emotion = tmp / "emotion.parquet"
    t0 = time.perf_counter()
    identity_run(frames, emotion, tmp / "identity.parquet", p.identity, box_scale=p.ingest.box_scale)
    dt = time.perf_counter() - t0
    from emotag_core.io.frames import FrameStore

    total = len(FrameStore(frames))
    k = min(p.identity.top_k, total)
    print(f"| identity@{identity} ({p.identity.backend}, top_k={p.identity.top_k}) | {total / dt:.0f} frames/s "
          f"of video ({k / dt:.1f} faces/s embedded; {dt:.1f} s) | {cpu} | "
          f"`python bench/bench_audio_identity.py {identity}` | {today} |")


if __name__ == "__main__":
    main(*sys.argv[1:])
