"""The `emotag serve` verb: which identities it offers, and that it binds to localhost by default."""
from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time

import psutil
import pytest

from emotag_core.config import ServeConfig
from stages import cli
from stages.common import params


def test_offers_only_adapted_targets_and_names_them_in_the_404(in_workdir):
    from emotag_core.serve.media import RequestError

    renderer, label = cli.demo_renderer(params())
    assert label == "cpu"
    assert renderer.identities() == ["anna"]  # bob is a listed target, but never adapted
    assert renderer.out == (in_workdir / "renders" / "_serve").resolve()

    async def unknown():
        with pytest.raises(RequestError) as e:
            renderer.admit("bob")
        return e.value

    err = asyncio.run(unknown())
    assert err.status == 404 and "`bob`" in err.message and "anna" in err.message
    renderer.shutdown()


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


def test_serve_binds_to_localhost_by_default(workdir, repo_root):
    assert ServeConfig().host == "127.0.0.1"
    port = free_port()
    proc = serve_process(workdir, repo_root, port)
    try:
        socks = [c for c in psutil.Process(proc.pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]
        assert socks and {c.laddr.ip for c in socks} == {"127.0.0.1"} and {c.laddr.port for c in socks} == {port}
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}/" in out
