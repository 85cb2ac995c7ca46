"""The evaluation protocol's split of a target identity: which frames adapt the model, which are held out.

One definition, used by adaptation (`adapt@<id>`), rendering (`render@<id>`), evaluation
(`evaluate@<id>`, `grmn_eval@<id>`) and the benches. The paper (Sec. 4) adapts on the first 5 s of a
new identity's video and evaluates on frames it never saw; params say how many seconds
(`adapt.train_seconds`) and from when on frames are held out (`adapt.eval_from_s`).

- Adaptation: the first `round(train_seconds * fps)` rows of the identity in store order (the
  training loader's time limit). When the first clip is at least that long (the usual case) these
  are frames `[0, adapt_frames)` of the first clip, `adapt_segment`.
- Held out (default): frames from `round(eval_from_s * fps)` to the end of the first clip; a clip
  that ends before that holds out the frames after the adaptation part; a clip that ends inside
  the adaptation part holds out nothing (`heldout is None`).
- Held out on another clip (`heldout_clip=`, e.g. a synthetic target's last clip): that whole clip;
  the adaptation clip after its adaptation part is then the `validation` segment.

The split is a value: it never reads files. Build it from a clip table (any pyarrow table or
mapping with `clip_id` and `frame` columns, one row per frame in store order: the frame store's
`keys`, or an identity index), then select rows of that table with `Segment.rows`.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emotag_core.errors import ConfigError, InputError


def frame_index(seconds: float, fps: float) -> int:
    """The frame index at `seconds` (rounded to the nearest frame)."""
    return int(round(seconds * fps))


def _columns(clips: Any) -> tuple[np.ndarray, np.ndarray]:
    """(clip_id [N] str, frame [N] int) of a clip table (pyarrow Table or mapping of arrays)."""
    if isinstance(clips, Mapping):
        c, f = clips["clip_id"], clips["frame"]
    else:
        c, f = clips.column("clip_id"), clips.column("frame")
        c = c.to_numpy(zero_copy_only=False) if hasattr(c, "to_numpy") else c
        f = f.to_numpy() if hasattr(f, "to_numpy") else f
    c, f = np.asarray(c).astype(str), np.asarray(f).astype(np.int64)
    if c.shape != f.shape or c.ndim != 1:
        raise InputError(None, f"clip table: clip_id {c.shape} and frame {f.shape} differ",
                         "pass one row per frame with both columns")
    return c, f


@dataclass(frozen=True)
class Segment:
    """Frames `[start, end)` of one clip (`end` None = to the clip's end)."""

    clip: str
    start: int
    end: int | None = None

    def mask(self, clip_ids: np.ndarray, frames: np.ndarray) -> np.ndarray:
        """Rows of a clip table (clip_id [N], frame [N]) inside the segment -> bool [N]."""
        m = (np.asarray(clip_ids).astype(str) == self.clip) & (np.asarray(frames) >= self.start)
        return m & (np.asarray(frames) < self.end) if self.end is not None else m

    def rows(self, clips: Any, usable: np.ndarray | None = None, limit: int | None = None) -> np.ndarray:
        """Row indices [M] of the clip table `clips` inside the segment, in frame order.

        `usable` [N] bool: keep only those rows; `limit`: at most this many (the first in frame order).
        """
        c, f = _columns(clips)
        m = self.mask(c, f)
        if usable is not None:
            m &= np.asarray(usable).astype(bool)
        rows = np.nonzero(m)[0]
        rows = rows[np.argsort(f[rows], kind="stable")]
        return rows[:limit] if limit is not None else rows

    def seconds(self, fps: float) -> float:
        """Start time of the segment in its clip, in seconds."""
        return self.start / fps


@dataclass(frozen=True)
class Split:
    """Adaptation rows, held-out frames and which clips, for one target identity (see module doc)."""

    fps: float
    """Frame rate of the identity's tables (ingest.fps)."""
    train_seconds: float
    """Seconds of video used to adapt (adapt.train_seconds)."""
    eval_from_s: float
    """Requested start of the held-out part (adapt.eval_from_s); `heldout.start` may differ for a short clip."""
    adapt_clip: str
    """The identity's first clip in store order: adaptation (and by default the held-out part) come from it."""
    adapt_clip_frames: int
    """Number of frames of `adapt_clip`."""
    heldout: Segment | None
    """The held-out frames; None when the adaptation part covers the whole clip."""
    validation: Segment | None = None
    """Frames neither adapted on nor held out that settings may be compared on (the adaptation clip after
    its adaptation part, when the held-out part is another clip); None when there are none."""
    max_eval_frames: int | None = None
    """Evaluate at most this many held-out frames (evaluate.max_frames; None = all)."""

    @property
    def adapt_frames(self) -> int:
        """Rows (frames) the adaptation may use: round(train_seconds * fps)."""
        return frame_index(self.train_seconds, self.fps)

    @property
    def adapt_segment(self) -> Segment:
        """The adaptation part as frames of `adapt_clip` (render's cues for out-of-domain audio)."""
        return Segment(self.adapt_clip, 0, self.adapt_frames)

    def adapt_mask(self, n_rows: int) -> np.ndarray:
        """bool [n_rows]: rows of the identity (store order) the adaptation loader may draw from."""
        return np.arange(n_rows) < self.adapt_frames

    @property
    def heldout_start(self) -> int | None:
        """First held-out frame of the held-out clip (None: nothing held out)."""
        return self.heldout.start if self.heldout is not None else None

    @property
    def shortened(self) -> bool:
        """True when the held-out part starts before `eval_from_s` because the adaptation clip is too short."""
        return (self.heldout is not None and self.heldout.clip == self.adapt_clip
                and self.heldout.start < frame_index(self.eval_from_s, self.fps))

    def heldout_rows(self, clips: Any, usable: np.ndarray | None = None, limited: bool = False) -> np.ndarray:
        """Row indices of `clips` in the held-out part, frame order ([0] when nothing is held out);
        `limited`: at most `max_eval_frames`."""
        if self.heldout is None:
            return np.zeros(0, dtype=np.int64)
        return self.heldout.rows(clips, usable, self.max_eval_frames if limited else None)

    @classmethod
    def from_config(cls, adapt: Any, evaluate: Any | None, clips: Any, fps: float,
                    heldout_clip: str | None = None) -> Split:
        """The split of an identity from `adapt` (AdaptConfig: train_seconds, eval_from_s), `evaluate`
        (EvaluateConfig: max_frames; None = no limit) and its clip table (clip_id, frame per row, store order).

        `heldout_clip`: hold out this whole clip instead of the end of the adaptation clip (it must differ
        from the adaptation clip and exist in the table).
        """
        c, _ = _columns(clips)
        if len(c) == 0:
            raise InputError(None, "the identity has no frames", "run its ingest stage")
        if fps <= 0:
            raise ConfigError(f"split: fps must be positive, got {fps}")
        order: dict[str, None] = {}
        for x in c.tolist():
            order.setdefault(x, None)
        first = next(iter(order))
        n = int((c == first).sum())
        train_end, h0 = frame_index(adapt.train_seconds, fps), frame_index(adapt.eval_from_s, fps)
        validation: Segment | None = None
        if heldout_clip is None or heldout_clip == first:
            if n > h0:
                start: int | None = h0
            else:  # a clip that ends before eval_from_s: the frames after the adaptation part, if any
                start = train_end if n > train_end else None
            heldout = Segment(first, start) if start is not None else None
            if start is not None and start > train_end:
                validation = Segment(first, train_end, start)
        else:
            if heldout_clip not in order:
                raise InputError(None, f"held-out clip `{heldout_clip}` is not among the identity's clips "
                                       f"{list(order)}", "name one of them")
            heldout = Segment(heldout_clip, 0)
            validation = Segment(first, train_end) if n > train_end else None
        max_frames = getattr(evaluate, "max_frames", None) if evaluate is not None else None
        return cls(fps=float(fps), train_seconds=float(adapt.train_seconds), eval_from_s=float(adapt.eval_from_s),
                   adapt_clip=first, adapt_clip_frames=n, heldout=heldout, validation=validation,
                   max_eval_frames=max_frames)

    def describe(self) -> str:
        """One line for logs and reports."""
        if self.heldout is None:
            held = "nothing held out"
        else:
            held = f"held out {self.heldout.clip} from {self.heldout.seconds(self.fps):g} s"
        return f"adapt on the first {self.train_seconds:g} s of {self.adapt_clip}; {held}"


def last_clip(clips: Any) -> str:
    """The identity's last clip id in sorted order (a synthetic target's held-out test clip)."""
    c, _ = _columns(clips)
    if len(c) == 0:
        raise InputError(None, "the identity has no frames", "run its ingest stage")
    return sorted(set(c.tolist()))[-1]
