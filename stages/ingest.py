"""DVC stage `ingest@<id>`: an identity's raw video(s) -> `frames.parquet` (25 fps 512x512 JPEG crops, one
fixed box per clip by default (`ingest.crop`), + per-frame box/confidence) and `audio/<clip_id>.wav` (16 kHz
mono). The job is `emotag_core.ingest.ingest_folder`: outputs appear only if every clip ingests.
"""
from __future__ import annotations

import logging

from emotag_core.ingest import ingest_folder
from stages.common import Paths, main_for, params, progress_bar, source_dir, stage, sweep


@stage("ingest")
def main(identity: str) -> None:
    """Ingest identity `identity` from its params.yaml source folder."""
    p = params()
    paths = Paths(identity)
    sweep(paths.processed)
    with progress_bar(f"ingest@{identity}") as bar:
        ingest_folder(source_dir(p, identity), paths.table("frames"), paths.audio_dir, p.ingest, progress=bar)


if __name__ == "__main__":
    from rich.logging import RichHandler

    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(show_path=False)])
    main_for(main)
