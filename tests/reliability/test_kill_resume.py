"""Kill-and-resume in CI (reduced): SIGKILL ingest and track of a short clip at random points,
rerun, and require outputs identical to an uninterrupted run and no stale temp files.
The full count over ingest, track, pretrain, adapt and render is `make reliability`."""
from __future__ import annotations

import shutil

import pytest

from . import killresume
from .harness import Scratch

pytestmark = pytest.mark.slow


def test_killed_stages_resume_to_identical_outputs(corpus_dir, tmp_path, monkeypatch):
    folder, _ = corpus_dir
    monkeypatch.setitem(killresume.IDENTITY, "id", "kr")
    scratch = Scratch(tmp_path / "repo", killresume.TINY)
    r = scratch.emotag("add-identity", str(folder / "face_leaves.mp4"), "--id", "kr", "--role", "target")
    assert r.returncode == 0, r.stdout
    code, sections = scratch.repro("landmarks@kr")  # the inputs of track
    assert code == 0, sections
    trials = killresume.run_trials(scratch, tmp_path / "ref", {"ingest": 2, "track": 1}, seed=1)
    assert len(trials) == 3
    assert sum(t.killed for t in trials) >= 2, [t.kill_at_s for t in trials]  # the kills hit running stages
    for t in trials:
        assert t.identical, f"{t.stage} killed at {t.kill_at_s} s: {t.detail}"
        assert not t.stale, f"{t.stage}: stale temp files {t.stale}"
        assert "bitwise" in t.modes  # tables are compared byte for byte
    shutil.rmtree(tmp_path / "ref")
