"""'Linear model on the features' ceiling for jaw, per audio backend, on the synthetic corpus (issue 19).

Rebuilds each identity's audio and TRUE jaw without rendering: `plan_script` (espeak-ng speech, as the
synth stage) and `animate` (the truth the renderer is given), from params.yaml merged with
bench/grmn_synth.params.yaml (the Y44 corpus, targets gsyn_u / gsyn_v). The audio goes to 16 kHz by
polyphase resampling (the DAG goes through the mp4's AAC track and ingest instead). Then, as
`bench/grmn_synth.py ridge --labels truth`: ridge regression from +-k frames of standardised
features to the corpus's true jaw opening, scored as Pearson r on the target's held-out (last) clip.
A diagnostic ceiling only: nothing trains on the true jaw.

Usage: python bench/bench_audio_ceiling.py [--backends logmel whisper] [--k 3 7] [--lambdas 100 1000 3000]
       [--corpus gsyn_0 ...] [--targets gsyn_u gsyn_v] [--cache /tmp/h5_ceiling]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent


def merged_params() -> dict:
    import yaml

    from emotag_core.config import _merge

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    return _merge(base, yaml.safe_load((REPO / "bench" / "grmn_synth.params.yaml").read_text()))


def identity_clips(ident: str, data: dict, model) -> list[tuple[np.ndarray, np.ndarray]]:  # noqa: ANN001
    """[(audio [N] 16 kHz, true jaw opening [T])] for every clip of one synthetic identity."""
    from scipy.signal import resample_poly

    from emotag_core.config import SynthConfig, from_dict
    from emotag_core.synth import generator as gen

    cfg = from_dict(SynthConfig, {**data["synth"], **data["synthetic"][ident]}, f"synthetic.{ident}")
    out = []
    ident_obj = gen.sample_identity(model, cfg)
    for c in range(cfg.clips):
        script = gen.plan_script(cfg, c)
        truth = gen.animate(model, ident_obj, script, cfg, c)
        g = np.gcd(16000, script.sample_rate)
        x = resample_poly(script.audio, 16000 // g, script.sample_rate // g).astype(np.float32)
        out.append((x, truth.jaw[:, 0].astype(np.float64)))
    return out


def features(backend: str, clips: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
    from emotag_core.config import AudioFeaturesConfig
    from emotag_core.teachers import audio

    teacher = audio.load(backend, AudioFeaturesConfig(backend=backend))
    return [teacher.features(audio.fit_length(x, len(j), 25.0), len(j), 25.0) for x, j in clips]


def stack(f: np.ndarray, k: int) -> np.ndarray:
    idx = np.clip(np.arange(len(f))[:, None] + np.arange(-k, k + 1)[None], 0, len(f) - 1)
    return f[idx].reshape(len(f), -1)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def main() -> None:
    data = merged_params()
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", nargs="+", default=["logmel", "whisper"])
    ap.add_argument("--k", type=int, nargs="+", default=[3, 7])
    ap.add_argument("--lambdas", type=float, nargs="+", default=[100.0, 1000.0, 3000.0])
    ap.add_argument("--corpus", nargs="+", default=data["corpus"])
    ap.add_argument("--targets", nargs="+", default=data["targets"])
    ap.add_argument("--cache", type=Path, default=Path("/tmp/h5_ceiling"))
    a = ap.parse_args()
    import torch

    from emotag_core.config import FlameConfig, from_dict
    from emotag_core.flame import load_head_model

    torch.set_num_threads(1)
    model = load_head_model(from_dict(FlameConfig, data.get("flame", {}), "flame"), "cpu")
    a.cache.mkdir(parents=True, exist_ok=True)
    ids = list(dict.fromkeys(a.corpus + a.targets))
    feats: dict[str, dict[str, list[np.ndarray]]] = {b: {} for b in a.backends}
    jaws: dict[str, list[np.ndarray]] = {}
    secs = {b: 0.0 for b in a.backends}
    for ident in ids:
        cached = a.cache / f"{ident}.npz"
        z = dict(np.load(cached, allow_pickle=False)) if cached.exists() else {}
        clips = None
        if "jaw_0" not in z or any(f"{b}_0" not in z for b in a.backends):
            clips = identity_clips(ident, data, model)
            z.update({f"jaw_{i}": j for i, (_, j) in enumerate(clips)})
            for b in a.backends:
                if f"{b}_0" not in z:
                    t0 = time.perf_counter()
                    z.update({f"{b}_{i}": f for i, f in enumerate(features(b, clips))})
                    secs[b] += time.perf_counter() - t0
            np.savez(cached, **z)
        n = len([k for k in z if k.startswith("jaw_")])
        jaws[ident] = [z[f"jaw_{i}"] for i in range(n)]
        for b in a.backends:
            feats[b][ident] = [z[f"{b}_{i}"] for i in range(n)]
    res: dict[str, float] = {}
    for b in a.backends:
        for k in a.k:
            x = np.concatenate([stack(f, k) for i in a.corpus for f in feats[b][i]]).astype(np.float64)
            y = np.concatenate([j for i in a.corpus for j in jaws[i]])
            mu, sd = x.mean(0), x.std(0) + 1e-6
            xs = (x - mu) / sd
            gram, rhs = xs.T @ xs, xs.T @ (y - y.mean())
            for lam in a.lambdas:
                w = np.linalg.solve(gram + lam * np.eye(len(gram)), rhs)
                for tgt in a.targets:
                    xt = (stack(feats[b][tgt][-1], k) - mu) / sd
                    res[f"{b}/k{k}/lambda{lam:g}/{tgt}"] = round(pearson(xt @ w, jaws[tgt][-1]), 4)
    print(json.dumps({"corpus": len(a.corpus), "corpus_seconds": sum(len(j) for i in a.corpus for j in jaws[i]) / 25,
                      "feature_seconds": {b: round(s, 1) for b, s in secs.items()}, "r": res}, indent=1))


if __name__ == "__main__":
    main()
