"""The evaluation protocol of a target identity's renders: the paper's metrics (Sec. 4).

- self-reconstruction (render `heldout` vs the real held-out frames of `Split.heldout`): PSNR, SSIM,
  LPIPS, LMD (mouth landmarks by the landmarks stage's detector on rendered vs real frames),
  AUE-L/U, lip-sync;
- OOD audio (every other render: cross-language, cross-identity, user files): lip-sync;
- emotion intensity (where truth labels exist: synthetic `truth/<clip>.npz`): the metrics per
  intensity level and the gate's correlation with the true intensity.
Sync-C/Sync-E come from SyncNet v2 (emotag_core.metrics.syncnet) when `evaluate.syncnet_weights`
names its checkpoint: headline on the held-out render (else the first render), per render under
`ood_audio`, and on the real held-out frames as a reference; null with reason without weights.
`av_offset_frames` / `av_confidence` are the documented offline substitute (emotag_core.metrics.sync),
reported either way.

`evaluate_run` writes the metrics JSON, `frames.csv` and `gate.json` (per-frame curves) and the HTML report.
"""
from __future__ import annotations

import csv
import io
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import EmotagError, WeightsMissingError
from emotag_core.io.atomic import write_text
from emotag_core.io.tables import OPENFACE_AUS, TableReader, column_array
from emotag_core.metrics.image import psnr, ssim, ssim_and_masked
from emotag_core.metrics.motion import aue, lmd, mouth_opening
from emotag_core.metrics.summary import KEYS, REPORT_KEYS, MetricsRecord
from emotag_core.metrics.sync import av_offset, frame_energy
from emotag_core.progress import NO_PROGRESS, Part, Progress
from emotag_core.render.jobs import TargetFiles, clip_rows
from emotag_core.split import Split

SAMPLE_RATE = 16000
BATCH = 16


@dataclass(frozen=True)
class EvaluationPaths:
    """What `evaluate_run` reads besides the tables, and where it writes."""

    renders: Path
    """render@<id>'s folder (render.json + mp4s)."""
    source: Path
    """The identity's raw source folder (dubbed-audio metadata `*.yaml`, synthetic `truth/`)."""
    models: Path
    """adapt@<id>'s folder (`summary.json`: training time)."""
    metrics_json: Path
    metrics_dir: Path
    """Per-frame curves (`frames.csv`, `gate.json`); also adapt's training curves (never replaced as a folder)."""
    report: Path


@dataclass
class Teachers:
    """The configs of the models evaluation runs on rendered frames."""

    landmarks: Any
    """LandmarksConfig: the landmarks stage's detector."""
    aus: Any
    """AusConfig: AUs from MediaPipe blendshapes (aus.backend mediapipe) for AUE-L/U."""
    fps: float


def dubbed(source: Path) -> str | None:
    """The `dubbed_note` if the identity's source metadata says its speech is dubbed."""
    import yaml

    for f in sorted(source.glob("*.yaml")):
        try:
            d = yaml.safe_load(f.read_text(encoding="utf-8")) or {}
        except Exception:  # noqa: BLE001 - not our metadata file
            continue
        if isinstance(d, dict) and d.get("dubbed_audio"):
            return str(d.get("dubbed_note", "the speech is dubbed under the video"))
    return None


def landmark_teacher(cfg: Any, fps: float) -> tuple[Any, str | None]:
    """The landmarks stage's detector (LandmarksConfig `cfg`), or (None, reason)."""
    from emotag_core.teachers import landmarks

    try:
        return landmarks.load(cfg.backend, cfg, fps=fps), None
    except WeightsMissingError as exc:
        return None, f"landmark detector unavailable: {exc}"


def detect(teacher: Any, frames: list[np.ndarray], clip: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Landmarks [T, 478, 3], blendshapes [T, 52], face_found [T] of rendered frames."""
    lms, bss, ffs = [], [], []
    for s in range(0, len(frames), BATCH):
        imgs = np.stack(frames[s:s + BATCH])
        r = teacher.predict(imgs, [clip] * len(imgs), np.arange(s, s + len(imgs)))
        lms.append(r.landmarks), bss.append(r.blendshapes), ffs.append(r.face_found)
    return np.concatenate(lms), np.concatenate(bss), np.concatenate(ffs)


def read_mp4(path: Path, limit: int | None = None) -> list[np.ndarray]:
    """Decoded frames [H, W, 3] of an mp4 (at most `limit`)."""
    from emotag_core.render.video import iter_video_frames

    out = []
    for f in iter_video_frames(path):
        out.append(f)
        if limit is not None and len(out) >= limit:
            break
    return out


def audio_of(path: Path) -> np.ndarray:
    """The whole audio of a file as float32 [S] at 16 kHz mono."""
    from emotag_core.render.audio import iter_samples

    return np.concatenate(list(iter_samples(path, SAMPLE_RATE)) or [np.zeros(0, np.float32)])


def sync_of(mouth: np.ndarray, wave: np.ndarray, fps: float) -> dict[str, Any]:
    """The offline audio-visual offset of a mouth-opening series [T] against audio [S]."""
    try:
        r = av_offset(mouth, frame_energy(wave, SAMPLE_RATE, fps, len(mouth)))
    except ValueError as exc:
        return {"av_offset_frames": None, "av_confidence": None, "reason": str(exc)}
    return {"av_offset_frames": r.offset_frames, "av_confidence": r.confidence, "av_peak_corr": r.correlation}


def syncnet_scorer(cfg: Any) -> tuple[Any, str | None]:
    """SyncNet v2 from EvaluateConfig `cfg`.syncnet_weights, or (None, reason). A present but wrong file raises."""
    sn = cfg.syncnet_weights
    if not sn:
        return None, "no SyncNet weights (evaluate.syncnet_weights is null; no SyncNet weights ship offline)"
    from emotag_core.metrics.syncnet import SyncNetScorer

    try:
        return SyncNetScorer(sn, device=cfg.device, max_offset=cfg.syncnet_max_offset), None
    except WeightsMissingError as exc:
        return None, f"SyncNet weights unavailable: {exc}"


def syncnet_of(scorer: Any, frames: list[np.ndarray], wave: np.ndarray, landmarks: np.ndarray | None = None,
               found: np.ndarray | None = None) -> dict[str, Any]:
    """Sync-C / Sync-E of frames [T, H, W, 3] with audio wave [S] (16 kHz); face crops from landmarks [T, 478, 3]."""
    from emotag_core.metrics.syncnet import crop_boxes

    boxes, crop = None, "whole frame (no landmarks)"
    if landmarks is not None and found is not None and np.any(found[:len(frames)]):
        boxes, crop = crop_boxes(landmarks[:len(frames)], found[:len(frames)]), "face box from landmarks"
    try:
        r = scorer(frames, wave, boxes)
    except ValueError as exc:
        return {"sync_c": None, "sync_e": None, "reason": str(exc)}
    return {"sync_c": r.sync_c, "sync_e": r.sync_e, "syncnet_offset_frames": r.offset_frames,
            "syncnet_windows": r.windows, "syncnet_crop": crop}


def train_seconds(models: Path, metrics_dir: Path, identity: str) -> tuple[float | None, str]:
    """adapt@<id>'s recorded training time, or (None, reason)."""
    for f in (models / "summary.json", metrics_dir / "metrics.json"):
        if f.exists():
            d = json.loads(f.read_text(encoding="utf-8"))
            for k in ("train_s", "wall_s", "seconds"):
                if isinstance(d.get(k), (int, float)):
                    return float(d[k]), ""
    return None, f"adapt@{identity} recorded no training time in {models}"


@dataclass
class _State:
    """What the parts of one evaluation share."""

    M: MetricsRecord = field(default_factory=MetricsRecord)
    curves: dict[str, np.ndarray] = field(default_factory=dict)
    syncnet: dict[str, dict[str, Any]] = field(default_factory=dict)  # render name -> Sync-C/E
    rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    frozen: np.ndarray | None = None  # the frozen-frame baseline's frame [H, W, 3]
    pred: list[np.ndarray] = field(default_factory=list)  # the decoded held-out render (the report's strip)


def _self_reconstruction(st: _State, files: TargetFiles, split: Split, store: Any, renders: dict[str, Any],
                         out: EvaluationPaths, evaluate: Any, teachers: Teachers, scorer: Any) -> None:
    """Metrics of the `heldout` render against the real held-out frames (module doc)."""
    M, curves, fps, clip, h0 = st.M, st.curves, teachers.fps, split.adapt_clip, split.heldout_start
    keys = store.keys
    rows = split.heldout_rows(keys)
    heldout_mp4 = out.renders / "heldout.mp4"
    if not (heldout_mp4.exists() and len(rows)):
        for k in ("psnr", "ssim", "lpips", "lmd", "aue_l", "aue_u"):
            M.missing(k, "no held-out render (render.audio replaces the default held-out audio, or the clip ends "
                         "inside the adaptation part, adapt.train_seconds)")
        st.rows = rows
        return
    limit = min(len(rows), split.max_eval_frames or len(rows))
    pred = read_mp4(heldout_mp4, limit)
    T = min(len(pred), limit)
    pred, rows = pred[:T], rows[:T]
    st.rows = rows
    gt = [store.get(int(r)) for r in rows]
    frames_gt = keys.column("frame").to_numpy()[rows]
    curves["psnr"] = np.concatenate([psnr(np.stack(pred[s:s + BATCH]), np.stack(gt[s:s + BATCH]))
                                     for s in range(0, T, BATCH)])
    M.mean("psnr", curves["psnr"], "no held-out frames")  # SSIM: with the head-mask scores, one map per frame
    st.pred = pred
    st.frozen = _frozen_and_head(st, files, split, store, pred, gt, rows, out.renders)
    try:
        from emotag_core.metrics.lpips_metric import Lpips

        lp = Lpips(evaluate.lpips_weights, device=evaluate.device)
        curves["lpips"] = lp(np.stack(pred), np.stack(gt))
        M.mean("lpips", curves["lpips"], "no held-out frames")
    except EmotagError as exc:
        M.missing("lpips", f"LPIPS AlexNet trunk unavailable: {exc}")
    # motion: the landmarks stage's detector on rendered frames vs the landmarks table (real)
    teacher, why = landmark_teacher(teachers.landmarks, fps)
    lm_p = ff_p = lm_g = ff_g = None  # landmarks of rendered / real frames, when the detector runs
    if teacher is None:
        for k in ("lmd", "aue_l", "aue_u"):
            M.missing(k, why or "")
    else:
        lm_p, bs_p, ff_p = detect(teacher, pred, f"render:{clip}")
        teacher.close()  # closed explicitly: MediaPipe's __del__ at interpreter exit prints tracebacks
        f_lm, t_lm = clip_rows(files.table("landmarks"), "landmarks", clip, ["face_found", "landmarks", "blendshapes"])
        idx = np.searchsorted(f_lm, frames_gt)
        lm_all = column_array(t_lm, "landmarks").reshape(-1, 478, 3)
        ff_all = column_array(t_lm, "face_found").astype(bool)
        lm_g, ff_g = lm_all[idx], ff_all[idx]
        curves["lmd"] = lmd(lm_p, lm_g, valid=ff_p & ff_g)
        M.mean("lmd", curves["lmd"], "no frame with a face found in both rendered and real")
        curves["mouth_open_render"] = mouth_opening(lm_p)
        curves["mouth_open_real"] = mouth_opening(lm_g)
        if teachers.aus.backend == "mediapipe":
            from emotag_core.teachers.aus import MediapipeAus

            au = MediapipeAus(teachers.aus)
            names = TableReader(files.table("landmarks"), "landmarks").meta["blendshape_names"]
            raw_all = au.raw(column_array(t_lm, "blendshapes"), names, lm_all)
            rest = au.baseline(raw_all, ff_all)  # the real person's rest face calibrates both sides
            a_g = au.calibrate(raw_all[idx], rest, ff_g)
            a_p = au.calibrate(au.raw(bs_p, names, lm_p), rest, ff_p)
            e = aue(a_p, a_g, list(OPENFACE_AUS), au.available)
            valid = ff_p & ff_g
            curves["aue_l"] = np.where(valid, e["aue_l"], np.nan)
            curves["aue_u"] = np.where(valid, e["aue_u"], np.nan)
            M.mean("aue_l", curves["aue_l"], "no frame with a face found in both")
            M.mean("aue_u", curves["aue_u"], "no frame with a face found in both")
            M.extra["aue_sets"] = {"lower": e["aus_l"], "upper": e["aus_u"]}
        else:
            for k in ("aue_l", "aue_u"):
                M.missing(k, f"AUs on rendered frames need the mediapipe AU backend (aus.backend is "
                             f"`{teachers.aus.backend}`)")
        wave = audio_of(files.audio(clip))[int(round(h0 * SAMPLE_RATE / fps)):]
        _mouth(st, wave, ff_p & ff_g, fps)
        M.extra["self_reconstruction"] = {"frames": T, "clip": clip, "from_frame": int(h0),
                                          "sync_render": sync_of(curves["mouth_open_render"], wave, fps),
                                          "sync_real": sync_of(curves["mouth_open_real"], wave, fps)}
        s = M.extra["self_reconstruction"]["sync_render"]
        M.extra["av_offset_frames"], M.extra["av_confidence"] = s["av_offset_frames"], s["av_confidence"]
    if scorer is not None:  # SyncNet on render and real frames; face crops from the landmarks when detected
        wave_h = audio_of(files.audio(clip))[int(round(h0 * SAMPLE_RATE / fps)):]
        st.syncnet["heldout"] = syncnet_of(scorer, pred, wave_h, lm_p, ff_p)
        sr = M.extra.setdefault("self_reconstruction", {"frames": T, "clip": clip, "from_frame": int(h0)})
        sr["syncnet_render"] = st.syncnet["heldout"]
        sr["syncnet_real"] = syncnet_of(scorer, gt, wave_h, lm_g, ff_g)
    # emotion-intensity setting (Table 2) where truth labels exist
    truth = out.source / "truth" / f"{clip}.npz"
    g = np.asarray(renders["renders"].get("heldout", {}).get("g", []), float)[:T]
    if truth.exists():
        tz = np.load(truth)
        lev = np.asarray(tz["intensity"])[np.clip(frames_gt, 0, len(tz["intensity"]) - 1)]
        per = {}
        for L in sorted(set(lev.tolist())):
            m = lev == L
            per[f"level_{L}"] = {k: float(np.nanmean(curves[k][m])) for k in ("psnr", "ssim", "lmd", "aue_l", "aue_u")
                                 if k in curves and np.isfinite(curves[k][m]).any()} | {"frames": int(m.sum())}
        corr = float(np.corrcoef(g, tz["emotion_strength"][frames_gt][:len(g)])[0, 1]) \
            if len(g) > 2 and np.std(g) > 0 else None
        M.extra["emotion_intensity"] = {"per_level": per, "gate_vs_true_strength_corr": corr}
    else:
        M.extra["emotion_intensity"] = {"reason": f"no intensity labels for `{files.identity}` ({truth} absent)"}


HEAD_LABELS = (1,)  # emotag_core.teachers.segmentation.HEAD: the tracked head's silhouette within the person


def _frozen_and_head(st: _State, files: TargetFiles, split: Split, store: Any, pred: list[np.ndarray],
                     gt: list[np.ndarray], rows: np.ndarray, renders_dir: Path) -> np.ndarray | None:
    """Scores beside the render's, on the same frames and crops:
    - the frozen-frame baseline (the last adaptation frame, repeated): `psnr_frozen`, `ssim_frozen`;
    - the oracle render (`oracle.mp4`: tracked expression/jaw/pose, render.jobs.render_oracle): `psnr_oracle`, ...;
    - PSNR/SSIM over the real frames' head mask (`masks` table label `head`) for all three: `psnr_head`,
      `psnr_head_frozen`, `psnr_head_oracle` (and ssim_*).
    Returns the frozen frame [H, W, 3] (None when there is no adaptation frame)."""
    M = st.M
    adapt_rows = split.adapt_segment.rows(store.keys)
    frozen = store.get(int(adapt_rows[-1])) if len(adapt_rows) else None
    others: dict[str, list[np.ndarray]] = {}
    if frozen is None:
        for k in ("psnr_frozen", "ssim_frozen"):
            M.missing(k, "no adaptation frame to freeze")
    else:
        others["_frozen"] = [frozen] * len(gt)
    oracle_mp4 = renders_dir / "oracle.mp4"
    if oracle_mp4.exists():
        o = read_mp4(oracle_mp4, len(gt))
        if len(o) == len(gt):
            others["_oracle"] = o
    if "_oracle" not in others:
        for k in ("psnr_oracle", "ssim_oracle"):
            M.missing(k, f"no oracle render of every held-out frame ({oracle_mp4})")
    masks_path = files.table("masks")
    masks = None
    if Path(masks_path).exists():
        from emotag_core.avatar.plate import MaskRows

        masks = MaskRows(masks_path, store.keys)
        M.extra["head_mask"] = "masks table label `head` of the real frames (the tracked head's silhouette in the person)"
    series = {"": pred, **others}
    for suffix, x in series.items():
        if suffix:
            st.curves[f"psnr{suffix}"] = np.concatenate([psnr(np.stack(x[s0:s0 + BATCH]), np.stack(gt[s0:s0 + BATCH]))
                                                         for s0 in range(0, len(gt), BATCH)])
            M.mean(f"psnr{suffix}", st.curves[f"psnr{suffix}"], "no held-out frames")
        for k in (f"ssim{suffix}", f"psnr_head{suffix}", f"ssim_head{suffix}"):
            st.curves[k] = np.full(len(gt), np.nan)
    for s0 in range(0, len(gt), BATCH):  # one SSIM map per frame and series gives the whole-crop and head scores
        g = np.stack(gt[s0:s0 + BATCH])
        m = None if masks is None else np.stack([np.isin(masks.get(int(r)), HEAD_LABELS) for r in rows[s0:s0 + BATCH]])
        sl = slice(s0, s0 + len(g))
        for suffix, x in series.items():
            xs = np.stack(x[s0:s0 + BATCH])
            if m is None:
                st.curves[f"ssim{suffix}"][sl] = ssim(xs, g)
                continue
            whole, head = ssim_and_masked(xs, g, m)
            st.curves[f"ssim{suffix}"][sl] = whole
            st.curves[f"ssim_head{suffix}"][sl] = head  # NaN where the frame has no head pixel
            st.curves[f"psnr_head{suffix}"][sl] = psnr(xs, g, mask=m)
    for suffix in series:
        M.mean(f"ssim{suffix}", st.curves[f"ssim{suffix}"], "no held-out frames")
        for k in (f"psnr_head{suffix}", f"ssim_head{suffix}"):
            if masks is None:
                M.missing(k, f"no person masks ({masks_path} absent: run masks@{files.identity})")
            else:
                M.mean(k, st.curves[k], "no held-out frame with a head in its mask")
    return frozen


def _mouth(st: _State, wave: np.ndarray, valid: np.ndarray, fps: float) -> None:
    """Does the rendered mouth move with the real one? `mouth_corr` (Pearson r of the rendered and real
    inner-lip openings over the held-out frames both have a face in), `mouth_std_ratio` (rendered spread /
    real spread), beside the baseline 'opening = audio energy' (`mouth_corr_energy`)."""
    M, c = st.M, st.curves
    r, g = c["mouth_open_render"], c["mouth_open_real"]
    e = frame_energy(wave, SAMPLE_RATE, fps, len(r))
    ok = valid & np.isfinite(r) & np.isfinite(g)
    if ok.sum() < 3 or np.std(g[ok]) == 0:
        for k in ("mouth_corr", "mouth_std_ratio", "mouth_corr_energy"):
            M.missing(k, "fewer than 3 held-out frames with a face in both, or a still real mouth")
        return
    M.set("mouth_std_ratio", float(np.std(r[ok]) / np.std(g[ok])))
    M.set("mouth_corr", float(np.corrcoef(r[ok], g[ok])[0, 1]) if np.std(r[ok]) > 0 else None,
          "the rendered mouth does not move")
    M.set("mouth_corr_energy", float(np.corrcoef(e[ok], g[ok])[0, 1]) if np.std(e[ok]) > 0 else None, "silent audio")


def _ood_audio(st: _State, renders: dict[str, Any], out: EvaluationPaths, evaluate: Any, teachers: Teachers,
               scorer: Any, progress: Progress) -> None:
    """Lip-sync of every render but the held-out one; progress(renders scored, their count, render=name)."""
    teacher, why = landmark_teacher(teachers.landmarks, teachers.fps)
    ood: dict[str, Any] = {}
    others = [(name, r) for name, r in renders["renders"].items() if name != "heldout"]
    for k, (name, r) in enumerate(others):
        progress(k, len(others), render=name)
        mp4 = out.renders / f"{name}.mp4"
        if teacher is None and scorer is None:
            ood[name] = {"kind": r["kind"], "reason": why}
            continue
        frames = read_mp4(mp4, evaluate.max_frames)
        wave = audio_of(mp4)
        lm_o = ff_o = None
        if teacher is None:
            ood[name] = {"kind": r["kind"], "note": r["note"], "reason": why}
        else:
            lm_o, _, ff_o = detect(teacher, frames, f"render:{name}")
            ood[name] = {"kind": r["kind"], "note": r["note"], "face_found": float(ff_o.mean()) if len(ff_o) else 0.0,
                         **sync_of(mouth_opening(lm_o), wave, teachers.fps)}
        if scorer is not None:
            st.syncnet[name] = syncnet_of(scorer, frames, wave, lm_o, ff_o)
            ood[name]["syncnet"] = st.syncnet[name]
    if teacher is not None:
        teacher.close()
    st.M.extra["ood_audio"] = ood


def _headline(st: _State, renders: dict[str, Any], out: EvaluationPaths, identity: str, scorer: Any,
              sync_reason: str | None, lip_flag: str | None) -> dict[str, Any]:
    """SyncNet headline, efficiency, the dubbed-audio flag -> the metrics dict."""
    M, syncnet = st.M, st.syncnet
    if scorer is None:
        M.missing("sync_c", sync_reason or "")
        M.missing("sync_e", sync_reason or "")
    else:
        src = next((n for n in ("heldout", *syncnet) if syncnet.get(n, {}).get("sync_c") is not None), None)
        if src is None:
            why_s = "; ".join(f"{n}: {v.get('reason')}" for n, v in syncnet.items()) or "no render to score"
            M.missing("sync_c", f"SyncNet scored no render ({why_s})")
            M.missing("sync_e", f"SyncNet scored no render ({why_s})")
        else:
            M.set("sync_c", syncnet[src]["sync_c"])
            M.set("sync_e", syncnet[src]["sync_e"])
            M.extra["sync_source"] = src
    h = renders["renders"].get("heldout") or next(iter(renders["renders"].values()), None)
    if h and h.get("fps"):
        M.set("fps", h["fps"])
        M.extra["fps_device"] = renders.get("device")
    else:
        M.missing("fps", "no render timing recorded")
    ts, why_t = train_seconds(out.models, out.metrics_dir, identity)
    M.set("train_s", ts, why_t or None)
    if lip_flag:
        for k in ("lmd", "sync_c", "sync_e", "av_offset_frames", "av_confidence", "mouth_corr", "mouth_corr_energy"):
            M.flag(k, lip_flag)
    return M.to_dict()


def _write(st: _State, metrics: dict[str, Any], split: Split, store: Any, renders: dict[str, Any],
           out: EvaluationPaths, evaluate: Any, identity: str, notes: list[str]) -> None:
    """frames.csv, gate.json, the metrics JSON and the HTML report."""
    from emotag_core.report import curves_png, emotion_png, image_png, side_by_side, strip_image, write_report

    curves, fps, rows = st.curves, split.fps, st.rows
    h0 = split.heldout_start
    n = max((len(v) for v in curves.values()), default=0)
    cols = [k for k in ("psnr", "ssim", "psnr_frozen", "ssim_frozen", "psnr_oracle", "ssim_oracle", "psnr_head",
                        "ssim_head", "psnr_head_frozen", "ssim_head_frozen", "psnr_head_oracle", "ssim_head_oracle", "lpips", "lmd", "aue_l", "aue_u", "mouth_open_render", "mouth_open_real")
            if k in curves]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", "t", *cols])
    for i in range(n):
        w.writerow([h0 + i, round((h0 + i) / fps, 3),
                    *[("" if not np.isfinite(curves[k][i]) else f"{curves[k][i]:.6g}") for k in cols]])
    write_text(out.metrics_dir / "frames.csv", buf.getvalue())
    gate_rows = [{"render": name, "t": round(i / fps, 3), "g": g_}
                 for name, r in renders["renders"].items() for i, g_ in enumerate(r.get("g", []))]
    write_text(out.metrics_dir / "gate.json", json.dumps(gate_rows))
    write_text(out.metrics_json, json.dumps(metrics, indent=1, allow_nan=False))

    figures = []
    if len(rows):
        picks = np.unique(np.linspace(0, len(rows) - 1, 4).round().astype(int))
        pred = st.pred
        if len(pred) > picks[-1]:
            strip = strip_image([store.get(int(rows[i])) for i in picks], [pred[i] for i in picks], st.frozen,
                                side=evaluate.report_side, labels=[f"t={(h0 + i) / fps:.2f}s" for i in picks])
            figures.append(("Held-out frames: ground truth | render | error | frozen frame (the baseline: the last "
                            "adaptation frame)", image_png(strip)))
    if curves:
        figures.append(("Per-frame metrics on the held-out frames", curves_png(curves, fps, "self-reconstruction")))
    for name, r in renders["renders"].items():
        figures.append((f"Gate g and emotion distribution over time: {name}",
                        emotion_png(r.get("g", []), r.get("emotion", []), renders["emotion_labels"], fps, name,
                                    r.get("g_pred"))))
    heldout_mp4 = out.renders / "heldout.mp4"
    with tempfile.TemporaryDirectory() as d:
        sbs = None
        if heldout_mp4.exists() and len(rows):
            sbs = Path(d) / "sbs.mp4"
            from emotag_core.render.audio import frame_blocks, iter_samples

            side_by_side(read_mp4(heldout_mp4, len(rows)), (store.get(int(r)) for r in rows), sbs,
                         side=evaluate.report_side, fps=fps,
                         audio=frame_blocks(iter_samples(heldout_mp4, SAMPLE_RATE), SAMPLE_RATE, fps))
        write_report(out.report, identity, metrics, sbs, figures, notes=notes, keys=KEYS + REPORT_KEYS)


def evaluate_run(files: TargetFiles, split: Split, out: EvaluationPaths, evaluate: Any,
                 teachers: Teachers, progress: Progress = NO_PROGRESS) -> dict[str, Any]:
    """Evaluate a target identity's renders (module doc) -> the metrics dict, also written to `out`.

    files: the identity's tables (frames, landmarks) and audio; split: its adaptation / held-out split
    (the same one its renders used); evaluate: the `EvaluateConfig`; teachers: detector configs + fps.
    progress(steps done, steps, step=...): the held-out render, each other render, the report.
    """
    from emotag_core.io.frames import FrameStore

    renders = json.loads((out.renders / "render.json").read_text(encoding="utf-8"))
    st = _State()
    notes = [f"renders: {', '.join(renders['renders'])}"]
    dub = dubbed(out.source)
    lip_flag = "dubbed_audio" if dub else None
    if dub:
        notes.append(f"dubbed_audio: {dub}")
    scorer, sync_reason = syncnet_scorer(evaluate)
    store = FrameStore(files.table("frames"))
    total = sum(name != "heldout" for name in renders["renders"]) + 2
    progress(0, total, step="heldout")
    _self_reconstruction(st, files, split, store, renders, out, evaluate, teachers, scorer)
    _ood_audio(st, renders, out, evaluate, teachers, scorer, Part(progress, 1, total, step="audio"))
    metrics = _headline(st, renders, out, files.identity, scorer, sync_reason, lip_flag)
    progress(total - 1, total, step="report")
    _write(st, metrics, split, store, renders, out, evaluate, files.identity, notes)
    progress(total, total, step="report")
    return metrics
