"""The ingest job of one identity: every video of a raw folder (or of its `clips.json` manifest) -> one
frame store (`frames.parquet`) and one 16 kHz WAV per clip, written atomically (all clips or nothing)."""
from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from pathlib import Path

from emotag_core.config import IngestConfig
from emotag_core.datasets import Clip, read_manifest
from emotag_core.errors import InputError
from emotag_core.ingest.clips import ClipPlan, analyse_clip, clip_id_for, find_media, frames_meta, write_clip
from emotag_core.ingest.faces import FaceDetector
from emotag_core.io.atomic import atomic_dir
from emotag_core.io.tables import TableWriter
from emotag_core.io.video import probe
from emotag_core.progress import NO_PROGRESS, Progress, Steps

log = logging.getLogger("emotag.ingest")


def ingest_folder(source: str | Path, frames_path: str | Path, audio_dir: str | Path, cfg: IngestConfig,
                  detector_model: str | Path | None = None, quiet: bool = False,
                  progress: Progress = NO_PROGRESS) -> list[ClipPlan]:
    """Ingest every video in `source` into one frame store and one WAV per clip (atomic).

    progress(frames, total, phase=detect|crop, clip=id) counts each frame twice (face detection, then cropping);
    the total is estimated from the containers' durations until detection has counted the frames. A summary
    goes to the `emotag.ingest` log (not with `quiet`).
    """
    manifest = read_manifest(Path(source))
    if manifest is None:
        videos = find_media(source)
        taken: set[str] = set()
        ids = [clip_id_for(v, taken) for v in videos]
        labels: dict[str, dict] = {}
    else:
        ids = [c.clip_id for c in manifest]
        if len(set(ids)) != len(ids):
            raise InputError(Path(source) / "clips.json", "clip ids are not unique")
        labels = {c.clip_id: dict(c.labels, split=c.split) for c in manifest}
    t0 = time.perf_counter()
    Path(frames_path).parent.mkdir(parents=True, exist_ok=True)  # scratch beside the outputs: swept after a kill
    with tempfile.TemporaryDirectory(prefix=".tmp-clips-", dir=Path(frames_path).parent) as scratch, \
            FaceDetector(detector_model) as det, atomic_dir(audio_dir) as audio_tmp:
        plans: list[ClipPlan] = []
        if manifest is not None:
            videos = [materialize(c, Path(scratch)) for c in manifest]
        infos = [probe(v) for v in videos]  # fails fast on an unreadable file; gives the count its length
        est = [int(i.duration_s * cfg.fps) if i.duration_s else None for i in infos]
        steps = Steps(progress, 2 * sum(est) if None not in est else None, phase="detect")
        for v, cid in zip(videos, ids):
            steps.info["clip"] = cid
            plans.append(analyse_clip(v, cid, cfg, Path(audio_tmp) / f"{cid}.wav", det, progress=steps))
        steps.total, steps.info["phase"] = steps.done + sum(p.n for p in plans), "crop"
        meta = frames_meta(plans, cfg, det)
        if labels:
            meta["clip_labels"] = labels
        with TableWriter(frames_path, "frames", meta, row_group_size=cfg.row_group_frames) as w:
            for plan in plans:
                steps.info["clip"] = plan.clip_id
                write_clip(plan, cfg, w.write, progress=steps)
        steps.finish()
    dt = time.perf_counter() - t0
    total = sum(p.n for p in plans)
    if not quiet:
        for p in plans:
            log.info("ingest %s", p.summary())
        found = sum(int(p.face_found.sum()) for p in plans)
        log.info("ingest: %d clip(s), %d frames at %g fps, %dx%d, face in %.0f%%, %.0f frames/s", len(plans), total,
                 cfg.fps, cfg.size, cfg.size, 100 * found / max(total, 1), total / max(dt, 1e-9))
    return plans


def materialize(clip: Clip, scratch: Path) -> Path:
    """A manifest clip as one playable file: the source itself, or (for a time range or a separate
    audio file, as in HDTF and MEAD) a file cut / muxed by ffmpeg into `scratch`, streamed."""
    src = Path(clip.source)
    if not src.exists():
        raise InputError(src, f"clip `{clip.clip_id}` of the manifest: source video not found")
    if clip.start is None and clip.end is None and not clip.audio:
        return src
    if clip.audio and not Path(clip.audio).exists():
        raise InputError(clip.audio, f"clip `{clip.clip_id}`: audio file not found")
    out = scratch / f"{clip.clip_id}.mkv"
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
    if clip.start is not None:
        cmd += ["-ss", f"{clip.start:.3f}"]
    if clip.end is not None:
        cmd += ["-to", f"{clip.end:.3f}"]
    cmd += ["-i", str(src)]
    if clip.audio:
        if clip.start is not None:
            cmd += ["-ss", f"{clip.start:.3f}"]
        if clip.end is not None:
            cmd += ["-to", f"{clip.end:.3f}"]
        cmd += ["-i", str(clip.audio), "-map", "0:v:0", "-map", "1:a:0"]
    # a cut must start on the exact frame: re-encode video losslessly-fast; audio to PCM
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "10", "-c:a", "pcm_s16le", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise InputError(src, f"clip `{clip.clip_id}`: ffmpeg could not cut/mux it ({r.stderr.strip()[-200:]})",
                         "check the time range and the files")
    return out
