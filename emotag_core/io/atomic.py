"""Atomic outputs: write to a temporary sibling, rename into place only on success.

A killed process leaves at most a `.tmp-*` sibling (never a half-written output); those are
swept by `sweep_temps` when a stage starts again.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TMP_PREFIX = ".tmp-"


def _tmp_sibling(path: Path, is_dir: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        return Path(tempfile.mkdtemp(prefix=f"{TMP_PREFIX}{path.name}.", dir=path.parent))
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(name)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path; on clean exit it replaces `path`, on error it is removed."""
    target = Path(path)
    tmp = _tmp_sibling(target, is_dir=False)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory; on clean exit it replaces directory `path` whole."""
    target = Path(path)
    tmp = _tmp_sibling(target, is_dir=True)
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f"{TMP_PREFIX}{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 text atomically."""
    write_bytes(path, text.encode("utf-8"))


def sweep_temps(folder: str | Path) -> list[Path]:
    """Remove stale `.tmp-*` leftovers of killed runs under `folder`; returns what was removed."""
    root = Path(folder)
    removed: list[Path] = []
    if not root.exists():
        return removed
    for p in sorted(root.rglob(f"{TMP_PREFIX}*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed
