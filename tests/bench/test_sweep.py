"""bench/sweep.py: a spec expands into the right (variant, seed) override lists, the dvc queue commands carry
them, and the device runner writes metrics of the same shape as the grmn_eval stage."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # bench scripts import as top-level modules (as tests/train/test_loss_terms.py)
sys.path.insert(0, str(REPO / "tests"))

import sweep  # noqa: E402

SPEC = """
base: &base [adapt.iters=300, pretrain.audio_norm=true]
seeds: [0, 1]
variants:
  A: [pretrain.iters=1000]
  B:
    set: [[pretrain.iters=2000, 'targets=["gsyn_v"]'], ablation.seg=false]
    seeds: [3]
"""


def test_spec_expands_into_variant_seed_overrides(tmp_path):
    runs = sweep.expand(yaml.safe_load(SPEC))
    assert [(r.name, r.variant, r.seed) for r in runs] == [("A_s0", "A", 0), ("A_s1", "A", 1), ("B_s3", "B", 3)]
    assert runs[1].overrides == ["adapt.iters=300", "pretrain.audio_norm=true", "pretrain.iters=1000", "pretrain.seed=1"]
    assert runs[2].overrides == ["adapt.iters=300", "pretrain.audio_norm=true", "pretrain.iters=2000",
                                 'targets=["gsyn_v"]', "ablation.seg=false", "pretrain.seed=3"]
    with pytest.raises(ValueError, match="not a key=value"):
        sweep.expand({"variants": {"A": ["pretrain.iters"]}})
    with pytest.raises(ValueError, match="unknown key"):
        sweep.expand({"variants": {"A": {"sets": []}}})
    (tmp_path / "bad.yaml").write_text("variants: {A: []}\nbundel: x\n")
    with pytest.raises(ValueError, match="bundel"):
        sweep.load_spec(tmp_path / "bad.yaml")


def test_overrides_apply_as_dvc_reads_them():
    p = sweep.apply_overrides({"adapt": {"lr": 0.1}, "targets": ["u"]},
                              ["adapt.lr=1e-4", 'corpus=["a","b"]', "pretrain.lr_schedule=cosine", "ablation.seg=false",
                               "adapt.lr=0.0005"])
    assert p == {"adapt": {"lr": 0.0005}, "targets": ["u"], "corpus": ["a", "b"],
                 "pretrain": {"lr_schedule": "cosine"}, "ablation": {"seg": False}}
    assert sweep.parse_value("1e-4") == pytest.approx(1e-4) and sweep.parse_value("null") is None


def test_queue_commands():
    params = {"pretrain": {"iters": 1, "seed": 0}, "adapt": {"iters": 1}, "ablation": {"seg": True},
              "targets": ["gsyn_u"], "grmn_eval": {"targets": ["gsyn_u"]}}
    cmds = sweep.queue_commands("demo", sweep.expand(yaml.safe_load(SPEC)), params)
    a0, b3 = cmds[0], cmds[2]
    assert a0[:6] == ["dvc", "exp", "run", "--queue", "-n", "demo-A_s0"]
    assert a0[a0.index("-s") + 1:] == ["corpus", "pretrain", "geometry@gsyn_u", "adapt@gsyn_u", "grmn_eval@gsyn_u"]
    assert "+pretrain.audio_norm=true" in a0 and "pretrain.seed=0" in a0  # `+`: a key params.yaml does not list
    assert 'grmn_eval.targets=["gsyn_v"]' in b3 and b3[-1] == "grmn_eval@gsyn_v"


def test_device_runner_and_stage_write_the_same_keys(tmp_path, one_torch_thread):
    from metrics.synth_target import TARGET, make_workdir

    from emotag_core.config import load_params
    from emotag_core.motion.grmn import GRMN
    from emotag_core.train.checkpoint import save_model
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.recipe import grmn_spec, identity_tables

    w = make_workdir(tmp_path)
    cwd = os.getcwd()
    os.chdir(w)
    try:
        folder = sweep.run_one(sweep.Run("A_s0", "A", 0, ["pretrain.iters=2", "pretrain.seed=0"]), w / "out", "cpu")
    finally:
        os.chdir(cwd)
    dev = json.loads((folder / "data" / "metrics" / TARGET / "grmn_eval.json").read_text())
    assert yaml.safe_load((folder / "params.yaml").read_text())["pretrain"]["iters"] == 2
    p = load_params(w / "params.yaml")
    ix = build_identity_index(TARGET, identity_tables(w / "data" / "processed" / TARGET))
    g = GRMN(grmn_spec(p.pretrain, p.ablation, p.audio_features.window, ix.meta, 8))
    for m in ("pretrain", TARGET):
        save_model(w / "data" / "models" / m / "grmn.pt", g)
    r = subprocess.run([sys.executable, "-m", "stages.grmn_eval", TARGET], cwd=w, capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert r.returncode == 0, r.stderr
    st = json.loads((w / "data" / "metrics" / TARGET / "grmn_eval.json").read_text())

    def shape(d):
        return {k: shape(v) if isinstance(v, dict) else type(v).__name__ for k, v in d.items()}

    assert shape(dev) == shape(st) and set(dev) == {"identity", "split", "test", "val", "before_adapt"}
    assert dev["test"]["frames"] == st["test"]["frames"] and dev["split"] == st["split"]
    # one table from both sources: the device folder and the stage's file in `dvc exp show --json` form
    dvc_like = [{"rev": "workspace", "name": None, "data": {"params": {"params.yaml": {"data": yaml.safe_load(
        (w / "params.yaml").read_text())}}, "metrics": {f"data/metrics/{TARGET}/grmn_eval.json": {"data": st}}},
        "experiments": None}]
    rows = sweep.table(sweep.device_rows(w / "out") + dvc_like).splitlines()
    assert rows[0].startswith("| experiment | target | pretrain.iters | seed | test.jaw_r | val.jaw_r |")
    assert rows[2].startswith(f"| A_s0 | {TARGET} | 2 | 0 |") and rows[3].startswith(f"| workspace | {TARGET} | 3 | 0 |")


@pytest.mark.slow
def test_device_runner_gives_the_stage_paths_numbers(tmp_path, one_torch_thread):
    """Same settings through the stages (corpus, pretrain, adapt, grmn_eval: what `dvc exp run` runs) and through the
    device runner (in-process, no dvc): the same weights and the same grmn_eval.json numbers."""
    import torch
    from metrics.synth_target import TARGET, make_workdir

    w = make_workdir(tmp_path)
    over = ["pretrain.iters=4", "pretrain.dropout=0.2", "adapt.anchor=1", "pretrain.seed=3"]  # RNG in use; not seed 0
    p = sweep.apply_overrides(yaml.safe_load((w / "params.yaml").read_text()), over)
    (w / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for cmd in (["corpus"], ["pretrain"], ["adapt", TARGET], ["grmn_eval", TARGET]):
        r = subprocess.run([sys.executable, "-m", f"stages.{cmd[0]}", *cmd[1:]], cwd=w, capture_output=True, text=True,
                           env=env)
        assert r.returncode == 0, (cmd, r.stderr[-2000:])
    cwd = os.getcwd()
    os.chdir(w)
    try:
        folder = sweep.run_one(sweep.Run("A_s3", "A", 3, over), w / "out", "cpu", models_dir=w / "dev_models")
    finally:
        os.chdir(cwd)
    for m in ("pretrain", TARGET):
        st, dv = (torch.load(f / "grmn.pt", weights_only=False)["state_dict"]
                  for f in (w / "data" / "models" / m, w / "dev_models" / m))
        assert st.keys() == dv.keys() and all(torch.equal(st[k], dv[k]) for k in st), m
    st = json.loads((w / "data" / "metrics" / TARGET / "grmn_eval.json").read_text())
    dev = json.loads((folder / "data" / "metrics" / TARGET / "grmn_eval.json").read_text())
    assert dev == st and dev["test"]["jaw_r"] is not None
    info = json.loads((folder / "run.json").read_text())
    assert info["pretrain_it_s"] > 0 and info["train_curve"][-1]["step"] == 4
    assert info["targets"][TARGET]["adapt_frames"] == 125 and not list((w / "out").rglob("*.pt"))


def test_mean_table_groups_seeds_by_variant_and_target():
    def entry(name, target, r):
        return {"rev": name, "name": name, "data": {"params": {}, "metrics": {
            f"data/metrics/{target}/grmn_eval.json": {"data": {"test": {"jaw_r": r, "energy_r": 0.3}}}}}}

    rows = [entry("whisper_u_s0", "gsyn_u", 0.8), entry("whisper_u_s1", "gsyn_u", 0.9), entry("logmel_u_s0", "gsyn_u", 0.5),
            entry("whisper_u_s2", "gsyn_u", None)]
    out = sweep.mean_table(rows, ("test.jaw_r", "test.energy_r")).splitlines()
    assert out[0].startswith("| variant | target | runs | test.jaw_r mean (min-max) |")
    assert out[2] == "| whisper_u | gsyn_u | 3 | 0.850 (0.800-0.900), n=2 | 0.300 (0.300-0.300), n=3 |"
    assert out[3].startswith("| logmel_u | gsyn_u | 1 | 0.500 (0.500-0.500), n=1 |")


def test_device_set_appends_overrides_after_the_runs_own():
    r = sweep.expand(yaml.safe_load(SPEC))[0]
    x = sweep.with_extra(r, ["pretrain.iters=5", "corpus=[\"c_a\"]"])
    assert x.overrides == r.overrides + ["pretrain.iters=5", "corpus=[\"c_a\"]"] and x.name == r.name
    assert sweep.apply_overrides({}, x.overrides)["pretrain"]["iters"] == 5  # later wins over the variant's 1000
    assert sweep.with_extra(r, []) is r
