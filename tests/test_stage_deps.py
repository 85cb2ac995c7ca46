"""Every library file a stage runs is a DVC dep of that stage, so a change in it makes `dvc status` dirty.

Static walk (ast, nothing imported): the stage module's own `emotag_core` imports, and for each name it imports
from a module, that module's top-level imports plus the imports inside the function or class of that name and
of the same-module functions it calls. A file counts as listed when a dep is that file or a folder above it.
Infrastructure that cannot change a stage's numbers is exempt (EXEMPT, with the reason).
"""
from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

EXEMPT = {
    "emotag_core/__init__.py": "the package marker",
    "emotag_core/errors.py": "error types and messages",
    "emotag_core/progress.py": "progress reporting",
    "emotag_core/assets.py": "where offline weights are looked up (the weights are the model, not this code)",
    "emotag_core/config.py": "typed params: the values come from params.yaml, which DVC tracks per stage",
    "emotag_core/io/atomic.py": "temp-and-rename writes",
    "emotag_core/teachers/__init__.py": "the backend registry (names, where weights are looked for)",
    "emotag_core/io/tables.py": "the table contracts: a change there changes the tables, which are the deps",
    "emotag_core/io/frames.py": "the frame store reader (the frame store is a dep of every stage that reads it)",
}


def _file(module: str) -> Path | None:
    p = ROOT / Path(*module.split("."))
    return p / "__init__.py" if (p / "__init__.py").exists() else p.with_suffix(".py") if p.with_suffix(".py").exists() else None


def _imports(nodes: list[ast.AST]) -> set[tuple[str, str | None]]:
    """(module, imported name or None) of every `emotag_core` import in `nodes` (and below)."""
    out: set[tuple[str, str | None]] = set()
    for top in nodes:
        for n in ast.walk(top):
            if isinstance(n, ast.Import):
                out |= {(a.name, None) for a in n.names if a.name.startswith("emotag_core")}
            elif isinstance(n, ast.ImportFrom) and not n.level and (n.module or "").startswith("emotag_core"):
                out |= {(n.module, a.name) for a in n.names}
    return out


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


def _files(imports: set[tuple[str, str | None]]) -> set[Path]:
    """The module files of `imports` (a name that is itself a module: that file too)."""
    out = set()
    for mod, name in imports:
        for f in (_file(mod), _file(f"{mod}.{name}") if name else None):
            if f is not None:
                out.add(f)
    return out


def reached(path: Path, name: str) -> set[Path]:
    """Files that running `name` of module file `path` imports: the module's top-level imports, the imports
    inside `name` and inside the same-module functions/classes it refers to."""
    tree = _tree(path)
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    found, todo, seen = set(_imports(top)), [name], set()
    while todo:
        node = defs.get(todo.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        found |= _imports([node])
        todo += [n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in defs]
    return _files(found)


def stage_files(stage: str) -> set[Path]:
    """Library files the stage `stage` runs (module doc)."""
    tree = _tree(ROOT / "stages" / f"{stage}.py")
    imports = _imports([tree])
    out = _files(imports)
    for mod, name in imports:
        f = _file(mod)
        if f is not None and name is not None and _file(f"{mod}.{name}") is None:
            out |= reached(f, name)  # `from emotag_core.x import job`
        elif name is not None and (m := _file(f"{mod}.{name}")) is not None:  # `from emotag_core.x import mod`
            used = {n.attr for n in ast.walk(tree)
                    if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == name}
            out |= {g for attr in used | {""} for g in reached(m, attr)}
    return out


def _dag() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


@pytest.mark.parametrize("stage", list(_dag()))
def test_stage_deps_list_the_library_code_it_runs(stage: str) -> None:
    body = _dag()[stage]
    deps = [str(d).rstrip("/") for d in body.get("do", body).get("deps", [])]
    assert f"stages/{stage}.py" in deps
    missing = sorted(rel for f in stage_files(stage)
                     if (rel := f.relative_to(ROOT).as_posix()) not in EXEMPT
                     and not any(rel == d or rel.startswith(d + "/") for d in deps))
    assert not missing, f"dvc.yaml `{stage}` runs {missing} but does not list it under deps"


def test_the_walk_sees_lazy_imports_inside_the_called_function() -> None:
    files = {f.relative_to(ROOT).as_posix() for f in stage_files("evaluate")}
    assert "emotag_core/teachers/landmarks.py" in files   # metrics.evaluate's landmark_teacher, imported lazily
    assert "emotag_core/metrics/lpips_metric.py" in files  # inside _self_reconstruction, called by evaluate_run
