"""Person masks: background, head, hair, neck and torso per frame (issue 18, item 2).

Backends are MediaPipe's legacy TFLite graphs that the `mediapipe==0.10.21` wheel ships (taken by
`emotag fetch-assets`, run with LiteRT's interpreter `ai_edge_litert`, since the Tasks API of the
installed mediapipe does not load them):

- `selfie_segmentation.tflite`: person probability at 256x256 (RGB in [0, 1], stretched);
- `pose_detection.tflite`: BlazePose's SSD person detector (224x224, RGB in [-1, 1]) with four
  alignment keypoints (0: mid-hip centre, 1: a point on the full-body circle, 2-3: upper body);
- `pose_landmark_full.tflite`: 33 + 6 auxiliary body landmarks in a 256x256 region of interest
  that MediaPipe builds from the detector's keypoints 0 and 1 (PoseDetectionToRoi: centre at
  keypoint 0, side twice the distance to keypoint 1, rotated so that vector points up, scaled
  1.25, square). The shoulders are landmarks 11 (left) and 12 (right).

The labels combine the person probability with the tracked head mesh's silhouette (head), the
face landmarks' chin line and width (where the head ends, how wide the neck is) and the pose
shoulders' line (neck above, torso below). `masks_run` is the library job behind `masks@<id>`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.progress import NO_PROGRESS, Progress

BACKEND = "mediapipe-legacy-tflite"
BACKEND_VERSION = "0.10.21+1"
MODEL_FILES = ("selfie_segmentation.tflite", "pose_detection.tflite", "pose_landmark_full.tflite")

LABELS = ("background", "head", "hair", "neck", "torso", "outside")
"""Label map values (index = value). `outside`: crop pixels beyond the source frame (padding)."""
BACKGROUND, HEAD, HAIR, NECK, TORSO, OUTSIDE = range(len(LABELS))
PERSON_LABELS = (HEAD, HAIR, NECK, TORSO)
COLOURS = np.array([(0, 0, 0), (230, 60, 60), (240, 200, 40), (60, 200, 90), (60, 110, 230), (90, 90, 90)],
                   np.uint8)  # overlay colour per label (RGB)

# MediaPipe face-mesh indices used for the head's extent
CHIN, FOREHEAD, CHEEK_R, CHEEK_L = 152, 10, 234, 454
SHOULDER_L, SHOULDER_R = 11, 12


def model_paths(model_dir: str | Path | None = None) -> dict[str, Path]:
    """The three model files; raises WeightsMissingError naming every missing path and `emotag fetch-assets`."""
    from emotag_core.assets import ASSETS, asset_home

    home = Path(model_dir).expanduser() if model_dir else asset_home()
    paths = {n: home / n for n in MODEL_FILES}
    missing = [p for p in paths.values() if not p.exists()]
    if missing:
        pkg = ASSETS[MODEL_FILES[0]].package if MODEL_FILES[0] in ASSETS else "mediapipe==0.10.21"
        raise WeightsMissingError("person masks (MediaPipe selfie segmentation + BlazePose)", missing,
                                  f"run `emotag fetch-assets` (extracts them from the {pkg} wheel)")
    return paths


def _interpreter(path: Path, threads: int) -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise WeightsMissingError("ai-edge-litert (TFLite interpreter)", [], "`pip install ai-edge-litert`") from exc
    it = Interpreter(model_path=str(path), num_threads=max(1, int(threads)))
    it.allocate_tensors()
    return it


class _Model:
    """One TFLite graph: a float32 NHWC input, named outputs."""

    def __init__(self, path: Path, threads: int) -> None:
        self.it = _interpreter(path, threads)
        d = self.it.get_input_details()[0]
        self._in = d["index"]
        self.size = (int(d["shape"][2]), int(d["shape"][1]))  # (W, H)
        self._out = [o["index"] for o in self.it.get_output_details()]

    def __call__(self, x: np.ndarray) -> list[np.ndarray]:
        self.it.set_tensor(self._in, np.ascontiguousarray(x[None], dtype=np.float32))
        self.it.invoke()
        return [self.it.get_tensor(i)[0] for i in self._out]


class SelfieSegmenter:
    """Person probability of an RGB image (MediaPipe selfie segmentation, general 256x256 model)."""

    name = "selfie_segmentation"

    def __init__(self, path: Path, threads: int = 2) -> None:
        self.model = _Model(path, threads)

    def predict(self, image: np.ndarray) -> np.ndarray:
        """[H, W, 3] uint8 RGB -> [H, W] float32 person probability in [0, 1]."""
        import cv2

        H, W = image.shape[:2]
        x = cv2.resize(image, self.model.size, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
        prob = self.model(x)[0][..., 0]
        return np.clip(cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR), 0.0, 1.0)


def ssd_anchors(size: int = 224, strides: tuple[int, ...] = (8, 16, 32, 32, 32)) -> np.ndarray:
    """Anchor centres [N, 2] (normalised x, y) of BlazePose's detector (fixed anchor size, 2 per layer).

    Consecutive layers with the same stride share one feature map (MediaPipe's SsdAnchorsCalculator),
    so 224 px gives 28^2 * 2 + 14^2 * 2 + 7^2 * 6 = 2254 anchors.
    """
    out = []
    i = 0
    while i < len(strides):
        j = i
        while j < len(strides) and strides[j] == strides[i]:
            j += 1
        per_cell = 2 * (j - i)  # aspect ratio 1 plus the interpolated scale, per layer
        fm = int(math.ceil(size / strides[i]))
        ys, xs = np.meshgrid((np.arange(fm) + 0.5) / fm, (np.arange(fm) + 0.5) / fm, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], 1)
        out.append(np.repeat(cells, per_cell, axis=0))
        i = j
    return np.concatenate(out).astype(np.float32)


@dataclass
class PoseDetection:
    score: float
    keypoints: np.ndarray
    """[4, 2] alignment keypoints in image pixels."""


@dataclass
class PoseResult:
    found: bool
    landmarks: np.ndarray
    """[39, 2] image pixels (33 body + 6 auxiliary); NaN when not found."""
    visibility: np.ndarray
    """[39] visibility probability."""
    score: float
    """Pose presence probability of the landmark model (0 when the detector found nobody)."""

    @property
    def shoulders(self) -> np.ndarray:
        """[2, 2] left, right shoulder in image pixels."""
        return self.landmarks[[SHOULDER_L, SHOULDER_R]]


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


class PoseLandmarker:
    """BlazePose: detector -> region of interest -> full landmark model, on one image."""

    name = "blazepose_full"

    def __init__(self, det_path: Path, lmk_path: Path, threads: int = 2, min_score: float = 0.5) -> None:
        self.det = _Model(det_path, threads)
        self.lmk = _Model(lmk_path, threads)
        self.anchors = ssd_anchors(self.det.size[0])
        self.min_score = min_score

    def detect(self, image: np.ndarray) -> PoseDetection | None:
        """Best person (weighted blend of the boxes overlapping the top one, IoU > 0.3) or None."""
        import cv2

        H, W = image.shape[:2]
        S = self.det.size[0]
        side = max(H, W)  # letterbox into a square, as MediaPipe's detector input does
        pad = np.zeros((side, side, 3), np.uint8)
        oy, ox = (side - H) // 2, (side - W) // 2
        pad[oy:oy + H, ox:ox + W] = image
        x = cv2.resize(pad, (S, S), interpolation=cv2.INTER_AREA).astype(np.float32) / 127.5 - 1.0
        raw, logit = self.det(x)
        score = _sigmoid(logit[:, 0])
        keep = score >= self.min_score
        if not keep.any():
            return None
        raw, score, anc = raw[keep], score[keep], self.anchors[keep]
        ctr = raw[:, 0:2] / S + anc
        wh = raw[:, 2:4] / S
        kps = raw[:, 4:12].reshape(-1, 4, 2) / S + anc[:, None]
        lo, hi = ctr - wh / 2, ctr + wh / 2
        top = int(np.argmax(score))
        inter = np.clip(np.minimum(hi, hi[top]) - np.maximum(lo, lo[top]), 0, None).prod(1)
        iou = inter / (wh.prod(1) + wh[top].prod() - inter + 1e-9)
        w = score * (iou > 0.3)
        kp = (kps * w[:, None, None]).sum(0) / w.sum()
        kp_px = kp * side - np.array([ox, oy], np.float32)
        return PoseDetection(float(score[top]), kp_px.astype(np.float32))

    @staticmethod
    def roi(det: PoseDetection, scale: float = 1.25) -> tuple[np.ndarray, float, float]:
        """Rotated square ROI (centre [2] px, side px, rotation rad) from keypoints 0 and 1."""
        c, p = det.keypoints[0], det.keypoints[1]
        side = 2.0 * float(np.linalg.norm(p - c)) * scale
        rot = math.pi / 2 - math.atan2(-(p[1] - c[1]), p[0] - c[0])   # the centre->scale vector points up
        rot = (rot + math.pi) % (2 * math.pi) - math.pi
        return c.astype(np.float32), side, rot

    def landmarks(self, image: np.ndarray, centre: np.ndarray, side: float, rot: float) -> PoseResult:
        """Landmark model on the ROI; landmarks mapped back to image pixels."""
        import cv2

        S = self.lmk.size[0]
        cs, sn = math.cos(rot), math.sin(rot)
        # crop pixel (u, v) -> image: centre + R(rot) @ ((u, v) / S - 0.5) * side
        A = np.array([[cs, -sn], [sn, cs]], np.float64) * (side / S)
        t = centre - A @ np.array([S / 2, S / 2])
        M = np.hstack([A, t[:, None]])
        crop = cv2.warpAffine(image, M, (S, S), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        out = self.lmk(crop.astype(np.float32) / 255.0)
        lm = out[0].reshape(-1, 5)   # x, y (crop px), z, visibility logit, presence logit
        flag = float(np.asarray(out[1]).reshape(-1)[0])
        pts = lm[:, :2] @ A.T + t
        return PoseResult(True, pts.astype(np.float32), _sigmoid(lm[:, 3]).astype(np.float32), flag)

    def predict(self, image: np.ndarray) -> PoseResult:
        """[H, W, 3] uint8 RGB -> pose landmarks (found=False when nobody is detected)."""
        det = self.detect(image)
        if det is None:
            return PoseResult(False, np.full((39, 2), np.nan, np.float32), np.zeros(39, np.float32), 0.0)
        res = self.landmarks(image, *self.roi(det))
        res.found = res.score >= self.min_score
        return res


@dataclass
class PersonModels:
    segmenter: SelfieSegmenter
    pose: PoseLandmarker


def load_models(model_dir: str | Path | None = None, threads: int = 2, min_pose_score: float = 0.5) -> PersonModels:
    """Both backends; fails with WeightsMissingError before any work when a file is missing."""
    p = model_paths(model_dir)
    return PersonModels(SelfieSegmenter(p["selfie_segmentation.tflite"], threads),
                        PoseLandmarker(p["pose_detection.tflite"], p["pose_landmark_full.tflite"], threads,
                                       min_pose_score))


# --- combining the signals into labels ------------------------------------------------------------

def head_silhouette(uv: np.ndarray, faces: np.ndarray, size: int) -> np.ndarray:
    """Union of the projected triangles: uv [V, 2] crop pixels, faces [F, 3] -> [size, size] bool."""
    import cv2

    m = np.zeros((size, size), np.uint8)
    tri = np.round(uv[faces] * 16).astype(np.int32)  # 4 fractional bits
    for t in tri:
        cv2.fillConvexPoly(m, t, 1, cv2.LINE_8, 4)
    return m.astype(bool)


@dataclass
class FaceFrame:
    """Where the head ends in one frame, in crop pixels."""

    chin: np.ndarray
    """[2] chin point."""
    up: np.ndarray
    """[2] unit vector chin -> forehead."""
    face_height: float
    face_width: float


def face_frame(lmk: np.ndarray) -> FaceFrame:
    """From MediaPipe face landmarks [478, >=2] in crop pixels."""
    chin, top = lmk[CHIN, :2], lmk[FOREHEAD, :2]
    d = top - chin
    h = float(np.linalg.norm(d))
    return FaceFrame(chin.astype(np.float32), (d / max(h, 1e-6)).astype(np.float32), h,
                     float(np.linalg.norm(lmk[CHEEK_L, :2] - lmk[CHEEK_R, :2])))


def compose_labels(person: np.ndarray, head: np.ndarray, face: FaceFrame, shoulders: np.ndarray | None,
                   outside: np.ndarray | None = None, hair_margin: float = 0.6,
                   neck_half_width: float = 0.4) -> np.ndarray:
    """One label map [H, W] uint8 (values index `LABELS`).

    person [H, W] bool (segmentation), head [H, W] bool (mesh silhouette), face: chin line and size,
    shoulders [2, 2] px (left, right) or None, outside [H, W] bool (padding beyond the source).
    - head: the mesh silhouette above the chin line;
    - hair: person, not head, above the chin line within `hair_margin` face heights of the head, or
      below it beside the neck within the head's width and above the shoulders (long hair);
    - neck: person below the chin line, above the shoulders' line, within `neck_half_width` face
      widths of the neck axis (the line through the chin along the head's up vector);
    - torso: the rest of the person.
    """
    import cv2

    H, W = person.shape
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    rx, ry = xs - face.chin[0], ys - face.chin[1]
    along = rx * face.up[0] + ry * face.up[1]            # > 0: above the chin line (toward the forehead)
    across = np.abs(rx * -face.up[1] + ry * face.up[0])   # distance from the neck axis
    above_chin = along > 0
    if shoulders is not None and np.isfinite(shoulders).all():
        a, b = shoulders[0], shoulders[1]
        n = np.array([-(b[1] - a[1]), b[0] - a[0]], np.float32)   # normal of the shoulders' line
        n /= max(float(np.linalg.norm(n)), 1e-6)
        if n @ face.up < 0:
            n = -n
        above_shoulders = (xs - a[0]) * n[0] + (ys - a[1]) * n[1] > 0
    else:
        above_shoulders = np.ones((H, W), bool)
    head = head & above_chin
    labels = np.zeros((H, W), np.uint8)
    labels[person] = TORSO
    r = max(1.0, hair_margin * face.face_height)
    near_head = cv2.distanceTransform((~head).astype(np.uint8), cv2.DIST_L2, 3) <= r
    head_half = 0.5 * face.face_width * (1.0 + hair_margin)
    neck = person & ~above_chin & above_shoulders & (across <= neck_half_width * face.face_width)
    hair = person & ~head & ((above_chin & near_head)
                             | (~above_chin & above_shoulders & ~neck & (across <= head_half)))
    labels[hair] = HAIR
    labels[neck] = NECK
    labels[head] = HEAD
    if outside is not None:
        labels[outside & ~head] = OUTSIDE
    return labels


def outside_mask(box: np.ndarray, src_w: int, src_h: int, size: int) -> np.ndarray:
    """Crop pixels [size, size] bool that fall outside the source frame (box: x0, y0, side, side)."""
    s = np.arange(size, dtype=np.float32) + 0.5
    x = box[0] + s * box[2] / size
    y = box[1] + s * box[3] / size
    return ~((y[:, None] >= 0) & (y[:, None] < src_h) & (x[None] >= 0) & (x[None] < src_w))


def encode_labels(labels: np.ndarray) -> bytes:
    """[H, W] uint8 label map -> PNG bytes (lossless)."""
    import cv2

    ok, buf = cv2.imencode(".png", np.ascontiguousarray(labels, np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise ValueError("PNG encoding failed")
    return buf.tobytes()


def decode_labels(data: bytes) -> np.ndarray:
    """PNG bytes -> [H, W] uint8 label map."""
    import cv2

    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if img is None or img.ndim != 2:
        raise ValueError("corrupt label PNG in the masks table")
    return img


def overlay(image: np.ndarray, labels: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """Colour-coded labels over the crop: [H, W, 3] uint8 RGB."""
    col = COLOURS[labels].astype(np.float32)
    a = np.where(labels[..., None] == BACKGROUND, 0.0, alpha)
    return (image.astype(np.float32) * (1 - a) + col * a).astype(np.uint8)


# --- the job ---------------------------------------------------------------------------------------

class MaskStore:
    """Reader of `masks.parquet`: `len`, `get(row) -> [H, W] uint8 labels`, row keys."""

    def __init__(self, path: str | Path) -> None:
        from emotag_core.io.tables import TableReader

        self.path = Path(path)
        self._r = TableReader(self.path, "masks")
        self.meta = self._r.meta
        self.table = self._r.read()

    def __len__(self) -> int:
        return self.table.num_rows

    def get(self, i: int) -> np.ndarray:
        try:
            return decode_labels(self.table.column("labels")[i].as_py())
        except ValueError as exc:
            raise InputError(self.path, f"row {i}: {exc}", "re-run the masks stage") from exc

    __getitem__ = get


def masks_run(frames_path: Path, landmarks_path: Path, flame_path: Path, out: Path, cfg: Any, flame_cfg: Any,
              overlay_path: Path | None = None, progress: Progress = NO_PROGRESS,
              max_frames: int | None = None) -> dict[str, Any]:
    """Label every frame of the frame store; writes the `masks` table (and the overlay mp4) atomically.

    cfg: `MasksConfig`; flame_cfg: the `FlameConfig` the track was made with. Returns a summary
    (rows, frames/s, fraction of frames with a pose, mean label fractions).
    """
    import time

    import contextlib

    import av
    import torch

    from emotag_core.errors import ConfigError
    from emotag_core.flame import load_head_model
    from emotag_core.io.atomic import atomic_path
    from emotag_core.io.frames import FrameStore
    from emotag_core.io.tables import TableReader, TableWriter, column_array

    models = load_models(cfg.model_dir, cfg.threads, cfg.min_pose_score)  # fails before any work
    store = FrameStore(frames_path)
    size = store.size
    keys = store.keys
    clip = keys.column("clip_id").to_pylist()
    fidx = keys.column("frame").to_numpy()
    boxes = column_array(keys, "box")
    src = store.meta.get("source") if isinstance(store.meta.get("source"), dict) else {}

    lt = TableReader(landmarks_path, "landmarks").read(columns=["clip_id", "frame", "face_found", "landmarks"])
    lmk_rows = {(c, int(f)): i for i, (c, f) in enumerate(zip(lt.column("clip_id").to_pylist(),
                                                              lt.column("frame").to_pylist()))}
    lmk = column_array(lt, "landmarks").reshape(-1, 478, 3)
    lmk_ok = column_array(lt, "face_found").astype(bool)

    fr = TableReader(flame_path, "flame")
    fmeta = fr.meta
    ft = fr.read()
    head_model = load_head_model(flame_cfg, torch.device("cpu"))
    if fmeta.get("n_expr") != head_model.n_expr:
        raise ConfigError(f"{flame_path}: tracked with n_expr={fmeta.get('n_expr')} but params flame gives a model "
                          f"with {head_model.n_expr}; re-run track@ or fix params `flame`")
    cam = fmeta["camera"]
    k_scale = size / float(cam.get("width", size))
    K = torch.tensor([[cam["fx"] * k_scale, 0, cam["cx"] * k_scale], [0, cam["fy"] * k_scale, cam["cy"] * k_scale],
                      [0, 0, 1.0]], dtype=torch.float32)
    shape = torch.tensor(fmeta["shape"], dtype=torch.float32)[None]
    flame_rows = {(c, int(f)): i for i, (c, f) in enumerate(zip(ft.column("clip_id").to_pylist(),
                                                                ft.column("frame").to_pylist()))}
    pose_keys = ("expr", "jaw", "rot", "trans")
    fp = {k: np.array(column_array(ft, k), np.float32) for k in pose_keys}
    neck = np.array(column_array(ft, "neck"), np.float32) if "neck" in ft.column_names else None  # flame v2
    faces = head_model.faces.cpu().numpy()

    n = len(store) if max_frames is None else min(len(store), max_frames)
    meta = {"fps": store.fps, "frame_size": [size, size], "backend": BACKEND, "backend_version": BACKEND_VERSION,
            "labels": list(LABELS), "encoding": "png",
            "models": {"segmentation": models.segmenter.name, "pose": models.pose.name,
                       "files": list(MODEL_FILES), "package": "mediapipe==0.10.21"},
            "head_model": fmeta.get("flame_model"), "seg_threshold": cfg.seg_threshold,
            "hair_margin": cfg.hair_margin, "neck_half_width": cfg.neck_half_width}
    counts = np.zeros(len(LABELS))
    n_pose = 0
    last_face: dict[str, FaceFrame] = {}
    last_sh: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(TableWriter(out, "masks", meta, row_group_size=64))
        vout = st = None
        if overlay_path is not None:
            vout = stack.enter_context(av.open(str(stack.enter_context(atomic_path(overlay_path))), "w", format="mp4"))
            st = vout.add_stream("libx264", rate=int(round(store.fps)))
            st.width = st.height = size
            st.pix_fmt = "yuv420p"
            st.options = {"crf": "23", "preset": "veryfast"}
        buf: dict[str, list] = {k: [] for k in ("clip_id", "frame", "labels", "pose_found", "shoulders",
                                                 "shoulder_vis", "person_frac")}
        for i in range(n):
            img = store.get(i)
            c, f = clip[i], int(fidx[i])
            prob = models.segmenter.predict(img)
            pose = models.pose.predict(img)
            # head silhouette from the tracked mesh
            r = flame_rows.get((c, f))
            if r is None:
                raise InputError(flame_path, f"no FLAME row for clip {c!r} frame {f}", "re-run track@")
            with torch.no_grad():
                kw = {} if neck is None else {"neck": torch.as_tensor(neck[r:r + 1])}
                v = head_model(shape, *(torch.as_tensor(fp[k][r:r + 1]) for k in pose_keys), **kw)
                uv = head_model.project(v, K[None])[0].numpy()
            head = head_silhouette(uv, faces, size)
            li = lmk_rows.get((c, f))
            if li is not None and lmk_ok[li]:
                face = last_face[c] = face_frame(lmk[li])
            elif c in last_face:
                face = last_face[c]
            else:  # no face landmarks yet: the mesh's own landmark embedding
                with torch.no_grad():
                    ml = head_model.project(head_model.landmarks(v), K[None])[0].numpy()
                face = face_frame(ml)
            sh = pose.shoulders if pose.found else last_sh.get(c)
            if pose.found:
                last_sh[c] = pose.shoulders
                n_pose += 1
            s = src.get(c, {})
            outside = (outside_mask(boxes[i], int(s["width"]), int(s["height"]), size)
                       if "width" in s and "height" in s else None)
            labels = compose_labels(prob >= cfg.seg_threshold, head, face, sh, outside,
                                    cfg.hair_margin, cfg.neck_half_width)
            counts += np.bincount(labels.ravel(), minlength=len(LABELS))
            buf["clip_id"].append(c)
            buf["frame"].append(f)
            buf["labels"].append(encode_labels(labels))
            buf["pose_found"].append(bool(pose.found))
            shv = pose.shoulders if pose.found else np.full((2, 2), -1.0, np.float32)
            buf["shoulders"].append(shv.reshape(-1).astype(np.float32))
            buf["shoulder_vis"].append(pose.visibility[[SHOULDER_L, SHOULDER_R]])
            buf["person_frac"].append(float(np.isin(labels, PERSON_LABELS).mean()))
            if vout is not None:
                frame = av.VideoFrame.from_ndarray(overlay(img, labels), format="rgb24")
                for pkt in st.encode(frame):
                    vout.mux(pkt)
            if len(buf["frame"]) == 64 or i == n - 1:
                w.write({"clip_id": np.array(buf["clip_id"]), "frame": np.array(buf["frame"], np.int32),
                         "labels": buf["labels"], "pose_found": np.array(buf["pose_found"]),
                         "shoulders": np.stack(buf["shoulders"]), "shoulder_vis": np.stack(buf["shoulder_vis"]),
                         "person_frac": np.array(buf["person_frac"], np.float32)})
                buf = {k: [] for k in buf}
            progress(i + 1, n)
        if vout is not None:
            for pkt in st.encode():
                vout.mux(pkt)
        rows = w.rows
    dt = time.perf_counter() - t0
    frac = counts / max(counts.sum(), 1)
    return {"rows": rows, "seconds": dt, "fps": rows / max(dt, 1e-9), "pose_found": n_pose / max(rows, 1),
            "label_fraction": {name: float(x) for name, x in zip(LABELS, frac)}}
