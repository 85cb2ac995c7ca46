"""DVC stage `pretrain`: GRMN + per-identity Gaussians on the multi-identity corpus (paper Sec. 3.3).

Resumes from `data/models/.checkpoints/pretrain/` after a kill (same params -> same result);
writes `data/models/pretrain/grmn.pt` + `summary.json` and dvclive curves under
`data/metrics/pretrain/`.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from emotag_core.config import Params, to_dict
from emotag_core.errors import StageMissingError
from emotag_core.io.atomic import write_text
from emotag_core.io.tables import UPPER_AUS
from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.train.checkpoint import save_model
from emotag_core.train.data import IdentityIndex, build_identity_index
from emotag_core.train.loop import LoopConfig, LossSwitches
from stages.common import CORPUS_DIR, PRETRAIN_METRICS, PRETRAIN_MODELS, DATA, params, stage, sweep

CKPT_ROOT = DATA / "models" / ".checkpoints"


def read_corpus() -> list[IdentityIndex]:
    """The corpus identities as the `corpus` stage indexed them (tables re-checked on open)."""
    mf = CORPUS_DIR / "manifest.json"
    if not mf.exists():
        raise StageMissingError("the corpus index", mf, "dvc repro corpus")
    manifest = json.loads(mf.read_text(encoding="utf-8"))
    return [build_identity_index(ident, m["tables"]) for ident, m in manifest["identities"].items()]


def grmn_spec(p: Params, meta: dict[str, Any], n_mouth: int) -> GRMNSpec:
    c, ab = p.pretrain, p.ablation
    return GRMNSpec(audio_dim=meta["feature_dim"], n_aus=len(UPPER_AUS), identity_dim=len(meta["identity_vector"]),
                    n_expr=meta["n_expr"], n_mouth=n_mouth, window=p.audio_features.window, d_model=c.d_model,
                    d_expr=c.d_expr, n_layers=c.n_layers, n_heads=c.n_heads, hidden=c.hidden,
                    adain=ab.adain, residual=ab.residual, gate=ab.gate, audio_norm=c.audio_norm, dropout=c.dropout,
                    adain_axis=c.adain_axis, clip_norm=c.clip_norm)


def loss_switches(p: Params, geo: bool = False) -> LossSwitches:
    """The loss terms the params switch on (`ablation.*`, `pretrain.render` / `param_supervision`); `geo`: L_Geo (adapt)."""
    c = p.pretrain
    return LossSwitches.from_ablation(p.ablation, geo=geo, param_supervision=c.param_supervision, render=c.render,
                                      param_jaw_weight=c.param_jaw_weight)


def pretrain_loop_config(p: Params, **over: Any) -> LoopConfig:
    """The pretrain loop's settings from `pretrain.*` (`over`: fields to replace, e.g. checkpoint_every=0)."""
    c = p.pretrain
    return replace(LoopConfig(iters=c.iters, static_iters=c.static_iters, lr=c.lr, image_size=c.image_size,
                              checkpoint_every=c.checkpoint_every, log_every=c.log_every, weight_decay=c.weight_decay,
                              lr_schedule=c.lr_schedule, cuda_graphs=c.cuda_graphs, ema=c.ema), **over)


def adapt_loop_config(p: Params, **over: Any) -> LoopConfig:
    """The adaptation loop's settings from `adapt.*` (and `pretrain.*` sizes); `over` as above."""
    c, a = p.pretrain, p.adapt
    return replace(LoopConfig(iters=a.iters, static_iters=a.static_iters, lr=a.lr, image_size=c.image_size,
                              checkpoint_every=a.checkpoint_every, log_every=c.log_every, scene_lr=a.scene_lr,
                              cuda_graphs=c.cuda_graphs, anchor=a.anchor), **over)


def audio_augment(p: Params) -> Any:
    """The pretraining batches' audio augmentation from `pretrain.aug_*` (None when every knob is off)."""
    from emotag_core.train.audio_aug import AudioAugment

    c = p.pretrain
    aug = AudioAugment(gain_std=c.aug_gain_std, shift_bins=c.aug_shift_bins, n_bands=c.aug_mel_bands,
                       freq_masks=c.aug_freq_masks, freq_mask_width=c.aug_freq_mask_width,
                       time_masks=c.aug_time_masks, time_mask_width=c.aug_time_mask_width)
    return aug if aug.active else None


def init_audio_norm(grmn: GRMN, indices: list[IdentityIndex]) -> None:
    """With `pretrain.audio_norm`: GRMN's input statistics from every corpus identity's audio features."""
    if grmn.spec.audio_norm and not grmn.spec.clip_norm:  # clip-normalised inputs are standardised already
        from emotag_core.train.audio_stats import audio_feature_stats

        grmn.set_audio_stats(*audio_feature_stats([ix.tables["audio_features"] for ix in indices]))


def fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


class LiveLog:
    """dvclive metrics that survive a resume: rows past the resumed step are dropped first."""

    def __init__(self, folder: Path, start: int) -> None:
        from dvclive import Live

        from emotag_core.io.atomic import write_text

        folder.mkdir(parents=True, exist_ok=True)
        plots = folder / "plots" / "metrics"
        if start == 0:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
        elif plots.exists():
            for tsv in plots.rglob("*.tsv"):
                lines = tsv.read_text().splitlines()
                if not lines:
                    continue
                col = lines[0].split("\t").index("step")  # dvclive's column order varies by version
                keep = [lines[0]] + [ln for ln in lines[1:] if int(ln.split("\t")[col]) <= start]
                write_text(tsv, "\n".join(keep) + "\n")
        self.live = Live(str(folder), resume=start > 0, save_dvc_exp=False, dvcyaml=None)

    def __call__(self, step: int, terms: dict[str, float]) -> None:
        self.live.step = step
        for k, v in terms.items():
            self.live.log_metric(f"train/{k}", v)
        self.live.next_step()

    def end(self) -> None:
        self.live.end()


def setup_torch(seed: int, threads: int = 1) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(max(1, threads))


@stage("pretrain")
def main() -> None:
    from emotag_core.flame import load_head_model
    from emotag_core.train.data import CorpusLoader
    from emotag_core.train.loop import pretrain
    from emotag_core.avatar.scene import build_scene

    p = params()
    c = p.pretrain
    sweep(PRETRAIN_MODELS, CKPT_ROOT)
    setup_torch(c.seed, c.threads)
    indices = read_corpus()
    dev = c.device
    sw = loss_switches(p)
    head = load_head_model(p.flame, dev)
    scenes = {ix.identity: build_scene(head, ix.meta, c.n_gaussians, backend=c.rasterizer, device=dev) for ix in indices}
    n_mouth = next(iter(scenes.values())).n_mouth
    if not c.render:  # motion-only: the scenes only tell the mouth-Gaussian count; nothing is rendered
        scenes = {}
    spec = grmn_spec(p, indices[0].meta, n_mouth)
    grmn = GRMN(spec)
    init_audio_norm(grmn, indices)
    grmn = grmn.to(dev)
    loader = CorpusLoader(indices, c.batch_size, c.image_size, window=spec.window, seed=c.seed,
                          cache_row_groups=c.cache_row_groups, with_images=c.render, clip_norm=spec.clip_norm,
                          audio_aug=audio_augment(p), score_target=c.score_target)
    digests = json.loads((CORPUS_DIR / "manifest.json").read_text())
    fp = fingerprint(to_dict(c), to_dict(p.ablation), to_dict(p.flame), {k: v["digests"] for k, v in digests["identities"].items()})
    ckpt = CKPT_ROOT / "pretrain"
    from emotag_core.train.checkpoint import clear_checkpoints, load_latest

    probe = load_latest(ckpt, fp)
    start = int(probe["iteration"]) if probe else 0
    log = LiveLog(PRETRAIN_METRICS, start)
    cfg = pretrain_loop_config(p)
    t0 = time.perf_counter()
    summary = pretrain(grmn, scenes, loader, cfg, sw, ckpt_dir=ckpt, fingerprint=fp, device=dev, log=log)
    wall = time.perf_counter() - t0
    log.end()
    PRETRAIN_MODELS.mkdir(parents=True, exist_ok=True)
    save_model(PRETRAIN_MODELS / "grmn.pt", grmn, extra={
        "audio_backend": indices[0].meta["audio_backend"], "feature_dim": spec.audio_dim,
        "flame_model": indices[0].meta["flame_model"], "ablation": to_dict(p.ablation), "corpus": [ix.identity for ix in indices]})
    done = summary["iterations"] - summary["resumed_from"]
    summary.update(wall_s=wall, it_per_s=done / max(wall, 1e-9), device=str(dev), loader_row_group_reads=loader.cache.reads)
    write_text(PRETRAIN_MODELS / "summary.json", json.dumps(summary, indent=1, default=str))
    clear_checkpoints(ckpt)  # a finished run leaves none: a later one must train, not "resume" at the end


if __name__ == "__main__":
    sys.exit(main())
