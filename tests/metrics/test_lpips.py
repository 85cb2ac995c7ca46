"""LPIPS through the lpips package's code path, with a small AlexNet trunk in torchvision's format."""
import os

import numpy as np
import pytest
import torch
from skimage.data import astronaut

from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.metrics.lpips_metric import Lpips

ALEX = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}


@pytest.fixture(scope="module")
def trunk_file(tmp_path_factory):
    g = torch.Generator().manual_seed(0)
    state = {}
    for i, (o, c, k) in ALEX.items():
        state[f"features.{i}.weight"] = torch.randn(o, c, k, k, generator=g) * (2.0 / (c * k * k)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(o, generator=g) * 0.01
    state["classifier.1.weight"] = torch.zeros(4, 9216)  # the real file has a classifier; it is ignored
    p = tmp_path_factory.mktemp("w") / "alexnet-tiny.pth"
    torch.save(state, p)
    return p, state


def reference_lpips(state, a, b):
    """LPIPS v0.1 written out independently: scale, AlexNet relu1-5, unit-normalise, weighted sq. diff."""
    import lpips

    heads = torch.load(os.path.join(os.path.dirname(lpips.__file__), "weights/v0.1/alex.pth"), map_location="cpu")
    shift = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
    scale = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)
    F = torch.nn.functional

    def feats(x):
        x = (x - shift) / scale
        out = []
        x = F.relu(F.conv2d(x, state["features.0.weight"], state["features.0.bias"], stride=4, padding=2)); out.append(x)
        x = F.max_pool2d(x, 3, 2)
        x = F.relu(F.conv2d(x, state["features.3.weight"], state["features.3.bias"], padding=2)); out.append(x)
        x = F.max_pool2d(x, 3, 2)
        x = F.relu(F.conv2d(x, state["features.6.weight"], state["features.6.bias"], padding=1)); out.append(x)
        x = F.relu(F.conv2d(x, state["features.8.weight"], state["features.8.bias"], padding=1)); out.append(x)
        x = F.relu(F.conv2d(x, state["features.10.weight"], state["features.10.bias"], padding=1)); out.append(x)
        return out

    total = 0
    for k, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        fa = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        fb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        w = heads[f"lin{k}.model.1.weight"]
        total = total + F.conv2d((fa - fb) ** 2, w).mean(dim=(2, 3))
    return total.flatten()


def test_lpips_matches_independent_formula(trunk_file):
    path, state = trunk_file
    gt = astronaut()[60:156, 140:236]
    rng = np.random.default_rng(1)
    noisy = np.clip(gt + rng.normal(0, 25, gt.shape), 0, 255).astype(np.uint8)
    pred, ref = np.stack([noisy, gt]), np.stack([gt, gt])
    got = Lpips(path)(pred, ref)
    x = torch.from_numpy(pred).permute(0, 3, 1, 2).float() / 127.5 - 1
    y = torch.from_numpy(ref).permute(0, 3, 1, 2).float() / 127.5 - 1
    want = reference_lpips(state, x, y).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7)
    assert got[1] == pytest.approx(0.0, abs=1e-7) and got[0] > 1e-3


def test_missing_and_wrong_weights(tmp_path, trunk_file):
    with pytest.raises(WeightsMissingError, match="evaluate.lpips_weights"):
        Lpips(tmp_path / "nope.pth")
    _, state = trunk_file
    bad = dict(state)
    bad["features.3.weight"] = torch.zeros(10, 64, 5, 5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(InputError, match=r"features\.3\.weight"):
        Lpips(tmp_path / "bad.pth")
