"""SyncNet v2 (Sync-C / Sync-E): the real loader and scoring path on a randomly initialised network
saved in the released checkpoint's key layout, the offset/confidence maths, and bad checkpoints."""
import math

import numpy as np
import pytest
import torch

from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.metrics.syncnet import (SyncNetScorer, SyncNetV2, crop_boxes, embed, face_crops, mfcc,
                                         sync_scores)

# the released checkpoint's layout: which Sequential slots hold weights, and their shapes
RELEASED = {
    "netcnnaud.0.weight": (64, 1, 3, 3), "netcnnaud.4.weight": (192, 64, 3, 3), "netcnnaud.8.weight": (384, 192, 3, 3),
    "netcnnaud.11.weight": (256, 384, 3, 3), "netcnnaud.14.weight": (256, 256, 3, 3),
    "netcnnaud.18.weight": (512, 256, 5, 4), "netcnnaud.19.running_var": (512,),
    "netcnnlip.0.weight": (96, 3, 5, 7, 7), "netcnnlip.4.weight": (256, 96, 1, 5, 5),
    "netcnnlip.8.weight": (256, 256, 1, 3, 3), "netcnnlip.18.weight": (512, 256, 1, 6, 6),
    "netfcaud.0.weight": (512, 512), "netfcaud.1.running_mean": (512,), "netfcaud.3.weight": (1024, 512),
    "netfclip.3.bias": (1024,),
}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A SyncNet v2 with random weights and BatchNorm statistics, saved as a plain state dict."""
    torch.manual_seed(0)
    net = SyncNetV2()
    with torch.no_grad():
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    state = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(state, path)
    return path, state


def test_layout_is_the_released_one(checkpoint):
    _, state = checkpoint
    for key, shape in RELEASED.items():
        assert tuple(state[key].shape) == shape, key
    assert {k.split(".")[0] for k in state} == {"netcnnaud", "netfcaud", "netcnnlip", "netfclip"}
    net = SyncNetV2().eval()
    with torch.no_grad():  # 5 frames of 224 px -> one embedding; 13 MFCC x 20 steps -> one embedding
        assert net.forward_lip(torch.zeros(2, 3, 5, 224, 224)).shape == (2, 1024)
        assert net.forward_aud(torch.zeros(2, 1, 13, 20)).shape == (2, 1024)


def talking_clip(T, seed=0):
    """A drawn 'face' whose mouth bar opens with the loudness of the audio; 16 kHz speech-like noise."""
    rng = np.random.default_rng(seed)
    env = rng.uniform(0, 1, T) ** 2
    wave = (rng.normal(0, 0.3, T * 640) * np.repeat(env, 640)).astype(np.float32)
    frames = np.full((T, 96, 96, 3), 160, np.uint8)
    frames[:, 20:76, 24:72] = (200, 150, 120)  # face
    for t in range(T):
        h = 2 + int(14 * env[t])
        frames[t, 58:58 + h, 38:58] = (60, 10, 20)  # mouth
    lms = np.zeros((T, 478, 3))
    lms[:, :, 0] = np.linspace(24, 71, 478)
    lms[:, :, 1] = np.linspace(20, 75, 478)
    return frames, wave, lms


def test_scorer_runs_the_real_path_on_a_rendered_clip(checkpoint, tmp_path):
    from emotag_core.render.video import Mp4Writer
    from emotag_core.metrics.evaluate import audio_of, read_mp4, syncnet_of

    path, state = checkpoint
    T = 12  # 7 windows: a few seconds of the full-size network at 1 thread
    frames, wave, lms = talking_clip(T)
    mp4 = tmp_path / "clip.mp4"
    with Mp4Writer(mp4, fps=25, size=(96, 96), sample_rate=16000) as w:
        for t in range(T):
            w.write(frames[t], wave[t * 640:(t + 1) * 640])
    got_frames, got_wave = read_mp4(mp4), audio_of(mp4)
    assert len(got_frames) == T and abs(len(got_wave) - len(wave)) < 2048

    scorer = SyncNetScorer(path, max_offset=15, batch_size=8)
    torch.testing.assert_close(scorer.model.netcnnlip[0].weight, state["netcnnlip.0.weight"])  # weights loaded
    torch.testing.assert_close(scorer.model.netfcaud[1].running_var, state["netfcaud.1.running_var"])
    r = syncnet_of(scorer, got_frames, got_wave, lms, np.ones(T, bool))
    n = min(T, len(got_wave) // 640) - 5
    assert r["syncnet_windows"] == n and r["syncnet_crop"] == "face box from landmarks"
    assert math.isfinite(r["sync_c"]) and math.isfinite(r["sync_e"])
    assert r["sync_e"] > 0 and r["sync_c"] >= 0 and abs(r["syncnet_offset_frames"]) <= 15

    # the same numbers from the parts, with window 3 rebuilt by hand (frames 3..7, MFCC steps 12..31)
    boxes = crop_boxes(lms[:T], np.ones(T, bool))
    crops = face_crops(got_frames, boxes)
    cc = mfcc(got_wave)
    assert crops.shape == (T, 3, 224, 224) and crops.dtype == torch.uint8 and cc.shape[0] == 13
    v, a = embed(scorer.model, crops, cc, batch_size=4)
    assert v.shape == a.shape == (n, 1024)
    with torch.no_grad():
        v3 = scorer.model.forward_lip(crops[3:8].permute(1, 0, 2, 3)[None].float())
        a3 = scorer.model.forward_aud(torch.as_tensor(cc[:, 12:32])[None, None])
    torch.testing.assert_close(v[3:4], v3, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(a[3:4], a3, rtol=1e-4, atol=1e-4)
    s = sync_scores(v, a, 15)
    assert s.mean_dist.shape == (31,) and s.sync_e == pytest.approx(r["sync_e"], rel=1e-6)


def brute_force_mean_dist(v, a, K):
    """Mean over video windows i of |v_i - a_(i+k)| for k in -K..K, zeros outside the clip."""
    N = len(v)
    out = []
    for k in range(-K, K + 1):
        ds = [np.linalg.norm(v[i] - (a[i + k] if 0 <= i + k < N else 0) + 1e-6) for i in range(N)]
        out.append(np.mean(ds))
    return np.array(out)


@pytest.mark.parametrize("lag", [0, 4, -3])
def test_offset_and_confidence_on_known_embeddings(lag):
    rng = np.random.default_rng(7)
    N, D, K = 60, 32, 15
    audio = rng.normal(0, 1, (N + 20, D))
    a = audio[10:10 + N]
    v = audio[10 - lag:10 - lag + N] + rng.normal(0, 0.05, (N, D))  # video shows the audio of `lag` frames ago
    r = sync_scores(torch.tensor(v), torch.tensor(a), K)
    assert r.offset_frames == lag  # positive = the video lags the audio
    np.testing.assert_allclose(r.mean_dist, brute_force_mean_dist(v, a, K), rtol=1e-6)
    assert r.sync_e == pytest.approx(r.mean_dist.min()) and r.sync_c == pytest.approx(np.median(r.mean_dist) - r.sync_e)
    assert r.sync_c > 3.0 and r.windows == N
    # no relation between the streams: no confident offset
    u = sync_scores(torch.tensor(rng.normal(0, 1, (N, D))), torch.tensor(a), K)
    assert u.sync_c < 0.3 * r.sync_c


def test_mfcc_frames_and_energy_coefficient():
    rng = np.random.default_rng(0)
    S = 16000 + 123
    wave = rng.normal(0, 0.1, S)
    c = mfcc(wave)
    assert c.shape == (13, 1 + math.ceil((S - 400) / 160))
    # c0 is the log energy of the pre-emphasised, 16-bit-scaled frame's 512-point power spectrum
    x = wave * 32768
    y = np.r_[x[0], x[1:] - 0.97 * x[:-1]]
    f = y[160 * 5:160 * 5 + 400]
    assert c[0, 5] == pytest.approx(np.log((np.abs(np.fft.rfft(f, 512)) ** 2 / 512).sum()), rel=1e-5)
    # louder audio shifts only c0 (log energy) and c1.. by nothing: cepstra of a scaled signal
    c2 = mfcc(wave * 4)
    np.testing.assert_allclose(c2[0] - c[0], np.log(16), atol=1e-4)
    np.testing.assert_allclose(c2[1:], c[1:], atol=1e-3)
    assert (c2[1:] != 0).any() and np.isfinite(c).all()


def test_bad_checkpoints_name_the_file_and_key(checkpoint, tmp_path):
    path, state = checkpoint
    with pytest.raises(WeightsMissingError, match="evaluate.syncnet_weights"):
        SyncNetScorer(tmp_path / "absent.model")
    with pytest.raises(WeightsMissingError, match="evaluate.syncnet_weights"):
        SyncNetScorer(None)
    cut = tmp_path / "cut.model"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    with pytest.raises(InputError, match=r"cut\.model: not a readable torch checkpoint"):
        SyncNetScorer(cut)
    renamed = dict(state)
    renamed["netcnnlip.0.kernel"] = renamed.pop("netcnnlip.0.weight")
    torch.save(renamed, tmp_path / "renamed.model")
    with pytest.raises(InputError, match=r"renamed\.model: SyncNet v2 weights lack `netcnnlip\.0\.weight`"):
        SyncNetScorer(tmp_path / "renamed.model")
    torch.save({"netcnnaud.0.weight": torch.zeros(64, 1, 5, 5)}, tmp_path / "shape.model")
    with pytest.raises(InputError, match=r"shape\.model: `netcnnaud\.0\.weight` has shape \(64, 1, 5, 5\)"):
        SyncNetScorer(tmp_path / "shape.model")
    extra = dict(state)
    extra["netfcaud.4.weight"] = torch.zeros(3)
    torch.save(extra, tmp_path / "extra.model")
    with pytest.raises(InputError, match=r"unexpected key `netfcaud\.4\.weight`"):
        SyncNetScorer(tmp_path / "extra.model")
