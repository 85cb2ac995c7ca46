import textwrap

import pytest

from emotag_core import config
from emotag_core.config import Params, load_params
from emotag_core.errors import ConfigError


def test_repo_params_load(repo_root):
    p = load_params(repo_root / "params.yaml")
    assert "sample" in p.targets and p.identities["sample"].role == "target"
    assert p.ingest.fps == 25.0 and p.ingest.size == 512


def test_every_config_field_has_a_docstring():
    """Each dataclass field is followed by a one-line docstring in config.py (nerfstudio style)."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(config))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.endswith("Config"):
            body = node.body
            for i, stmt in enumerate(body):
                if isinstance(stmt, ast.AnnAssign):
                    nxt = body[i + 1] if i + 1 < len(body) else None
                    assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), \
                        f"{node.name}.{stmt.target.id} has no docstring"


def write(tmp_path, text):
    p = tmp_path / "params.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_unknown_key_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="ingest.fsp"):
        load_params(write(tmp_path, "ingest: {fsp: 30}\n"))


def test_wrong_type_is_named(tmp_path):
    with pytest.raises(ConfigError, match="ingest.size"):
        load_params(write(tmp_path, "ingest: {size: big}\n"))


def test_role_mismatch(tmp_path):
    text = """
    identities: {a: {role: corpus, source: data/raw/a}}
    targets: [a]
    """
    with pytest.raises(ConfigError, match="role"):
        load_params(write(tmp_path, text))


def test_overrides_merge(tmp_path):
    p = load_params(write(tmp_path, "ingest: {fps: 30}\n"), overrides={"ingest": {"size": 256}})
    assert p.ingest.fps == 30.0 and p.ingest.size == 256


def test_profiles_parse(repo_root):
    for f in repo_root.glob("params*.yaml"):
        assert isinstance(load_params(f), Params), f


@pytest.mark.parametrize("text,key,want", [
    ("ingest: {fps: 0}\n", "ingest.fps", "> 0"),
    ("pretrain: {log_every: 0}\n", "pretrain.log_every", "> 0"),  # was a ZeroDivisionError at the first step
    ("pretrain: {dropout: 1.0}\n", "pretrain.dropout", ">= 0 and < 1"),
    ("adapt: {iters: -3}\n", "adapt.iters", ">= 0"),
    ("render: {gate_override: 1.5}\n", "render.gate_override", ">= 0 and <= 1"),
])
def test_out_of_range_value_is_named(tmp_path, text, key, want):
    with pytest.raises(ConfigError, match=rf"`{key}` must be {want}"):
        load_params(write(tmp_path, text))


def test_every_range_names_a_numeric_field_and_the_profiles_hold(repo_root):
    from emotag_core.config import RANGES, Params

    p = Params()
    for key in RANGES:
        section, name = key.split(".")
        assert isinstance(getattr(getattr(p, section), name), (int, float, type(None))), key
    p.check()  # the defaults
    for f in ("params.yaml", "params.paper.yaml"):
        load_params(repo_root / f)
