"""The Whisper port on the GPU, from the fp16 encoder-only export, against CTranslate2 features computed on CPU.

The carry folder is written on the CPU machine by `python bench/bench_audio_whisper_export.py`
(default `.emotag-cache/whisper_port`, or $EMOTAG_WHISPER_PORT_DIR); the GPU machine has no ctranslate2.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from emotag_core.teachers import whisper as W

pytestmark = pytest.mark.gpu
PORT_DIR = Path(os.environ.get("EMOTAG_WHISPER_PORT_DIR", Path(__file__).resolve().parents[2] / ".emotag-cache"
                               / "whisper_port"))


def _files() -> tuple[Path, dict]:
    w, ref = PORT_DIR / "encoder_fp16.safetensors", PORT_DIR / "reference.npz"
    if not (w.is_file() and ref.is_file()):
        pytest.skip(f"Whisper port files absent in {PORT_DIR}: write them with "
                    "`python bench/bench_audio_whisper_export.py` and carry that folder")
    return w, dict(np.load(ref))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(((a - b) ** 2).mean()) / np.sqrt((b ** 2).mean()))


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min())


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_port_on_gpu_matches_ctranslate2_reference(dtype):
    import torch

    weights, ref = _files()
    x = ref["audio_int16"].astype(np.float32) / 32767                 # 12 s of real speech
    feats = W.WhisperFeatures(weights=weights, engine="torch", device="cuda")
    if dtype == "float32":
        feats.torch_dtype = torch.float32
        feats.enc = feats.enc.float()
    h = feats.hidden_states(x)                                          # [600, 384]
    f = feats.features(x, 300, 25.0)                                    # [300, 384]
    rel_h, cos_h, rel_f = _rel(h, ref["states"]), _min_cos(h, ref["states"]), _rel(f, ref["features"])
    print(f"\nwhisper port cuda {dtype}: states rel RMS {rel_h:.2e}, min cosine {cos_h:.6f}; features rel RMS {rel_f:.2e}"
          f" (CPU fp16-on-CPU measured 1.4e-3 / 0.99999)")
    assert h.shape == ref["states"].shape and np.isfinite(h).all()
    assert rel_h < 1e-2 and cos_h > 0.999 and rel_f < 1e-2
    # the GPU rate: 5 minutes of audio (tiled speech), fp16 / fp32
    long = np.tile(x, 25)
    feats.hidden_states(long[: 30 * 16000])                             # warm-up
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    feats.features(long, int(len(long) / 16000 * 25), 25.0)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    print(f"whisper port cuda {dtype}: {len(long) / 16000:.0f} s of audio in {dt:.2f} s = "
          f"{len(long) / 16000 / dt:.0f}x real time (incl. log-mel on CPU)")
