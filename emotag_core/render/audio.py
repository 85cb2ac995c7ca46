"""Driving audio for rendering: any audio or video file, streamed in video-frame-sized blocks.

Decoding goes through PyAV (`emotag_core.io.audio.iter_audio`: any container/codec, resampled
to 16 kHz mono), so an hour-long file is never held in memory. `FeatureStream` turns those
blocks into per-frame audio features incrementally, running the feature backend on chunks with
audio context on both sides so the result matches a whole-file run away from the ends.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError


def probe_duration(path: str | Path) -> float | None:
    """Duration (s) of a media file's first audio stream from its header, or None if unknown."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as c:
            if not c.streams.audio:
                raise InputError(path, "has no audio stream to drive the avatar",
                                 "pass a file with speech (wav, mp3, m4a, flac, ogg, or a video with sound)")
            s = c.streams.audio[0]
            if s.duration is not None and s.time_base is not None:
                return float(s.duration * s.time_base)
            if c.duration is not None:
                return c.duration / 1e6
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        raise InputError(path, f"not a readable audio or video file ({exc})") from exc
    return None


def iter_samples(path: str | Path, sample_rate: int = 16000) -> Iterator[np.ndarray]:
    """Stream a file's audio as float32 mono blocks [n] in [-1, 1] (any container, resampled)."""
    from emotag_core.io.audio import iter_audio

    p = Path(path)
    if not p.is_file():
        raise InputError(p, "driving audio file not found", "check render.audio in params.yaml")
    for block in iter_audio(p, sample_rate):
        yield block.astype(np.float32) / 32768.0


def frame_blocks(samples: Iterable[np.ndarray], sample_rate: int = 16000, fps: float = 25.0
                 ) -> Iterator[np.ndarray]:
    """Re-block a sample stream into one block per video frame ([sample_rate / fps] each).

    The last block is zero-padded to a full frame, so the video covers all of the audio.
    """
    per = sample_rate / fps
    if abs(per - round(per)) > 1e-9:
        raise InputError(None, f"sample rate {sample_rate} is not a whole number of samples per frame at {fps} fps")
    n = int(round(per))
    buf = np.zeros(0, np.float32)
    for block in samples:
        buf = np.concatenate([buf, np.asarray(block, np.float32).reshape(-1)])
        while len(buf) >= n:
            yield buf[:n]
            buf = buf[n:]
    if len(buf):
        yield np.pad(buf, (0, n - len(buf)))


class FeatureStream:
    """Incremental per-frame audio features from per-frame audio blocks.

    `push(block)` returns the features [k, D] of the frames that became final (those with
    `context` frames of audio after them); `finish()` returns the rest. Chunks of `chunk`
    frames are computed with `context` frames of audio on both sides.
    """

    def __init__(self, backend: Any, fps: float = 25.0, context: int = 4, chunk: int = 8) -> None:
        self.backend = backend
        self.fps = fps
        self.context = int(context)
        self.chunk = int(chunk)
        self.blocks: list[np.ndarray] = []  # audio of frames [first_kept, pushed)
        self.first_kept = 0
        self.done = 0  # frames whose features were emitted
        self.pushed = 0

    def _compute(self, start: int, end: int) -> np.ndarray:
        lo = max(0, start - self.context)
        hi = min(self.pushed, end + self.context)
        audio = np.concatenate(self.blocks[lo - self.first_kept: hi - self.first_kept])
        feats = self.backend.features(audio, hi - lo, self.fps)  # [hi - lo, D]
        out = np.asarray(feats[start - lo: end - lo], np.float32)
        drop = max(0, end - self.context) - self.first_kept  # keep left context for the next chunk
        if drop > 0:
            del self.blocks[:drop]
            self.first_kept += drop
        return out

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add one frame of audio; returns features of the frames now final ([k, D], k may be 0)."""
        self.blocks.append(np.asarray(block, np.float32))
        self.pushed += 1
        outs = []
        while self.pushed - self.done >= self.chunk + self.context:
            outs.append(self._compute(self.done, self.done + self.chunk))
            self.done += self.chunk
        return np.concatenate(outs) if outs else np.zeros((0, self.backend.feature_dim), np.float32)

    def finish(self) -> np.ndarray:
        """Features of all remaining frames ([k, D])."""
        if self.done >= self.pushed:
            return np.zeros((0, self.backend.feature_dim), np.float32)
        out = self._compute(self.done, self.pushed)
        self.done = self.pushed
        return out
