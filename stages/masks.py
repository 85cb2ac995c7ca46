"""DVC stage `masks@<id>`: per-frame person masks (background, head, hair, neck, torso; issue 18).

Reads the frame store, the face landmarks and the FLAME track; writes `masks.parquet` (PNG label
maps, label order in the metadata) and `masks_overlay.mp4` (colour-coded labels over the crops).
The MediaPipe TFLite models come from `emotag fetch-assets`; a missing one fails before any work.
"""
from __future__ import annotations

from emotag_core.teachers.segmentation import masks_run
from stages.common import Paths, main_for, need, params, progress_bar, stage, sweep


@stage("masks")
def main(identity: str) -> None:
    p = params()
    paths = Paths(identity)
    sweep(paths.processed)
    frames = need(paths.table("frames"), "the frame store", "ingest", identity)
    landmarks = need(paths.table("landmarks"), "the face landmarks", "landmarks", identity)
    flame = need(paths.table("flame"), "the FLAME track", "track", identity)
    overlay = paths.processed / "masks_overlay.mp4" if p.masks.overlay else None
    with progress_bar(f"masks@{identity}") as bar:
        res = masks_run(frames, landmarks, flame, paths.table("masks"), p.masks, p.flame, overlay, bar)
    frac = ", ".join(f"{k} {v:.2f}" for k, v in res["label_fraction"].items())
    print(f"masks@{identity}: {res['rows']} frames at {res['fps']:.1f} fr/s, pose in {res['pose_found']:.0%}; {frac}")


if __name__ == "__main__":
    main_for(main)
