"""The layering, checked from the source (ast; nothing is imported): run `pytest tests/test_imports.py -q`.

- `emotag_core` has no import cycles and never imports `stages`, `pipelines` or `bench`;
- `bench/` and `tests/` import `stages` only in the short ALLOWED list (the CLI's, the registry's and
  the params-keys tests); `pipelines/` only through `stages.registry`;
- a stage imports no other stage (only `stages.common` and `stages.registry`);
- a stage file is at most STAGE_MAX_LINES lines (the CLI, common and registry aside).

Imports inside functions count too: a lazy import is still a dependency.
Files that broke a rule when this test was written are listed in KNOWN with a strict xfail each, so the
suite stays green and each entry turns into an XPASS failure (remove it) the moment its file is fixed.
"""
from __future__ import annotations

import ast
import graphlib
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("emotag_core", "stages", "pipelines", "bench", "tests")
STAGE_MAX_LINES = 100
STAGE_FILES_EXEMPT = {"__init__", "cli", "common", "registry"}   # not stages: the CLI and the path helpers
STAGE_HELPERS = {"stages", "stages.common", "stages.registry"}   # what a stage may import from stages/
# the only files outside stages/ that may import stages (what they test / what they are)
ALLOWED = {
    "tests/test_cli.py": "the CLI's own tests",
    "tests/test_registry.py": "the registry's own tests",
    "tests/test_params_keys.py": "runs each stage's main under a recording params proxy",
    "tests/serve/test_cli_serve.py": "the CLI's `serve` verb (which identities it offers, where it binds)",
}
PIPELINES_MAY_IMPORT = {"stages.registry", "stages.common"}

# -- what was still broken when this test was written (owner in the reason); delete an entry once it XPASSes
OUTSIDE_KNOWN: dict[str, str] = {
}
STAGE_IMPORT_KNOWN: dict[str, str] = {
}
SIZE_KNOWN: dict[str, str] = {
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


@cache
def _files() -> dict[str, Path]:
    """module name -> file, for every .py file of the checked folders."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            if ".venv" not in f.parts:
                out[_module_name(f)] = f
    return out


def _resolve(name: str, known: dict[str, Path]) -> str:
    """The longest prefix of dotted `name` that is a file of ours, else `name` itself (third party)."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in known:
            return cand
    return name


@cache
def imports_of(module: str) -> frozenset[str]:
    """Every module `module` imports (top level and inside functions), resolved to our files."""
    known = _files()
    path = known[module]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    deps: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            deps.update(_resolve(a.name, known) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([base] if base else []))
            for a in node.names:
                deps.add(_resolve(f"{base}.{a.name}", known) if a.name != "*" else _resolve(base, known))
    deps.discard(module)
    return frozenset(deps)


def _rel(module: str) -> str:
    return str(_files()[module].relative_to(ROOT))


def _stages_imports(module: str) -> set[str]:
    return {d for d in imports_of(module) if d == "stages" or d.startswith("stages.")}


def _outside_ok(module: str) -> bool:
    rel = _rel(module)
    got = _stages_imports(module)
    if rel in ALLOWED:
        return True
    if module.startswith("pipelines"):
        return got <= PIPELINES_MAY_IMPORT and not _private_cli_use(module)
    return not got


def _private_cli_use(module: str) -> bool:
    text = _files()[module].read_text(encoding="utf-8")
    return "cli._" in text


def _modules(prefix: str) -> list[str]:
    return [m for m in _files() if m == prefix or m.startswith(prefix + ".")]


def _stage_modules() -> list[str]:
    return [m for m in _modules("stages") if m.split(".")[-1] not in STAGE_FILES_EXEMPT | {"stages"}]


def _xfail(known: dict[str, str], key: str) -> list:
    return [pytest.mark.xfail(strict=True, reason=known[key])] if key in known else []


def test_the_walker_sees_imports():
    """The walk itself finds a top-level and a function-level import (guards a silent no-op check)."""
    assert "stages.common" in imports_of("stages.landmarks")
    assert "emotag_core.io.atomic" in imports_of("stages.cli")        # imported inside _dump_rt
    assert len(_files()) > 100


def test_emotag_core_has_no_import_cycles():
    mods = _modules("emotag_core")
    graph = {m: {d for d in imports_of(m) if d in mods} for m in mods}
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        pytest.fail(f"import cycle in emotag_core: {' -> '.join(exc.args[1])}")


def test_emotag_core_imports_no_outer_layer():
    bad = {_rel(m): sorted(d for d in imports_of(m) if d.split(".")[0] in ("stages", "pipelines", "bench", "tests"))
           for m in _modules("emotag_core")}
    bad = {k: v for k, v in bad.items() if v}
    assert not bad, f"emotag_core must not know the DAG, the flows, the benches or the tests: {bad}"


def test_no_new_stages_imports_outside_stages():
    """Every file of bench/, tests/ and pipelines/ not in KNOWN imports stages only as ALLOWED says."""
    bad = {_rel(m): sorted(_stages_imports(m)) for p in ("bench", "tests", "pipelines") for m in _modules(p)
           if _rel(m) not in OUTSIDE_KNOWN and not _outside_ok(m)}
    assert not bad, (f"these import stages; call the emotag_core function instead (stages are params + paths + "
                     f"one call): {bad}")


def test_known_stages_import_fixed():
    """Each OUTSIDE_KNOWN entry (none left: issue 16 moved every bench/test onto emotag_core) still imports stages;
    an entry whose file no longer does must be removed."""
    fixed = [rel for rel in sorted(OUTSIDE_KNOWN)
             if _module_name(ROOT / rel) not in _files() or _outside_ok(_module_name(ROOT / rel))]
    assert not fixed, f"fixed, remove from OUTSIDE_KNOWN: {fixed}"


@pytest.mark.parametrize("mod", [pytest.param(m, marks=_xfail(STAGE_IMPORT_KNOWN, f"stages/{m.split('.')[-1]}.py"))
                                 for m in _stage_modules() + ["stages.cli"]])
def test_stage_imports_no_other_stage(mod):
    other = _stages_imports(mod) - STAGE_HELPERS
    assert not other, f"{_rel(mod)} imports {sorted(other)}: move the shared code into emotag_core"


@pytest.mark.parametrize("mod", [pytest.param(m, marks=_xfail(SIZE_KNOWN, f"stages/{m.split('.')[-1]}.py"))
                                 for m in _stage_modules()])
def test_stage_file_is_thin(mod):
    n = len(_files()[mod].read_text(encoding="utf-8").splitlines())
    assert n <= STAGE_MAX_LINES, f"{_rel(mod)} has {n} lines (> {STAGE_MAX_LINES}): move the job into emotag_core"


def test_known_lists_name_real_files():
    for rel in {**SIZE_KNOWN, **STAGE_IMPORT_KNOWN}:
        assert (ROOT / rel).exists(), f"KNOWN lists {rel}, which is gone: remove the entry"
