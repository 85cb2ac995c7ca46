"""Driving audio for rendering: any audio or video file, streamed in video-frame-sized blocks.

Decoding goes through PyAV (`emotag_core.io.audio.iter_audio`: any container/codec, resampled
to 16 kHz mono), so an hour-long file is never held in memory. `FeatureStream` turns those
blocks into per-frame audio features incrementally, running the feature backend on chunks with
audio context on both sides so the result matches a whole-file run away from the ends. Whisper's
encoder attends over a whole 30 s window, so its features stream through `WhisperStream` instead
(bounded lookahead and left context on the offline window grid); `feature_stream` picks the one.
Offline renders (render@<id>) drive the avatar from `OfflineFeatures` instead: the whole clip's features,
computed the way the audio_features stage computes them, so a file's render sees what the GRMN was trained on.
"""
from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
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

    @property
    def lookahead_frames(self) -> int:
        """Frames of audio after a frame's end that may arrive before its features are out."""
        return self.context + self.chunk - 1

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


@dataclass(frozen=True)
class StreamOptions:
    """How `emotag render --stream` computes Whisper features (`render.stream_*`; see `WhisperStream`)."""

    lookahead_s: float = 0.5
    """A frame's features are out once this much audio after the frame's end has arrived (at most)."""
    left_context_s: float = 4.0
    """Audio before a chunk that its encode still sees (older audio reads as silence)."""
    chunk_s: float = 0.2
    """Frames are encoded this many seconds at a time (one encoder call per chunk; <= lookahead_s)."""
    padded: bool = True
    """Each encode is a full 30 s window (Whisper's input, as offline); false: only the context's
    positions (PyTorch port only; cheaper on a CPU, further from the offline features)."""


class OfflineFeatures:
    """A whole clip's features, computed before its render as the audio_features stage computes them
    (`backend.features` on all of the audio; [T, D]). `feature_stream` replays them frame by frame (the
    `FeatureStream` interface, no lookahead). An offline render holds its clip's audio (64 KB per second)
    and these rows in memory; the live paths (`render --stream`, `emotag serve`) stream instead."""

    name = "offline"

    def __init__(self, features: np.ndarray, source: str = "backend") -> None:
        f = np.asarray(features, np.float32)
        if f.ndim != 2 or not np.isfinite(f).all():
            raise InputError(None, f"precomputed audio features must be a finite [T, D] array, got shape {f.shape}",
                             "recompute them with the identity's audio_features backend")
        self.features, self.feature_dim, self.source = f, int(f.shape[1]), source  # [T, D]

    @classmethod
    def compute(cls, backend: Any, blocks: list[np.ndarray], fps: float) -> OfflineFeatures:
        """`backend.features` over the concatenated per-frame blocks [sample_rate / fps] -> one row per block."""
        if not blocks:
            raise InputError(None, "the driving audio is empty (0 frames)", "pass a file with sound")
        return cls(backend.features(np.concatenate(blocks), len(blocks), fps), getattr(backend, "name", "backend"))

    def stream(self) -> _Replay:
        return _Replay(self.features)


class _Replay:
    """The `FeatureStream` interface over precomputed rows: each pushed block releases its own frame's row."""

    lookahead_frames = 0

    def __init__(self, features: np.ndarray) -> None:
        self.features, self.feature_dim, self.pushed = features, features.shape[1], 0

    def push(self, block: np.ndarray) -> np.ndarray:
        i = self.pushed
        if i >= len(self.features):
            raise InputError(None, f"audio frame {i} has no precomputed features (they cover {len(self.features)} "
                                   "frames)", "compute them over all of the audio that is rendered")
        self.pushed += 1
        return self.features[i: i + 1]

    def finish(self) -> np.ndarray:
        return np.zeros((0, self.feature_dim), np.float32)


def feature_stream(backend: Any, fps: float, context: int, chunk: int, options: StreamOptions | None = None) -> Any:
    """The incremental features of `backend`: `WhisperStream` for whisper, a replay of `OfflineFeatures`, else
    the generic `FeatureStream`."""
    if isinstance(backend, OfflineFeatures):
        return backend.stream()
    if getattr(backend, "name", "") == "whisper":
        o = options or StreamOptions()
        return WhisperStream(backend, fps, o.lookahead_s, o.left_context_s, o.chunk_s, o.padded)
    return FeatureStream(backend, fps=fps, context=context, chunk=chunk)


class WhisperStream:
    """Incremental Whisper encoder features with a bounded lookahead (the `FeatureStream` interface).

    The offline path (`WhisperFeatures.features`) encodes 30 s windows on a grid (starts 0, S, 2S, ...;
    S = window - overlap) cross-faded over their overlaps; the states carry their position in the window.
    Here the same grid and positions are kept, but each encode sees only the audio from `left_context_s`
    before the chunk up to what has arrived; the rest of the window reads as silence (the log-mel of
    zeros, as offline pads). Frame i (display interval [i, i + 1) / fps) is emitted at the latest when
    `lookahead_s` of audio after its end has arrived: a chunk of `chunk_s` is encoded once its first
    frame reaches that bound, so each frame has between lookahead - chunk + 1 frame and lookahead of
    future audio. The log-mel clamp (peak - 8) uses the peak of the audio so far (offline: the clip's).
    """

    def __init__(self, backend: Any, fps: float = 25.0, lookahead_s: float = 0.5, left_context_s: float = 4.0,
                 chunk_s: float = 0.2, padded: bool = True) -> None:
        from emotag_core.errors import ConfigError
        from emotag_core.teachers import whisper as W

        self.W, self.backend, self.fps = W, backend, float(fps)
        self.lookahead = int(np.floor(lookahead_s * fps + 1e-6))          # frames
        self.chunk = max(1, int(round(chunk_s * fps)))                       # frames
        self.left = int(round(left_context_s * W.STATE_HZ))                  # states
        if self.lookahead < 1 or self.chunk > self.lookahead:
            raise ConfigError(f"render.stream_lookahead_s ({lookahead_s}) must be >= one frame and >= "
                              f"render.stream_chunk_s ({chunk_s})")
        if not padded and backend.engine != "torch":
            raise ConfigError("render.stream_padded: false needs audio_features.whisper_engine: torch")
        if self.left < 0:
            raise ConfigError(f"render.stream_left_context_s must be >= 0, got {left_context_s}")
        self.padded = padded
        self.window, self.step = backend.window, backend.window - backend.overlap   # states
        self.feature_dim = backend.feature_dim
        self.pad = W.N_FFT // 2
        self.xp = np.zeros(0, np.float32)         # padded samples from mel frame `self.m0` on (xp coords 160 m)
        self.head = np.zeros(0, np.float32)       # samples before the start reflection is possible
        self.started = False
        self.m0 = 0                               # first mel frame not computed
        self.raw = np.zeros((0, W.N_MELS), np.float32)   # log10 mel of frames [self.r0, self.m0)
        self.r0 = 0
        self.peak = -np.inf
        self.samples = 0
        self.pushed = 0                           # frames of audio
        self.done = 0                             # frames emitted
        self.compute_s: list[float] = []          # per emitted frame: seconds of the encode that made it

    # -- audio -> log10 mel frames ------------------------------------------------------------

    def _mel(self, final: bool = False) -> None:
        """Compute the mel frames whose 400-sample window has arrived (final: the clip's end reflection)."""
        W = self.W
        if not self.started:
            if len(self.head) > self.pad or (final and len(self.head)):
                x = self.head
                lead = x[self.pad:0:-1] if len(x) > self.pad else np.zeros(self.pad, np.float32)
                self.xp, self.started = np.concatenate([lead, x]), True
            else:
                return
        xp = self.xp
        if final:
            n_total = self.samples // W.HOP                                   # offline: N // 160 frames
            tail = self.head[-2:-self.pad - 2:-1] if len(self.head) > self.pad else np.zeros(self.pad, np.float32)
            xp = np.concatenate([xp, tail])
            m1 = n_total
        else:
            m1 = self.m0 + max(0, (len(xp) - W.N_FFT) // W.HOP + 1)
        if m1 <= self.m0:
            return
        new = W.log10_mel_frames(xp[: (m1 - self.m0 - 1) * W.HOP + W.N_FFT])   # [m1 - m0, 80]
        self.peak = max(self.peak, float(new.max()))
        self.raw = np.concatenate([self.raw, new])
        self.xp = self.xp[(m1 - self.m0) * W.HOP:]
        self.m0 = m1

    def _add_audio(self, block: np.ndarray) -> None:
        x = np.asarray(block, np.float32).reshape(-1)
        if not np.isfinite(x).all():
            raise InputError(None, f"audio frame {self.pushed} holds NaN or Inf samples", "check the audio source")
        self.samples += len(x)
        self.head = np.concatenate([self.head, x])[-(self.pad + 2):] if self.started else np.concatenate([self.head, x])
        if self.started:
            self.xp = np.concatenate([self.xp, x])
        self._mel()

    # -- encodes --------------------------------------------------------------------------------

    def _encode(self, base: int, a: int, b: int) -> np.ndarray:
        """States [a, b) of the grid window starting at state `base`, seeing only mel of states [a, b) -> [b - a, D]."""
        W = self.W
        mel = W.normalise_mel(self.raw[2 * a - self.r0: 2 * b - self.r0], self.peak)     # [80, 2 (b - a)]
        if not self.padded:
            import torch

            be = self.backend
            t = torch.from_numpy(np.ascontiguousarray(mel[None])).to(be.device, be.torch_dtype)
            return W.torch_encode(be.enc, t, offset=a - base)[0].float().cpu().numpy()
        floor = max((self.peak + 4.0) / 4.0 - 2.0, -1.5)                   # the log-mel of zeros, as offline
        x = np.full((W.N_MELS, 2 * self.backend.positions), floor, np.float32)
        x[:, 2 * (a - base): 2 * (b - base)] = mel
        return self.backend.encode(x, pad=False)[a - base: b - base]

    def _emit(self, f0: int, f1: int, final: bool) -> np.ndarray:
        """Features of frames [f0, f1) from the audio arrived so far -> [f1 - f0, D]."""
        t0 = time.perf_counter()
        W = self.W
        avail = (self.m0 // 2) if not final else (self.m0 + 1) // 2          # states whose mel has arrived
        j0 = int(np.floor(f0 / self.fps * W.STATE_HZ))
        j1 = min(int(np.ceil(f1 / self.fps * W.STATE_HZ)) + 1, max(avail, j0 + 1))
        if final and self.m0 % 2:                                           # offline repeats an odd last frame
            self.raw = np.concatenate([self.raw, self.raw[-1:]])
            self.m0 += 1
        a = max(0, j0 - self.left)
        h = np.zeros((j1 - j0, self.feature_dim), np.float32)
        wsum = np.zeros(j1 - j0, np.float32)
        k0 = max(0, (j0 - self.window) // self.step + 1)
        for k in range(k0, j1 // self.step + 1):
            base = k * self.step
            lo, hi = max(j0, base), min(j1, base + self.window)
            if lo >= hi:
                continue
            w = self._fade(k, np.arange(lo, hi))                               # [hi - lo]
            states = self._encode(base, max(a, base), min(avail, base + self.window))
            h[lo - j0: hi - j0] += w[:, None] * states[lo - max(a, base): hi - max(a, base)]
            wsum[lo - j0: hi - j0] += w
        h /= np.maximum(wsum, 1e-6)[:, None]
        out = W.pool_to_frames(h, f1 - f0, self.fps, first_frame=f0, first_state=j0)
        keep = 2 * max(0, int(np.floor(f1 / self.fps * W.STATE_HZ)) - self.left - 2)   # mel frames never read again
        if keep > self.r0:
            self.raw, self.r0 = self.raw[keep - self.r0:], keep
        self.compute_s += [time.perf_counter() - t0] * (f1 - f0)
        return out

    def _fade(self, k: int, j: np.ndarray) -> np.ndarray:
        """Cross-fade weight of grid window k at states j: the offline ramps (`crossfade_weights`) with
        neighbours on both sides, as on an endless grid."""
        s = k * self.step
        starts = ([s - self.step] if k > 0 else []) + [s, s + self.step]
        w = self.W.crossfade_weights(starts, self.window, s + 2 * self.window)[1 if k > 0 else 0]  # [window]
        return w[j - s]

    # -- the FeatureStream interface ------------------------------------------------------------

    @property
    def lookahead_frames(self) -> int:
        """Frames of audio after a frame's end that may arrive before its features are out."""
        return self.lookahead

    def push(self, block: np.ndarray) -> np.ndarray:
        """Add one frame of audio [sample_rate / fps]; returns the features of the frames now final [k, D]."""
        self._add_audio(block)
        self.pushed += 1
        outs = []
        while self.pushed >= self.done + 1 + self.lookahead:                   # frame `done` is at its bound
            f1 = min(self.done + self.chunk, self.pushed)
            outs.append(self._emit(self.done, f1, final=False))
            self.done = f1
        return np.concatenate(outs) if outs else np.zeros((0, self.feature_dim), np.float32)

    def finish(self) -> np.ndarray:
        """Features of all remaining frames [k, D] (the audio has ended)."""
        if self.done >= self.pushed:
            return np.zeros((0, self.feature_dim), np.float32)
        self._mel(final=True)
        if self.m0 == 0:
            raise InputError(None, f"audio is {self.samples / 16:.1f} ms, too short for Whisper features",
                             "check the audio source")
        out = self._emit(self.done, self.pushed, final=True)
        self.done = self.pushed
        return out
