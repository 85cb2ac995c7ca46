"""Where the tracker's end-to-end error on the synthetic corpus comes from (issue 4 diagnosis).

    python bench/diag_track_synth.py --seeds 100 101 --frames 100

Uses the identities that `bench/bench_track_synth.py` prepared (synth -> ingest -> landmarks in
`--work`; run it first). For each identity, on its first `--frames` frames, prints the mean 2-D
error (crop px, the bench's metric over the 478 skin vertices) of:
- the landmark fit, split by region (face oval, inner face, iris) and by facing/not facing the
  camera at the true pose, and MediaPipe's own landmarks against the true ones (the input error);
- the fit with one parameter group swapped for its true value (no refit);
- refits with oracle help: true shape and focal; true landmark positions for one group of
  MediaPipe points (face oval, mesh boundary, eyes, lips); each landmark's static offset (its mean
  over the frames) removed; the true landmarks themselves (the fit's own limit).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

EYES = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246,
        263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
LIPS = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185,
        78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)


def diagnose(params, work: Path, frames: int) -> dict[str, float]:  # noqa: ANN001
    """The numbers listed in the module docstring for one prepared identity."""
    import pyarrow.parquet as pq

    from emotag_core.flame import load_head_model
    from emotag_core.flame.model import intrinsics
    from emotag_core.flame.open_model import FACE_OVAL
    from emotag_core.flame.tracker import Tracker
    from emotag_core.flame.truth_eval import _project, skin_vertex_ids, source_to_crop
    from emotag_core.flame.track import read_landmarks

    model = load_head_model(params.flame)
    ids = skin_vertex_ids(model)
    clips, _ = read_landmarks(work / "landmarks.parquet")
    cid, fr, lmk, found = clips[0][:4]
    T = min(frames, len(fr))
    clip = (cid, fr[:T], lmk[:T], found[:T])
    truth = dict(np.load(work / "synthetic" / "truth" / f"{cid}.npz"))
    box = np.stack(pq.read_table(work / "frames.parquet", columns=["box"]).column("box")
                   .to_numpy(zero_copy_only=False))[:T]
    tv = {k: truth[k][:T] for k in ("expr", "jaw", "rot", "trans")}
    true = source_to_crop(_project(model, ids, torch.as_tensor(truth["shape"]), tv["expr"], tv["jaw"], tv["rot"],
                                   tv["trans"], torch.as_tensor(truth["K"])[None]), box, 512)      # [T, 478, 2]
    focal_true = float(truth["K"][0, 0] * 512 / box[:, 2].mean())

    def fit(lm: np.ndarray, shape: np.ndarray | None = None, focal: float | None = None):  # noqa: ANN202
        tr = Tracker(model, params.track, 512)
        c = (cid, clip[1], lm, clip[3])
        if shape is None:
            tr.fit_identity([c])
        else:
            tr.shape, tr.log_f = torch.as_tensor(shape), torch.tensor(float(np.log(focal)))
        return tr, tr.track_clip(*c)

    def err(tr, t, vec: bool = False, **true_sub) -> np.ndarray:  # noqa: ANN001
        a = {"shape": tr.shape.numpy(), "expr": t.expr, "jaw": t.jaw, "rot": t.rot, "trans": t.trans, **true_sub}
        pr = _project(model, ids, torch.as_tensor(a["shape"]), a["expr"], a["jaw"], a["rot"], a["trans"],
                      intrinsics(tr.camera.focal, 512))
        return pr - true if vec else np.linalg.norm(pr - true, axis=-1)                   # [T, 478(, 2)]

    tr, t = fit(lmk[:T])
    ev = err(tr, t, vec=True)
    e = np.linalg.norm(ev, axis=-1)
    oval = np.zeros(478, bool)
    oval[list(FACE_OVAL)] = True
    iris = np.zeros(478, bool)
    iris[468:] = True
    with torch.no_grad():   # facing the camera at the true pose of the first frame
        v = model(torch.as_tensor(truth["shape"])[None], *(torch.as_tensor(tv[k][:1]) for k in
                                                            ("expr", "jaw", "rot", "trans")))[0]
    f = model.faces[:model.n_face_faces]
    fn = torch.linalg.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    vn = torch.zeros_like(v).index_add_(0, f.reshape(-1), fn.repeat_interleave(3, 0))
    front = ((vn * v).sum(-1) < 0)[ids].numpy()
    mp_err = np.linalg.norm(lmk[:T, :, :2] - true, axis=-1)
    off = lmk[:T, :, :2] - true
    out = {"fit": e.mean(), "fit_oval": e[:, oval].mean(), "fit_inner": e[:, ~oval & ~iris].mean(),
           "fit_iris": e[:, iris].mean(), "fit_facing": e[:, front].mean(), "facing_share": front.mean(),
           "fit_dynamic_part": np.linalg.norm(ev - ev.mean(0), axis=-1).mean(),
           "mediapipe": mp_err.mean(), "mediapipe_oval": mp_err[:, oval].mean(),
           "mediapipe_dynamic_part": np.linalg.norm(off - off.mean(0), axis=-1).mean(),
           "focal_fit": tr.camera.focal, "focal_true": focal_true}
    for k in ("shape", "expr", "jaw", "rot"):
        out[f"true_{k}"] = err(tr, t, **{k: truth[k] if k == "shape" else tv[k]}).mean()
    tr2, t2 = fit(lmk[:T], truth["shape"], focal_true)
    out["refit_true_shape_focal"] = err(tr2, t2).mean()
    f_ = model.faces[:model.n_face_faces].numpy()
    edges, counts = np.unique(np.sort(np.concatenate([f_[:, [0, 1]], f_[:, [1, 2]], f_[:, [2, 0]]]), 1), axis=0,
                              return_counts=True)
    boundary = np.unique(edges[counts == 1])
    for name, group in (("oval", FACE_OVAL), ("boundary", boundary), ("eyes", EYES), ("lips", LIPS)):
        lm = lmk[:T].copy()
        lm[:, list(group), :2] = true[:, list(group)]
        out[f"refit_true_{name}_points"] = err(*fit(lm)).mean()
    lm = lmk[:T].copy()
    lm[..., :2] -= off.mean(0)
    out["refit_static_offset_removed"] = err(*fit(lm)).mean()
    lm = np.concatenate([true, np.zeros_like(true[..., :1])], -1)
    out["refit_true_landmarks"] = err(*fit(lm)).mean()
    return {k: float(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    from emotag_core.config import load_params

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emotag-bench-track"))
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    rows = {}
    for s in args.seeds:
        work = args.work / f"s{s}_{args.size}_{args.seconds:g}"
        if not (work / "landmarks.parquet").exists():
            raise SystemExit(f"{work}: not prepared; run bench/bench_track_synth.py with these seeds first")
        rows[s] = diagnose(params, work, args.frames)
    keys = list(next(iter(rows.values())))
    print("| quantity | " + " | ".join(f"s{s}" for s in rows) + " |")
    print("| --- |" + " --- |" * len(rows))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{rows[s][k]:.2f}" for s in rows) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
