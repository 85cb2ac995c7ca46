"""bench/device_bundle.py + bench/device_adapt_render.py end to end on a tiny CPU fixture: the bundle rebuilds the
geometry at the profile's size and writes the corpus manifest; the device command runs pretrain -> adapt -> render
-> metrics with mediapipe, dvc, dvclive and PyAV made unimportable, and writes metrics.json, the mp4 + wav and the
strip."""
from __future__ import annotations

import json
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # bench_train's fixture writer (as tests/metrics/synth_target.py)

pytestmark = pytest.mark.slow  # ~40 s on 2 cores

BLOCK = ("mediapipe", "dvc", "dvclive", "av")
RUNNER = """import runpy, sys
for m in {block!r}:
    sys.modules[m] = None  # `import m` raises ImportError
sys.argv = [{script!r}, *{args!r}]
sys.path.insert(0, {script!r}.rsplit("/", 1)[0])  # as `python bench/device_adapt_render.py` puts bench/ first
runpy.run_path({script!r}, run_name="__main__")
"""


def _source_repo(root: Path) -> Path:
    """A preprocessed repo: params.yaml + data/processed/{c_a, t_x} (tables, geometry at 128 px, t_x's WAV)."""
    from bench_train import write_identity

    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    head = load_head_model(FlameConfig(), "cpu")
    proc = root / "data" / "processed"
    write_identity(proc, "c_a", 1, head.n_expr, head.n_shape, (40,), 32, True)
    write_identity(proc, "t_x", 2, head.n_expr, head.n_shape, (75,), 32, True)
    (proc / "t_x" / "audio").mkdir()
    with wave.open(str(proc / "t_x" / "audio" / "c0.wav"), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        x = np.random.default_rng(0).normal(size=16000 * 3 + 1600) * 0.2
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["identities"] = {"c_a": {"role": "corpus", "source": "data/raw/c_a"}, "t_x": {"role": "target", "source": "data/raw/t_x"}}
    p["corpus"], p["targets"] = ["c_a"], ["t_x"]
    p["ingest"]["size"] = 32
    p["audio_features"]["backend"] = "logmel"  # write_identity's tables are log-mel shaped
    p["flame"]["model"] = "open"  # and tracked with the library's default head model (FlameConfig())
    p["pretrain"].update(iters=2, static_iters=1, batch_size=2, image_size=32, n_gaussians=300, d_model=16, d_expr=8,
                         n_layers=1, n_heads=2, hidden=16, checkpoint_every=0, log_every=1, device="cpu")
    p["adapt"].update(iters=2, static_iters=1, checkpoint_every=0, train_seconds=2.0, eval_from_s=2.0)
    p["render"].update(size=None, batch_size=4, device="cpu")
    p["evaluate"]["report_side"] = 32
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root


def test_bundle_and_device_command_without_mediapipe_dvc_pyav(tmp_path: Path) -> None:
    src = _source_repo(tmp_path / "src")
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    subprocess.run([sys.executable, str(REPO / "bench" / "device_bundle.py"), "t_x", "--from", str(src), "--dest",
                    str(bundle), "-S", "geometry.size=16"], check=True, cwd=REPO)
    rec = json.loads((bundle / "bundle.json").read_text())
    assert rec["geometry"]["t_x"] == {"map_size": 16, "rebuilt": True, "from_map_size": 128}
    assert rec["pretrained"]["carried"] is False and rec["mib"]["total"] < 64
    manifest = json.loads((bundle / "data" / "processed" / "_corpus" / "manifest.json").read_text())
    assert list(manifest["identities"]) == ["c_a"] and "geometry" in manifest["identities"]["c_a"]["tables"]
    assert (bundle / "data" / "processed" / "t_x" / "audio" / "c0.wav").exists()

    script = str(REPO / "bench" / "device_adapt_render.py")
    args = ["run", str(bundle), "t_x", "--out", str(out), "--device", "cpu", "--fps-frames", "8"]
    r = subprocess.run([sys.executable, "-c", RUNNER.format(block=BLOCK, script=script, args=args)], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    for f in ("metrics.json", "heldout.mp4", "heldout.wav", "strip.png", "pretrain.jsonl", "adapt.jsonl", "motion.npz"):
        assert (out / f).stat().st_size > 0, f
    m = json.loads((out / "metrics.json").read_text())
    for k in ("psnr", "ssim", "psnr_frozen", "ssim_frozen", "psnr_oracle", "ssim_oracle"):
        assert np.isfinite(m["metrics"][k]), k
    for k in ("psnr_head", "ssim_head", "psnr_head_frozen", "psnr_head_oracle"):  # no masks table in the fixture
        assert m["metrics"][k] is None and "masks" in m["metrics"][f"{k}_reason"]
    assert m["metrics"]["frames"] == 25 and m["metrics"]["heldout"]["from_frame"] == 50
    for k in ("adapt_s", "pretrain_s", "loop_fps_b1", "animator_fps_b1", "loop_fps_b8", "animator_fps_b8"):
        assert m["speed"][k] > 0, k
    traces = np.load(out / "motion.npz")
    assert set(traces.files) == {"tracked", "adapted", "pretrained"} and len(traces["adapted"]) == 25
    assert not np.allclose(traces["adapted"], traces["pretrained"])  # adaptation changed the GRMN
    for k in ("adapted", "pretrained"):
        assert m["motion"][k]["frames"] == 25 and m["motion"][k]["std_ratio"] >= 0
    assert m["video"].startswith("opencv") and m["params"]["pretrain"]["iters"] == 2

    # a prior trained elsewhere (here: the run's own pretrain), copied in with --prior and adapted with run --prior
    prior = tmp_path / "y44.pt"
    prior.write_bytes((bundle / ".work" / "pretrain" / "grmn.pt").read_bytes())
    b2, out2 = tmp_path / "bundle2", tmp_path / "out2"
    subprocess.run([sys.executable, str(REPO / "bench" / "device_bundle.py"), "t_x", "--from", str(src), "--dest",
                    str(b2), "-S", "geometry.size=16", "--prior", str(prior)], check=True, cwd=REPO)
    assert json.loads((b2 / "bundle.json").read_text())["priors"] == [{"from": str(prior), "path": "priors/y44.pt"}]
    args = ["run", str(b2), "t_x", "--out", str(out2), "--device", "cpu", "--fps-frames", "8", "--prior", "priors/y44.pt",
            "--set", "adapt.iters=3"]
    r = subprocess.run([sys.executable, "-c", RUNNER.format(block=BLOCK, script=script, args=args)], cwd=REPO,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    m2 = json.loads((out2 / "metrics.json").read_text())
    assert m2["overrides"] == ["adapt.iters=3"] and m2["params"]["adapt"]["iters"] == 3
    assert m2["pretrain"] == {"carried": True, "reason": "--prior priors/y44.pt", "prior": "priors/y44.pt"}
    assert not (out2 / "pretrain.jsonl").exists() and not (b2 / ".work" / "pretrain").exists()  # nothing pretrained
    np.testing.assert_allclose(np.load(out2 / "motion.npz")["pretrained"], traces["pretrained"], atol=1e-6)
