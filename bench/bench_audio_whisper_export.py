"""Write the carry folder for the Whisper port's GPU test (no ctranslate2 on the GPU machine).

Writes, atomically, into OUT (default .emotag-cache/whisper_port, gitignored):
- encoder_fp16.safetensors: the encoder's fp16 weights from the packaged CTranslate2 model.bin (~16 MB);
- reference.npz: 12 s of real speech (int16, 16 kHz; pyannote.audio's packaged sample, 6-18 s), the
  CTranslate2 encoder states [600, 384] and per-frame features [300, 384] computed here on CPU,
  the model's SHA-256 and the ctranslate2 version.
Usage: python bench/bench_audio_whisper_export.py [OUT]
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from emotag_core.assets import asset_path
from emotag_core.io.atomic import write_bytes
from emotag_core.teachers import whisper as W
from emotag_core.teachers.audio import read_audio


def main(out: Path) -> None:
    import ctranslate2

    out.mkdir(parents=True, exist_ok=True)
    ct2 = W.WhisperFeatures(engine="ctranslate2")
    W.export_encoder(ct2.model_path, out / "encoder_fp16.safetensors")
    x = read_audio(asset_path("pyannote_sample.wav"))[6 * 16000: 18 * 16000]
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype(np.int16)
    x = pcm.astype(np.float32) / 32767                      # what the GPU side decodes
    buf = io.BytesIO()
    np.savez_compressed(buf, audio_int16=pcm, states=ct2.hidden_states(x), features=ct2.features(x, 300, 25.0),
                        model_sha256=np.array(ct2.checksum), ctranslate2=np.array(ctranslate2.__version__))
    write_bytes(out / "reference.npz", buf.getvalue())
    total = sum(p.stat().st_size for p in out.iterdir())
    print(f"{out}: {total / 1e6:.1f} MB ({', '.join(p.name for p in sorted(out.iterdir()))})")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".emotag-cache/whisper_port"))
