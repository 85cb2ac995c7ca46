"""One error hierarchy for the whole project.

Input errors carry the path, what was wrong and what to do; stages print the one-line message
and exit non-zero instead of showing a traceback.
"""
from __future__ import annotations

from pathlib import Path


class EmotagError(Exception):
    """Base class of every error this project raises on purpose."""

    exit_code: int = 2


class InputError(EmotagError):
    """A user-supplied file (video, audio, table, params) is unusable."""

    def __init__(self, path: str | Path | None, reason: str, hint: str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.reason = reason
        self.hint = hint
        head = f"{self.path}: " if self.path is not None else ""
        tail = f"; {hint}" if hint else ""
        super().__init__(f"{head}{reason}{tail}")


class SchemaError(InputError):
    """A Parquet table does not match the schema the code owns (column, dtype or metadata)."""


class WeightsMissingError(EmotagError):
    """A backend's weights are not where it looked; says where it looked and how to get them."""

    def __init__(self, backend: str, looked: list[str | Path], how: str) -> None:
        self.backend = backend
        self.looked = [str(p) for p in looked]
        self.how = how
        where = ", ".join(self.looked) or "(nowhere configured)"
        super().__init__(f"{backend}: weights not found (looked in {where}); {how}")


class ConfigError(EmotagError):
    """params.yaml is inconsistent (unknown key, wrong type, mismatched FLAME variant, ...)."""


class DivergenceError(EmotagError):
    """An optimisation produced NaN/Inf or blew up; names the clip and frame when known."""


class StageMissingError(EmotagError):
    """A stage's prerequisite output is absent; says which stage and the command to run it."""

    def __init__(self, what: str, path: str | Path, command: str) -> None:
        self.path = Path(path)
        super().__init__(f"{what} is missing ({path}); run `{command}` first")
