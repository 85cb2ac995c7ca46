import shutil
import subprocess
import sys

import pytest

from stages import cli


@pytest.fixture
def repo(tmp_path, repo_root, monkeypatch):
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    shutil.copy(repo_root / "dvc.yaml", tmp_path / "dvc.yaml")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_repo_dag_in_sync_with_params(repo_root, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert cli.dag_in_sync(), "run `emotag sync-dag`"


def test_add_identity_registers_and_copies(repo, tmp_path):
    video = tmp_path / "my clip é.mp4"
    video.write_bytes(b"\x00" * 100)
    cli.add_identity([video], "anna", "target")
    from emotag_core.config import load_params

    p = load_params("params.yaml")
    assert p.identities["anna"].source == "data/raw/anna" and "anna" in p.targets
    assert (repo / "data/raw/anna/my clip é.mp4").exists()
    # comments of the user's params file survive
    assert "CPU smoke profile" in (repo / "params.yaml").read_text()


def test_add_corpus_identity_updates_corpus_deps(repo, tmp_path):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\x00" * 100)
    cli.add_identity([video], "bob", "corpus")
    assert cli.dag_in_sync()
    text = (repo / "dvc.yaml").read_text()
    if "corpus:" in text:
        assert "data/processed/bob/flame.parquet" in text


@pytest.mark.parametrize("name,err", [("v.txt", "extension"), ("missing.mp4", "no such file")])
def test_add_identity_rejects_bad_input(repo, tmp_path, name, err):
    v = tmp_path / name
    if name != "missing.mp4":
        v.write_text("x")
    assert cli.main(["add-identity", str(v), "--id", "x"]) == 2
    assert not (repo / "data/raw/x").exists()


def test_add_identity_rejects_duplicate_and_bad_id(repo, tmp_path):
    v = tmp_path / "v.mp4"
    v.write_bytes(b"\x00" * 10)
    assert cli.main(["add-identity", str(v), "--id", "sample"]) == 2
    assert cli.main(["add-identity", str(v), "--id", "../evil"]) == 2


def test_doctor_runs_as_console_command():
    out = subprocess.run([sys.executable, "-m", "stages.cli", "doctor"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "ffmpeg" in out.stdout and "face_landmarker.task" in out.stdout


def test_doctor_reports_metric_weights(tmp_path, monkeypatch):
    from emotag_core.config import load_params

    params = load_params("params.yaml")
    rows = {(c, b): (ok, d) for c, b, ok, d in cli._metric_weights_rows(params)}
    ok, detail = rows[("metric", "sync_c / sync_e")]
    assert not ok and "evaluate.syncnet_weights" in detail  # no weights configured in the smoke profile
    w = tmp_path / "syncnet_v2.model"
    w.write_bytes(b"x")
    params.evaluate.syncnet_weights = str(w)
    rows = {(c, b): (ok, d) for c, b, ok, d in cli._metric_weights_rows(params)}
    assert rows[("metric", "sync_c / sync_e")] == (True, str(w))
    assert ("metric", "lpips") in rows


def test_adhoc_renders_go_outside_what_dvc_owns(repo_root, tmp_path):
    """`emotag render <id> <audio>` writes under renders/<id>/, which no dvc.yaml stage lists and git ignores,
    so an ad-hoc render never dirties `dvc status` nor is deleted by the next `dvc repro`."""
    import yaml

    from stages.common import Paths

    out = Paths("anna").adhoc_renders
    assert out.parts[:2] == ("renders", "anna")
    dag = yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]
    owned = [str(o) for st in dag.values() for o in (st.get("do", st).get("outs") or [])]
    assert not any(o.split("/")[0] == "renders" for o in owned)
    assert "renders/" in (repo_root / ".gitignore").read_text().split()
    # a missing audio file: a named error and a non-zero exit, before any model is loaded
    r = subprocess.run([sys.executable, "-m", "stages.cli", "render", "anna", str(tmp_path / "nope.wav")],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode != 0 and "nope.wav" in r.stderr
