"""One progress protocol for every long job of the library.

A job takes `progress: Progress = NO_PROGRESS` and calls `progress(done, total, **info)` as it goes:
`done` counts its units (frames, faces, training iterations) and never decreases, `total` is how many there
will be (None while unknown), `info` carries a few numbers worth showing (`loss=0.0123`, `clip="clip001"`).
The last call of a finished job has `done == total`. A job never prints a bar itself: the caller decides
how progress looks (the stages pass `RichProgress`, tests pass a recorder, benches pass nothing).

    def landmarks_run(frames: Path, out: Path, cfg: LandmarksConfig, progress: Progress = NO_PROGRESS) -> int
    progress(rows_written, len(store))

`Steps` turns the "n more done" callbacks of inner loops into protocol calls on one running count; `Part`
places a sub-job's own count inside a larger one (clip after clip, render after render).
"""
from __future__ import annotations

import sys
import time
from typing import IO, Any, Protocol


class Progress(Protocol):
    """`(done, total, **info) -> None`: `done` monotone, `total` None while unknown, `info` a few numbers."""

    def __call__(self, done: int, total: int | None, **info: Any) -> None: ...


def _no_progress(done: int, total: int | None, **info: Any) -> None:
    return None


NO_PROGRESS: Progress = _no_progress


class Steps:
    """A running count over several inner loops: `steps(n)` adds n and reports `progress(done, total, **info)`.

    For jobs whose inner functions report increments (`progress(1)` per frame), possibly over several clips."""

    def __init__(self, progress: Progress, total: int | None, done: int = 0, **info: Any) -> None:
        self.progress, self.total, self.done, self.info = progress, total, done, dict(info)

    def __call__(self, n: int = 1) -> None:
        self.done += int(n)
        self.progress(self.done, self.total, **self.info)

    def finish(self) -> None:
        """Close the count: the total becomes what was done (an estimate that was off is corrected)."""
        self.total = self.done
        self.progress(self.done, self.total, **self.info)


class Part:
    """One part of a larger count: `part(d, t, **info)` reports `progress(start + d, total, **info, **fixed)`;
    `part.done` is `start` plus the highest d seen (where the next part starts)."""

    def __init__(self, progress: Progress, start: int, total: int | None = None, **fixed: Any) -> None:
        self.progress, self.start, self.total, self.fixed, self.done = progress, start, total, fixed, start

    def __call__(self, done: int, total: int | None, **info: Any) -> None:
        self.done = max(self.done, self.start + int(done))
        self.progress(self.done, self.total, **{**info, **self.fixed})


def _fmt(info: dict[str, Any]) -> str:
    return "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items() if v is not None)


class RichProgress:
    """The stages' progress: a rich bar on a terminal, else one plain line every `every_s` seconds (and at the
    end), so DVC logs and CI stay readable. Use as a context manager; the object is the callback.

        with RichProgress("landmarks@anna") as bar:
            landmarks_run(frames, out, cfg, bar)
    """

    def __init__(self, label: str, stream: IO[str] | None = None, every_s: float = 10.0,
                 tty: bool | None = None) -> None:
        self.label, self.every_s = label, every_s
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else tty
        self._bar: Any = None
        self._task: Any = None
        self._t0 = self._last = 0.0
        self._done, self._total, self._info = 0, None, {}
        self._printed = -1

    def __enter__(self) -> RichProgress:
        self._t0 = self._last = time.perf_counter()
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Bar, TextColumn, TimeRemainingColumn

            self._bar = Bar(TextColumn(self.label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                            TextColumn("{task.fields[info]}"), console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=None, info="")
        return self

    def __call__(self, done: int, total: int | None, **info: Any) -> None:
        self._done, self._total = done, total
        self._info.update(info)
        now = time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, completed=done, total=total, info=_fmt(self._info))
        elif now - self._last >= self.every_s or (total is not None and done >= total and done != self._printed):
            self._line(now)

    def _line(self, now: float) -> None:
        self._last, self._printed = now, self._done
        of = f"/{self._total} ({100 * self._done / max(self._total, 1):.0f}%)" if self._total is not None else ""
        rate = self._done / max(now - self._t0, 1e-9)
        extra = _fmt(self._info)
        print(f"{self.label}: {self._done}{of}, {rate:.1f}/s" + (f"  {extra}" if extra else ""),
              file=self.stream, flush=True)

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.stop()
        elif self._done != self._printed and self._done:
            self._line(time.perf_counter())
