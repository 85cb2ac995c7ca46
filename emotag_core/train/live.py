"""Training curves of a pretrain / adapt run: the `TrainLog` protocol and its two writers.

A run opens its log once it knows the step it resumes from (`open_log(start)`, 0 for a fresh run), calls
`log(step, terms)` every `log_every` steps and `end()` after the last one. `LiveLog` writes dvclive curves (the
DVC stages; dvclive, hence dvc, is imported only there); `JsonLinesLog` writes one JSON object per row to a file
and needs nothing but the standard library (the device machine has no dvc). Both drop the rows of a killed run
past the step it resumes from, so a resumed curve has no duplicate steps.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol


class TrainLog(Protocol):
    """What the training recipe calls: `log(step, terms)` per logged step, `end()` once after the last."""

    def __call__(self, step: int, terms: Mapping[str, float]) -> None: ...

    def end(self) -> None: ...


OpenLog = Callable[[int], TrainLog]  # the step the run resumes from (0: fresh) -> an open log


class LiveLog:
    """dvclive metrics that survive a resume: rows past the resumed step are dropped first (dvclive imported here)."""

    def __init__(self, folder: Path, start: int) -> None:
        from dvclive import Live

        from emotag_core.io.atomic import write_text

        folder.mkdir(parents=True, exist_ok=True)
        plots = folder / "plots" / "metrics"
        if start == 0:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        elif plots.exists():
            for tsv in plots.rglob("*.tsv"):
                lines = tsv.read_text().splitlines()
                if not lines:
                    continue
                col = lines[0].split("\t").index("step")  # dvclive's column order varies by version
                keep = [lines[0]] + [ln for ln in lines[1:] if int(ln.split("\t")[col]) <= start]
                write_text(tsv, "\n".join(keep) + "\n")
        self.live = Live(str(folder), resume=start > 0, save_dvc_exp=False, dvcyaml=None)

    def __call__(self, step: int, terms: Mapping[str, float]) -> None:
        self.live.step = step
        for k, v in terms.items():
            self.live.log_metric(f"train/{k}", v)
        self.live.next_step()

    def end(self) -> None:
        self.live.end()


class JsonLinesLog:
    """One line `{"step": s, <term>: value, ...}` per logged step in `path` (no dvc needed). `start` 0 starts the
    file afresh; a resumed run (start > 0) keeps the rows up to `start` and appends after them."""

    def __init__(self, path: Path, start: int) -> None:
        from emotag_core.io.atomic import write_text

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        old = self.path.read_text().splitlines() if start > 0 and self.path.exists() else []
        keep = [ln for ln in old if ln.strip() and json.loads(ln)["step"] <= start]
        write_text(self.path, "".join(ln + "\n" for ln in keep))
        self._f = self.path.open("a", encoding="utf-8")

    def __call__(self, step: int, terms: Mapping[str, float]) -> None:
        self._f.write(json.dumps({"step": int(step), **{k: float(v) for k, v in terms.items()}}) + "\n")
        self._f.flush()

    def end(self) -> None:
        self._f.close()

    @staticmethod
    def read(path: Path) -> list[dict[str, float]]:
        """The rows of a JsonLinesLog file, in order."""
        return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]
