"""Texture calibration: the photo's features land on the mesh's landmark vertices (issue 4)."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def open_head():
    import torch

    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    torch.set_num_threads(1)
    return load_head_model(FlameConfig(), "cpu")


def test_local_jacobians_recover_an_affine_map():
    from emotag_core.synth.texture import local_jacobians

    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (60, 2))
    M = np.array([[1.3, 0.2], [-0.4, 0.7]])
    J = local_jacobians(src, src @ M.T + [3.0, -5.0])
    assert np.allclose(J, M, atol=1e-9)
    # a piecewise-linear map (identity left of x = 50, x stretched 2x right of it): each point gets its side's
    src = rng.uniform(0, 100, (300, 2))
    dst = src.copy()
    dst[:, 0] = np.where(src[:, 0] < 50, src[:, 0], 50 + 2 * (src[:, 0] - 50))
    J = local_jacobians(src, dst)
    inner = (src[:, 1] > 10) & (src[:, 1] < 90)               # hull slivers may straddle the fold
    left, right = inner & (src[:, 0] < 30), inner & (src[:, 0] > 70)
    assert np.allclose(J[left], np.eye(2), atol=1e-6)
    assert np.allclose(J[right], np.diag([2.0, 1.0]), atol=1e-6)


def test_calibration_brings_detected_landmarks_to_the_mesh(open_head):
    from emotag_core.synth import generator as gen
    from emotag_core.synth.texture import detect_landmarks, load_image, photo_landmarks

    ref = "skimage:astronaut"
    photo, plm = load_image(ref), photo_landmarks(ref)
    log: list[float] = []
    cal = gen.calibrate_landmarks(open_head, photo, plm, 2, 256, 128, log)
    assert len(log) == 3 and log[0] > 0
    assert cal.shape == plm.shape and not np.allclose(cal, plm)

    def offset(p: np.ndarray) -> float:
        frame, true = gen.render_frontal(open_head, photo, p, 256, 128)
        assert frame.shape == (256, 256, 3)
        return float(np.linalg.norm(detect_landmarks(frame)[:468] - true[:468], axis=1).mean())

    before, after = offset(plm), offset(cal)
    assert after < 0.85 * before, (before, after, log)


def test_calibrated_landmarks_are_cached_and_switchable(open_head, tmp_path, monkeypatch):
    from emotag_core.config import SynthConfig
    from emotag_core.synth import generator as gen
    from emotag_core.synth.texture import photo_landmarks

    monkeypatch.setenv("EMOTAG_SYNTH_CACHE", str(tmp_path))
    ref = "skimage:astronaut"
    off = gen.calibrated_photo_landmarks(open_head, ref, SynthConfig(texture_calib_iters=0))
    assert np.array_equal(off, photo_landmarks(ref)) and not list(tmp_path.iterdir())
    cfg = SynthConfig(texture_calib_iters=1, texture_calib_size=192, texture_size=128)
    first = gen.calibrated_photo_landmarks(open_head, ref, cfg)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1 and np.array_equal(np.load(files[0]), first)
    np.save(files[0], first + 1.0)                            # the second call reads the file, not the detector
    assert np.array_equal(gen.calibrated_photo_landmarks(open_head, ref, cfg), first + 1.0)
    other = gen.calibrated_photo_landmarks(open_head, ref, SynthConfig(texture_calib_iters=2,
                                                                        texture_calib_size=192, texture_size=128))
    assert len(list(tmp_path.glob("*.npy"))) == 2 and other.shape == first.shape
