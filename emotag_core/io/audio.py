"""Audio: streaming decode of any container's audio to mono PCM at a fixed rate, and WAV I/O.

`decode_to_wav` streams (constant memory in length); `load_audio` / `read_wav` return whole
float32 arrays for the (short) clips downstream stages read. WAV files are 16-bit PCM mono.
"""
from __future__ import annotations

import struct
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_path

_HEADER = 44


class WavWriter:
    """Streams 16-bit mono PCM into a WAV file; `truncate(n)` cuts it to `n` samples."""

    def __init__(self, path: str | Path, sample_rate: int) -> None:
        self.path = Path(path)
        self.sample_rate = int(sample_rate)
        self.samples = 0
        self._fh: BinaryIO | None = open(self.path, "wb")
        self._fh.write(b"\0" * _HEADER)

    def write(self, pcm: np.ndarray) -> None:
        """Append int16 samples [N] (or float samples in [-1, 1], converted)."""
        assert self._fh is not None
        if pcm.dtype != np.int16:
            pcm = np.clip(np.round(np.asarray(pcm, np.float64) * 32767.0), -32768, 32767).astype(np.int16)
        self._fh.write(np.ascontiguousarray(pcm.reshape(-1)).astype("<i2").tobytes())
        self.samples += int(pcm.size)

    def truncate(self, n: int) -> None:
        """Keep only the first `n` samples."""
        assert self._fh is not None
        n = min(int(n), self.samples)
        self._fh.flush()
        self._fh.truncate(_HEADER + 2 * n)
        self._fh.seek(0, 2)
        self.samples = n

    def close(self) -> None:
        if self._fh is None:
            return
        data = 2 * self.samples
        self._fh.seek(0)
        self._fh.write(b"RIFF" + struct.pack("<I", 36 + data) + b"WAVE")
        self._fh.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, self.sample_rate, 2 * self.sample_rate, 2, 16))
        self._fh.write(b"data" + struct.pack("<I", data))
        self._fh.close()
        self._fh = None

    def __enter__(self) -> "WavWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_audio(path: str | Path, sample_rate: int = 16000, start_s: float | None = None) -> Iterator[np.ndarray]:
    """Stream the first audio track of any media file as int16 mono blocks [n] at `sample_rate`
    (stereo is down-mixed, any input rate resampled). With `start_s` (a container timestamp, e.g.
    the first video frame's), the stream is aligned to start there: leading audio is dropped, or
    silence is prepended when the audio starts later. InputError when there is no audio or it
    does not decode."""
    import av

    path = Path(path)
    try:
        c = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise InputError(path, f"not a readable media file ({exc})") from exc
    with c:
        if not c.streams.audio:
            raise InputError(path, "has no audio track; ingest needs the speech that drives the avatar",
                             "mux the audio into the video (e.g. `ffmpeg -i video -i speech.wav -c:v copy out.mp4`)")
        stream = c.streams.audio[0]
        rs = av.AudioResampler(format="s16", layout="mono", rate=int(sample_rate))
        skip: int | None = None if start_s is not None else 0

        def aligned(block: np.ndarray) -> np.ndarray:
            nonlocal skip
            if skip and skip > 0:
                cut = min(skip, block.size)
                skip -= cut
                return block[cut:]
            return block

        try:
            for fr in c.decode(stream):
                if skip is None:
                    lead = (fr.time or 0.0) - float(start_s or 0.0)
                    skip = int(round(-lead * sample_rate))
                    if skip < 0:
                        yield np.zeros(-skip, np.int16)
                for out in rs.resample(fr):
                    yield aligned(out.to_ndarray().reshape(-1))
            for out in rs.resample(None):
                yield aligned(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise InputError(path, f"audio decoding failed ({exc}); the file is truncated or corrupt") from exc


def decode_to_wav(path: str | Path, out: str | Path, sample_rate: int = 16000,
                  max_samples: int | None = None, start_s: float | None = None) -> int:
    """Decode a file's audio to a 16-bit mono WAV at `sample_rate` (streaming), keeping at most
    `max_samples`, aligned to container time `start_s` (see `iter_audio`). Returns the number of
    samples written. `out` is written in place (callers write into a temporary folder)."""
    with WavWriter(out, sample_rate) as w:
        for block in iter_audio(path, sample_rate, start_s):
            if max_samples is not None and w.samples + block.size > max_samples:
                w.write(block[: max(0, max_samples - w.samples)])
                break
            w.write(block)
        return w.samples


def truncate_wav(path: str | Path, n: int) -> None:
    """Cut a 16-bit mono WAV written by `WavWriter` to its first `n` samples (in place)."""
    path = Path(path)
    with wave.open(str(path), "rb") as wf:
        sr = wf.getframerate()
    w = WavWriter.__new__(WavWriter)
    w.path, w.sample_rate = path, sr
    w._fh = open(path, "r+b")  # noqa: SIM115
    w.samples = (path.stat().st_size - _HEADER) // 2
    w.truncate(n)
    w.close()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A PCM WAV -> (float32 samples [N] in [-1, 1], mono-mixed; sample rate)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wf:
            sr, ch, width, n = wf.getframerate(), wf.getnchannels(), wf.getsampwidth(), wf.getnframes()
            raw = wf.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise InputError(path, f"not a PCM WAV file ({exc})") from exc
    if width == 2:
        x = np.frombuffer(raw, "<i2").astype(np.float32) / 32768.0
    elif width == 4:
        x = np.frombuffer(raw, "<i4").astype(np.float32) / 2147483648.0
    elif width == 1:
        x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
    else:
        raise InputError(path, f"unsupported WAV sample width {width} bytes")
    return x.reshape(-1, ch).mean(axis=1), sr


def load_audio(path: str | Path, sample_rate: int = 16000) -> np.ndarray:
    """Any media file's first audio track -> float32 mono [N] at `sample_rate`."""
    blocks = list(iter_audio(path, sample_rate))
    if not blocks:
        return np.zeros(0, np.float32)
    return np.concatenate(blocks).astype(np.float32) / 32768.0


def write_wav(path: str | Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write float [-1, 1] or int16 mono samples [N] as a 16-bit WAV, atomically."""
    with atomic_path(path) as tmp, WavWriter(tmp, sample_rate) as w:
        w.write(np.asarray(samples))
