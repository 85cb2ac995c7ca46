"""render@/evaluate@ stage pieces that need no trained model."""
import numpy as np
import pytest

from emotag_core.errors import StageMissingError
from emotag_core.render.video import probe_streams
from stages.common import Paths
from stages.evaluate import dubbed
from stages.render import espeak_clip, need_adapted, skip_samples


def test_never_adapted_identity_names_the_stage_to_run(tmp_path):
    with pytest.raises(StageMissingError, match=r"dvc repro adapt@anna"):
        need_adapted("anna", Paths("anna", root=tmp_path))


def test_cross_language_clip_and_heldout_offset(tmp_path):
    wav = espeak_clip("de", "Guten Tag.", tmp_path / "de.wav")
    assert probe_streams(wav)["audio"]["duration"] > 0.3
    blocks = [np.arange(5), np.arange(5, 12), np.arange(12, 20)]
    assert np.concatenate(list(skip_samples(blocks, 7))).tolist() == list(range(7, 20))


def test_dubbed_sample_is_flagged(tmp_path, repo_root):
    assert dubbed(repo_root / "data" / "sample")  # the embedded sample's speech is dubbed
    (tmp_path / "x.yaml").write_text("identity: x\n")
    assert dubbed(tmp_path) is None
