"""Tracker end to end on a short synthetic identity: its mp4 -> ingest -> landmarks -> track,
measured against the true parameters (issue 4). The same code backs bench/bench_track_synth.py."""
from __future__ import annotations

from dataclasses import replace

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from emotag_core.config import load_params
from emotag_core.flame.truth_eval import jaw_angle_deg, source_to_crop

ROOT = Path(__file__).resolve().parents[2]
SEED, SECONDS, SIZE = 7, 3.0, 256


def _bench():
    spec = importlib.util.spec_from_file_location("bench_track_synth", ROOT / "bench" / "bench_track_synth.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    torch.set_num_threads(1)
    bench = _bench()
    params = load_params(ROOT / "params.yaml")
    params = replace(params, flame=replace(params.flame, model="open"))  # the face mask (ICT: test_track_e2e_ict.py)
    work = bench.prepare_identity(params, SEED, SECONDS, SIZE, tmp_path_factory.mktemp("e2e") / "id")
    return bench, work, bench.track_identity(params, work)


def _landmark_bias_px(work: Path) -> float:
    """Mean distance of the detector's landmarks to the true landmarks, crop pixels (the tracker's input error)."""
    import pyarrow.parquet as pq

    from emotag_core.flame.track import read_landmarks

    clips, _ = read_landmarks(work / "landmarks.parquet")
    box = np.stack(pq.read_table(work / "frames.parquet", columns=["box"]).column("box").to_numpy(zero_copy_only=False))
    truth = np.load(work / "synthetic" / "truth" / f"{clips[0][0]}.npz")
    true = source_to_crop(truth["landmarks2d"], box, 512)
    return float(np.linalg.norm(clips[0][2][:, :468, :2] - true[:, :468], axis=-1).mean())


def test_track_end_to_end_against_truth(e2e):
    bench, work, r = e2e
    assert r["frames"] == int(SECONDS * 25)
    # the tracker follows its input: it fits the detected landmarks closely ...
    assert r["landmark_fit_px"] < 3.0
    # ... and its mesh is no further from the truth than the detector's landmarks are (a wrong crop
    # mapping, camera or jaw convention gives tens of pixels here)
    assert r["vertex_px"] < 1.1 * _landmark_bias_px(work)
    assert r["vertex_px"] < 12.0
    assert r["jaw_deg"] <= 4.5
    assert np.isfinite(r["focal"]) and 0.5 * 512 < r["focal"] < 5 * 512


@pytest.mark.xfail(strict=True, reason="issue 4 target not reached: MediaPipe's landmarks on the synthetic "
                   "renders carry a static per-identity bias of ~7-9 px (crop) that the fitted shape and "
                   "expression follow (removing it: 1.3-1.5 px); the optional photometric term (free albedo) "
                   "does not remove it. Most of the bias comes from the random identity shapes (synth.shape_std 1: "
                   "asymmetric, warped faces the detector's face prior does not follow), the rest from the "
                   "texture/mesh mismatch that synth.texture_calib_iters reduces at the mean shape (4.13 -> 3.37 px "
                   "with shape_std 0); see BENCHMARKS.md 'track' (error decomposition, texture calibration)")
def test_track_end_to_end_meets_issue_target(e2e):
    bench, _, r = e2e
    assert r["vertex_px"] <= bench.TARGET_PX and r["jaw_deg"] <= bench.TARGET_JAW_DEG


def test_crop_mapping_and_jaw_angle():
    box = np.array([[10.0, 20.0, 128.0, 128.0]])
    px = np.array([[[10.0, 20.0], [74.0, 84.0], [138.0, 148.0]]])
    assert np.allclose(source_to_crop(px, box, 512), [[[0, 0], [256, 256], [512, 512]]])
    a = np.array([[0.2, 0.0, 0.0], [0.1, 0.05, 0.0]])
    assert np.allclose(jaw_angle_deg(a, a), 0.0, atol=1e-4)
    assert np.isclose(jaw_angle_deg(a[:1], np.array([[0.3, 0.0, 0.0]]))[0], np.degrees(0.1), atol=1e-4)
