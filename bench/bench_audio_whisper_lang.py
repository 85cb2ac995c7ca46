"""What Whisper tiny.en (English-only) does with non-English speech: espeak-ng English, German, Mandarin.

Per voice: the features run and are finite; their spread over time (mean per-dimension std across
frames) and their distance to the English clip's mean state; and the transcript tiny.en's own
decoder writes (greedy, padded 30 s window). Usage: python bench/bench_audio_whisper_lang.py
"""
from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from emotag_core.teachers import whisper as W
from emotag_core.teachers.audio import read_audio

TEXTS = {"en": "Good morning, how are you today? The weather is lovely, let us walk in the park.",
         "de": "Guten Morgen, wie geht es dir heute? Das Wetter ist schön, lass uns im Park spazieren gehen.",
         "cmn": "你好，今天天气很好，我们去公园散步吧。"}


def main() -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_audio_whisper_pad import transcribe

    feats = W.WhisperFeatures()
    rows = {}
    with tempfile.TemporaryDirectory() as d:
        for voice, text in TEXTS.items():
            wav = Path(d) / f"{voice}.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(wav), text], check=True, capture_output=True)
            x = read_audio(wav)
            n = int(len(x) / 16000 * 25)
            f = feats.features(x, n, 25.0)
            mel = W.log_mel(x)
            full = np.concatenate([mel, np.full((80, 3000 - mel.shape[1]), mel.max() - 2.0, np.float32)], 1)
            rows[voice] = (f, len(x) / 16000, transcribe(feats.ct2, full))
    en_mean = rows["en"][0].mean(0)
    print("| voice | seconds | finite | mean per-dim std over frames | distance of mean state to English's |")
    for voice, (f, secs, text) in rows.items():
        print(f"| {voice} | {secs:.1f} | {np.isfinite(f).all()} | {f.std(0).mean():.3f} | "
              f"{np.linalg.norm(f.mean(0) - en_mean):.2f} |")
    for voice, (_, _, text) in rows.items():
        print(f"  {voice}: {text}")


if __name__ == "__main__":
    main()
