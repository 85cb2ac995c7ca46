"""DVC stage `render@<id>`: the adapted identity driven by new audio -> mp4s with sound (Sec. 3.3).

Writes `data/renders/<id>/`: one `<name>.mp4` per driving audio (25 fps, H.264 + AAC with that
audio muxed in) and `render.json` (per render: audio, cue source and how short cues were
filled, per-frame gate / emotion / jaw traces, FPS). Driving audio: `render.audio` (any audio or
video files); by default the identity's held-out audio (`heldout`, cues from the same held-out
frames: self-reconstruction) plus a cross-language espeak-ng clip (`xlang_<voice>`, cues from
the adaptation clip). `stream()` is the live mode behind `emotag render --stream`.
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

from emotag_core.config import Params
from emotag_core.errors import InputError
from emotag_core.io.atomic import atomic_dir
from emotag_core.io.tables import UPPER_AUS, TableReader, column_array
from emotag_core.render.driver import Animator, CueTrack, GateControl, RenderTrace
from stages.common import Paths, main_for, need, params, stage, sweep

SAMPLE_RATE = 16000
# what adapt@<id> leaves in data/models/<id>/ that rendering reads
ADAPTED_FILES = ("grmn.pt", "scene.pt")


# ---------------------------------------------------------------------------------------------
# inputs


def need_adapted(identity: str, paths: Paths) -> Path:
    """The adapted model folder of `identity`; StageMissingError (`dvc repro adapt@<id>`) if absent."""
    for f in ADAPTED_FILES:
        need(paths.models / f, f"the adapted model of `{identity}`", "adapt", identity)
    return paths.models


def load_animator(identity: str, p: Params, paths: Paths, control: GateControl | None = None,
                  device: str | None = None, batch: int | None = None) -> Animator:
    """Adapted GRMN + the identity's scene + its identity vector, ready to render.

    On CUDA (render.graphed auto/true) a `GraphedAnimator` built for `batch` frames (default
    render.batch_size; the last partial batch is padded), else the eager `Animator`.
    """
    from emotag_core.render.graphed import build_animator
    from emotag_core.train.adapted import load_adapted  # the adapt stage's loader

    folder = need_adapted(identity, paths)
    dev = device or p.render.device
    grmn, scene, s = load_adapted(folder, p, device=dev)
    return build_animator(grmn, scene, s, graphed=p.render.graphed, batch=batch or p.render.batch_size,
                          size=int(p.ingest.size), control=control or GateControl(p.render.gate_scale,
                                                                                  p.render.gate_override),
                          device=dev, raster_size=p.render.size)


def feature_backend(p: Params) -> Any:
    """The audio feature backend the identity's tables (and so its GRMN) were built with."""
    from emotag_core.teachers import audio as audio_teacher

    return audio_teacher.load(p.audio_features.backend, p.audio_features, fps=p.ingest.fps)


def clip_rows(paths: Paths, table: str, clip: str, columns: list[str]) -> tuple[np.ndarray, Any]:
    """Rows of one clip of a per-identity table, in frame order -> (frames [N], table)."""
    import pyarrow.compute as pc

    r = TableReader(need(paths.table(table), f"the `{table}` table of `{paths.id}`", table, paths.id),
                    table)
    t = r.read(columns=["clip_id", "frame", *columns])
    t = t.filter(pc.equal(t.column("clip_id"), clip))
    if t.num_rows == 0:
        raise InputError(paths.table(table), f"no rows for clip `{clip}`", "check render.cue_clip")
    order = np.argsort(t.column("frame").to_numpy())
    t = t.take(order)
    return t.column("frame").to_numpy(), t


def cue_track(paths: Paths, clip: str, start: int, end: int | None, mode: str) -> CueTrack:
    """Head pose (flame table) and upper-face AUs (aus table) of frames [start, end) of `clip`."""
    f_fr, ft = clip_rows(paths, "flame", clip, ["rot", "trans"])
    a_fr, at = clip_rows(paths, "aus", clip, list(UPPER_AUS))
    frames = np.intersect1d(f_fr, a_fr)
    frames = frames[(frames >= start) & ((frames < end) if end is not None else True)]
    if len(frames) == 0:
        raise InputError(paths.table("flame"), f"clip `{clip}` has no tracked frames in [{start}, {end})",
                         "choose another render.cue_clip or lower adapt.eval_from_s")
    fi = np.searchsorted(f_fr, frames)
    ai = np.searchsorted(a_fr, frames)
    aus = np.stack([at.column(a).to_numpy() for a in UPPER_AUS], axis=1)[ai]
    return CueTrack(rot=column_array(ft, "rot")[fi], trans=column_array(ft, "trans")[fi], aus=aus.astype(np.float32),
                    mode=mode, source=f"{paths.id}/{clip} frames {int(frames[0])}-{int(frames[-1])}")  # type: ignore[arg-type]


def first_clip(paths: Paths) -> str:
    """The identity's first clip (adaptation and held-out evaluation both come from it)."""
    from emotag_core.io.frames import FrameStore

    return FrameStore(need(paths.table("frames"), "the frame store", "ingest", paths.id)).clip_ids[0]


def heldout_start(p: Params, n_frames: int | None = None) -> int | None:
    """First held-out frame of a clip of `n_frames`: adapt.eval_from_s; for a clip that ends before
    it, the first frame after the adaptation part (adapt.train_seconds); None when nothing is left."""
    h0 = int(round(p.adapt.eval_from_s * p.ingest.fps))
    if n_frames is None or n_frames > h0:
        return h0
    train_end = int(round(p.adapt.train_seconds * p.ingest.fps))
    return train_end if n_frames > train_end else None


def clip_frames(paths: Paths, clip: str) -> int:
    """Number of frames of `clip` in the identity's frame store."""
    from emotag_core.io.frames import FrameStore

    keys = FrameStore(need(paths.table("frames"), "the frame store", "ingest", paths.id)).keys
    return int((keys.column("clip_id").to_numpy(zero_copy_only=False) == clip).sum())


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


# ---------------------------------------------------------------------------------------------
# jobs


@dataclass
class RenderJob:
    """One driving audio and the cues that go with it."""

    name: str
    kind: str  # heldout | cross_language | file
    audio: Callable[[], Iterable[np.ndarray] | Path]
    cues: Callable[[], CueTrack]
    note: str


def jobs(identity: str, p: Params, paths: Paths, scratch: Path) -> list[RenderJob]:
    """The renders of `render@<id>` (see module doc)."""
    from emotag_core.render.audio import iter_samples

    clip = first_clip(paths)
    cue_clip = p.render.cue_clip or clip
    train_end = int(round(p.adapt.train_seconds * p.ingest.fps))
    adapt_cues = lambda: cue_track(paths, cue_clip, 0, train_end if cue_clip == clip else None,  # noqa: E731
                                   p.render.cue_mode)
    out: list[RenderJob] = []
    if not p.render.audio:
        n = clip_frames(paths, clip)
        h0 = heldout_start(p, n)
        wav = need(paths.audio(clip), "the identity's audio", "ingest", identity)
        if h0 is None:
            print(f"render@{identity}: clip `{clip}` is {n / p.ingest.fps:.1f} s, all of it inside the adaptation "
                  f"part (adapt.train_seconds {p.adapt.train_seconds:g} s): no held-out render", flush=True)
        else:
            if h0 < int(round(p.adapt.eval_from_s * p.ingest.fps)):
                print(f"render@{identity}: clip `{clip}` is {n / p.ingest.fps:.1f} s, shorter than adapt.eval_from_s "
                      f"({p.adapt.eval_from_s:g} s): holding out from {h0 / p.ingest.fps:g} s, after the adaptation "
                      "part", flush=True)
            out.append(RenderJob(
                "heldout", "heldout",
                lambda: skip_samples(iter_samples(wav, SAMPLE_RATE), int(round(h0 * SAMPLE_RATE / p.ingest.fps))),
                lambda: cue_track(paths, clip, h0, None, "hold"),
                f"held-out audio of {clip} from {h0 / p.ingest.fps:g} s; cues from the same frames"))
        if p.render.cross_language_voice:
            v = p.render.cross_language_voice
            path = scratch / f"xlang_{v}.wav"
            out.append(RenderJob(f"xlang_{v}", "cross_language",
                                 lambda: espeak_clip(v, p.render.cross_language_text, path), adapt_cues,
                                 f"espeak-ng voice `{v}`; cues from {cue_clip}"))
    for a in p.render.audio:
        src = Path(a)
        if not src.is_file():
            raise InputError(src, "driving audio file not found", "fix render.audio in params.yaml")
        out.append(RenderJob(src.stem, "file", lambda src=src: src, adapt_cues, f"{src}; cues from {cue_clip}"))
    names = [j.name for j in out]
    if len(set(names)) != len(names):
        raise InputError(None, f"render.audio: two driving files share a name ({names})", "rename one of them")
    return out


def animator_kind(animator: Animator) -> str:
    """`graph (batch B)` for the CUDA-graph animator, `eager` otherwise (recorded in render.json)."""
    poser = getattr(animator, "poser", None)
    return f"{poser.mode} (batch {poser.batch})" if poser is not None else "eager"


def trace_record(job: RenderJob, trace: RenderTrace) -> dict[str, Any]:
    return {"kind": job.kind, "note": job.note, **trace.summary(), "g": trace.g, "g_pred": trace.g_pred,
            "emotion": trace.emotion, "jaw_open": trace.jaw_open, "audio_rms": trace.audio_energy,
            "cue_index": trace.cue_index}


@stage("render")
def main(identity: str) -> None:
    import torch
    from rich.console import Console

    from emotag_core.io.tables import EMOTION_LABELS
    from emotag_core.render.api import render_to_mp4

    console = Console(stderr=True)
    p = params()
    paths = Paths(identity)
    sweep(paths.renders.parent)
    torch.set_num_threads(max(1, p.render.threads))
    animator = load_animator(identity, p, paths)
    features = feature_backend(p)
    record: dict[str, Any] = {"identity": identity, "fps": p.ingest.fps, "size": animator.size, "raster_size": animator.raster_size,
                              "gate_scale": p.render.gate_scale, "gate_override": p.render.gate_override,
                              "device": str(animator.device), "animator": animator_kind(animator),
                              "emotion_labels": list(EMOTION_LABELS), "renders": {}}
    paths.renders.parent.mkdir(parents=True, exist_ok=True)  # scratch as a `.tmp-` sibling: swept after a kill
    with tempfile.TemporaryDirectory(prefix=".tmp-render-scratch-", dir=paths.renders.parent) as scratch, \
            atomic_dir(paths.renders) as tmp:
        for job in jobs(identity, p, paths, Path(scratch)):
            trace = render_to_mp4(animator, job.audio(), Path(tmp) / f"{job.name}.mp4", features, job.cues(),
                                  fps=p.ingest.fps, batch_size=p.render.batch_size)
            console.print(f"render@{identity}: {job.name}.mp4  {trace.n_frames} frames, {trace.fps:.1f} FPS; "
                          f"{trace.cue_note}", highlight=False)
            record["renders"][job.name] = trace_record(job, trace)
        (Path(tmp) / "render.json").write_text(json.dumps(record, indent=1), encoding="utf-8")


def stream(identity: str, audio: str | Path | Iterable[np.ndarray], out: str | Path | None = None,
           realtime: bool = True, on_frame: Callable[[int, np.ndarray], None] | None = None,
           params_path: str | Path = "params.yaml") -> dict[str, Any]:
    """`emotag render --stream`: render `audio` live for an adapted identity; returns the latency summary.

    audio: a file (read at real-time pace if `realtime`) or an iterable of float32 16 kHz blocks.
    """
    from emotag_core.render.api import render_stream

    p = params(params_path)
    paths = Paths(identity)
    clip = p.render.cue_clip or first_clip(paths)
    cues = cue_track(paths, clip, 0, None, p.render.cue_mode)
    trace = render_stream(load_animator(identity, p, paths, batch=1), audio, feature_backend(p), cues, out=out,
                          on_frame=on_frame, realtime=realtime, fps=p.ingest.fps)
    return trace.summary()


if __name__ == "__main__":
    main_for(main)
