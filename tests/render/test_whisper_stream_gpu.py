"""`render.audio.WhisperStream` on CUDA (fp16 port) against the CPU (fp32 port), same weights.

Weights: the fp16 encoder export in `.emotag-cache/whisper_port` when carried (bench/bench_audio_whisper_export.py),
else random weights of tiny.en's sizes (`teachers.whisper_toy`): the comparison is of the two devices' math.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from emotag_core.render.audio import StreamOptions, WhisperStream
from emotag_core.teachers import whisper as W

pytestmark = pytest.mark.gpu
PORT_DIR = Path(os.environ.get("EMOTAG_WHISPER_PORT_DIR", Path(__file__).resolve().parents[2] / ".emotag-cache"
                               / "whisper_port"))


def test_streamed_features_on_cuda_match_the_cpu(tmp_path):
    import torch

    w = PORT_DIR / "encoder_fp16.safetensors"
    if w.is_file() and (PORT_DIR / "reference.npz").is_file():
        x = np.load(PORT_DIR / "reference.npz")["audio_int16"][: 6 * 16000].astype(np.float32) / 32767
        what = "fp16 export, real speech"
    else:
        from emotag_core.teachers.whisper_toy import write_random_encoder

        w = write_random_encoder(tmp_path / "rand.safetensors")
        rng = np.random.default_rng(0)
        x = (rng.normal(0, 0.2, 150 * 640) * np.repeat(rng.uniform(0, 1, 150) ** 2, 640)).astype(np.float32)
        what = "random tiny.en-size weights, noise bursts"
    o = StreamOptions()

    def stream(device: str) -> tuple[np.ndarray, WhisperStream]:
        s = WhisperStream(W.WhisperFeatures(weights=w, engine="torch", device=device), 25.0, o.lookahead_s,
                          o.left_context_s, o.chunk_s)
        out = [s.push(x[i * 640: (i + 1) * 640]) for i in range(len(x) // 640)]
        return np.concatenate(out + [s.finish()]), s

    cpu, _ = stream("cpu")
    stream("cuda")                                                   # warm-up (kernels)
    torch.cuda.synchronize()
    gpu, s = stream("cuda")
    rel = float(np.sqrt(((gpu - cpu) ** 2).mean() / (cpu ** 2).mean()))
    cos = (gpu * cpu).sum(1) / np.linalg.norm(gpu, axis=1) / np.linalg.norm(cpu, axis=1)
    per_chunk = float(np.median(s.compute_s))
    print(f"\nWhisperStream cuda fp16 vs cpu fp32 ({what}): rel RMS {rel:.2e}, min cosine {cos.min():.5f}; "
          f"cuda {per_chunk * 1e3:.1f} ms per chunk of {o.chunk_s:g} s (padded 30 s window)")
    assert gpu.shape == cpu.shape and np.isfinite(gpu).all()
    assert rel < 2e-2 and cos.min() > 0.999
    assert per_chunk < 0.5 * o.chunk_s                              # keeps up with real time with room to spare
