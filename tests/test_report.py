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


def _chromium() -> str | None:
    import shutil

    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_video_plays_in_headless_chromium(tmp_path):
    """The report's embedded mp4 (H.264 + AAC from PyAV) decodes in Debian's chromium: the page's <video>
    reaches `canplay` with the right size and duration (issue 18: the report must play in chromium)."""
    import subprocess

    import pytest

    exe = _chromium()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (`make system` installs it: apt-get install chromium)")
    T = 25
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (64, 64, 3), dtype=np.uint8) for _ in range(T)]
    sbs = tmp_path / "sbs.mp4"
    side_by_side(iter(frames), iter(frames), sbs, side=64, audio=iter([np.zeros(640, np.float32)] * T))
    out = tmp_path / "r.html"
    write_report(out, "who", {"psnr": 25.0}, sbs, [], keys=["psnr"])
    probe = ("<script>const v=document.querySelector('video');"
             "v.addEventListener('canplay',()=>{document.title='ok '+v.videoWidth+'x'+v.videoHeight+' '+v.duration.toFixed(2)});"
             "v.addEventListener('error',()=>{document.title='error '+(v.error&&v.error.code)});v.load();</script></body>")
    page = tmp_path / "probe.html"
    page.write_text(out.read_text().replace("</body>", probe), encoding="utf-8")
    r = subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={tmp_path / 'profile'}", "--autoplay-policy=no-user-gesture-required",
                        "--virtual-time-budget=8000", "--dump-dom", page.as_uri()],
                       capture_output=True, text=True, timeout=120)
    title = re.search(r"<title>(.*?)</title>", r.stdout)
    assert title is not None, r.stderr[-2000:]
    assert title.group(1) == "ok 128x64 1.00", (title.group(1), r.stderr[-1000:])
