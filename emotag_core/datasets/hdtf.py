"""HDTF adapter: the `HDTF_dataset/<split>_annotion_time.txt` clip lists with time ranges.

Each annotation line is `<video>.mp4 mm:ss-mm:ss [mm:ss-mm:ss ...]`; clip k of `Name.mp4`
is `Name_k` (HDTF's own naming). Downloaded videos live in a folder beside the annotations
(any of `<videos>/<Name>.mp4` or `<videos>/<split>_<Name>.mp4`). One identity per video, as the
paper uses 70 videos of 70 identities; `--limit` picks the first n.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotag_core.datasets import Clip, Identity, sanitize
from emotag_core.errors import InputError

SPLITS = ("RD", "WDA", "WRA")
RANGE_RE = re.compile(r"^(\d+):(\d{2})-(\d+):(\d{2})$")


def parse_annotation(path: Path) -> dict[str, list[tuple[float, float]]]:
    """video name -> [(start_s, end_s), ...] from an `*_annotion_time.txt` file."""
    out: dict[str, list[tuple[float, float]]] = {}
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        name, ranges = parts[0], parts[1:]
        spans = []
        for r in ranges:
            m = RANGE_RE.match(r)
            if not m:
                raise InputError(path, f"line {n}: bad time range `{r}` (expected mm:ss-mm:ss)")
            a = int(m.group(1)) * 60 + int(m.group(2))
            b = int(m.group(3)) * 60 + int(m.group(4))
            if b <= a:
                raise InputError(path, f"line {n}: range `{r}` ends before it starts")
            spans.append((float(a), float(b)))
        if not spans:
            raise InputError(path, f"line {n}: `{name}` has no time range")
        out[name] = spans
    return out


def scan(annotations: Path, videos: Path, role: str = "corpus", limit: int | None = None,
         test_seconds: float = 0.0) -> list[Identity]:
    """Identities of an HDTF download: one per annotated video that exists under `videos`."""
    annotations, videos = Path(annotations), Path(videos)
    files = [annotations / f"{s}_annotion_time.txt" for s in SPLITS]
    if not any(f.exists() for f in files):
        raise InputError(annotations, "no `<RD|WDA|WRA>_annotion_time.txt` found",
                         "point --annotations at HDTF's HDTF_dataset folder")
    out: list[Identity] = []
    missing: list[str] = []
    for split, f in zip(SPLITS, files):
        if not f.exists():
            continue
        for name, spans in parse_annotation(f).items():
            stem = Path(name).stem
            cands = [videos / name, videos / f"{split}_{name}", videos / split / name]
            src = next((c for c in cands if c.exists()), None)
            if src is None:
                missing.append(name)
                continue
            clips = [Clip(clip_id=sanitize(f"{stem}_{k}"), source=str(src.resolve()), start=a, end=b,
                          labels={"hdtf_split": split})
                     for k, (a, b) in enumerate(spans)]
            if test_seconds > 0:  # hold out the tail of the last clip for self-reconstruction
                last = clips[-1]
                assert last.end is not None and last.start is not None
                cut = max(last.start, last.end - test_seconds)
                clips.append(Clip(clip_id=last.clip_id + "_test", source=last.source, start=cut, end=last.end,
                                  split="test", labels=dict(last.labels)))
                last.end = cut
            out.append(Identity(id=sanitize(f"hdtf_{split}_{stem}"), role=role, clips=clips, dataset="hdtf"))
            if limit and len(out) >= limit:
                return out
    if not out:
        raise InputError(videos, f"none of the {len(missing)} annotated HDTF videos found here",
                         "download them (HDTF's *_video_url.txt) into this folder as <Name>.mp4")
    return out
