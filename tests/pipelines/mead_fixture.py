"""A tiny MEAD tree in MEAD's real layout, made from the embedded sample (video and audio apart)."""
from __future__ import annotations

import subprocess
from pathlib import Path

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "sample.mp4"


def make_mead(root: Path, actors=("M003", "W009"), emotions=("happy",), seconds: float = 1.6) -> Path:
    """`<actor>/video/front/<emotion>/level_1/001.mp4` + `<actor>/audio/<emotion>/level_1/001.m4a`."""
    for k, actor in enumerate(actors):
        for e in emotions:
            v = root / actor / "video" / "front" / e / "level_1" / "001.mp4"
            a = root / actor / "audio" / e / "level_1" / "001.m4a"
            v.parent.mkdir(parents=True, exist_ok=True)
            a.parent.mkdir(parents=True, exist_ok=True)
            start = 2.0 + 3.0 * k
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds),
                            "-i", str(SAMPLE), "-an", "-vf", "scale=320:-2", "-c:v", "libx264", "-preset", "ultrafast",
                            str(v)], check=True)
            subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-t", str(seconds),
                            "-i", str(SAMPLE), "-vn", "-c:a", "aac", str(a)], check=True)
    return root
