"""Generic layout: `<root>/<identity>/*.mp4` (any container) — one identity per folder."""
from __future__ import annotations

from pathlib import Path

from emotag_core.datasets import VIDEO_EXTS, Clip, Identity, sanitize
from emotag_core.errors import InputError


def scan(root: Path, role: str = "target") -> list[Identity]:
    """Identities of a folder-per-identity tree."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "not a folder", "give a folder holding one sub-folder of videos per identity")
    out = []
    for d in sorted(p for p in root.iterdir() if p.is_dir()):
        vids = sorted(v for v in d.iterdir() if v.suffix.lower() in VIDEO_EXTS)
        if vids:
            out.append(Identity(id=sanitize(d.name), role=role, dataset="generic",
                                clips=[Clip(clip_id=sanitize(v.stem), source=str(v.resolve())) for v in vids]))
    if not out:
        raise InputError(root, "no identity folder with videos found", f"expected <root>/<identity>/*{VIDEO_EXTS[0]}")
    return out
