"""How well the tracked jaw opening follows the true one on a prepared synthetic workdir, per `track.expr_prior`.

    python bench/diag_track_jaw.py --work /tmp/grmn_synth --ids gsyn_u gsyn_v gsyn_30 gsyn_3 --expr-priors 0.5 5 10 20

Re-tracks each identity's landmarks table (`track_run` without frames: landmarks and the blendshape prior only) with
`flame.model: ict` and each expression-prior weight, into `--out`, and prints, over every clip, the mean Pearson r of
the tracked jaw opening (jaw[:, 0]) with the synthetic truth's, its spread relative to the truth's, and the mean
landmark fit error (the flame table's `fit_error_px`). The workdir is `bench/grmn_synth.py prepare`'s.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from emotag_core.config import FlameConfig, TrackConfig
from emotag_core.flame.track import track_run
from emotag_core.io.tables import column_array


def jaw_agreement(table: Path, truth_dir: Path) -> tuple[list[float], list[float], float]:
    """A flame table and its identity's truth folder -> (per-clip r, per-clip std ratio, mean fit error px)."""
    t = pq.read_table(table, columns=["clip_id", "frame", "jaw", "fit_error_px"])
    clips, frames = column_array(t, "clip_id"), column_array(t, "frame")
    jaw = column_array(t, "jaw")[:, 0]
    rs, ratios = [], []
    for c in sorted(set(clips)):
        m = clips == c
        true = np.load(truth_dir / f"{c}.npz")["jaw"][frames[m]][:, 0]
        rs.append(float(np.corrcoef(jaw[m], true)[0, 1]))
        ratios.append(float(jaw[m].std() / true.std()))
    return rs, ratios, float(np.nanmean(column_array(t, "fit_error_px")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", type=Path, required=True, help="a prepared grmn_synth workdir")
    ap.add_argument("--ids", nargs="+", required=True)
    ap.add_argument("--expr-priors", nargs="+", type=float, default=[0.5, 5.0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/diag_track_jaw"))
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    for ep in a.expr_priors:
        rs, ratios, fits = [], [], []
        for ident in a.ids:
            table = a.out / f"{ident}_ep{ep:g}.parquet"
            track_run(a.work / "data" / "processed" / ident / "landmarks.parquet", None, table, None,
                      FlameConfig(model="ict"), dataclasses.replace(TrackConfig(), expr_prior=ep))
            r, q, f = jaw_agreement(table, a.work / "data" / "synthetic" / ident / "truth")
            rs += r
            ratios += q
            fits.append(f)
        print(f"expr_prior {ep:g}: jaw r {np.mean(rs):.3f} (min {np.min(rs):.3f}), std ratio {np.mean(ratios):.2f}, "
              f"landmark fit {np.mean(fits):.2f} px ({len(rs)} clips)", flush=True)


if __name__ == "__main__":
    main()
