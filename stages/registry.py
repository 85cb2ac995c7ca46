"""The one registry of the DAG: its stages, the tables an identity gets (and which stage writes
each), the tables the corpus reads, where everything lands (`stages.common.Paths`), and the
add-identity / DAG-sync logic.

`emotag add-identity` and `emotag sync-dag` (stages/cli.py) and the onboarding flow
(pipelines/onboard.py) both go through here. dvc.yaml is the DAG itself; tests/test_registry.py
checks that it and this module agree. Nothing else lists stages, tables or `data/` paths.
"""
from __future__ import annotations

import io
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emotag_core.errors import ConfigError, InputError, StageMissingError
from stages.common import DATA, LOGS, Paths

PARAMS = Path("params.yaml")
DVC_YAML = Path("dvc.yaml")

SYNTHETIC = ("synth",)                   # foreach: synthetic
# per-identity preprocessing (foreach: identities), in dependency order
PREPROCESS = ("ingest", "landmarks", "audio_features", "aus", "emotion", "identity", "track", "geometry")
TARGET_PREPROCESS = ("masks",)           # foreach: targets (person masks: only adapt / evaluate read them)
GLOBAL = ("corpus", "pretrain")          # one run over the whole corpus
PER_TARGET = ("adapt", "render", "evaluate")   # foreach: targets
SYNTHETIC_EVAL = ("grmn_eval",)          # foreach: grmn_eval.targets (synthetic targets; empty in the main DAG)
STAGES = SYNTHETIC + PREPROCESS + TARGET_PREPROCESS + GLOBAL + PER_TARGET + SYNTHETIC_EVAL   # every stage of dvc.yaml, in its order

# table of an identity (data/processed/<id>/<table>.parquet) -> (stage that writes it, what it is)
IDENTITY_TABLES: dict[str, tuple[str, str]] = {
    "frames": ("ingest", "the frame store"),
    "landmarks": ("landmarks", "the landmarks table"),
    "audio_features": ("audio_features", "the audio features"),
    "aus": ("aus", "the AU table"),
    "emotion": ("emotion", "the emotion table"),
    "identity": ("identity", "the identity table"),
    "flame": ("track", "the FLAME track"),
    "geometry": ("geometry", "the geometry maps"),
    "masks": ("masks", "the segmentation masks"),
}

ROLES = ("target", "corpus")
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"}
ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def corpus_tables() -> tuple[str, ...]:
    """The tables of each corpus identity the `corpus` stage reads: the training loader's own list."""
    from emotag_core.train.data import TRAIN_TABLES  # lazy: keeps the CLI free of torch

    return TRAIN_TABLES


def need_table(identity: str, table: str, root: Path | None = None) -> Path:
    """Path of `identity`'s `table`, or StageMissingError naming the stage that writes it."""
    producer, what = IDENTITY_TABLES[table]
    path = Paths(identity, root).table(table)
    if not path.exists():
        raise StageMissingError(what, path, f"dvc repro {producer}@{identity}")
    return path


def onboard_logs(root: Path = Path(".")) -> Path:
    """Folder of the onboarding flow's per-identity stage logs."""
    return root / LOGS / "onboard"


# -- params.yaml / dvc.yaml, round-trip (comments and layout of the user's files survive)
def _yaml():  # noqa: ANN202 - ruamel YAML
    from ruamel.yaml import YAML

    y = YAML()
    y.preserve_quotes = True
    y.indent(mapping=2, sequence=4, offset=2)
    y.width = 120
    return y


def read_yaml(path: Path) -> Any:
    """A YAML file as ruamel's round-trip tree."""
    return _yaml().load(Path(path).read_text(encoding="utf-8"))


def write_yaml(path: Path, data: Any) -> None:
    """Write a round-trip tree back (atomic)."""
    from emotag_core.io.atomic import write_text

    buf = io.StringIO()
    _yaml().dump(data, buf)
    write_text(Path(path), buf.getvalue())


def check_identity_id(identity: str, role: str) -> None:
    if not ID_RE.match(identity):
        raise ConfigError(f"identity id `{identity}` must be letters, digits, `_`, `-` or `.`")
    if role not in ROLES:
        raise ConfigError(f"--role must be target or corpus, got `{role}`")


def register_identities(entries: Iterable[tuple[str, str]], params_path: Path = PARAMS,
                        dvc_path: Path = DVC_YAML, exist_ok: bool = True) -> list[str]:
    """List (id, role) pairs in params.yaml (source `data/raw/<id>`, under `targets` or `corpus`),
    then sync dvc.yaml's corpus deps. Returns the ids that were new."""
    from ruamel.yaml.comments import CommentedMap

    data = read_yaml(params_path)
    idents = data.setdefault("identities", {})
    added = []
    for identity, role in entries:
        check_identity_id(identity, role)
        if identity in idents:
            if not exist_ok:
                raise ConfigError(f"identity `{identity}` already exists in {params_path}; pick another --id")
        else:
            e = CommentedMap(role=role, source=Paths(identity).raw.as_posix())
            e.fa.set_flow_style()
            idents[identity] = e
            added.append(identity)
        lst = data.setdefault("targets" if role == "target" else "corpus", [])
        if identity not in lst:
            lst.append(identity)
    write_yaml(params_path, data)
    sync_dag(params_path, dvc_path)
    return added


def add_identity(videos: list[Path], identity: str, role: str, params_path: Path = PARAMS,
                 dvc_path: Path = DVC_YAML) -> Path:
    """Copy videos to data/raw/<id>/ and register the identity in params.yaml (and the DAG)."""
    check_identity_id(identity, role)
    for v in videos:
        if not v.is_file():
            raise InputError(v, "no such file", "give the path of a video file")
        if v.suffix.lower() not in VIDEO_EXTS:
            raise InputError(v, f"extension `{v.suffix}` is not a video container we read",
                             f"use one of {sorted(VIDEO_EXTS)}")
        if v.stat().st_size == 0:
            raise InputError(v, "file is empty")
    if identity in read_yaml(params_path).get("identities", {}):
        raise ConfigError(f"identity `{identity}` already exists in {params_path}; pick another --id")
    dest = Paths(identity, Path(params_path).parent).raw
    dest.mkdir(parents=True, exist_ok=True)
    for v in videos:
        shutil.copy2(v, dest / v.name)
    register_identities([(identity, role)], params_path, dvc_path, exist_ok=False)
    return dest


# -- the DAG's corpus deps follow params `corpus`; evaluate's source deps follow params `targets`
def corpus_deps(corpus: list[str]) -> list[str]:
    """dvc.yaml deps of the `corpus` stage: each corpus identity's tables, as repo-relative paths."""
    return [Paths(i).table(t).as_posix() for i in corpus for t in corpus_tables()]


def source_deps(params: dict) -> list[str]:
    """dvc.yaml deps of `evaluate` on the targets' source folders (it reads their notes, e.g. dubbed audio, and
    a synthetic target's `truth/`). DVC cannot interpolate `${identities.${item}.source}` inside a foreach, so
    every target's folder is listed: a change in one re-evaluates every target."""
    idents = params.get("identities") or {}
    return list(dict.fromkeys(str(idents[t]["source"]) for t in params.get("targets") or [] if t in idents))


def _is_identity_dep(dep: object) -> bool:
    return str(dep).startswith((DATA / "processed").as_posix() + "/")


def _is_source_dep(dep: object) -> bool:
    return "${" not in str(dep) and not str(dep).startswith(("stages/", "emotag_core/"))


def _synced(dag: dict, params: dict) -> list[tuple[dict, list[str]]]:
    """(the deps' holder, the deps it should have) for each stage whose deps follow params."""
    st = dag.get("stages", {})
    out = []
    if "corpus" in st:
        keep = [str(d) for d in st["corpus"].get("deps", []) if not _is_identity_dep(d)]
        out.append((st["corpus"], keep + corpus_deps(list(params.get("corpus") or []))))
    if "evaluate" in st:
        body = st["evaluate"].get("do", st["evaluate"])
        keep = [str(d) for d in body.get("deps", []) if not _is_source_dep(d)]
        out.append((body, keep + source_deps(params)))
    return out


def sync_dag(params_path: Path = PARAMS, dvc_path: Path = DVC_YAML) -> bool:
    """Rewrite the `corpus` stage's per-identity deps and `evaluate`'s source deps from params; True if changed."""
    dag = read_yaml(dvc_path)
    changed = False
    for holder, want in _synced(dag, read_yaml(params_path)):
        if [str(d) for d in holder.get("deps", [])] != want:
            holder["deps"], changed = want, True
    if changed:
        write_yaml(dvc_path, dag)
    return changed


def dag_in_sync(params_path: Path = PARAMS, dvc_path: Path = DVC_YAML) -> bool:
    """Whether dvc.yaml's corpus deps and evaluate's source deps are exactly what params asks for."""
    return all([str(d) for d in holder.get("deps", [])] == want
               for holder, want in _synced(read_yaml(dvc_path), read_yaml(params_path)))
