"""The dvclive curves of pretrain/adapt after a resume: rows past the resumed step are dropped."""
from __future__ import annotations

from pathlib import Path

from emotag_core.train.recipe import LiveLog


def _steps(tsv: Path) -> list[int]:
    lines = tsv.read_text().splitlines()
    col = lines[0].split("\t").index("step")
    return [int(ln.split("\t")[col]) for ln in lines[1:]]


def test_resume_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    log = LiveLog(folder, start=0)
    for step in range(0, 30, 5):  # a run killed after logging step 25
        log(step, {"loss": 1.0 / (step + 1), "kl": 0.5})
    tsvs = sorted(folder.rglob("*.tsv"))
    assert {t.stem for t in tsvs} == {"loss", "kl"}
    assert _steps(tsvs[0]) == [0, 5, 10, 15, 20, 25]

    log = LiveLog(folder, start=10)  # resumed from the checkpoint of step 10
    for step in range(15, 35, 5):
        log(step, {"loss": 0.1, "kl": 0.5})
    log.end()
    for tsv in folder.rglob("*.tsv"):
        steps = _steps(tsv)
        assert steps == [0, 5, 10, 15, 20, 25, 30], (tsv, steps)  # no duplicate steps, nothing lost
    assert not list(folder.rglob(".tmp-*"))
