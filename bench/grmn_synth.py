"""Issue 6 "must show" on the synthetic corpus with known truth: jaw sync, gate vs intensity, Table 5.

Everything runs in a scratch DVC repository of its own (default `/tmp/grmn_synth`), so the main
params.yaml keeps its smoke profile: `params.yaml` there is this repo's params.yaml with
`bench/grmn_synth.params.yaml` merged on top (4 corpus identities, 1 unseen target identity whose
espeak voices are not used by the corpus), and `stages/`, `emotag_core/`, `bench/` are symlinks
to this checkout, so `dvc repro` / `dvc exp run` there run this project's stages unchanged.

Training is motion-only by default (`pretrain.render: false`, `pretrain.param_supervision` > 0): GRMN
learns from L1 on the TRACKED FLAME expression/jaw + L_KL + L_Score, not from the paper's L_Render.
`run -S pretrain.render=true` trains through L_Render with each identity's Gaussian avatar (as the
`pretrain` / `adapt@<id>` stages; on CUDA, from a bundle made with `bundle --images N`).
The truth files of the synthetic identities are read only by `evaluate`.

    python bench/grmn_synth.py prepare [--ids ID...]  # workdir + dvc repro of synth..track (every id or these)
    python bench/grmn_synth.py experiments [-S k=v]  # dvc exp run per variant (full + 6 ablations of Table 5)
    python bench/grmn_synth.py evaluate gsyn_t  # (the `grmn_eval` stage) metrics of the adapted model
    python bench/grmn_synth.py bundle DEST      # small copy of the workdir's tables for the device machine
    python bench/grmn_synth.py run [variants] --device cuda [-S k=v]  # same code path, one process, no dvc
    python bench/grmn_synth.py ridge            # linear audio->jaw diagnostic (cwd: the workdir)
    python bench/grmn_synth.py teacher-check ID... [--scales 1,1.4] [--gains 3,6]  # emotion teacher vs intensity
    python bench/grmn_synth.py merge FILE...     # per-configuration results -> results json (keys variant/seedN/FILE-STEM)
    python bench/grmn_synth.py merge-sweep sweep.json  # grmn_synth_device.sh's merged results -> results json
    python bench/grmn_synth.py table            # markdown table from bench/results/grmn_synth.json
    python bench/grmn_synth.py analyse          # error analysis of the series kept by `run --keep-preds`

The headline numbers (BENCHMARKS "session 4": held-out jaw r 0.826 on gsyn_u, 6 seeds) come from the settings in
`bench/results/grmn_synth_sweeps/2026-11-26_s4_more_commands.sh` (and `..._s4_y44_table5_commands.sh`), run on the
device machine from `python bench/grmn_synth.py bundle .grmn_bundle` (the default corpus Y44 and targets gsyn_u/v).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OVERRIDES = REPO / "bench" / "grmn_synth.params.yaml"
RESULTS = REPO / "bench" / "results" / "grmn_synth.json"
WORKDIR = Path(os.environ.get("GRMN_SYNTH_DIR", "/tmp/grmn_synth"))
PER_ID_STAGES = ("synth", "ingest", "landmarks", "audio_features", "aus", "emotion", "identity", "track")
# motion-only training settings shared by every experiment (CPU-sized)
TRAIN_SET = {
    "pretrain.render": "false", "pretrain.param_supervision": "1.0", "pretrain.iters": "3000",
    "pretrain.batch_size": "32", "pretrain.checkpoint_every": "1000", "pretrain.log_every": "50",
    "pretrain.lr": "0.005", "adapt.iters": "300", "adapt.lr": "0.0005", "adapt.checkpoint_every": "0",
    "adapt.train_seconds": "5.0",
}
VARIANTS = ("full", "seg", "kl", "score", "gate", "residual", "adain")
EVAL_STAGE = {
    "foreach": "${targets}",
    "do": {"cmd": "python bench/grmn_synth.py evaluate ${item}",
           "deps": ["data/models/${item}", "bench/grmn_synth.py", "data/synthetic/${item}"],
           "metrics": [{"data/metrics/grmn_eval/${item}.json": {"cache": False}}]},
}


def sh(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, env=dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"))


def prepare(workdir: Path, only: list[str] | None = None) -> None:
    """Scratch DVC repo with merged params; `dvc repro` every per-identity preprocessing stage.

    `only`: preprocess just these identities, stage by stage with `dvc repro -s` (adding identities
    to a prepared workdir without re-checking the others, whose stages depend on live code).
    """
    import yaml

    from emotag_core.config import _merge, load_params

    workdir.mkdir(parents=True, exist_ok=True)
    for name in ("stages", "emotag_core", "bench"):
        link = workdir / name
        if not link.exists():
            link.symlink_to(REPO / name)
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    base["synthetic"], base["identities"] = {}, {}
    data = _merge(base, yaml.safe_load(OVERRIDES.read_text()))
    (workdir / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    p = load_params(workdir / "params.yaml")
    dag = yaml.safe_load((REPO / "dvc.yaml").read_text())
    dag["stages"]["grmn_eval"] = EVAL_STAGE
    (workdir / "dvc.yaml").write_text(yaml.safe_dump(dag, sort_keys=False))
    if not (workdir / ".git").exists():
        sh(["git", "init", "-q", "."], workdir)
        sh(["git", "config", "user.email", "bench@localhost"], workdir)
        sh(["git", "config", "user.name", "bench"], workdir)
    if not (workdir / ".dvc").exists():
        sh(["dvc", "init", "-q"], workdir)
    sh([sys.executable, "-m", "stages.cli", "sync-dag"], workdir)
    if only:
        unknown = sorted(set(only) - set(p.identities))
        if unknown:
            raise SystemExit(f"prepare --ids: {unknown} not in the merged params' identities; add them to {OVERRIDES}")
        for i in only:
            for s in PER_ID_STAGES:
                sh(["dvc", "repro", "-s", f"{s}@{i}"], workdir)
        return
    targets = [f"{s}@{i}" for i in p.identities for s in PER_ID_STAGES]
    sh(["dvc", "repro", *targets], workdir)


def experiments(workdir: Path, variants: list[str], extra: dict[str, str], out: Path) -> None:
    """`dvc exp run` of corpus -> pretrain -> adapt -> grmn_eval for each variant; collect the metrics.

    `-s` (single item) with the stage list keeps dvc from re-running preprocessing when live code
    that synth/track depend on changes under it (other engineers edit this checkout); every
    ablation switch is set explicitly so no variant inherits another's.
    """
    sh(["git", "add", "-A", "."], workdir)  # the scratch repo only
    sh(["git", "commit", "-qm", "baseline", "--allow-empty"], workdir)
    import yaml

    p_ids = yaml.safe_load((workdir / "params.yaml").read_text())["targets"]
    stages = ["corpus", "pretrain"] + [s for t in p_ids for s in (f"geometry@{t}", f"adapt@{t}", f"grmn_eval@{t}")]
    results = json.loads(out.read_text()) if out.exists() else {}
    for v in variants:
        listed = yaml.safe_load((workdir / "params.yaml").read_text())  # re-read: an exp run leaves its params
        sets = dict(TRAIN_SET, **extra, **{f"ablation.{k}": "false" if k == v else "true" for k in VARIANTS[1:]})
        cmd = ["dvc", "exp", "run", "-s", "-n", f"abl-{v}"] + [a for k, val in sets.items()
                                                                for a in ("-S", _dvc_set(listed, k, val))]
        sh(cmd + stages, workdir)
        m = json.loads((workdir / "data" / "metrics" / "grmn_eval" / f"{p_ids[0]}.json").read_text())
        m["pretrain_summary"] = json.loads((workdir / "data" / "models" / "pretrain" / "summary.json").read_text())
        m["command"] = " ".join(cmd + stages)
        results[v] = m
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=str))
        print(json.dumps({k: m[k] for k in ("jaw_r", "energy_r", "gate_intensity_r", "expr_mae")}), flush=True)


def _dvc_set(listed: dict[str, Any], key: str, val: str) -> str:
    """`dvc exp run -S` argument: `key=val` for a key params.yaml lists, `+key=val` to add an unlisted one."""
    sec, _, name = key.partition(".")
    return f"{key}={val}" if name in (listed.get(sec) or {}) else f"+{key}={val}"


from emotag_core.metrics.motion import audio_energy, pearson  # noqa: E402 - re-exported (diag_gate_signals)


def evaluate_model(grmn: Any, ix: Any, clip: str | None = None, device: str = "cpu",
                   from_s: float = 0.0, keep_preds: bool = False) -> dict[str, Any]:
    """One GRMN on the held-out clip of identity index `ix` (default: its last clip) against the truth files.

    `from_s`: only the clip's frames from this time on (the validation part of the adaptation clip).
    `keep_preds`: also return the per-frame series (key `preds`: predicted / tracked / true jaw, gate, intensity).
    The cue inputs (AUs, identity vector) come from that clip's own tables (the paper's
    self-reconstruction setting); jaw opening is the jaw's axis-angle x component.
    """
    import torch

    from emotag_core.train.data import CorpusLoader
    from stages.common import Paths

    from emotag_core.split import Segment, last_clip

    identity = ix.identity
    paths = Paths(identity)
    clip = clip or last_clip(ix.index)
    usable = ix.index.column("usable").to_numpy(zero_copy_only=False)
    t_all = ix.index.column("t").to_numpy()
    # the Split's segments: from_s is the adaptation part's end (frame round(from_s * fps), as the adapt loader)
    rows = Segment(clip, int(round(from_s * float(ix.meta["fps"])))).rows(ix.index, usable)
    t = t_all[rows]
    loader = CorpusLoader([ix], 64, 16, window=grmn.spec.window, with_images=False, clip_norm=grmn.spec.clip_norm)
    au_loader = CorpusLoader([ix], 64, 16, window=grmn.spec.window, with_images=False, score_target="aus")
    acc: dict[str, list[np.ndarray]] = {k: [] for k in ("jaw", "g", "expr", "track_jaw", "track_expr", "e", "e_aus")}
    grmn.eval()
    with torch.no_grad():
        for k in range(0, len(rows), 256):
            b = loader.load(identity, rows[k:k + 256]).to(device)
            out = grmn(b.audio, b.aus, b.s)
            for name, v in (("jaw", out.jaw[:, 0]), ("g", out.g[:, 0]), ("expr", out.expr), ("track_jaw", b.jaw[:, 0]),
                            ("track_expr", b.expr), ("e", b.e)):
                acc[name].append(v.float().cpu().numpy())
            acc["e_aus"].append(au_loader.load(identity, rows[k:k + 256]).e.numpy())  # pretrain.score_target: aus
    r = {k: np.concatenate(v) for k, v in acc.items()}
    truth = np.load(paths.synthetic / "truth" / f"{clip}.npz")
    ti = np.clip(np.round(t * float(truth["fps"])).astype(int), 0, len(truth["jaw"]) - 1)
    true_jaw, true_expr, strength = truth["jaw"][ti, 0], truth["expr"][ti], truth["emotion_strength"][ti]
    energy = audio_energy(paths.audio(clip), t)
    sidecar = json.loads((paths.synthetic / "truth" / f"{clip}.json").read_text())
    preds = {"t": t, "jaw": r["jaw"], "track_jaw": r["track_jaw"], "true_jaw": true_jaw, "g": r["g"],
             "intensity": strength, "emotion": truth["emotion"][ti], "energy": energy}
    return {**({"preds": {k: np.round(np.asarray(v, dtype=np.float64), 5).tolist() for k, v in preds.items()}}
               if keep_preds else {}),
        "identity": identity, "clip": clip, "frames": int(len(rows)),
        "voices": sorted({u["voice"] for u in sidecar.get("segments", [])}),
        "jaw_r": pearson(r["jaw"], true_jaw),
        "energy_r": pearson(energy, true_jaw),
        "tracked_jaw_r": pearson(r["track_jaw"], true_jaw),
        "gate_intensity_r": pearson(r["g"], strength),
        "teacher_e_intensity_r": pearson(r["e"], strength),
        "aus_e_intensity_r": pearson(r["e_aus"], strength),
        "gate_mean": float(r["g"].mean()),
        "expr_mae": float(np.abs(r["expr"] - true_expr).mean()),
        "expr_mae_zero": float(np.abs(true_expr).mean()),
        "expr_mae_tracked": float(np.abs(r["track_expr"] - true_expr).mean()),
    }


def evaluate(identity: str, clip: str | None = None) -> dict[str, Any]:
    """The `grmn_eval@<id>` stage: the adapted model in data/models/<id>/ -> data/metrics/grmn_eval/<id>.json."""
    import torch

    from emotag_core.io.atomic import write_text
    from emotag_core.train.checkpoint import load_model
    from emotag_core.train.data import build_identity_index
    from stages.common import Paths, params
    from emotag_core.train.recipe import identity_tables

    torch.set_num_threads(1)
    p = params()
    ix = build_identity_index(identity, identity_tables(Path("data") / "processed" / identity))
    grmn, extra = load_model(Paths(identity).models / "grmn.pt")
    m = evaluate_model(grmn, ix, clip)
    m.update(ablation=extra.get("ablation"), corpus=extra.get("corpus"),
             params={"pretrain_iters": p.pretrain.iters, "adapt_iters": p.adapt.iters,
                     "param_supervision": p.pretrain.param_supervision, "render": p.pretrain.render})
    out = Path("data") / "metrics" / "grmn_eval" / f"{identity}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, json.dumps(m, indent=1))
    print(json.dumps(m, indent=1))
    return m


def run_inprocess(variants: list[str], device: str, seeds: list[int], out: Path, sets: dict[str, str],
                  keep_preds: bool = False) -> None:
    """The same code path as `dvc exp run` (pretrain + adapt stages' library calls) in one process.

    For machines without dvc (the device machine): run with cwd = a workdir or bundle that holds
    params.yaml and the data/ tables; the head model is not needed (`n_mouth` comes from bundle.json
    if present).
    """
    import time

    import torch

    from emotag_core.config import load_params
    from emotag_core.motion.grmn import GRMN
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.loop import adapt, pretrain
    from emotag_core.split import Split
    from emotag_core.train.recipe import adapt_loop_config, corpus_loader, grmn_spec, identity_tables, init_audio_norm, \
        loss_switches, pretrain_loop_config

    def table_paths(i: str) -> dict[str, str]:
        return identity_tables(Path("data") / "processed" / i)

    torch.set_num_threads(int(os.environ.get("GRMN_THREADS", "1")))  # 1: fastest on a shared CPU
    results = json.loads(out.read_text()) if out.exists() else {}
    nested: dict[str, Any] = {}
    for k, v in sets.items():
        if "." not in k:                   # top level, e.g. -S 'corpus=["gsyn_0","gsyn_1"]' -S 'targets=["gsyn_t"]'
            nested[k] = _value(v)
            continue
        sec, key = k.split(".")
        nested.setdefault(sec, {})[key] = _value(v)
    for v in variants:
        for seed in seeds:
            over = {**nested, "ablation": {k: k != v for k in VARIANTS[1:]}}
            over["pretrain"] = dict(over.get("pretrain", {}), seed=seed, device=device)
            p = load_params("params.yaml", over)
            c, a = p.pretrain, p.adapt
            torch.manual_seed(c.seed)
            corpus = [build_identity_index(i, table_paths(i)) for i in p.corpus]
            target = build_identity_index(p.targets[0], table_paths(p.targets[0]))
            bundle = Path("bundle.json")
            n_mouth = json.loads(bundle.read_text())["n_mouth"] if bundle.exists() else _n_mouth(p, corpus[0].meta)
            scenes, target_scene = {}, None
            if c.render:  # the paper's L_Render: each identity's Gaussian avatar, as the pretrain / adapt stages build it
                from emotag_core.flame import load_head_model
                from emotag_core.avatar.scene import build_scene

                head = load_head_model(p.flame, device)
                scenes = {ix.identity: build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer, device=device)
                          for ix in corpus}
                target_scene = build_scene(head, target.meta, c.n_gaussians, backend=c.rasterizer, device=device)
                n_mouth = target_scene.n_mouth
            grmn = GRMN(grmn_spec(c, p.ablation, p.audio_features.window, corpus[0].meta, n_mouth))
            init_audio_norm(grmn, corpus)  # pretrain.audio_norm: corpus statistics, never the target's
            grmn = grmn.to(device)
            sw = loss_switches(c, p.ablation)
            loader = corpus_loader(corpus, c, grmn.spec)
            cfg = pretrain_loop_config(c, checkpoint_every=0)
            log: list[dict[str, float]] = []
            t0 = time.perf_counter()
            pretrain(grmn, scenes, loader, cfg, sw, device=device, log=lambda s, t: log.append(dict(t, step=s)),
                     progress=False)
            t_pre = time.perf_counter() - t0
            before = evaluate_model(grmn, target, device=device, keep_preds=keep_preds)  # pretrained, not yet adapted
            ad_loader = corpus_loader([target], c, grmn.spec, Split.from_config(a, None, target.index, target.meta["fps"]))
            acfg = adapt_loop_config(c, a, checkpoint_every=0)
            t0 = time.perf_counter()
            adapt(grmn, target_scene, target.identity, ad_loader, acfg, loss_switches(c, p.ablation, geo=c.render), device=device,
                  progress=False)
            t_ad = time.perf_counter() - t0
            m = evaluate_model(grmn, target, device=device, keep_preds=keep_preds)
            # validation: the adaptation clip after its first train_seconds (other sentences of the target,
            # not used to adapt); settings are compared on it, test numbers are the held-out clip's
            val = evaluate_model(grmn, target, clip=sorted(set(target.index.column("clip_id").to_pylist()))[0],
                                 device=device, from_s=a.train_seconds, keep_preds=keep_preds)
            dev_name = torch.cuda.get_device_name() if device.startswith("cuda") else f"cpu ({os.cpu_count()} cores)"
            if keep_preds:
                m["preds"] = {"test": m.pop("preds"), "before": before["preds"], "val": val["preds"]}
            m.update(val={k: val[k] for k in ("clip", "frames", "jaw_r", "energy_r", "tracked_jaw_r", "gate_intensity_r")},
                     variant=v, seed=seed, device=device, device_name=dev_name, corpus=list(p.corpus), pretrain_s=t_pre, pretrain_it_s=c.iters / t_pre,
                     adapt_s=t_ad, before_adapt={k: before[k] for k in ("jaw_r", "gate_intensity_r", "expr_mae")},
                     train_curve=log[-3:], train_curve_first=log[:3], adapt_frames=ad_loader.n_frames(target.identity),
                     settings={"pretrain": {k: getattr(c, k) for k in ("iters", "batch_size", "lr", "param_supervision",
                                                                    "render", "d_model", "hidden", "n_layers", "audio_norm", "dropout", "param_jaw_weight",
                                                                    "weight_decay", "adain_axis", "lr_schedule", "clip_norm",
                                                                    "aug_gain_std", "aug_shift_bins", "aug_freq_masks",
                                                                    "aug_freq_mask_width", "aug_time_masks",
                                                                    "aug_time_mask_width", "score_target", "ema",
                                                                    "image_size", "n_gaussians", "static_iters")},
                               "adapt": {k: getattr(a, k) for k in ("iters", "lr", "train_seconds", "anchor")}})
            results[f"{v}/seed{seed}"] = m
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=1, default=str))
            print(json.dumps({"val_jaw_r": val["jaw_r"], **{k: m[k] for k in ("variant", "seed", "jaw_r", "energy_r", "tracked_jaw_r", "gate_intensity_r",
                                                "teacher_e_intensity_r", "aus_e_intensity_r", "expr_mae", "pretrain_s", "adapt_s")}}), flush=True)


def teacher_check(ids: list[str], scales: list[float], gains: list[float], seconds: float = 12.0,
                  step: int = 3) -> list[dict[str, Any]]:
    """Diagnostic of the gate's only signal: does the emotion teacher's score e (Eq. 9) follow the synthetic
    intensity? (cwd: the workdir; truth read for scoring only.)

    For each identity in `ids`: e on its ingested frames (every `step`-th) at each face-crop scale.
    For each gain in `gains`: identity `ids[0]`'s seed re-rendered for `seconds` with `synth.au_gain` =
    gain (a scratch folder, not the corpus), crops from the truth landmarks.
    """
    import tempfile

    import av
    import torch

    from emotag_core.config import EmotionConfig, load_params
    from emotag_core.io.frames import FrameStore
    from emotag_core.io.tables import TableReader
    from emotag_core.teachers import emotion
    from emotag_core.teachers.landmarks import face_boxes
    from stages.synth import generate_identity, identity_config, load_model

    torch.set_num_threads(1)
    teacher = emotion.load("fer", EmotionConfig(backend="fer"))
    out: list[dict[str, Any]] = []

    def row(**kw: Any) -> None:
        out.append(kw)
        print(json.dumps(kw), flush=True)

    def score(images: np.ndarray, boxes: np.ndarray, strength: np.ndarray, label: np.ndarray) -> dict[str, Any]:
        probs = teacher.predict(images, boxes)
        return {"e_intensity_r": pearson(emotion.emotion_score(probs), strength),
                "accuracy": float((probs.argmax(1) == label).mean()),
                "argmax_counts": np.bincount(probs.argmax(1), minlength=7).tolist(),
                "true_counts": np.bincount(label, minlength=7).tolist()}

    for ident in ids:
        store = FrameStore(f"data/processed/{ident}/frames.parquet")
        lm = TableReader(f"data/processed/{ident}/landmarks.parquet", "landmarks").read(
            columns=["clip_id", "frame", "face_found", "landmarks"])
        pts = lm.column("landmarks").combine_chunks().flatten().to_numpy().reshape(-1, 478, 3)
        found = lm.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
        clips = np.asarray(lm.column("clip_id").to_pylist())
        frames = lm.column("frame").to_numpy()
        imgs, rows = [], []
        for r, im in store.iter_batches(64):
            keep = (r % step == 0) & (clips[r] == clips[0])
            imgs.append(im[keep])
            rows.append(r[keep])
        images, rows_a = np.concatenate(imgs), np.concatenate(rows)
        truth = np.load(f"data/synthetic/{ident}/truth/{clips[0]}.npz")
        fr = np.clip(frames[rows_a], 0, len(truth["emotion_strength"]) - 1)
        for sc in scales:
            row(identity=ident, au_gain=1.0, crop_scale=sc, frames=int(len(rows_a)),
                **score(images, face_boxes(pts[rows_a], found[rows_a], store.size, sc),
                        truth["emotion_strength"][fr], truth["emotion"][fr]))
    if gains:
        p = load_params("params.yaml")
        model = load_model(p.flame, "cpu")
        for gain in gains:
            cfg = identity_config(p.synth, {**p.synthetic[ids[0]], "seconds": seconds, "clips": 1, "au_gain": gain}, ids[0])
            with tempfile.TemporaryDirectory() as tmp:
                generate_identity(model, cfg, Path(tmp) / "x", quiet=True)
                truth = np.load(Path(tmp) / "x" / "truth" / "clip000.npz")
                with av.open(str(Path(tmp) / "x" / "clip000.mp4")) as c:
                    video = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
            n = min(len(video), len(truth["emotion_strength"]))
            lmk = truth["landmarks2d"][:n]
            lo, hi = lmk.min(1), lmk.max(1)
            for sc in scales:
                boxes = np.concatenate([(lo + hi) / 2, (hi - lo).max(1, keepdims=True) * sc], 1).astype(np.float32)
                row(identity=f"{ids[0]} re-rendered ({seconds:g} s)", au_gain=gain, crop_scale=sc, frames=n,
                    **score(np.stack(video[:n]), boxes, truth["emotion_strength"][:n], truth["emotion"][:n]))
    return out


def analyse(preds_file: Path, part: str = "test") -> list[dict[str, Any]]:
    """Error analysis of the kept per-frame series (`run --keep-preds`, merged by `merge-sweep`): per run the
    jaw r, r against the tracked jaw (the training target), r after a Gaussian smoothing of the prediction
    (sigma 1 frame), r when each emotion segment's prediction gets its own best affine map (an oracle of
    per-utterance amplitude: how much of the error is amplitude, not timing/shape), and per group of seeds
    (full model, same tag up to `_s<N>`) the r of the mean of the standardised predictions (a seed ensemble)."""
    from scipy.ndimage import gaussian_filter1d

    data = _read_json(preds_file)
    rows, groups = [], {}
    for key, parts in sorted(data.items()):
        p = {k: np.asarray(v) for k, v in parts[part].items()}
        jaw, true = p["jaw"], p["true_jaw"]
        seg = np.concatenate([[0], np.cumsum(np.diff(p["emotion"]) != 0)])
        fit = np.empty_like(jaw)
        for k in np.unique(seg):
            m = seg == k
            a = np.stack([jaw[m], np.ones(int(m.sum()))], 1)
            fit[m] = a @ np.linalg.lstsq(a, true[m], rcond=None)[0]
        tag = key.rsplit("/", 1)[-1]
        row = {"run": key, "jaw_r": pearson(jaw, true), "vs_tracked_r": pearson(jaw, p["track_jaw"]),
               "smoothed_r": pearson(gaussian_filter1d(jaw, 1.0), true), "segment_affine_r": pearson(fit, true),
               "pred_std_over_true": float(jaw.std() / true.std())}
        rows.append(row)
        print(json.dumps(row))
        if key.startswith("full/"):  # seeds of one setting: the tag up to `_s<N>`
            groups.setdefault(re.sub(r"_s\d+$", "", tag), []).append(((jaw - jaw.mean()) / jaw.std(), true))
    for g, members in groups.items():
        if len(members) > 1:
            row = {"group": g, "seeds": len(members), "ensemble_r": pearson(np.mean([z for z, _ in members], 0), members[0][1])}
            rows.append(row)
            print(json.dumps(row))
    return rows


def _read_json(path: Path) -> Any:
    """A .json or .json.gz file."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt") as f:
            return json.load(f)
    return json.loads(path.read_text())


def _value(v: str) -> Any:
    """A `-S key=value` value: true/false, a JSON number/list, else the string itself (`cosine`)."""
    if v in ("true", "false"):
        return v == "true"
    try:
        return json.loads(v)
    except json.JSONDecodeError:
        return v


def ridge_baseline(k: int = 3, lambdas: tuple[float, ...] = (10.0, 100.0, 1000.0),
                   labels: str = "tracked") -> dict[str, float | None]:
    """Diagnostic: ridge regression from +-k frames of (standardised) audio features to the TRACKED jaw of the
    corpus, scored like GRMN on the target's held-out clip (r vs the TRUE jaw). Run with cwd = the workdir.

    `labels="truth"` fits the corpus's TRUE jaw instead: a ceiling diagnostic only (nothing trains on it)."""
    import pyarrow.parquet as pq

    from emotag_core.config import load_params

    p = load_params("params.yaml")

    def windows(ident: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = pq.read_table(f"data/processed/{ident}/audio_features.parquet", columns=["clip_id", "frame", "feature"])
        f = pq.read_table(f"data/processed/{ident}/flame.parquet", columns=["jaw"])
        clips = np.asarray(a.column("clip_id").to_pylist())
        x = np.asarray(a.column("feature").to_pylist(), np.float32)
        jaw = np.asarray(f.column("jaw").to_pylist())[:, 0]
        if labels == "truth":
            frames = a.column("frame").to_numpy()
            jaw = np.zeros(len(clips))
            for c in dict.fromkeys(clips):
                tj = np.load(f"data/synthetic/{ident}/truth/{c}.npz")["jaw"][:, 0]
                jaw[clips == c] = tj[np.clip(frames[clips == c], 0, len(tj) - 1)]
        out = []
        for c in dict.fromkeys(clips):
            xc = x[clips == c]
            idx = np.clip(np.arange(len(xc))[:, None] + np.arange(-k, k + 1)[None], 0, len(xc) - 1)
            out.append(xc[idx].reshape(len(xc), -1))
        return np.concatenate(out), jaw, clips

    parts = [windows(i) for i in p.corpus]
    x = np.concatenate([q[0] for q in parts])
    y = np.concatenate([q[1] for q in parts])
    tgt = p.targets[0]
    xt, _, ct = windows(tgt)
    clip = sorted(set(ct))[-1]
    truth = np.load(f"data/synthetic/{tgt}/truth/{clip}.npz")["jaw"][:, 0]
    xt = xt[ct == clip][: len(truth)]
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = (x - mu) / sd
    res: dict[str, float | None] = {}
    for lam in lambdas:
        w = np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean()))
        res[f"ridge_k{k}_{labels}_lambda{lam:g}"] = pearson(((xt - mu) / sd) @ w, truth[: len(xt)])
    print(json.dumps(res))
    return res


def make_bundle(workdir: Path, dest: Path, only: list[str] | None = None, images: int = 0, quality: int = 90) -> None:
    """A small copy of the workdir for the device machine: params, motion tables, frames without pixels,
    the target's held-out audio and truth (no landmarks), and `n_mouth` (no head model needed there).

    `images` > 0 (render-based runs, `pretrain.render: true`): the frame crops are kept, re-encoded at
    `images` x `images` (the loader resizes them to `pretrain.image_size` anyway, so pick that size) at JPEG
    `quality`, and the targets' geometry tables (L_Geo) are copied."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    from emotag_core.config import load_params
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.recipe import identity_tables

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        p = load_params("params.yaml")
        # default: the corpus and targets of params; `only`: these prepared identities instead, so that
        # `-S corpus=[...]` may pick among them on the device (its carry holds 64 MiB with the tree: ~45 identities)
        ids = list(only) if only else list(dict.fromkeys(list(p.corpus) + list(p.targets)))
        n_mouth = _n_mouth(p, build_identity_index(ids[0], identity_tables(Path("data") / "processed" / ids[0])).meta)
    finally:
        os.chdir(cwd)
    if images > 0:
        import cv2

        from emotag_core.io.frames import decode_jpeg, encode_jpeg

        def pixels(b: bytes) -> bytes:
            return encode_jpeg(cv2.resize(decode_jpeg(b), (images, images), interpolation=cv2.INTER_AREA), quality)
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    shutil.copy(workdir / "params.yaml", dest / "params.yaml")
    (dest / "bundle.json").write_text(json.dumps({"n_mouth": n_mouth, "from": str(workdir)}))
    for ident in ids:
        src, dst = workdir / "data" / "processed" / ident, dest / "data" / "processed" / ident
        dst.mkdir(parents=True)
        for t in ("audio_features", "aus", "emotion", "identity", "flame"):
            shutil.copy(src / f"{t}.parquet", dst / f"{t}.parquet")
        f = pq.read_table(src / "frames.parquet")  # same schema and metadata; JPEG bytes emptied or made small
        i = f.schema.get_field_index("jpeg")
        data = [pixels(b) for b in f.column(i).to_pylist()] if images > 0 else [b""] * f.num_rows
        f = f.set_column(i, f.schema.field(i), pa.array(data, type=f.schema.field(i).type))
        pq.write_table(f, dst / "frames.parquet", **({"row_group_size": 8} if images > 0 else {}))
        if images > 0 and ident in p.targets:
            shutil.copy(src / "geometry.parquet", dst / "geometry.parquet")
    for ident in [t for t in p.targets if t in ids]:
        src, dst = workdir / "data", dest / "data"
        (dst / "processed" / ident / "audio").mkdir(parents=True)
        (dst / "synthetic" / ident / "truth").mkdir(parents=True)
        for wav in (src / "processed" / ident / "audio").glob("*.wav"):
            shutil.copy(wav, dst / "processed" / ident / "audio" / wav.name)
        for npz in (src / "synthetic" / ident / "truth").glob("*.npz"):
            z = dict(np.load(npz))
            z.pop("landmarks2d", None)
            np.savez_compressed(dst / "synthetic" / ident / "truth" / npz.name, **z)
            shutil.copy(npz.with_suffix(".json"), dst / "synthetic" / ident / "truth" / npz.with_suffix(".json").name)


def _n_mouth(p: Any, meta: dict[str, Any]) -> int:
    from emotag_core.flame import load_head_model
    from emotag_core.avatar.scene import build_scene

    return build_scene(load_head_model(p.flame, "cpu"), meta, p.pretrain.n_gaussians, 0, "torch").n_mouth


def merge(files: list[Path], out: Path = RESULTS) -> None:
    """Add the results of per-configuration files (`grmn_synth_device.sh` writes TAG.json) to `out`,
    keyed `variant/seedN/TAG`; existing keys are kept unless a file brings the same key."""
    results = json.loads(out.read_text()) if out.exists() else {}
    for f in files:
        for key, m in json.loads(Path(f).read_text()).items():
            results[f"{key}/{Path(f).stem}"] = m
    out.write_text(json.dumps(results, indent=1, default=str))
    print(f"{len(files)} file(s) merged into {out} ({len(results)} rows)")


def merge_sweep(files: list[Path], out: Path = RESULTS) -> None:
    """Add `grmn_synth_device.sh`'s merged sweep.json files to `out`; their per-frame series (`run --keep-preds`)
    go to the side file `<out stem>_preds.json.gz`."""
    res = json.loads(out.read_text()) if out.exists() else {}
    preds_out = out.with_name(out.stem + "_preds.json.gz")
    preds = _read_json(preds_out) if preds_out.exists() else {}
    for f in files:
        new = json.loads(Path(f).read_text())
        for k, m in new.items():
            if "preds" in m:
                preds[k] = m.pop("preds")
        res.update(new)
    out.write_text(json.dumps(res, indent=1, default=str))
    if preds:
        with gzip.open(preds_out, "wt") as fh:
            json.dump(preds, fh)
    print(f"{len(files)} sweep file(s) merged into {out} ({len(res)} rows)")


def settings_note(m: dict[str, Any]) -> str:
    """The training settings of one result that differ from the first (2026-11-25) runs."""
    st = m["settings"]["pretrain"]
    notes = [f"{len(m.get('corpus', [0] * 4))} ids"]
    for k, default in (("d_model", 64), ("audio_norm", False), ("dropout", 0.0), ("param_jaw_weight", 1.0), ("weight_decay", 0.01),
                       ("adain_axis", "time"), ("lr_schedule", "constant"), ("clip_norm", False), ("aug_gain_std", 0.0),
                       ("aug_shift_bins", 0), ("aug_freq_masks", 0), ("aug_time_masks", 0), ("score_target", "teacher"),
                       ("ema", 0.0)):
        if st.get(k, default) != default:
            notes.append(f"{k}={st[k]}")
    ad = m["settings"].get("adapt", {})
    for k, default in (("iters", 300), ("lr", 5e-4), ("anchor", 0.0)):
        if k in ad and ad[k] != default:
            notes.append(f"adapt.{k}={ad[k]}")
    return ", ".join(notes)


def fmt(x: Any) -> str:
    return "n/a" if x is None else f"{x:.3f}" if isinstance(x, float) else str(x)


def table(path: Path = RESULTS) -> str:
    """Markdown rows of `run` results (keys `variant/seedN[/tag]`)."""
    res = json.loads(path.read_text())
    names = {"full": "full GRMN", "score": "w/o L_Score", "kl": "w/o L_KL", "seg": "w/o SEG",
             "gate": "w/o gate branch", "residual": "w/o residual branch", "adain": "w/o AdaIN"}
    lines = ["| variant | run | settings | jaw r vs truth (adapted) | jaw r before adapt | val jaw r | gate-intensity r | "
             "expr MAE vs truth | pretrain s (it/s) | device |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for key, m in res.items():
        v, rest = key.split("/", 1)
        st = m["settings"]["pretrain"]
        lines.append(f"| {names[v]} | {rest}, {st['iters']} it x {st['batch_size']} | {settings_note(m)} | {fmt(m['jaw_r'])} | "
                     f"{fmt(m['before_adapt']['jaw_r'])} | {fmt(m.get('val', {}).get('jaw_r', '-'))} | {fmt(m['gate_intensity_r'])} | "
                     f"{fmt(m['expr_mae'])} | "
                     f"{m['pretrain_s']:.0f} ({m['pretrain_it_s']:.0f}) | {m.get('device_name', m['device'])} |")
    refs = {}  # one reference line per scored clip (the rows hold several targets)
    for m in res.values():
        refs.setdefault((m["identity"], m["clip"]), m)
    for m in refs.values():
        lines.append(f"\nReferences on the same {m['frames']} held-out frames ({m['identity']}/{m['clip']}, voices "
                     f"{', '.join(m['voices'])}): baseline jaw = normalised audio energy r = {fmt(m['energy_r'])}; "
                     f"tracked jaw (the training target) r = {fmt(m['tracked_jaw_r'])}; emotion teacher score e vs true "
                     f"intensity r = {fmt(m['teacher_e_intensity_r'])}; expr MAE of zero expression = "
                     f"{fmt(m['expr_mae_zero'])}, of the tracked expression = {fmt(m['expr_mae_tracked'])}.")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    pp = sub.add_parser("prepare")
    pp.add_argument("--ids", nargs="*", help="only these identities (dvc repro -s, stage by stage)")
    ex = sub.add_parser("experiments")
    ex.add_argument("variants", nargs="*", default=list(VARIANTS))
    ex.add_argument("-S", dest="sets", action="append", default=[], help="extra key=value for every dvc exp run")
    ex.add_argument("--out", type=Path, default=RESULTS.with_name("grmn_synth_dvcexp.json"))
    ev = sub.add_parser("evaluate")
    ev.add_argument("identity")
    ev.add_argument("--clip")
    tp = sub.add_parser("table")
    tp.add_argument("paths", nargs="*", type=Path, default=[RESULTS])
    rg = sub.add_parser("ridge", help="linear audio->jaw diagnostic (cwd: the workdir)")
    rg.add_argument("--k", type=int, default=3, help="frames each side of the centre")
    rg.add_argument("--lambdas", default="10,100,1000")
    rg.add_argument("--labels", choices=("tracked", "truth"), default="tracked",
                    help="truth: fit the corpus's true jaw (a ceiling diagnostic, never a training target)")
    tc = sub.add_parser("teacher-check", help="does the emotion teacher's e follow the synthetic intensity? (cwd: workdir)")
    tc.add_argument("ids", nargs="+")
    tc.add_argument("--scales", default="1.0,1.4")
    tc.add_argument("--gains", default="", help="re-render ids[0] with these synth.au_gain values, e.g. 3,6")
    tc.add_argument("--out", type=Path)
    mp = sub.add_parser("merge", help="add per-configuration result files (grmn_synth_device.sh) to the results")
    mp.add_argument("files", nargs="+", type=Path)
    mp.add_argument("--out", type=Path, default=RESULTS)
    ms = sub.add_parser("merge-sweep", help="add the merged sweep.json files of grmn_synth_device.sh to the results")
    ms.add_argument("files", nargs="+", type=Path)
    ms.add_argument("--out", type=Path, default=RESULTS)
    an = sub.add_parser("analyse", help="error analysis of kept per-frame series (run --keep-preds)")
    an.add_argument("--preds", type=Path, default=RESULTS.with_name("grmn_synth_preds.json.gz"))
    an.add_argument("--part", choices=("test", "before", "val"), default="test")
    bp = sub.add_parser("bundle", help="copy what `run` needs into DEST (for the device machine)")
    bp.add_argument("dest", type=Path)
    bp.add_argument("--ids", nargs="*", help="these prepared identities (default: params' corpus and targets)")
    bp.add_argument("--images", type=int, default=0,
                    help="keep the frame crops at this size (render-based runs; default 0: no pixels)")
    bp.add_argument("--quality", type=int, default=90, help="JPEG quality of the kept crops")
    rp = sub.add_parser("run", help="all variants in one process (cwd: a workdir/bundle with params.yaml + data/)")
    rp.add_argument("variants", nargs="*", default=list(VARIANTS))
    rp.add_argument("--device", default="cpu")
    rp.add_argument("--seeds", default="0")
    rp.add_argument("--out", type=Path, default=RESULTS)
    rp.add_argument("-S", dest="sets", action="append", default=[], help="extra key=value (like dvc exp run -S)")
    rp.add_argument("--keep-preds", action="store_true",
                    help="keep the per-frame series in the results (merge-sweep moves them to a side file)")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(WORKDIR, a.ids)
    elif a.cmd == "experiments":
        experiments(WORKDIR, a.variants, dict(kv.split("=", 1) for kv in a.sets), a.out)
    elif a.cmd == "evaluate":
        evaluate(a.identity, a.clip)
    elif a.cmd == "teacher-check":
        res = teacher_check(a.ids, [float(x) for x in a.scales.split(",")],
                            [float(x) for x in a.gains.split(",") if x])
        if a.out:
            a.out.write_text(json.dumps(res, indent=1))
    elif a.cmd == "merge":
        merge(a.files, a.out)
    elif a.cmd == "merge-sweep":
        merge_sweep(a.files, a.out)
    elif a.cmd == "ridge":
        ridge_baseline(a.k, tuple(float(x) for x in a.lambdas.split(",")), a.labels)
    elif a.cmd == "analyse":
        analyse(a.preds, a.part)
    elif a.cmd == "bundle":
        make_bundle(WORKDIR, a.dest, a.ids, a.images, a.quality)
    elif a.cmd == "run":
        sets = dict(TRAIN_SET, **dict(kv.split("=", 1) for kv in a.sets))
        run_inprocess(a.variants, a.device, [int(x) for x in a.seeds.split(",")], a.out, sets, a.keep_preds)
    else:
        print("\n\n".join(table(p) for p in a.paths))


if __name__ == "__main__":
    sys.path.insert(0, str(Path.cwd()))
    main()
