"""Inference (paper Sec. 3.3): an adapted identity driven by new audio, with pose and upper-face
expression cues taken from a chosen clip, rendered frame by frame.

The loop is streaming end to end: audio blocks (one per video frame) -> incremental audio
features -> the GRMN window around each frame (`window` frames, centre at window // 2) ->
motion with the emotion-intensity control applied to the gate (Eq. 6) -> the identity's
FLAME-rigged Gaussians rendered -> the encoder. A frame is produced as soon as the audio
`window // 2 - 1` frames after it (plus the feature context) has arrived.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from emotag_core.errors import InputError
from emotag_core.motion.grmn import GRMN, MOUTH_PARAMS, MotionOutput
from emotag_core.render.audio import StreamOptions, feature_stream

CueMode = Literal["pingpong", "loop", "hold"]


# ---------------------------------------------------------------------------------------------
# emotion-intensity control


@dataclass(frozen=True)
class GateControl:
    """Emotion-intensity control on the gate g of Eq. 6."""

    scale: float = 1.0
    """g is multiplied by this, then clipped to [0, 1]."""
    override: float | None = None
    """If set, g is this constant for every frame (in [0, 1])."""

    def __post_init__(self) -> None:
        if self.override is not None and not 0.0 <= self.override <= 1.0:
            raise InputError(None, f"render.gate_override must be in [0, 1], got {self.override}")
        if self.scale < 0:
            raise InputError(None, f"render.gate_scale must be >= 0, got {self.scale}")

    @property
    def identity(self) -> bool:
        return self.override is None and self.scale == 1.0


def apply_gate(out: MotionOutput, control: GateControl, n_expr: int) -> MotionOutput:
    """Re-fuse delta = delta_b + g' * delta_r (Eq. 6) with the controlled gate g'."""
    if control.identity or out.delta_r is None:
        return out
    g = out.g.new_full(out.g.shape, control.override) if control.override is not None \
        else (out.g * control.scale).clamp(0.0, 1.0)  # [B, 1]
    delta = out.delta_b + g * out.delta_r  # Eq. 6
    B = delta.shape[0]
    return dataclasses.replace(out, expr=delta[:, :n_expr], jaw=delta[:, n_expr:n_expr + 3],
                               mouth=delta[:, n_expr + 3:].reshape(B, -1, MOUTH_PARAMS), g=g)


# ---------------------------------------------------------------------------------------------
# pose & expression cues


@dataclass
class CueTrack:
    """Per-frame head pose and upper-face AUs from a cue clip, re-timed to any length."""

    rot: np.ndarray  # [N, 3] head rotation, axis-angle
    trans: np.ndarray  # [N, 3] head translation (m)
    aus: np.ndarray  # [N, A] upper-face AU intensities (0-5), the GRMN's expression input E
    mode: CueMode = "pingpong"
    """How frames past the clip's end are filled: `pingpong` (play back and forth: no jump),
    `loop` (restart: a jump at each wrap), `hold` (freeze the last frame)."""
    source: str = ""
    """Where the cues come from (for logs and render metadata)."""

    def __post_init__(self) -> None:
        n = len(self.rot)
        if n == 0:
            raise InputError(None, f"cue clip {self.source or ''} has no frames",
                             "choose another render.cue_clip")
        if len(self.trans) != n or len(self.aus) != n:
            raise InputError(None, f"cue clip {self.source}: rot/trans/aus lengths differ ({n}, {len(self.trans)}, "
                                   f"{len(self.aus)})")

    def __len__(self) -> int:
        return len(self.rot)

    def index(self, t: np.ndarray) -> np.ndarray:
        """Cue row for output frames t [B] (ints >= 0) -> [B]."""
        n = len(self)
        t = np.asarray(t, np.int64)
        if self.mode == "hold" or n == 1:
            return np.minimum(t, n - 1)
        if self.mode == "loop":
            return t % n
        period = 2 * (n - 1)
        k = t % period
        return np.where(k < n, k, period - k)

    def describe(self, n_frames: int) -> str:
        """What happens for an output of `n_frames`, e.g. 'cue clip of 120 frames looped (pingpong) ...'."""
        n = len(self)
        if n_frames <= n:
            return f"cues: {self.source} ({n} frames) cover all {n_frames} output frames"
        how = {"hold": "its last frame held", "loop": "looped from the start",
               "pingpong": "played back and forth (pingpong)"}[self.mode]
        return f"cues: {self.source} has {n} frames, shorter than the audio ({n_frames} frames): {how}"


# ---------------------------------------------------------------------------------------------
# the animated identity


class Scene(Protocol):
    """An identity's renderable scene (emotag_core.avatar.scene.IdentityScene)."""

    n_mouth: int

    def render(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor, mouth: Tensor | None,
               size: int) -> dict[str, Tensor]: ...


@dataclass
class Animated:
    """One batch of output frames and the motion that made them."""

    frames: np.ndarray  # [B, H, W, 3] uint8 RGB
    g: np.ndarray  # [B] gate actually used
    g_pred: np.ndarray  # [B] gate the network predicted (before the control)
    z_e: np.ndarray | None  # [B, 7] emotion latent
    jaw: np.ndarray  # [B, 3]


class Animator:
    """Adapted GRMN + identity scene + identity vector s: motion windows -> frames."""

    def __init__(self, grmn: GRMN, scene: Any, s: Tensor, size: int = 512, control: GateControl | None = None,
                 device: str | torch.device = "cpu", raster_size: int | None = None) -> None:
        self.grmn = grmn.eval()
        self.scene = scene
        self.device = torch.device(device)
        self.s = torch.as_tensor(s, dtype=torch.float32, device=self.device).reshape(1, -1)  # [1, S]
        self.size = int(size)  # output frames are size x size
        self.raster_size = int(raster_size or size)  # rasterized at this side, then resized (bilinear) to `size`
        self.control = control or GateControl()
        self.window = int(grmn.spec.window)

    def set_control(self, control: GateControl) -> None:
        """Change the emotion-intensity control between two calls (the live demo's slider): later frames use it."""
        self.control = control

    @torch.no_grad()
    def __call__(self, audio_win: np.ndarray, aus_win: np.ndarray, rot: np.ndarray, trans: np.ndarray) -> Animated:
        """audio_win [B, W, D], aus_win [B, W, A], rot/trans [B, 3] -> Animated."""
        dev = self.device
        a = torch.as_tensor(audio_win, dtype=torch.float32, device=dev)
        e = torch.as_tensor(aus_win, dtype=torch.float32, device=dev)
        B = a.shape[0]
        out = self.grmn(a, e, self.s.expand(B, -1))
        g_pred = out.g.reshape(-1).cpu().numpy()
        out = apply_gate(out, self.control, self.grmn.spec.n_expr)
        mouth = out.mouth if out.mouth.shape[1] > 0 else None
        layered = {"out_size": self.size} if getattr(self.scene, "has_layers", False) else {}  # plate at full size
        r = self.scene.render(out.expr, out.jaw, torch.as_tensor(rot, dtype=torch.float32, device=dev),
                              torch.as_tensor(trans, dtype=torch.float32, device=dev), mouth, self.raster_size,
                              **layered)
        img = r["image"] if "image" in r else r["colour"]  # [B, 3, H, W] in [0, 1]
        if img.shape[-1] != self.size or img.shape[-2] != self.size:
            img = torch.nn.functional.interpolate(img, size=(self.size, self.size), mode="bilinear", align_corners=False)
        frames = (img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        return Animated(frames, out.g.reshape(-1).cpu().numpy(), g_pred,
                        None if out.z_e is None else out.z_e.softmax(-1).cpu().numpy(), out.jaw.cpu().numpy())


# ---------------------------------------------------------------------------------------------
# the streaming loop


@dataclass
class RenderTrace:
    """What a render did, frame by frame (for metrics, the report and logs)."""

    n_frames: int = 0
    g: list[float] = field(default_factory=list)
    g_pred: list[float] = field(default_factory=list)
    emotion: list[list[float]] = field(default_factory=list)  # softmax(z_e) per frame
    jaw_open: list[float] = field(default_factory=list)  # |jaw| (rad) per frame
    cue_index: list[int] = field(default_factory=list)
    audio_energy: list[float] = field(default_factory=list)  # RMS per frame
    latency_s: list[float] = field(default_factory=list)  # per frame: out time - its audio's arrival (paced: its due time)
    feature_s: list[float] = field(default_factory=list)  # per frame: seconds of the feature call that made it
    lookahead_s: float | None = None  # audio after a frame's end needed before it can be drawn (features + GRMN)
    first_frame_s: float | None = None  # first frame out - start of the loop
    first_frame_from_audio_s: float | None = None  # first frame out - arrival of the first audio block
    first_frame_before_input_end: bool | None = None
    wall_s: float = 0.0
    cue_note: str = ""

    @property
    def fps(self) -> float:
        return self.n_frames / self.wall_s if self.wall_s > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        def pct(x: list[float], q: float) -> float | None:
            return float(np.percentile(x, q)) if x else None

        return {"frames": self.n_frames, "wall_s": self.wall_s, "fps": self.fps,
                "first_frame_s": self.first_frame_s, "first_frame_from_audio_s": self.first_frame_from_audio_s,
                "first_frame_before_input_end": self.first_frame_before_input_end,
                "lookahead_s": self.lookahead_s,
                "latency_mean_s": float(np.mean(self.latency_s)) if self.latency_s else None,
                "latency_p50_s": pct(self.latency_s, 50), "latency_p95_s": pct(self.latency_s, 95),
                "latency_max_s": float(np.max(self.latency_s)) if self.latency_s else None,
                "feature_p50_s": pct(self.feature_s, 50), "feature_p95_s": pct(self.feature_s, 95),
                "gate_mean": float(np.mean(self.g)) if self.g else None, "cues": self.cue_note}


FrameSink = Callable[[int, np.ndarray, np.ndarray], None]  # (frame index, image [H, W, 3], audio [n])


def animate_stream(animator: Animator, blocks: Iterable[np.ndarray], features: Any, cues: CueTrack,
                   sink: FrameSink, batch_size: int = 8, fps: float = 25.0, feature_context: int = 4,
                   expected_frames: int | None = None, progress: Callable[[int], None] | None = None,
                   stream_options: StreamOptions | None = None) -> RenderTrace:
    """Drive `animator` from per-frame audio blocks; every finished frame goes to `sink` in order.

    blocks: iterable of [sample_rate / fps] float32 arrays (see `frame_blocks`); `features` an
    audio feature backend (`emotag_core.teachers.audio`), made incremental by `render.audio.feature_stream`
    (Whisper: `WhisperStream` with `stream_options`). Memory is bounded in audio length. The trace holds, per
    frame, the latency (frame out - arrival of its audio) and the time of the feature call that made it.
    """
    W = animator.window
    half = W // 2  # window rows t - half .. t + half - 1 (the GRMN centre is row half)
    fs = feature_stream(features, fps, feature_context, max(1, min(batch_size, 8)), stream_options)
    cmvn = None
    if getattr(animator.grmn.spec, "clip_norm", False):  # per-clip CMVN, estimated over the rows arrived so far
        from emotag_core.train.audio_aug import RunningCMVN

        cmvn = RunningCMVN(int(animator.grmn.spec.audio_dim))
    feats: dict[int, np.ndarray] = {}
    feat_s: dict[int, float] = {}  # frame -> seconds of the feature call that produced it
    audio: dict[int, tuple[np.ndarray, float]] = {}  # frame -> (samples, arrival time)
    trace = RenderTrace()
    t0 = time.perf_counter()
    n_feat = 0  # frames with features
    next_out = 0
    total: int | None = None
    pending: list[int] = []

    def flush(frames_idx: list[int]) -> None:
        nonlocal trace
        if not frames_idx:
            return
        last = (total if total is not None else n_feat) - 1
        idx = np.asarray(frames_idx)
        rows = np.clip(idx[:, None] + np.arange(W)[None] - half, 0, last)  # [B, W]
        a = np.stack([[feats[int(r)] for r in row] for row in rows])  # [B, W, D]
        if cmvn is not None:
            a = cmvn(a)
        ci = cues.index(rows)  # [B, W]
        e = cues.aus[ci]  # [B, W, A]
        cc = cues.index(idx)
        res = animator(a, e, cues.rot[cc], cues.trans[cc])
        for k, t in enumerate(frames_idx):
            samples, arrived = audio.pop(t)
            sink(t, res.frames[k], samples)
            now = time.perf_counter()
            if trace.first_frame_s is None:
                trace.first_frame_s = now - t0
                trace.first_frame_from_audio_s = now - first_audio
                trace.first_frame_before_input_end = total is None
            trace.latency_s.append(now - arrived)
            trace.feature_s.append(feat_s.pop(t, 0.0))
            trace.g.append(float(res.g[k]))
            trace.g_pred.append(float(res.g_pred[k]))
            if res.z_e is not None:
                trace.emotion.append([float(x) for x in res.z_e[k]])
            trace.jaw_open.append(float(np.linalg.norm(res.jaw[k])))
            trace.cue_index.append(int(cc[k]))
            trace.audio_energy.append(float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))))
            trace.n_frames += 1
            if progress is not None:
                progress(1)
        lo = frames_idx[-1] - half + 1  # features below this are never read again
        for r in [r for r in feats if r < lo]:
            del feats[r]

    def ready_upto() -> int:
        """Frames < this can be rendered now."""
        if total is not None:
            return total
        return max(0, n_feat - (half - 1))

    def add_features(f: np.ndarray, took: float) -> None:
        nonlocal n_feat
        for row in f:
            feats[n_feat] = row
            feat_s[n_feat] = took
            n_feat += 1
        if cmvn is not None and len(f):
            cmvn.push(f)

    def drain(final: bool) -> None:
        nonlocal next_out, pending
        upto = ready_upto()
        while next_out < upto:
            pending.append(next_out)
            next_out += 1
            # streaming (expected_frames unknown or batch 1) flushes as soon as a batch is full
            if len(pending) >= batch_size:
                flush(pending)
                pending = []
        if final or (pending and batch_size == 1):
            flush(pending)
            pending = []

    trace.lookahead_s = (fs.lookahead_frames + half - 1) / fps
    due = getattr(blocks, "due", None)  # a paced source's schedule (see `paced`)
    pushed = 0
    first_audio = t0
    for block in blocks:
        now = time.perf_counter()
        audio[pushed] = (np.asarray(block, np.float32), min(now, due(pushed)) if due is not None else now)
        if pushed == 0:
            first_audio = audio[0][1]
        pushed += 1
        tf = time.perf_counter()
        f = fs.push(block)
        add_features(f, time.perf_counter() - tf)
        drain(final=False)
    total = pushed
    if total == 0:
        raise InputError(None, "the driving audio is empty (0 frames)", "pass a file with sound")
    tf = time.perf_counter()
    f = fs.finish()
    add_features(f, time.perf_counter() - tf)
    drain(final=True)
    trace.wall_s = time.perf_counter() - t0
    trace.cue_note = cues.describe(total)
    return trace


class paced:  # noqa: N801 - used as a function: `paced(blocks, fps)`
    """Yield blocks no faster than real time (simulates a live audio source).

    `due(i)` is when block i is complete on that schedule; `animate_stream` counts a frame's latency from
    it, so a loop that falls behind shows its growing delay (not the time it finally read the block)."""

    def __init__(self, blocks: Iterable[np.ndarray], fps: float = 25.0) -> None:
        self.blocks, self.fps, self.t0 = blocks, fps, None

    def due(self, i: int) -> float:
        return (self.t0 if self.t0 is not None else time.perf_counter()) + (i + 1) / self.fps

    def __iter__(self) -> Iterator[np.ndarray]:
        self.t0 = time.perf_counter()
        for i, b in enumerate(self.blocks):
            wait = self.due(i) - time.perf_counter()  # block i is complete at (i + 1) / fps
            if wait > 0:
                time.sleep(wait)
            yield b
