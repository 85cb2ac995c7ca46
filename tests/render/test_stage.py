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


def test_heldout_part_of_short_clips():
    """A clip shorter than adapt.eval_from_s holds out what follows the adaptation part; a clip
    inside the adaptation part has no held-out render (a newcomer's 7 s video once failed here)."""
    from emotag_core.config import load_params
    from stages.render import heldout_start

    p = load_params("params.yaml", {"adapt": {"eval_from_s": 10.0, "train_seconds": 5.0}, "ingest": {"fps": 25.0}})
    assert heldout_start(p) == 250
    assert heldout_start(p, 400) == 250
    assert heldout_start(p, 182) == 125  # 7.3 s: held out from 5 s
    assert heldout_start(p, 125) is None
