"""Which web stack `emotag serve` uses: aiohttp vs Starlette on uvicorn (both installed), measured on what the
demo does: import cost (a fresh interpreter), a small JSON GET (p50 over 300), and a WebSocket pushing
binary frames (600 x 20 KB, JPEG-sized) to one client. Gradio is not installed (nor on the GPU device), so it
is not measured. 127.0.0.1 only.

    python bench/serve_stack.py
"""
from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time

N_GET, N_FRAMES, FRAME = 300, 600, b"\xff" * 20_000


def import_s(stmt: str) -> float:
    t = [float(subprocess.run([sys.executable, "-c", f"import time; t = time.perf_counter(); {stmt}; "
                                                     "print(time.perf_counter() - t)"],
                              capture_output=True, text=True, check=True).stdout) for _ in range(3)]
    return min(t)


def port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def aiohttp_server(p: int) -> None:
    from aiohttp import web

    async def info(request):
        return web.json_response({"identities": ["anna"], "device": "cpu"})

    async def ws(request):
        w = web.WebSocketResponse()
        await w.prepare(request)
        for _ in range(N_FRAMES):
            await w.send_bytes(FRAME)
        await w.close()
        return w

    app = web.Application()
    app.add_routes([web.get("/info", info), web.get("/ws", ws)])
    web.run_app(app, host="127.0.0.1", port=p, print=None, handle_signals=False)


def starlette_server(p: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route, WebSocketRoute

    async def info(request):
        return JSONResponse({"identities": ["anna"], "device": "cpu"})

    async def ws(w):
        await w.accept()
        for _ in range(N_FRAMES):
            await w.send_bytes(FRAME)
        await w.close()

    app = Starlette(routes=[Route("/info", info), WebSocketRoute("/ws", ws)])
    uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=p, log_level="error")).run()


async def client(p: int) -> dict[str, float]:
    import aiohttp

    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            try:
                await (await s.get(f"http://127.0.0.1:{p}/info")).read()
                break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        lat = []
        for _ in range(N_GET):
            t = time.perf_counter()
            json.loads(await (await s.get(f"http://127.0.0.1:{p}/info")).read())
            lat.append(time.perf_counter() - t)
        t, n = time.perf_counter(), 0
        async with s.ws_connect(f"http://127.0.0.1:{p}/ws", max_msg_size=1 << 20) as w:
            async for m in w:
                n += m.type == aiohttp.WSMsgType.BINARY
        dt = time.perf_counter() - t
    lat.sort()
    return {"get_p50_ms": 1000 * lat[len(lat) // 2], "ws_frames_per_s": n / dt, "frames": n}


def main() -> None:
    rows = {"aiohttp": (aiohttp_server, "import aiohttp.web"),
            "starlette+uvicorn": (starlette_server, "import starlette.applications, uvicorn")}
    for name, (server, imp) in rows.items():
        p = port()
        threading.Thread(target=server, args=(p,), daemon=True).start()
        r = asyncio.run(client(p))
        print(f"{name:18s} import {import_s(imp):.3f} s  GET p50 {r['get_p50_ms']:.2f} ms  "
              f"WebSocket {r['ws_frames_per_s']:.0f} frames/s of 20 KB ({r['frames']} frames)")


if __name__ == "__main__":
    main()
