"""Generated clips: probe as 25 fps with matching audio, truth aligned to frames, deterministic."""
from __future__ import annotations

import json

import numpy as np
import pytest

from emotag_core.synth.generator import EMOTION_LABELS


def _decode(path):
    import av

    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        fps = float(vs.average_rate)
        codec = vs.codec_context.name
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        acodec, sr = a.codec_context.name, a.rate
        samples = sum(f.samples for f in c.decode(audio=0))
    return fps, codec, np.stack(frames), acodec, sr, samples


def test_video_probes_as_25fps_h264_with_matching_aac_audio(small_identity):
    cfg, out, _ = small_identity
    video = out / "clip000.mp4"
    fps, codec, frames, acodec, sr, samples = _decode(video)
    n = int(round(cfg.seconds * cfg.fps))
    assert fps == pytest.approx(25.0) and codec == "h264" and acodec == "aac"
    assert frames.shape == (n, cfg.size, cfg.size, 3)
    assert abs(samples / sr - n / fps) < 0.1                 # AAC priming/padding only
    # not a blank video: the face (textured) differs from the background and moves over time
    assert frames.std() > 10 and np.abs(np.diff(frames.astype(float), axis=0)).mean() > 0.05
    # only the video is a candidate for ingest; truth sits in a subfolder and a JSON sidecar
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["clip000.mp4", "identity.json"]


def test_truth_is_aligned_to_frames_and_consistent(small_identity, standin_head):
    import torch

    cfg, out, _ = small_identity
    tr = np.load(out / "truth" / "clip000.npz")
    side = json.loads((out / "truth" / "clip000.json").read_text())
    n = int(round(cfg.seconds * cfg.fps))
    for key in ("frame", "t", "expr", "jaw", "rot", "trans", "au", "emotion", "intensity", "phoneme",
                "viseme", "landmarks2d", "emotion_strength"):
        assert len(tr[key]) == n, key
    assert np.allclose(tr["t"], np.arange(n) / 25.0)
    assert tr["expr"].shape[1] == standin_head.n_expr and tr["shape"].shape == (standin_head.n_shape,)
    assert tr["K"].shape == (3, 3) and tr["K"][0, 0] > 0
    # labels: DeepFace order; neutral frames carry intensity 0, others 1-3
    assert tuple(tr["emotion_labels"]) == EMOTION_LABELS
    neutral = tr["emotion"] == EMOTION_LABELS.index("neutral")
    assert (tr["intensity"][neutral] == 0).all() and set(tr["intensity"][~neutral]) <= {1, 2, 3}
    labs = {s["emotion"] for s in side["segments"]}
    assert {EMOTION_LABELS[i] for i in set(tr["emotion"].tolist())} <= labs
    # re-rendering the truth params reproduces the stored 2-D landmarks (truth = what was drawn)
    T = n
    with torch.no_grad():
        v = standin_head(torch.as_tensor(tr["shape"])[None].expand(T, -1), torch.as_tensor(tr["expr"]),
                         torch.as_tensor(tr["jaw"]), torch.as_tensor(tr["rot"]), torch.as_tensor(tr["trans"]))
        lm = standin_head.project(standin_head.landmarks(v), torch.as_tensor(tr["K"])[None].expand(T, -1, -1))
    assert np.allclose(lm.numpy(), tr["landmarks2d"], atol=1e-3)
    assert (tr["landmarks2d"][..., :2] > 0).all() and (tr["landmarks2d"] < cfg.size).all()
    # the mouth follows the phonemes: jaw is open on vowels and near-closed in pauses
    vis = tr["viseme"]
    open_ = tr["jaw"][np.isin(vis, ["open_vowel", "mid_vowel"]), 0]
    closed = tr["jaw"][vis == "pause", 0]
    assert open_.size and closed.size and open_.mean() > 2 * closed.mean()
    # phoneme timeline lies inside the clip, ordered
    assert (np.diff(tr["ph_start"]) >= 0).all() and tr["ph_end"].max() <= cfg.seconds + 1e-6


def test_same_seed_same_output_other_seed_differs(small_identity, standin_head, tmp_path):
    cfg, a, b = small_identity
    ta, tb = np.load(a / "truth" / "clip000.npz"), np.load(b / "truth" / "clip000.npz")
    for k in ta.files:
        assert np.array_equal(ta[k], tb[k]), k
    assert (a / "clip000.mp4").read_bytes() == (b / "clip000.mp4").read_bytes()
    from dataclasses import replace

    from emotag_core.synth.generator import animate, plan_script, sample_identity

    other = replace(cfg, seed=cfg.seed + 1)
    ident = sample_identity(standin_head, other)
    assert not np.allclose(ident.shape, ta["shape"]) and not np.allclose(ident.K, ta["K"])
    truth = animate(standin_head, ident, plan_script(other, 0), other, 0)
    assert not np.allclose(truth.rot, ta["rot"])


def test_identity_options_override_synth_and_typos_fail():
    from emotag_core.config import SynthConfig
    from emotag_core.errors import ConfigError
    from emotag_core.synth.identity import identity_config

    cfg = identity_config(SynthConfig(seconds=8.0), {"seed": 3, "voices": ["de"]}, "synth_x")
    assert cfg.seed == 3 and cfg.voices == ["de"] and cfg.seconds == 8.0
    with pytest.raises(ConfigError, match="synthetic.synth_x"):
        identity_config(SynthConfig(), {"sed": 3}, "synth_x")


def test_shape_asym_scales_only_the_antisymmetric_shape_components():
    import torch
    from scipy.spatial import cKDTree

    from emotag_core.config import FlameConfig, SynthConfig
    from emotag_core.flame import load_head_model
    from emotag_core.synth.generator import sample_identity, shape_parity

    head = load_head_model(FlameConfig())
    parity = shape_parity(head)
    assert set(parity.tolist()) == {1, -1}
    base = SynthConfig(seed=5, size=128)
    full = sample_identity(head, base).shape
    sym_only = sample_identity(head, SynthConfig(seed=5, size=128, shape_asym=0.0)).shape
    np.testing.assert_array_equal(sym_only[parity > 0], full[parity > 0])   # the same draws
    assert not sym_only[parity < 0].any() and full[parity < 0].any()

    def asymmetry(shape: np.ndarray) -> float:  # mean distance of the neutral mesh to its own mirror image
        z = lambda n: torch.zeros(1, n)  # noqa: E731
        v = head(torch.as_tensor(shape)[None], z(head.n_expr), z(3), z(3), z(3))[0].numpy()
        return float(cKDTree(v).query(v * np.array([-1.0, 1.0, 1.0]))[0].mean())

    assert asymmetry(sym_only) < 0.2 * asymmetry(full)
