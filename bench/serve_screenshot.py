"""A screenshot of `emotag serve` on a real adapted identity (the README's picture), in Debian's headless chromium.

Starts `emotag serve` in REPO (a checkout whose `dvc repro` adapted at least one target, e.g. a fresh clone after
`make repro`), picks IDENTITY, uploads AUDIO, waits for the stream to finish and the mp4 to play, and saves the page.

    python bench/serve_screenshot.py --repo /tmp/fresh --identity sample --audio speech.wav --out docs/serve.png
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--autoplay-policy=no-user-gesture-required", "--window-size=1360,900"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(drv, js: str, timeout: float, what: str) -> None:  # noqa: ANN001 - a selenium driver
    """Until the page's `js` is truthy (selenium's WebDriverWait); a named exit on timeout."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(drv, timeout, poll_frequency=0.1).until(lambda d: d.execute_script("return " + js))
    except TimeoutException:
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}: "
                         f"{drv.execute_script('return window.demo.errors')}") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, required=True, help="where `emotag serve` runs (its data/models/<id>/)")
    ap.add_argument("--identity", required=True)
    ap.add_argument("--audio", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds for the whole render")
    a = ap.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    port = _port()
    server = subprocess.Popen([sys.executable, "-m", "stages.cli", "serve", "--port", str(port)], cwd=a.repo,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "chromium"
    for f in FLAGS:
        opts.add_argument(f)
    drv = webdriver.Chrome(options=opts, service=Service(executable_path=shutil.which("chromedriver") or "chromedriver"))
    try:
        t0 = time.time()
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2).read()
                break
            except OSError:
                if server.poll() is not None or time.time() - t0 > 120:
                    raise SystemExit(f"emotag serve did not start in {a.repo}: {server.stdout.read() if server.stdout else ''}")
                time.sleep(0.5)
        drv.get(f"http://127.0.0.1:{port}/")
        _wait(drv, "document.querySelectorAll('#identity option').length > 0", 60, "the identity list")
        Select(drv.find_element(By.ID, "identity")).select_by_visible_text(a.identity)
        drv.find_element(By.ID, "file").send_keys(str(a.audio.resolve()))
        drv.find_element(By.ID, "go").click()
        _wait(drv, "window.demo.lat.length >= 1", a.timeout, "the first frame")
        print(f"first frame after {time.time() - t0:.1f} s", flush=True)
        _wait(drv, "window.demo.done", a.timeout, "the end of the render")
        _wait(drv, "window.demo.videoPlayed && document.getElementById('video').currentTime > 0.5", 60, "the mp4 to play")
        a.out.parent.mkdir(parents=True, exist_ok=True)
        drv.save_screenshot(str(a.out))
        print(f"{a.out}: after {time.time() - t0:.1f} s; fps {drv.find_element(By.ID, 'fps').text}")
    finally:
        drv.quit()
        server.terminate()
        server.communicate(timeout=30)


if __name__ == "__main__":
    main()
