import numpy as np
import pytest

from emotag_core.render.video import Mp4Writer, iter_video_frames, probe_streams


def tone(n, sr=16000, f=440.0, start=0):
    t = (np.arange(n) + start) / sr
    return 0.3 * np.sin(2 * np.pi * f * t).astype(np.float32)


def test_mp4_has_h264_and_aac_with_matching_durations(tmp_path):
    out = tmp_path / "r.mp4"
    T = 37  # 1.48 s
    with Mp4Writer(out, fps=25, size=(64, 48)) as w:
        for t in range(T):
            img = np.full((48, 64, 3), (t * 6) % 255, np.uint8)
            w.write(img, tone(640, start=640 * t))
    s = probe_streams(out)
    assert s["video"]["codec"] == "h264" and s["audio"]["codec"] == "aac"
    assert s["video"]["rate"] == "25/1" and s["audio"]["sample_rate"] == 16000
    assert (s["video"]["width"], s["video"]["height"]) == (64, 48)
    assert s["video"]["duration"] == pytest.approx(T / 25, abs=1e-3)
    assert s["audio"]["duration"] == pytest.approx(T / 25, abs=0.04)  # within one video frame
    frames = list(iter_video_frames(out))
    assert len(frames) == T
    assert abs(int(frames[10].mean()) - 60) <= 3  # frame content survives the encode
    assert not list(tmp_path.glob(".tmp-*"))


def test_short_audio_is_padded_to_video_length(tmp_path):
    out = tmp_path / "pad.mp4"
    with Mp4Writer(out, size=(32, 32)) as w:
        w.write_audio(tone(3000))
        for _ in range(25):
            w.write(np.zeros((32, 32, 3), np.uint8))
    s = probe_streams(out)
    assert s["audio"]["duration"] == pytest.approx(1.0, abs=0.04)


def test_failed_render_leaves_no_file(tmp_path):
    out = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="frame 1"):
        with Mp4Writer(out, size=(32, 32)) as w:
            w.write(np.zeros((32, 32, 3), np.uint8))
            w.write(np.zeros((16, 32, 3), np.uint8))
    assert not out.exists() and not list(tmp_path.iterdir())
