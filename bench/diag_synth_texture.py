"""How far MediaPipe's landmarks on the synthetic renders sit from the true ones, per packaged photo,
before and after the texture calibration (issue 4: is the offset the generator's texture?).

    python bench/diag_synth_texture.py [--size 512] [--iters 4] [--shapes 100 101 102] [--flip]

Each photo's texture on a neutral, frontal head on plain grey, the face 0.6 of the frame high (about
what the ingest crop shows, so px are close to the bench's crop px): mean (and max) distance of the
detected to the true projected landmarks, by region, for the mean shape and for the random shapes of
the given synth seeds (`synth.shape_std`), raw texture vs calibrated (`synth.texture_calib_iters`).
`--flip` adds MediaPipe with horizontal-flip averaging (mirror image, indices through the head
model's left/right symmetry, `emotag_core.synth.generator.mirror_permutation`). Prints a markdown table.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.diag_track_synth import EYES, LIPS  # noqa: E402

BROWS = (70, 63, 105, 66, 107, 55, 65, 52, 53, 46, 300, 293, 334, 296, 336, 285, 295, 282, 283, 276)


def regions() -> dict[str, np.ndarray]:
    """Boolean masks [478] of the reported landmark groups."""
    from emotag_core.flame.open_model import FACE_OVAL

    out = {"all": np.ones(478, bool)}
    for name, group in (("oval", FACE_OVAL), ("eyes", EYES), ("brows", BROWS), ("lips", LIPS)):
        m = np.zeros(478, bool)
        m[list(group)] = True
        out[name] = m
    out["iris"] = np.arange(478) >= 468
    return out


def detect_flip(img: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """Mean of MediaPipe's landmarks on the image and (mirrored back) on its mirror image -> [478, 2]."""
    from emotag_core.synth.texture import detect_landmarks

    a = detect_landmarks(img)
    b = detect_landmarks(np.ascontiguousarray(img[:, ::-1]))
    b[:, 0] = img.shape[1] - b[:, 0]
    return 0.5 * (a + b[perm])


def main(argv: list[str] | None = None) -> int:
    from emotag_core.config import load_params
    from emotag_core.flame import load_head_model
    from emotag_core.synth import generator as gen
    from emotag_core.synth.texture import DEFAULT_PHOTOS, detect_landmarks, load_image, photo_landmarks

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--iters", type=int, default=4, help="calibration rounds (synth.texture_calib_iters)")
    ap.add_argument("--shapes", type=int, nargs="*", default=[100, 101, 102], help="synth seeds whose shapes to add")
    ap.add_argument("--photos", nargs="*", default=list(DEFAULT_PHOTOS))
    ap.add_argument("--shape-std", type=float, default=None, help="override synth.shape_std for --shapes")
    ap.add_argument("--no-calib", action="store_true", help="raw textures only")
    ap.add_argument("--flip", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    params = load_params(ROOT / "params.yaml")
    model = load_head_model(params.flame)
    R = regions()
    perm = gen.mirror_permutation(model)[:478] if args.flip else None
    shapes: list[tuple[str, np.ndarray | None]] = [("mean", None)]
    for s in args.shapes:
        std = params.synth.shape_std if args.shape_std is None else args.shape_std
        ident = gen.sample_identity(model, replace(params.synth, seed=s, shape_std=std))
        shapes.append((f"seed {s} (std {std:g})", ident.shape))
    print("| photo | shape | texture | " + " | ".join(R) + " | max (point) |")
    print("| --- | --- | --- |" + " --- |" * (len(R) + 1))
    for ref in args.photos:
        photo, raw = load_image(ref), photo_landmarks(ref)
        textures = [("raw", raw)]
        if not args.no_calib:
            log: list[float] = []
            cal = gen.calibrate_landmarks(model, photo, raw, args.iters, args.size, params.synth.texture_size, log)
            print(f"<!-- {ref}: calibration rounds, mean offset px: {np.round(log, 2).tolist()} -->")
            textures.append(("calibrated", cal))
        for sname, shape in shapes:
            for tname, plm in textures:
                frame, true = gen.render_frontal(model, photo, plm, args.size, params.synth.texture_size, shape)
                dets = [("", detect_landmarks(frame))]
                if perm is not None:
                    dets.append((" + flip avg", detect_flip(frame, perm)))
                for suffix, det in dets:
                    e = np.linalg.norm(det - true, axis=1)
                    cells = " | ".join(f"{e[m].mean():.2f}" for m in R.values())
                    print(f"| {ref} | {sname} | {tname}{suffix} | {cells} | {e.max():.1f} ({int(e.argmax())}) |",
                          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
