import numpy as np
import pytest
from skimage.data import astronaut
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from emotag_core.metrics.image import PSNR_CAP_DB, psnr, ssim


@pytest.fixture(scope="module")
def pair():
    rng = np.random.default_rng(0)
    gt = astronaut()[100:228, 150:278].copy()  # real image, 128x128x3
    noisy = np.clip(gt.astype(int) + rng.normal(0, 12, gt.shape).round().astype(int), 0, 255).astype(np.uint8)
    shifted = np.roll(gt, 3, axis=1)
    return gt, noisy, shifted


def test_psnr_matches_skimage(pair):
    gt, noisy, shifted = pair
    got = psnr(np.stack([noisy, shifted]), np.stack([gt, gt]))
    want = [peak_signal_noise_ratio(gt, noisy, data_range=255), peak_signal_noise_ratio(gt, shifted, data_range=255)]
    np.testing.assert_allclose(got, want, rtol=1e-9)
    assert psnr(gt, gt)[0] == PSNR_CAP_DB


def test_ssim_matches_skimage(pair):
    gt, noisy, shifted = pair
    got = ssim(np.stack([noisy, shifted, gt]), np.stack([gt, gt, gt]))
    want = [structural_similarity(gt, x, data_range=255, channel_axis=-1, gaussian_weights=True,
                                  sigma=1.5, use_sample_covariance=False) for x in (noisy, shifted, gt)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
    assert got[2] == pytest.approx(1.0)
    assert got[0] < 0.9  # noise of sigma 12 visibly lowers structure


def test_shape_mismatch_is_an_error(pair):
    gt, _, _ = pair
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(gt, gt[:64])


def test_masked_psnr_and_ssim_score_only_the_mask() -> None:
    from emotag_core.metrics.image import psnr, ssim

    rng = np.random.default_rng(0)
    gt = rng.integers(0, 255, (2, 48, 48, 3), dtype=np.uint8)
    pred = gt.copy()
    pred[:, :, :20] = 0                                   # wrong on the left, exact on the right
    right = np.zeros((2, 48, 48), bool)
    right[:, :, 28:] = True
    assert (psnr(pred, gt, mask=right) == 100.0).all() and (psnr(pred, gt) < 20).all()
    assert np.allclose(ssim(pred, gt, mask=right), 1.0) and (ssim(pred, gt, mask=~right) < 0.5).all()
    mse = ((pred[:, :, :20].astype(float) - gt[:, :, :20]) ** 2).mean((1, 2, 3))
    left = np.zeros_like(right)
    left[:, :, :20] = True
    assert np.allclose(psnr(pred, gt, mask=left), 10 * np.log10(255 ** 2 / mse))
    with pytest.raises(ValueError, match="mask"):
        psnr(pred, gt, mask=right[:, :10])
    empty = np.zeros_like(right)
    empty[1] = right[1]                                   # frame 0 has no mask pixel: NaN, frame 1 scores
    assert np.isnan(psnr(pred, gt, mask=empty)[0]) and psnr(pred, gt, mask=empty)[1] == 100.0
    assert np.isnan(ssim(pred, gt, mask=empty)[0])
    from emotag_core.metrics.image import ssim_and_masked

    whole, head = ssim_and_masked(pred, gt, right)
    assert np.allclose(whole, ssim(pred, gt)) and np.allclose(head, ssim(pred, gt, mask=right))
