"""`emotag serve`: a live web demo of an adapted avatar (aiohttp; heavy imports inside the functions).

`jobs.Renderer` admits, queues and renders requests through the `render --stream` path; `app.make_app`
is the web app around it; `media.decode_speech` turns an upload into the driving audio.
"""
