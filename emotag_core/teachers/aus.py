"""Action Unit teacher: OpenFace AU names (AU01 ... AU45) on OpenFace's 0-5 intensity scale.

The `aus` job is `aus_run` (the DVC stage `aus@<id>` is a thin door to it).

Every backend returns the full OpenFace set `OPENFACE_AUS` plus the names it really measures
(`available_aus`); the others are 0. The paper reads AUs from OpenFace (Sec. 3.2.1: the upper-face
set feeds the expression feature E; AUE-L/U evaluation needs lower and upper).

Backends
- `mediapipe` (offline, default): from the `landmarks` table. Each AU is the MediaPipe blendshape
  of the same muscle action (left/right averaged): browInnerUp->AU01, browOuterUp->AU02,
  browDown->AU04, eyeWide->AU05, eyeSquint->AU07, mouthUpperUp->AU10, mouthSmile->AU12,
  mouthDimple->AU14, mouthFrown->AU15, mouthShrugLower->AU17, mouthStretch->AU20,
  mouthPress->AU23, jawOpen->AU26, eyeBlink->AU45. AU25 (lips part) has no blendshape and is
  measured on the mesh: inner-lip gap (points 13/14) over the outer-eye-corner distance
  (33/263), full scale at `LIPS_PART_FULL`. The shipped model's cheekSquint and noseSneer
  outputs are constant ~1e-5 on every real face we tried (posed disgust and happy photos, the
  laughing clip), so AU06 (cheek raiser) uses max(cheekSquint, min(eyeSquint, mouthSmile)) -
  the lower-lid raise that accompanies a smile - and AU09 is reported unavailable.
- `openface_csv`: importer of OpenFace 2.x `FeatureExtraction` CSVs (`AUxx_r` columns).
- `pyfeat`: py-feat's Detectorv2 (RetinaFace + multitask network), weights from the HF cache.

Calibration of the `mediapipe` backend to the 0-5 scale (documented, checked in tests):
1. Person-specific neutral offset, as OpenFace does for its dynamic AU models: per clip, the
   `baseline_percentile`-th percentile of each raw activation (over frames with a face) is taken
   as that person's rest value and subtracted. Rest-face signals (e.g. eyeSquint ~0.3 on an open
   eye) would otherwise read as a constant AU.
2. Linear gain: a blendshape spans 0 (absent) to 1 (maximal action), FACS intensities span
   trace (A=1) to maximum (E=5) on OpenFace's scale, so full activation above rest maps to 5:
   `AU = clip(gain * (raw - rest) / (1 - rest), 0, 5)` with `gain = 5`.
3. Check against real OpenFace output: py-feat ships a real `FeatureExtraction` CSV
   (`feat/tests/data/OpenFace_Test.csv`, a calm face). Its per-AU medians are <= 0.65 and its
   95th percentiles <= 1.1 (largest: AU45 1.4 on blinks). The tests assert that on calm real
   frames this backend's per-AU medians stay in that range (below 1), while expressive real frames
   (closed eyes while crying, laughing) reach >= 2, i.e. the same part of the scale OpenFace uses.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from emotag_core.errors import InputError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import OPENFACE_AUS, TableReader, TableWriter, column_array
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.teachers import Backend, WeightsStatus, no_weights, register_backend

SCALE = "openface_0_5"
# OpenFace AU -> MediaPipe blendshape(s) of the same action (averaged); AU25 comes from the mesh.
BLENDSHAPE_TO_AU: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",),
    "AU02": ("browOuterUpLeft", "browOuterUpRight"),
    "AU04": ("browDownLeft", "browDownRight"),
    "AU05": ("eyeWideLeft", "eyeWideRight"),
    "AU06": ("cheekSquintLeft", "cheekSquintRight"),  # + smile-squint proxy, see module doc
    "AU07": ("eyeSquintLeft", "eyeSquintRight"),
    "AU10": ("mouthUpperUpLeft", "mouthUpperUpRight"),
    "AU12": ("mouthSmileLeft", "mouthSmileRight"),
    "AU14": ("mouthDimpleLeft", "mouthDimpleRight"),
    "AU15": ("mouthFrownLeft", "mouthFrownRight"),
    "AU17": ("mouthShrugLower",),
    "AU20": ("mouthStretchLeft", "mouthStretchRight"),
    "AU23": ("mouthPressLeft", "mouthPressRight"),
    "AU26": ("jawOpen",),
    "AU45": ("eyeBlinkLeft", "eyeBlinkRight"),
}
LIPS_PART_FULL = 0.5  # inner-lip gap / outer-eye-corner distance that counts as AU25 at 5
_UPPER_LIP, _LOWER_LIP, _EYE_R, _EYE_L = 13, 14, 33, 263  # MediaPipe mesh indices


@dataclass
class AuFrames:
    """AU intensities of a run of frames."""

    face_found: np.ndarray  # [N] bool
    aus: np.ndarray         # [N, 17] float32, OPENFACE_AUS order, 0-5 (0 where unavailable / no face)
    available: tuple[str, ...]

    def columns(self) -> dict[str, np.ndarray]:
        """Columns of the `aus` table (without keys)."""
        cols: dict[str, np.ndarray] = {"face_found": self.face_found.astype(bool)}
        for j, name in enumerate(OPENFACE_AUS):
            cols[name] = self.aus[:, j].astype(np.float32)
        return cols


# ----------------------------------------------------------------------------- mediapipe


class MediapipeAus:
    """AUs from MediaPipe blendshapes + mesh (offline), calibrated per clip (see module doc)."""

    name = "mediapipe"
    version = "blendshape-map-1"
    available = tuple(a for a in OPENFACE_AUS if a != "AU09")  # noseSneer is dead in the shipped model

    def __init__(self, cfg: Any = None) -> None:
        self.baseline_percentile = float(getattr(cfg, "baseline_percentile", 5.0))
        self.gain = float(getattr(cfg, "gain", 5.0))

    def raw(self, blendshapes: np.ndarray, names: list[str] | tuple[str, ...], landmarks: np.ndarray) -> np.ndarray:
        """Raw activations in [0, 1]: blendshapes [N, 52] + landmarks [N, 478, 3] -> [N, 17]."""
        index = {n: i for i, n in enumerate(names)}
        out = np.zeros((len(blendshapes), len(OPENFACE_AUS)), np.float32)
        for j, au in enumerate(OPENFACE_AUS):
            if au not in self.available:
                continue
            if au == "AU25":
                gap = np.linalg.norm(landmarks[:, _LOWER_LIP, :2] - landmarks[:, _UPPER_LIP, :2], axis=1)
                iod = np.linalg.norm(landmarks[:, _EYE_L, :2] - landmarks[:, _EYE_R, :2], axis=1)
                out[:, j] = np.clip(gap / np.maximum(iod, 1e-6) / LIPS_PART_FULL, 0, 1)
                continue
            missing = [b for b in BLENDSHAPE_TO_AU[au] if b not in index]
            if missing:
                raise InputError(None, f"landmarks table: blendshapes {missing} (needed for {au}) are not in "
                                       f"its blendshape_names", "re-run landmarks@<id> with the mediapipe backend")
            out[:, j] = blendshapes[:, [index[b] for b in BLENDSHAPE_TO_AU[au]]].mean(1)
        j6, j7, j12 = (OPENFACE_AUS.index(a) for a in ("AU06", "AU07", "AU12"))
        out[:, j6] = np.maximum(out[:, j6], np.minimum(out[:, j7], out[:, j12]))
        return out

    def baseline(self, raw: np.ndarray, face_found: np.ndarray) -> np.ndarray:
        """Per-person rest activation: [N, 17] -> [17] (zeros if no face at all or percentile 0)."""
        if not face_found.any() or self.baseline_percentile <= 0:
            return np.zeros(raw.shape[1], np.float32)
        return np.percentile(raw[face_found], self.baseline_percentile, axis=0).astype(np.float32)

    def calibrate(self, raw: np.ndarray, rest: np.ndarray, face_found: np.ndarray) -> np.ndarray:
        """Raw [N, 17] in [0, 1] -> OpenFace 0-5 intensities [N, 17] (0 where no face)."""
        span = np.maximum(1.0 - rest, 1e-3)
        aus = np.clip(self.gain * (raw - rest) / span, 0.0, 5.0).astype(np.float32)
        aus[~face_found] = 0.0
        return aus

    def predict(self, blendshapes: np.ndarray, names: list[str] | tuple[str, ...], landmarks: np.ndarray,
                face_found: np.ndarray) -> AuFrames:
        """One clip: blendshapes [N, 52], landmarks [N, 478, 3], face_found [N] -> AuFrames."""
        face_found = np.asarray(face_found, bool)
        raw = self.raw(blendshapes, names, landmarks)
        return AuFrames(face_found, self.calibrate(raw, self.baseline(raw, face_found), face_found), self.available)


# ----------------------------------------------------------------------------- OpenFace CSV


@dataclass
class OpenFaceTrack:
    """The AU part of one OpenFace FeatureExtraction CSV."""

    path: Path
    frame: np.ndarray      # [M] int, OpenFace's 1-based frame numbers
    t: np.ndarray          # [M] float seconds
    success: np.ndarray    # [M] bool
    aus: np.ndarray        # [M, 17] float32 in OPENFACE_AUS order (0 for absent columns)
    available: tuple[str, ...]


def read_openface_csv(path: str | Path) -> OpenFaceTrack:
    """Parse an OpenFace 2.x FeatureExtraction CSV (columns `frame, timestamp, success, AUxx_r`)."""
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(path, "OpenFace CSV not found", "run OpenFace FeatureExtraction or set aus.csv_dir")
    try:
        df = pd.read_csv(path, skipinitialspace=True)
    except (ValueError, pd.errors.ParserError) as exc:
        raise InputError(path, f"not a readable CSV ({exc})", "pass FeatureExtraction's output CSV") from exc
    df.columns = [str(c).strip() for c in df.columns]
    for col in ("timestamp", "success"):
        if col not in df.columns:
            raise InputError(path, f"column `{col}` is missing; this is not an OpenFace FeatureExtraction CSV",
                             "run FeatureExtraction with -aus (or -au_static) to get AUxx_r columns")
    present = tuple(a for a in OPENFACE_AUS if f"{a}_r" in df.columns)
    if not present:
        raise InputError(path, "no AU intensity columns (AUxx_r)", "run FeatureExtraction with the -aus flag")
    aus = np.zeros((len(df), len(OPENFACE_AUS)), np.float32)
    for j, a in enumerate(OPENFACE_AUS):
        if a in present:
            v = pd.to_numeric(df[f"{a}_r"], errors="coerce").to_numpy(np.float64)
            bad = ~np.isfinite(v)
            if bad.any():
                raise InputError(path, f"column `{a}_r` has {int(bad.sum())} non-numeric values "
                                       f"(first at row {int(np.argmax(bad))})", "re-export the CSV")
            aus[:, j] = np.clip(v, 0.0, 5.0)
    frame = (df["frame"].to_numpy(np.int64) if "frame" in df.columns else np.arange(1, len(df) + 1))
    return OpenFaceTrack(path, frame, df["timestamp"].to_numpy(np.float64),
                         df["success"].to_numpy(np.float64) > 0.5, aus, present)


class OpenFaceCsvAus:
    """Importer: AUs from OpenFace FeatureExtraction CSVs, one CSV per clip (`<clip_id>.csv`)."""

    name = "openface_csv"
    version = "openface-2.x-csv"

    def __init__(self, cfg: Any = None) -> None:
        self.csv_dir = getattr(cfg, "csv_dir", None)
        self.align = getattr(cfg, "csv_align", "time")

    def csv_for(self, clip_id: str) -> Path:
        if not self.csv_dir:
            from emotag_core.errors import ConfigError

            raise ConfigError("params: aus.backend is `openface_csv` but aus.csv_dir is not set; "
                              "set it to the folder of FeatureExtraction CSVs named <clip_id>.csv")
        return Path(self.csv_dir) / f"{clip_id}.csv"

    def predict(self, track: OpenFaceTrack, frames: np.ndarray, t: np.ndarray, fps: float) -> AuFrames:
        """AUs at our frames ([N] frame numbers and [N] seconds) from one OpenFace track.

        `csv_align: time` takes the CSV row nearest in time (OpenFace run on the source video, any
        fps); `frame` takes CSV frame `frame + 1` (OpenFace run on our 25 fps crops). Our frames
        with no CSV row within half a frame, or with success = 0, get face_found False.
        """
        n = len(frames)
        if self.align == "frame":
            pos = np.searchsorted(track.frame, frames + 1)
            pos = np.clip(pos, 0, len(track.frame) - 1)
            hit = track.frame[pos] == frames + 1
        else:
            order = np.argsort(track.t)
            ts = track.t[order]
            right = np.clip(np.searchsorted(ts, t), 0, len(ts) - 1)
            left = np.clip(right - 1, 0, len(ts) - 1)
            near = np.where(np.abs(ts[left] - t) <= np.abs(ts[right] - t), left, right)
            hit = np.abs(ts[near] - t) <= 0.5 / fps + 1e-6
            pos = order[near]
        found = hit & track.success[pos]
        aus = np.where(found[:, None], track.aus[pos], 0.0).astype(np.float32)
        return AuFrames(found.reshape(n), aus, track.available)


# ----------------------------------------------------------------------------- py-feat

PYFEAT_FILES = (
    ("py-feat/face_multitask_v2", ("face_multitask_v28.safetensors",)),
    ("py-feat/retinaface_r34", ("model.safetensors", "retinaface_r34.safetensors")),
)


def _hf_cache_dirs() -> list[Path]:
    import importlib.util

    dirs = []
    spec = importlib.util.find_spec("feat")  # py-feat keeps its HF cache in feat/resources (no import: slow)
    if spec is not None and spec.origin is not None:
        dirs.append(Path(spec.origin).parent / "resources")
    dirs.append(Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub")))
    return dirs


def _hf_cached(repo: str, filenames: tuple[str, ...], dirs: list[Path]) -> tuple[str | None, list[str]]:
    from huggingface_hub import try_to_load_from_cache

    looked = []
    for d in dirs:
        for fn in filenames:
            looked.append(f"{d}/models--{repo.replace('/', '--')}/snapshots/*/{fn}")
            hit = try_to_load_from_cache(repo, fn, cache_dir=str(d))
            if isinstance(hit, str) and Path(hit).exists():
                return hit, looked
    return None, looked


def locate_pyfeat(cfg: Any = None) -> WeightsStatus:
    """py-feat Detectorv2 needs its multitask checkpoint and RetinaFace weights in an HF cache."""
    how = ("on a machine with hub access run `python -c \"from feat import Detectorv2; Detectorv2(identity_model=None)\"` "
           "and copy the cache (py-feat's feat/resources or ~/.cache/huggingface/hub) here, "
           "or set aus.weights_path to the multitask .safetensors")
    dirs = _hf_cache_dirs()
    looked: list[str] = []
    found: list[str] = []
    for repo, names in PYFEAT_FILES:
        explicit = getattr(cfg, "weights_path", None) or os.environ.get("FEAT_MULTITASK_WEIGHTS")
        if repo.endswith("multitask_v2") and explicit:
            looked.append(str(explicit))
            if Path(explicit).exists():
                found.append(str(explicit))
            continue
        hit, where = _hf_cached(repo, names, dirs)
        looked += where
        if hit:
            found.append(hit)
    ok = len(found) == len(PYFEAT_FILES)
    return WeightsStatus(ok, tuple(looked), how, found[0] if ok else None)


class PyFeatAus:
    """py-feat Detectorv2 AUs (probabilities 0-1, times 5 onto the OpenFace scale)."""

    name = "pyfeat"

    def __init__(self, cfg: Any = None) -> None:
        from emotag_core.teachers import require

        st = require("aus", "pyfeat", cfg)  # before any work: WeightsMissingError names the cache paths
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download at run time
        from feat import Detectorv2

        self.detector = Detectorv2(identity_model=None, multitask_weights=st.found)
        names = list(self.detector.multitask.au_names)
        # py-feat v2.4+ has no AU45 head; its AU43 (eyes closed) is the same lid-closure measure
        self.source = {a: (a if a in names else ("AU43" if a == "AU45" and "AU43" in names else None))
                       for a in OPENFACE_AUS}
        self.available = tuple(a for a, s in self.source.items() if s is not None)
        self._names = names

    @property
    def version(self) -> str:
        import feat

        return f"py-feat {feat.__version__} Detectorv2"

    def predict(self, images: np.ndarray) -> AuFrames:
        """images [B, H, W, 3] uint8 RGB -> AuFrames (largest face per frame)."""
        import torch

        b = len(images)
        tensor = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)  # [B, 3, H, W] uint8
        fex = self.detector.detect(tensor, data_type="tensor", batch_size=b, progress_bar=False)
        aus = np.zeros((b, len(OPENFACE_AUS)), np.float32)
        found = np.zeros(b, bool)
        df = fex.reset_index(drop=True)
        for i in range(b):
            rows = df[df["frame"] == i]
            rows = rows[rows[self._names].notna().all(axis=1)] if len(rows) else rows
            if not len(rows):
                continue
            area = (rows["FaceRectWidth"] * rows["FaceRectHeight"]).to_numpy()
            r = rows.iloc[int(np.argmax(area))]
            for j, a in enumerate(OPENFACE_AUS):
                if self.source[a] is not None:
                    aus[i, j] = float(np.clip(5.0 * r[self.source[a]], 0, 5))
            found[i] = True
        return AuFrames(found, aus, self.available)


BACKENDS: dict[str, type] = {"mediapipe": MediapipeAus, "openface_csv": OpenFaceCsvAus, "pyfeat": PyFeatAus}

register_backend(Backend("aus", "mediapipe", False,
                         "MediaPipe blendshapes + mesh mapped to OpenFace AUs (needs the landmarks table)", no_weights))
register_backend(Backend("aus", "openface_csv", True,
                         "importer of OpenFace FeatureExtraction CSVs (the paper runs OpenFace)",
                         lambda cfg: WeightsStatus(
                             bool(getattr(cfg, "csv_dir", None)) and Path(getattr(cfg, "csv_dir", "") or ".").is_dir(),
                             (str(getattr(cfg, "csv_dir", None)),),
                             "run OpenFace FeatureExtraction -aus on each clip and set aus.csv_dir")))
register_backend(Backend("aus", "pyfeat", False, "py-feat Detectorv2 (RetinaFace + multitask AU head)", locate_pyfeat))


def load(backend: str, cfg: Any = None) -> Any:
    """The AU backend `backend`; paper/pretrained backends fail before work if weights are missing."""
    from emotag_core.teachers import get_backend

    get_backend("aus", backend)
    return BACKENDS[backend](cfg)


# -- the `aus` job: one table per identity --------------------------------------------------------------


def _meta(fps: float, size: int, teacher: Any, available: tuple[str, ...]) -> dict:
    return {"fps": fps, "frame_size": [size, size], "backend": teacher.name, "backend_version": teacher.version,
            "aus": list(OPENFACE_AUS), "available_aus": list(available), "scale": SCALE}


def run_mediapipe(landmarks_path: Path, out_path: Path, cfg: Any,
                  progress: Progress = NO_PROGRESS) -> int:
    """AUs from the landmarks table: stream raw activations, calibrate per clip, write atomically; rows written."""
    teacher = MediapipeAus(cfg)
    reader = TableReader(landmarks_path, "landmarks")
    names = reader.meta["blendshape_names"]
    size = int(reader.meta["frame_size"][0])
    keys_c, keys_f, found, raw = [], [], [], []
    done = 0
    for batch in reader.iter_batches(1024, columns=["clip_id", "frame", "face_found", "blendshapes", "landmarks"]):
        t = pa.Table.from_batches([batch])
        lm = column_array(t, "landmarks").reshape(-1, 478, 3)
        raw.append(teacher.raw(column_array(t, "blendshapes"), names, lm))
        keys_c.append(t.column("clip_id").to_numpy(zero_copy_only=False))
        keys_f.append(t.column("frame").to_numpy())
        found.append(column_array(t, "face_found").astype(bool))
        done += t.num_rows
        progress(done, reader.num_rows)
    clip = np.concatenate(keys_c) if keys_c else np.array([], object)
    frame = np.concatenate(keys_f) if keys_f else np.array([], np.int32)
    ff = np.concatenate(found) if found else np.array([], bool)
    r = np.concatenate(raw) if raw else np.zeros((0, len(OPENFACE_AUS)), np.float32)
    values = np.zeros_like(r)
    for c in dict.fromkeys(clip.tolist()):  # per-clip (per-person) rest offset
        m = clip == c
        values[m] = teacher.calibrate(r[m], teacher.baseline(r[m], ff[m]), ff[m])
    with TableWriter(out_path, "aus", _meta(float(reader.meta["fps"]), size, teacher, teacher.available)) as out:
        out.write({"clip_id": clip, "frame": frame.astype(np.int32),
                   **AuFrames(ff, values, teacher.available).columns()})
        return out.rows


def run_openface_csv(frames_path: Path, out_path: Path, cfg: Any,
                     progress: Progress = NO_PROGRESS) -> int:
    """AUs imported from `<csv_dir>/<clip_id>.csv`, aligned to the frame store's frames; rows written."""
    teacher = OpenFaceCsvAus(cfg)
    store = FrameStore(frames_path)
    keys = store.keys
    clip = keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = keys.column("frame").to_numpy()
    t = keys.column("t").to_numpy()
    tracks = {c: read_openface_csv(teacher.csv_for(c)) for c in store.clip_ids}  # all CSVs checked first
    available = tuple(a for a in OPENFACE_AUS if all(a in tr.available for tr in tracks.values()))
    with TableWriter(out_path, "aus", _meta(store.fps, store.size, teacher, available)) as out:
        for c, tr in tracks.items():
            m = clip == c
            res = teacher.predict(tr, frame[m], t[m], store.fps)
            res.aus[:, [j for j, a in enumerate(OPENFACE_AUS) if a not in available]] = 0.0
            out.write({"clip_id": clip[m], "frame": frame[m], **res.columns()})
            progress(out.rows, len(clip))
        return out.rows


def run_pyfeat(frames_path: Path, out_path: Path, cfg: Any, progress: Progress = NO_PROGRESS) -> int:
    """AUs of every frame through py-feat's detector; rows written."""
    teacher = PyFeatAus(cfg)  # WeightsMissingError before any work
    store = FrameStore(frames_path)
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    with TableWriter(out_path, "aus", _meta(store.fps, store.size, teacher, teacher.available)) as out:
        done = 0
        for rows, images in store.iter_batches(cfg.batch_size):
            out.write({"clip_id": clip[rows], "frame": frame[rows], **teacher.predict(images).columns()})
            done += len(rows)
            progress(done, len(store))
        return out.rows


def aus_run(frames_path: Path | None, landmarks_path: Path | None, out_path: Path, cfg: Any,
            progress: Progress = NO_PROGRESS) -> int:
    """The `aus` table of an identity (atomic) with backend `cfg.backend` (`AusConfig`); rows written.

    `mediapipe` reads `landmarks_path`, `openface_csv` and `pyfeat` read the frame store `frames_path`;
    an unknown backend is a ConfigError listing the known ones, before any work.
    """
    from emotag_core.teachers import get_backend

    get_backend("aus", cfg.backend)
    need = {"mediapipe": ("landmarks", landmarks_path)}.get(cfg.backend, ("frames", frames_path))
    if need[1] is None:
        raise InputError(None, f"aus backend `{cfg.backend}` reads the {need[0]} table, and none was given",
                         f"pass the {need[0]} table's path")
    run = {"mediapipe": run_mediapipe, "openface_csv": run_openface_csv, "pyfeat": run_pyfeat}[cfg.backend]
    return run(need[1], out_path, cfg, progress)
