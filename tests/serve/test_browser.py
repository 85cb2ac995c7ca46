"""The demo in a real browser: Debian's headless chromium, driven by Selenium through chromium-driver, against
`emotag serve` (the console command, as a user starts it) on the tiny adapted identity.

The page loads, a packaged speech file is uploaded, frames arrive while it renders, the slider moved with the
keyboard mid-stream changes the gate of the frames that follow, and the finished mp4 plays in the <video>
element. A bad upload shows its 4xx message on the page; opened under a non-localhost name over plain http,
the page says the microphone is blocked. Screenshots go to $EMOTAG_SCREENSHOTS (or the test's tmp folder).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from .conftest import free_port, serve_process

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1360,900",
         "--host-resolver-rules=MAP demo.test 127.0.0.1"]  # a non-localhost name for the same server


def _browser(profile: Path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.skip("Debian's chromium and chromium-driver are not installed "
                    "(`make system` installs them: apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for f in FLAGS + [f"--user-data-dir={profile}"]:
        opts.add_argument(f)
    return webdriver.Chrome(options=opts, service=Service(executable_path=driver))


def _wait(drv, js: str, timeout: float = 60.0, what: str = ""):
    t0 = time.time()
    while time.time() - t0 < timeout:
        v = drv.execute_script("return " + js)
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or js}: {drv.execute_script('return window.demo.errors')}")


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    d = os.environ.get("EMOTAG_SCREENSHOTS")
    out = Path(d) if d else tmp_path_factory.mktemp("screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def test_page_streams_plays_and_steers_the_gate_in_chromium(workdir, repo_root, speech, tmp_path, shots):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    drv = _browser(tmp_path / "profile")  # skips before the server starts when chromium is absent
    port = free_port()
    server = serve_process(workdir, repo_root, port)
    try:
        drv.get(f"http://127.0.0.1:{port}/")
        _wait(drv, "document.querySelectorAll('#identity option').length > 0", what="the identity list")
        assert drv.find_element(By.ID, "device").text == "cpu"
        assert not drv.find_element(By.ID, "mic-warning").is_displayed()  # localhost: recording allowed

        drv.find_element(By.ID, "file").send_keys(str(speech["long"]))  # 4 s, cut to serve.max_audio_s (2.4 s)
        drv.find_element(By.ID, "go").click()
        _wait(drv, "window.demo.lat.length >= 3", what="the first frames")
        assert not drv.execute_script("return window.demo.done")  # frames arrive before the render ends
        assert "cut to its first 2.4 s" in drv.find_element(By.ID, "note").text
        # move the control as a user does: pick "fixed g", then the slider to its end with the keyboard
        n_before = drv.execute_script("return window.demo.lat.length")
        drv.find_element(By.ID, "mode-fixed").click()
        drv.find_element(By.ID, "g").send_keys(Keys.END)
        assert drv.find_element(By.ID, "g-val").text == "1.00"
        drv.save_screenshot(str(shots / "serve_streaming.png"))
        _wait(drv, "window.demo.done", what="the end of the render")
        _wait(drv, "window.demo.videoPlayed && document.getElementById('video').currentTime > 0", 30,
              what="the mp4 to play in the video element")
        g = drv.execute_script("return window.demo.gUsed")
        gp = drv.execute_script("return window.demo.gPred")
        video = drv.execute_script("const v = document.getElementById('video');"
                                   "return [v.videoWidth, v.duration, v.error && v.error.code]")
        drv.save_screenshot(str(shots / "serve_done.png"))
        assert len(g) == 60 and None not in g
        # before the slider moved, the model decided (g = its prediction); after, g is the fixed 1.0
        assert all(abs(a - b) < 1e-5 for a, b in zip(g[:n_before], gp[:n_before]))
        switch = next(i for i, v in enumerate(g) if v == 1.0)
        assert n_before <= switch < 55 and set(g[switch:]) == {1.0}
        assert video[0] == 96 and abs(video[1] - 2.4) < 0.1 and video[2] is None
        assert drv.find_element(By.ID, "download").get_attribute("href").endswith("video.mp4?download=1")
        assert drv.find_element(By.ID, "fps").text not in ("", "-")

        # a bad upload: its status and message on the page
        bad = tmp_path / "notes.wav"
        bad.write_text("not audio")
        drv.find_element(By.ID, "file").send_keys(str(bad))
        drv.find_element(By.ID, "go").click()
        err = _wait(drv, "!document.getElementById('error').hidden && document.getElementById('error').textContent",
                    what="the error message")
        assert err.startswith("415: ") and "not a readable audio or video file" in err
        drv.save_screenshot(str(shots / "serve_bad_upload.png"))

        # plain http under a non-localhost name: the page says the microphone is blocked
        drv.get(f"http://demo.test:{port}/")
        _wait(drv, "document.querySelectorAll('#identity option').length > 0", what="the page on demo.test")
        warn = drv.find_element(By.ID, "mic-warning")
        assert warn.is_displayed() and "Microphone blocked" in warn.text and "demo.test" in warn.text
        assert not drv.find_element(By.ID, "record").is_enabled()
        drv.save_screenshot(str(shots / "serve_insecure.png"))
    finally:
        drv.quit()
        server.terminate()
        server.communicate(timeout=30)
