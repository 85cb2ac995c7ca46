"""DVC stage `ingest@<id>`: an identity's raw video(s) -> `frames.parquet` (25 fps face-centred
512x512 JPEG crops + per-frame box/confidence) and `audio/<clip_id>.wav` (16 kHz mono).

Outputs appear only if every clip ingests: the audio folder and the table are written under
temporary names and renamed into place at the end.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

from emotag_core.config import IngestConfig
from emotag_core.ingest import ClipPlan, FaceDetector, analyse_clip, clip_id_for, find_media, frames_meta, write_clip
from emotag_core.io.atomic import atomic_dir
from emotag_core.io.tables import TableWriter
from emotag_core.io.video import probe
from stages.common import Paths, main_for, params, source_dir, stage, sweep


def ingest_folder(source: str | Path, frames_path: str | Path, audio_dir: str | Path, cfg: IngestConfig,
                  detector_model: str | Path | None = None, quiet: bool = False) -> list[ClipPlan]:
    """Ingest every video in `source` into one frame store and one WAV per clip (atomic)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True, quiet=quiet)
    videos = find_media(source)
    taken: set[str] = set()
    ids = [clip_id_for(v, taken) for v in videos]
    t0 = time.perf_counter()
    with FaceDetector(detector_model) as det, atomic_dir(audio_dir) as audio_tmp, Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=console, transient=True, disable=quiet) as bar:
        plans: list[ClipPlan] = []
        for v, cid in zip(videos, ids):
            info = probe(v)  # fails fast on an unreadable file; gives the bar its length
            est = int(info.duration_s * cfg.fps) if info.duration_s else None
            task = bar.add_task(f"detect {cid}", total=est)
            plans.append(analyse_clip(v, cid, cfg, Path(audio_tmp) / f"{cid}.wav", det,
                                      progress=lambda k, task=task: bar.advance(task, k)))
            bar.update(task, visible=False)
        with TableWriter(frames_path, "frames", frames_meta(plans, cfg, det), row_group_size=cfg.row_group_frames) as w:
            for plan in plans:
                task = bar.add_task(f"crop   {plan.clip_id}", total=plan.n)
                write_clip(plan, cfg, w.write, progress=lambda k, task=task: bar.advance(task, k))
                bar.update(task, visible=False)
    dt = time.perf_counter() - t0
    total = sum(p.n for p in plans)
    for p in plans:
        console.print(f"ingest {p.summary()}", highlight=False)
    found = sum(int(p.face_found.sum()) for p in plans)
    console.print(f"ingest: {len(plans)} clip(s), {total} frames at {cfg.fps:g} fps, {cfg.size}x{cfg.size}, "
                  f"face in {100 * found / max(total, 1):.0f}%, {total / max(dt, 1e-9):.0f} frames/s", highlight=False)
    return plans


@stage("ingest")
def main(identity: str) -> None:
    """Ingest identity `identity` from its params.yaml source folder."""
    p = params()
    paths = Paths(identity)
    sweep(paths.processed)
    ingest_folder(source_dir(p, identity), paths.table("frames"), paths.audio_dir, p.ingest)


if __name__ == "__main__":
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    main_for(main)
