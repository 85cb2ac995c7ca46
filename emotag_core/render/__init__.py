"""Inference and video output (paper Sec. 3.3): adapted identity + new audio -> mp4 with sound.

`emotag_core.render.api.render_to_mp4` renders a file; `render_stream` is the live mode. Video
writing (`video.Mp4Writer`) and audio reading (`audio`) import PyAV lazily.
"""
