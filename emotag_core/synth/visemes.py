"""Phonemes to mouth motion: a viseme table (jaw opening and lip shape) with coarticulation.

Each espeak-ng phoneme mnemonic falls in a viseme class; each class has a target jaw opening
(radians) and lip-shape weights (spread, round, press, lip-bite). Targets are blended over time
with dominance functions (Cohen & Massaro 1993): every phoneme pulls the mouth towards its
target with a weight that peaks at the phoneme's centre and decays exponentially away from it,
so neighbouring phonemes shape each other (coarticulation). Lip closures (p, b, m) dominate
strongly, so bilabials still close the lips between open vowels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotag_core.synth.speech import PAUSE_SYMBOLS, Phoneme

LIP_CHANNELS = ("spread", "round", "press", "bite")


@dataclass(frozen=True)
class Viseme:
    """Mouth target of a viseme class."""

    jaw: float
    """Jaw opening, radians (axis-angle about the model's x axis)."""
    lips: tuple[float, float, float, float]
    """Lip-shape weights in `LIP_CHANNELS` order, each in [0, 1]."""
    dominance: float
    """How strongly this class resists its neighbours (coarticulation weight)."""


VISEMES: dict[str, Viseme] = {
    "pause": Viseme(0.0, (0.0, 0.0, 0.0, 0.0), 0.6),
    "bilabial": Viseme(0.0, (0.0, 0.0, 1.0, 0.0), 4.0),         # p b m
    "labiodental": Viseme(0.035, (0.0, 0.0, 0.0, 1.0), 2.5),    # f v
    "dental": Viseme(0.07, (0.3, 0.0, 0.0, 0.0), 1.2),          # T D
    "alveolar": Viseme(0.06, (0.2, 0.0, 0.0, 0.0), 0.9),        # t d n l s z r
    "postalveolar": Viseme(0.07, (0.0, 0.6, 0.0, 0.0), 1.5),    # S Z tS dZ
    "velar": Viseme(0.09, (0.0, 0.0, 0.0, 0.0), 0.7),           # k g N x h
    "rounded_consonant": Viseme(0.04, (0.0, 1.0, 0.0, 0.0), 2.0),  # w
    "open_vowel": Viseme(0.26, (0.2, 0.0, 0.0, 0.0), 1.0),      # a A aI aU
    "mid_vowel": Viseme(0.17, (0.3, 0.0, 0.0, 0.0), 1.0),       # E 3 V @ e
    "close_vowel": Viseme(0.07, (0.9, 0.0, 0.0, 0.0), 1.0),     # i I
    "round_vowel": Viseme(0.13, (0.0, 0.9, 0.0, 0.0), 1.2),     # u U o O y 2 9
}

_CLASS_OF_CONSONANT = {
    "p": "bilabial", "b": "bilabial", "m": "bilabial",
    "f": "labiodental", "v": "labiodental", "pf": "labiodental",
    "T": "dental", "D": "dental",
    "t": "alveolar", "d": "alveolar", "n": "alveolar", "l": "alveolar", "s": "alveolar", "z": "alveolar",
    "r": "alveolar", "R": "alveolar", "ts": "alveolar", "j": "alveolar", "L": "alveolar", "n^": "alveolar",
    "S": "postalveolar", "Z": "postalveolar", "tS": "postalveolar", "dZ": "postalveolar",
    "k": "velar", "g": "velar", "N": "velar", "x": "velar", "h": "velar", "C": "velar", "Q": "velar",
    "w": "rounded_consonant", "W": "rounded_consonant",
}


def viseme_class(symbol: str) -> str:
    """The viseme class of an espeak-ng phoneme mnemonic (e.g. `m` -> bilabial, `aI` -> open_vowel)."""
    s = symbol.strip().strip("'\",%=")
    if not s or s in PAUSE_SYMBOLS or s.startswith("_"):
        return "pause"
    for key in (s, s[:2], s.rstrip(":;#~-")):
        if key in _CLASS_OF_CONSONANT:
            return _CLASS_OF_CONSONANT[key]
    head = s[0]
    if head in _CLASS_OF_CONSONANT and len(s) > 1 and s[1] in ":;":
        return _CLASS_OF_CONSONANT[head]
    if head in "aA&":
        return "open_vowel"
    if head in "uUoOyY029w":
        return "round_vowel"
    if head in "iIj":
        return "close_vowel"
    if head in "eE3V@":
        return "mid_vowel"
    if head in _CLASS_OF_CONSONANT:
        return _CLASS_OF_CONSONANT[head]
    return "alveolar"  # unknown consonant-like symbol: a small neutral opening


@dataclass
class MouthTrack:
    """Per-frame mouth motion from a phoneme timeline."""

    jaw: np.ndarray
    """[T] jaw opening, radians."""
    lips: np.ndarray
    """[T, 4] lip-shape weights (`LIP_CHANNELS`)."""
    phoneme: list[str]
    """[T] phoneme sounding at each frame centre (`_` when silent)."""
    viseme: list[str]
    """[T] viseme class of that phoneme."""


def mouth_track(phonemes: list[Phoneme], n_frames: int, fps: float, amplitude: np.ndarray | float = 1.0,
                rate: float = 25.0, sharpness: float = 1.0) -> MouthTrack:
    """Blend viseme targets over frames with dominance functions (coarticulation).

    `phonemes` are on the clip's time axis (seconds). `amplitude` ([T] or scalar) scales the
    jaw opening and lip shapes (emotion intensity). `rate` (1/s) is how fast a phoneme's
    dominance decays away from its span; larger means less coarticulation.
    """
    t = (np.arange(n_frames) + 0.5) / fps                      # frame centres, [T]
    targets_jaw = [VISEMES["pause"].jaw]
    targets_lips = [VISEMES["pause"].lips]
    dom = [np.full(n_frames, 1e-3)]                            # a faint rest pose everywhere
    labels_p = np.array(["_"] * n_frames, dtype=object)
    labels_v = np.array(["pause"] * n_frames, dtype=object)
    for ph in phonemes:
        cls = viseme_class(ph.symbol)
        v = VISEMES[cls]
        centre = 0.5 * (ph.start + ph.end)
        half = 0.5 * (ph.end - ph.start)
        dist = np.maximum(np.abs(t - centre) - half, 0.0)     # 0 inside the phoneme's span
        d = v.dominance * np.exp(-rate * sharpness * dist)
        targets_jaw.append(v.jaw)
        targets_lips.append(v.lips)
        dom.append(d)
        inside = (t >= ph.start) & (t < ph.end)
        labels_p[inside] = ph.symbol
        labels_v[inside] = cls
    D = np.stack(dom, 1)                                       # [T, P]
    W = D / D.sum(1, keepdims=True)
    jaw = W @ np.asarray(targets_jaw)                          # [T]
    lips = W @ np.asarray(targets_lips, dtype=np.float64)      # [T, 4]
    amp = np.broadcast_to(np.asarray(amplitude, dtype=np.float64), (n_frames,))
    return MouthTrack((jaw * amp).astype(np.float32), np.clip(lips * amp[:, None], 0, 1).astype(np.float32),
                      list(labels_p), list(labels_v))
