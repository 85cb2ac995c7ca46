import numpy as np
import pytest

from emotag_core.metrics.sync import av_offset, frame_energy


def syllables(T, seed):
    """A speech-like envelope: random syllable bumps of 4-8 frames."""
    rng = np.random.default_rng(seed)
    env = np.zeros(T)
    t = 0
    while t < T:
        n = rng.integers(4, 9)
        env[t:t + n] = np.sin(np.linspace(0, np.pi, n))[: T - t] * rng.uniform(0.5, 1.0)
        t += n + rng.integers(0, 4)
    return env


def test_frame_energy_follows_loudness():
    sr, fps = 16000, 25
    t = np.arange(sr) / sr
    amp = np.where(t < 0.5, 0.01, 0.5)
    e = frame_energy(amp * np.sin(2 * np.pi * 220 * t), sr, fps)
    assert e.shape == (25,)
    assert e[:12].max() < e[13:].min()
    assert e[20] - e[5] == pytest.approx(np.log(50), abs=0.05)


@pytest.mark.parametrize("shift", [0, 3, -2])
def test_offset_recovers_known_shift(shift):
    T = 200
    env = syllables(T + 20, seed=4)
    energy = env[10:10 + T]
    mouth = env[10 - shift:10 - shift + T] + np.random.default_rng(1).normal(0, 0.05, T)
    r = av_offset(mouth, energy)
    assert r.offset_frames == shift
    assert r.confidence > 0.5


def test_unrelated_mouth_has_low_confidence():
    T = 200
    r = av_offset(syllables(T, 1), syllables(T, 2))
    assert r.confidence < 0.3
    with pytest.raises(ValueError, match="at least"):
        av_offset(np.zeros(5), np.zeros(5))
