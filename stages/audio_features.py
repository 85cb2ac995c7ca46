"""DVC stage `audio_features@<id>`: one audio feature vector per video frame (paper Sec. 3.2.1, A)."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from emotag_core.config import AudioFeaturesConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableWriter
from emotag_core.teachers import audio
from stages.common import Paths, main_for, need, params, stage, sweep

log = logging.getLogger("emotag.audio_features")


def _bar(label: str, enabled: bool):  # noqa: ANN202 - rich Progress
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TextColumn("frames"),
                    TimeRemainingColumn(), disable=not enabled)


def run(frames_path: Path, audio_for: Callable[[str], Path], out_path: Path, cfg: AudioFeaturesConfig,
        progress: bool = True) -> int:
    """Features of every frame of a frame store, from each clip's 16 kHz wav, into `out_path` (atomic).

    Rows follow the frame store exactly (same clips, same frames, same order). Returns rows written.
    """
    store = FrameStore(frames_path)
    keys = store.keys
    clip_col = keys.column("clip_id").to_numpy(zero_copy_only=False).astype(str)
    frame_col = keys.column("frame").to_numpy().astype(np.int64)
    clips = store.clip_ids
    wavs = {c: audio_for(c) for c in clips}
    missing = [str(p) for p in wavs.values() if not p.exists()]
    if missing:
        raise InputError(missing[0], f"audio of {len(missing)} clip(s) missing",
                         "re-run ingest (it writes one 16 kHz wav per clip)")
    try:
        teacher = audio.load(cfg.backend, cfg, fps=store.fps)  # fails here if weights are missing
    except ConfigError as exc:  # e.g. a frame rate the backend cannot align to: name the table it came from
        raise InputError(frames_path, f"frame store says {store.fps:g} fps: {exc}",
                         "re-run ingest (ingest.fps: 25)") from exc
    meta = {"fps": store.fps, "frame_size": store.meta["frame_size"], "backend": teacher.name,
            "backend_version": teacher.version, "feature_dim": int(teacher.feature_dim),
            "sample_rate": audio.SAMPLE_RATE, "window": int(cfg.window),
            "window_offsets": audio.window_offsets(cfg.window).tolist(),
            "alignment": "row i describes the audio of frame i's display interval [i/fps, (i+1)/fps)"}
    if hasattr(teacher, "describe"):  # rate, engine, model checksum, windowing, pooling (whisper)
        meta.update(teacher.describe())
    with TableWriter(out_path, "audio_features", meta) as out, _bar("audio_features", progress) as bar:
        task = bar.add_task("audio_features", total=len(store))
        for clip in clips:
            rows = np.flatnonzero(clip_col == clip)
            frames = frame_col[rows]
            if frames.min() < 0:
                raise InputError(frames_path, f"clip `{clip}` has negative frame numbers", "re-run ingest")
            n = int(frames.max()) + 1
            raw = audio.read_audio(wavs[clip])
            if len(raw) < audio.SAMPLE_RATE / store.fps:
                raise InputError(wavs[clip], f"audio of clip `{clip}` is {len(raw) / audio.SAMPLE_RATE * 1000:.1f} ms, "
                                 f"shorter than one video frame ({1000 / store.fps:.0f} ms)",
                                 "re-run ingest (the clip's sound track is missing or empty)")
            if not np.any(np.abs(raw) > audio.SILENCE_PEAK) and not getattr(teacher, "warns_on_silence", False):
                log.warning("%s: audio of clip `%s` is all silence (peak <= %g); its features describe silence",
                            wavs[clip], clip, audio.SILENCE_PEAK)
            wav = audio.fit_length(raw, n, store.fps)
            feats = teacher.features(wav, n, store.fps)              # [n, D]
            if not np.isfinite(feats).all():
                raise InputError(wavs[clip], f"{teacher.name} features of clip `{clip}` are not finite",
                                 "replace the audio or use another audio_features.backend")
            out.write({"clip_id": clip_col[rows], "frame": frames.astype(np.int32), "feature": feats[frames]})
            bar.advance(task, len(rows))
        return out.rows


@stage("audio_features")
def main(identity: str) -> None:
    p = params().audio_features
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    run(frames, paths.audio, paths.table("audio_features"), p)


if __name__ == "__main__":
    main_for(main)
