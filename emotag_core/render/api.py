"""Render entry points: one audio file -> one mp4 with that audio muxed in, and the live mode."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.progress import NO_PROGRESS, Progress, Steps
from emotag_core.render.audio import OfflineFeatures, StreamOptions, frame_blocks, iter_samples, probe_duration
from emotag_core.render.driver import Animator, CueTrack, RenderTrace, animate_stream, paced
from emotag_core.render.video import Mp4Writer

SAMPLE_RATE = 16000


def _blocks(audio: str | Path | Iterable[np.ndarray], fps: float) -> Iterable[np.ndarray]:
    if isinstance(audio, (str, Path)):
        return frame_blocks(iter_samples(audio, SAMPLE_RATE), SAMPLE_RATE, fps)
    return frame_blocks(audio, SAMPLE_RATE, fps)


def _offline(audio: str | Path | Iterable[np.ndarray], features: Any, fps: float
             ) -> tuple[list[np.ndarray], OfflineFeatures]:
    """The audio's per-frame blocks and their whole-clip features (`OfflineFeatures`: what the GRMN was trained on)."""
    blocks = list(_blocks(audio, fps))
    return blocks, (features if isinstance(features, OfflineFeatures) else OfflineFeatures.compute(features, blocks, fps))


def render_to_mp4(animator: Animator, audio: str | Path | Iterable[np.ndarray], out: str | Path, features: Any,
                  cues: CueTrack, fps: float = 25.0, batch_size: int = 8, feature_context: int = 4,
                  progress: Progress = NO_PROGRESS, on_frame: Callable[[int, np.ndarray], None] | None = None,
                  stream_options: StreamOptions | None = None, offline: bool = False) -> RenderTrace:
    """Render `audio` (a file of any common format, or float32 16 kHz blocks) to an H.264/AAC mp4.

    Frames stream into the encoder as they are made; `out` appears only when complete. `offline`: the
    features of the whole audio are computed first (`render.audio.OfflineFeatures`, the audio_features stage's
    way: what the GRMN was trained on) instead of streamed as the audio is read.
    progress(frames written, frames the audio's duration gives (None when unknown)); the last call has the count.
    """
    total = None
    if isinstance(audio, (str, Path)):
        d = probe_duration(audio)
        total = None if d is None else int(np.ceil(d * fps))
    steps = Steps(progress, total)
    with Mp4Writer(out, fps=fps, size=(animator.size, animator.size), sample_rate=SAMPLE_RATE) as w:
        def sink(t: int, frame: np.ndarray, samples: np.ndarray) -> None:
            w.write(frame, samples)
            if on_frame is not None:
                on_frame(t, frame)

        blocks, features = _offline(audio, features, fps) if offline else (_blocks(audio, fps), features)
        trace = animate_stream(animator, blocks, features, cues, sink, batch_size=batch_size,
                               fps=fps, feature_context=feature_context, stream_options=stream_options,
                               progress=steps)
    steps.finish()
    return trace


def render_stream(animator: Animator, audio: str | Path | Iterable[np.ndarray], features: Any, cues: CueTrack,
                  out: str | Path | None = None, on_frame: Callable[[int, np.ndarray], None] | None = None,
                  realtime: bool = True, fps: float = 25.0, feature_context: int = 2,
                  stream_options: StreamOptions | None = None, offline: bool = False) -> RenderTrace:
    """Live mode (`emotag render --stream`): audio read incrementally, frames out one by one.

    audio: a file (read at real-time pace when `realtime`) or an iterable of float32 16 kHz
    sample blocks (a live source, consumed as it arrives). Each frame goes to `on_frame(t, image)`
    and, if `out` is given, into an mp4 with the audio. The returned trace holds the per-frame
    latency (frame out - arrival of its audio) and feature time, the lookahead, the time to the first
    frame (from the start and from the first audio) and whether it came before the input ended.
    Whisper features stream with `stream_options` (`render.audio.WhisperStream`); `offline`: the whole audio's
    features are computed first instead (a file rendered without `--stream`, as `render_to_mp4(offline=True)`).
    """
    blocks, features = _offline(audio, features, fps) if offline else (_blocks(audio, fps), features)
    if realtime:
        blocks = paced(blocks, fps)

    def run(sink: Callable[[int, np.ndarray, np.ndarray], None]) -> RenderTrace:
        return animate_stream(animator, blocks, features, cues, sink, batch_size=1, fps=fps,
                              feature_context=feature_context, stream_options=stream_options)

    if out is None:
        return run(lambda t, f, s: on_frame(t, f) if on_frame is not None else None)
    with Mp4Writer(out, fps=fps, size=(animator.size, animator.size), sample_rate=SAMPLE_RATE) as w:
        def sink(t: int, frame: np.ndarray, samples: np.ndarray) -> None:
            w.write(frame, samples)
            if on_frame is not None:
                on_frame(t, frame)

        return run(sink)
