import subprocess

import numpy as np
import pytest

from emotag_core.errors import InputError
from emotag_core.render.audio import FeatureStream, frame_blocks, iter_samples, probe_duration
from emotag_core.teachers.audio import LogMelFeatures


def test_any_file_is_resampled_to_16k_mono_frame_blocks(tmp_path):
    # a 44.1 kHz stereo mp3 of 1.01 s: decoded, down-mixed, resampled, cut in 640-sample frames
    src = tmp_path / "x.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=1.01:sample_rate=44100",
                    "-ac", "2", str(src)], check=True)
    assert probe_duration(src) == pytest.approx(1.01, abs=0.06)
    blocks = list(frame_blocks(iter_samples(src)))
    assert all(b.shape == (640,) for b in blocks)
    assert len(blocks) in (26, 27)  # 1.01 s -> 25.25 frames (+ mp3 encoder padding), rounded up
    x = np.concatenate(blocks)[2000:12000]
    spec = np.abs(np.fft.rfft(x))
    assert np.argmax(spec) / len(x) * 16000 == pytest.approx(300, abs=3)


def test_missing_and_silent_video_inputs(tmp_path):
    with pytest.raises(InputError, match="not found"):
        list(iter_samples(tmp_path / "nope.wav"))
    vid = tmp_path / "mute.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "color=black:s=32x32:d=0.2", str(vid)], check=True)
    with pytest.raises(InputError, match="no audio"):
        probe_duration(vid)


def test_feature_stream_matches_whole_file_features():
    rng = np.random.default_rng(0)
    T = 53
    audio = (rng.normal(0, 0.1, T * 640) * np.repeat(rng.uniform(0, 1, T), 640)).astype(np.float32)
    be = LogMelFeatures()
    whole = be.features(audio, T, 25.0)
    fs = FeatureStream(be, context=2, chunk=5)
    got, first_ready_at = [], None
    for t, blk in enumerate(frame_blocks([audio])):
        out = fs.push(blk)
        if len(out) and first_ready_at is None:
            first_ready_at = t
        got.append(out)
    got.append(fs.finish())
    got = np.concatenate(got)
    assert got.shape == whole.shape
    np.testing.assert_allclose(got, whole, rtol=1e-4, atol=1e-4)
    assert first_ready_at == 6  # features of frames 0-4 are final once 2 frames of lookahead arrived
    assert len(fs.blocks) <= 5 + 2 + 2  # bounded buffer
