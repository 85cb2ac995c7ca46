"""Dataset adapters: a dataset's own layout → identities and clips the DAG understands.

An adapter returns `Identity` records; `write_manifest` writes each identity's `clips.json`
(source files, optional time ranges, labels such as MEAD emotion and level) under its raw
folder, which ingest reads. Adapters never copy or re-encode video.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emotag_core.errors import InputError
from emotag_core.io.atomic import write_text

MANIFEST = "clips.json"
VIDEO_EXTS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


@dataclass
class Clip:
    """One clip of an identity: a file, optionally a time range of it, and labels."""

    clip_id: str
    source: str
    """Path of the video file (absolute, or relative to the manifest's folder)."""
    start: float | None = None
    """Start time in seconds (None: from the beginning)."""
    end: float | None = None
    """End time in seconds (None: to the end)."""
    audio: str | None = None
    """Separate audio file (MEAD ships audio apart from video); None: the video's own track."""
    split: str = "train"
    """`train` or `test` (the paper's split for this dataset)."""
    labels: dict[str, Any] = field(default_factory=dict)
    """Per-clip labels carried into the tables (e.g. emotion, level)."""


@dataclass
class Identity:
    """An identity found in a dataset, with its role and clips."""

    id: str
    role: str
    clips: list[Clip]
    dataset: str


def write_manifest(identity: Identity, folder: Path) -> Path:
    """Write `<folder>/clips.json` for an identity, atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    doc = {"identity": identity.id, "dataset": identity.dataset, "role": identity.role,
           "clips": [asdict(c) for c in identity.clips]}
    path = folder / MANIFEST
    write_text(path, json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    return path


def read_manifest(folder: Path) -> list[Clip] | None:
    """Clips of a raw folder's `clips.json`, sources resolved; None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        clips = [Clip(**c) for c in doc["clips"]]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a valid clip manifest ({exc})", "regenerate it with the dataset adapter") from exc
    for i, c in enumerate(clips):
        _check_clip(path, i, c)
    for c in clips:
        src = Path(c.source)
        c.source = str(src if src.is_absolute() else (path.parent / src))
        if c.audio:
            a = Path(c.audio)
            c.audio = str(a if a.is_absolute() else (path.parent / a))
        if c.start is not None and c.end is not None and c.end <= c.start:
            raise InputError(path, f"clip `{c.clip_id}`: end {c.end} is not after start {c.start}")
    return clips


def _check_clip(path: Path, i: int, c: Clip) -> None:
    """InputError naming the manifest, the clip and the field whose value has the wrong type."""
    def bad(name: str, want: str) -> None:
        raise InputError(path, f"clip {i} (`{c.clip_id}`): `{name}` must be {want}, got {getattr(c, name)!r}",
                         "regenerate it with the dataset adapter")

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if not isinstance(c.clip_id, str) or not c.clip_id:
        bad("clip_id", "a non-empty string")
    if not isinstance(c.source, str) or not c.source:
        bad("source", "a file path (string)")
    for name in ("start", "end"):
        if getattr(c, name) is not None and not number(getattr(c, name)):
            bad(name, "seconds (a number) or null")
    if c.audio is not None and not isinstance(c.audio, str):
        bad("audio", "a file path (string) or null")
    if c.split not in ("train", "test"):
        bad("split", "`train` or `test`")
    if not isinstance(c.labels, dict):
        bad("labels", "a mapping")


def sanitize(name: str) -> str:
    """A name safe as an identity or clip id."""
    import re

    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._-")  # ids never start with `-` (CLI option)
    return s or "clip"
