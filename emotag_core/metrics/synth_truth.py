"""The synthetic-truth motion evaluation (`grmn_eval@<id>`): a GRMN on a synthetic target's frames against
the truth files its `synth@<id>` stage wrote (true jaw, expression and emotion intensity per frame).

Which frames: the target's `emotag_core.split.Split` with its last clip held out whole (`test`: the synthetic
protocol's unseen utterances), the adaptation clip after its adaptation part (`val`: compare settings here),
and `test` again for the pretrained model before adaptation (`before_adapt`). The cue inputs (AUs, identity
vector) come from the clip's own tables (the paper's self-reconstruction setting). Truth is read only here.

Both the DVC stage and the device sweep runner (bench/sweep.py) write `grmn_eval`'s dict with
`write_grmn_eval`, so their metrics files have one shape.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.metrics.motion import audio_energy, motion_scores, truth_at
from emotag_core.split import Segment, Split, last_clip

PARTS = ("test", "val", "before_adapt")


@dataclass
class TruthFiles:
    """Where a synthetic identity's truth and held-out audio are: `<truth_dir>/<clip>.npz` (+ `.json` sidecar
    with the utterances' voices) and `<audio_dir>/<clip>.wav`."""

    truth_dir: Path
    audio_dir: Path

    def truth(self, clip: str) -> Path:
        return self.truth_dir / f"{clip}.npz"

    def sidecar(self, clip: str) -> Path:
        return self.truth_dir / f"{clip}.json"

    def audio(self, clip: str) -> Path:
        return self.audio_dir / f"{clip}.wav"

    def check(self, clips: list[str]) -> None:
        """InputError naming the first missing file (a target that is not synthetic has no truth)."""
        from emotag_core.errors import InputError

        for c in clips:
            for p in (self.truth(c), self.audio(c)):
                if not p.exists():
                    raise InputError(p, "missing: grmn_eval scores only synthetic identities (truth from synth@<id>)",
                                     "list only synthetic targets under grmn_eval.targets, or re-run synth/ingest")


@dataclass
class GrmnEval:
    """`metrics`: the grmn_eval JSON (identity, split, one dict per part of PARTS, None where the part is empty);
    `preds`: per part, the per-frame series (t, jaw, track_jaw, true_jaw, g, intensity, emotion, energy) when kept."""

    metrics: dict[str, Any]
    preds: dict[str, dict[str, list[float]]] = field(default_factory=dict)


def split_for(adapt: Any, ix: Any) -> Split:
    """The synthetic protocol's split of target `ix` (an IdentityIndex) from `adapt` (AdaptConfig): its last
    clip held out whole, validation on the adaptation clip after `adapt.train_seconds`."""
    return Split.from_config(adapt, None, ix.index, float(ix.meta["fps"]), heldout_clip=last_clip(ix.index))


def predict_series(grmn: Any, ix: Any, rows: np.ndarray, device: str = "cpu", chunk: int = 256) -> dict[str, np.ndarray]:
    """GRMN on rows [T] of identity `ix` -> jaw [T] (opening), g [T], expr [T, E], track_jaw [T], track_expr [T, E],
    e [T] (the loader's score target as trained), e_aus [T] (the AU score, `pretrain.score_target: aus`)."""
    import torch

    from emotag_core.train.data import CorpusLoader

    spec = grmn.spec
    loader = CorpusLoader([ix], 64, 16, window=spec.window, with_images=False, clip_norm=spec.clip_norm)
    au_loader = CorpusLoader([ix], 64, 16, window=spec.window, with_images=False, score_target="aus")
    acc: dict[str, list[np.ndarray]] = {k: [] for k in ("jaw", "g", "expr", "track_jaw", "track_expr", "e", "e_aus")}
    grmn.eval()
    with torch.no_grad():
        for k in range(0, len(rows), chunk):
            b = loader.load(ix.identity, rows[k:k + chunk]).to(device)
            out = grmn(b.audio, b.aus, b.s)
            for name, v in (("jaw", out.jaw[:, 0]), ("g", out.g[:, 0]), ("expr", out.expr), ("track_jaw", b.jaw[:, 0]),
                            ("track_expr", b.expr), ("e", b.e)):
                acc[name].append(v.float().cpu().numpy())
            acc["e_aus"].append(au_loader.load(ix.identity, rows[k:k + chunk]).e.numpy())
    return {k: np.concatenate(v) for k, v in acc.items()}


def score_segment(grmn: Any, ix: Any, seg: Segment, files: TruthFiles, device: str = "cpu",
                  keep_preds: bool = False) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """One GRMN on the usable rows of segment `seg` of `ix` -> (scores, per-frame series or {})."""
    usable = ix.index.column("usable").to_numpy(zero_copy_only=False)
    rows = seg.rows(ix.index, usable)
    t = ix.index.column("t").to_numpy()[rows]
    r = predict_series(grmn, ix, rows, device)
    truth = truth_at(np.load(files.truth(seg.clip)), t)
    energy = audio_energy(str(files.audio(seg.clip)), t)
    sidecar = json.loads(files.sidecar(seg.clip).read_text()) if files.sidecar(seg.clip).exists() else {}
    scores = {"clip": seg.clip, "start_frame": int(seg.start), "frames": int(len(rows)),
              "voices": ", ".join(sorted({u["voice"] for u in sidecar.get("segments", [])})),
              **motion_scores(r, truth, energy)}
    preds = {}
    if keep_preds:
        series = {"t": t, "jaw": r["jaw"], "track_jaw": r["track_jaw"], "true_jaw": truth["jaw"], "g": r["g"],
                  "intensity": truth["intensity"], "emotion": truth["emotion"], "energy": energy}
        preds = {k: np.round(np.asarray(v, dtype=np.float64), 5).tolist() for k, v in series.items()}
    return scores, preds


def grmn_eval(adapted: Any, pretrained: Any | None, ix: Any, split: Split, files: TruthFiles, device: str = "cpu",
              keep_preds: bool = False) -> GrmnEval:
    """The adapted GRMN on `split`'s held-out part (`test`) and validation part (`val`), the pretrained one
    (None: skipped) on the held-out part (`before_adapt`), each against the truth in `files`."""
    from emotag_core.errors import InputError

    if split.heldout is None:
        raise InputError(None, f"{ix.identity}: nothing is held out ({split.describe()})",
                         "a synthetic target needs two clips (synthetic.<id>.clips: 2)")
    parts = {"test": (adapted, split.heldout), "val": (adapted, split.validation),
             "before_adapt": (pretrained, split.heldout)}
    files.check(sorted({s.clip for m, s in parts.values() if m is not None and s is not None}))
    out = GrmnEval({"identity": ix.identity, "split": split.describe()})
    for name, (model, seg) in parts.items():
        if model is None or seg is None:
            out.metrics[name] = None
            continue
        out.metrics[name], preds = score_segment(model, ix, seg, files, device, keep_preds)
        if keep_preds:
            out.preds[name] = preds
    return out


def write_grmn_eval(result: GrmnEval, path: Path, extra: dict[str, Any] | None = None) -> None:
    """The metrics JSON at `path` (atomic; `extra`: more top-level keys) and, with kept series, `preds.json.gz`
    beside it."""
    import gzip

    from emotag_core.io.atomic import atomic_path, write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps({**result.metrics, **(extra or {})}, indent=1, default=str))
    if result.preds:
        with atomic_path(path.with_name(path.stem + "_preds.json.gz")) as tmp, gzip.open(tmp, "wt") as f:
            json.dump(result.preds, f)
