"""MP4 output: H.264 video + AAC audio muxed together, written frame by frame (PyAV).

Frames and their audio are handed to the encoder as they are produced (nothing is buffered
beyond the encoder's own lookahead), and the file appears under its name only when it is
complete (`atomic_path`). The audio track is cut or padded with silence on close so that its
duration equals the video's (frames / fps).
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.io.atomic import atomic_path


class Mp4Writer:
    """Streaming H.264/AAC mp4 writer. Use as a context manager; `write(frame, audio)` per frame."""

    def __init__(self, path: str | Path, fps: float = 25.0, size: tuple[int, int] = (512, 512),
                 sample_rate: int = 16000, crf: int = 20, audio_bitrate: int = 64000) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        self.width, self.height = int(size[0]), int(size[1])
        self.sample_rate = int(sample_rate)
        self.crf = crf
        self.audio_bitrate = audio_bitrate
        self.frames = 0
        self.samples = 0
        self._ctx: contextlib.AbstractContextManager[Path] | None = None
        self._c: Any = None

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Mp4Writer":
        import av

        self._ctx = atomic_path(self.path)
        tmp = self._ctx.__enter__()
        self._c = av.open(str(tmp), mode="w", format="mp4")
        v = self._c.add_stream("libx264", rate=self.fps)
        v.width, v.height, v.pix_fmt = self.width, self.height, "yuv420p"
        v.options = {"crf": str(self.crf), "preset": "veryfast"}
        a = self._c.add_stream("aac", rate=self.sample_rate)
        a.layout = "mono"
        a.bit_rate = self.audio_bitrate
        self._v, self._a = v, a
        return self

    def __exit__(self, et: Any, ev: Any, tb: Any) -> bool:
        assert self._ctx is not None
        try:
            if et is None:
                self._finish()
            self._c.close()
        finally:
            self._ctx.__exit__(et, ev, tb)
        return False

    # -- writing ------------------------------------------------------------------------------
    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate / float(self.fps)

    def write(self, frame: np.ndarray, audio: np.ndarray | None = None) -> None:
        """Append one video frame [H, W, 3] uint8 RGB and (optionally) audio samples [n] float in [-1, 1]."""
        import av

        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise ValueError(f"{self.path}: frame {self.frames} is {frame.shape} {frame.dtype}, "
                             f"expected ({self.height}, {self.width}, 3) uint8")
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        vf.time_base = 1 / self.fps
        for pkt in self._v.encode(vf):
            self._c.mux(pkt)
        self.frames += 1
        if audio is not None:
            self.write_audio(audio)

    def write_audio(self, samples: np.ndarray) -> None:
        """Append mono audio [n] (float in [-1, 1] or int16) at the writer's sample rate."""
        import av

        x = np.asarray(samples)
        if x.dtype == np.int16:
            x = x.astype(np.float32) / 32768.0
        x = np.clip(np.asarray(x, np.float32).reshape(1, -1), -1.0, 1.0)
        if x.shape[1] == 0:
            return
        af = av.AudioFrame.from_ndarray(x, format="flt", layout="mono")
        af.sample_rate = self.sample_rate
        af.pts = self.samples
        af.time_base = Fraction(1, self.sample_rate)
        for pkt in self._a.encode(af):
            self._c.mux(pkt)
        self.samples += x.shape[1]

    def _finish(self) -> None:
        want = int(round(self.frames * self.samples_per_frame))
        if self.samples < want:  # pad with silence to the video's length
            self.write_audio(np.zeros(want - self.samples, np.float32))
        elif self.samples > want:
            # more audio than video: the surplus is already encoded; the mp4 edit keeps both
            # streams' declared durations honest (callers keep audio in step with frames)
            pass
        for pkt in self._v.encode(None):
            self._c.mux(pkt)
        for pkt in self._a.encode(None):
            self._c.mux(pkt)


def probe_streams(path: str | Path) -> dict[str, dict[str, Any]]:
    """ffprobe's view of a media file: {'video': {...}, 'audio': {...}} with codec and duration (s)."""
    import json
    import subprocess

    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
                         check=True, capture_output=True, text=True).stdout
    info = json.loads(out)
    res: dict[str, dict[str, Any]] = {}
    for s in info.get("streams", []):
        kind = s.get("codec_type")
        if kind in ("video", "audio") and kind not in res:
            res[kind] = {"codec": s.get("codec_name"), "duration": float(s.get("duration", "nan")),
                         "frames": int(s.get("nb_frames", 0) or 0), "sample_rate": int(s.get("sample_rate", 0) or 0),
                         "width": s.get("width"), "height": s.get("height"), "rate": s.get("avg_frame_rate")}
    return res


def iter_video_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Decode a video's frames as [H, W, 3] uint8 RGB, one at a time."""
    import av

    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            yield f.to_ndarray(format="rgb24")
