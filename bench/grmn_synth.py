"""Issue 6 "must show" on the synthetic corpus with known truth: jaw sync, gate vs intensity, Table 5.

Everything runs in a scratch DVC repository of its own (default `/tmp/grmn_synth`, env GRMN_SYNTH_DIR), so the
main params.yaml keeps its smoke profile: `params.yaml` there is this repo's params.yaml with
`bench/grmn_synth.params.yaml` merged on top (the corpus and target identities, the motion-only training
defaults, `grmn_eval.targets`), `dvc.yaml` is this repo's, and `stages/`, `emotag_core/`, `bench/` are symlinks
to this checkout, so `dvc repro` / `dvc exp run` there run this project's stages unchanged, `grmn_eval@<id>`
(the synthetic-truth metrics, `emotag_core.metrics.synth_truth`) included.

Training is motion-only by default (`pretrain.render: false`, `pretrain.param_supervision` > 0): GRMN
learns from L1 on the TRACKED FLAME expression/jaw + L_KL + L_Score, not from the paper's L_Render.
`-S pretrain.render=true` trains through L_Render with each identity's Gaussian avatar (on CUDA, from a bundle
made with `bundle --images N`). The truth files of the synthetic identities are read only by grmn_eval.

Sweeps (settings x seeds) are spec files in `bench/sweeps/`, run by `bench/sweep.py`: `queue` (dvc exp run
--queue in the workdir, CPU), `device` (in-process on the device machine from a bundle; `bash
bench/grmn_synth_device.sh SPEC`), `table` (from either).

    python bench/grmn_synth.py prepare [--ids ID...]  # workdir + dvc repro of synth..track (every id or these)
    python bench/sweep.py queue bench/sweeps/NAME.yaml  # then: cd /tmp/grmn_synth && dvc queue start -j 1
    python bench/grmn_synth.py features --backend whisper [--ids ...] [--set whisper_engine=ctranslate2]
                                                # another backend's features -> <workdir>/features/<backend>/<id>/
    python bench/grmn_synth.py bundle DEST [--features whisper] [--fp16 native whisper]
                                                # small copy of the workdir's tables for the device machine
    python bench/grmn_synth.py ridge [--labels truth] [--backend whisper] [--targets ...] [--fp16]
                                                # linear audio->jaw diagnostic (cwd: the workdir)
    python bench/grmn_synth.py teacher-check ID... [--scales 1,1.4] [--gains 3,6]  # emotion teacher vs intensity
    python bench/grmn_synth.py table            # markdown table of the session 1-5 results (bench/results/grmn_synth.json)
    python bench/grmn_synth.py analyse          # error analysis of those results' kept per-frame series

The headline numbers (BENCHMARKS "session 4": held-out jaw r 0.826 on gsyn_u, 6 seeds) come from the settings in
`bench/sweeps/2026-11-26_s4_more.yaml` (and `2026-11-26_s4_y44_table5.yaml`), run on the device machine from
`python bench/grmn_synth.py bundle .grmn_bundle` (the default corpus Y44 and targets gsyn_u/v).
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.metrics.motion import pearson  # also imported from here by diag_gate_signals

REPO = Path(__file__).resolve().parent.parent
OVERRIDES = REPO / "bench" / "grmn_synth.params.yaml"
RESULTS = REPO / "bench" / "results" / "grmn_synth.json"
WORKDIR = Path(os.environ.get("GRMN_SYNTH_DIR", "/tmp/grmn_synth"))
PER_ID_STAGES = ("synth", "ingest", "landmarks", "audio_features", "aus", "emotion", "identity", "track")
def sh(cmd: list[str], cwd: Path) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=cwd, check=True, env=dict(os.environ, PATH=f"{REPO / '.venv' / 'bin'}:{os.environ['PATH']}"))


def prepare(workdir: Path, only: list[str] | None = None) -> None:
    """Scratch DVC repo with merged params and this checkout's dvc.yaml; `dvc repro` every per-identity
    preprocessing stage, then a baseline commit there (what `dvc exp run` and `sweep.py queue` start from).

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
    shutil.copy(REPO / "dvc.yaml", workdir / "dvc.yaml")  # grmn_eval@<id> fans out over the merged grmn_eval.targets
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
    else:
        sh(["dvc", "repro", *[f"{s}@{i}" for i in p.identities for s in PER_ID_STAGES]], workdir)
    sh(["git", "add", "-A", "."], workdir)  # the scratch repo only
    sh(["git", "commit", "-qm", "prepared", "--allow-empty"], workdir)



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
    from emotag_core.config import SynthConfig, from_dict, to_dict
    from emotag_core.flame import load_head_model
    from emotag_core.synth import generator as gen

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
        model = load_head_model(p.flame, "cpu")
        for gain in gains:
            cfg = from_dict(SynthConfig, {**to_dict(p.synth), **p.synthetic[ids[0]], "seconds": seconds, "clips": 1,
                                          "au_gain": gain}, f"synthetic.{ids[0]}")
            with tempfile.TemporaryDirectory() as tmp:  # one clip of the identity, as synth@<id> renders it
                (Path(tmp) / "truth").mkdir()
                ident = gen.sample_identity(model, cfg)
                video_path = gen.generate_clip(model, ident, gen.build_appearance(model, ident, cfg), cfg, 0, Path(tmp))
                truth = np.load(Path(tmp) / "truth" / f"{video_path.stem}.npz")
                with av.open(str(Path(tmp) / video_path.name)) as c:
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


def ridge_baseline(k: int = 3, lambdas: tuple[float, ...] = (10.0, 100.0, 1000.0),
                   labels: str = "tracked", backend: str | None = None, targets: list[str] | None = None,
                   fp16: bool = False, corpus: list[str] | None = None) -> dict[str, float | None]:
    """Diagnostic: ridge regression from +-k frames of (standardised) audio features to the TRACKED jaw of the
    corpus, scored like GRMN on the target's held-out clip (r vs the TRUE jaw). Run with cwd = the workdir.

    `labels="truth"` fits the corpus's TRUE jaw instead: a ceiling diagnostic only (nothing trains on it).
    `backend`: that feature set (`features/<backend>/<id>/`) instead of the DAG's; `targets`: score each of these
    (default: params' first target); `fp16`: features rounded to float16 first; `corpus`: fit on these ids."""
    from grmn_synth_features import feature_path
    import pyarrow.parquet as pq

    from emotag_core.config import load_params

    p = load_params("params.yaml")

    def windows(ident: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = feature_path(Path("."), backend, ident) if backend else Path(f"data/processed/{ident}/audio_features.parquet")
        a = pq.read_table(src, columns=["clip_id", "frame", "feature"])
        f = pq.read_table(f"data/processed/{ident}/flame.parquet", columns=["jaw"])
        clips = np.asarray(a.column("clip_id").to_pylist())
        x = np.asarray(a.column("feature").to_pylist(), np.float32)
        if fp16:
            x = x.astype(np.float16).astype(np.float32)
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

    corpus = list(corpus or p.corpus)
    parts = [windows(i) for i in corpus]
    x = np.concatenate([q[0] for q in parts])
    y = np.concatenate([q[1] for q in parts])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    a = (x - mu) / sd
    ws = {lam: np.linalg.solve(a.T @ a + lam * np.eye(a.shape[1]), a.T @ (y - y.mean())) for lam in lambdas}
    res: dict[str, float | None] = {}
    for tgt in targets or [p.targets[0]]:
        xt, _, ct = windows(tgt)
        clip = sorted(set(ct))[-1]
        truth = np.load(f"data/synthetic/{tgt}/truth/{clip}.npz")["jaw"][:, 0]
        xt = xt[ct == clip][: len(truth)]
        for lam, w in ws.items():
            key = f"ridge_k{k}_{labels}_lambda{lam:g}"
            res[key if not targets else f"{tgt}.{key}"] = pearson(((xt - mu) / sd) @ w, truth[: len(xt)])
    print(json.dumps({"backend": backend or "native", "fp16": fp16, "corpus": len(corpus), **res}))
    return res


def make_bundle(workdir: Path, dest: Path, only: list[str] | None = None, images: int = 0, quality: int = 90,
                features: list[str] | None = None, fp16: list[str] | None = None) -> dict[str, int]:
    """A small copy of the workdir for the device machine: params, motion tables, frames without pixels,
    the target's held-out audio and truth (no landmarks), and `n_mouth` (no head model needed there).

    `images` > 0 (render-based runs, `pretrain.render: true`): the frame crops are kept, re-encoded at
    `images` x `images` (the loader resizes them to `pretrain.image_size` anyway, so pick that size) at JPEG
    `quality`, and the targets' geometry tables (L_Geo) are copied.

    `features`: also these backends' feature sets (`grmn_synth.py features`), under `features/<backend>/`.
    Every motion table is rewritten losslessly smaller (`grmn_synth_features.compact`); the backends in
    `fp16` (`native` = the DAG's own audio_features) get their features rounded to float16.
    Returns the bytes of each part (`native`, each feature set, `other`)."""
    import shutil

    from grmn_synth_features import compact, feature_path

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
    fp16 = set(fp16 or [])
    sizes = {"native": 0, **{b: 0 for b in features or []}}
    for ident in ids:
        src, dst = workdir / "data" / "processed" / ident, dest / "data" / "processed" / ident
        dst.mkdir(parents=True)
        for t in ("audio_features", "aus", "emotion", "identity", "flame"):
            compact(src / f"{t}.parquet", dst / f"{t}.parquet", fp16=t == "audio_features" and "native" in fp16)
        sizes["native"] += (dst / "audio_features.parquet").stat().st_size
        for b in features or []:
            if not feature_path(workdir, b, ident).exists():
                raise SystemExit(f"bundle: {feature_path(workdir, b, ident)} not found; run "
                                 f"`python bench/grmn_synth.py features --backend {b} --ids {ident}` first")
            compact(feature_path(workdir, b, ident), feature_path(dest, b, ident), fp16=b in fp16)
            sizes[b] += feature_path(dest, b, ident).stat().st_size
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
    total = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    sizes["other"] = total - sum(sizes.values())
    (dest / "bundle.json").write_text(json.dumps({"n_mouth": n_mouth, "from": str(workdir), "ids": ids,
                                                  "features": list(features or []), "fp16": sorted(fp16),
                                                  "bytes": sizes}))
    print(json.dumps({"bundle": str(dest), "bytes": sizes, "total": total}), flush=True)
    return sizes


def _n_mouth(p: Any, meta: dict[str, Any]) -> int:
    from emotag_core.flame import load_head_model
    from emotag_core.avatar.scene import build_scene

    return build_scene(load_head_model(p.flame, "cpu"), meta, p.pretrain.n_gaussians, 0, "torch").n_mouth


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
    tp = sub.add_parser("table", help="markdown rows of the session 1-5 results (bench/results/grmn_synth.json)")
    tp.add_argument("paths", nargs="*", type=Path, default=[RESULTS])
    rg = sub.add_parser("ridge", help="linear audio->jaw diagnostic (cwd: the workdir)")
    rg.add_argument("--k", type=int, default=3, help="frames each side of the centre")
    rg.add_argument("--lambdas", default="10,100,1000")
    rg.add_argument("--labels", choices=("tracked", "truth"), default="tracked",
                    help="truth: fit the corpus's true jaw (a ceiling diagnostic, never a training target)")
    rg.add_argument("--backend", help="read this feature set (features/<backend>/, `grmn_synth.py features`)")
    rg.add_argument("--targets", nargs="*", help="score these targets (default: params' targets[0])")
    rg.add_argument("--fp16", action="store_true", help="round the features to float16 first (as a bundle may)")
    rg.add_argument("--corpus", nargs="*", help="fit on these identities (default: params' corpus)")
    tc = sub.add_parser("teacher-check", help="does the emotion teacher's e follow the synthetic intensity? (cwd: workdir)")
    tc.add_argument("ids", nargs="+")
    tc.add_argument("--scales", default="1.0,1.4")
    tc.add_argument("--gains", default="", help="re-render ids[0] with these synth.au_gain values, e.g. 3,6")
    tc.add_argument("--out", type=Path)
    an = sub.add_parser("analyse", help="error analysis of kept per-frame series (session 4-5 results)")
    an.add_argument("--preds", type=Path, default=RESULTS.with_name("grmn_synth_preds.json.gz"))
    an.add_argument("--part", choices=("test", "before", "val"), default="test")
    bp = sub.add_parser("bundle", help="copy what `sweep.py device` needs into DEST (for the device machine)")
    bp.add_argument("dest", type=Path)
    bp.add_argument("--ids", nargs="*", help="these prepared identities (default: params' corpus and targets)")
    bp.add_argument("--images", type=int, default=0,
                    help="keep the frame crops at this size (render-based runs; default 0: no pixels)")
    bp.add_argument("--quality", type=int, default=90, help="JPEG quality of the kept crops")
    bp.add_argument("--features", nargs="*", default=[], help="also these backends' feature sets (see `features`)")
    bp.add_argument("--fp16", nargs="*", default=[], help="round these feature sets to float16 (`native`: the DAG's)")
    fe = sub.add_parser("features", help="another backend's audio features of prepared ids -> <workdir>/features/")
    fe.add_argument("--backend", default="whisper")
    fe.add_argument("--ids", nargs="*", help="these prepared identities (default: params' corpus and targets)")
    fe.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="audio_features settings, e.g. whisper_engine=ctranslate2 whisper_threads=1")
    a = ap.parse_args()
    if a.cmd == "prepare":
        prepare(WORKDIR, a.ids)
    elif a.cmd == "teacher-check":
        res = teacher_check(a.ids, [float(x) for x in a.scales.split(",")],
                            [float(x) for x in a.gains.split(",") if x])
        if a.out:
            a.out.write_text(json.dumps(res, indent=1))
    elif a.cmd == "ridge":
        ridge_baseline(a.k, tuple(float(x) for x in a.lambdas.split(",")), a.labels, a.backend, a.targets, a.fp16,
                       a.corpus)
    elif a.cmd == "analyse":
        analyse(a.preds, a.part)
    elif a.cmd == "bundle":
        make_bundle(WORKDIR, a.dest, a.ids, a.images, a.quality, a.features, a.fp16)
    elif a.cmd == "features":
        from grmn_synth_features import compute
        from sweep import parse_value

        from emotag_core.config import load_params

        p = load_params(WORKDIR / "params.yaml")
        ids = a.ids or list(dict.fromkeys(list(p.corpus) + list(p.targets)))
        compute(WORKDIR, ids, a.backend, {k: parse_value(v) for k, v in (x.split("=", 1) for x in a.set)})
    else:
        print("\n\n".join(table(p) for p in a.paths))


if __name__ == "__main__":
    main()
