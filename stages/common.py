"""What every stage shares: the path table, params loading, error handling and timing.

All knowledge of the `data/` layout lives here (DESIGN.md, 'where things land').
"""
from __future__ import annotations

import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emotag_core.config import Params, load_params
from emotag_core.errors import EmotagError, StageMissingError
from emotag_core.io.atomic import sweep_temps
from emotag_core.progress import RichProgress

ROOT = Path.cwd()
DATA = Path("data")


class Paths:
    """The one path table: where each identity's inputs and outputs live."""

    def __init__(self, identity: str, root: Path | None = None) -> None:
        self.id = identity
        self.root = root or Path(".")

    @property
    def raw(self) -> Path:
        """Where `emotag add-identity` / the onboarding flow put an identity's videos or clip manifest."""
        return self.root / DATA / "raw" / self.id

    @property
    def processed(self) -> Path:
        return self.root / DATA / "processed" / self.id

    def table(self, name: str) -> Path:
        return self.processed / f"{name}.parquet"

    @property
    def audio_dir(self) -> Path:
        return self.processed / "audio"

    def audio(self, clip_id: str) -> Path:
        return self.audio_dir / f"{clip_id}.wav"

    @property
    def synthetic(self) -> Path:
        return self.root / DATA / "synthetic" / self.id

    @property
    def models(self) -> Path:
        return self.root / DATA / "models" / self.id

    @property
    def renders(self) -> Path:
        return self.root / DATA / "renders" / self.id

    @property
    def adhoc_renders(self) -> Path:
        """Where `emotag render <id> <audio>` writes: `renders/<id>/`, a folder DVC does not own (a file in
        `data/renders/<id>/` would turn `dvc status` dirty and be deleted by the next `dvc repro`)."""
        return self.root / "renders" / self.id

    @property
    def metrics_json(self) -> Path:
        return self.root / DATA / "metrics" / f"{self.id}.json"

    @property
    def metrics_dir(self) -> Path:
        return self.root / DATA / "metrics" / self.id

    @property
    def report(self) -> Path:
        return self.root / DATA / "reports" / f"{self.id}.html"


PRETRAIN_MODELS = DATA / "models" / "pretrain"
PRETRAIN_METRICS = DATA / "metrics" / "pretrain"
CORPUS_DIR = DATA / "processed" / "_corpus"
LOGS = DATA / "logs"


def params(path: str | Path = "params.yaml") -> Params:
    """The typed params of this repository."""
    return load_params(path)


def source_dir(p: Params, identity: str) -> Path:
    """Raw input folder of an identity, as params.yaml names it."""
    from emotag_core.errors import ConfigError

    if identity not in p.identities:
        raise ConfigError(f"params: identity `{identity}` is not listed under `identities`; "
                          f"add it with `emotag add-identity <video> --id {identity}`")
    return Path(p.identities[identity].source)


def need(path: Path, what: str, stage_name: str, identity: str) -> Path:
    """`path` if it exists, else StageMissingError naming `dvc repro <stage_name>@<identity>`."""
    if not path.exists():
        raise StageMissingError(what, path, f"dvc repro {stage_name}@{identity}")
    return path


def progress_bar(label: str) -> RichProgress:
    """The progress a stage passes to its library job (`emotag_core.progress.Progress`): a rich bar on a
    terminal, a plain line every 10 s in a log (dvc repro, CI). Use as `with progress_bar("x@id") as bar:`."""
    return RichProgress(label)


def stage(name: str) -> Callable[[Callable[..., Any]], Callable[..., int]]:
    """Decorate a stage's main: one-line errors with non-zero exit, temp sweep, timing."""

    def deco(fn: Callable[..., Any]) -> Callable[..., int]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> int:
            from rich.console import Console

            console = Console(stderr=True)
            label = f"{name}@{args[0]}" if args else name
            t0 = time.perf_counter()
            try:
                fn(*args, **kwargs)
            except EmotagError as exc:
                console.print(f"[bold red]{label} failed:[/] {type(exc).__name__}: {exc}", highlight=False)
                return exc.exit_code
            console.print(f"[green]{label}[/] done in {time.perf_counter() - t0:.1f} s", highlight=False)
            return 0

        return wrapper

    return deco


def main_for(fn: Callable[..., int]) -> None:
    """`python -m stages.x <id>` entry: call the stage with argv and exit with its code."""
    sys.exit(fn(*sys.argv[1:]))


def sweep(*folders: Path) -> None:
    """Remove temp leftovers of a killed earlier run of this stage."""
    for f in folders:
        sweep_temps(f)


def need_adapted(identity: str, paths: Paths) -> Path:
    """The adapted model folder of `identity`; StageMissingError (`dvc repro adapt@<id>`) if a file is absent."""
    from emotag_core.render.adapted import ADAPTED_FILES

    for f in ADAPTED_FILES:
        need(paths.models / f, f"the adapted model of `{identity}`", "adapt", identity)
    return paths.models


def target_files(identity: str, paths: Paths, audio: bool = True) -> Any:
    """The identity's tables (and audio folder) as `TargetFiles`, checked: StageMissingError naming the stage."""
    from emotag_core.render.jobs import TargetFiles

    for table, st in (("frames", "ingest"), ("flame", "track"), ("aus", "aus")):
        need(paths.table(table), f"the `{table}` table of `{identity}`", st, identity)
    if audio:
        need(paths.audio_dir, "the identity's audio", "ingest", identity)
    return TargetFiles(identity, paths.processed)
