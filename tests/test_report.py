import base64
import re

import numpy as np

from emotag_core.render.video import probe_streams
from emotag_core.report import curves_png, emotion_png, side_by_side, write_report


def test_report_embeds_video_figures_and_table(tmp_path):
    T = 12
    rendered = [np.full((40, 40, 3), 200, np.uint8) for _ in range(T)]
    real = [np.full((40, 40, 3), 20, np.uint8) for _ in range(T)]
    sbs = tmp_path / "sbs.mp4"
    assert side_by_side(iter(rendered), iter(real), sbs, side=32) == T
    s = probe_streams(sbs)
    assert (s["video"]["width"], s["video"]["height"]) == (64, 32)
    figs = [("curves", curves_png({"psnr": np.linspace(20, 30, T), "lmd": [np.nan] * T}, 25, "x")),
            ("gate", emotion_png([0.5] * T, np.full((T, 7), 1 / 7), list("abcdefg"), 25, "g"))]
    out = tmp_path / "r.html"
    metrics = {"psnr": 25.0, "lpips": None, "lpips_reason": "weights absent", "flags": {"psnr": ["dubbed_audio"]}}
    write_report(out, "who", metrics, sbs, figs, notes=["note <1>"], keys=["psnr", "lpips"])
    doc = out.read_text()
    vids = re.findall(r'src="data:video/mp4;base64,([^"]+)"', doc)
    assert len(vids) == 1 and base64.b64decode(vids[0]) == sbs.read_bytes()
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', doc)
    assert len(pngs) == 2 and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    assert "weights absent" in doc and "dubbed_audio" in doc and "note &lt;1&gt;" in doc
    assert not list(tmp_path.glob(".tmp-*"))
