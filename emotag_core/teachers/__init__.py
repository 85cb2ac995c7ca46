"""Teacher signals (one module per signal, one class per backend) and the backend registry.

Every backend registers a `Backend` entry here: which signal it serves, whether it is the paper's
choice, and a `locate(cfg)` function that says whether its weights are present and where it
looked. `describe_backends()` is what `emotag doctor` prints; `require()` is what a backend calls
before any work so that missing weights fail early with the path and how to get them.

Importing this package imports no heavy teacher package (mediapipe, deepface, py-feat, ...).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from emotag_core.errors import WeightsMissingError

# Signal modules that register backends on import (missing modules are skipped by `describe`).
SIGNAL_MODULES = ("landmarks", "audio", "aus", "emotion", "identity")


@dataclass(frozen=True)
class WeightsStatus:
    """Where a backend looked for its weights and whether it found them."""

    present: bool
    """True if every file the backend needs exists (True for backends that need none)."""
    looked: tuple[str, ...] = ()
    """Paths (or cache ids) checked, in the order tried."""
    how: str = ""
    """How to obtain the weights when they are missing."""
    found: str | None = None
    """The path actually used, when present."""


@dataclass(frozen=True)
class Backend:
    """One registered backend of one teacher signal."""

    signal: str
    """Signal (params.yaml section): landmarks, audio_features, aus, emotion, identity, ..."""
    name: str
    """Backend name as written in params.yaml (`<signal>.backend`)."""
    paper: bool
    """True for the backend the paper uses; False for an offline stand-in."""
    what: str
    """One line: what model/data it runs."""
    locate: Callable[[Any], WeightsStatus] = field(repr=False)
    """cfg section (or None for defaults) -> WeightsStatus; must not load or download anything."""


BACKENDS: dict[tuple[str, str], Backend] = {}


def register_backend(backend: Backend) -> Backend:
    """Add (or replace) a backend in the registry; returns it."""
    BACKENDS[(backend.signal, backend.name)] = backend
    return backend


def no_weights(_cfg: Any = None) -> WeightsStatus:
    """`locate` for backends that need no weights."""
    return WeightsStatus(present=True, looked=(), how="", found=None)


def file_status(candidates: list[Path], how: str) -> WeightsStatus:
    """WeightsStatus for a backend that needs the first existing file of `candidates`."""
    for p in candidates:
        if p.exists():
            return WeightsStatus(True, tuple(str(c) for c in candidates), how, str(p))
    return WeightsStatus(False, tuple(str(c) for c in candidates), how, None)


def _load_signal_modules() -> None:
    for mod in SIGNAL_MODULES:
        try:
            importlib.import_module(f"emotag_core.teachers.{mod}")
        except ModuleNotFoundError as exc:  # a signal module not written yet
            if exc.name != f"emotag_core.teachers.{mod}":
                raise


def get_backend(signal: str, name: str) -> Backend:
    """The registered backend `name` of `signal`; ConfigError listing the known ones otherwise."""
    from emotag_core.errors import ConfigError

    _load_signal_modules()
    if (signal, name) not in BACKENDS:
        known = sorted(n for s, n in BACKENDS if s == signal)
        raise ConfigError(f"params: `{signal}.backend` is `{name}`; known backends: {known}")
    return BACKENDS[(signal, name)]


def require(signal: str, name: str, cfg: Any = None) -> WeightsStatus:
    """Check a backend's weights before any work; WeightsMissingError names where it looked."""
    b = get_backend(signal, name)
    st = b.locate(cfg)
    if not st.present:
        raise WeightsMissingError(f"{signal}/{name}", list(st.looked), st.how)
    return st


class BackendRow(NamedTuple):
    """One `emotag doctor` row: unpacks as (component, backend, ok, detail)."""

    signal: str
    name: str
    weights_present: bool
    detail: str


def describe_backends(params: Any = None) -> list[BackendRow]:
    """One row per registered backend: signal, name, weights present?, and where it looked.

    `detail` says paper/offline, what runs, the file used or the paths looked in and how to get
    the weights. `backend_report()` gives the same as dicts with the fields separate.
    """
    rows = []
    for r in backend_report(params):
        kind = "paper" if r["paper"] else "offline"
        sel = ", selected" if r["selected"] else ""
        if r["weights_present"]:
            where = f"uses {r['found']}" if r["found"] else "needs no weights"
        else:
            where = f"missing (looked in {', '.join(r['looked']) or 'nowhere'}); {r['how']}"
        rows.append(BackendRow(f"teacher:{r['signal']}", r["name"], r["weights_present"],
                               f"{kind}{sel}: {r['what']}; {where}"))
    return rows


def backend_report(params: Any = None) -> list[dict[str, Any]]:
    """Every registered backend as a dict: signal, name, paper, selected, what, weights_present, found, looked, how.

    `params` is an `emotag_core.config.Params` (or None for defaults); each backend's `locate` gets
    its signal's section so that configured paths are honoured.
    """
    _load_signal_modules()
    rows = []
    for (signal, name), b in sorted(BACKENDS.items()):
        cfg = getattr(params, signal, None) if params is not None else None
        try:
            st = b.locate(cfg)
        except Exception as exc:  # doctor must report, never crash
            st = WeightsStatus(False, (), f"locate failed: {type(exc).__name__}: {exc}")
        selected = cfg is not None and getattr(cfg, "backend", None) == name
        rows.append({
            "signal": signal,
            "name": name,
            "paper": b.paper,
            "selected": selected,
            "what": b.what,
            "weights_present": st.present,
            "found": st.found,
            "looked": list(st.looked),
            "how": "" if st.present else st.how,
        })
    return rows
