"""The `geometry` job (`emotag_core.avatar.geometry.geometry_run`), flame backend, end to end on a small
tracked table."""
import numpy as np
import pytest

from emotag_core.avatar.geometry import camera_K, decode_maps, geometry_run
from emotag_core.config import FlameConfig, GeometryConfig
from emotag_core.errors import ConfigError, SchemaError
from emotag_core.flame import load_head_model
from emotag_core.io.tables import read_table, write_table


def _flame_table(path, head, T=3):
    z = head.zeros(T)
    expr = np.zeros((T, head.n_expr), np.float32)
    expr[1, 0] = 1.0
    jaw = np.zeros((T, 3), np.float32)
    jaw[2, 0] = 0.2
    meta = {"fps": 25.0, "frame_size": [512, 512], "backend": "test", "backend_version": "0",
            "flame_model": "open", "n_expr": head.n_expr, "shape": [0.0] * head.n_shape,
            "camera": {"fx": 1000.0, "fy": 1000.0, "cx": 256.0, "cy": 256.0, "width": 512, "height": 512}}
    write_table(path, "flame", {"clip_id": np.array(["c0"] * T), "frame": np.arange(T, dtype=np.int32),
                                "valid": np.ones(T, bool), "expr": expr, "jaw": jaw,
                                "rot": z["rot"].numpy(), "trans": z["trans"].numpy(),
                                "fit_error_px": np.zeros(T, np.float32)}, meta)


def test_flame_backend_writes_maps_of_the_tracked_mesh(tmp_path):
    head = load_head_model(FlameConfig(), "cpu")
    _flame_table(tmp_path / "flame.parquet", head)
    seen = []
    n = geometry_run(tmp_path / "flame.parquet", None, tmp_path / "geometry.parquet", GeometryConfig(size=48),
                     FlameConfig(), lambda done, total: seen.append((done, total)))
    assert n == 3 and seen[-1] == (3, 3)
    tab, meta = read_table(tmp_path / "geometry.parquet", "geometry")
    assert meta["map_size"] == 48 and meta["depth_units"] == "metres_z" and meta["backend"] == "flame"
    maps = [decode_maps(d, nn, 48) for d, nn in zip(tab.column("depth").to_pylist(), tab.column("normal").to_pylist())]
    for d, nrm in maps:
        m = d > 0
        assert 0.1 < m.float().mean() < 0.9                      # a head in the middle of the crop
        assert 0.45 < float(d[m].min()) and float(d[m].max()) < 0.75   # the head sits ~0.6 m away
        assert (nrm[m].norm(dim=-1) - 1).abs().max() < 5e-3 and (nrm[m][:, 2] < 0.05).float().mean() > 0.95
    assert not np.allclose(maps[0][0].numpy(), maps[2][0].numpy())  # jaw opening changes the depth map
    assert list(tab.column("frame").to_pylist()) == [0, 1, 2]


def test_missing_camera_metadata_is_named(tmp_path):
    with pytest.raises(Exception, match="camera"):
        camera_K({"camera": {"fx": 1.0}}, 512)
    with pytest.raises(SchemaError):
        read_table(tmp_path / "nope.parquet", "geometry")


def test_unknown_backend_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="geometry.backend"):
        geometry_run(None, None, tmp_path / "geometry.parquet", GeometryConfig(backend="nope"), FlameConfig())
