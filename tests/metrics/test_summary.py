import json

import numpy as np

from emotag_core.metrics.summary import KEYS, MetricsRecord


def test_record_has_every_key_and_reasons():
    r = MetricsRecord()
    r.mean("psnr", np.array([30.0, np.nan, 32.0]), "no frames")
    r.mean("lmd", np.array([np.nan, np.nan]), "no face found in rendered frames")
    r.missing("sync_c", "SyncNet weights absent (evaluate.syncnet_weights)")
    r.flag("lmd", "dubbed_audio")
    r.flag("lmd", "dubbed_audio")
    r.extra["ood"] = {"x": np.float32(1.5), "bad": float("inf")}
    d = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert set(KEYS) <= set(d)
    assert d["psnr"] == 31.0 and "psnr_reason" not in d
    assert d["lmd"] is None and d["lmd_reason"] == "no face found in rendered frames"
    assert d["sync_c"] is None and "SyncNet" in d["sync_c_reason"]
    assert d["flags"] == {"lmd": ["dubbed_audio"]}
    assert d["ood"] == {"x": 1.5, "bad": None}
    assert d["train_s"] is None and d["train_s_reason"]
