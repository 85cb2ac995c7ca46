"""The bad-input corpus through the real CLI and `dvc repro` in a scratch clone: every case is
handled correctly or rejected with a named error naming the file, and nothing partial is left."""
from __future__ import annotations

import pytest

from .harness import Scratch
from .run_corpus import run_corpus, summary_rows

pytestmark = pytest.mark.slow


def test_corpus_cases_are_handled_or_rejected_cleanly(corpus_dir, tmp_path):
    folder, cases = corpus_dir
    assert len(cases) >= 25
    groups = {c.group for c in cases}
    assert groups == {"video", "audio", "table", "weights"}
    scratch = Scratch(tmp_path / "repo", {"ingest.size": 128})
    results = run_corpus(scratch, folder, cases)
    bad = [f"{r.case}: expected {r.expect}, got {r.outcome}: {r.detail}" for r in results if not r.ok]
    assert not bad, "\n".join(bad)
    counts = summary_rows(results)
    assert counts["failures"] == 0 and counts["partial"] == 0
    assert counts["handled"] + counts["rejected"] == counts["tried"] == len(cases)
    # expectations are not vacuous: rejections occur among video, table and weight inputs,
    # correct handling among video and audio inputs (every audio case is handled, not rejected)
    assert {r.group for r in results if r.outcome == "rejected"} >= {"video", "table", "weights"}
    assert {r.group for r in results if r.outcome == "handled"} >= {"video", "audio"}
