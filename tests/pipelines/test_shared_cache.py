"""A second clone sharing a local-directory DVC remote gets every stage from the cache, and the
users' CI cycle reruns only the stage whose params changed."""
import subprocess
import sys
from pathlib import Path

import yaml

from pipelines.ci_cycle import cycle

DVC_YAML = """
stages:
  prep:
    foreach: ${ids}
    do:
      cmd: python -c "import sys; open('out/${key}.1','w').write(str(${item.x}))"
      params:
        - ids.${key}
      outs:
        - out/${key}.1
  train:
    cmd: python -c "import glob; open('model.txt','w').write(str(sum(int(open(f).read()) for f in sorted(glob.glob('out/*.1')))))"
    deps:
      - out
    outs:
      - model.txt
"""


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def dvc(*args, cwd):
    return subprocess.run([str(Path(sys.executable).with_name("dvc")), *args], cwd=cwd, check=True,
                          capture_output=True, text=True)


def test_second_clone_runs_nothing_and_ci_reruns_only_changes(tmp_path):
    a, remote = tmp_path / "a", tmp_path / "remote"
    a.mkdir()
    remote.mkdir()
    git("init", "-q", cwd=a)
    git("config", "user.email", "t@t", cwd=a)
    git("config", "user.name", "t", cwd=a)
    dvc("init", "-q", cwd=a)
    dvc("remote", "add", "-d", "shared", str(remote), cwd=a)
    (a / "dvc.yaml").write_text(DVC_YAML)
    (a / "params.yaml").write_text(yaml.safe_dump({"ids": {f"id{i}": {"x": i} for i in range(3)}}))
    (a / "out").mkdir()
    (a / "out" / ".gitkeep").write_text("")
    r1 = cycle(cwd=a)
    assert sorted(r1.ran) == ["prep@id0", "prep@id1", "prep@id2", "train"] and r1.pushed
    git("add", "-A", cwd=a)
    git("commit", "-qm", "run", cwd=a)

    b = tmp_path / "b"
    git("clone", "-q", str(a), str(b), cwd=tmp_path)
    r2 = cycle(cwd=b)
    assert r2.ran == [], r2.log
    assert (b / "model.txt").read_text() == "3"
    assert "up to date" in dvc("status", cwd=b).stdout

    p = yaml.safe_load((b / "params.yaml").read_text())
    p["ids"]["id1"]["x"] = 10
    (b / "params.yaml").write_text(yaml.safe_dump(p))
    r3 = cycle(cwd=b)
    assert sorted(r3.ran) == ["prep@id1", "train"]
    assert (b / "model.txt").read_text() == "12"


def test_workflow_calls_the_cycle(repo_root):
    wf = yaml.safe_load((repo_root / ".github/workflows/dvc-repro.yml").read_text())
    steps = " ".join(str(s.get("run", "")) for s in wf["jobs"]["repro"]["steps"])
    assert "python -m pipelines.ci_cycle" in steps and "make setup" in steps
