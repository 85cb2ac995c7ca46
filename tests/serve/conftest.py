"""The demo's tests share one tiny adapted identity on disk (tests/serve/tiny_avatar.py)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_process(workdir, repo_root, port: int, *extra: str) -> subprocess.Popen:
    """`emotag serve --port PORT` in `workdir`, once it answers (killed by the caller)."""
    import os
    import urllib.request

    env = dict(os.environ, PYTHONPATH=str(repo_root))
    proc = subprocess.Popen([sys.executable, "-m", "stages.cli", "serve", "--port", str(port), *extra], cwd=workdir,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    while time.time() - t0 < 60:
        if proc.poll() is not None:
            raise AssertionError(f"emotag serve exited {proc.returncode}: {proc.stdout.read()}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise AssertionError("emotag serve did not answer within 60 s")
