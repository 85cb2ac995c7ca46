"""A small folder for `bench/device_adapt_render.py`: one already preprocessed target identity, the corpus it is
pretrained on, and the params of the chosen profile, so the device machine (no mediapipe, dvc or PyAV) runs
pretrain -> adapt -> render -> PSNR/SSIM from the tables alone.

    python bench/device_bundle.py seated --from /tmp/dev --dest .bundle \
        [--params params.paper.yaml] [-S pretrain.iters=5000 ...] [--kit .kit]

Layout of DEST (the paths the stages use, relative to DEST):
    params.yaml                     the profile (`--params`, default FROM/params.yaml) with the -S overrides
    data/processed/<target>/        TRAIN_TABLES + geometry + masks + audio/*.wav (what adapt, render and the
                                    head-mask metrics read; landmarks stay here: LMD is computed here)
    data/processed/<corpus id>/     TRAIN_TABLES (+ geometry when pretrain.render)
    data/processed/_corpus/manifest.json   the corpus stage's manifest shape (tables, digests) of these copies
    data/models/pretrain/grmn.pt    only when FROM's pretrained GRMN was trained with the same settings
    priors/<name>                   the `--prior` files (pretrained elsewhere; `device_adapt_render.py run --prior`)
    bundle.json                     what was copied, rebuilt and how big it is

The geometry table is rebuilt here (`emotag_core.avatar.geometry.geometry_run`, backend flame) when its
map size differs from the profile's `geometry.size` (the loader resizes the maps to `pretrain.image_size`).
The size check adds the tracked + untracked-not-ignored tree and the kit (`--kit`) and fails over 64 MiB, the
device call's carry limit. DEST (and the kit) must be ignored by git (e.g. listed in .git/info/exclude) and
named in the call's `carry`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from sweep import apply_overrides  # bench scripts import each other as top-level modules

REPO = Path(__file__).resolve().parent.parent
LIMIT_MIB = 64.0
# the params sections a pretrained GRMN depends on (FROM's model is reused only when all are equal)
PRETRAIN_KEYS = ("pretrain", "ablation", "flame", "audio_features", "corpus")
RUN_ONLY = ("device", "threads", "checkpoint_every", "log_every")  # pretrain fields that do not change the weights


def _mib(n: int) -> float:
    return n / 2**20


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if Path(path).exists() else 0


def tree_bytes(repo: Path, skip: list[Path]) -> int:
    """Bytes of what a device call sends besides `carry`: tracked + untracked-not-ignored files (minus `skip`)."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True,
                         check=True).stdout.decode().split("\0")
    total = 0
    skip = [s.resolve() for s in skip]
    for rel in filter(None, out):
        f = (repo / rel).resolve()
        if f.is_file() and not any(f.is_relative_to(s) for s in skip):
            total += f.stat().st_size
    return total


def _same_pretrain(src: dict[str, Any], prof: dict[str, Any]) -> tuple[bool, str]:
    """Would the profile train the same GRMN as the one FROM holds (equal PRETRAIN_KEYS, run-only fields aside)?"""
    for k in PRETRAIN_KEYS:
        a, b = src.get(k), prof.get(k)
        if k == "pretrain":
            a = {x: v for x, v in (a or {}).items() if x not in RUN_ONLY}
            b = {x: v for x, v in (b or {}).items() if x not in RUN_ONLY}
        if a != b:
            diff = sorted(x for x in set(a or {}) | set(b or {}) if (a or {}).get(x) != (b or {}).get(x)) \
                if isinstance(a, dict) and isinstance(b, dict) else []
            return False, f"`{k}` differs from FROM's params.yaml ({', '.join(diff[:6]) or 'value'})"
    return True, "same pretrain/ablation/flame/audio_features/corpus as FROM's params.yaml"


def _copy_identity(src: Path, dst: Path, tables: list[str], audio: bool, optional: tuple[str, ...] = ()) -> None:
    from emotag_core.errors import InputError

    dst.mkdir(parents=True, exist_ok=True)
    for t in tables:
        f = src / f"{t}.parquet"
        if not f.exists():
            raise InputError(f, f"table `{t}` missing", f"run its stage in FROM (dvc repro {t}@{src.name})")
        shutil.copy2(f, dst / f.name)
    for t in optional:  # masks: adapt's layers and the head-mask metrics (adapt_run names it when it is needed)
        if (src / f"{t}.parquet").exists():
            shutil.copy2(src / f"{t}.parquet", dst / f"{t}.parquet")
    if audio:
        wavs = sorted((src / "audio").glob("*.wav"))
        if not wavs:
            raise InputError(src / "audio", "no WAV of the identity's clips", f"run ingest@{src.name} in FROM")
        (dst / "audio").mkdir(exist_ok=True)
        for w in wavs:
            shutil.copy2(w, dst / "audio" / w.name)


def _geometry(src: Path, dst: Path, p: Any) -> dict[str, Any]:
    """Copy the geometry table, or rebuild it at `geometry.size` when its map size differs."""
    from emotag_core.avatar.geometry import geometry_run
    from emotag_core.io.tables import TableReader

    f = src / "geometry.parquet"
    have = int(TableReader(f, "geometry").meta["map_size"]) if f.exists() else None
    want = int(p.geometry.size)
    if have == want:
        shutil.copy2(f, dst / f.name)
        return {"map_size": want, "rebuilt": False}
    geometry_run(src / "flame.parquet", src / "frames.parquet", dst / "geometry.parquet", p.geometry, p.flame)
    return {"map_size": want, "rebuilt": True, "from_map_size": have}


def make_bundle(identity: str, src_repo: Path, dest: Path, params_file: Path | None, overrides: list[str],
                kit: Path | None = None, limit_mib: float = LIMIT_MIB, priors: list[Path] | None = None) -> dict[str, Any]:
    """Write the bundle of `identity` from the preprocessed repo `src_repo` into `dest` -> bundle.json's record."""
    from emotag_core.config import load_params
    from emotag_core.train.data import TRAIN_TABLES, file_digest

    src_params = yaml.safe_load((src_repo / "params.yaml").read_text())
    data = apply_overrides(yaml.safe_load(Path(params_file or src_repo / "params.yaml").read_text()), overrides)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    (dest / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    p = load_params(dest / "params.yaml")
    proc_src, proc = src_repo / "data" / "processed", dest / "data" / "processed"
    rec: dict[str, Any] = {"identity": identity, "from": str(src_repo), "params": str(params_file or "FROM/params.yaml"),
                           "overrides": overrides, "geometry": {}}
    _copy_identity(proc_src / identity, proc / identity, list(TRAIN_TABLES), audio=True, optional=("masks",))
    rec["geometry"][identity] = _geometry(proc_src / identity, proc / identity, p)
    manifest: dict[str, Any] = {"identities": {}}
    for c in p.corpus:
        if c == identity:
            raise SystemExit(f"bundle: the target `{identity}` is in the profile's corpus {p.corpus}; pick another target")
        _copy_identity(proc_src / c, proc / c, list(TRAIN_TABLES), audio=False)
        tables = {t: f"data/processed/{c}/{t}.parquet" for t in TRAIN_TABLES}
        if p.pretrain.render:
            rec["geometry"][c] = _geometry(proc_src / c, proc / c, p)
            tables["geometry"] = f"data/processed/{c}/geometry.parquet"
        manifest["identities"][c] = {"tables": tables, "digests": {t: file_digest(dest / v) for t, v in tables.items()}}
    (proc / "_corpus").mkdir()
    (proc / "_corpus" / "manifest.json").write_text(json.dumps(manifest, indent=1))
    model = src_repo / "data" / "models" / "pretrain" / "grmn.pt"
    same, why = _same_pretrain(src_params, data)
    if model.exists() and same:
        (dest / "data" / "models" / "pretrain").mkdir(parents=True)
        shutil.copy2(model, dest / "data" / "models" / "pretrain" / "grmn.pt")
    rec["pretrained"] = {"carried": bool(model.exists() and same),
                         "reason": why if model.exists() else f"{model} absent: the device pretrains"}
    for f in priors or []:  # other pretrained GRMNs (`device_adapt_render.py run --prior priors/<name>`)
        if not Path(f).is_file():
            raise SystemExit(f"bundle --prior {f}: no such file")
        (dest / "priors").mkdir(exist_ok=True)
        shutil.copy2(f, dest / "priors" / Path(f).name)
        rec.setdefault("priors", []).append({"from": str(f), "path": f"priors/{Path(f).name}"})
    sizes = {"bundle": folder_bytes(dest), "tree": tree_bytes(REPO, [dest] + ([kit] if kit else [])),
             "kit": folder_bytes(kit) if kit else 0}
    sizes["total"] = sum(sizes.values())
    rec["mib"] = {k: round(_mib(v), 2) for k, v in sizes.items()}
    rec["limit_mib"] = limit_mib
    (dest / "bundle.json").write_text(json.dumps(rec, indent=1))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("identity")
    ap.add_argument("--from", dest="src", type=Path, required=True, help="a preprocessed repo (params.yaml, data/)")
    ap.add_argument("--dest", type=Path, required=True)
    ap.add_argument("--params", type=Path, help="the profile (default: FROM/params.yaml)")
    ap.add_argument("-S", dest="overrides", action="append", default=[], help="key=value over the profile")
    ap.add_argument("--kit", type=Path, help="the wheel kit the call carries too (counted in the size check)")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB)
    ap.add_argument("--prior", type=Path, action="append", default=[],
                    help="also copy this pretrained grmn.pt to DEST/priors/ (device_adapt_render.py run --prior)")
    a = ap.parse_args()
    rec = make_bundle(a.identity, a.src, a.dest, a.params, a.overrides, a.kit, a.limit_mib, a.prior)
    m = rec["mib"]
    print(json.dumps({k: rec[k] for k in ("geometry", "pretrained")}, indent=1))
    print(f"bundle {m['bundle']:.1f} MiB + tree {m['tree']:.1f} MiB + kit {m['kit']:.1f} MiB = {m['total']:.1f} MiB "
          f"(limit {a.limit_mib:g} MiB)")
    if m["total"] > a.limit_mib:
        sys.exit(f"bundle: {m['total']:.1f} MiB is over the {a.limit_mib:g} MiB carry limit; drop corpus identities, "
                 "lower geometry.size, or carry a lighter kit")


if __name__ == "__main__":
    main()
