"""The demo's requests: a bounded admission count, a FIFO of waiting renders with visible positions, and
render workers (threads) that stream each request's frames to its page while the mp4 is written.

A render is `emotag_core.render.api.render_stream` (the `emotag render --stream` path, batch 1) over the
decoded upload; the emotion-intensity control (Eq. 6's gate) is read before every frame, so the page's
slider changes the frames that follow it.
"""
from __future__ import annotations

import asyncio
import shutil
import struct
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.render.driver import CueTrack, GateControl
from emotag_core.serve.media import SAMPLE_RATE, RequestError, Speech

FRAME_HEADER = struct.Struct("<Ifff")  # frame index, gate used, gate predicted, latency (ms); then the JPEG bytes
MAX_SCALE = 4.0


@dataclass
class Avatar:
    """What a render needs of one identity (the CLI builds it from an adapted identity)."""

    animator: Any
    """An `emotag_core.render.driver.Animator` (or GraphedAnimator) built for batch 1."""
    features: Any
    """The audio feature backend the identity's GRMN was trained with."""
    cues: CueTrack
    fps: float


Loader = Callable[[str], Avatar]  # identity -> Avatar (called in a worker thread)


def load_avatar(models: Path, files: Any, p: Any, device: str) -> Avatar:
    """An adapted identity ready for the demo: adapt@<id>'s folder `models`, its tables `files`
    (`render.jobs.TargetFiles`: the cues come from `render.cue_clip`, default its first clip), the `Params` `p`;
    the animator is built for batch 1 (the stream path) on `device`."""
    from emotag_core.io.frames import FrameStore
    from emotag_core.render.adapted import load_animator
    from emotag_core.render.jobs import cue_track, feature_backend

    an = load_animator(models, p.flame, p.pretrain.rasterizer, p.render, p.ingest.size, device=device, batch=1)
    clip = p.render.cue_clip or FrameStore(files.table("frames")).clip_ids[0]
    return Avatar(an, feature_backend(p.audio_features, p.ingest.fps, an),
                  cue_track(files, clip, 0, None, p.render.cue_mode), p.ingest.fps)


def parse_control(mode: Any, g: Any, scale: Any) -> GateControl:
    """The page's control (`auto`: the model's gate times `scale`; `fixed`: g) -> GateControl; 400 if invalid."""
    try:
        s = 1.0 if scale in (None, "") else float(scale)
        if mode in (None, "", "auto"):
            ov = None
        elif mode == "fixed":
            ov = float(g)
        else:
            raise ValueError(f"mode must be auto or fixed, got {mode!r}")
    except (TypeError, ValueError) as exc:
        raise RequestError(400, f"bad gate control: {exc}") from exc
    if not 0.0 <= s <= MAX_SCALE or (ov is not None and not 0.0 <= ov <= 1.0) or not np.isfinite(s):
        raise RequestError(400, f"bad gate control: g must be in [0, 1] and the residual scale in [0, {MAX_SCALE:g}]")
    return GateControl(scale=s, override=ov)


@dataclass
class Job:
    """One request: its folder, its audio, its live control and the messages for its page."""

    id: str
    identity: str
    folder: Path
    loop: asyncio.AbstractEventLoop
    control: GateControl = field(default_factory=GateControl)
    speech: Speech | None = None
    state: str = "uploading"  # uploading | queued | rendering | done | failed
    events: asyncio.Queue = field(default_factory=asyncio.Queue)
    cancelled: bool = False
    summary: dict[str, Any] | None = None
    error: str | None = None
    created: float = field(default_factory=time.perf_counter)
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def video(self) -> Path:
        return self.folder / "render.mp4"

    @property
    def speech_wav(self) -> Path:
        return self.folder / "speech.wav"

    def send(self, msg: dict[str, Any] | bytes) -> None:
        """Queue a message for the page (from any thread; dropped once the server's loop has closed)."""
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, msg)
        except RuntimeError:  # the server is shutting down: nobody is listening any more
            self.cancelled = True


class _Live:
    """The animator of one render: applies the job's current control before each frame, keeps the last result."""

    def __init__(self, inner: Any, job: Job) -> None:
        self.inner, self.job = inner, job
        self.last: Any = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __call__(self, *args: Any) -> Any:
        c = self.job.control
        if c != self.inner.control:
            self.inner.set_control(c)
        self.last = self.inner(*args)
        return self.last


class Renderer:
    """Admission (at most `queue_size` requests at once), the waiting line, and `workers` render threads.

    identities: the identities the page may pick; load: identity -> Avatar; out: the only folder written
    (`out/jobs/<id>/`). All methods but `_render` run on the event loop.
    """

    def __init__(self, identities: Callable[[], list[str]], load: Loader, out: Path, queue_size: int = 4,
                 workers: int = 1, jpeg_quality: int = 85, keep_jobs: int = 16) -> None:
        self.identities, self.load = identities, load
        self.out = Path(out)
        self.queue_size, self.workers = int(queue_size), int(workers)
        self.jpeg_quality, self.keep_jobs = int(jpeg_quality), int(keep_jobs)
        self.jobs: dict[str, Job] = {}
        self.admitted = 0
        self.waiting: deque[Job] = deque()
        self.free_slots = list(range(self.workers))
        self.pool = ThreadPoolExecutor(self.workers, thread_name_prefix="emotag-render")
        self._avatars: dict[int, OrderedDict[str, Avatar]] = {i: OrderedDict() for i in range(self.workers)}
        self._load_lock = threading.Lock()
        self.stats = {"served": 0, "refused_busy": 0, "failed": 0}
        self._sweep()

    def _sweep(self) -> None:
        """Remove the job folders an earlier run left (they can no longer be served)."""
        jobs = self.out / "jobs"
        for d in jobs.iterdir() if jobs.is_dir() else []:
            if d.is_dir() and len(d.name) == 32 and all(c in "0123456789abcdef" for c in d.name):
                shutil.rmtree(d, ignore_errors=True)

    # -- admission ------------------------------------------------------------------------------
    def check_identity(self, identity: str) -> None:
        names = self.identities()
        if identity not in names:
            there = ", ".join(names) if names else "none (adapt one first: `dvc repro adapt@<id>`)"
            raise RequestError(404, f"unknown identity `{identity}`; adapted identities here: {there}",
                               identities=names)

    def admit(self, identity: str) -> Job:
        """A new job in state `uploading` (RequestError 404 for an unknown identity, 429 past the bound)."""
        self.check_identity(identity)
        if self.admitted >= self.queue_size:
            self.stats["refused_busy"] += 1
            raise RequestError(429, f"the demo is busy: {self.admitted} requests are rendering or waiting "
                                    f"(at most {self.queue_size}, serve.queue_size); try again in a minute")
        self.admitted += 1
        jid = uuid.uuid4().hex
        folder = self.out / "jobs" / jid
        folder.mkdir(parents=True)
        job = Job(jid, identity, folder, asyncio.get_running_loop())
        self.jobs[jid] = job
        return job

    def release(self, job: Job) -> None:
        """Forget a job that never reached the queue (its upload was refused)."""
        if self.jobs.pop(job.id, None) is not None:
            self.admitted -= 1
        shutil.rmtree(job.folder, ignore_errors=True)

    def enqueue(self, job: Job) -> int:
        """Put an uploaded job in line; returns its position (0 = rendering now)."""
        job.state = "queued"
        self.waiting.append(job)
        self._pump()
        return self.position(job)

    def position(self, job: Job) -> int:
        return self.waiting.index(job) + 1 if job in self.waiting else 0

    def _pump(self) -> None:
        while self.free_slots and self.waiting:
            job = self.waiting.popleft()
            slot = self.free_slots.pop()
            job.state = "rendering"
            fut = asyncio.get_running_loop().run_in_executor(self.pool, self._render, job, slot)
            fut.add_done_callback(lambda f, job=job, slot=slot: self._finished(job, slot, f))
        for k, j in enumerate(self.waiting):
            j.send({"type": "queued", "position": k + 1, "waiting": len(self.waiting)})

    def _finished(self, job: Job, slot: int, fut: asyncio.Future) -> None:
        self.free_slots.append(slot)
        self.admitted -= 1
        exc = fut.exception()
        if exc is not None:
            job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            self.stats["failed"] += 1
            job.send({"type": "error", "status": 500, "error": f"the render failed: {job.error}"})
        else:
            job.state = "done"
            self.stats["served"] += 1
            job.send({"type": "done", "summary": job.summary, "video": f"/api/jobs/{job.id}/video.mp4"})
        job.finished.set()
        self._prune()
        self._pump()

    def _prune(self) -> None:
        """Delete the oldest finished jobs' folders beyond `keep_jobs` (only inside out/jobs/)."""
        done = [j for j in self.jobs.values() if j.state in ("done", "failed")]
        for j in sorted(done, key=lambda j: j.created)[: max(0, len(done) - self.keep_jobs)]:
            del self.jobs[j.id]
            shutil.rmtree(j.folder, ignore_errors=True)

    def shutdown(self) -> None:
        for j in self.jobs.values():
            j.cancelled = True
        self.pool.shutdown(wait=True, cancel_futures=True)

    # -- the render (a worker thread) -------------------------------------------------------------
    def _avatar(self, slot: int, identity: str) -> Avatar:
        cache = self._avatars[slot]
        if identity not in cache:
            with self._load_lock:  # one load at a time: loads read big files and build the scene
                cache[identity] = self.load(identity)
            while len(cache) > 2:
                cache.popitem(last=False)
        cache.move_to_end(identity)
        return cache[identity]

    def _render(self, job: Job, slot: int) -> None:
        from emotag_core.render.api import render_stream
        from emotag_core.serve.media import JpegEncoder

        assert job.speech is not None
        av = self._avatar(slot, job.identity)
        live = _Live(av.animator, job)
        per = int(round(SAMPLE_RATE / av.fps))
        x = job.speech.samples
        n_frames = -(-len(x) // per)
        arrival: dict[int, float] = {}

        def blocks() -> Iterator[np.ndarray]:
            for i in range(n_frames):
                if job.cancelled:
                    return
                arrival[i] = time.perf_counter()
                yield x[i * per:(i + 1) * per]

        t0 = time.perf_counter()
        job.send({"type": "start", "frames": n_frames, "fps": av.fps, "size": int(av.animator.size),
                  "device": str(av.animator.device), "wait_s": t0 - job.created})
        jpeg = JpegEncoder(self.jpeg_quality)

        def on_frame(t: int, frame: np.ndarray) -> None:
            lat = time.perf_counter() - arrival.pop(t, t0)
            g, gp = float(live.last.g[-1]), float(live.last.g_pred[-1])
            job.send(FRAME_HEADER.pack(t, g, gp, 1000.0 * lat) + jpeg(frame))

        trace = render_stream(live, blocks(), av.features, av.cues, out=job.video, on_frame=on_frame,
                              realtime=False, fps=av.fps)
        job.summary = {**trace.summary(), "g": trace.g, "g_pred": trace.g_pred, "identity": job.identity,
                       "device": str(av.animator.device), "cancelled": job.cancelled,
                       "audio": job.speech.note, "queue_wait_s": t0 - job.created}
