"""MEAD adapter: `<actor>/video/<view>/<emotion>/level_<n>/<nnn>.mp4` (+ `<actor>/audio/...m4a`).

Front view by default. Emotion and intensity level become clip labels. The emotional test set of
the paper uses 5 emotions (happy, sad, surprised, angry, fear) × 3 levels; neutral is level 1
only in MEAD. Split: for each (emotion, level), the last `test_per_cell` sentences are `test`.
"""
from __future__ import annotations

import re
from pathlib import Path

from emotag_core.datasets import Clip, Identity, sanitize
from emotag_core.errors import InputError

# MEAD folder name -> DeepFace label (the project's emotion vocabulary)
MEAD_EMOTIONS = {
    "angry": "angry", "disgusted": "disgust", "fear": "fear", "happy": "happy",
    "sad": "sad", "surprised": "surprise", "neutral": "neutral", "contempt": "contempt",
}
PAPER_EMOTIONS = ("happy", "sad", "surprised", "angry", "fear")
LEVEL_RE = re.compile(r"^level_(\d+)$")


def scan(root: Path, view: str = "front", emotions: tuple[str, ...] | None = None,
         role: str = "target", test_per_cell: int = 1) -> list[Identity]:
    """Identities (one per actor) of a MEAD tree."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "MEAD root is not a folder", "point --root at the folder holding the actor folders (M003, W009, ...)")
    out: list[Identity] = []
    for actor in sorted(p for p in root.iterdir() if p.is_dir()):
        vdir = actor / "video" / view
        if not vdir.is_dir():
            continue
        clips: list[Clip] = []
        for emo_dir in sorted(p for p in vdir.iterdir() if p.is_dir()):
            emo = emo_dir.name.lower()
            if emo not in MEAD_EMOTIONS:
                raise InputError(emo_dir, f"unknown MEAD emotion folder `{emo_dir.name}`",
                                 f"expected one of {sorted(MEAD_EMOTIONS)}")
            if emotions and emo not in emotions:
                continue
            for lvl_dir in sorted(p for p in emo_dir.iterdir() if p.is_dir()):
                m = LEVEL_RE.match(lvl_dir.name)
                if not m:
                    raise InputError(lvl_dir, "expected a `level_<n>` folder")
                level = int(m.group(1))
                vids = sorted(lvl_dir.glob("*.mp4"))
                for i, v in enumerate(vids):
                    audio = actor / "audio" / emo_dir.name / lvl_dir.name / f"{v.stem}.m4a"
                    clips.append(Clip(
                        clip_id=sanitize(f"{emo}_l{level}_{v.stem}"), source=str(v.resolve()),
                        audio=str(audio.resolve()) if audio.exists() else None,
                        split="test" if i >= len(vids) - test_per_cell else "train",
                        labels={"emotion": MEAD_EMOTIONS[emo], "level": level, "sentence": v.stem, "view": view},
                    ))
        if clips:
            out.append(Identity(id=sanitize(f"mead_{actor.name}"), role=role, clips=clips, dataset="mead"))
    if not out:
        raise InputError(root, f"no MEAD actor with video/{view}/<emotion>/level_<n>/*.mp4 found")
    return out
