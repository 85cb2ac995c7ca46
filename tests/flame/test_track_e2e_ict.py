"""ICT model end to end on a short synthetic identity (synth mp4 -> ingest -> landmarks -> track), 512 px,
box_scale 1.8, identity weights ~ N(0, 1): face and head-and-neck (visible vertices) reported separately."""
from __future__ import annotations

import importlib.util
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from emotag_core.config import load_params

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def e2e_ict(tmp_path_factory):
    torch.set_num_threads(1)
    spec = importlib.util.spec_from_file_location("bench_track_synth", ROOT / "bench" / "bench_track_synth.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    p = load_params(ROOT / "params.yaml")
    p = replace(p, flame=replace(p.flame, model="ict"), ingest=replace(p.ingest, box_scale=1.8),
                synth=replace(p.synth, shape_std=1.0))
    return bench, bench.run_identity(p, 100, 3.0, 512, tmp_path_factory.mktemp("e2e_ict") / "id")


def test_ict_end_to_end_tracks_the_whole_head(e2e_ict):
    bench, r = e2e_ict
    assert r["frames"] == 75 and r["landmark_fit_px"] < 3.0
    # measured 2026-12-02: face 6.6 px, head-and-neck 7.5 px, jaw 3.5 deg (open model, face only: 7.8 px)
    assert r["face_visible_px"] < 9.0 and r["head_neck_visible_px"] < 10.0 and r["jaw_deg"] < 5.0
    assert r["fps"] > 25


@pytest.mark.xfail(strict=True, reason="issue 17 target (<= 3 px, <= 3 deg) not reached on the ICT model: "
                   "6.6 px face / 7.5 px head-and-neck / 3.5 deg on seed 100; the detector's per-identity "
                   "landmark bias on synthetic renders (issue 4) dominates")
def test_ict_end_to_end_meets_issue_target(e2e_ict):
    bench, r = e2e_ict
    assert r["face_visible_px"] <= 3.0 and r["head_neck_visible_px"] <= 3.0 and r["jaw_deg"] <= 3.0
