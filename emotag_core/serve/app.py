"""`emotag serve`'s web app (aiohttp: one process, no external services).

Routes:
    GET  /                                 the page (index.html beside this file)
    GET  /api/info                         identities, device, limits
    POST /api/jobs?identity=ID[&mode=auto|fixed&g=..&scale=..]
                                           upload (multipart field `audio`, or the raw file as the body) ->
                                           202 {id, position, note}; 404 unknown identity, 413 too large / too long,
                                           415 unsupported or corrupt, 422 empty, 429 busy
    GET  /api/jobs/{id}/events             WebSocket: JSON {queued, start, done, error} and binary frames
                                           (`jobs.FRAME_HEADER` + JPEG); the page sends {type: control, ...}
    POST /api/jobs/{id}/control            the same control as JSON (mode, g, scale)
    GET  /api/jobs/{id}/speech.wav         the decoded driving audio (the page plays it in step with the frames)
    GET  /api/jobs/{id}/video.mp4          the finished render (H.264 + AAC); ?download=1 as an attachment

Files are written only under `out/jobs/<id>/` with names the server makes; an upload's own file name is
never used as a path.
"""
from __future__ import annotations

import asyncio
import ipaddress
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from emotag_core.serve.jobs import Job, Renderer, parse_control
from emotag_core.serve.media import RequestError, decode_speech

JOB = "{id:[0-9a-f]{32}}"
CHUNK = 1 << 16
MULTIPART_SLACK = 1 << 16  # multipart headers and boundaries on top of the file itself


def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1 (where browsers allow the microphone over plain http)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _error(exc: RequestError) -> Any:
    from aiohttp import web

    headers = {"Retry-After": "30"} if exc.status == 429 else None
    return web.json_response({"error": exc.message, "status": exc.status, **exc.extra}, status=exc.status,
                             headers=headers)


def make_app(renderer: Renderer, cfg: Any, device: str) -> Any:
    """The aiohttp Application of `renderer`; cfg: the `ServeConfig` (limits); device: shown on the page."""
    from aiohttp import WSMsgType, web

    limit = int(cfg.max_upload_mb * (1 << 20))
    io_pool = ThreadPoolExecutor(2, thread_name_prefix="emotag-decode")  # decoding never waits for a render
    page = (Path(__file__).parent / "index.html").read_text(encoding="utf-8")
    routes = web.RouteTableDef()

    def job_of(request: Any) -> Job:
        job = renderer.jobs.get(request.match_info["id"])
        if job is None:
            raise RequestError(404, "no such request (finished long ago, or never made)")
        return job

    @routes.get("/")
    async def index(request: Any) -> Any:
        return web.Response(text=page, content_type="text/html", headers={"Cache-Control": "no-store"})

    @routes.get("/api/info")
    async def info(request: Any) -> Any:
        return web.json_response({
            "identities": renderer.identities(), "device": device,
            "limits": {"max_upload_mb": cfg.max_upload_mb, "max_audio_s": cfg.max_audio_s,
                       "long_audio": cfg.long_audio, "queue_size": renderer.queue_size, "workers": renderer.workers},
            "busy": renderer.admitted, "stats": renderer.stats})

    async def read_upload(request: Any, dest: Path) -> int:
        """Stream the upload into `dest`, at most `limit` bytes (413 as soon as it goes over)."""
        too_big = RequestError(413, f"the upload is over the limit of {cfg.max_upload_mb:g} MB "
                                    f"(serve.max_upload_mb): refused; upload a shorter clip")
        if request.content_length is not None and request.content_length > limit + MULTIPART_SLACK:
            raise too_big
        if request.content_type.startswith("multipart/"):
            reader = await request.multipart()
            part = await reader.next()
            while part is not None and getattr(part, "name", None) != "audio":
                await part.release()
                part = await reader.next()
            if part is None:
                raise RequestError(400, "no file in the form: send the audio as the multipart field `audio`")
            read = part.read_chunk
        else:
            read = request.content.read
        n = 0
        with open(dest, "wb") as fh:
            while chunk := await read(CHUNK):
                n += len(chunk)
                if n > limit:
                    raise too_big
                fh.write(chunk)
        if n == 0:
            raise RequestError(400, "the upload is empty: choose a file or record from the microphone")
        return n

    @routes.post("/api/jobs")
    async def create(request: Any) -> Any:
        q = request.query
        control = parse_control(q.get("mode"), q.get("g"), q.get("scale"))
        job = renderer.admit(q.get("identity", ""))
        job.control = control
        try:
            upload = job.folder / "upload.bin"  # the client's file name is never a path here
            await read_upload(request, upload)
            loop = asyncio.get_running_loop()
            job.speech = await loop.run_in_executor(io_pool, decode_speech, upload, cfg.max_audio_s, cfg.long_audio)
            from emotag_core.io.audio import write_wav

            await loop.run_in_executor(io_pool, write_wav, job.speech_wav, job.speech.samples, 16000)
        except BaseException:
            renderer.release(job)  # refused or failed: nothing of it stays
            raise
        pos = renderer.enqueue(job)
        return web.json_response({"id": job.id, "position": pos, "note": job.speech.note, "cut": job.speech.cut,
                                  "seconds": job.speech.seconds, "events": f"/api/jobs/{job.id}/events"}, status=202)

    @routes.get(f"/api/jobs/{JOB}/events")
    async def events(request: Any) -> Any:
        job = job_of(request)
        ws = web.WebSocketResponse(heartbeat=20, max_msg_size=1 << 16)
        await ws.prepare(request)
        await ws.send_json({"type": "accepted", "id": job.id, "position": renderer.position(job),
                            "note": job.speech.note if job.speech else ""})

        async def pump() -> None:
            while True:
                msg = await job.events.get()
                if isinstance(msg, bytes):
                    await ws.send_bytes(msg)
                else:
                    await ws.send_json(msg)
                    if msg.get("type") in ("done", "error"):
                        return

        async def receive() -> None:
            async for m in ws:
                if m.type != WSMsgType.TEXT:
                    continue
                try:
                    d = json.loads(m.data)
                    if not isinstance(d, dict):
                        raise ValueError("not an object")
                    if d.get("type") == "control":
                        job.control = parse_control(d.get("mode"), d.get("g"), d.get("scale"))
                        await ws.send_json({"type": "control", "ok": True, "g": job.control.override,
                                            "scale": job.control.scale})
                except RequestError as exc:
                    await ws.send_json({"type": "control", "ok": False, "error": exc.message})
                except ValueError:
                    await ws.send_json({"type": "control", "ok": False, "error": "messages are JSON objects"})

        sender, receiver = asyncio.create_task(pump()), asyncio.create_task(receive())
        try:
            await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not sender.done() and job.state in ("queued", "rendering"):
                job.cancelled = True  # the page went away before the end: stop its render early
            for t in (sender, receiver):
                t.cancel()
        await ws.close()
        return ws

    @routes.post(f"/api/jobs/{JOB}/control")
    async def control(request: Any) -> Any:
        job = job_of(request)
        try:
            d = await request.json()
        except ValueError as exc:
            raise RequestError(400, "send the control as a JSON object {mode, g, scale}") from exc
        job.control = parse_control(d.get("mode"), d.get("g"), d.get("scale"))
        return web.json_response({"g": job.control.override, "scale": job.control.scale})

    @routes.get(f"/api/jobs/{JOB}/speech.wav")
    async def speech(request: Any) -> Any:
        return web.FileResponse(job_of(request).speech_wav)

    @routes.get(f"/api/jobs/{JOB}/video.mp4")
    async def video(request: Any) -> Any:
        job = job_of(request)
        if job.state != "done" or not job.video.exists():
            raise RequestError(409 if job.state != "failed" else 410,
                               f"the render is {job.state}: the mp4 exists once it is done")
        headers = {"Content-Disposition": f'attachment; filename="{job.identity}-{job.id[:8]}.mp4"'} \
            if request.query.get("download") else None
        return web.FileResponse(job.video, headers=headers)

    @web.middleware
    async def refusals(request: Any, handler: Any) -> Any:
        try:
            return await handler(request)
        except RequestError as exc:  # every refusal: its status and a message the page shows
            return _error(exc)

    app = web.Application(client_max_size=limit + MULTIPART_SLACK, middlewares=[refusals])
    app.add_routes(routes)

    async def close(app: Any) -> None:
        renderer.shutdown()
        io_pool.shutdown(wait=False, cancel_futures=True)

    app.on_shutdown.append(close)
    return app


def serve(renderer: Renderer, cfg: Any, device: str, host: str, port: int, log: Any = print) -> None:
    """Run the app until interrupted (Ctrl-C)."""
    from aiohttp import web

    if not is_loopback(host):
        log(f"serving plain http on {host}: browsers block the microphone there (uploads still work); "
            f"the page says so. For recording, open it through localhost (e.g. ssh -L {port}:localhost:{port}).")
    log(f"emotag serve: http://{host if ':' not in host else f'[{host}]'}:{port}/  (device {device}; Ctrl-C stops)")
    web.run_app(make_app(renderer, cfg, device), host=host, port=port, print=None, handle_signals=True)
