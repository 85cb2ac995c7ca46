import numpy as np
import pytest

from emotag_core.io.tables import LOWER_AUS, OPENFACE_AUS, UPPER_AUS
from emotag_core.metrics.motion import MOUTH, aue, lmd, mouth_opening


def face(T=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(100, 400, size=(T, 478, 3))


def test_lmd_hand_made_case():
    gt = face()
    pred = gt.copy()
    # frame 0: identical; frame 1: every mouth point moved by (3, 4) -> 5 px;
    # frame 2: only the first 10 mouth points moved by 8 px, the rest exact -> 8 * 10 / 40 = 2 px
    pred[1, list(MOUTH), 0] += 3
    pred[1, list(MOUTH), 1] += 4
    pred[2, list(MOUTH[:10]), 1] += 8
    pred[:, 1, :2] += 50  # a non-mouth point (nose tip) does not count
    pred[:, :, 2] += 100  # depth is ignored
    np.testing.assert_allclose(lmd(pred, gt), [0.0, 5.0, 2.0])
    out = lmd(pred, gt, valid=np.array([True, False, True]))
    assert np.isnan(out[1]) and out[2] == pytest.approx(2.0)
    assert len(set(MOUTH)) == 40


def test_mouth_opening_is_scale_free():
    lm = face(1)
    lm[0, 13, :2] = (250, 300)
    lm[0, 14, :2] = (250, 330)
    lm[0, 234, :2] = (100, 250)
    lm[0, 454, :2] = (400, 250)
    assert mouth_opening(lm)[0] == pytest.approx(0.1)
    assert mouth_opening(lm * 2)[0] == pytest.approx(0.1)


def test_aue_lower_upper_sets():
    names = list(OPENFACE_AUS)
    gt = np.zeros((2, len(names)))
    pred = gt.copy()
    pred[0, names.index("AU26")] = 2.0     # one lower AU off by 2 -> lower mean 2/10
    pred[1, names.index("AU01")] = 3.0     # one upper AU off by 3 -> upper mean 3/6
    pred[1, names.index("AU02")] = 5.0     # AU02 is in neither evaluation set
    out = aue(pred, gt, names)
    np.testing.assert_allclose(out["aue_l"], [2.0 / len(LOWER_AUS), 0.0])
    np.testing.assert_allclose(out["aue_u"], [0.0, 3.0 / len(UPPER_AUS)])
    # with only AU26 and AU01 available, the means are over those
    only = aue(pred, gt, names, available=["AU26", "AU01"])
    np.testing.assert_allclose(only["aue_l"], [2.0, 0.0])
    np.testing.assert_allclose(only["aue_u"], [0.0, 3.0])
    none = aue(pred, gt, names, available=["AU02"])
    assert np.isnan(none["aue_l"]).all() and none["aus_u"] == []


def test_pearson_and_audio_energy(tmp_path):
    import wave

    from emotag_core.metrics.motion import audio_energy, pearson

    x = np.sin(np.linspace(0, 6, 50))
    assert pearson(x, 2 * x + 1) == pytest.approx(1.0)
    assert pearson(x, -x) == pytest.approx(-1.0)
    assert pearson(x, np.ones(50)) is None  # constant: r undefined
    sr = 16000
    sig = np.zeros(sr, np.float32)
    sig[sr // 2:] = 0.5 * np.sin(np.arange(sr // 2) * 0.3)  # silent first half, loud second half
    with wave.open(str(tmp_path / "a.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(sr)
        w.writeframes((sig * 32767).astype(np.int16).tobytes())
    e = audio_energy(str(tmp_path / "a.wav"), np.array([0.1, 0.2, 0.7, 0.9]))
    assert e[:2].max() == pytest.approx(0.0) and e[2:].min() == pytest.approx(1.0, abs=0.05)
