"""Synthetic talking-head clips with known truth: espeak-ng (or packaged real) speech, viseme-driven mouth,
emotion-driven upper face, small head motion, random shape and camera, textured rendering.

Everything follows from `SynthConfig.seed` (and the clip index). The generator takes a head
model with the `emotag_core.flame` HeadModel interface; it knows nothing about `data/` paths.
"""
from __future__ import annotations

import json
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from emotag_core.config import SynthConfig
from emotag_core.errors import ConfigError
from emotag_core.synth import render as rz
from emotag_core.synth.real_speech import check_sources, load_source, pick_source
from emotag_core.synth.speech import Phoneme, pick_text, sentences_for, speak
from emotag_core.synth.texture import background_image, bake_uv_texture, load_image, photo_landmarks, \
    vertex_photo_coords
from emotag_core.synth.visemes import LIP_CHANNELS, mouth_track

EMOTION_LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")  # DeepFace order
INTENSITY_SCALE = {0: 0.0, 1: 0.4, 2: 0.7, 3: 1.0}
# FACS prototypes of the basic emotions: AU -> activation (0-1) at full intensity
EMOTION_AUS: dict[str, dict[str, float]] = {
    "angry": {"AU04": 1.0, "AU05": 0.4, "AU07": 0.7, "AU23": 0.5, "AU24": 0.3},
    "disgust": {"AU09": 0.9, "AU10": 0.6, "AU04": 0.4, "AU15": 0.3, "AU07": 0.3},
    "fear": {"AU01": 0.8, "AU02": 0.6, "AU04": 0.5, "AU05": 0.8, "AU20": 0.6},
    "happy": {"AU06": 0.8, "AU12": 1.0},
    "sad": {"AU01": 0.8, "AU04": 0.6, "AU15": 0.7, "AU17": 0.3},
    "surprise": {"AU01": 1.0, "AU02": 1.0, "AU05": 0.9},
    "neutral": {},
}
# how each emotion scales the mouth's amplitude at full intensity (1 + value * scale)
EMOTION_MOUTH = {"angry": 0.15, "disgust": -0.1, "fear": 0.05, "happy": 0.1, "sad": -0.25,
                 "surprise": 0.25, "neutral": 0.0}
# lip-shape channels -> AUs (activation per unit channel)
LIP_AUS: dict[str, dict[str, float]] = {
    "spread": {"AU20": 0.5, "AU12": 0.2},
    "round": {"AU23": 0.6, "AU18": 0.6, "AU22": 0.4},
    "press": {"AU24": 0.8, "AU23": 0.2},
    "bite": {"AU10": 0.5},
}
BLINK_AUS = ("AU45", "AU43")
# FACS AUs -> ARKit-named shapes of the ICT model (ICT-FaceKit's README table; split L/R shapes both)
AU_TO_ARKIT: dict[str, tuple[str, ...]] = {
    "AU01": ("browInnerUp",), "AU02": ("browOuterUp",), "AU04": ("browDown",), "AU05": ("eyeWide",),
    "AU06": ("cheekSquint",), "AU07": ("eyeSquint",), "AU09": ("noseSneer",), "AU10": ("mouthShrugUpper",),
    "AU12": ("mouthSmile",), "AU14": ("mouthDimple",), "AU15": ("mouthFrown",), "AU17": ("mouthShrugLower",),
    "AU18": ("mouthPucker",), "AU20": ("mouthStretch",), "AU22": ("mouthFunnel",), "AU23": ("mouthPress",),
    "AU24": ("mouthPress",), "AU45": ("eyeBlink",),
}
MOUTH_INSIDE = np.array([70.0, 25.0, 30.0])
TEETH = np.array([225.0, 220.0, 205.0])


@dataclass
class Identity:
    """What is fixed for one synthetic identity."""

    seed: int
    shape: np.ndarray            # [S]
    K: np.ndarray                # [3, 3] intrinsics of the rendered frame
    photo: str
    background: str
    base_trans: np.ndarray       # [3] head position, metres


@dataclass
class Segment:
    """One utterance and the emotion it is spoken with."""

    start: float
    end: float                   # end of speech (the segment's emotion lasts until the next start)
    voice: str
    text: str
    rate: int
    pitch: int
    emotion: str
    intensity: int


@dataclass
class Script:
    """The clip's audio and timeline."""

    audio: np.ndarray            # [N] float32
    sample_rate: int
    segments: list[Segment]
    phonemes: list[tuple[Phoneme, int]]   # phoneme on the clip's time axis, segment index


@dataclass
class Truth:
    """Per-frame true parameters of a clip (what the renderer was given)."""

    expr: np.ndarray             # [T, E]
    jaw: np.ndarray              # [T, 3]
    rot: np.ndarray              # [T, 3]
    trans: np.ndarray            # [T, 3]
    au: np.ndarray               # [T, A] activation (0-1) of `au_names`
    au_names: list[str]
    emotion: np.ndarray          # [T] int, index into EMOTION_LABELS
    intensity: np.ndarray        # [T] int, 0 (neutral) or 1-3
    emotion_strength: np.ndarray  # [T] float, applied expression scale after smoothing
    segment: np.ndarray          # [T] int
    speaking: np.ndarray         # [T] bool
    phoneme: list[str]
    viseme: list[str]
    extra: dict[str, Any] = field(default_factory=dict)


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _check(cfg: SynthConfig) -> None:
    bad = [e for e in cfg.emotions if e not in EMOTION_LABELS]
    if bad:
        raise ConfigError(f"synth.emotions: unknown label(s) {bad}; use {list(EMOTION_LABELS)}")
    badl = [i for i in cfg.intensity_levels if i not in (1, 2, 3)]
    if badl:
        raise ConfigError(f"synth.intensity_levels: {badl} not in 1-3")
    if not cfg.voices or not cfg.photos or not cfg.backgrounds:
        raise ConfigError("synth.voices, synth.photos and synth.backgrounds must each name at least one")
    if cfg.speech == "real":
        check_sources(cfg.speech_set)                         # a missing recording fails before any work
    elif cfg.speech == "espeak":
        for v in cfg.voices:
            sentences_for(v, cfg.sentence_set)
    else:
        raise ConfigError(f"synth.speech: `{cfg.speech}` is not one of ['espeak', 'real']")
    if cfg.seconds < 1.0 or cfg.size < 64 or cfg.fps <= 0:
        raise ConfigError(f"synth: seconds >= 1, size >= 64 and fps > 0 needed "
                          f"(got {cfg.seconds}, {cfg.size}, {cfg.fps})")


MIRROR = np.array([-1.0, 1.0, 1.0])                           # left/right mirror of the model frame (x -> -x)


def mirror_permutation(model: torch.nn.Module) -> np.ndarray:
    """Index map [V] of the template's vertices under the left/right mirror (the first 478 are MediaPipe's
    points, irises included). Raises ConfigError when the template is not mirror-symmetric about x = 0."""
    from scipy.spatial import cKDTree

    v = model.v_template.detach().cpu().numpy().astype(np.float64)                  # [V, 3]
    dist, perm = cKDTree(v).query(v * MIRROR)
    if dist.max() > 0.01 * np.ptp(v[:, 0]):
        raise ConfigError("the head model's template is not left/right symmetric about x = 0 "
                          "(synth.shape_asym needs it: set synth.shape_asym: 1.0)")
    return perm


def shape_parity(model: torch.nn.Module) -> np.ndarray:
    """+1 for each shape component that deforms the head left/right symmetrically, -1 for an antisymmetric one.

    Returns [S]. Raises ConfigError when the template is not mirror-symmetric or a component is neither.
    """
    perm = mirror_permutation(model)
    d = model.shapedirs[:, :, : model.n_shape].detach().cpu().numpy().astype(np.float64)  # [V, 3, S]
    dm = (d[perm] * MIRROR[None, :, None]).reshape(-1, model.n_shape)                   # mirrored components
    d = d.reshape(-1, model.n_shape)
    norm = np.linalg.norm(d, axis=0) + 1e-12
    sym, anti = np.linalg.norm(d - dm, axis=0) / norm, np.linalg.norm(d + dm, axis=0) / norm
    bad = np.flatnonzero(np.minimum(sym, anti) > 0.3).tolist()
    if bad:
        raise ConfigError(f"synth.shape_asym: shape components {bad} are neither symmetric nor antisymmetric; "
                          "set synth.shape_asym: 1.0")
    return np.where(sym <= anti, 1, -1)


@torch.no_grad()
def sample_identity(model: torch.nn.Module, cfg: SynthConfig) -> Identity:
    """Random shape, intrinsics (not told to the tracker), photo and background of an identity."""
    _check(cfg)
    rng = _rng(cfg.seed, 0)
    shape = rng.normal(0.0, cfg.shape_std, model.n_shape).astype(np.float32)
    if cfg.shape_asym != 1.0:                                 # the same draws, antisymmetric parts scaled
        shape = shape * np.where(shape_parity(model) < 0, cfg.shape_asym, 1.0).astype(np.float32)
    f = rng.uniform(*cfg.focal_range) * cfg.size
    cx, cy = cfg.size / 2 + rng.uniform(-1, 1, 2) * cfg.principal_jitter * cfg.size
    K = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float32)
    photo = cfg.photos[int(rng.integers(len(cfg.photos)))]
    background = cfg.backgrounds[int(rng.integers(len(cfg.backgrounds)))]
    # place the head so its landmarks span `face_fraction` of the frame and sit at the centre
    dev = next(iter(model.buffers())).device
    z = lambda n: torch.zeros(1, n, device=dev)  # noqa: E731
    v = model(torch.as_tensor(shape, device=dev)[None], z(model.n_expr), z(3), z(3), z(3))
    lm = _valid_landmarks(model, v)[0].cpu().numpy()          # [L, 3] at the origin
    height = np.ptp(lm[:, 1])
    depth = f * height / (cfg.face_fraction * cfg.size)
    centre = lm.mean(0)
    base = np.array([-centre[0], -centre[1], depth - centre[2]], dtype=np.float32)
    return Identity(cfg.seed, shape, K, photo, background, base)


def _valid_landmarks(model: torch.nn.Module, verts: torch.Tensor) -> torch.Tensor:
    """Landmarks [B, L, 3] that the model embeds (all 478 when it has no mask)."""
    lm = model.landmarks(verts)
    mask = getattr(model, "landmark_mask", None)
    return lm if mask is None else lm[:, mask]


def plan_script(cfg: SynthConfig, clip: int) -> Script:
    """Utterances (voice, sentence, emotion, intensity) filling `cfg.seconds`, with their audio."""
    rng = _rng(cfg.seed, 1, clip)
    sr = None
    n_total = None
    t = float(rng.uniform(0.15, 0.45))
    chunks: list[tuple[float, np.ndarray]] = []
    segments: list[Segment] = []
    phonemes: list[tuple[Phoneme, int]] = []
    while t < cfg.seconds - 0.8:
        if cfg.speech == "real":                              # a packaged recording, aligned by pocketsphinx
            utt = load_source(pick_source(cfg.speech_set, rng).name).utterance
            voice, text, rate, pitch = utt.voice, utt.text, 0, 0
        else:
            voice = cfg.voices[int(rng.integers(len(cfg.voices)))]
            text = pick_text(voice, cfg.sentence_set, rng)
            rate, pitch = int(rng.integers(150, 186)), int(rng.integers(30, 71))
        emotion = cfg.emotions[int(rng.integers(len(cfg.emotions)))]
        level = 0 if emotion == "neutral" else int(cfg.intensity_levels[int(rng.integers(len(cfg.intensity_levels)))])
        if cfg.speech != "real":
            utt = speak(text, voice, rate, pitch)
        sr = utt.sample_rate
        n_total = n_total or int(round(cfg.seconds * sr))
        room = cfg.seconds - 0.05 - t
        audio = utt.audio
        if utt.duration > room:                               # trim the last utterance at the clip end
            n = int(room * sr)
            audio = audio[:n].copy()
            fade = min(n, int(0.05 * sr))
            audio[n - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
        idx = len(segments)
        for ph in utt.phonemes:
            if ph.start >= len(audio) / sr:
                break
            phonemes.append((Phoneme(ph.symbol, t + ph.start, t + min(ph.end, len(audio) / sr)), idx))
        segments.append(Segment(t, t + len(audio) / sr, voice, text, rate, pitch, emotion, level))
        chunks.append((t, audio))
        t += len(audio) / sr + float(rng.uniform(0.25, 0.7))
    if sr is None:
        raise ConfigError(f"synth.seconds={cfg.seconds} leaves no room for an utterance")
    out = np.zeros(n_total, dtype=np.float32)
    for start, a in chunks:
        i = int(round(start * sr))
        out[i:i + len(a)] += a[: max(0, n_total - i)]
    return Script(np.clip(out, -1, 1), sr, segments, phonemes)


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma_frames, axis=0, mode="nearest") if sigma_frames > 0 else x


def _smooth_noise(rng: np.random.Generator, t: np.ndarray, amp: float) -> np.ndarray:
    out = np.zeros_like(t)
    for _ in range(3):
        f = rng.uniform(0.08, 0.5)
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    return amp * out / 2.0


def animate(model: torch.nn.Module, ident: Identity, script: Script, cfg: SynthConfig, clip: int) -> Truth:
    """Per-frame expression, jaw, head pose and labels from the script (the clip's truth)."""
    rng = _rng(cfg.seed, 2, clip)
    T = int(round(cfg.seconds * cfg.fps))
    t = np.arange(T) / cfg.fps
    tc = t + 0.5 / cfg.fps
    # which segment (emotion) each frame is in: from one utterance's start to the next's
    starts = np.array([s.start for s in script.segments])
    seg = np.clip(np.searchsorted(starts, tc, side="right") - 1, 0, len(starts) - 1)
    emo = np.array([EMOTION_LABELS.index(script.segments[i].emotion) for i in seg])
    level = np.array([script.segments[i].intensity for i in seg])
    scale_step = np.array([INTENSITY_SCALE[int(i)] for i in level], dtype=np.float64)
    strength = _smooth(scale_step, 0.12 * cfg.fps)
    speaking = np.array([script.segments[i].start <= x < script.segments[i].end for i, x in zip(seg, tc)])

    names = list(getattr(model, "expr_names", []) or [])
    au_named = any(n.startswith("AU") for n in names)
    # ARKit-named shapes (ICT): each AU drives its shapes (both sides), so emotions are coded on them
    arkit = {au: [k for k, n in enumerate(names) if n.split("_")[0] in shapes]
             for au, shapes in AU_TO_ARKIT.items()} if not au_named else {}
    arkit = {au: ks for au, ks in arkit.items() if ks}
    if au_named:
        au_names = [n for n in names if n.startswith("AU")]
    elif arkit:
        au_names = sorted(arkit)
    else:
        au_names = sorted({a for d in EMOTION_AUS.values() for a in d})
    A = np.zeros((T, len(au_names)))

    def add(au: str, values: np.ndarray) -> None:
        if au in au_names:
            A[:, au_names.index(au)] += values

    # upper face (and smile) from the emotion, smoothed across segment changes
    emo_step = np.zeros((T, len(au_names)))
    for k, lab in enumerate(EMOTION_LABELS):
        for au, a in EMOTION_AUS[lab].items():
            if au in au_names:
                emo_step[:, au_names.index(au)] += np.where(emo == k, a * scale_step, 0.0)
    A += _smooth(emo_step, 0.12 * cfg.fps)

    # mouth: viseme targets with coarticulation, amplitude scaled by the emotion
    mouth_amp = np.array([1.0 + EMOTION_MOUTH[EMOTION_LABELS[e]] * s for e, s in zip(emo, scale_step)])
    mouth_amp = _smooth(mouth_amp, 0.12 * cfg.fps) * cfg.mouth_gain
    mt = mouth_track([p for p, _ in script.phonemes], T, cfg.fps, amplitude=mouth_amp)
    for c, ch in enumerate(LIP_CHANNELS):
        for au, a in LIP_AUS[ch].items():
            add(au, a * mt.lips[:, c])
    add("AU25", np.clip(mt.jaw / 0.12, 0, 1) * 0.5)
    # blinks every 2-5 s
    blink = np.zeros(T)
    tb = float(rng.uniform(0.5, 2.5))
    while tb < cfg.seconds:
        blink += np.clip(1 - np.abs(t - tb) / 0.09, 0, 1)
        tb += float(rng.uniform(2.0, 5.0))
    for au in BLINK_AUS:
        if au in au_names:
            add(au, np.clip(blink, 0, 1))
            break
    A = np.clip(A, 0, 1)

    E = model.n_expr
    expr = np.zeros((T, E))
    if au_named:
        for j, au in enumerate(au_names):
            expr[:, names.index(au)] = A[:, j] * cfg.au_gain
    elif arkit:
        for j, au in enumerate(au_names):
            for k in arkit[au]:
                expr[:, k] += A[:, j] * cfg.au_gain
        expr = np.clip(expr, 0, 1)                 # ARKit weights live in [0, 1]
    else:  # bases without AU names (e.g. FLAME): a fixed direction per emotion on the first bases
        k = min(E, 10)
        for lab_i, lab in enumerate(EMOTION_LABELS):
            if lab == "neutral":
                continue
            d = np.random.default_rng(zlib.crc32(lab.encode())).normal(0, 0.6, k)
            expr[:, :k] += np.outer(np.where(emo == lab_i, 1.0, 0.0), d)
        expr[:, :k] = _smooth(expr[:, :k] * scale_step[:, None], 0.12 * cfg.fps)

    jaw = np.zeros((T, 3))
    jaw[:, 0] = mt.jaw + _smooth(np.where(emo == EMOTION_LABELS.index("surprise"), 0.05 * scale_step, 0), 3)
    deg = np.pi / 180
    rot = np.stack([_smooth_noise(rng, t, 0.6 * cfg.head_motion_deg * deg),
                    _smooth_noise(rng, t, cfg.head_motion_deg * deg),
                    _smooth_noise(rng, t, 0.4 * cfg.head_motion_deg * deg)], 1)
    trans = ident.base_trans[None] + np.stack([_smooth_noise(rng, t, 0.004) for _ in range(3)], 1)
    return Truth(expr.astype(np.float32), jaw.astype(np.float32), rot.astype(np.float32),
                 trans.astype(np.float32), A.astype(np.float32), au_names, emo.astype(np.int8),
                 level.astype(np.int8), strength.astype(np.float32), seg.astype(np.int16), speaking,
                 mt.phoneme, mt.viseme)


@dataclass
class Appearance:
    """Everything the renderer needs besides per-frame geometry."""

    faces: np.ndarray            # [F, 3]
    uv_corner: np.ndarray        # [F, 3, 2]
    texture: np.ndarray          # [Ht, Wt, 3] uint8
    background: np.ndarray       # [H, W, 3] uint8
    n_face_faces: int            # faces after this are intra-oral (flat colours)
    extra_colour: np.ndarray     # [F - n_face_faces, 3, 3] colours of intra-oral corners


@torch.no_grad()
def build_appearance(model: torch.nn.Module, ident: Identity, cfg: SynthConfig) -> Appearance:
    """Bake the identity's photo into the model's UV space; pick its background.

    The texture depends on the photo and the model only (baked at the mean shape); with
    `cfg.texture_calib_iters` > 0 its features are first aligned with the mesh's landmark
    vertices (`calibrated_photo_landmarks`).
    """
    plm = calibrated_photo_landmarks(model, ident.photo, cfg)
    faces, uv_corner, texture, n_face, extra = _bake(model, load_image(ident.photo), plm, cfg.texture_size)
    bg = background_image(ident.background, cfg.size, _rng(cfg.seed, 3))
    return Appearance(faces, uv_corner, texture, bg, n_face, extra)


def _mean_frontal(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean-shape neutral frontal mesh 1 m in front of the camera: vertices xy/z [V, 2], landmarks
    xy/z [478, 2] and the landmarks the texture warp uses [478] bool (embedded, not irises)."""
    dev = next(iter(model.buffers())).device
    z = lambda n: torch.zeros(1, n, device=dev)  # noqa: E731
    v = model(z(model.n_shape), z(model.n_expr), z(3), z(3), torch.tensor([[0.0, 0.0, 1.0]], device=dev))
    lm = model.landmarks(v)[0].cpu().numpy()                  # [478, 3] frontal, camera space
    valid = np.ones(len(lm), bool)
    mask = getattr(model, "landmark_mask", None)
    if mask is not None:
        valid = mask.cpu().numpy().astype(bool)
    valid[468:] = False                                       # irises: not needed for the warp
    vv = v[0].cpu().numpy()
    return vv[:, :2] / vv[:, 2:3], lm[:, :2] / lm[:, 2:3], valid   # perspective-free enough at 1 m


def _bake(model: torch.nn.Module, photo: np.ndarray, plm: np.ndarray, texture_size: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray]:
    """Texture from photo landmarks `plm` [478, 2]: (faces [F, 3], uv_corner [F, 3, 2], texture,
    n_face_faces, intra-oral corner colours [F - n_face, 3, 3])."""
    faces = model.faces.cpu().numpy().astype(np.int64)
    n_face = int(getattr(model, "n_face_faces", len(faces)))
    vxy, lxy, valid = _mean_frontal(model)
    photo_xy = vertex_photo_coords(vxy, lxy, plm, valid)      # [V, 2]
    uv = getattr(model, "uv", None)
    uv_faces = getattr(model, "uv_faces", None)
    if uv is None:                                            # no UVs: use the photo as the texture
        h, w = photo.shape[:2]
        uvv = photo_xy / np.array([w - 1, h - 1])
        uv_corner = uvv[faces]
        texture = photo
    else:
        uvv = uv.cpu().numpy().astype(np.float64)
        uf = faces if uv_faces is None else uv_faces.cpu().numpy().astype(np.int64)
        uf = uf[:n_face]
        uvv = np.c_[uvv[:, 0], 1.0 - uvv[:, 1]] if _uv_is_v_up(uvv, uf, vxy, faces[:n_face]) else uvv
        texture = bake_uv_texture(photo, photo_xy, faces[:n_face], uvv, uf, texture_size)
        uv_corner = np.zeros((len(faces), 3, 2))
        uv_corner[:n_face] = uvv[uf]
    extra = np.zeros((len(faces) - n_face, 3, 3))
    if len(faces) > n_face:
        teeth = set(getattr(model, "teeth_vertex_ids", torch.zeros(0)).cpu().numpy().tolist())
        is_teeth = np.isin(faces[n_face:], list(teeth)) if teeth else np.zeros((len(faces) - n_face, 3), bool)
        extra[:] = MOUTH_INSIDE
        extra[is_teeth] = TEETH
    return faces, uv_corner.astype(np.float32), texture, n_face, extra


# face height (landmark extent) / frame side of the calibration render: about what the ingest crop shows
CALIB_FACE_FRACTION = 0.6
CALIB_VERSION = 1                                             # bump when the calibration's algorithm changes


@torch.no_grad()
def render_frontal(model: torch.nn.Module, photo: np.ndarray, plm: np.ndarray, size: int, texture_size: int,
                   shape: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A head (mean shape unless `shape` [S]), neutral and frontal, textured from photo landmarks
    `plm` [478, 2], on plain grey, its face `CALIB_FACE_FRACTION` of the frame high.

    Returns the frame [size, size, 3] uint8 and the true projected landmarks [478, 2] px.
    """
    dev = next(iter(model.buffers())).device
    faces, uv_corner, texture, n_face, extra = _bake(model, photo, plm, texture_size)
    app = Appearance(faces, uv_corner, texture, np.full((size, size, 3), 128, np.uint8), n_face, extra)
    z = lambda n: torch.zeros(1, n, device=dev)  # noqa: E731
    sh = z(model.n_shape) if shape is None else torch.as_tensor(np.asarray(shape, np.float32), device=dev)[None]
    lm = _valid_landmarks(model, model(sh, z(model.n_expr), z(3), z(3), z(3)))[0].cpu().numpy()
    f = 1.8 * size
    K = np.array([[f, 0, size / 2], [0, f, size / 2], [0, 0, 1]], np.float32)
    c = lm.mean(0)
    trans = np.array([[-c[0], -c[1], f * np.ptp(lm[:, 1]) / (CALIB_FACE_FRACTION * size) - c[2]]], np.float32)
    ident = Identity(0, sh[0].cpu().numpy(), K, "", "plain", trans[0])
    zf = lambda n: np.zeros((1, n), np.float32)  # noqa: E731
    truth = Truth(zf(model.n_expr), zf(3), zf(3), trans, zf(0), [], np.zeros(1, np.int8), np.zeros(1, np.int8),
                  np.zeros(1, np.float32), np.zeros(1, np.int16), np.zeros(1, bool), [""], [""])
    frame = next(render_frames(model, ident, truth, app))
    v = model(sh, z(model.n_expr), z(3), z(3), torch.as_tensor(trans, device=dev))
    true = model.project(model.landmarks(v), torch.as_tensor(K, device=dev)[None])[0].cpu().numpy()
    return frame, true.astype(np.float64)


def calibrate_landmarks(model: torch.nn.Module, photo: np.ndarray, plm: np.ndarray, iters: int, size: int,
                        texture_size: int, log: list[float] | None = None) -> np.ndarray:
    """Photo landmarks [478, 2] whose texture puts MediaPipe's landmarks on the mesh's own landmarks.

    Only at the mean shape, neutral and frontal (never per identity). Each round renders, detects,
    and moves each warp landmark's photo point by its detected-minus-true offset carried into the
    photo through the local render->photo affine map; the round with the smallest mean offset wins.
    `log` (optional) receives the mean offset (px at `size`) of every round, round 0 uncalibrated.
    """
    from emotag_core.synth.texture import detect_landmarks, local_jacobians

    _, _, used = _mean_frontal(model)
    cur = np.asarray(plm, np.float64).copy()
    best, best_err = cur.copy(), np.inf
    for it in range(iters + 1):
        frame, true = render_frontal(model, photo, cur, size, texture_size)
        det = detect_landmarks(frame)
        if det is None:                                       # the warp broke the face: keep the best so far
            break
        d = det - true                                        # [478, 2] render px
        err = float(np.linalg.norm(d[used], axis=1).mean())
        if log is not None:
            log.append(err)
        if err < best_err:
            best, best_err = cur.copy(), err
        if it == iters:
            break
        J = local_jacobians(true[used], cur[used])             # [L, 2, 2] render px -> photo px
        cur[used] = cur[used] + np.einsum("lij,lj->li", J, d[used])
    return best


def _calib_cache_file(model: torch.nn.Module, photo: np.ndarray, cfg: SynthConfig) -> Path:
    import hashlib

    from emotag_core.assets import asset_home, asset_path

    h = hashlib.sha256()
    h.update(photo.tobytes())
    h.update(str(photo.shape).encode())
    h.update(str(getattr(model, "sha256", "")).encode())
    for buf in (model.faces, getattr(model, "uv", None), getattr(model, "uv_faces", None)):
        if buf is not None:
            h.update(buf.cpu().numpy().tobytes())
    for arr in _mean_frontal(model):                          # the mean mesh itself, whatever the model
        h.update(np.round(np.asarray(arr, np.float64), 7).tobytes())
    task = asset_path("face_landmarker.task", required=False)
    if task is not None and Path(task).exists():
        h.update(hashlib.sha256(Path(task).read_bytes()).digest())
    h.update(f"v{CALIB_VERSION}:{cfg.texture_calib_iters}:{cfg.texture_calib_size}:{cfg.texture_size}".encode())
    root = os.environ.get("EMOTAG_SYNTH_CACHE") or asset_home().parent / "synth_calib"
    return Path(root).expanduser() / f"{h.hexdigest()[:24]}.npy"


def calibrated_photo_landmarks(model: torch.nn.Module, ref: str, cfg: SynthConfig) -> np.ndarray:
    """The photo's landmarks [478, 2] the texture warp uses: MediaPipe's, calibrated when
    `cfg.texture_calib_iters` > 0 (cached on disk per photo, model and settings, in
    `$EMOTAG_SYNTH_CACHE`, default `~/.cache/emotag/synth_calib`)."""
    plm = photo_landmarks(ref)
    if cfg.texture_calib_iters <= 0:
        return plm
    from emotag_core.io.atomic import atomic_path

    photo = load_image(ref)
    path = _calib_cache_file(model, photo, cfg)
    if path.exists():
        try:
            cached = np.load(path)
            if cached.shape == plm.shape and np.isfinite(cached).all():
                return cached
        except (OSError, ValueError):
            pass                                              # unreadable: recompute and overwrite
    out = calibrate_landmarks(model, photo, plm, cfg.texture_calib_iters, cfg.texture_calib_size, cfg.texture_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    return out


def _uv_is_v_up(uv: np.ndarray, uv_faces: np.ndarray, vxy: np.ndarray, faces: np.ndarray) -> bool:
    """True when the model's v axis points up the face (OBJ/FLAME convention) rather than down."""
    a = uv[uv_faces].mean(1)[:, 1]
    b = vxy[faces].mean(1)[:, 1]                              # camera y grows downwards
    return float(np.corrcoef(a, b)[0, 1]) < 0


@torch.no_grad()
def render_frames(model: torch.nn.Module, ident: Identity, truth: Truth, app: Appearance,
                  chunk: int = 32) -> Iterator[np.ndarray]:
    """Render the clip's frames [H, W, 3] uint8 one by one from the truth parameters."""
    dev = next(iter(model.buffers())).device
    T = len(truth.expr)
    shape = torch.as_tensor(ident.shape, device=dev)[None]
    K = torch.as_tensor(ident.K, device=dev)[None]
    faces = app.faces
    n_face = app.n_face_faces
    z0 = torch.zeros(1, model.n_expr, device=dev)
    zero3 = torch.zeros(1, 3, device=dev)
    one_m = torch.tensor([[0.0, 0.0, 1.0]], device=dev)
    rest = model(shape, z0, zero3, zero3, one_m)[0].cpu().numpy()
    rest_area = np.maximum(_areas(rest, faces[:n_face]), 1e-12)
    # the lips' gap: triangles that stretch most when the jaw opens (drawn as the mouth's inside)
    open_jaw = torch.tensor([[0.3, 0.0, 0.0]], device=dev)
    gap = _areas(model(shape, z0, open_jaw, zero3, one_m)[0].cpu().numpy(), faces[:n_face]) / rest_area > 1.6
    for s in range(0, T, chunk):
        sl = slice(s, min(T, s + chunk))
        b = sl.stop - sl.start
        tt = lambda a: torch.as_tensor(a[sl], device=dev)  # noqa: E731
        verts = model(shape.expand(b, -1), tt(truth.expr), tt(truth.jaw), tt(truth.rot), tt(truth.trans))
        px = model.project(verts, K.expand(b, -1, -1)).cpu().numpy()
        verts = verts.cpu().numpy()
        for i in range(b):
            v = verts[i]
            screen = np.c_[px[i], v[:, 2]]
            normals = rz.vertex_normals(v, faces)[faces]
            # skin stretched far beyond its rest area (lips parting) darkens towards the mouth inside
            stretch = _areas(v, faces[:n_face]) / rest_area
            tint = np.zeros((len(faces), 3, 4))
            a = np.where(gap, np.clip((stretch - 1.3) / 1.5, 0, 0.9), 0.0)
            tint[:n_face, :, :3] = MOUTH_INSIDE
            tint[:n_face, :, 3] = a[:, None]
            tint[n_face:, :, :3] = app.extra_colour
            tint[n_face:, :, 3] = 1.0
            frame, _ = rz.render_textured(screen, faces, app.uv_corner, app.texture, app.background,
                                          normals, tint)
            yield frame


def _areas(v: np.ndarray, faces: np.ndarray) -> np.ndarray:
    t = v[faces]
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def write_video(path: Path, frames: Iterator[np.ndarray], n_frames: int, audio: np.ndarray, sample_rate: int,
                fps: float, crf: int = 18, on_frame: Callable[[], None] | None = None) -> None:
    """Write an mp4 (H.264 yuv420p video + AAC mono audio) of exactly `n_frames` at `fps`."""
    import av
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    n_audio = int(round(n_frames / float(rate) * sample_rate))
    audio = np.pad(audio, (0, max(0, n_audio - len(audio))))[:n_audio].astype(np.float32)
    with av.open(str(path), "w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=rate)
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        vs.codec_context.thread_count = 1                     # bit-exact output from the seed
        ast = out.add_stream("aac", rate=sample_rate)
        ast.layout = "mono"
        first = True
        for frame in frames:
            if first:
                vs.height, vs.width = frame.shape[:2]
                first = False
            for pkt in vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(pkt)
            if on_frame:
                on_frame()
        for pkt in vs.encode():
            out.mux(pkt)
        hop = 1024
        for i in range(0, n_audio, hop):
            block = audio[i:i + hop]
            af = av.AudioFrame.from_ndarray(block[None], format="fltp", layout="mono")
            af.sample_rate = sample_rate
            af.pts = i
            for pkt in ast.encode(af):
                out.mux(pkt)
        for pkt in ast.encode():
            out.mux(pkt)


def truth_arrays(model: torch.nn.Module, ident: Identity, truth: Truth, script: Script,
                 cfg: SynthConfig) -> dict[str, np.ndarray]:
    """The clip's truth as named arrays (written as `truth/<clip>.npz`)."""
    T = len(truth.expr)
    dev = next(iter(model.buffers())).device
    with torch.no_grad():
        shape = torch.as_tensor(ident.shape, device=dev)[None].expand(T, -1)
        tt = lambda a: torch.as_tensor(a, device=dev)  # noqa: E731
        v = model(shape, tt(truth.expr), tt(truth.jaw), tt(truth.rot), tt(truth.trans))
        lm = model.landmarks(v)
        lm2 = model.project(lm, torch.as_tensor(ident.K, device=dev)[None].expand(T, -1, -1)).cpu().numpy()
    ph = script.phonemes
    return {
        "frame": np.arange(T, dtype=np.int32), "t": (np.arange(T) / cfg.fps).astype(np.float64),
        "fps": np.float64(cfg.fps), "image_size": np.array([cfg.size, cfg.size], np.int32),
        "K": ident.K, "shape": ident.shape,
        "expr": truth.expr, "jaw": truth.jaw, "rot": truth.rot, "trans": truth.trans,
        "expr_names": np.array(list(getattr(model, "expr_names", []) or []), dtype=str),
        "au": truth.au, "au_names": np.array(truth.au_names, dtype=str),
        "emotion": truth.emotion, "emotion_labels": np.array(EMOTION_LABELS, dtype=str),
        "intensity": truth.intensity, "emotion_strength": truth.emotion_strength,
        "segment": truth.segment, "speaking": truth.speaking,
        "phoneme": np.array(truth.phoneme, dtype=str), "viseme": np.array(truth.viseme, dtype=str),
        "landmarks2d": lm2.astype(np.float32),
        "ph_symbol": np.array([p.symbol for p, _ in ph], dtype=str),
        "ph_start": np.array([p.start for p, _ in ph], dtype=np.float64),
        "ph_end": np.array([p.end for p, _ in ph], dtype=np.float64),
        "ph_segment": np.array([i for _, i in ph], dtype=np.int16),
    }


def clip_sidecar(model: torch.nn.Module, ident: Identity, script: Script, cfg: SynthConfig, clip_id: str) -> dict:
    """Human-readable description of a clip (`truth/<clip>.json`)."""
    meta = model.metadata() if hasattr(model, "metadata") else {"flame_model": getattr(model, "name", "?")}
    return {
        "clip_id": clip_id, "seed": cfg.seed, "fps": cfg.fps, "size": cfg.size, "seconds": cfg.seconds,
        "sample_rate": script.sample_rate, "photo": ident.photo, "background": ident.background,
        "K": ident.K.tolist(), "head_model": meta, "au_scale": "0-1 activation of the head model's AU bases",
        "intensity_scale": INTENSITY_SCALE,
        "segments": [vars(s) for s in script.segments],
    }


def generate_clip(model: torch.nn.Module, ident: Identity, app: Appearance, cfg: SynthConfig, clip: int,
                  out_dir: Path, on_frame: Callable[[], None] | None = None) -> Path:
    """Write `clipNNN.mp4` into `out_dir` and its truth as `truth/clipNNN.npz` and `truth/clipNNN.json`."""
    clip_id = f"clip{clip:03d}"
    script = plan_script(cfg, clip)
    truth = animate(model, ident, script, cfg, clip)
    T = len(truth.expr)
    video = out_dir / f"{clip_id}.mp4"
    write_video(video, render_frames(model, ident, truth, app), T, script.audio, script.sample_rate, cfg.fps,
                cfg.crf, on_frame)
    (out_dir / "truth").mkdir(exist_ok=True)
    np.savez_compressed(out_dir / "truth" / f"{clip_id}.npz", **truth_arrays(model, ident, truth, script, cfg))
    (out_dir / "truth" / f"{clip_id}.json").write_text(
        json.dumps(clip_sidecar(model, ident, script, cfg, clip_id), indent=1), encoding="utf-8")
    return video
