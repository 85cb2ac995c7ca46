"""render@/evaluate@ pieces that need no trained model: the library's jobs and the stage's door."""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from emotag_core.config import RenderConfig
from emotag_core.metrics.evaluate import dubbed
from emotag_core.render.jobs import TargetFiles, espeak_clip, plan_renders, skip_samples
from emotag_core.render.video import probe_streams
from emotag_core.split import Split


def test_never_adapted_identity_names_the_stage_to_run(tmp_path, repo_root):
    """The stage checks before any work: one line naming `dvc repro adapt@<id>`, exit 2."""
    shutil.copy(repo_root / "params.yaml", tmp_path / "params.yaml")
    env = dict(os.environ, PYTHONPATH=str(repo_root))
    r = subprocess.run([sys.executable, "-m", "stages.render", "anna"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "dvc repro adapt@anna" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr


def test_cross_language_clip_and_heldout_offset(tmp_path):
    wav = espeak_clip("de", "Guten Tag.", tmp_path / "de.wav")
    assert probe_streams(wav)["audio"]["duration"] > 0.3
    blocks = [np.arange(5), np.arange(5, 12), np.arange(12, 20)]
    assert np.concatenate(list(skip_samples(blocks, 7))).tolist() == list(range(7, 20))


def test_dubbed_sample_is_flagged(tmp_path, repo_root):
    assert dubbed(repo_root / "data" / "sample")  # the embedded sample's speech is dubbed
    (tmp_path / "x.yaml").write_text("identity: x\n")
    assert dubbed(tmp_path) is None


def _split(n_frames: int, train_s: float = 5.0, from_s: float = 10.0) -> Split:
    from types import SimpleNamespace

    clips = {"clip_id": np.array(["c0"] * n_frames), "frame": np.arange(n_frames)}
    return Split.from_config(SimpleNamespace(train_seconds=train_s, eval_from_s=from_s), None, clips, 25.0)


def test_heldout_part_of_short_clips(tmp_path):
    """A clip shorter than adapt.eval_from_s holds out what follows the adaptation part; a clip
    inside the adaptation part has no held-out render (a newcomer's 7 s video once failed here)."""
    files = TargetFiles("anna", tmp_path)
    cfg = RenderConfig(cross_language_voice=None)
    assert _split(400).heldout_start == 250
    logs: list[str] = []
    jobs = plan_renders(files, _split(182), cfg, tmp_path, logs.append)  # 7.3 s: held out from 5 s
    assert [j.name for j in jobs] == ["heldout"] and "from 5 s" in jobs[0].note
    assert len(logs) == 1 and "holding out from 5 s" in logs[0]
    logs.clear()
    assert plan_renders(files, _split(125), cfg, tmp_path, logs.append) == []
    assert "no held-out render" in logs[0]


def test_default_renders_and_file_names(tmp_path):
    files = TargetFiles("anna", tmp_path)
    jobs = plan_renders(files, _split(400), RenderConfig(), tmp_path, lambda s: None)
    assert [(j.name, j.kind) for j in jobs] == [("heldout", "heldout"), ("xlang_de", "cross_language")]
    assert "from 10 s" in jobs[0].note
    a = tmp_path / "speech.wav"
    a.write_bytes(b"")
    jobs = plan_renders(files, _split(400), RenderConfig(audio=[str(a)]), tmp_path, lambda s: None)
    assert [(j.name, j.kind) for j in jobs] == [("speech", "file")]  # render.audio replaces the defaults


def test_a_backend_whose_features_the_model_does_not_read_fails_before_any_work():
    """`audio_features.backend` changed after adapt@<id> (e.g. whisper's 384-d states for a GRMN trained on 320-d
    log-mel): a named ConfigError before the render, not a shape error mid-stream."""
    from emotag_core.config import AudioFeaturesConfig
    from emotag_core.errors import ConfigError
    from emotag_core.render.jobs import feature_backend

    from .fakes import tiny_animator

    cfg = AudioFeaturesConfig(backend="logmel")
    assert feature_backend(cfg, 25.0, tiny_animator(audio_dim=320)).feature_dim == 320
    with pytest.raises(ConfigError, match=r"`logmel` gives 320-d features, but the adapted GRMN reads 384-d"):
        feature_backend(cfg, 25.0, tiny_animator(audio_dim=384))
