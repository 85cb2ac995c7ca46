"""`emotag serve`'s app against a tiny adapted identity, through aiohttp's test client on 127.0.0.1: streaming
(first frame before the render ends), the gate slider mid-stream, the queue bound, and every bad input."""
from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from emotag_core.render.video import probe_streams
from emotag_core.serve.app import make_app
from emotag_core.serve.jobs import FRAME_HEADER
from emotag_core.config import load_params

from .conftest import SERVE, renderer_of


def run(coro_fn, long_audio: str = "cut"):
    """Run `coro_fn(client, renderer)` against a fresh app of the tiny identity."""
    p = load_params("params.yaml")
    cfg = dataclasses.replace(p.serve, long_audio=long_audio)
    renderer = renderer_of(Path.cwd(), p)

    async def main():
        async with TestClient(TestServer(make_app(renderer, cfg, "cpu"))) as client:
            return await coro_fn(client, renderer)

    return asyncio.run(main())


def form(path: Path, filename: str | None = None) -> aiohttp.FormData:
    f = aiohttp.FormData()
    f.add_field("audio", path.read_bytes(), filename=filename or path.name, content_type="application/octet-stream")
    return f


async def upload(client, path: Path, identity: str = "anna", filename: str | None = None, **q):
    r = await client.post("/api/jobs", params={"identity": identity, **q}, data=form(path, filename))
    return r.status, await r.json()


async def watch(client, job_id: str, on_frame=None):
    """Every message of a job's event stream -> (frames [(t, g, g_pred, arrival)], done message, first messages)."""
    frames, other = [], []
    async with client.ws_connect(f"/api/jobs/{job_id}/events") as ws:
        async for m in ws:
            if m.type == aiohttp.WSMsgType.BINARY:
                t, g, gp, _lat = FRAME_HEADER.unpack_from(m.data)
                assert m.data[FRAME_HEADER.size:FRAME_HEADER.size + 2] == b"\xff\xd8"  # a JPEG follows
                frames.append((t, g, gp, time.perf_counter()))
                if on_frame is not None:
                    await on_frame(ws, len(frames))
            else:
                d = json.loads(m.data)
                other.append(d)
                if d["type"] in ("done", "error"):
                    return frames, d, other
    raise AssertionError(f"the stream closed without done: {other}")


def test_streams_frames_before_the_render_ends_and_serves_the_mp4(in_workdir, speech, tmp_path):
    async def go(client, renderer):
        info = await (await client.get("/api/info")).json()
        assert info["identities"] == ["anna"] and info["device"] == "cpu"
        page = await (await client.get("/")).text()
        assert "EmoTaG live demo" in page and 'id="mic-warning"' in page
        status, d = await upload(client, speech["short"])
        assert status == 202, d
        t0 = time.perf_counter()
        frames, done, other = await watch(client, d["id"])
        t_done = time.perf_counter()
        assert [m["type"] for m in other][:2] == ["accepted", "start"]
        assert [f[0] for f in frames] == list(range(30))  # 1.2 s at 25 fps, in order
        assert done["summary"]["frames"] == 30 and done["summary"]["first_frame_before_input_end"]
        # the first frame reached the page well before the last one: it streams, it is not a finished clip
        assert frames[0][3] - t0 < 0.5 * (t_done - t0), (frames[0][3] - t0, t_done - t0)
        r = await client.get(done["video"], params={"download": "1"})
        assert r.status == 200 and "attachment" in r.headers["Content-Disposition"]
        (tmp_path / "r.mp4").write_bytes(await r.read())
        wav = await client.get(f"/api/jobs/{d['id']}/speech.wav")
        assert wav.status == 200
        return done

    run(go)
    s = probe_streams(tmp_path / "r.mp4")
    assert s["video"]["codec"] == "h264" and s["audio"]["codec"] == "aac" and s["video"]["frames"] == 30


def test_moving_the_slider_mid_stream_changes_the_gate_of_later_frames(in_workdir, speech):
    """The page starts at a fixed g = 0 and moves the slider to g = 1 after 5 frames: the frames' trace (the
    gate each frame was rendered with, sent with it and in the render's own trace) switches once, mid-stream."""
    async def go(client, renderer):
        status, d = await upload(client, speech["long"], mode="fixed", g="0")
        assert status == 202, d

        async def slide(ws, n):
            if n == 5:
                await ws.send_json({"type": "control", "mode": "fixed", "g": 1.0})
            if n == 8:
                await ws.send_json({"type": "control", "mode": "fixed", "g": 7})  # out of range: refused, no change
        return await watch(client, d["id"], slide)

    frames, done, other = run(go)
    g = [f[1] for f in frames]
    assert g[0] == 0.0 and g[-1] == 1.0
    switch = next(i for i, v in enumerate(g) if v == 1.0)
    assert 5 <= switch < len(g) - 5 and set(g[:switch]) == {0.0} and set(g[switch:]) == {1.0}
    assert done["summary"]["g"] == g  # the render trace agrees with what the page was sent
    assert len(set(round(f[2], 4) for f in frames)) > 3  # the model's own gate varies; the control replaced it
    refused = [m for m in other if m["type"] == "control" and not m["ok"]]
    assert len(refused) == 1 and "[0, 1]" in refused[0]["error"]


def test_queue_positions_and_429_past_the_bound(in_workdir, speech):
    """queue_size 2: one renders, one waits (position 1), the third gets 429 and a message; none fails."""
    async def go(client, renderer):
        s1, d1 = await upload(client, speech["short"])
        s2, d2 = await upload(client, speech["tiny"])
        s3, d3 = await upload(client, speech["tiny"])
        assert (s1, s2, s3) == (202, 202, 429), (d1, d2, d3)
        assert d1["position"] == 0 and d2["position"] == 1
        assert "busy" in d3["error"] and f"at most {SERVE['queue_size']}" in d3["error"]
        _, done1, _ = await watch(client, d1["id"])
        _, done2, other2 = await watch(client, d2["id"])
        assert done1["type"] == done2["type"] == "done"
        assert done2["summary"]["queue_wait_s"] > 0.2  # it waited for the first render
        s4, d4 = await upload(client, speech["tiny"])  # room again
        assert s4 == 202
        _, done4, _ = await watch(client, d4["id"])
        return dict(renderer.stats)

    stats = run(go)
    assert stats == {"served": 3, "refused_busy": 1, "failed": 0}


def test_a_slow_upload_does_not_stall_another_stream(in_workdir, speech):
    async def go(client, renderer):
        status, d = await upload(client, speech["short"])
        assert status == 202
        chunk = speech["short"].read_bytes()
        sent = []

        async def slow_body():  # ~1.5 s to upload a small file
            for i in range(0, len(chunk), 4000):
                sent.append(time.perf_counter())
                yield chunk[i:i + 4000]
                await asyncio.sleep(1.5 / (len(chunk) / 4000))

        async def slow_upload():
            r = await client.post("/api/jobs", params={"identity": "anna"}, data=slow_body())
            return r.status, time.perf_counter()

        up = asyncio.create_task(slow_upload())
        frames, done, _ = await watch(client, d["id"])
        status2, up_end = await up
        assert status2 == 202
        during = [f for f in frames if sent[0] < f[3] < up_end]
        assert len(during) >= 5, (len(during), up_end - sent[0])  # frames kept coming while it uploaded

    run(go)


def test_bad_inputs_get_a_4xx_and_a_message(in_workdir, speech, tmp_path):
    import cv2
    import numpy as np

    text = tmp_path / "notes.wav"  # the extension lies: the bytes decide
    text.write_text("not audio at all")
    png = tmp_path / "face.png"
    cv2.imwrite(str(png), np.zeros((16, 16, 3), np.uint8))
    corrupt = tmp_path / "cut.mp4"  # an mp4 cut short: no index, undecodable
    corrupt.write_bytes(probe_mp4(tmp_path)[:4000])
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")

    async def go(client, renderer):
        out = {}
        for name, f in (("text", text), ("png", png), ("corrupt", corrupt), ("empty", empty)):
            out[name] = await upload(client, f)
        out["unknown"] = await upload(client, speech["tiny"], identity="zed")
        out["control"] = await upload(client, speech["tiny"], mode="fixed", g="2")
        r = await client.get("/api/jobs/" + "0" * 32 + "/video.mp4")
        out["no_job"] = r.status, await r.json()
        assert renderer.admitted == 0 and not list((renderer.out / "jobs").iterdir())  # nothing left behind
        return out

    out = run(go)
    assert out["text"][0] == 415 and "not a readable audio or video file" in out["text"][1]["error"]
    assert out["png"][0] == 415 and "no audio track" in out["png"][1]["error"]
    assert out["corrupt"][0] == 415, out["corrupt"]
    assert out["empty"][0] == 400 and "empty" in out["empty"][1]["error"]
    assert out["unknown"][0] == 404 and "`zed`" in out["unknown"][1]["error"] and "anna" in out["unknown"][1]["error"]
    assert out["unknown"][1]["identities"] == ["anna"]
    assert out["control"][0] == 400 and "[0, 1]" in out["control"][1]["error"]
    assert out["no_job"][0] == 404


def probe_mp4(tmp_path: Path) -> bytes:
    import subprocess

    p = tmp_path / "full.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=300:duration=2", "-c:a", "aac",
                    str(p)], check=True)
    return p.read_bytes()


def test_an_upload_over_the_size_limit_is_refused_before_it_is_read_whole(in_workdir):
    limit = int(SERVE["max_upload_mb"] * (1 << 20))
    total = 8 * limit
    yielded = []

    async def go(client, renderer):
        r = await client.post("/api/jobs", params={"identity": "anna"}, data=b"\0" * (limit + (1 << 17)))
        declared = r.status, await r.json()  # Content-Length over the limit: refused from the header

        async def body():  # chunked: no length to look at, refused while reading
            for i in range(0, total, 1 << 15):
                yielded.append(i)
                yield b"\0" * (1 << 15)
                await asyncio.sleep(0)
        try:
            r = await client.post("/api/jobs", params={"identity": "anna"}, data=body())
            streamed = r.status, await r.json()
        except aiohttp.ClientError as exc:  # the server may close while the client still sends
            streamed = None, str(exc)
        assert not list((renderer.out / "jobs").iterdir()) and renderer.admitted == 0
        return declared, streamed

    declared, streamed = run(go)
    assert declared[0] == 413 and "over the limit of 0.25 MB" in declared[1]["error"]
    assert streamed[0] == 413, streamed
    assert len(yielded) * (1 << 15) < total / 2  # it stopped reading soon after the limit


def test_audio_over_the_limit_is_cut_or_refused_and_the_page_is_told(in_workdir, speech):
    async def cut(client, renderer):
        status, d = await upload(client, speech["long"])
        frames, done, _ = await watch(client, d["id"])
        return status, d, len(frames)

    status, d, n = run(cut)
    assert status == 202 and d["cut"] and "4.0 s, longer than the limit of 2.4 s: cut to its first 2.4 s" in d["note"]
    assert n == 60  # 2.4 s at 25 fps

    async def refuse(client, renderer):
        return await upload(client, speech["long"])

    status, d = run(refuse, long_audio="refuse")
    assert status == 413 and "4.0 s long, over the limit of 2.4 s" in d["error"] and "refused" in d["error"]


@pytest.mark.parametrize("name", ["../../../../escape.wav", "..\\..\\escape.wav", "/tmp/escape.wav",
                                  "a/../../b/escape.wav", "%2e%2e%2fescape.wav"])
def test_no_write_outside_the_output_folder_whatever_the_file_name(in_workdir, speech, name):
    root = in_workdir.parent
    before = {p for p in root.rglob("*")}

    async def go(client, renderer):
        status, d = await upload(client, speech["tiny"], filename=name)
        assert status == 202, d
        await watch(client, d["id"])
        return renderer.out

    out = run(go)
    new = {p for p in root.rglob("*")} - before
    assert new and all(p == out or out in p.parents or p in out.parents for p in new), sorted(new)
    assert not Path("/tmp/escape.wav").exists()
    assert not any("escape" in p.name for p in new)
