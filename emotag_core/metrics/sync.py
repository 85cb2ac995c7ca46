"""Lip-sync measures.

`av_offset` is the offline substitute for SyncNet's Sync-C/Sync-E, reported under its own names
(`av_offset_frames`, `av_confidence`): the normalised cross-correlation between the mouth
opening seen in the video (inner-lip gap from the landmark teacher) and the audio's short-time
log energy, over lags of +-`max_offset` frames. The offset is the lag of the peak (positive:
the mouth moves after the sound); the confidence is the peak correlation minus the median over
lags (SyncNet's confidence is built the same way from its embedding distances). It measures
timing and co-variation of opening with loudness, not phoneme-level lip shapes, so it is not
comparable with Sync-C numbers.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def frame_energy(wave: np.ndarray, sample_rate: int, fps: float, n_frames: int | None = None) -> np.ndarray:
    """Log RMS energy of the audio under each video frame. wave: [S] float -> [T]."""
    wave = np.asarray(wave, np.float64).reshape(-1)
    hop = sample_rate / fps
    T = int(np.floor(len(wave) / hop)) if n_frames is None else n_frames
    out = np.full(T, np.log(1e-8))
    for t in range(T):
        seg = wave[int(round(t * hop)):int(round((t + 1) * hop))]
        if len(seg):
            out[t] = np.log(np.sqrt(np.mean(seg * seg)) + 1e-8)
    return out


@dataclass
class AvOffset:
    """Result of `av_offset`."""

    offset_frames: int
    """Lag (frames) of the best correlation; positive = video behind audio."""
    confidence: float
    """Peak correlation minus its median over lags (0 = no sync evidence)."""
    correlation: float
    """Peak normalised correlation in [-1, 1]."""
    lags: np.ndarray
    """[2K+1] lags tried."""
    curve: np.ndarray
    """[2K+1] correlation at each lag."""


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def av_offset(mouth: np.ndarray, energy: np.ndarray, max_offset: int = 15, min_overlap: int = 10) -> AvOffset:
    """Audio-visual offset and confidence from mouth opening [T] and audio energy [T]."""
    mouth, energy = np.asarray(mouth, np.float64), np.asarray(energy, np.float64)
    T = min(len(mouth), len(energy))
    if T < min_overlap + 1:
        raise ValueError(f"need at least {min_overlap + 1} frames of both mouth and audio, got {T}")
    mouth, energy = mouth[:T], energy[:T]
    K = min(max_offset, T - min_overlap)
    lags = np.arange(-K, K + 1)
    curve = np.array([_ncc(mouth[k:], energy[:T - k]) if k >= 0 else _ncc(mouth[:T + k], energy[-k:])
                      for k in lags])
    i = int(np.argmax(curve))
    return AvOffset(int(lags[i]), float(curve[i] - np.median(curve)), float(curve[i]), lags, curve)
