"""The harness's reading of a `dvc repro -k` log: each stage gets only its own failure lines."""
from __future__ import annotations

from reliability.harness import exit_code_of, split_stages

LOG = """Running stage 'ingest@bad':
> python -m stages.ingest bad
ingest: InputError: data/raw/bad/x.mp4: no video stream; give a video file
Running stage 'ingest@good':
> python -m stages.ingest good
ingest@good done in 3.0 s
ERROR: failed to reproduce 'ingest@bad': failed to run: python -m stages.ingest bad, exited with 2
Updating lock file 'dvc.lock'
ERROR: failed to reproduce stages: 'ingest@bad' and 'ingest@other'
"""


def test_trailing_failure_summary_goes_to_the_stage_it_names() -> None:
    sections = split_stages(LOG)
    assert exit_code_of(sections["ingest@good"]) == 0, sections["ingest@good"]
    assert exit_code_of(sections["ingest@bad"]) == 2
    assert "no video stream" in sections["ingest@bad"]
