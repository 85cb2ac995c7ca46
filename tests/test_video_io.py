"""emotag_core.io.video / io.audio: timestamp resampling (CFR, VFR), rotation, pixel formats,
audio down-mix/resampling, WAV round trip. Media are synthesised here (tiny, a few seconds)."""
from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from emotag_core.errors import InputError
from emotag_core.io import audio as audio_io
from emotag_core.io import video as video_io

FFMPEG = shutil.which("ffmpeg")
needs_ffmpeg = pytest.mark.skipif(FFMPEG is None, reason="ffmpeg CLI not installed (apt-get install ffmpeg)")


def ff(*args: str) -> None:
    subprocess.run([FFMPEG or "ffmpeg", "-v", "error", "-y", *args], check=True)


def encode_counter_video(path: Path, times_s: list[float], size=(96, 64), codec="libx264",
                         pix_fmt="yuv420p") -> None:
    """A video whose frame i is a flat grey of level 8 * (i % 30) + 10, shown at times_s[i]."""
    import av

    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=30)
        s.width, s.height, s.pix_fmt = size[0], size[1], pix_fmt
        s.time_base = Fraction(1, 1000)
        s.codec_context.time_base = Fraction(1, 1000)
        if codec == "libx264":
            s.options = {"crf": "10", "g": "10"}
        for i, t in enumerate(times_s):
            img = np.full((size[1], size[0], 3), 8 * (i % 30) + 10, np.uint8)
            fr = av.VideoFrame.from_ndarray(img, format="rgb24")
            fr.pts = int(round(t * 1000))
            fr.time_base = Fraction(1, 1000)
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def level_to_index(img: np.ndarray) -> int:
    return int(round((float(img.mean()) - 10) / 8))


def test_cfr_resampling_picks_nearest_source_frame(tmp_path: Path) -> None:
    times = [i / 30 for i in range(45)]  # 1.5 s at 30 fps
    p = tmp_path / "cfr.mp4"
    encode_counter_video(p, times)
    st = video_io.DecodeStats()
    outs = [(o.index, o.t, o.src_t, level_to_index(video_io.to_rgb(o.frame))) for o in video_io.resample_frames(p, 25.0, st)]
    assert len(outs) == 37  # floor(1.5 s * 25): whole output frames inside the source
    for k, t, src_t, idx in outs:
        assert t == pytest.approx(k / 25)
        want = int(np.argmin([abs(s - t) for s in times]))
        assert abs(src_t - times[want]) < 1e-3
        assert idx == want % 30
    assert st.source_frames == 45 and not st.variable_rate


def test_vfr_resampling_follows_timestamps(tmp_path: Path) -> None:
    # 1 s at 10 fps, then 1 s at 50 fps: a frame-count-based resampler gets this wrong
    times = [i / 10 for i in range(10)] + [1.0 + i / 50 for i in range(50)]
    p = tmp_path / "vfr.mp4"
    encode_counter_video(p, times)
    st = video_io.DecodeStats()
    outs = list(video_io.resample_frames(p, 25.0, st))
    assert st.variable_rate
    assert len(outs) == 50
    for o in outs:
        want = int(np.argmin([abs(s - o.t) for s in times]))
        assert abs(o.src_t - times[want]) < 1e-3, (o.index, o.src_t, times[want])
        assert level_to_index(video_io.to_rgb(o.frame)) == want % 30
    # the slow part repeats source frames, the fast part skips them
    assert sum(not o.new_source for o in outs[:25]) > 10
    assert len({o.src_t for o in outs[25:]}) == 25


@needs_ffmpeg
@pytest.mark.parametrize("rotate", [90, 270])
def test_rotation_metadata_matches_ffmpeg_autorotate(tmp_path: Path, rotate: int) -> None:
    src = tmp_path / "plain.mp4"
    import av

    with av.open(str(src), "w") as c:  # an asymmetric picture: a bright block top-left
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 96, 64, "yuv444p"
        s.options = {"crf": "0"}
        img = np.zeros((64, 96, 3), np.uint8)
        img[4:20, 6:40] = 250
        for _ in range(5):
            for pkt in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    rot = tmp_path / f"rot{rotate}.mp4"
    ff("-i", str(src), "-c", "copy", "-metadata:s:v", f"rotate={rotate}", str(rot))
    ref_png = tmp_path / "ref.png"
    ff("-i", str(rot), "-frames:v", "1", str(ref_png))  # ffmpeg applies the display matrix
    import cv2

    ref = cv2.imread(str(ref_png))[..., ::-1]
    info = video_io.probe(rot)
    assert (info.width, info.height) == (64, 96)
    got = video_io.to_rgb(next(iter(video_io.resample_frames(rot, 25.0))).frame, info.rotation)
    assert got.shape == ref.shape
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 3


@needs_ffmpeg
@pytest.mark.parametrize("codec,pix_fmt,name,ext", [("libx265", "yuv444p10le", "hevc", "mkv"),
                                                    ("prores_ks", "yuv422p10le", "prores", "mov"),
                                                    ("libvpx-vp9", "yuv420p", "vp9", "webm")])
def test_codecs_and_deep_pixel_formats_decode_to_rgb(tmp_path: Path, codec: str, pix_fmt: str, name: str,
                                                     ext: str) -> None:
    p = tmp_path / f"clip.{ext}"
    ff("-f", "lavfi", "-i", "color=c=0x3366cc:s=64x48:d=0.4:r=25", "-c:v", codec, "-pix_fmt", pix_fmt, str(p))
    info = video_io.probe(p)
    assert info.codec == name
    if "10" in pix_fmt:
        assert "10le" in info.pix_fmt or "12le" in info.pix_fmt  # decoded at > 8 bits
    img = video_io.to_rgb(next(iter(video_io.resample_frames(p, 25.0))).frame)
    assert img.dtype == np.uint8 and img.shape == (48, 64, 3)
    assert np.allclose(img.reshape(-1, 3).mean(0), [0x33, 0x66, 0xCC], atol=8)


def test_downscale_keeps_aspect(tmp_path: Path) -> None:
    p = tmp_path / "big.mp4"
    encode_counter_video(p, [0.0, 0.04], size=(640, 360))
    fr = next(iter(video_io.resample_frames(p, 25.0))).frame
    small = video_io.to_rgb(fr, 0, max_side=320)
    assert small.shape == (180, 320, 3)


@needs_ffmpeg
@pytest.mark.parametrize("rate,channels", [(48000, 2), (8000, 1), (44100, 2)])
def test_audio_downmix_resample_keeps_pitch_and_length(tmp_path: Path, rate: int, channels: int) -> None:
    # stereo: 440 Hz on the left, 1000 Hz on the right; a down-mix must keep both
    src = tmp_path / f"tone_{rate}.wav"
    tones = f"sine=frequency=440:sample_rate={rate}:duration=1.5[a];sine=frequency=1000:sample_rate={rate}:duration=1.5[b]"
    graph = f"{tones};[a][b]amerge=inputs=2[o]" if channels == 2 else f"{tones};[b]anullsink;[a]anull[o]"
    ff("-filter_complex", graph, "-map", "[o]", "-c:a", "pcm_s16le", str(src))
    wav = tmp_path / "out.wav"
    n = audio_io.decode_to_wav(src, wav, 16000)
    x, sr = audio_io.read_wav(wav)
    assert sr == 16000 and x.size == n
    assert abs(n - 1.5 * 16000) < 0.03 * 16000
    spec = np.abs(np.fft.rfft(x[2000:18000]))  # 1 s window: bin k is k Hz
    assert abs(int(np.argmax(spec[:700])) - 440) <= 2
    if channels == 2:
        assert spec[995:1006].max() > 0.5 * spec[435:446].max()
    else:
        assert spec[995:1006].max() < 0.01 * spec[435:446].max()


def test_wav_roundtrip_and_truncate(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.9, 0.9, 3201).astype(np.float32)
    p = tmp_path / "a.wav"
    audio_io.write_wav(p, x, 16000)
    y, sr = audio_io.read_wav(p)
    assert sr == 16000 and np.abs(y - x).max() < 1e-4
    audio_io.truncate_wav(p, 1000)
    z, _ = audio_io.read_wav(p)
    assert z.size == 1000 and np.array_equal(z, y[:1000])


def test_decode_to_wav_caps_samples(tmp_path: Path) -> None:
    p = tmp_path / "a.wav"
    audio_io.write_wav(p, np.zeros(16000, np.float32), 16000)
    assert audio_io.decode_to_wav(p, tmp_path / "b.wav", 16000, max_samples=1234) == 1234
    assert audio_io.read_wav(tmp_path / "b.wav")[0].size == 1234


def test_probe_rejects_empty_and_non_media(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        video_io.probe(empty)
    junk = tmp_path / "notes.mp4"
    junk.write_text("this is not a video\n" * 50)
    with pytest.raises(InputError, match="not a readable media file") as e:
        video_io.probe(junk)
    assert "notes.mp4" in str(e.value)


def test_probe_rejects_audio_only(tmp_path: Path) -> None:
    p = tmp_path / "speech.wav"
    audio_io.write_wav(p, np.zeros(8000, np.float32), 16000)
    with pytest.raises(InputError, match="audio-only"):
        video_io.probe(p)


@needs_ffmpeg
def test_audio_is_aligned_to_the_first_video_frame(tmp_path: Path) -> None:
    # audio starts 0.5 s after the video: the WAV must start with 0.5 s of silence
    p = tmp_path / "late_audio.mkv"
    ff("-f", "lavfi", "-i", "color=c=gray:s=64x48:d=2:r=25", "-itsoffset", "0.5", "-f", "lavfi",
       "-i", "sine=frequency=440:sample_rate=16000:duration=1.5", "-map", "0:v", "-map", "1:a",
       "-c:v", "libx264", "-c:a", "pcm_s16le", str(p))
    first_video_t = next(iter(video_io.resample_frames(p, 25.0))).frame.time
    n = audio_io.decode_to_wav(p, tmp_path / "a.wav", 16000, start_s=first_video_t)
    x, _ = audio_io.read_wav(tmp_path / "a.wav")
    onset = int(np.argmax(np.abs(x) > 0.01))
    assert abs(onset - 8000) < 160, onset  # within 10 ms of 0.5 s
    assert abs(n - 2.0 * 16000) < 400
