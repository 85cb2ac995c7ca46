"""The demo's tests share one tiny adapted identity on disk (tests/serve/tiny_avatar.py)."""
from __future__ import annotations

import pytest

from .tiny_avatar import IDENTITY, make_workdir, speech_wav

# small limits so each bad input is cheap to make
SERVE = {"max_upload_mb": 0.25, "max_audio_s": 2.4, "long_audio": "cut", "queue_size": 2, "workers": 1,
         "keep_jobs": 4}


@pytest.fixture(scope="session")
def workdir(tmp_path_factory, repo_root):
    return make_workdir(tmp_path_factory.mktemp("serve"), repo_root, serve=SERVE)


@pytest.fixture(scope="session")
def speech(workdir):
    """Speech-like WAVs: 1.2 s, 0.4 s and 4 s (over serve.max_audio_s)."""
    return {k: speech_wav(workdir / f"speech_{k}.wav", s, seed=i)
            for i, (k, s) in enumerate({"short": 1.2, "tiny": 0.4, "long": 4.0}.items())}


@pytest.fixture
def in_workdir(workdir, monkeypatch, one_torch_thread):
    monkeypatch.chdir(workdir)
    return workdir


def renderer_of(root, p):
    """The demo's renderer over the tiny identity, built from the library (what `emotag serve` builds)."""
    from emotag_core.render.jobs import TargetFiles
    from emotag_core.serve.jobs import Renderer, load_avatar

    cfg = p.serve

    def load(identity):
        return load_avatar(root / "data" / "models" / identity,
                           TargetFiles(identity, root / "data" / "processed" / identity), p, "cpu")

    return Renderer(lambda: [IDENTITY], load, root / "renders" / "_serve", cfg.queue_size, cfg.workers,
                    cfg.jpeg_quality, cfg.keep_jobs)
