"""Are two runs' trained weights bit-identical? Compares every tensor of every model file of two `data/models/`
folders (pretrain/grmn.pt, <id>/grmn.pt, <id>/scene.pt, ...) with torch.equal, and the non-tensor entries too.

    python bench/compare_weights.py /tmp/baseline/data/models /tmp/h1check/data/models

Prints one line per file (tensors compared, which differ) and exits 1 when anything differs or is missing.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists of a checkpoint -> {dotted key: leaf}."""
    if isinstance(obj, dict):
        return {k: v for key, val in obj.items() for k, v in flatten(val, f"{prefix}{key}.").items()}
    if isinstance(obj, (list, tuple)) and any(isinstance(v, (dict, torch.Tensor)) for v in obj):
        return {k: v for i, val in enumerate(obj) for k, v in flatten(val, f"{prefix}{i}.").items()}
    return {prefix.rstrip("."): obj}


def compare_file(a: Path, b: Path) -> tuple[int, list[str]]:
    """(tensors compared, keys that differ) between two torch.save files."""
    fa = flatten(torch.load(a, map_location="cpu", weights_only=False))
    fb = flatten(torch.load(b, map_location="cpu", weights_only=False))
    bad = sorted(set(fa) ^ set(fb))
    n = 0
    for k in sorted(set(fa) & set(fb)):
        x, y = fa[k], fb[k]
        if isinstance(x, torch.Tensor) or isinstance(y, torch.Tensor):
            n += 1
            ok = isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        else:
            ok = x == y
        if not ok:
            bad.append(k)
    return n, bad


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("reference", type=Path, help="a data/models folder")
    ap.add_argument("candidate", type=Path, help="another data/models folder")
    a = ap.parse_args()
    files = sorted(p.relative_to(a.reference) for p in a.reference.rglob("*.pt") if ".checkpoints" not in p.parts)
    if not files:
        print(f"{a.reference}: no .pt files")
        return 1
    failed = False
    for rel in files:
        other = a.candidate / rel
        if not other.exists():
            print(f"{rel}: MISSING in {a.candidate}")
            failed = True
            continue
        n, bad = compare_file(a.reference / rel, other)
        print(f"{rel}: {n} tensors, " + ("all bit-identical" if not bad else f"{len(bad)} differ: {bad[:8]}"))
        failed |= bool(bad)
    print("IDENTICAL" if not failed else "DIFFERENT")
    return int(failed)


if __name__ == "__main__":
    sys.exit(main())
