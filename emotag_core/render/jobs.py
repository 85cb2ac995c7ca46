"""The renders of one adapted target identity (the `render@<id>` job, paper Sec. 3.3).

`render_identity` writes one `<name>.mp4` per driving audio (25 fps, H.264 + AAC with that audio
muxed in) and `render.json` (per render: audio, cue source and how short cues were filled, per-frame
gate / emotion / jaw traces, FPS) into a folder, atomically. Driving audio: `render.audio` (any audio
or video files); by default the identity's held-out audio (`heldout`, cues from the same held-out
frames: self-reconstruction; which frames: `emotag_core.split.Split`) plus a cross-language espeak-ng
clip (`xlang_<voice>`, cues from the adaptation clip). `stream_identity` is the live mode.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_dir
from emotag_core.io.tables import UPPER_AUS, TableReader, column_array
from emotag_core.progress import NO_PROGRESS, Part, Progress
from emotag_core.render.driver import Animator, CueTrack, RenderTrace
from emotag_core.split import Split

SAMPLE_RATE = 16000


@dataclass(frozen=True)
class TargetFiles:
    """Where one target identity's tables and audio are (the caller has checked they exist)."""

    identity: str
    processed: Path
    """Folder of the identity's tables (`<table>.parquet`) and `audio/<clip>.wav`."""

    def table(self, name: str) -> Path:
        return self.processed / f"{name}.parquet"

    def audio(self, clip: str) -> Path:
        return self.processed / "audio" / f"{clip}.wav"

    def split(self, adapt: Any, evaluate: Any | None, fps: float) -> Split:
        """The identity's adaptation / held-out split (from its frame store's keys)."""
        from emotag_core.io.frames import FrameStore

        return Split.from_config(adapt, evaluate, FrameStore(self.table("frames")).keys, fps)


def clip_rows(path: Path, table: str, clip: str, columns: list[str]) -> tuple[np.ndarray, Any]:
    """Rows of one clip of a per-identity table, in frame order -> (frames [N], pyarrow table)."""
    import pyarrow.compute as pc

    t = TableReader(path, table).read(columns=["clip_id", "frame", *columns])
    t = t.filter(pc.equal(t.column("clip_id"), clip))
    if t.num_rows == 0:
        raise InputError(path, f"no rows for clip `{clip}`", "check render.cue_clip")
    order = np.argsort(t.column("frame").to_numpy())
    t = t.take(order)
    return t.column("frame").to_numpy(), t


def cue_track(files: TargetFiles, clip: str, start: int, end: int | None, mode: str) -> CueTrack:
    """Head pose (flame table) and upper-face AUs (aus table) of frames [start, end) of `clip`."""
    f_fr, ft = clip_rows(files.table("flame"), "flame", clip, ["rot", "trans"])
    a_fr, at = clip_rows(files.table("aus"), "aus", clip, list(UPPER_AUS))
    frames = np.intersect1d(f_fr, a_fr)
    frames = frames[(frames >= start) & ((frames < end) if end is not None else True)]
    if len(frames) == 0:
        raise InputError(files.table("flame"), f"clip `{clip}` has no tracked frames in [{start}, {end})",
                         "choose another render.cue_clip or lower adapt.eval_from_s")
    fi = np.searchsorted(f_fr, frames)
    ai = np.searchsorted(a_fr, frames)
    aus = np.stack([at.column(a).to_numpy() for a in UPPER_AUS], axis=1)[ai]
    return CueTrack(rot=column_array(ft, "rot")[fi], trans=column_array(ft, "trans")[fi], aus=aus.astype(np.float32),
                    mode=mode,  # type: ignore[arg-type]
                    source=f"{files.identity}/{clip} frames {int(frames[0])}-{int(frames[-1])}")


def skip_samples(blocks: Iterable[np.ndarray], n: int) -> Iterator[np.ndarray]:
    """Drop the first `n` samples of a block stream."""
    for b in blocks:
        if n >= len(b):
            n -= len(b)
            continue
        yield b[n:]
        n = 0


def espeak_clip(voice: str, text: str, out: Path) -> Path:
    """Speech from espeak-ng (installed system package) into a WAV."""
    try:
        subprocess.run(["espeak-ng", "-v", voice, "-w", str(out), text], check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise InputError(None, "espeak-ng is not installed (needed for the default cross-language clip)",
                         "install it (Debian: apt-get install espeak-ng) or set render.cross_language_voice: null") from exc
    except subprocess.CalledProcessError as exc:
        raise InputError(None, f"espeak-ng failed for voice `{voice}`: {exc.stderr.strip()}",
                         "see `espeak-ng --voices` and set render.cross_language_voice") from exc
    return out


@dataclass
class RenderJob:
    """One driving audio and the cues that go with it."""

    name: str
    kind: str  # heldout | cross_language | file
    audio: Callable[[], Iterable[np.ndarray] | Path]
    cues: Callable[[], CueTrack]
    note: str


def plan_renders(files: TargetFiles, split: Split, render: Any, scratch: Path,
                 log: Callable[[str], None] = print) -> list[RenderJob]:
    """The renders of a target identity (see module doc); render: the `RenderConfig`."""
    from emotag_core.render.audio import iter_samples

    fps, clip, ident = split.fps, split.adapt_clip, files.identity
    cue_clip = render.cue_clip or clip
    adapt_cues = lambda: cue_track(files, cue_clip, 0, split.adapt_frames if cue_clip == clip else None,  # noqa: E731
                                   render.cue_mode)
    out: list[RenderJob] = []
    if not render.audio:
        n, h0, wav = split.adapt_clip_frames, split.heldout_start, files.audio(clip)
        if h0 is None:
            log(f"render@{ident}: clip `{clip}` is {n / fps:.1f} s, all of it inside the adaptation "
                f"part (adapt.train_seconds {split.train_seconds:g} s): no held-out render")
        else:
            if split.shortened:
                log(f"render@{ident}: clip `{clip}` is {n / fps:.1f} s, shorter than adapt.eval_from_s "
                    f"({split.eval_from_s:g} s): holding out from {h0 / fps:g} s, after the adaptation part")
            out.append(RenderJob(
                "heldout", "heldout",
                lambda: skip_samples(iter_samples(wav, SAMPLE_RATE), int(round(h0 * SAMPLE_RATE / fps))),
                lambda: cue_track(files, clip, h0, None, "hold"),
                f"held-out audio of {clip} from {h0 / fps:g} s; cues from the same frames"))
        if render.cross_language_voice:
            v = render.cross_language_voice
            path = scratch / f"xlang_{v}.wav"
            out.append(RenderJob(f"xlang_{v}", "cross_language",
                                 lambda: espeak_clip(v, render.cross_language_text, path), adapt_cues,
                                 f"espeak-ng voice `{v}`; cues from {cue_clip}"))
    for a in render.audio:
        src = Path(a)
        if not src.is_file():
            raise InputError(src, "driving audio file not found", "fix render.audio in params.yaml")
        out.append(RenderJob(src.stem, "file", lambda src=src: src, adapt_cues, f"{src}; cues from {cue_clip}"))
    names = [j.name for j in out]
    if len(set(names)) != len(names):
        raise InputError(None, f"render.audio: two driving files share a name ({names})", "rename one of them")
    return out


def trace_record(job: RenderJob, trace: RenderTrace) -> dict[str, Any]:
    """render.json's entry of one render."""
    return {"kind": job.kind, "note": job.note, **trace.summary(), "g": trace.g, "g_pred": trace.g_pred,
            "emotion": trace.emotion, "jaw_open": trace.jaw_open, "audio_rms": trace.audio_energy,
            "cue_index": trace.cue_index}


def render_oracle(files: TargetFiles, split: Split, animator: Animator, out: Path, batch_size: int = 8) -> int:
    """The held-out frames driven by the TRACKED expression, jaw and head pose (flame table) instead of the
    audio: what the adapted appearance alone gives (issue 18's oracle row). Writes `out` (mp4, the clip's
    own audio) and returns the frames written (0 when nothing is held out)."""
    import torch

    from emotag_core.render.audio import frame_blocks, iter_samples
    from emotag_core.render.video import Mp4Writer

    if split.heldout is None:
        return 0
    clip, h0 = split.heldout.clip, split.heldout_start
    fr, t = clip_rows(files.table("flame"), "flame", clip, ["expr", "jaw", "rot", "trans"])
    keep = (fr >= h0) & ((fr < split.heldout.end) if split.heldout.end is not None else True)
    cols = {k: torch.as_tensor(column_array(t, k)[keep], dtype=torch.float32) for k in ("expr", "jaw", "rot", "trans")}
    sc, dev, n = animator.scene, animator.device, int(keep.sum())
    layered = {"out_size": animator.size} if getattr(sc, "has_layers", False) else {}
    wave = iter_samples(files.audio(clip), 16000)
    blocks = frame_blocks(skip_samples(wave, int(round(h0 * 16000 / split.fps))), 16000, split.fps)
    with Mp4Writer(out, fps=split.fps, size=(animator.size, animator.size)) as w, torch.no_grad():
        for s0 in range(0, n, batch_size):
            b = {k: v[s0:s0 + batch_size].to(dev) for k, v in cols.items()}
            img = sc.render(b["expr"], b["jaw"], b["rot"], b["trans"], None, animator.raster_size, **layered)["image"]
            if img.shape[-1] != animator.size:
                img = torch.nn.functional.interpolate(img, size=(animator.size,) * 2, mode="bilinear", align_corners=False)
            for f in (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy():
                w.write(f, next(blocks, None))
    return n


def render_identity(files: TargetFiles, split: Split, animator: Animator, features: Any, render: Any,
                    out: Path, log: Callable[[str], None] = print,
                    progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Every render of `plan_renders` into the folder `out` (replaced atomically) -> the render.json record.

    features: the audio feature backend the identity's GRMN was trained with; render: the `RenderConfig`.
    progress(frames of all renders so far, None, render=name); the last call is (frames, frames).
    """
    from emotag_core.io.tables import EMOTION_LABELS
    from emotag_core.render.adapted import animator_kind
    from emotag_core.render.api import render_to_mp4

    fps = split.fps
    record: dict[str, Any] = {"identity": files.identity, "fps": fps, "size": animator.size,
                              "raster_size": animator.raster_size, "gate_scale": render.gate_scale,
                              "gate_override": render.gate_override, "device": str(animator.device),
                              "animator": animator_kind(animator), "emotion_labels": list(EMOTION_LABELS),
                              "features": "offline: each render's features over all of its audio, computed before it "
                                          "(render.audio.OfflineFeatures, as audio_features@<id> computes them)",
                              "renders": {}}
    out.parent.mkdir(parents=True, exist_ok=True)  # scratch as a `.tmp-` sibling: swept after a kill
    with tempfile.TemporaryDirectory(prefix=".tmp-render-scratch-", dir=out.parent) as scratch, \
            atomic_dir(out) as tmp:
        done = 0
        for job in plan_renders(files, split, render, Path(scratch), log):
            part = Part(progress, done, render=job.name)
            trace = render_to_mp4(animator, job.audio(), Path(tmp) / f"{job.name}.mp4", features, job.cues(),
                                  fps=fps, batch_size=render.batch_size, progress=part,
                                  stream_options=stream_options(render), offline=True)
            done = part.done
            log(f"render@{files.identity}: {job.name}.mp4  {trace.n_frames} frames, {trace.fps:.1f} FPS; "
                f"{trace.cue_note}")
            record["renders"][job.name] = trace_record(job, trace)
        if "heldout" in record["renders"]:
            n = render_oracle(files, split, animator, Path(tmp) / "oracle.mp4", render.batch_size)
            record["oracle"] = {"frames": n, "note": "held-out frames from the tracked expression, jaw and pose "
                                                     "(the adapted appearance without the audio-driven motion)"}
            log(f"render@{files.identity}: oracle.mp4  {n} frames (tracked expression/jaw/pose)")
            done += n
        progress(done, done)
        (Path(tmp) / "render.json").write_text(json.dumps(record, indent=1), encoding="utf-8")
    return record


def stream_identity(files: TargetFiles, animator: Animator, features: Any, cue_clip: str | None, cue_mode: str,
                    audio: str | Path | Iterable[np.ndarray], fps: float, out: str | Path | None = None,
                    realtime: bool = True, on_frame: Callable[[int, np.ndarray], None] | None = None,
                    options: Any = None, offline: bool = False) -> dict[str, Any]:
    """Live mode: render `audio` (a file, read at real-time pace if `realtime`, or float32 16 kHz blocks)
    with cues from `cue_clip` (None = the identity's first clip) -> the latency summary. With `out`, the
    per-frame latency and feature time go beside it in `<out>.stream.json`.
    options: `render.audio.StreamOptions` of Whisper features (None = its defaults; see `stream_options`).
    offline: the features of the whole audio first (`render.audio.OfflineFeatures`, as render@<id>), for a file
    rendered without `--stream`."""
    from emotag_core.io.frames import FrameStore
    from emotag_core.render.api import render_stream

    clip = cue_clip or FrameStore(files.table("frames")).clip_ids[0]
    cues = cue_track(files, clip, 0, None, cue_mode)
    trace = render_stream(animator, audio, features, cues, out=out, on_frame=on_frame, realtime=realtime, fps=fps,
                          stream_options=options, offline=offline)
    if out is not None:
        from emotag_core.io.atomic import write_text

        write_text(Path(f"{out}.stream.json"), json.dumps({**trace.summary(), "latency_s": trace.latency_s,
                                                           "feature_s": trace.feature_s}, indent=1))
    return trace.summary()


def feature_backend(audio_features: Any, fps: float, animator: Any = None) -> Any:
    """The audio feature backend the identity's tables (and so its GRMN) were built with. With `animator`,
    fails before any work when the backend's features are not what its GRMN reads (`audio_features.backend`
    changed after adapt@<id>, or a model from another profile)."""
    from emotag_core.errors import ConfigError
    from emotag_core.teachers import audio as audio_teacher

    be = audio_teacher.load(audio_features.backend, audio_features, fps=fps)
    want = None if animator is None else int(animator.grmn.spec.audio_dim)
    if want is not None and int(be.feature_dim) != want:
        raise ConfigError(f"audio_features.backend `{audio_features.backend}` gives {be.feature_dim}-d features, but "
                          f"the adapted GRMN reads {want}-d ones: set the backend it was trained with, or re-run "
                          "`dvc repro adapt@<id>` (and its pretrain) with this one")
    return be


def stream_options(render: Any) -> Any:
    """`render.audio.StreamOptions` from the `RenderConfig` (`render.stream_*`)."""
    from emotag_core.render.audio import StreamOptions

    return StreamOptions(lookahead_s=render.stream_lookahead_s, left_context_s=render.stream_left_context_s,
                         chunk_s=render.stream_chunk_s, padded=render.stream_padded)
