import numpy as np
import pytest
import torch

from emotag_core.errors import InputError
from emotag_core.render.api import render_stream, render_to_mp4
from emotag_core.render.driver import CueTrack, GateControl, animate_stream, apply_gate
from emotag_core.render.video import iter_video_frames, probe_streams
from emotag_core.teachers.audio import LogMelFeatures, windows

from .fakes import cues, tiny_animator


def speech_like(T, seed=0):
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0, 1, T) ** 2, 640)
    return (rng.normal(0, 0.2, T * 640) * env).astype(np.float32)


def collect(animator, audio, batch, cue):
    out = {}
    tr = animate_stream(animator, [audio[i:i + 640] for i in range(0, len(audio), 640)], LogMelFeatures(), cue,
                        lambda t, f, s: out.__setitem__(t, f), batch_size=batch)
    return tr, np.stack([out[t] for t in range(len(out))])


def test_streaming_equals_whole_sequence_inference():
    T = 41
    audio = speech_like(T)
    an, cue = tiny_animator(), cues(12)
    tr1, f1 = collect(an, audio, 1, cue)
    tr8, f8 = collect(an, audio, 8, cue)
    # reference: whole-file features, the audio teacher's own windowing, one batch
    feats = LogMelFeatures().features(audio, T, 25.0)
    idx = np.arange(T)
    rows = cue.index(np.clip(idx[:, None] + np.arange(16) - 8, 0, T - 1))
    ref = an(windows(feats, idx, 16), cue.aus[rows], cue.rot[cue.index(idx)], cue.trans[cue.index(idx)])
    assert f1.shape == (T, 32, 32, 3) and tr1.n_frames == T
    assert np.abs(f8.astype(int) - ref.frames).max() <= 1
    assert np.abs(f1.astype(int) - ref.frames).max() <= 1
    np.testing.assert_allclose(tr8.g, ref.g, atol=1e-4)
    assert len(set(np.round(tr8.jaw_open, 6))) > 5  # motion follows the audio, not constant


def test_gate_control_rescales_and_overrides_eq6():
    an = tiny_animator()
    T = 20
    a = windows(LogMelFeatures().features(speech_like(T), T), np.arange(T))
    e = np.random.default_rng(0).uniform(0, 3, (T, 16, 6))
    out = an.grmn(torch.tensor(a, dtype=torch.float32), torch.tensor(e, dtype=torch.float32), an.s.expand(T, -1))
    half = apply_gate(out, GateControl(scale=0.5), 5)
    torch.testing.assert_close(half.g, out.g * 0.5)
    torch.testing.assert_close(half.expr, out.delta_b[:, :5] + 0.5 * out.g * out.delta_r[:, :5])
    off = apply_gate(out, GateControl(override=0.0), 5)
    torch.testing.assert_close(off.jaw, out.delta_b[:, 5:8])  # g = 0: base branch only
    torch.testing.assert_close(off.mouth.flatten(1), out.delta_b[:, 8:])
    assert apply_gate(out, GateControl(), 5) is out
    big = apply_gate(out, GateControl(scale=50.0), 5)
    assert float(big.g.detach().max()) <= 1.0
    with pytest.raises(InputError, match="gate_override"):
        GateControl(override=1.5)


def test_cue_modes_and_their_description():
    c = cues(4, "pingpong")
    assert c.index(np.arange(9)).tolist() == [0, 1, 2, 3, 2, 1, 0, 1, 2]
    c.mode = "loop"
    assert c.index(np.arange(6)).tolist() == [0, 1, 2, 3, 0, 1]
    c.mode = "hold"
    assert c.index(np.arange(6)).tolist() == [0, 1, 2, 3, 3, 3]
    assert "last frame held" in c.describe(10) and "cover all" in c.describe(3)
    with pytest.raises(InputError, match="no frames"):
        CueTrack(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros((0, 6)))


def test_render_to_mp4_muxes_the_driving_audio(tmp_path):
    import subprocess
    src = tmp_path / "drive.m4a"  # an AAC file at 44.1 kHz: decoded and resampled
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=200:duration=1.3:sample_rate=44100",
                    "-c:a", "aac", str(src)], check=True)
    out = tmp_path / "r.mp4"
    tr = render_to_mp4(tiny_animator(control=GateControl(override=1.0)), src, out, LogMelFeatures(), cues(5, "hold"))
    s = probe_streams(out)
    assert s["video"]["codec"] == "h264" and s["audio"]["codec"] == "aac"
    assert tr.n_frames == len(list(iter_video_frames(out)))
    assert abs(tr.n_frames / 25 - 1.3) < 0.1
    assert s["audio"]["duration"] == pytest.approx(s["video"]["duration"], abs=0.04)
    assert all(g == 1.0 for g in tr.g) and "held" in tr.cue_note


def test_stream_mode_emits_first_frame_before_input_ends(tmp_path):
    T = 60
    audio = speech_like(T, 3)
    seen = []

    def live():  # a live source: 1 frame of audio at a time
        for i in range(T):
            seen.append(i)
            yield audio[i * 640:(i + 1) * 640]

    first = {}
    tr = render_stream(tiny_animator(), live(), LogMelFeatures(), cues(8), realtime=False,
                       on_frame=lambda t, f: first.setdefault("blocks_read", len(seen)), out=tmp_path / "s.mp4")
    assert tr.n_frames == T and tr.first_frame_before_input_end
    assert first["blocks_read"] <= 16  # first frame after ~half a window + feature context
    assert len(tr.latency_s) == T and min(tr.latency_s) >= 0
    assert probe_streams(tmp_path / "s.mp4")["video"]["frames"] == T
