"""DVC stage `adapt@<id>`: personalise the pretrained GRMN to a target identity (paper Sec. 3.3).

GRMN is frozen except its AdaIN modulation parameters (with ablation `adain: false`, the identity-free
InstanceNorm affine of both streams); the identity's Gaussians and background are fitted on the
first `adapt.train_seconds` of its video with L_Render + L_KL + L_Score + L_Geo.
Writes `data/models/<id>/grmn.pt`, `scene.pt`, `summary.json`; curves under `data/metrics/<id>/`.
"""
from __future__ import annotations

import json
import time

from emotag_core.config import to_dict
from emotag_core.io.atomic import write_text
from stages.common import PRETRAIN_MODELS, Paths, main_for, params, stage, sweep
from stages.corpus import table_paths
from stages.pretrain import CKPT_ROOT, LiveLog, adapt_loop_config, fingerprint, loss_switches, setup_torch


@stage("adapt")
def main(identity: str) -> None:
    from emotag_core.errors import ConfigError, StageMissingError
    from emotag_core.flame import load_head_model
    from emotag_core.train.adapted import save_adapted
    from emotag_core.train.checkpoint import clear_checkpoints, load_latest, load_model
    from emotag_core.train.data import CorpusLoader, build_identity_index, file_digest
    from emotag_core.train.loop import adapt
    from emotag_core.avatar.scene import build_scene

    p = params()
    c, a = p.pretrain, p.adapt
    paths = Paths(identity)
    sweep(paths.models, paths.metrics_dir)
    if not (PRETRAIN_MODELS / "grmn.pt").exists():
        raise StageMissingError("the pretrained GRMN", PRETRAIN_MODELS / "grmn.pt", "dvc repro pretrain")
    setup_torch(c.seed, c.threads)
    tables = table_paths(identity)
    if "geometry" not in tables and c.render:
        raise StageMissingError(f"the geometry table of `{identity}`", paths.table("geometry"), f"dvc repro geometry@{identity}")
    ix = build_identity_index(identity, tables)
    dev = c.device
    grmn, extra = load_model(PRETRAIN_MODELS / "grmn.pt", dev)
    if extra.get("feature_dim") != ix.meta["feature_dim"] or extra.get("audio_backend") != ix.meta["audio_backend"]:
        raise ConfigError(f"adapt@{identity}: audio features are {ix.meta['audio_backend']}/{ix.meta['feature_dim']} "
                          f"but the pretrained GRMN read {extra.get('audio_backend')}/{extra.get('feature_dim')}; "
                          "re-run audio_features with the corpus's backend")
    head = load_head_model(p.flame, dev)
    scene = build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer, device=dev)
    if scene.n_mouth != grmn.spec.n_mouth:
        raise ConfigError(f"adapt@{identity}: the avatar has {scene.n_mouth} mouth Gaussians but the pretrained "
                          f"GRMN predicts {grmn.spec.n_mouth}; use the same pretrain.n_gaussians and flame model")
    loader = CorpusLoader([ix], c.batch_size, c.image_size, window=grmn.spec.window, seed=c.seed,
                          cache_row_groups=c.cache_row_groups, with_geometry=c.render, max_seconds=a.train_seconds,
                          with_images=c.render, clip_norm=grmn.spec.clip_norm, score_target=c.score_target)
    fp = fingerprint(to_dict(a), to_dict(c), to_dict(p.ablation), {k: file_digest(v) for k, v in tables.items()},
                     file_digest(PRETRAIN_MODELS / "grmn.pt"))
    ckpt = CKPT_ROOT / identity
    probe = load_latest(ckpt, fp)
    log = LiveLog(paths.metrics_dir, int(probe["iteration"]) if probe else 0)
    sw = loss_switches(p, geo=True)
    cfg = adapt_loop_config(p)
    t0 = time.perf_counter()
    summary = adapt(grmn, scene if c.render else None, identity, loader, cfg, sw, ckpt_dir=ckpt, fingerprint=fp, device=dev, log=log)
    wall = time.perf_counter() - t0
    log.end()
    save_adapted(paths.models, grmn, scene, ix.meta, c.n_gaussians, c.seed, extra=dict(extra, adapted_to=identity))
    summary.update(wall_s=wall, train_frames=loader.n_frames(identity), device=str(dev),
                   tuned="AdaIN MLPs of both streams" if p.ablation.adain else "InstanceNorm affine (gamma, beta) of both streams")
    write_text(paths.models / "summary.json", json.dumps(summary, indent=1, default=str))
    clear_checkpoints(ckpt)  # only a killed run resumes


if __name__ == "__main__":
    main_for(main)
