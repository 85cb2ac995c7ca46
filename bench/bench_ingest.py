"""Ingest benchmarks: throughput and peak memory vs clip length, and frame-store random access.

    python bench/bench_ingest.py ingest   # ~20 s sample and a ~120 s loop of it: frames/s, peak RSS
    python bench/bench_ingest.py store    # random-access decode: JPEG-in-Parquet vs intra-coded video

Each ingest run is a fresh process (peak RSS = its own ru_maxrss). Prints Markdown table rows for
BENCHMARKS.md. Uses params.yaml's `ingest` section (the CPU smoke profile).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SAMPLE = ROOT / "data" / "sample" / "sample.mp4"


def machine() -> str:
    """Cores, arch, Python and the 1-minute load average (the dev machine is shared)."""
    return (f"{os.cpu_count()} CPU cores ({platform.machine()}), {platform.python_implementation()} "
            f"{platform.python_version()}, load {os.getloadavg()[0]:.1f}")


def _child(src: str, out: str) -> None:
    """One ingest in this process; prints a JSON line with the numbers."""
    from emotag_core.config import load_params
    from emotag_core.ingest import ingest_folder

    cfg = load_params(ROOT / "params.yaml").ingest
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    plans = ingest_folder(src, Path(out) / "frames.parquet", Path(out) / "audio", cfg, quiet=True)
    dt = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    n = sum(p.n for p in plans)
    print(json.dumps({"frames": n, "seconds": dt, "fps": n / dt, "cpu_s": cpu, "fps_per_cpu_s": n / cpu,
                      "video_s": n / cfg.fps, "peak_rss_mb": r1.ru_maxrss / 1024}))


def bench_ingest(loops: int = 6) -> list[dict]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    try:
        short, long_ = tmp / "short", tmp / "long"
        short.mkdir()
        long_.mkdir()
        shutil.copy(SAMPLE, short / "sample.mp4")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-stream_loop", str(loops - 1), "-i", str(SAMPLE), "-c", "copy",
                        str(long_ / "sample_x6.mp4")], check=True)
        rows = []
        for name, src in (("~20 s (sample)", short), (f"~{20 * loops} s (sample looped x{loops})", long_)):
            r = subprocess.run([sys.executable, __file__, "_child", str(src), str(tmp / f"out-{src.name}")],
                               check=True, capture_output=True, text=True)
            res = json.loads(r.stdout.strip().splitlines()[-1])
            res["clip"] = name
            rows.append(res)
            print(f"{name}: {res['frames']} frames in {res['seconds']:.1f} s = {res['fps']:.1f} frames/s "
                  f"({res['fps_per_cpu_s']:.0f} frames per CPU-second), peak RSS {res['peak_rss_mb']:.0f} MB",
                  file=sys.stderr)
        growth = rows[1]["peak_rss_mb"] / rows[0]["peak_rss_mb"] - 1
        print(f"peak RSS growth short -> long: {100 * growth:+.1f}%", file=sys.stderr)
        cmd, day = "python bench/bench_ingest.py ingest", date.today().isoformat()
        for r in rows:
            print(f"| ingest {r['clip']} | {r['frames']} | {r['fps']:.1f} frames/s ({r['fps'] / 25:.1f}x real time); "
                  f"{r['fps_per_cpu_s']:.0f} frames/CPU-s | {r['peak_rss_mb']:.0f} MB | `{cmd}` | {machine()} | {day} |")
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---------------------------------------------------------------------------------------------
# frame store: random access
# ---------------------------------------------------------------------------------------------

def _store_frames() -> tuple[list[bytes], int]:
    """JPEG frames of the sample (ingested fresh into a temp store)."""
    from emotag_core.config import load_params
    from emotag_core.io.frames import FrameStore
    from emotag_core.ingest import ingest_folder

    cfg = load_params(ROOT / "params.yaml").ingest
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    src = tmp / "src"
    src.mkdir()
    shutil.copy(SAMPLE, src / "sample.mp4")
    ingest_folder(src, tmp / "frames.parquet", tmp / "audio", cfg, quiet=True)
    fs = FrameStore(tmp / "frames.parquet")
    jpegs = fs._r.read(columns=["jpeg"]).column("jpeg").to_pylist()
    shutil.rmtree(tmp, ignore_errors=True)
    return jpegs, cfg.size


def _parquet(jpegs: list[bytes], path: Path, rg: int, compression: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pa.table({"frame": pa.array(range(len(jpegs)), pa.int32()), "jpeg": pa.array(jpegs, pa.binary())})
    pq.write_table(t, path, row_group_size=rg, compression=compression)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _read_parquet_random(path: Path, order: np.ndarray, rg: int, ref: list[np.ndarray]) -> tuple[float, float]:
    """Random single-frame reads as a training data loader does them: read the frame's row group,
    decode its JPEG. Returns (1 / median read time, mean PSNR vs `ref`, median fetch-only seconds)."""
    import pyarrow.parquet as pq

    from emotag_core.io.frames import decode_jpeg

    pf = pq.ParquetFile(path)  # a fresh reader: no row-group cache across random reads
    got, fetch, total = [], [], []
    for i in order:
        t0 = time.perf_counter()
        g = int(i) // rg
        data = pf.read_row_group(g, columns=["jpeg"]).column("jpeg")[int(i) - g * rg].as_py()
        t1 = time.perf_counter()
        got.append(decode_jpeg(data))
        total.append(time.perf_counter() - t0)
        fetch.append(t1 - t0)
    q = float(np.mean([_psnr(a, ref[int(i)]) for a, i in zip(got[:50], order[:50])]))
    return 1.0 / float(np.median(total)), q, float(np.median(fetch))


def _video(frames: list[np.ndarray], path: Path, crf: int) -> None:
    """An all-intra H.264 file (every frame a keyframe, so any frame decodes after one seek)."""
    import av

    size = frames[0].shape[0]
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        s.options = {"g": "1", "crf": str(crf), "preset": "veryfast"}
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _read_video_random(path: Path, order: np.ndarray, ref: list[np.ndarray]) -> tuple[float, float]:
    import av

    c = av.open(str(path))
    s = c.streams.video[0]
    s.thread_type = "NONE"
    tb = s.time_base
    got, total = [], []
    for i in order:
        t0 = time.perf_counter()
        pts = int(round(int(i) / 25 / tb))
        c.seek(pts, stream=s, any_frame=False, backward=True)
        for fr in c.decode(s):
            if fr.pts is not None and fr.pts >= pts:
                got.append(fr.to_ndarray(format="rgb24"))
                break
        total.append(time.perf_counter() - t0)
    c.close()
    q = float(np.mean([_psnr(a, ref[int(i)]) for a, i in zip(got[:50], order[:50])]))
    return 1.0 / float(np.median(total)), q, float("nan")


def bench_store(reads: int = 300, repeats: int = 3) -> None:
    """Random-access read speed of candidate frame stores: 1 / median per-frame read time, best of
    `repeats` interleaved runs (the machine is shared, so medians resist load spikes)."""
    from emotag_core.io.frames import decode_jpeg

    jpegs, size = _store_frames()
    ref = [decode_jpeg(j) for j in jpegs]  # what the JPEG store returns: the reference for PSNR
    rng = np.random.default_rng(0)
    order = rng.integers(0, len(jpegs), reads)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    cands = {}
    try:
        for rg, comp in ((32, "zstd"), (32, "none"), (8, "none"), (1, "none")):
            p = tmp / f"rg{rg}-{comp}.parquet"
            _parquet(jpegs, p, rg, comp)
            cands[f"JPEG q{_quality()} in Parquet, {rg} frames/row group, {comp}"] = (
                p, lambda p=p, rg=rg: _read_parquet_random(p, order, rg, ref))
        for crf in (12, 18):
            p = tmp / f"intra-crf{crf}.mp4"
            _video(ref, p, crf)
            cands[f"all-intra H.264 mp4 (crf {crf}), seek by pts"] = (p, lambda p=p: _read_video_random(p, order, ref))
        best: dict[str, tuple[float, float, float]] = {}
        for _ in range(repeats):  # interleaved, so load spikes hit every candidate alike
            for name, (p, fn) in cands.items():
                fps, q, fetch = fn()
                if fps > best.get(name, (0.0,))[0]:
                    best[name] = (fps, q, fetch)
        cmd, day = "python bench/bench_ingest.py store", date.today().isoformat()
        for name, (p, _) in cands.items():
            fps, q, fetch = best[name]
            qs = "reference" if "Parquet" in name else f"{q:.1f} dB"
            fs = "" if np.isnan(fetch) else f" (fetch {1e3 * fetch:.2f} ms)"
            print(f"| {name} | {reads} random reads, {len(jpegs)} frames {size}x{size} | {fps:.0f} frames/s{fs} | "
                  f"{p.stat().st_size / len(jpegs) / 1024:.0f} KiB/frame | {qs} | `{cmd}` | {machine()} | {day} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _quality() -> int:
    from emotag_core.config import load_params

    return int(load_params(ROOT / "params.yaml").ingest.jpeg_quality)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        _child(sys.argv[2], sys.argv[3])
        sys.exit(0)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ingest", "store"])
    ap.add_argument("--loops", type=int, default=6, help="loops of the sample for the long clip")
    a = ap.parse_args()
    bench_ingest(a.loops) if a.what == "ingest" else bench_store()
