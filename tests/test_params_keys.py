"""Every params key a stage reads is listed under that stage's `params:` in dvc.yaml (issue 16 item 5).

The keys come from running each stage, not from a hand-kept list: a scratch clone of the repository
(tests/reliability/harness.py `Scratch`, with the kill-and-resume trials' tiny CPU profile
`killresume.TINY` and two 2 s synthetic identities, one corpus and one target) runs every stage of
dvc.yaml, in dvc.yaml's order, as `python -m stages.<name> <id>` would, with `stages.common.params()`
returning the recording proxy of tests/params_recorder.py. A recorded key is covered by a `params:` entry
equal to it or above it (a section covers its keys), by the foreach item's fields the stage's definition
uses (`${item.source}` covers `identities.<key>.source`), or lies on the way to a listed key (the lookup
`synthetic.<key>` before `synthetic.<key>.seed`).

The DAG run is slow (~3 min of CPU on the 2-core machine, ~24 stage processes); the proxy's and the
dvc.yaml reading's own checks are fast. `python tests/test_params_keys.py <sink> <module> [args...]`
is the runner each stage is started with (runpy, as `python -m <module> [args...]`).
"""
from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest

C, T = "pk_corpus", "pk_target"  # the scratch DAG's corpus and target identities (synthetic both)
OVERRIDES: dict[str, Any] = {
    "synthetic": {C: {"seed": 0}, T: {"seed": 1}},
    "identities": {C: {"role": "corpus", "source": f"data/synthetic/{C}"},
                   T: {"role": "target", "source": f"data/synthetic/{T}"}},
    "corpus": [C], "targets": [T], "grmn_eval.targets": [T],
    "synth.clips": 1, "synth.seconds": 2.0,
    "adapt.train_seconds": 1.0, "adapt.eval_from_s": 1.0,   # 2 s clips: adapt on the first half, hold out the rest
    "pretrain.iters": 4, "pretrain.static_iters": 2, "pretrain.checkpoint_every": 2, "pretrain.log_every": 2,
    "pretrain.n_gaussians": 200,
    "adapt.iters": 4, "adapt.static_iters": 2, "adapt.checkpoint_every": 2,
    "render.size": 64, "evaluate.report_side": 64, "evaluate.max_frames": 8,
}
CORPUS_SKIP = {"geometry"}  # per-identity stages the corpus identity need not run (not a corpus table)
REF = re.compile(r"\$\{([^}]+)\}")


def params_at(src: str, params: dict[str, Any]) -> Any:
    """The params.yaml value a foreach `${a.b}` names."""
    v: Any = params
    for part in REF.fullmatch(src).group(1).split("."):
        v = v[part]
    return v


def _expand(text: str, key: str) -> str:
    return text.replace("${key}", key).replace("${item}", key)


def runs(dvc: dict[str, Any], params: dict[str, Any]) -> list[tuple[str, str, list[str], list[str]]]:
    """(stage, id or '', argv after `python -m`, covered params entries) for every run of the DAG, in order."""
    out = []
    for name, st in dvc["stages"].items():
        if "foreach" not in st:
            out.append((name, "", st["cmd"].split()[2:], [str(e) for e in st.get("params", [])]))
            continue
        src, do = st["foreach"], st["do"]
        for ident in params_at(src, params):
            listed = [_expand(str(e), ident) for e in do.get("params", [])]
            if isinstance(params_at(src, params), dict):  # ${item.<field>} in the definition: that field is tracked
                base = f"{REF.fullmatch(src).group(1)}.{ident}"
                listed += sorted({f"{base}.{f}" for f in re.findall(r"\$\{item\.(\w+)\}", str(do))})
            out.append((name, ident, _expand(do["cmd"], ident).split()[2:], listed))
    return out


def covered(key: str, listed: list[str]) -> bool:
    return any(key == e or key.startswith(e + ".") or e.startswith(key + ".") for e in listed)


def test_the_proxy_records_what_the_library_reads(tmp_path, repo_root):
    import copy
    import dataclasses
    import pickle

    from emotag_core.config import PretrainConfig, load_params, to_dict
    from params_recorder import Recorder, read_keys, recording

    rec = Recorder(tmp_path / "keys")
    p = recording(load_params(repo_root / "params.yaml"), rec)
    c = p.pretrain
    assert isinstance(c, PretrainConfig) and dataclasses.is_dataclass(c) and not rec.keys  # a section alone: nothing
    assert c.iters == load_params(repo_root / "params.yaml").pretrain.iters and rec.keys == {"pretrain.iters"}
    r = dataclasses.replace(p.adapt, iters=3)
    assert "adapt.iters" not in rec.keys and "adapt.lr" in rec.keys and r.iters == 3
    rec.keys.clear()
    r.lr, p.corpus  # noqa: B018 - reads
    assert rec.keys == {"adapt.lr", "corpus"}  # a replaced copy records too
    rec.keys.clear()
    assert to_dict(p.flame) == to_dict(load_params(repo_root / "params.yaml").flame)
    assert rec.keys == {f"flame.{f.name}" for f in dataclasses.fields(p.flame)}
    rec.keys.clear()
    plain = pickle.loads(pickle.dumps(p.render))
    assert len(rec.keys) == len(dataclasses.fields(plain)) and type(plain).__name__ == "RenderConfig"
    rec.keys.clear()
    copy.copy(p.geometry).size  # noqa: B018
    assert "geometry.size" in rec.keys
    rec.keys.clear()
    ident = next(iter(dict.keys(p.identities)))
    assert ident in p.identities and p.identities[ident].source
    assert rec.keys == {f"identities.{ident}", f"identities.{ident}.source"}
    {**p.synthetic}  # noqa: B018
    assert "synthetic" in rec.keys
    assert read_keys(tmp_path / "keys") >= {"pretrain.iters", "adapt.lr", "synthetic"}


def test_the_dvc_yaml_reading_expands_foreach_and_covers_sections(repo_root):
    import yaml

    dvc = yaml.safe_load((repo_root / "dvc.yaml").read_text(encoding="utf-8"))
    params = {"synthetic": {"s0": {"seed": 0}}, "identities": {"a": {"role": "target", "source": "x"}},
              "targets": ["a"], "grmn_eval": {"targets": ["a"]}, "corpus": []}
    got = {(n, i): (argv, listed) for n, i, argv, listed in runs(dvc, params)}
    assert got[("synth", "s0")][0] == ["stages.synth", "s0"]
    assert "synthetic.s0" in got[("synth", "s0")][1]
    assert "identities.a.source" in got[("ingest", "a")][1]  # ${item.source} in its deps
    assert got[("pretrain", "")][0] == ["stages.pretrain"]
    assert covered("pretrain.iters", ["pretrain"]) and covered("synthetic.s0", ["synthetic.s0.seed"])
    assert not covered("pretrain.rasterizer", ["render", "adapt.train_seconds"])  # the example gap
    assert not covered("ingest.fps", ["ingest.fps_x"])


@pytest.mark.slow
def test_every_params_key_a_stage_reads_is_listed_in_dvc_yaml(tmp_path):
    import yaml

    from params_recorder import read_keys
    from reliability.harness import Scratch
    from reliability.killresume import TINY

    scratch = Scratch(tmp_path / "repo", {**TINY, **OVERRIDES})
    dvc = yaml.safe_load((scratch.root / "dvc.yaml").read_text(encoding="utf-8"))
    params = yaml.safe_load(scratch.params_text())
    gaps: dict[str, list[str]] = {}
    from stages.registry import IDENTITY_TABLES, corpus_tables

    assert not {t for t, (st, _) in IDENTITY_TABLES.items() if st in CORPUS_SKIP} & set(corpus_tables())
    for name, ident, argv, listed in runs(dvc, params):
        if ident == C and name in CORPUS_SKIP:
            continue
        sink = tmp_path / f"{name}@{ident}.keys"
        t0 = time.perf_counter()
        r = scratch.run(sys.executable, __file__, str(sink), *argv)
        print(f"{name}@{ident} {time.perf_counter() - t0:.1f} s", flush=True)
        assert r.returncode == 0, f"{name}@{ident} failed:\n{r.stdout[-3000:]}"
        keys = read_keys(sink)
        assert keys or name == "corpus", f"{name}@{ident}: no params read recorded (is the proxy in place?)"
        missing = sorted(k for k in keys if not covered(k, listed))
        if missing:
            gaps.setdefault(name, [])
            gaps[name] += [k for k in missing if k not in gaps[name]]
    assert not gaps, f"params read but not listed under the stage's `params:` in dvc.yaml: {gaps}"


def _run(sink: str, module: str, *args: str) -> None:
    """Run `module` as `python -m module args` would, with `stages.common.params()` recording into `sink`."""
    import runpy

    import stages.common
    from params_recorder import Recorder, recording

    rec, load = Recorder(Path(sink)), stages.common.params
    stages.common.params = lambda path="params.yaml": recording(load(path), rec)
    sys.argv = [module, *args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _run(*sys.argv[1:])
