"""An uploaded file -> the 16 kHz mono speech that drives the avatar, or a `RequestError` (status + message).

The upload is stored under a name the server makes (never the client's file name) and decoded through
PyAV, which recognises the container from its bytes; its extension is never trusted. Audio longer than
the limit is cut or refused (`ServeConfig.long_audio`), and the note says which.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from emotag_core.errors import EmotagError

SAMPLE_RATE = 16000
ACCEPTED = "wav, mp3, m4a, ogg, flac, webm (a browser recording), or a video with sound (mp4, mov, mkv)"


class RequestError(EmotagError):
    """A request the server refuses: an HTTP status and a message for the page."""

    def __init__(self, status: int, message: str, **extra: object) -> None:
        self.status = int(status)
        self.message = message
        self.extra = extra
        super().__init__(f"{status}: {message}")


@dataclass
class Speech:
    """The decoded driving audio of one request."""

    samples: np.ndarray  # [n] float32 in [-1, 1], 16 kHz mono
    source_s: float
    """Length of the uploaded audio (s): the header's, or what was decoded when the header says nothing."""
    cut: bool
    """True when only the first `max_audio_s` are rendered."""
    note: str
    """What the page shows about the audio (its length, and that it was cut)."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _header_seconds(path: Path) -> float | None:
    """The first audio stream's duration from the container header, or None (RequestError 415 if unreadable)."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.audio:
                raise RequestError(415, f"the file has no audio track; upload speech: {ACCEPTED}")
            s = c.streams.audio[0]
            if s.duration is not None and s.time_base is not None:
                return float(s.duration * s.time_base)
            return c.duration / 1e6 if c.duration is not None else None
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        raise RequestError(415, f"not a readable audio or video file ({type(exc).__name__}); "
                                f"upload {ACCEPTED}") from exc


def decode_speech(path: str | Path, max_s: float, long_audio: str = "cut") -> Speech:
    """The audio of `path` at 16 kHz mono, at most `max_s` seconds (decoding stops there).

    long_audio: `cut` keeps the first `max_s` s; `refuse` raises RequestError(413). A file that is not
    media, has no audio track or does not decode raises RequestError(415); one with no samples, 422.
    """
    from emotag_core.errors import InputError
    from emotag_core.io.audio import iter_audio

    path = Path(path)
    header = _header_seconds(path)
    if long_audio == "refuse" and header is not None and header > max_s + 1e-3:
        raise RequestError(413, f"the audio is {header:.1f} s long, over the limit of {max_s:g} s "
                                f"(serve.max_audio_s): refused; upload a shorter clip")
    limit = int(round(max_s * SAMPLE_RATE))
    blocks: list[np.ndarray] = []
    n, longer = 0, False
    try:
        for b in iter_audio(path, SAMPLE_RATE):
            if n + b.size > limit:
                blocks.append(b[: limit - n])
                n, longer = limit, True
                break
            blocks.append(b)
            n += b.size
    except InputError as exc:
        raise RequestError(415, f"the audio does not decode: the file is truncated or corrupt; upload {ACCEPTED}"
                           ) from exc
    if n == 0:
        raise RequestError(422, "the file's audio track is empty (0 samples decoded); upload a clip with speech")
    samples = np.concatenate(blocks).astype(np.float32) / 32768.0
    if longer and long_audio == "refuse":  # the header under-stated the length
        raise RequestError(413, f"the audio is longer than the limit of {max_s:g} s (serve.max_audio_s): refused; "
                                f"upload a shorter clip")
    source = header if header is not None else n / SAMPLE_RATE
    if longer:
        what = f"{header:.1f} s" if header is not None else f"over {max_s:g} s"
        note = f"the audio is {what}, longer than the limit of {max_s:g} s: cut to its first {max_s:g} s"
    else:
        note = f"audio {n / SAMPLE_RATE:.1f} s"
    return Speech(samples, float(source), longer, note)


class JpegEncoder:
    """RGB frames [H, W, 3] uint8 -> JPEG bytes: OpenCV when installed (~2 ms for 512 px), else PyAV's MJPEG
    encoder (~11 ms; PyAV is everywhere the renders run, the GPU device included, OpenCV is not)."""

    def __init__(self, quality: int = 85) -> None:
        import importlib.util

        self.quality = int(quality)
        self._cv2 = importlib.util.find_spec("cv2") is not None
        self._ctx: object | None = None
        self._size: tuple[int, int] | None = None

    def __call__(self, frame: np.ndarray) -> bytes:
        if self._cv2:
            import cv2

            ok, jpg = cv2.imencode(".jpg", np.ascontiguousarray(frame[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            return jpg.tobytes()
        import av

        h, w = frame.shape[:2]
        if self._ctx is None or self._size != (w, h):
            ctx = av.CodecContext.create("mjpeg", "w")
            ctx.width, ctx.height, ctx.pix_fmt = w, h, "yuvj420p"
            ctx.time_base = Fraction(1, 25)
            q = max(2, min(31, round(2 + (100 - self.quality) * 29 / 99)))  # JPEG quality -> mjpeg qscale (2 best)
            ctx.options = {"qmin": str(q), "qmax": str(q)}
            self._ctx, self._size = ctx, (w, h)
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24").reformat(format="yuvj420p")
        return b"".join(bytes(p) for p in self._ctx.encode(vf))  # type: ignore[attr-defined]
