"""A tiny synthetic-target workdir for the grmn_eval tests: real table schemas (bench_train.write_identity),
synthetic values, a truth file per target clip whose jaw is the tracked jaw (so the tracked-jaw r is exactly 1
when the truth is sampled at the right frames), WAVs, and a params.yaml sized for seconds of CPU."""
from __future__ import annotations

import json
import sys
import wave
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))  # bench_train (as tests/train/test_loss_terms.py)

CORPUS, TARGET = "c_a", "t_syn"
TARGET_CLIPS = (150, 100)  # c0: adaptation (first 5 s = 125 frames) + validation (25 frames); c1: held out


def _wav(path: Path, seconds: float, seed: int) -> None:
    sr = 16000
    x = np.random.default_rng(seed).normal(size=int(seconds * sr)) * np.linspace(0.05, 0.5, int(seconds * sr))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype(np.int16).tobytes())


def make_workdir(root: Path) -> Path:
    """`root` with params.yaml and data/{processed,synthetic}; returns root."""
    import pyarrow.parquet as pq
    from bench_train import write_identity

    from emotag_core.config import FlameConfig
    from emotag_core.flame import load_head_model

    head = load_head_model(FlameConfig(), "cpu")
    proc = root / "data" / "processed"
    write_identity(proc, CORPUS, 1, head.n_expr, head.n_shape, (80,), 32, False)
    write_identity(proc, TARGET, 2, head.n_expr, head.n_shape, TARGET_CLIPS, 32, False)
    flame = pq.read_table(proc / TARGET / "flame.parquet", columns=["clip_id", "jaw", "expr"])
    clips = np.asarray(flame.column("clip_id").to_pylist())
    jaw = np.asarray(flame.column("jaw").to_pylist(), np.float32)
    expr = np.asarray(flame.column("expr").to_pylist(), np.float32)
    truth_dir = root / "data" / "synthetic" / TARGET / "truth"
    truth_dir.mkdir(parents=True)
    rng = np.random.default_rng(3)
    for k, c in enumerate(dict.fromkeys(clips)):
        m = clips == c
        n = int(m.sum())
        np.savez_compressed(truth_dir / f"{c}.npz", fps=np.float64(25.0), jaw=jaw[m], expr=expr[m] + 0.1,
                            emotion_strength=rng.uniform(0, 1, n).astype(np.float32), emotion=rng.integers(0, 7, n))
        (truth_dir / f"{c}.json").write_text(json.dumps({"segments": [{"voice": "es"}, {"voice": "it"}]}))
        _wav(proc / TARGET / "audio" / f"{c}.wav", n / 25.0 + 0.1, k)
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    p["synthetic"] = {TARGET: {"seed": 1}}
    p["flame"]["model"] = "open"  # the tables above are the library default head model's (FlameConfig())
    p["identities"] = {CORPUS: {"role": "corpus", "source": f"data/raw/{CORPUS}"},
                       TARGET: {"role": "target", "source": f"data/synthetic/{TARGET}"}}
    p["corpus"], p["targets"] = [CORPUS], [TARGET]
    p["grmn_eval"] = {"targets": [TARGET], "device": "cpu", "threads": 1}
    p["pretrain"].update(render=False, param_supervision=1.0, iters=3, batch_size=4, d_model=16, d_expr=8, n_layers=1,
                         n_heads=2, hidden=16, checkpoint_every=0, log_every=1)
    p["adapt"].update(iters=2, checkpoint_every=0, train_seconds=5.0)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    return root
