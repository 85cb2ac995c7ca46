"""DVC stage `track@<id>`: FLAME (or open head model) tracking from the landmarks table.

Writes `flame.parquet` (per frame: valid, expr, jaw, rot, trans, fit_error_px; metadata: model
variant, expression dimension, the shared shape and camera) and `track_overlay.mp4` (fitted mesh
wireframe in green, detected landmarks in red, over the crops) so a person can check the fit.
The job is `emotag_core.flame.track.track_run`.
"""
from __future__ import annotations

from emotag_core.flame.track import track_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("track")
def main(identity: str) -> None:
    p = params()
    paths = Paths(identity)
    sweep(paths.processed)
    landmarks = need(paths.table("landmarks"), "the landmarks table", "landmarks", identity)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    with progress_bar(f"track@{identity}") as bar:
        stats = track_run(landmarks, frames, paths.table("flame"), paths.processed / "track_overlay.mp4",
                          p.flame, p.track, bar)
    print(f"track@{identity}: {stats['frames']} frames in {stats['seconds']:.1f} s "
          f"({stats['fps']:.1f} frames/s)")


if __name__ == "__main__":
    main_for(main)
