import os
import signal
import subprocess
import sys

import pytest

from emotag_core.io.atomic import atomic_dir, atomic_path, sweep_temps, write_text


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_replaces_old_content(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_atomic_dir_swaps_whole_folder(tmp_path):
    target = tmp_path / "d"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(ValueError):
        with atomic_dir(target) as tmp:
            (tmp / "b").write_text("2")
            raise ValueError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_sigkill_leaves_old_output_and_a_sweepable_temp(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "finished")
    code = (
        "import time, sys\n"
        "from emotag_core.io.atomic import atomic_path\n"
        f"with atomic_path({str(target)!r}) as t:\n"
        "    t.write_text('partial'); print('ready', flush=True); time.sleep(60)\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert target.read_text() == "finished"
    assert len(list(tmp_path.iterdir())) == 2
    removed = sweep_temps(tmp_path)
    assert len(removed) == 1 and [q.name for q in tmp_path.iterdir()] == ["out.txt"]
