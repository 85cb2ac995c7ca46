"""Session fixtures of the reliability suite: the corpus is generated once per session."""
from __future__ import annotations

import shutil

import pytest


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: over ~30 s (runs in `make test`, skipped by -m 'not slow')")


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    from .corpus import build

    if shutil.which("ffmpeg") is None or shutil.which("espeak-ng") is None:
        pytest.fail("ffmpeg and espeak-ng are required (apt-get install ffmpeg espeak-ng; `make system`)")
    d = tmp_path_factory.mktemp("corpus")
    return d, build(d)
