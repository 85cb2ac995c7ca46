"""The one progress protocol (emotag_core.progress): the jobs report monotone `done` ending at `total`, the
adapters keep one running count, and the stages' RichProgress writes plain lines when not on a terminal."""
from __future__ import annotations

import io
from functools import partial
from pathlib import Path
from typing import Any

from emotag_core.progress import NO_PROGRESS, Part, RichProgress, Steps


class Recorder:
    """A Progress that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, int | None, dict[str, Any]]] = []

    def __call__(self, done: int, total: int | None, **info: Any) -> None:
        self.calls.append((done, total, info))

    def check(self, total: int) -> None:
        """Monotone `done`, the last call (total, total)."""
        assert self.calls, "the job never reported progress"
        done = [d for d, _, _ in self.calls]
        assert done == sorted(done), done
        assert self.calls[-1][:2] == (total, total), self.calls[-1]


def test_steps_and_part_keep_one_running_count() -> None:
    rec = Recorder()
    steps = Steps(rec, 10, phase="a")
    steps(3)
    steps(4)
    steps.finish()  # an estimate that was off: the total becomes what was done
    assert [c[:2] for c in rec.calls] == [(3, 10), (7, 10), (7, 7)] and rec.calls[0][2] == {"phase": "a"}
    rec = Recorder()
    first = Part(rec, 0, 12, render="x")
    for d in (2, 5, 5):
        first(d, 5)
    second = Part(rec, first.done, 12, render="y")
    second(7, 7, render="ignored")  # the part's fixed info wins
    assert [c[:2] for c in rec.calls] == [(2, 12), (5, 12), (5, 12), (12, 12)]
    assert rec.calls[-1][2] == {"render": "y"}
    NO_PROGRESS(1, None, loss=0.5)


def test_rich_progress_writes_plain_lines_off_a_terminal() -> None:
    buf = io.StringIO()
    with RichProgress("job@x", stream=buf, every_s=3600) as bar:
        for i in range(1, 6):
            bar(i, 5, loss=1.0 / i)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("job@x: 5/5 (100%)") and "loss=0.2" in lines[0]
    buf = io.StringIO()
    with RichProgress("job@y", stream=buf, every_s=0.0) as bar:  # every call prints; unknown total
        bar(1, None)
        bar(2, None)
    assert [ln.split(",")[0] for ln in buf.getvalue().splitlines()] == ["job@y: 1", "job@y: 2"]


def test_a_teacher_job_reports_its_frames(tmp_path: Path) -> None:
    from teachers.test_audio import make_inputs

    from emotag_core.config import AudioFeaturesConfig
    from emotag_core.teachers import audio

    frames, _ = make_inputs(tmp_path, 2.0)
    rec = Recorder()
    n = audio.write_features(frames, lambda clip: tmp_path / f"{clip}.wav", tmp_path / "af.parquet",
                             AudioFeaturesConfig(backend="logmel"), rec)
    rec.check(n)
    assert n == 50


def test_pretrain_and_adapt_runs_report_iterations_and_loss(tmp_path: Path, one_torch_thread) -> None:
    from metrics.synth_target import CORPUS, TARGET, make_workdir

    from emotag_core.config import load_params
    from emotag_core.split import Split
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.live import JsonLinesLog
    from emotag_core.train.recipe import adapt_run, identity_tables, pretrain_run_indices

    w = make_workdir(tmp_path / "w")
    p = load_params(w / "params.yaml")
    proc = w / "data" / "processed"
    pre = Recorder()
    pretrain_run_indices(p, [build_identity_index(CORPUS, identity_tables(proc / CORPUS))], w / "pre", w / "ck",
                         partial(JsonLinesLog, w / "pre.jsonl"), pre)
    pre.check(p.pretrain.iters)
    assert pre.calls[0][:2] == (0, p.pretrain.iters)  # the start (the resumed iteration) comes first
    assert all(isinstance(c[2]["loss"], float) for c in pre.calls[1:])  # the CPU reads every loss back
    ix = build_identity_index(TARGET, identity_tables(proc / TARGET))
    ad = Recorder()
    adapt_run(p, ix, Split.from_config(p.adapt, None, ix.index, ix.meta["fps"]), w / "pre" / "grmn.pt", w / "t",
              w / "ck_t", None, ad, log=partial(JsonLinesLog, w / "t.jsonl"))
    ad.check(p.adapt.iters)
    assert [c[0] for c in ad.calls] == list(range(p.adapt.iters + 1))


def test_rich_progress_on_a_terminal_draws_a_bar() -> None:
    buf = io.StringIO()
    with RichProgress("job@z", stream=buf, tty=True) as bar:
        bar(3, 4, loss=0.25)
        bar(4, 4)
    out = buf.getvalue()
    assert "job@z" in out and "4/4" in out and "loss=0.25" in out
