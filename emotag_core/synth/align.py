"""Phone timings of real speech from its transcript: pocketsphinx forced alignment (en-us).

pocketsphinx 5 ships an en-us acoustic model and the CMU dictionary in its wheel. Alignment is two
passes over the same audio: `set_align_text` (a word-sequence search: where each word is) and then
`set_alignment` (the phones and HMM states inside those words), at 10 ms frames. It needs
`bestpath=False` (the lattice rescoring would drop the forced path) and wide beams (the default
beams prune the only path through long or noisy utterances and leave no hypothesis).

The phones come back as CMU/ARPAbet symbols (`AA`, `B`, ...). They are renamed to the espeak-ng
mnemonics the viseme table knows (`ARPABET_TO_ESPEAK`), so a real-speech clip's truth uses the same
alphabet as an espeak-ng one and `emotag_core.synth.visemes` drives the mouth unchanged.

A transcript that does not fit the audio still aligns somehow (the decoder is forced through it), so
each alignment is checked: its mean acoustic score per 10 ms frame must be above `MIN_FRAME_SCORE`
(the transcripts of the packaged recordings score -10 to -16; another sentence's transcript scores
about -60 or finds no path at all). Failures raise `AlignmentError`.
"""
from __future__ import annotations

import functools
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emotag_core.errors import InputError
from emotag_core.synth.speech import Phoneme

SAMPLE_RATE = 16000          # the en-us acoustic model's rate
FRAME_S = 0.01               # pocketsphinx frame step
MIN_FRAME_SCORE = -30.0      # mean acoustic score per frame below which the transcript does not fit the audio
BEAMS = {"beam": 1e-80, "wbeam": 1e-60, "pbeam": 1e-80}   # wide: the forced path must survive pruning
ALIGNER_VERSION = f"pocketsphinx-5.1.1:en-us:beams-1e-80:v1"

# CMU dictionary phones (no stress marks in the acoustic model) -> espeak-ng mnemonics of the viseme table
ARPABET_TO_ESPEAK: dict[str, str] = {
    "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "B": "b", "CH": "tS", "D": "d",
    "DH": "D", "EH": "E", "ER": "3:", "EY": "eI", "F": "f", "G": "g", "HH": "h", "IH": "I", "IY": "i:",
    "JH": "dZ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "N", "OW": "oU", "OY": "OI", "P": "p",
    "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T", "UH": "U", "UW": "u:", "V": "v", "W": "w",
    "Y": "j", "Z": "z", "ZH": "Z", "SIL": "_",
}

_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ABBREV = {"mr": "mister", "mrs": "missus", "dr": "doctor", "st": "saint"}


class AlignmentError(InputError):
    """A transcript cannot be aligned to its audio: words the dictionary lacks, no path, or a poor fit."""


@dataclass(frozen=True)
class Word:
    """One aligned word."""

    word: str
    """Dictionary word (lower case; `<sil>` for a pause)."""
    start: float
    """Start, seconds from the audio start."""
    end: float
    """End, seconds."""


@dataclass
class Alignment:
    """Phone and word timings of one recording."""

    phonemes: list[Phoneme]
    """Contiguous phones (espeak-ng mnemonics, `_` for silence) covering the aligned frames."""
    words: list[Word]
    """Words and pauses, contiguous."""
    frame_score: float
    """Mean acoustic score per 10 ms frame (higher is a better fit; see `MIN_FRAME_SCORE`)."""
    seconds: float
    """Wall time the two passes took."""
    arpabet: list[str]
    """[P] the decoder's own phone symbol of each entry of `phonemes`."""


def _number_words(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_ONES[n // 100], "hundred"] + (_number_words(n % 100) if n % 100 else [])
    raise ValueError(n)


def normalise_transcript(text: str) -> list[str]:
    """Words a transcript's text stands for, as the dictionary spells them: lower case, punctuation
    dropped, hyphens split, `Mr.` -> `mister`, whole numbers below 1000 spelled out (`10` -> `ten`).

    Raises AlignmentError for a text with no words or a number it cannot spell.
    """
    out: list[str] = []
    for raw in re.sub(r"[-\u2010-\u2015/]", " ", re.sub(r"</?s>", " ", text)).split():
        w = raw.lower().strip(".,;:!?\"()[]{}\u201c\u201d\u2018\u2019")
        w = w.replace("\u2019", "'")
        if not w:
            continue
        if w.isdigit():
            if int(w) >= 1000:
                raise AlignmentError(None, f"transcript {text!r}: cannot spell the number {w}",
                                     "write it out in words")
            out.extend(_number_words(int(w)))
            continue
        out.append(_ABBREV.get(w.rstrip("."), w))
    if not out:
        raise AlignmentError(None, f"transcript {text!r} has no words", "give the recording's words")
    return out


@functools.lru_cache(maxsize=1)
def _decoder():  # type: ignore[no-untyped-def]
    try:
        from pocketsphinx import Decoder
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise AlignmentError(None, "pocketsphinx is not installed", "`pip install pocketsphinx==5.1.1`") from exc
    return Decoder(samprate=SAMPLE_RATE, bestpath=False, loglevel="FATAL", **BEAMS)


def align(audio: np.ndarray, transcript: str, source: str | Path | None = None) -> Alignment:
    """Force-align `transcript` to `audio` ([N] float32 in [-1, 1] at 16 kHz).

    `source` names the recording in errors. Raises AlignmentError when a word is not in the
    dictionary, the audio is shorter than 0.1 s or not finite, no alignment path exists, or the
    fit is poor (mean frame score below `MIN_FRAME_SCORE`).
    """
    x = np.asarray(audio, np.float32)
    if x.ndim != 1 or len(x) < 0.1 * SAMPLE_RATE:
        raise AlignmentError(source, f"audio of {len(x) / SAMPLE_RATE:.3f} s is too short to align (>= 0.1 s)",
                             "check the recording")
    if not np.isfinite(x).all():
        raise AlignmentError(source, "audio holds NaN or Inf samples", "replace the recording")
    try:
        words = normalise_transcript(transcript)
    except AlignmentError as exc:
        raise AlignmentError(source, exc.reason, exc.hint) from None
    d = _decoder()
    missing = [w for w in words if d.lookup_word(w) is None]
    if missing:
        raise AlignmentError(source, f"transcript words not in pocketsphinx's en-us dictionary: {missing}",
                             "correct the transcript (or spell the words the way the CMU dictionary does)")
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    t0 = time.perf_counter()
    try:
        d.set_align_text(" ".join(words))
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        if d.hyp() is None:
            raise AlignmentError(source, f"no alignment path for {' '.join(words)!r}",
                                 "the transcript does not match the audio (or the audio is too short for it)")
        d.set_alignment()
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()
        al = d.get_alignment()
    except RuntimeError as exc:
        raise AlignmentError(source, f"pocketsphinx failed to align {' '.join(words)!r} ({exc})",
                             "the transcript does not match the audio") from exc
    seconds = time.perf_counter() - t0
    phones = [(p.name, int(p.start), int(p.duration), int(p.score)) for p in al.phones()]
    n_frames = max(1, int(d.n_frames()))
    if not phones:
        raise AlignmentError(source, f"no phones aligned for {' '.join(words)!r}", "the transcript does not match")
    score = sum(p[3] for p in phones) / n_frames
    if score < MIN_FRAME_SCORE:
        raise AlignmentError(source, f"the transcript {' '.join(words)!r} fits the audio poorly (mean frame score "
                             f"{score:.1f}, below {MIN_FRAME_SCORE:g}; matching transcripts score about -10 to -16)",
                             "check that the transcript is this recording's")
    ph = [Phoneme(ARPABET_TO_ESPEAK.get(n, "_"), s * FRAME_S, (s + k) * FRAME_S) for n, s, k, _ in phones if k > 0]
    ws = [Word(w.name.split("(")[0], int(w.start) * FRAME_S, (int(w.start) + int(w.duration)) * FRAME_S)
          for w in al.words() if int(w.duration) > 0]
    return Alignment(ph, ws, float(score), seconds, [n for n, _, k, _ in phones if k > 0])
