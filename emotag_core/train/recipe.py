"""One training recipe: the objects a pretraining or an adaptation run needs, built from the typed config
sections (`PretrainConfig`, `AdaptConfig`, `AblationConfig`), in one place.

Every caller (the `pretrain` / `adapt` stages, the benches, the tests) builds its GRMN spec, loss switches,
loop configs and loaders here, so a new params field is wired once.

Curves: `pretrain_run` / `adapt_run` take `log`, an `emotag_core.train.live.OpenLog` (default: dvclive curves
in `metrics_dir`, as the stages write them; `functools.partial(JsonLinesLog, path)` where there is no dvc).
Progress: both take `progress` (`emotag_core.progress.Progress`), called with (iteration, iters, loss=...).
`pretrain_run` reads the corpus stage's manifest; `pretrain_run_indices` takes the IdentityIndex list itself
(the benches, the device); both are the same run.

The adaptation split: `adapt_loader` takes the target's time limit from an `emotag_core.split.Split`
(`split.train_seconds`: the loader keeps the first round(train_seconds * fps) rows in store order,
which is `Split.adapt_frames`).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.train.data import CorpusLoader, IdentityIndex
from emotag_core.train.live import LiveLog, OpenLog
from emotag_core.train.loop import LoopConfig, LossSwitches


def grmn_spec(c: Any, ablation: Any, window: int, meta: dict[str, Any], n_mouth: int) -> GRMNSpec:
    """GRMN's architecture from `pretrain.*`, `ablation.*`, `audio_features.window` and an identity's table
    metadata (`GRMNSpec.from_config`)."""
    return GRMNSpec.from_config(c, ablation, window, meta, n_mouth)


def loss_switches(c: Any, ablation: Any, geo: bool = False) -> LossSwitches:
    """The loss terms the params switch on (`ablation.*`, `pretrain.render` / `param_supervision` /
    `param_jaw_weight`); `geo`: L_Geo (adaptation)."""
    return LossSwitches.from_ablation(ablation, geo=geo, param_supervision=c.param_supervision, render=c.render,
                                      param_jaw_weight=c.param_jaw_weight)


def pretrain_loop_config(c: Any, **over: Any) -> LoopConfig:
    """The pretrain loop's settings from `pretrain.*` (`over`: fields to replace, e.g. checkpoint_every=0)."""
    return replace(LoopConfig(iters=c.iters, static_iters=c.static_iters, lr=c.lr, image_size=c.image_size,
                              checkpoint_every=c.checkpoint_every, log_every=c.log_every, weight_decay=c.weight_decay,
                              lr_schedule=c.lr_schedule, cuda_graphs=c.cuda_graphs, ema=c.ema), **over)


def adapt_loop_config(c: Any, a: Any, **over: Any) -> LoopConfig:
    """The adaptation loop's settings from `adapt.*` (and `pretrain.*` sizes); `over` as above."""
    return replace(LoopConfig(iters=a.iters, static_iters=a.static_iters, lr=a.lr, image_size=c.image_size,
                              checkpoint_every=a.checkpoint_every, log_every=c.log_every, scene_lr=a.scene_lr,
                              cuda_graphs=c.cuda_graphs, anchor=a.anchor), **over)


def audio_augment(c: Any) -> Any:
    """The pretraining batches' audio augmentation from `pretrain.aug_*` (None when every knob is off)."""
    from emotag_core.train.audio_aug import AudioAugment

    aug = AudioAugment(gain_std=c.aug_gain_std, shift_bins=c.aug_shift_bins, n_bands=c.aug_mel_bands,
                       freq_masks=c.aug_freq_masks, freq_mask_width=c.aug_freq_mask_width,
                       time_masks=c.aug_time_masks, time_mask_width=c.aug_time_mask_width)
    return aug if aug.active else None


def corpus_loader(indices: list[IdentityIndex], c: Any, spec: GRMNSpec, split: Any = None) -> CorpusLoader:
    """The one loader constructor. `split` None: pretraining (every usable frame of every identity, audio
    augmentation from `pretrain.aug_*`). `split` (an `emotag_core.split.Split`): adaptation of one target on
    its first `split.train_seconds` (with the geometry table when rendering, never augmented)."""
    kw: dict[str, Any] = {"audio_aug": audio_augment(c)} if split is None else {
        "with_geometry": c.render, "max_seconds": split.train_seconds}
    return CorpusLoader(indices, c.batch_size, c.image_size, window=spec.window, seed=c.seed,
                        cache_row_groups=c.cache_row_groups, with_images=c.render, clip_norm=spec.clip_norm,
                        score_target=c.score_target, **kw)


def init_audio_norm(grmn: GRMN, indices: list[IdentityIndex]) -> None:
    """With `pretrain.audio_norm`: GRMN's input statistics from every corpus identity's audio features."""
    if grmn.spec.audio_norm and not grmn.spec.clip_norm:  # clip-normalised inputs are standardised already
        from emotag_core.train.audio_stats import audio_feature_stats

        grmn.set_audio_stats(*audio_feature_stats([ix.tables["audio_features"] for ix in indices]))


def check_head_model(head: Any, indices: list[IdentityIndex], who: str) -> None:
    """The tables were tracked with the head model the params load (`flame.model`), else a ConfigError naming the
    identity's flame table: an avatar bound to one mesh cannot read another mesh's expression coefficients."""
    from emotag_core.errors import ConfigError

    want = head.metadata()
    for ix in indices:
        got = (ix.meta["flame_model"], int(ix.meta["n_expr"]))
        if got != (want["flame_model"], int(want["n_expr"])):
            raise ConfigError(f"{who}: {ix.tables['flame']} was tracked with the `{got[0]}` head model ({got[1]} "
                              f"expressions) but flame.model loads `{want['flame_model']}` ({want['n_expr']}); set "
                              f"flame.model: {got[0]}, or re-run track@{ix.identity} and what follows (`dvc repro`)")


def fingerprint(*parts: Any) -> str:
    """A short digest of everything a run's result depends on (its checkpoints resume only under the same one)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def setup_torch(seed: int, threads: int = 1) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))


def identity_tables(folder: Path) -> dict[str, str]:
    """The training tables of one identity's processed folder: TRAIN_TABLES, plus OPTIONAL_TABLES present."""
    from emotag_core.train.data import OPTIONAL_TABLES, TRAIN_TABLES

    out = {t: str(folder / f"{t}.parquet") for t in TRAIN_TABLES}
    out.update({t: str(folder / f"{t}.parquet") for t in OPTIONAL_TABLES if (folder / f"{t}.parquet").exists()})
    return out


def read_corpus(corpus_dir: Path) -> list[IdentityIndex]:
    """The corpus identities as the `corpus` stage indexed them in `corpus_dir` (tables re-checked on open)."""
    from emotag_core.errors import StageMissingError
    from emotag_core.train.data import build_identity_index

    mf = corpus_dir / "manifest.json"
    if not mf.exists():
        raise StageMissingError("the corpus index", mf, "dvc repro corpus")
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    return [build_identity_index(ident, m["tables"]) for ident, m in manifest["identities"].items()]


def _open_log(log: OpenLog | None, metrics_dir: Path | None, who: str) -> OpenLog:
    """`log`, or dvclive curves in `metrics_dir` (LiveLog) when `log` is None."""
    if log is not None:
        return log
    if metrics_dir is None:
        raise ValueError(f"{who}: give metrics_dir (dvclive curves) or log (e.g. partial(JsonLinesLog, path))")
    return lambda start: LiveLog(metrics_dir, start)


def pretrain_run(p: Any, corpus_dir: Path, out_dir: Path, ckpt_dir: Path, metrics_dir: Path | None,
                 progress: Progress = NO_PROGRESS, log: OpenLog | None = None) -> dict[str, Any]:
    """Pretrain GRMN + every corpus identity's scene (Sec. 3.3) from `p` (Params: pretrain, ablation, flame,
    audio_features.window) on the identities of the corpus stage's `corpus_dir`/manifest.json; resumes from
    `ckpt_dir`; writes `out_dir`/grmn.pt + summary.json, curves through `log` (default: dvclive in `metrics_dir`)."""
    indices = read_corpus(corpus_dir)
    manifest = json.loads((corpus_dir / "manifest.json").read_text())
    digests = {k: v["digests"] for k, v in manifest["identities"].items()}
    return pretrain_run_indices(p, indices, out_dir, ckpt_dir, _open_log(log, metrics_dir, "pretrain_run"), progress,
                                digests)


def pretrain_run_indices(p: Any, indices: list[IdentityIndex], out_dir: Path, ckpt_dir: Path, log: OpenLog,
                         progress: Progress = NO_PROGRESS, digests: dict[str, dict[str, str]] | None = None) -> dict[str, Any]:
    """`pretrain_run` on already-built corpus indices (in corpus order; `build_identity_index`), no manifest.
    `log`: opened with the resumed step (`partial(JsonLinesLog, path)`, or LiveLog for dvclive curves).
    `digests` (identity -> table -> md5, as the corpus manifest holds them) key the resumable checkpoints;
    default: computed from the tables' files."""
    from emotag_core.config import to_dict
    from emotag_core.errors import ConfigError
    from emotag_core.flame import load_head_model
    from emotag_core.io.atomic import write_text
    from emotag_core.avatar.scene import build_scene
    from emotag_core.train.checkpoint import clear_checkpoints, load_latest, save_model
    from emotag_core.train.data import file_digest
    from emotag_core.train.loop import pretrain

    c = p.pretrain
    if not indices:
        raise ConfigError("pretrain: no corpus identities; list them in params `corpus`")
    if digests is None:
        digests = {ix.identity: {k: file_digest(v) for k, v in ix.tables.items()} for ix in indices}
    setup_torch(c.seed, c.threads)
    dev = c.device
    sw = loss_switches(c, p.ablation)
    head = load_head_model(p.flame, dev)
    check_head_model(head, indices, "pretrain")
    # motion-only: nothing renders, so no scenes and no mouth head (nothing would train Eq. 8's offsets); an adapt
    # that renders gives the prior its avatar's mouth Gaussians (GRMN.grow_mouth)
    scenes = {ix.identity: build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer, device=dev)
              for ix in indices} if c.render else {}
    n_mouth = next(iter(scenes.values())).n_mouth if scenes else 0
    spec = grmn_spec(c, p.ablation, p.audio_features.window, indices[0].meta, n_mouth)
    grmn = GRMN(spec)
    init_audio_norm(grmn, indices)
    grmn = grmn.to(dev)
    loader = corpus_loader(indices, c, spec)
    fp = fingerprint(to_dict(c), to_dict(p.ablation), to_dict(p.flame), digests)
    probe = load_latest(ckpt_dir, fp)
    curves = log(int(probe["iteration"]) if probe else 0)
    t0 = time.perf_counter()
    summary = pretrain(grmn, scenes, loader, pretrain_loop_config(c), sw, ckpt_dir=ckpt_dir, fingerprint=fp, device=dev,
                       log=curves, progress=progress)
    wall = time.perf_counter() - t0
    curves.end()
    out_dir.mkdir(parents=True, exist_ok=True)
    save_model(out_dir / "grmn.pt", grmn, extra={
        "audio_backend": indices[0].meta["audio_backend"], "feature_dim": spec.audio_dim,
        "flame_model": indices[0].meta["flame_model"], "ablation": to_dict(p.ablation), "corpus": [ix.identity for ix in indices]})
    done = summary["iterations"] - summary["resumed_from"]
    summary.update(wall_s=wall, it_per_s=done / max(wall, 1e-9), device=str(dev), loader_row_group_reads=loader.cache.reads)
    write_text(out_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    clear_checkpoints(ckpt_dir)  # a finished run leaves none: a later one must train, not "resume" at the end
    return summary


def body_pose(rot: np.ndarray, neck: np.ndarray) -> np.ndarray:
    """The body rotation [3, 3] (camera frame) that the track's neck split holds: rot/neck [N, 3] axis-angle rows
    of one clip (head rotation, camera frame; neck, FLAME frame) -> chordal mean of R(rot) F R(neck)^T F."""
    from emotag_core.flame.model import FLAME_TO_CV, rodrigues

    F = FLAME_TO_CV.double()
    R = rodrigues(torch.as_tensor(np.asarray(rot, np.float64))) @ F \
        @ rodrigues(torch.as_tensor(np.asarray(neck, np.float64))).transpose(1, 2) @ F      # [N, 3, 3]
    u, _, vt = torch.linalg.svd(R.mean(0))
    return (u @ torch.diag(torch.tensor([1.0, 1.0, float(torch.det(u @ vt))], dtype=u.dtype)) @ vt).numpy()


def attach_body(scene: Any, ix: IdentityIndex, split: Any, mode: str) -> dict[str, Any]:
    """Give `scene` the body pose of its adaptation clip (`adapt.neck: tracked`), so the head turns on the neck
    and the shoulders hold still, when the head model has a neck joint and the flame table a neck split; a
    summary either way (`IdentityScene.set_body`)."""
    from emotag_core.io.tables import TableReader, column_array

    head = scene.head[0]
    if mode != "tracked":
        return {"neck": "rigid", "reason": f"adapt.neck: {mode}"}
    if not bool((head.weights[:, 0] > 0).any()):
        return {"neck": "rigid", "reason": "the head model has no neck joint"}
    import pyarrow.parquet as pq

    reader = TableReader(ix.tables["flame"], "flame")
    if "neck" not in pq.read_schema(ix.tables["flame"]).names:
        return {"neck": "rigid", "reason": "the flame table has no neck column (tracked before the neck split)"}
    rows = split.adapt_segment.rows(ix.index)
    fr = np.asarray(ix.index.column("row_flame").to_numpy())[rows]
    fl = reader.read(columns=["clip_id", "rot", "neck"])
    rot, neck = column_array(fl, "rot")[fr], column_array(fl, "neck")[fr]
    clip = np.asarray(fl.column("clip_id").to_pylist(), dtype=object)[fr]
    if not np.abs(neck).max(initial=0.0) > 0:
        return {"neck": "rigid", "reason": "the track's neck rotations are all zero"}
    first = clip == clip[0]   # the adaptation clip's body (one per clip); held-out rows of the clip share it
    scene.set_body(torch.from_numpy(body_pose(rot[first], neck[first])).float())
    return {"neck": "tracked", "body_clip": str(clip[0])}


def attach_layers(scene: Any, ix: IdentityIndex, split: Any, enabled: bool, motion: str = "static"
                  ) -> dict[str, Any]:
    """Give `scene` the background plate and the layers around the head of the adaptation clip (from the split's
    adaptation rows only) when `enabled` and the frames are fixed crops; a summary either way.

    motion `static`: one median layer of hair, neck and torso (`avatar.plate.scene_layers`); `pose`: a neck+torso
    and a hair layer, stabilised and moved with the tracked head pose (`avatar.layer_motion.fit_layers`)."""
    import logging

    import torch

    from emotag_core.avatar.layer_motion import scene_layers
    from emotag_core.errors import StageMissingError
    from emotag_core.io.tables import TableReader
    from emotag_core.train.data import file_digest

    if not enabled:
        return {"mode": "off", "reason": "adapt.layers: false (a learned background)"}
    frames = Path(ix.tables["frames"])
    mode = (TableReader(frames, "frames").meta.get("crop") or {}).get("mode", "smooth")
    if mode != "fixed":
        why = f"the frames are `ingest.crop: {mode}` crops (the background moves with the head): a learned background"
        logging.getLogger("emotag.adapt").warning("adapt@%s: no plate/torso layers: %s", ix.identity, why)
        return {"mode": "off", "reason": why}
    masks = frames.with_name("masks.parquet")
    if not masks.exists():
        raise StageMissingError(f"the person masks of `{ix.identity}` (adapt.layers: true)", masks,
                                f"dvc repro masks@{ix.identity}")
    rows = split.adapt_segment.rows(ix.index)
    pose = None
    if motion == "pose":  # the rows' tracked head pose, which the layers follow
        from emotag_core.io.tables import column_array

        fl = TableReader(ix.tables["flame"], "flame").read(columns=["rot", "trans"])
        fr = np.asarray(ix.index.column("row_flame").to_numpy())[rows]
        pose = np.concatenate([column_array(fl, k)[fr] for k in ("rot", "trans")], 1)  # [N, 6]
    plate, layers, coef, info = scene_layers(frames, masks, rows, pose=pose)
    chw = lambda a: torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3)))  # noqa: E731  [..., H, W, C] -> [..., C, H, W]
    scene.set_layers(chw(plate), chw(layers), None if coef is None else torch.from_numpy(coef))
    return {"mode": "plate+torso" if coef is None else "plate+pose-layers", **info, "masks_digest": file_digest(masks)}


def adapt_run(p: Any, ix: IdentityIndex, split: Any, prior: Path, out_dir: Path, ckpt_dir: Path,
              metrics_dir: Path | None, progress: Progress = NO_PROGRESS, log: OpenLog | None = None) -> dict[str, Any]:
    """Personalise the pretrained GRMN in `prior` (a grmn.pt) to the target `ix` on `split`'s adaptation rows
    (Sec. 3.3: AdaIN parameters + the identity's scene); `p`: Params (pretrain, adapt, ablation, flame).
    Writes the adapted model to `out_dir` (grmn.pt, scene.pt, summary.json), curves through `log` (opened with the
    resumed step; default: dvclive in `metrics_dir`)."""
    from emotag_core.config import to_dict
    from emotag_core.errors import ConfigError
    from emotag_core.flame import load_head_model
    from emotag_core.io.atomic import write_text
    from emotag_core.avatar.scene import build_scene
    from emotag_core.render.adapted import save_adapted
    from emotag_core.train.checkpoint import clear_checkpoints, load_latest, load_model
    from emotag_core.train.data import file_digest
    from emotag_core.train.loop import adapt

    c, a, identity = p.pretrain, p.adapt, ix.identity
    open_log = _open_log(log, metrics_dir, "adapt_run")
    setup_torch(c.seed, c.threads)
    if abs(float(split.fps) - float(ix.meta["fps"])) > 1e-6:
        raise ConfigError(f"adapt@{identity}: the split is at {split.fps} fps but the tables at {ix.meta['fps']}")
    dev = c.device
    grmn, extra = load_model(prior, dev)
    if extra.get("feature_dim") != ix.meta["feature_dim"] or extra.get("audio_backend") != ix.meta["audio_backend"]:
        raise ConfigError(f"adapt@{identity}: audio features are {ix.meta['audio_backend']}/{ix.meta['feature_dim']} "
                          f"but the pretrained GRMN read {extra.get('audio_backend')}/{extra.get('feature_dim')}; "
                          "re-run audio_features with the corpus's backend")
    head = load_head_model(p.flame, dev)
    check_head_model(head, [ix], f"adapt@{identity}")
    scene = build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer, device=dev)
    if grmn.spec.n_mouth == 0 and c.render:  # a motion-only prior: its mouth offsets start near zero here
        grmn.grow_mouth(scene.n_mouth)
    if grmn.spec.n_mouth and scene.n_mouth != grmn.spec.n_mouth:  # (a prior without a mouth head is fine unrendered)
        raise ConfigError(f"adapt@{identity}: the avatar has {scene.n_mouth} mouth Gaussians but the pretrained "
                          f"GRMN predicts {grmn.spec.n_mouth}; use the same pretrain.n_gaussians and flame model")
    layers = attach_layers(scene, ix, split, a.layers, a.layer_motion)
    body = attach_body(scene, ix, split, a.neck)
    loader = corpus_loader([ix], c, grmn.spec, split)
    fp = fingerprint(to_dict(a), to_dict(c), to_dict(p.ablation), {k: file_digest(v) for k, v in ix.tables.items()},
                     file_digest(prior), layers.get("masks_digest"))
    probe = load_latest(ckpt_dir, fp)
    curves = open_log(int(probe["iteration"]) if probe else 0)
    t0 = time.perf_counter()
    summary = adapt(grmn, scene if c.render else None, identity, loader, adapt_loop_config(c, a),
                    loss_switches(c, p.ablation, geo=True), ckpt_dir=ckpt_dir, fingerprint=fp, device=dev, log=curves,
                    progress=progress)
    wall = time.perf_counter() - t0
    curves.end()
    save_adapted(out_dir, grmn, scene, ix.meta, c.n_gaussians, c.seed, extra=dict(extra, adapted_to=identity))
    summary.update(wall_s=wall, train_frames=loader.n_frames(identity), device=str(dev), split=split.describe(),
                   layers={k: v for k, v in layers.items() if k != "masks_digest"}, body=body,
                   tuned="AdaIN MLPs of both streams" if p.ablation.adain else "InstanceNorm affine (gamma, beta) of both streams")
    write_text(out_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    clear_checkpoints(ckpt_dir)  # only a killed run resumes
    return summary
