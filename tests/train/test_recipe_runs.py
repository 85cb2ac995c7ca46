"""train.recipe's runs without dvc: pretrain from built indices = pretrain from the corpus manifest (same
weights, same resumable fingerprint), adapt with a JSON-lines log = adapt with dvclive curves, and the JSON-lines
log keeps a resumed curve free of duplicate steps."""
from __future__ import annotations

import json
import sys
from functools import partial
from pathlib import Path

import pytest
import torch

from emotag_core.config import load_params
from emotag_core.split import Split
from emotag_core.train.data import build_identity_index, file_digest
from emotag_core.train.live import JsonLinesLog
from emotag_core.train.recipe import adapt_run, identity_tables, pretrain_run, pretrain_run_indices
from metrics.synth_target import CORPUS, TARGET, make_workdir


def _equal_models(a: Path, b: Path) -> int:
    sa, sb = (torch.load(f, weights_only=False)["state_dict"] for f in (a, b))
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    return len(sa)


def test_jsonlines_log_resume_drops_rows_after_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "curves" / "pretrain.jsonl"
    log = JsonLinesLog(path, start=0)
    for step in range(5, 30, 5):  # a run killed after logging step 25
        log(step, {"loss": 1.0 / step, "kl": 0.5})
    log.end()
    log = JsonLinesLog(path, start=10)  # resumed from the checkpoint of step 10
    for step in range(15, 35, 5):
        log(step, {"loss": 0.1, "kl": 0.5})
    log.end()
    rows = JsonLinesLog.read(path)
    assert [r["step"] for r in rows] == [5, 10, 15, 20, 25, 30]
    assert rows[0] == {"step": 5, "loss": 0.2, "kl": 0.5} and rows[2]["loss"] == 0.1
    JsonLinesLog(path, start=0).end()  # a fresh run starts the file afresh
    assert JsonLinesLog.read(path) == []


@pytest.fixture
def workdir(tmp_path: Path, one_torch_thread) -> Path:
    w = make_workdir(tmp_path / "w")
    p = load_params(w / "params.yaml")
    ix = [build_identity_index(i, identity_tables(w / "data" / "processed" / i)) for i in p.corpus]
    manifest = {"identities": {x.identity: {"tables": x.tables, "digests": {k: file_digest(v) for k, v in x.tables.items()}}
                               for x in ix}}  # what the corpus stage writes (the parts pretrain reads)
    (w / "corpus").mkdir()
    (w / "corpus" / "manifest.json").write_text(json.dumps(manifest))
    return w


def test_pretrain_and_adapt_without_dvclive_give_the_stages_weights(workdir: Path, monkeypatch) -> None:
    w = workdir
    p = load_params(w / "params.yaml")
    p.pretrain.dropout, p.pretrain.checkpoint_every = 0.2, 2  # the global RNG in use; a checkpoint mid-run
    # the stages' path: the corpus manifest, dvclive curves
    a = pretrain_run(p, w / "corpus", w / "a" / "pretrain", w / "a" / "ck", w / "a" / "metrics")
    ix = build_identity_index(TARGET, identity_tables(w / "data" / "processed" / TARGET))
    split = Split.from_config(p.adapt, None, ix.index, ix.meta["fps"])
    adapt_run(p, ix, split, w / "a" / "pretrain" / "grmn.pt", w / "a" / TARGET, w / "a" / "ck_t", w / "a" / "m_t")
    # the device's path: built indices, JSON-lines curves, dvclive not importable
    monkeypatch.setitem(sys.modules, "dvclive", None)
    corpus = [build_identity_index(CORPUS, identity_tables(w / "data" / "processed" / CORPUS))]
    b = pretrain_run_indices(p, corpus, w / "b" / "pretrain", w / "b" / "ck", partial(JsonLinesLog, w / "b" / "pre.jsonl"))
    adapt_run(p, ix, split, w / "b" / "pretrain" / "grmn.pt", w / "b" / TARGET, w / "b" / "ck_t", None,
              log=partial(JsonLinesLog, w / "b" / "t.jsonl"))
    with pytest.raises(ImportError):  # the default (dvclive) really is unavailable here
        adapt_run(p, ix, split, w / "b" / "pretrain" / "grmn.pt", w / "c", w / "ck_c", w / "m_c")

    assert _equal_models(w / "a" / "pretrain" / "grmn.pt", w / "b" / "pretrain" / "grmn.pt") > 20
    _equal_models(w / "a" / TARGET / "grmn.pt", w / "b" / TARGET / "grmn.pt")
    sa, sb = (torch.load(w / x / TARGET / "scene.pt", weights_only=False) for x in "ab")
    assert all(torch.equal(v, sb["state_dict"][k]) for k, v in sa["state_dict"].items())
    assert a["final"] == b["final"] and a["iterations"] == b["iterations"] == p.pretrain.iters
    rows = JsonLinesLog.read(w / "b" / "pre.jsonl")
    assert [r["step"] for r in rows] == list(range(1, p.pretrain.iters + 1))  # log_every 1
    tsv = (w / "a" / "metrics" / "plots" / "metrics" / "train" / "loss.tsv").read_text().splitlines()
    col = tsv[0].split("\t").index("loss")
    assert [float(ln.split("\t")[col]) for ln in tsv[1:]] == pytest.approx([r["loss"] for r in rows])
    assert len(JsonLinesLog.read(w / "b" / "t.jsonl")) == p.adapt.iters


def test_the_indices_entry_resumes_the_manifest_runs_checkpoint(workdir: Path, monkeypatch) -> None:
    """Default digests = the manifest's: the indices entry resumes the checkpoint a killed manifest run left."""
    from dataclasses import replace

    import emotag_core.train.loop as loop
    from emotag_core.train.checkpoint import list_checkpoints

    w = workdir
    p = load_params(w / "params.yaml")
    corpus = [build_identity_index(CORPUS, identity_tables(w / "data" / "processed" / CORPUS))]
    full = pretrain_run_indices(p, corpus, w / "full", w / "ck_full", partial(JsonLinesLog, w / "full.jsonl"))
    real = loop.pretrain

    def killed_after_2(grmn, scenes, loader, cfg, *args, **kw):  # checkpoints step 2, then dies
        real(grmn, scenes, loader, replace(cfg, iters=2), *args, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "pretrain", killed_after_2)
    with pytest.raises(KeyboardInterrupt):
        pretrain_run(p, w / "corpus", w / "m", w / "ck", w / "m_metrics")
    monkeypatch.setattr(loop, "pretrain", real)
    assert len(list_checkpoints(w / "ck")) == 1
    got = pretrain_run_indices(p, corpus, w / "m", w / "ck", partial(JsonLinesLog, w / "m.jsonl"))
    assert got["resumed_from"] == 2 and got["final"] == full["final"]
    _equal_models(w / "full" / "grmn.pt", w / "m" / "grmn.pt")
    assert [r["step"] for r in JsonLinesLog.read(w / "m.jsonl")] == [3]  # only the steps after the resume


def test_runs_refuse_tables_tracked_with_another_head_model(workdir: Path) -> None:
    from emotag_core.errors import ConfigError

    w = workdir
    p = load_params(w / "params.yaml")
    corpus = [build_identity_index(CORPUS, identity_tables(w / "data" / "processed" / CORPUS))]
    assert corpus[0].meta["flame_model"] == "open"
    pretrain_run_indices(p, corpus, w / "pre", w / "ck", partial(JsonLinesLog, w / "pre.jsonl"))
    p.flame.model = "ict"  # e.g. `emotag profile paper` without re-running track
    with pytest.raises(ConfigError, match=r"tracked with the `open` head model .* loads `ict`"):
        pretrain_run_indices(p, corpus, w / "pre2", w / "ck2", partial(JsonLinesLog, w / "pre2.jsonl"))
    assert not (w / "pre2" / "grmn.pt").exists()
    ix = build_identity_index(TARGET, identity_tables(w / "data" / "processed" / TARGET))
    split = Split.from_config(p.adapt, None, ix.index, ix.meta["fps"])
    with pytest.raises(ConfigError, match=rf"adapt@{TARGET}: .*flame.*`open`.*re-run track@{TARGET}"):
        adapt_run(p, ix, split, w / "pre" / "grmn.pt", w / "t", w / "ck_t", None, log=partial(JsonLinesLog, w / "t.jsonl"))
    assert not (w / "t" / "grmn.pt").exists()


def test_motion_only_prior_has_no_mouth_head_and_a_rendering_adapt_grows_it(workdir: Path) -> None:
    """pretrain.render false trains nothing of Eq. 8's mouth offsets, so its GRMN carries none (a small prior file);
    an adapt that renders gives it the avatar's mouth Gaussians, the trained expression/jaw rows kept."""
    from emotag_core.train.checkpoint import load_model

    w = workdir
    p = load_params(w / "params.yaml")
    assert not p.pretrain.render
    pretrain_run(p, w / "corpus", w / "pre", w / "ck", None, log=partial(JsonLinesLog, w / "pre.jsonl"))
    prior, _ = load_model(w / "pre" / "grmn.pt")
    assert prior.spec.n_mouth == 0
    ix = build_identity_index(TARGET, identity_tables(w / "data" / "processed" / TARGET))
    split = Split.from_config(p.adapt, None, ix.index, ix.meta["fps"])
    adapt_run(p, ix, split, w / "pre" / "grmn.pt", w / "motion", w / "ck_m", None, log=partial(JsonLinesLog, w / "m.jsonl"))
    assert load_model(w / "motion" / "grmn.pt")[0].spec.n_mouth == 0  # motion-only adapt: nothing to grow
    from bench_train import write_identity  # the rendering adapt reads a geometry table too

    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    head = load_head_model(FlameConfig(), "cpu")
    write_identity(w / "data" / "processed", "t_geo", 4, head.n_expr, head.n_shape, (130,), 32, True)
    ig = build_identity_index("t_geo", identity_tables(w / "data" / "processed" / "t_geo"))
    p.pretrain.render, p.pretrain.n_gaussians, p.pretrain.image_size = True, 400, 32
    p.adapt.layers = False
    sg = Split.from_config(p.adapt, None, ig.index, ig.meta["fps"])
    adapt_run(p, ig, sg, w / "pre" / "grmn.pt", w / "rend", w / "ck_r", None, log=partial(JsonLinesLog, w / "r.jsonl"))
    got, _ = load_model(w / "rend" / "grmn.pt")
    n_mouth = got.spec.n_mouth
    assert n_mouth > 0 and got.spec.n_expr == prior.spec.n_expr
    for name in ("base", "emo_decoder"):
        old, new = getattr(prior.decoder, name)[-1], getattr(got.decoder, name)[-1]
        k = old.out_features
        assert new.out_features == k + 10 * n_mouth
        torch.testing.assert_close(new.weight[:k], old.weight)  # adapt tunes AdaIN only: these rows are the prior's
        assert float(new.weight[k:].abs().max()) < 0.01 and float(new.bias[k:].abs().max()) == 0.0
