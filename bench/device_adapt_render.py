"""One command, on the device machine: pretrain -> adapt -> render of an already preprocessed identity from a bundle
(`bench/device_bundle.py`), with PSNR/SSIM (whole crop, head mask, frozen-frame baseline), timings and FPS.
Nothing on this path imports mediapipe, dvc or PyAV (the device has none of them).

    . bench/device_gsplat_env.sh   # WHL=.kit for the light kit (gsplat + sitecustomize)
    python3 bench/device_adapt_render.py run .bundle seated --out $OUT [--device cuda]
    python bench/device_adapt_render.py finish RESULTS [--frames FROM/data/processed/<id>]   # here: mux (+ LMD)

`run` (the library's own calls: `train.recipe.pretrain_run` on the bundle's corpus manifest unless the bundle
carries a matching data/models/pretrain/grmn.pt, `adapt_run` on the adapt stage's split, then the held-out render
through `render.driver.animate_stream` with the held-out audio's offline features, as render@<id> computes them, or
with `--features table` the audio_features table's rows, for a backend whose model the device lacks) writes to OUT:
    metrics.json     psnr/ssim (+ _head, _frozen, _head_frozen) on the frames before encoding, adapt_s, pretrain_s,
                     FPS at batch 1 and 8 (`loop_fps_b*`: the streaming render loop as today's inference rows;
                     `animator_fps_b*`: features precomputed, animator calls only; encoding excluded in both),
                     the effective params and the adapt/pretrain summaries
    heldout.mp4      the held-out render (PyAV's H.264 when it is installed, else OpenCV's mp4v) and heldout.wav
    strip.png        ground truth | render | error | frozen frame for four held-out frames
    pretrain.jsonl, adapt.jsonl   the training curves
    motion.npz       the held-out jaw of the adapted and of the pretrained GRMN (before adaptation) and the tracked
                     one; metrics.json's `motion` scores them (Pearson r and std ratio of the opening, jaw[:, 0])
`finish` (here, with ffmpeg) muxes heldout.mp4 + heldout.wav into heldout_av.mp4 (H.264 + AAC) and, given the
identity's processed folder with its landmarks table, adds LMD and mouth_corr from the landmarks teacher.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

OUT_FILES = ("metrics.json", "heldout.mp4", "heldout.wav", "strip.png", "pretrain.jsonl", "adapt.jsonl", "motion.npz")


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _sync(dev: str) -> None:
    if dev.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def write_video(path: Path, frames: list[np.ndarray], wave: np.ndarray, fps: float, sr: int = 16000) -> str:
    """frames [H, W, 3] uint8 RGB -> `path` (PyAV's H.264 + AAC when importable, else OpenCV mp4v and no audio);
    the audio [S] float32 also as a WAV beside it. Returns the writer used."""
    from emotag_core.io.audio import write_wav

    write_wav(path.with_suffix(".wav"), wave, sr)
    try:
        import av  # noqa: F401
    except ImportError:
        import cv2

        h, w = frames[0].shape[:2]
        vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not vw.isOpened():
            raise RuntimeError(f"OpenCV could not open an mp4v writer for {path}")
        for f in frames:
            vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        vw.release()
        return "opencv mp4v (no audio; heldout.wav beside it)"
    from emotag_core.render.audio import frame_blocks
    from emotag_core.render.video import Mp4Writer

    blocks = list(frame_blocks([wave], sr, fps))
    with Mp4Writer(path, fps=fps, size=(frames[0].shape[1], frames[0].shape[0]), sample_rate=sr) as wr:
        for i, f in enumerate(frames):
            wr.write(f, blocks[i] if i < len(blocks) else np.zeros(int(sr / fps), np.float32))
    return "pyav h264+aac"


def _fps(load: Any, blocks: list[np.ndarray], features: Any, cues: Any, windows: tuple[np.ndarray, ...], fps: float,
         dev: str, batch: int) -> dict[str, float]:
    """Frames/s of one batch size: the streaming render loop (log-mel as audio arrives) and the animator alone
    (precomputed feature windows); frames to host memory, no encoder."""
    from emotag_core.render.driver import animate_stream

    anim = load(batch)
    sink = lambda t, f, s: None  # noqa: E731
    animate_stream(anim, blocks[:40], features, cues, sink, batch_size=batch, fps=fps)  # warm-up (graph capture)
    _sync(dev)
    tr = animate_stream(anim, blocks, features, cues, sink, batch_size=batch, fps=fps)
    a, e, rot, trans = windows
    n = (len(a) // batch) * batch
    for s in range(0, min(n, 4 * batch), batch):
        anim(a[s:s + batch], e[s:s + batch], rot[s:s + batch], trans[s:s + batch])
    _sync(dev)
    t0 = time.perf_counter()
    for s in range(0, n, batch):
        anim(a[s:s + batch], e[s:s + batch], rot[s:s + batch], trans[s:s + batch])
    _sync(dev)
    wall = time.perf_counter() - t0
    return {f"loop_fps_b{batch}": tr.n_frames / tr.wall_s, f"animator_fps_b{batch}": n / wall,
            f"fps_frames_b{batch}": float(n)}


def _windows(table: Path, clip: str, h0: int, window: int, cues: Any) -> tuple[np.ndarray, ...]:
    """Precomputed inputs of every held-out frame: audio windows [N, W, D] from the audio_features table (the
    held-out rows only, clamped at its ends as the render loop does), AU windows [N, W, A], rot/trans [N, 3]."""
    from emotag_core.io.tables import column_array
    from emotag_core.render.jobs import clip_rows

    fr, t = clip_rows(table, "audio_features", clip, ["feature"])
    feat = column_array(t, "feature")[fr >= h0]
    n, half = len(feat), window // 2
    rows = np.clip(np.arange(n)[:, None] + np.arange(window)[None] - half, 0, n - 1)
    ci = cues.index(rows)
    cc = cues.index(np.arange(n))
    return (feat[rows].astype(np.float32), cues.aus[ci], cues.rot[cc], cues.trans[cc])


def oracle_frames(files: Any, split: Any, animator: Any, batch: int = 8) -> list[np.ndarray]:
    """The held-out frames driven by the tracked expression, jaw and pose (render.jobs.render_oracle's frames, kept
    in memory: its writer needs PyAV) -> [H, W, 3] uint8 each."""
    import torch

    from emotag_core.io.tables import column_array
    from emotag_core.render.jobs import clip_rows

    clip, h0 = split.heldout.clip, split.heldout_start
    fr, t = clip_rows(files.table("flame"), "flame", clip, ["expr", "jaw", "rot", "trans"])
    keep = (fr >= h0) & ((fr < split.heldout.end) if split.heldout.end is not None else True)
    cols = {k: torch.as_tensor(column_array(t, k)[keep], dtype=torch.float32) for k in ("expr", "jaw", "rot", "trans")}
    sc, n = animator.scene, int(keep.sum())
    layered = {"out_size": animator.size} if getattr(sc, "has_layers", False) else {}
    out: list[np.ndarray] = []
    with torch.no_grad():
        for s0 in range(0, n, batch):
            b = {k: v[s0:s0 + batch].to(animator.device) for k, v in cols.items()}
            img = sc.render(b["expr"], b["jaw"], b["rot"], b["trans"], None, animator.raster_size, **layered)["image"]
            if img.shape[-1] != animator.size:
                img = torch.nn.functional.interpolate(img, size=(animator.size,) * 2, mode="bilinear", align_corners=False)
            out += list((img.clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
    return out


def motion_check(grmns: dict[str, Any], s_vec: Any, win: tuple[np.ndarray, ...], tracked_jaw: np.ndarray,
                 device: str, out: Path) -> dict[str, Any]:
    """Jaw opening (jaw[:, 0], rad) the GRMNs in `grmns` (name -> model in eval mode) predict from the held-out
    windows `win` (audio, AUs; as `_windows`), against the tracked jaw [N, 3]: does the motion network move the
    mouth before the avatar draws it? s_vec: identity vector [1, S]. -> {name: {r, std_ratio}}; the traces go to
    OUT/motion.npz."""
    import torch

    n = min(len(tracked_jaw), len(win[0]))
    ref = tracked_jaw[:n, 0]
    traces, res = {"tracked": ref}, {}
    a = torch.as_tensor(win[0][:n], dtype=torch.float32, device=device)  # [N, W, D]
    e = torch.as_tensor(win[1][:n], dtype=torch.float32, device=device)  # [N, W, A]
    s = torch.as_tensor(s_vec, dtype=torch.float32, device=device).reshape(1, -1).expand(n, -1)  # [N, S]
    for name, grmn in grmns.items():
        with torch.no_grad():
            x = grmn(a, e, s).jaw[:, 0].float().cpu().numpy()  # [N]
        traces[name] = x
        ok = x.std() > 1e-9 and ref.std() > 1e-9
        res[name] = {"r": float(np.corrcoef(x, ref)[0, 1]) if ok else None,
                     "std_ratio": float(x.std() / max(ref.std(), 1e-9)), "frames": int(n)}
    np.savez(out / "motion.npz", **traces)
    return res


def run(bundle: Path, identity: str, out: Path, device: str | None, fps_frames: int,
        features_from: str = "backend", prior_file: Path | None = None,
        overrides: list[str] | None = None) -> dict[str, Any]:
    """The whole device job (module doc) -> metrics.json's record. `prior_file`: adapt this pretrained GRMN
    (a grmn.pt; relative paths are the bundle's, e.g. one `device_bundle.py --prior` copied in) instead of the
    carried data/models/pretrain/grmn.pt or a pretrain on the bundle's corpus. `overrides`: KEY=VALUE over the
    bundle's params.yaml (one bundle, several settings; recorded in metrics.json)."""
    import torch
    import yaml

    from emotag_core.config import load_params, to_dict
    from emotag_core.io.audio import read_wav
    from emotag_core.io.frames import FrameStore
    from emotag_core.metrics.evaluate import BATCH, _frozen_and_head, _State
    from emotag_core.metrics.image import psnr, ssim
    from emotag_core.render.adapted import animator_kind, load_animator
    from emotag_core.io.tables import column_array
    from emotag_core.render.audio import OfflineFeatures, frame_blocks
    from emotag_core.render.driver import animate_stream
    from emotag_core.render.jobs import TargetFiles, clip_rows, cue_track, feature_backend
    from emotag_core.report import strip_image
    from emotag_core.split import Split
    from emotag_core.train.data import build_identity_index
    from emotag_core.train.live import JsonLinesLog
    from emotag_core.train.recipe import adapt_run, identity_tables, pretrain_run
    from emotag_core.train.checkpoint import load_model

    from sweep import apply_overrides  # bench scripts import each other as top-level modules (before the chdir)

    t_all = time.perf_counter()
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(bundle)  # the manifest's table paths are relative to the bundle, as to a repo root
    data = yaml.safe_load(Path("params.yaml").read_text())
    if device:
        for sec in ("pretrain", "render", "evaluate"):
            data.setdefault(sec, {})["device"] = device
    if overrides:
        data = apply_overrides(data, list(overrides))
    Path(".work").mkdir(exist_ok=True)
    Path(".work/params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    p = load_params(".work/params.yaml")
    dev = p.pretrain.device
    rec: dict[str, Any] = {"identity": identity, "device": dev,
                           "device_name": torch.cuda.get_device_name() if dev.startswith("cuda") else f"cpu ({os.cpu_count()} cores)",
                           "torch": torch.__version__, "bundle": json.loads(Path("bundle.json").read_text()),
                           "overrides": list(overrides or [])}
    # 1. pretrain (unless the bundle carries a model trained with these settings)
    prior = Path("data/models/pretrain/grmn.pt")
    if prior_file is not None:
        prior = Path(prior_file)
        if not prior.exists():
            raise SystemExit(f"--prior {prior_file}: not found in the bundle {bundle} (device_bundle.py --prior copies one in)")
        rec["pretrain"] = {"carried": True, "reason": f"--prior {prior_file}", "prior": str(prior_file)}
    elif prior.exists():
        rec["pretrain"] = {"carried": True, "reason": rec["bundle"]["pretrained"]["reason"]}
    else:
        prior = Path(".work/pretrain/grmn.pt")
        _log(f"pretrain {p.pretrain.iters} it on {p.corpus}")
        rec["pretrain"] = pretrain_run(p, Path("data/processed/_corpus"), prior.parent, Path(".work/ck/pretrain"), None,
                                       log=partial(JsonLinesLog, out / "pretrain.jsonl"))
        _log(f"pretrain {rec['pretrain']['wall_s']:.1f} s")
    # 2. adapt (the adapt stage's split)
    ix = build_identity_index(identity, identity_tables(Path("data/processed") / identity))
    split = Split.from_config(p.adapt, None, ix.index, ix.meta["fps"])
    _log(f"adapt {p.adapt.iters} it: {split.describe()}")
    model = Path(".work/models") / identity
    rec["adapt"] = adapt_run(p, ix, split, prior, model, Path(".work/ck") / identity, None,
                             log=partial(JsonLinesLog, out / "adapt.jsonl"))
    _log(f"adapt {rec['adapt']['wall_s']:.1f} s")
    (out / "metrics.json").write_text(json.dumps(rec, indent=1, default=str))  # partial: a call cut short keeps it
    # 3. the held-out render (render@<id>'s `heldout` job: its audio, cues from the same frames, hold)
    files = TargetFiles(identity, Path("data/processed") / identity)
    fps = float(p.ingest.fps)
    hsplit = files.split(p.adapt, None, fps)
    if hsplit.heldout_start is None:
        raise SystemExit(f"{identity}: nothing held out ({hsplit.describe()})")
    clip, h0 = hsplit.adapt_clip, int(hsplit.heldout_start)
    wave, sr = read_wav(files.audio(clip))
    if sr != 16000:
        raise SystemExit(f"{files.audio(clip)}: {sr} Hz, expected the ingest's 16 kHz WAV")
    held = wave[int(round(h0 * sr / fps)):]
    blocks = list(frame_blocks([held], sr, fps))
    if features_from == "table":  # the offline rows audio_features@<id> computed here (the device may lack the model)
        fr_, t_ = clip_rows(files.table("audio_features"), "audio_features", clip, ["feature"])
        features = OfflineFeatures(column_array(t_, "feature")[fr_ >= h0][:len(blocks)], "table")
    else:  # render@<id>'s way: the backend over all of the held-out audio, before the render
        features = OfflineFeatures.compute(feature_backend(p.audio_features, fps), blocks, fps)
    rec["features"] = {"from": features_from, "backend": p.audio_features.backend, "frames": len(features.features)}
    cues = cue_track(files, clip, h0, None, "hold")
    load = lambda b: load_animator(model, p.flame, p.pretrain.rasterizer, p.render, p.ingest.size, batch=b)  # noqa: E731
    anim = load(p.render.batch_size)
    frames: list[np.ndarray] = []
    trace = animate_stream(anim, blocks, features, cues, lambda t, f, s: frames.append(f),
                           batch_size=p.render.batch_size, fps=fps)
    rec["render"] = {"animator": animator_kind(anim), "size": anim.size, "raster_size": anim.raster_size,
                     **trace.summary()}
    # 4. PSNR / SSIM on the frames before encoding, against the real held-out frames (evaluate@<id>'s definitions)
    torch.set_num_threads(max(1, min(16, os.cpu_count() or 1)))
    store = FrameStore(files.table("frames"))
    rows = hsplit.heldout_rows(store.keys)
    T = min(len(rows), len(frames))
    rows, pred = rows[:T], frames[:T]
    gt = [store.get(int(r)) for r in rows]
    st = _State()
    st.curves["psnr"] = np.concatenate([psnr(np.stack(pred[s:s + BATCH]), np.stack(gt[s:s + BATCH])) for s in range(0, T, BATCH)])
    st.curves["ssim"] = np.concatenate([ssim(np.stack(pred[s:s + BATCH]), np.stack(gt[s:s + BATCH])) for s in range(0, T, BATCH)])
    st.M.mean("psnr", st.curves["psnr"], "no held-out frames")
    st.M.mean("ssim", st.curves["ssim"], "no held-out frames")
    frozen = _frozen_and_head(st, files, hsplit, store, pred, gt, rows, Path(".work/no_renders"))
    oracle = oracle_frames(files, hsplit, anim)[:T]  # the same scores of the oracle render, by the same function
    so = _State()
    so.curves["psnr"] = np.concatenate([psnr(np.stack(oracle[s:s + BATCH]), np.stack(gt[s:s + BATCH])) for s in range(0, T, BATCH)])
    so.curves["ssim"] = np.concatenate([ssim(np.stack(oracle[s:s + BATCH]), np.stack(gt[s:s + BATCH])) for s in range(0, T, BATCH)])
    _frozen_and_head(so, files, hsplit, store, oracle, gt, rows, Path(".work/no_renders"))
    for k in ("psnr", "ssim", "psnr_head", "ssim_head"):
        st.curves[f"{k}_oracle"] = so.curves[k]
        if "head" in k:  # the head scores, with their reason when there are none
            st.M.set(f"{k}_oracle", so.M.values.get(k), so.M.reasons.get(k))
        else:
            st.M.mean(f"{k}_oracle", so.curves[k], "no held-out frames")
    rec["metrics"] = st.M.to_dict()
    rec["metrics"]["frames"] = int(T)
    rec["metrics"]["heldout"] = {"clip": clip, "from_frame": h0, "from_s": h0 / fps,
                                 "on": "rendered frames before encoding"}
    rec["per_frame"] = {k: [None if not np.isfinite(x) else round(float(x), 4) for x in v] for k, v in st.curves.items()}
    picks = np.unique(np.linspace(0, T - 1, 4).round().astype(int))
    strip = strip_image([gt[i] for i in picks], [pred[i] for i in picks], frozen, side=p.evaluate.report_side,
                        labels=[f"t={(h0 + int(i)) / fps:.2f}s" for i in picks])
    import cv2

    cv2.imwrite(str(out / "strip.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    rec["video"] = write_video(out / "heldout.mp4", pred, held, fps, sr)
    # 5. speed: batch 1 and 8, encoding excluded
    win = _windows(files.table("audio_features"), clip, h0, anim.window, cues)
    fr_j, t_j = clip_rows(files.table("flame"), "flame", clip, ["jaw"])
    tracked = column_array(t_j, "jaw")[fr_j >= h0]
    pretrained, _ = load_model(prior, dev)
    rec["motion"] = motion_check({"adapted": anim.grmn, "pretrained": pretrained.eval()}, anim.s.cpu().numpy(), win,
                                 tracked, dev, out)  # the adapted GRMN is the animator's own (no second load)
    _log(f"motion {json.dumps(rec['motion'])}")
    nb = max(8, min(fps_frames, len(blocks)))
    reps = -(-nb // len(blocks))
    fblocks = (blocks * reps)[:nb]
    win = tuple(np.concatenate([w] * reps)[:nb] for w in win)
    del anim
    rec["speed"] = {"adapt_s": rec["adapt"]["wall_s"], "adapt_iters": p.adapt.iters,
                    "pretrain_s": rec["pretrain"].get("wall_s"), "pretrain_iters": p.pretrain.iters}
    # the render loop as `render --stream` runs it: the backend streamed as audio arrives (table: replayed rows)
    live = (feature_backend(p.audio_features, fps) if features_from == "backend" else
            OfflineFeatures(np.concatenate([features.features] * reps)[:nb], "table"))
    rec["speed"]["loop_features"] = "streamed" if features_from == "backend" else "table rows replayed (no feature cost)"
    for b in (1, 8):
        rec["speed"].update(_fps(load, fblocks, live, cues, win, fps, dev, b))
    rec["params"] = to_dict(p)
    rec["wall_s"] = time.perf_counter() - t_all
    (out / "metrics.json").write_text(json.dumps(rec, indent=1, default=str))
    m = rec["metrics"]
    _log(" ".join(f"{k}={m.get(k)}" for k in ("psnr", "ssim", "psnr_frozen", "ssim_frozen", "psnr_head", "ssim_head",
                                              "psnr_head_frozen", "ssim_head_frozen")))
    _log(json.dumps(rec["speed"]))
    return rec


def finish(results: Path, processed: Path | None) -> dict[str, Any]:
    """Here: heldout.mp4 + heldout.wav -> heldout_av.mp4 (H.264 + AAC); with `processed` (the identity's folder with
    its landmarks table) LMD / mouth_corr from the landmarks teacher are added to metrics.json under `here`."""
    import subprocess

    rec = json.loads((results / "metrics.json").read_text())
    av_mp4 = results / "heldout_av.mp4"
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(results / "heldout.mp4"), "-i",
                    str(results / "heldout.wav"), "-map", "0:v", "-map", "1:a", "-c:v", "libx264", "-crf", "18",
                    "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(av_mp4)], check=True)
    here: dict[str, Any] = {"muxed": av_mp4.name}
    if processed is not None:
        here.update(_lmd(results, processed, rec))
    rec["here"] = here
    (results / "metrics.json").write_text(json.dumps(rec, indent=1, default=str))
    return here


def _lmd(results: Path, processed: Path, rec: dict[str, Any]) -> dict[str, Any]:
    """LMD and mouth_corr of the returned render against the real held-out frames' landmarks table."""
    from emotag_core.config import from_dict, Params
    from emotag_core.io.tables import column_array
    from emotag_core.metrics.evaluate import detect, landmark_teacher, read_mp4
    from emotag_core.io.audio import read_wav
    from emotag_core.metrics.motion import lmd, mouth_opening
    from emotag_core.metrics.sync import frame_energy
    from emotag_core.render.jobs import clip_rows

    p = from_dict(Params, rec["params"])
    fps, h = float(p.ingest.fps), rec["metrics"]["heldout"]
    teacher, why = landmark_teacher(p.landmarks, fps)
    if teacher is None:
        return {"lmd": None, "lmd_reason": why}
    pred = read_mp4(results / "heldout_av.mp4", rec["metrics"]["frames"])
    lm_p, _, ff_p = detect(teacher, pred, f"render:{h['clip']}")
    teacher.close()
    f_lm, t_lm = clip_rows(processed / "landmarks.parquet", "landmarks", h["clip"], ["face_found", "landmarks"])
    idx = np.searchsorted(f_lm, h["from_frame"] + np.arange(len(pred)))
    lm_g = column_array(t_lm, "landmarks").reshape(-1, 478, 3)[idx]
    ff_g = column_array(t_lm, "face_found").astype(bool)[idx]
    ok = ff_p & ff_g
    d = lmd(lm_p, lm_g, valid=ok)
    r, g = mouth_opening(lm_p), mouth_opening(lm_g)
    good = ok & np.isfinite(r) & np.isfinite(g)
    corr = float(np.corrcoef(r[good], g[good])[0, 1]) if good.sum() > 2 and np.std(r[good]) > 0 else None
    wave, sr = read_wav(results / "heldout.wav")
    e = frame_energy(wave, sr, fps, len(pred))  # the baseline 'opening = audio energy', as evaluate's
    corr_e = float(np.corrcoef(e[good], g[good])[0, 1]) if good.sum() > 2 and np.std(e[good]) > 0 else None
    return {"lmd": float(np.nanmean(d)) if np.isfinite(d).any() else None, "mouth_corr": corr,
            "mouth_corr_energy": corr_e,
            "mouth_std_ratio": float(np.std(r[good]) / np.std(g[good])) if good.sum() > 2 and np.std(g[good]) > 0 else None,
            "face_found_render": float(ff_p.mean()), "on": "heldout_av.mp4 (H.264 crf 18 of the returned mp4)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="pretrain -> adapt -> render -> metrics (the device)")
    r.add_argument("bundle", type=Path)
    r.add_argument("identity")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--device", help="override pretrain/render/evaluate.device (e.g. cuda, cpu)")
    r.add_argument("--fps-frames", type=int, default=250, help="frames per FPS measurement")
    r.add_argument("--features", choices=("backend", "table"), default="backend",
                   help="held-out features: the profile's backend over the held-out audio (render@<id>'s way), or the "
                        "audio_features table's rows (computed before bundling; for a backend whose model the device lacks)")
    r.add_argument("--prior", type=Path, help="adapt this pretrained grmn.pt (path in the bundle) instead of the "
                                              "carried prior or a pretrain on the bundle's corpus")
    r.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="overrides of the bundle's params.yaml")
    f = sub.add_parser("finish", help="mux the returned mp4 + wav (+ LMD with --frames), here")
    f.add_argument("results", type=Path)
    f.add_argument("--frames", type=Path, help="the identity's processed folder (landmarks table) for LMD")
    a = ap.parse_args()
    if a.cmd == "run":
        run(a.bundle, a.identity, a.out, a.device, a.fps_frames, a.features, a.prior, a.set)
    else:
        print(json.dumps(finish(a.results, a.frames), indent=1))


if __name__ == "__main__":
    main()
