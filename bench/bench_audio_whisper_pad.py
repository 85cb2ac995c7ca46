"""Whisper tiny.en: padded-to-30 s against unpadded encoder input, on real packaged speech.

For clips of several lengths cut from the speech part of pyannote's sample (real English), it
reports (1) how far the unpadded states are from the padded ones (cosine similarity, relative
RMS difference) and (2) what Whisper's own decoder transcribes from each (greedy, CTranslate2),
and (3) encode time. Usage: python bench/bench_audio_whisper_pad.py
"""
from __future__ import annotations

import time

import numpy as np

from emotag_core.assets import asset_path
from emotag_core.teachers import whisper as W
from emotag_core.teachers.audio import read_audio


def transcribe(model, mel: np.ndarray) -> str:
    import ctranslate2

    sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], np.float32))
    r = model.generate(sv, [["<|startoftranscript|>", "<|notimestamps|>"]], beam_size=1, max_length=120)
    text = "".join(r[0].sequences[0]).replace("\u0120", " ")
    return text.strip()


def main() -> None:
    x = read_audio(asset_path("pyannote_sample.wav"))
    pad = W.WhisperFeatures(pad_to_30s=True)
    raw = W.WhisperFeatures(pad_to_30s=False)
    print("| clip | cosine (mean/min) | rel. RMS diff | padded encode s | unpadded encode s |")
    for start, secs in ((7.0, 2.0), (7.0, 5.0), (7.0, 10.0), (7.0, 20.0)):
        clip = x[int(start * 16000): int((start + secs) * 16000)]
        hp = pad.hidden_states(clip)
        t0 = time.perf_counter(); hp = pad.hidden_states(clip); tp = time.perf_counter() - t0
        t0 = time.perf_counter(); hr = raw.hidden_states(clip); tr = time.perf_counter() - t0
        cos = (hp * hr).sum(1) / np.linalg.norm(hp, axis=1) / np.linalg.norm(hr, axis=1)
        rel = np.sqrt(((hp - hr) ** 2).mean()) / np.sqrt((hp ** 2).mean())
        print(f"| {start:g}-{start + secs:g} s | {cos.mean():.3f} / {cos.min():.3f} | {rel:.3f} | {tp:.3f} | {tr:.3f} |")
        mel = W.log_mel(clip)
        full = np.concatenate([mel, np.full((80, 3000 - mel.shape[1]), mel.max() - 2.0, np.float32)], 1)
        print(f"    padded:   {transcribe(pad.ct2, full)}")
        print(f"    unpadded: {transcribe(pad.ct2, mel[:, : mel.shape[1] // 2 * 2])}")


if __name__ == "__main__":
    main()
