"""The `emotag serve` verb: which identities it offers, and that it binds to localhost by default."""
from __future__ import annotations

import asyncio

import psutil
import pytest

from emotag_core.config import ServeConfig
from stages import cli
from stages.common import params

from .conftest import free_port, serve_process


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
