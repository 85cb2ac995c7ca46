"""stages.registry agrees with dvc.yaml (the DAG itself), and its add-identity / sync logic."""
from __future__ import annotations

import shutil

import pytest
import yaml

from emotag_core.errors import ConfigError, StageMissingError
from stages import registry


@pytest.fixture(scope="module")
def dag(repo_root):
    return yaml.safe_load((repo_root / "dvc.yaml").read_text())["stages"]


def test_stage_list_is_dvc_yaml_s(dag):
    assert tuple(dag) == registry.STAGES


@pytest.mark.parametrize("names,over", [(registry.SYNTHETIC, "${synthetic}"), (registry.PREPROCESS, "${identities}"),
                                        (registry.TARGET_PREPROCESS, "${targets}"), (registry.PER_TARGET, "${targets}")])
def test_fan_out(dag, names, over):
    for n in names:
        assert dag[n]["foreach"] == over, n
    for n in registry.GLOBAL:
        assert "foreach" not in dag[n]


def test_every_identity_table_is_written_by_its_stage(dag):
    for table, (producer, _) in registry.IDENTITY_TABLES.items():
        stage = dag[producer]
        key = "${item}" if producer in registry.PER_TARGET + registry.TARGET_PREPROCESS else "${key}"
        assert f"data/processed/{key}/{table}.parquet" in stage["do"]["outs"], (table, producer)
    # and no preprocessing stage writes a table the registry does not know
    for n in registry.PREPROCESS + registry.TARGET_PREPROCESS:
        for out in dag[n]["do"]["outs"]:
            if str(out).endswith(".parquet"):
                assert str(out).rsplit("/", 1)[-1][:-8] in registry.IDENTITY_TABLES, out


def test_evaluate_lists_every_target_s_source_folder(dag, repo_root):
    """evaluate reads a target's source folder (notes, truth/): DVC must see it (synced by `emotag sync-dag`)."""
    params = yaml.safe_load((repo_root / "params.yaml").read_text())
    deps = [str(d) for d in dag["evaluate"]["do"]["deps"]]
    assert registry.source_deps(params) == [params["identities"][t]["source"] for t in params["targets"]]
    assert set(registry.source_deps(params)) <= set(deps)


def test_corpus_tables_are_tables_of_an_identity():
    assert set(registry.corpus_tables()) <= set(registry.IDENTITY_TABLES)
    assert registry.corpus_deps(["a"])[0] == "data/processed/a/frames.parquet"


def test_need_table_names_the_stage_to_run(tmp_path):
    with pytest.raises(StageMissingError, match=r"dvc repro track@anna"):
        registry.need_table("anna", "flame", tmp_path)
    p = tmp_path / "data/processed/anna/flame.parquet"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"x")
    assert registry.need_table("anna", "flame", tmp_path) == p


def test_register_identities_lists_and_syncs(tmp_path, repo_root):
    for f in ("params.yaml", "dvc.yaml"):
        shutil.copy(repo_root / f, tmp_path / f)
    added = registry.register_identities([("c1", "corpus"), ("t1", "target"), ("c1", "corpus")],
                                         tmp_path / "params.yaml", tmp_path / "dvc.yaml")
    assert added == ["c1", "t1"]
    from emotag_core.config import load_params

    p = load_params(tmp_path / "params.yaml")
    assert p.identities["c1"].source == "data/raw/c1" and "c1" in p.corpus and "t1" in p.targets
    assert p.corpus.count("c1") == 1
    assert registry.dag_in_sync(tmp_path / "params.yaml", tmp_path / "dvc.yaml")
    assert "data/processed/c1/flame.parquet" in (tmp_path / "dvc.yaml").read_text()
    ev = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"]["evaluate"]["do"]["deps"]
    assert ev[-2:] == ["data/sample", "data/raw/t1"]  # every target's source folder, after the stage's own deps
    assert "stages/evaluate.py" in ev and "data/renders/${item}" in ev
    with pytest.raises(ConfigError, match="already exists"):
        registry.register_identities([("t1", "target")], tmp_path / "params.yaml", tmp_path / "dvc.yaml",
                                     exist_ok=False)
    with pytest.raises(ConfigError, match="letters, digits"):
        registry.register_identities([("a b", "target")], tmp_path / "params.yaml", tmp_path / "dvc.yaml")
