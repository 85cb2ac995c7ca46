"""The `track` job (`emotag_core.flame.track.track_run`): landmarks table + frame store -> schema-valid
flame.parquet + overlay video, with progress reported."""
from __future__ import annotations

import numpy as np

from emotag_core.config import FlameConfig, TrackConfig
from emotag_core.io.frames import encode_jpeg
from emotag_core.io.tables import TableWriter, column_array, read_table
from emotag_core.flame.track import track_run

from .conftest import synthetic_track


def test_track_stage_writes_table_and_overlay(open_model, tmp_path):
    T = 12
    syn = synthetic_track(open_model, T, seed=5)
    found = np.ones(T, bool)
    found[3] = False
    lm_meta = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0",
               "blendshape_names": ["b"] * 52}
    with TableWriter(tmp_path / "landmarks.parquet", "landmarks", lm_meta) as w:
        w.write({"clip_id": np.array(["c"] * T), "frame": np.arange(T, dtype=np.int32), "face_found": found,
                 "landmarks": syn["lmk"].reshape(T, -1), "blendshapes": np.zeros((T, 52), np.float32),
                 "transform": np.zeros((T, 16), np.float32)})
    fr_meta = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0",
               "source": "x", "audio": "x", "face_index": 0}
    jpeg = encode_jpeg(np.full((512, 512, 3), 90, np.uint8))
    with TableWriter(tmp_path / "frames.parquet", "frames", fr_meta) as w:
        w.write({"clip_id": np.array(["c"] * T), "frame": np.arange(T, dtype=np.int32),
                 "t": np.arange(T) / 25.0, "src_t": np.arange(T) / 25.0, "box": np.zeros((T, 4), np.float32),
                 "det_conf": np.ones(T, np.float32), "face_found": found, "jpeg": [jpeg] * T})
    seen = []
    stats = track_run(tmp_path / "landmarks.parquet", tmp_path / "frames.parquet", tmp_path / "flame.parquet",
                      tmp_path / "track_overlay.mp4", FlameConfig(), TrackConfig(iters=60, identity_frames=6),
                      progress=lambda done, total: seen.append((done, total)))
    table, meta = read_table(tmp_path / "flame.parquet", "flame")
    assert stats["frames"] == T and table.num_rows == T
    assert seen and seen[-1] == (T, T) and all(b[0] >= a[0] for a, b in zip(seen, seen[1:]))
    assert meta["flame_model"] == "open" and meta["n_expr"] == open_model.n_expr
    assert len(meta["shape"]) == open_model.n_shape and meta["camera"]["cx"] == 256
    assert column_array(table, "valid").tolist() == found.tolist()
    assert column_array(table, "expr").shape == (T, open_model.n_expr)
    import av
    with av.open(str(tmp_path / "track_overlay.mp4")) as c:
        n = sum(1 for _ in c.decode(video=0))
    assert n == T
