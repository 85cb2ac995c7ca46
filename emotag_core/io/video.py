"""Video probing and streaming decode (PyAV), resampled by timestamps to a fixed frame rate.

Frames are yielded one at a time, so memory does not grow with video length. Rotation metadata
(display matrix) is applied on conversion, so every pixel coordinate this module returns is in
display orientation. Variable frame rate sources are resampled by presentation time: output
frame `k` (time `k / fps`) shows the source frame whose timestamp is nearest to it.
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError

# Containers FFmpeg reads through its still-image demuxers: a picture, not a video.
_IMAGE_FORMATS = ("image2", "png_pipe", "jpeg_pipe", "webp_pipe", "bmp_pipe", "tiff_pipe", "gif")
# A declared duration longer than what decodes by this much (and by this fraction) means truncation.
TRUNCATION_SLACK_S = 0.5
TRUNCATION_SLACK_FRAC = 0.05


@dataclass(frozen=True)
class AudioInfo:
    """The first audio stream of a media file."""

    codec: str
    sample_rate: int
    channels: int
    duration_s: float | None
    """Declared duration (container metadata); None when the container does not say."""
    start_s: float = 0.0
    """Timestamp of the first audio sample (container time)."""


@dataclass(frozen=True)
class VideoInfo:
    """What `probe` learns about a media file without decoding it whole."""

    path: Path
    container: str
    codec: str
    pix_fmt: str
    width: int
    """Display width (after rotation)."""
    height: int
    """Display height (after rotation)."""
    rotation: int
    """Counter-clockwise rotation (degrees, multiple of 90) applied to decoded frames for display."""
    fps: float
    """Average frame rate as the container declares it."""
    declared_fps: float
    """Nominal (`r_frame_rate`) frame rate; differs from `fps` for variable frame rate files."""
    duration_s: float | None
    """Declared video duration; None when unknown."""
    audio: AudioInfo | None
    size_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def variable_rate(self) -> bool:
        """True when the nominal and average frame rates disagree (a VFR source)."""
        return self.declared_fps > 0 and abs(self.declared_fps - self.fps) / self.declared_fps > 0.01

    def summary(self) -> dict[str, Any]:
        """A JSON-able description for table metadata and logs."""
        return {
            "file": self.path.name, "container": self.container, "codec": self.codec, "pix_fmt": self.pix_fmt,
            "width": self.width, "height": self.height, "rotation": self.rotation, "fps": round(self.fps, 4),
            "variable_rate": self.variable_rate,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 4),
            "audio": None if self.audio is None else {
                "codec": self.audio.codec, "sample_rate": self.audio.sample_rate, "channels": self.audio.channels},
        }


def _open(path: Path) -> Any:
    import av

    try:
        return av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise InputError(path, f"not a readable media file ({_ffmpeg_reason(exc)}); it may be truncated, "
                               "corrupt or not a video", "re-export or re-copy the file") from exc


def _ffmpeg_reason(exc: Exception) -> str:
    msg = getattr(exc, "strerror", None) or str(exc)
    return str(msg).split(":", 1)[0] if "Errno" in str(msg) else str(msg)


def _rate(x: Any) -> float:
    return float(x) if x else 0.0


def _rotation_k(rotation: float | int | None) -> int:
    """np.rot90 turns for a display-matrix rotation (degrees, counter-clockwise)."""
    return int(round((rotation or 0) / 90.0)) % 4



def _tag_seconds(tag: str | None) -> float | None:
    """A Matroska `DURATION` tag (`HH:MM:SS.nnnnnnnnn`) in seconds; None when absent or malformed."""
    try:
        h, m, sec = str(tag).split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, TypeError):
        return None

def probe(path: str | Path) -> VideoInfo:
    """Describe a video file; InputError (naming the file) for empty, non-media, audio-only or
    still-image files, or a first frame that does not decode."""
    import av

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    size = path.stat().st_size
    if size == 0:
        raise InputError(path, "file is empty (0 bytes)", "re-copy the video")
    with _open(path) as c:
        fmt = c.format.name
        if not c.streams.video:
            kind = "an audio-only file" if c.streams.audio else "a media file with no video stream"
            raise InputError(path, f"is {kind}; ingest needs a video with a face and an audio track")
        vs = c.streams.video[0]
        if fmt in _IMAGE_FORMATS or (vs.frames == 1 and not c.streams.audio):
            raise InputError(path, f"is a still image ({fmt}), not a video")
        first = None
        try:
            for first in c.decode(vs):
                break
        except av.error.FFmpegError as exc:
            raise InputError(path, f"first video frame does not decode ({exc}); the file is corrupt",
                             "re-export the video") from exc
        if first is None:
            raise InputError(path, "video stream holds no decodable frame; the file is truncated or corrupt")
        rotation = int(round(first.rotation or 0))
        k = _rotation_k(rotation)
        w, h = (first.width, first.height) if k % 2 == 0 else (first.height, first.width)
        dur = None
        if vs.duration is not None and vs.time_base is not None:
            dur = float(vs.duration * vs.time_base)
        elif _tag_seconds(vs.metadata.get("DURATION")) is not None:  # Matroska: per-track tag; the
            dur = _tag_seconds(vs.metadata.get("DURATION"))          # container's is the longest track
        elif c.duration is not None:
            dur = c.duration / 1e6
        audio = None
        if c.streams.audio:
            a = c.streams.audio[0]
            adur = float(a.duration * a.time_base) if a.duration is not None and a.time_base else (
                c.duration / 1e6 if c.duration else None)
            astart = float(a.start_time * a.time_base) if a.start_time is not None and a.time_base else 0.0
            audio = AudioInfo(a.codec_context.name, int(a.sample_rate or 0), int(a.channels or 0), adur, astart)
        return VideoInfo(path, fmt, vs.codec_context.name, str(first.format.name), w, h, rotation,
                         _rate(vs.average_rate) or _rate(vs.guessed_rate), _rate(vs.base_rate) or _rate(vs.guessed_rate),
                         dur, audio, size)


def to_rgb(frame: Any, rotation: int = 0, max_side: int | None = None, fmt: str = "rgb24") -> np.ndarray:
    """A decoded PyAV frame -> [H, W, 3] uint8 RGB (or BGR with fmt="bgr24") in display orientation,
    optionally downscaled so the longest side is at most `max_side` (any pixel format: 8/10-bit,
    4:2:0/4:4:4)."""
    k = _rotation_k(rotation)
    if max_side is not None and max(frame.width, frame.height) > max_side:
        s = max_side / max(frame.width, frame.height)
        w, h = max(2, int(round(frame.width * s))), max(2, int(round(frame.height * s)))
        img = frame.to_ndarray(format=fmt, width=w, height=h, interpolation="AREA")
    else:
        img = frame.to_ndarray(format=fmt)
    if k:
        img = np.ascontiguousarray(np.rot90(img, k))
    return img


@dataclass
class DecodeStats:
    """What a streaming decode saw (filled while iterating)."""

    source_frames: int = 0
    first_t: float | None = None
    last_t: float | None = None
    min_dt: float = math.inf
    max_dt: float = 0.0
    end_t: float = 0.0
    """End of the last source frame, relative to the first frame (seconds)."""
    dropped_nonmonotonic: int = 0

    @property
    def variable_rate(self) -> bool:
        return self.source_frames > 2 and self.max_dt > 1.5 * self.min_dt


@dataclass
class OutFrame:
    """One output frame of the resampled stream."""

    index: int
    t: float
    """Output time, `index / fps` (seconds from the first video frame)."""
    src_t: float
    """Timestamp of the source frame shown (seconds from the first video frame)."""
    frame: Any
    """The decoded PyAV VideoFrame (the same object repeats when the source is slower than `fps`)."""
    new_source: bool
    """False when this output repeats the previous output's source frame."""


def resample_frames(path: str | Path, fps: float, stats: DecodeStats | None = None,
                    max_frames: int | None = None) -> Iterator[OutFrame]:
    """Stream a video as output frames at `fps`, choosing for time `k / fps` the source frame with
    the nearest timestamp. Yields floor(duration * fps) frames (duration = end of the last source
    frame), or `max_frames`."""
    import av

    path = Path(path)
    st = stats if stats is not None else DecodeStats()
    period = 1.0 / fps
    k = 0
    with _open(path) as c:
        vs = c.streams.video[0]
        vs.thread_type = "AUTO"
        guessed = _rate(vs.average_rate) or _rate(vs.guessed_rate) or fps
        prev = None  # (time, frame)
        prev_emitted = None
        t0 = None
        try:
            for fr in c.decode(vs):
                t_abs = fr.time if fr.time is not None else (st.source_frames / guessed)
                if t0 is None:
                    t0 = t_abs
                    st.first_t = t_abs
                t = t_abs - t0
                if prev is not None:
                    dt = t - prev[0]
                    if dt <= 0:
                        st.dropped_nonmonotonic += 1
                        continue
                    st.min_dt, st.max_dt = min(st.min_dt, dt), max(st.max_dt, dt)
                    mid = 0.5 * (prev[0] + t)
                    while k * period < mid:
                        if max_frames is not None and k >= max_frames:
                            return
                        yield OutFrame(k, k * period, prev[0], prev[1], prev_emitted is not prev[1])
                        prev_emitted = prev[1]
                        k += 1
                prev = (t, fr)
                st.source_frames += 1
                st.last_t = t
        except av.error.FFmpegError as exc:
            where = f"{prev[0]:.2f} s" if prev else "the start"
            raise InputError(path, f"video decoding failed after {where} ({exc}); the file is truncated or "
                                   "corrupt", "re-export or re-copy the file") from exc
        if prev is None:
            return
        last_dur = (float(prev[1].duration * prev[1].time_base) if prev[1].duration and prev[1].time_base
                    else (st.min_dt if math.isfinite(st.min_dt) else 1.0 / guessed))
        st.end_t = prev[0] + last_dur
        n_total = int(math.floor(st.end_t * fps + 1e-6))  # whole output frames inside the source
        while k < n_total:
            if max_frames is not None and k >= max_frames:
                return
            yield OutFrame(k, k * period, prev[0], prev[1], prev_emitted is not prev[1])
            prev_emitted = prev[1]
            k += 1


def check_complete(info: VideoInfo, decoded_s: float) -> None:
    """InputError when the decodable video is much shorter than the container declares (truncation)."""
    if info.duration_s is None or info.duration_s <= 0:
        return
    missing = info.duration_s - decoded_s
    if missing > max(TRUNCATION_SLACK_S, TRUNCATION_SLACK_FRAC * info.duration_s):
        raise InputError(info.path, f"truncated: the container declares {info.duration_s:.2f} s of video but only "
                                    f"{decoded_s:.2f} s decodes", "re-copy or re-export the file")
