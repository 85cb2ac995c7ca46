"""The onboard flow's contract on a tiny DVC repo: parallel identities, retry after SIGKILL,
failures isolated, DVC status clean afterwards, a second run recomputes nothing."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipelines import dvc_state, onboard

DVC_YAML = """
stages:
  s1:
    foreach: ${ids}
    do:
      cmd: python -c "import time,sys; time.sleep(${item.sleep}); sys.exit(${item.code})" KILLME-${key} && echo ${item.x} > out/${key}.1
      params:
        - ids.${key}
      outs:
        - out/${key}.1
  s2:
    foreach: ${ids}
    do:
      cmd: cat out/${key}.1 out/${key}.1 > out/${key}.2
      deps:
        - out/${key}.1
      outs:
        - out/${key}.2
"""


def make_repo(root: Path, ids: dict) -> None:
    import yaml

    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([str(Path(sys.executable).with_name("dvc")), "init", "-q"], cwd=root, check=True)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "params.yaml").write_text(yaml.safe_dump({"ids": ids}))
    (root / "out").mkdir()


def killer(marker: str, stop: threading.Event, killed: list) -> None:
    import psutil

    while not stop.is_set():
        for p in psutil.process_iter(["cmdline"]):
            if marker in " ".join(p.info["cmdline"] or []) and "python" in " ".join(p.info["cmdline"][:1]):
                os.kill(p.pid, signal.SIGKILL)
                killed.append(p.pid)
                return
        time.sleep(0.05)


@pytest.mark.slow
def test_parallel_retry_after_sigkill_isolation_and_noop_rerun(tmp_path, prefect_harness):
    ids = {"a": {"x": 1, "sleep": 1.5, "code": 0}, "b": {"x": 2, "sleep": 1.5, "code": 0},
           "c": {"x": 3, "sleep": 0.1, "code": 2}}  # c rejects its input (exit 2): not retried
    make_repo(tmp_path, ids)
    stop, killed = threading.Event(), []
    th = threading.Thread(target=killer, args=("KILLME-b", stop, killed), daemon=True)
    th.start()
    t0 = time.perf_counter()
    res = {r.id: r for r in onboard.preprocess(["a", "b", "c"], workers=3, runner="dask", retries=2, retry_delay=0.2,
                                                stages=("s1", "s2"), repo=tmp_path)}
    stop.set()
    assert killed, "the killer never found the stage process"
    assert res["a"].ran == ["s1", "s2"] and res["a"].failed is None
    assert res["b"].ran == ["s1", "s2"] and res["b"].failed is None  # retried after SIGKILL
    assert res["c"].failed and "s1" in res["c"].failed
    assert (tmp_path / "out/b.2").read_text() == "2\n2\n"
    stale = dvc_state.stale_stages(cwd=tmp_path)
    assert stale == {"s1@c", "s2@c"}, stale
    # second run: nothing recomputed for the identities that finished
    res2 = {r.id: r for r in onboard.preprocess(["a", "b"], stages=("s1", "s2"), repo=tmp_path)}
    assert res2["a"].ran == [] and res2["b"].ran == []
    out = subprocess.run([str(Path(sys.executable).with_name("dvc")), "repro", "s2@a", "s2@b"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert out.returncode == 0 and "Running stage" not in out.stdout, out.stdout
    assert time.perf_counter() - t0 < 120


PAR_YAML = """
stages:
  s1:
    foreach: ${ids}
    do:
      cmd: python -c "import time; t=time.time(); time.sleep(2.0); open('out/${key}.1','w').write('%f %f' % (t, time.time()))"
      params:
        - ids.${key}
      outs:
        - out/${key}.1
  s2:
    foreach: ${ids}
    do:
      cmd: cat out/${key}.1 > out/${key}.2
      deps:
        - out/${key}.1
      outs:
        - out/${key}.2
"""


@pytest.mark.slow
def test_identities_run_side_by_side_on_two_workers(tmp_path, prefect_harness):
    """With 2 workers, two identities' first stages overlap in time (a worker must not sit blocked
    on a later stage's upstream while another identity waits)."""
    make_repo(tmp_path, {"a": {"x": 1}, "b": {"x": 2}})
    (tmp_path / "dvc.yaml").write_text(PAR_YAML)
    res = {r.id: r for r in onboard.preprocess(["a", "b"], workers=2, runner="thread", stages=("s1", "s2"),
                                                repo=tmp_path)}
    assert all(r.ran == ["s1", "s2"] and r.failed is None for r in res.values()), res
    (a0, a1), (b0, b1) = (map(float, (tmp_path / f"out/{k}.1").read_text().split()) for k in "ab")
    assert a0 < b1 and b0 < a1, f"s1@a ran {a0:.2f}-{a1:.2f}, s1@b {b0:.2f}-{b1:.2f}: not in parallel"
