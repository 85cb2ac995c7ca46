"""`render.audio.WhisperStream`: Whisper features read incrementally with a bounded lookahead (issue 19 item 2).

Mechanics (exactness, the lookahead bound, window cross-fades, the render loop's trace) run on a small
random-weight port; the tolerance against the offline features and the chunk seams on the packaged
CTranslate2 model and real speech (skipped with the reason when the assets are absent).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotag_core.errors import ConfigError, InputError
from emotag_core.render.audio import FeatureStream, StreamOptions, WhisperStream, feature_stream
from emotag_core.teachers import whisper as W
from emotag_core.teachers.whisper_toy import write_random_encoder

FPS, N = 25.0, 640          # samples per video frame at 16 kHz


def speech_like(T: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0, 1, T) ** 2, N)
    return (rng.normal(0, 0.2, T * N) * env).astype(np.float32)


@pytest.fixture(scope="module")
def toy_weights(tmp_path_factory) -> Path:
    return write_random_encoder(tmp_path_factory.mktemp("whisper") / "toy.safetensors", d_model=32, layers=1, heads=2,
                                positions=250)     # 5 s: padding to it is cheap


def toy(weights: Path, window: float = 4.0, overlap: float = 1.0) -> W.WhisperFeatures:
    return W.WhisperFeatures(weights=weights, engine="torch", window_seconds=window, overlap_seconds=overlap)


def run(stream: WhisperStream, x: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """Feed x frame by frame -> (features [T, D], the number of frames pushed when each frame came out)."""
    outs, when = [], []
    for i in range(len(x) // N):
        f = stream.push(x[i * N: (i + 1) * N])
        outs.append(f)
        when += [i + 1] * len(f)
    f = stream.finish()
    return np.concatenate(outs + [f]), when + [len(x) // N] * len(f)


def test_with_the_whole_clip_ahead_it_is_the_offline_path(toy_weights):
    """Lookahead past the clip's end: one encode at the end = WhisperFeatures.features (log-mel, reflection,
    clamp, padding, pooling all the same). Hard windows (no overlap) on a whole number of windows."""
    be = toy(toy_weights, window=4.0, overlap=0.0)
    x = speech_like(300, 1)                                   # 12 s = three 4 s windows
    ref = be.features(x, 300, FPS)
    f, _ = run(WhisperStream(be, FPS, lookahead_s=20.0, left_context_s=30.0, chunk_s=0.2), x)
    assert f.shape == ref.shape
    assert np.abs(f - ref).max() < 1e-4 * np.abs(ref).max()


@pytest.mark.parametrize("lookahead,chunk", [(0.5, 0.2), (0.2, 0.2), (0.12, 0.04)])
def test_lookahead_is_bounded(toy_weights, lookahead, chunk):
    """Frame t's features come out before audio beyond t + lookahead (after the frame's end) is pushed,
    and each frame once, in order."""
    be = toy(toy_weights)
    T = 90
    s = WhisperStream(be, FPS, lookahead_s=lookahead, left_context_s=2.0, chunk_s=chunk)
    f, when = run(s, speech_like(T, 2))
    L = int(np.floor(lookahead * FPS + 1e-6))
    assert f.shape == (T, 32) and np.isfinite(f).all()
    assert s.lookahead_frames == L
    for t in range(T - L - 1):                                 # frames whose bound lies inside the clip
        assert when[t] <= t + 1 + L, f"frame {t} out after {when[t]} frames pushed (bound {t + 1 + L})"
    # and not earlier than the chunk allows: every frame had at least lookahead - chunk + 1 frames after it
    C = int(round(chunk * FPS))
    assert all(when[t] >= min(T, t + 1 + L - C + 1) for t in range(T))


def test_no_seams_at_window_cross_fades(toy_weights):
    """Across the grid's 1 s overlaps (4 s windows) the frame-to-frame step is no larger than elsewhere,
    while a hard switch between the two windows at the overlap's centre jumps."""
    be = toy(toy_weights)
    x = speech_like(400, 3)                                    # 16 s: overlaps at 3-4, 6-7, 9-10, 12-13 s
    f, _ = run(WhisperStream(be, FPS, lookahead_s=0.5, left_context_s=2.0, chunk_s=0.2), x)
    step = np.linalg.norm(np.diff(f, axis=0), axis=1)          # [399]
    fade = np.zeros(399, bool)
    for k in range(1, 5):
        fade[75 * k: 75 * k + 25] = True                       # frames of overlap k (state 150 k .. 150 k + 50)
    assert step[fade].max() <= 1.05 * step[~fade].max()
    assert step[fade].mean() <= 1.2 * step[~fade].mean()


def test_render_loop_uses_the_whisper_stream_and_reports_its_latency(toy_weights):
    from emotag_core.render.driver import animate_stream

    from .fakes import cues, tiny_animator

    be = toy(toy_weights)
    assert isinstance(feature_stream(be, FPS, 4, 8), WhisperStream)
    assert isinstance(feature_stream(W, FPS, 4, 8), FeatureStream)   # anything not named whisper: the generic one
    x = speech_like(60, 4)
    opts = StreamOptions(lookahead_s=0.4, left_context_s=2.0, chunk_s=0.12)
    frames = {}
    tr = animate_stream(tiny_animator(audio_dim=32), [x[i: i + N] for i in range(0, len(x), N)], be, cues(8),
                        lambda t, img, s: frames.__setitem__(t, img), batch_size=1, stream_options=opts)
    assert tr.n_frames == 60 and sorted(frames) == list(range(60))
    assert tr.lookahead_s == pytest.approx((10 + 16 // 2 - 1) / FPS)          # features 10 frames + GRMN 7
    assert len(tr.feature_s) == 60 and max(tr.feature_s) > 0
    assert all(lat >= ft for lat, ft in zip(tr.latency_s, tr.feature_s))   # a frame's latency includes its encode
    summary = tr.summary()
    for k in ("latency_p50_s", "latency_p95_s", "feature_p95_s", "first_frame_from_audio_s", "lookahead_s"):
        assert summary[k] is not None, k


def test_stream_identity_writes_the_per_frame_latency(toy_weights, tmp_path, monkeypatch):
    """`emotag render ID AUDIO --stream`'s library call: the mp4, and `<out>.stream.json` with each frame's
    latency and feature time beside the summary."""
    import json

    from emotag_core.render import jobs

    from .fakes import cues, tiny_animator

    monkeypatch.setattr(jobs, "cue_track", lambda *a: cues(8))
    x = speech_like(40, 5)
    out = tmp_path / "live.mp4"
    summary = jobs.stream_identity(jobs.TargetFiles("anna", tmp_path), tiny_animator(audio_dim=32), toy(toy_weights),
                                   "c0", "hold", [x[i: i + N] for i in range(0, len(x), N)], FPS, out=out,
                                   realtime=False, options=StreamOptions(lookahead_s=0.2, chunk_s=0.08))
    rec = json.loads((tmp_path / "live.mp4.stream.json").read_text())
    assert out.is_file() and summary["frames"] == 40 and summary["lookahead_s"] == pytest.approx(12 / FPS)
    assert len(rec["latency_s"]) == len(rec["feature_s"]) == 40 and rec["latency_p95_s"] == summary["latency_p95_s"]


def test_bad_stream_options(toy_weights):
    be = toy(toy_weights)
    with pytest.raises(ConfigError, match="stream_chunk_s"):
        WhisperStream(be, FPS, lookahead_s=0.2, chunk_s=0.4)
    with pytest.raises(ConfigError, match="stream_lookahead_s"):
        WhisperStream(be, FPS, lookahead_s=0.01)


# ---------------------------------------------------------------------------------------------
# the packaged model on real speech


def librivox(seconds: float) -> np.ndarray:
    from emotag_core.assets import asset_home
    from emotag_core.teachers.audio import read_audio

    files = sorted((asset_home() / "speech" / "pocketsphinx").glob("sense_and_sensibility_*.wav"))
    if not files:
        pytest.skip("the packaged LibriVox speech is absent: run `emotag fetch-assets`")
    x = np.concatenate([read_audio(p) for p in files])[: int(seconds * 16000)]
    return x[: len(x) // N * N]


@pytest.fixture(scope="module")
def real():
    pytest.importorskip("ctranslate2", reason="ctranslate2 not installed (pip install ctranslate2)")
    if not (W.default_model_dir() / "model.bin").is_file():
        pytest.skip(f"Whisper tiny.en not in {W.default_model_dir()}: run `emotag fetch-assets`")
    be = W.WhisperFeatures(engine="ctranslate2")
    x = librivox(6.0)
    opts = StreamOptions()
    s = WhisperStream(be, FPS, opts.lookahead_s, opts.left_context_s, opts.chunk_s)
    f, _ = run(s, x)
    return f, be.features(x, len(x) // N, FPS), s


def test_default_stream_is_close_to_the_offline_features_on_real_speech(real):
    """Tolerance chosen from bench/bench_stream_whisper_accuracy.py (BENCHMARKS.md, streamed Whisper features)."""
    f, ref, _ = real
    rel = np.sqrt(((f - ref) ** 2).mean() / (ref ** 2).mean())
    cos = (f * ref).sum(1) / np.linalg.norm(f, axis=1) / np.linalg.norm(ref, axis=1)
    print(f"\nstreamed vs offline (6 s LibriVox, defaults): rel RMS {rel:.3f}, cosine mean {cos.mean():.4f} min {cos.min():.4f}")
    assert rel < REL_TOL and cos.mean() > COS_TOL


def test_no_seams_between_chunks_on_real_speech(real):
    """The step from a chunk's last frame to the next chunk's first is no larger than the steps inside chunks."""
    f, ref, s = real
    step = np.linalg.norm(np.diff(f, axis=0), axis=1)          # [T - 1]
    edge = np.zeros(len(step), bool)
    edge[s.chunk - 1:: s.chunk] = True                         # frame t -> t + 1 crosses a chunk boundary
    assert step[edge].max() <= 1.05 * step[~edge].max()
    assert step[edge].mean() <= 1.25 * step[~edge].mean()


REL_TOL, COS_TOL = 0.25, 0.97


class _Recording:
    """An animator that keeps each frame's centre audio row (what the GRMN reads at the frame itself)."""

    def __init__(self, inner):
        self.inner, self.rows = inner, []
        self.window, self.grmn, self.size = inner.window, inner.grmn, inner.size

    def __call__(self, a, e, rot, trans):
        self.rows += list(np.asarray(a)[:, self.window // 2])
        return self.inner(a, e, rot, trans)


def test_offline_render_is_driven_by_the_stage_features(toy_weights, tmp_path):
    """render@<id> (`render_to_mp4(offline=True)`) reads the features audio_features@<id> would compute over the
    same audio, row for row; the live stream (0.2 s lookahead) does not."""
    from emotag_core.render.api import render_to_mp4
    from emotag_core.render.audio import OfflineFeatures
    from emotag_core.render.driver import animate_stream

    from .fakes import cues, tiny_animator

    be = toy(toy_weights)
    x = speech_like(70, 6)
    blocks = [x[i: i + N] for i in range(0, len(x), N)]
    ref = be.features(x, 70, FPS)                                             # [70, 32], the stage's rows
    off = _Recording(tiny_animator(audio_dim=32))
    render_to_mp4(off, blocks, tmp_path / "off.mp4", be, cues(8), fps=FPS, batch_size=4, offline=True)
    assert (tmp_path / "off.mp4").is_file()
    np.testing.assert_allclose(np.stack(off.rows), ref, rtol=0, atol=1e-6)
    live = _Recording(tiny_animator(audio_dim=32))
    animate_stream(live, blocks, be, cues(8), lambda *a: None, batch_size=4,
                   stream_options=StreamOptions(lookahead_s=0.2, chunk_s=0.08))
    assert np.abs(np.stack(live.rows) - ref).max() > 1e-3 * np.abs(ref).max()
    with pytest.raises(InputError, match="audio frame 70 has no precomputed features"):  # more audio than rows
        animate_stream(tiny_animator(audio_dim=32), blocks + blocks[:1], OfflineFeatures(ref), cues(8),
                       lambda *a: None, batch_size=4)


def test_emotag_render_without_stream_reads_the_offline_features(toy_weights, tmp_path, monkeypatch):
    """`emotag render ID FILE` (no --stream) = stream_identity(offline=True): the whole file's stage features."""
    from emotag_core.render import jobs

    from .fakes import cues, tiny_animator

    monkeypatch.setattr(jobs, "cue_track", lambda *a: cues(8))
    be = toy(toy_weights)
    x = speech_like(40, 7)
    rec = _Recording(tiny_animator(audio_dim=32))
    summary = jobs.stream_identity(jobs.TargetFiles("anna", tmp_path), rec, be, "c0", "hold",
                                   [x[i: i + N] for i in range(0, len(x), N)], FPS, out=tmp_path / "f.mp4",
                                   realtime=False, offline=True)
    assert summary["frames"] == 40
    np.testing.assert_allclose(np.stack(rec.rows), be.features(x, 40, FPS), rtol=0, atol=1e-6)
