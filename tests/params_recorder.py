"""A recording proxy over `emotag_core.config.Params`: which params keys a stage reads at run time.

`recording(p, rec)` returns a copy of `p` whose section objects are instances of recording subclasses
of their own dataclasses (so `isinstance`, `dataclasses.fields/asdict/astuple/replace` and
`emotag_core.config.to_dict` work on them and the library receives the proxy itself). Every read of a
field records `section.key` in `rec`:

- `p.pretrain` alone records nothing; `p.pretrain.iters` records `pretrain.iters`, also when the
  library reads it later from the section object it was given;
- `asdict` / `to_dict` / `repr` / `==` read every field, so they record every field;
  `dataclasses.replace(cfg, iters=5)` records the fields it copies (not `iters`) and returns a
  recording object again;
- pickling (`copy.copy`, worker processes) records every field and yields a plain, non-recording
  copy (what another process reads is not seen, so the whole section counts as read);
- top-level lists (`corpus`, `targets`) record their name; the per-id mappings (`identities`,
  `synthetic`) record `identities.<id>` on `[id]`, `.get(id)` and `id in`, and `identities.<id>.<field>`
  on the entry's fields; iterating or sizing the mapping records the mapping's name.

`Recorder(sink)` appends each new key as one line to `sink` the moment it is first read (in the
process that reads it, forked workers included), so nothing is lost when a process ends by
`os._exit` or a signal. tests/test_params_keys.py runs each stage under it.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from emotag_core.config import Params


class Recorder:
    """The set of keys read so far; each new key is appended to `sink` (one per line) at once."""

    def __init__(self, sink: Path | None = None) -> None:
        self.keys: set[str] = set()
        self.sink = sink

    def hit(self, key: str) -> None:
        if key in self.keys:
            return
        self.keys.add(key)
        if self.sink is not None:
            with open(self.sink, "a", encoding="utf-8") as f:  # O_APPEND: whole short lines from any process
                f.write(key + "\n")


def read_keys(sink: Path) -> set[str]:
    """The keys a `Recorder(sink)` wrote (any number of processes)."""
    return {ln for ln in sink.read_text(encoding="utf-8").splitlines() if ln} if sink.exists() else set()


def _plain(obj: Any) -> Any:
    """A non-recording copy of a recording dataclass (every field read, so every field recorded)."""
    base = type(obj).__mro__[1]
    new = object.__new__(base)
    new.__dict__.update({f.name: getattr(obj, f.name) for f in dataclasses.fields(base)})
    return new


def _recording_class(base: type, prefix: str, rec: Recorder, quiet: frozenset[str] = frozenset()) -> type:
    """Subclass of dataclass `base` recording `prefix.<field>` on each field read (not for `quiet` fields)."""
    names = frozenset(f.name for f in dataclasses.fields(base)) - quiet
    get = object.__getattribute__

    def __getattribute__(self: Any, name: str) -> Any:  # noqa: N807
        if name in names:
            rec.hit(f"{prefix}.{name}" if prefix else name)
        return get(self, name)

    def __reduce__(self: Any) -> Any:  # noqa: N807
        plain = _plain(self)
        return (_restore, (type(plain), plain.__dict__))

    return type(f"Recording{base.__name__}", (base,), {"__getattribute__": __getattribute__,
                                                        "__reduce__": __reduce__, "__module__": __name__})


def _restore(cls: type, state: dict[str, Any]) -> Any:
    new = object.__new__(cls)
    new.__dict__.update(state)
    return new


def _wrap(obj: Any, prefix: str, rec: Recorder) -> Any:
    """A recording copy of dataclass instance `obj` (fields copied as they are, no __init__/__post_init__)."""
    new = object.__new__(_recording_class(type(obj), prefix, rec))
    new.__dict__.update(obj.__dict__)
    return new


class RecordingMapping(dict):
    """A dict recording `<name>.<key>` for keyed reads and `<name>` for iteration / size."""

    def __init__(self, data: dict[str, Any], name: str, rec: Recorder) -> None:
        super().__init__(data)
        self._name, self._rec = name, rec

    def _key(self, k: Any) -> None:
        self._rec.hit(f"{self._name}.{k}")

    def _all(self) -> None:
        self._rec.hit(self._name)

    def __getitem__(self, k: Any) -> Any:
        self._key(k)
        return super().__getitem__(k)

    def get(self, k: Any, default: Any = None) -> Any:
        self._key(k)
        return super().get(k, default)

    def __contains__(self, k: Any) -> bool:
        self._key(k)
        return super().__contains__(k)

    def __iter__(self):  # noqa: ANN204 - also forces `{**m}` / dict(m) through keys() + __getitem__
        self._all()
        return super().__iter__()

    def keys(self):  # noqa: ANN201
        self._all()
        return super().keys()

    def values(self):  # noqa: ANN201
        self._all()
        return super().values()

    def items(self):  # noqa: ANN201
        self._all()
        return super().items()

    def __len__(self) -> int:
        self._all()
        return super().__len__()

    def __reduce__(self) -> Any:
        self._all()
        return (dict, (dict(super().items()),))


def recording(p: Params, rec: Recorder) -> Params:
    """A recording proxy of `p` (a `Params`): see the module docstring for what records what."""
    sections = {f.name for f in dataclasses.fields(Params) if dataclasses.is_dataclass(getattr(p, f.name))}
    mappings = {f.name for f in dataclasses.fields(Params) if isinstance(getattr(p, f.name), dict)}
    out = object.__new__(_recording_class(Params, "", rec, quiet=frozenset(sections | mappings)))
    for f in dataclasses.fields(Params):
        v = getattr(p, f.name)
        if f.name in sections:
            v = _wrap(v, f.name, rec)
        elif isinstance(v, dict):
            v = RecordingMapping({k: _wrap(e, f"{f.name}.{k}", rec) if dataclasses.is_dataclass(e) else e
                                  for k, e in v.items()}, f.name, rec)
        out.__dict__[f.name] = v
    return out

