"""Speaker-robustness of GRMN's audio input: per-clip feature normalisation (CMVN) and training-time
augmentation of log-mel features. Neither is in the paper; both are off unless params turn them on.

- Per-clip CMVN (`pretrain.clip_norm`): every audio feature channel is standardised with the mean
  and std of the clip it comes from (offline: over the whole clip, or the part a time-limited
  loader may see; streaming: `RunningCMVN`, over the features that have arrived so far).
- Augmentation (`pretrain.aug_*`, pretraining batches only): a random per-channel gain (an offset in
  the log domain), a random shift of a few mel bands (a cheap vocal-tract-length perturbation) and
  SpecAugment-style time / frequency masks (masked values set to 0, the mean of standardised features).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotag_core.errors import ConfigError
from emotag_core.train.audio_stats import MIN_STD  # a channel that never varies is divided by this, not by ~0


def clip_cmvn_stats(x: np.ndarray, min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of one clip's features x [N, D] -> ([D], [D]); std floored at `min_std`."""
    x = np.asarray(x, np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"clip_cmvn_stats: features must be [N>0, D], got {list(x.shape)}")
    return x.mean(0), np.maximum(x.std(0), min_std)


class RunningCMVN:
    """Streaming per-clip CMVN: mean/std over every feature row pushed so far (Welford, float64).

    A live driver cannot see the whole clip, so frame t is normalised with the statistics of the
    rows that have arrived when it is rendered (t plus the window's look-ahead); early frames use
    few rows and therefore differ from the offline (whole-clip) normalisation.
    """

    def __init__(self, dim: int, min_std: float = MIN_STD) -> None:
        self.n = 0
        self.mean = np.zeros(dim)
        self.m2 = np.zeros(dim)
        self.min_std = min_std

    def push(self, rows: np.ndarray) -> None:
        """Add feature rows [N, D] (or one row [D])."""
        for r in np.atleast_2d(np.asarray(rows, np.float64)):
            self.n += 1
            d = r - self.mean
            self.mean += d / self.n
            self.m2 += d * (r - self.mean)

    @property
    def std(self) -> np.ndarray:  # [D]
        var = self.m2 / self.n if self.n else np.ones_like(self.m2)
        return np.maximum(np.sqrt(var), self.min_std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Standardise x [..., D] with the statistics so far (float32)."""
        if self.n == 0:
            raise ValueError("RunningCMVN: no feature row pushed yet")
        return ((np.asarray(x, np.float64) - self.mean) / self.std).astype(np.float32)


@dataclass
class AudioAugment:
    """Training-time augmentation of a batch of audio windows (one draw per window)."""

    gain_std: float = 0.0
    """Std of a per-channel offset added to every frame of a window (feature units; with `clip_norm`
    the features have unit std, so 0.2 = a fifth of a channel's spread). 0 = off."""
    shift_bins: int = 0
    """Shift the mel axis by a uniform integer in [-shift_bins, shift_bins] (edge bands repeated). 0 = off."""
    n_bands: int = 80
    """Mel bands per stacked hop (features are `stack` hops x `n_bands`, hop-major: the logmel backend)."""
    freq_masks: int = 0
    """Frequency masks per window: a band of up to `freq_mask_width` mel bands set to 0 in every hop."""
    freq_mask_width: int = 8
    """Largest frequency-mask width (mel bands)."""
    time_masks: int = 0
    """Time masks per window: up to `time_mask_width` consecutive frames set to 0 (never the centre frame)."""
    time_mask_width: int = 2
    """Largest time-mask width (frames)."""

    def __post_init__(self) -> None:
        if self.gain_std < 0 or self.shift_bins < 0 or self.freq_masks < 0 or self.time_masks < 0:
            raise ConfigError("audio augmentation: gain_std, shift_bins, freq_masks, time_masks must be >= 0")
        if self.n_bands <= 0 or self.freq_mask_width <= 0 or self.time_mask_width <= 0:
            raise ConfigError("audio augmentation: n_bands and mask widths must be positive")

    @property
    def active(self) -> bool:
        return bool(self.gain_std > 0 or self.shift_bins > 0 or self.freq_masks > 0 or self.time_masks > 0)

    def __call__(self, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """audio [B, W, D] -> augmented copy [B, W, D] (float32); all draws come from `rng`."""
        x = np.array(audio, dtype=np.float32)
        b, w, d = x.shape
        if d % self.n_bands:
            raise ConfigError(f"audio augmentation: feature width {d} is not a multiple of n_bands={self.n_bands} "
                              "(set pretrain.aug_mel_bands to the backend's mel bands, or turn shift/masks off)")
        m = self.n_bands
        x = x.reshape(b, w, d // m, m)  # [B, W, stack, mel]
        if self.gain_std > 0:
            x += rng.normal(0.0, self.gain_std, size=(b, 1, 1, m)).astype(np.float32)
        if self.shift_bins > 0:
            k = rng.integers(-self.shift_bins, self.shift_bins + 1, size=b)
            for i in range(b):
                src = np.clip(np.arange(m) - k[i], 0, m - 1)  # out[j] = in[j - k]: content moves up by k bands
                x[i] = x[i][..., src]
        for _ in range(self.freq_masks):
            width = rng.integers(1, self.freq_mask_width + 1, size=b)
            start = rng.integers(0, m, size=b)
            for i in range(b):
                x[i, :, :, start[i]:start[i] + width[i]] = 0.0
        c = w // 2  # GRMN's centre frame stays visible
        for _ in range(self.time_masks):
            width = rng.integers(1, self.time_mask_width + 1, size=b)
            start = rng.integers(0, w, size=b)
            for i in range(b):
                lo, hi = start[i], min(w, start[i] + width[i])
                if lo <= c < hi:
                    continue
                x[i, lo:hi] = 0.0
        return x.reshape(b, w, d)
