"""Facial-motion accuracy: LMD on mouth landmarks and AUE-L/U on action units (paper Sec. 4).

Both compare a teacher's output on rendered frames with the same teacher's output on the real
frames, so the teacher's own bias cancels as far as it can.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from emotag_core.io.tables import LOWER_AUS, UPPER_AUS

# MediaPipe 478-point mesh: outer and inner lip contours (the face-mesh "lips" connection set).
MOUTH_OUTER = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 409, 270, 269, 267, 0, 37, 39, 40, 185)
MOUTH_INNER = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 415, 310, 311, 312, 13, 82, 81, 80, 191)
MOUTH = MOUTH_OUTER + MOUTH_INNER
UPPER_LIP_INNER, LOWER_LIP_INNER = 13, 14
FACE_SIDES = (234, 454)  # cheek extremes: the face-width yardstick that makes mouth opening scale-free


def lmd(pred: np.ndarray, gt: np.ndarray, valid: np.ndarray | None = None,
        points: Sequence[int] = MOUTH) -> np.ndarray:
    """Per-frame landmark distance (pixels of the crop), mean over mouth points.

    pred, gt: [T, 478, >=2] landmarks (x, y in crop pixels) -> [T]; frames where `valid` [T] is
    False (no face found on either side) are NaN.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] < 2:
        raise ValueError(f"expected two [T, 478, 2|3] landmark arrays of equal shape, got {pred.shape}, {gt.shape}")
    idx = list(points)
    d = np.linalg.norm(pred[:, idx, :2] - gt[:, idx, :2], axis=-1).mean(axis=1)
    if valid is not None:
        d = np.where(np.asarray(valid, bool), d, np.nan)
    return d


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """Inner-lip gap over face width. landmarks: [T, 478, >=2] -> [T] (0 = closed)."""
    lm = np.asarray(landmarks, np.float64)
    gap = np.linalg.norm(lm[:, UPPER_LIP_INNER, :2] - lm[:, LOWER_LIP_INNER, :2], axis=-1)
    width = np.linalg.norm(lm[:, FACE_SIDES[0], :2] - lm[:, FACE_SIDES[1], :2], axis=-1)
    return gap / np.maximum(width, 1e-6)


def aue(pred: np.ndarray, gt: np.ndarray, names: Sequence[str], available: Sequence[str] | None = None
        ) -> dict[str, np.ndarray]:
    """Per-frame AU error (mean |pred - gt| on OpenFace's 0-5 scale) on the lower and upper sets.

    pred, gt: [T, A] intensities in the order `names`; AUs not in `available` are skipped.
    Returns {"aue_l": [T], "aue_u": [T], "aus_l": [...], "aus_u": [...]}; a set with no
    available AU gives NaNs.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    if pred.shape != gt.shape or pred.ndim != 2 or pred.shape[1] != len(names):
        raise ValueError(f"expected two [T, {len(names)}] AU arrays, got {pred.shape}, {gt.shape}")
    have = set(names if available is None else available)
    out: dict[str, np.ndarray] = {}
    for key, group in (("l", LOWER_AUS), ("u", UPPER_AUS)):
        cols = [i for i, n in enumerate(names) if n in group and n in have]
        out[f"aus_{key}"] = [names[i] for i in cols]  # type: ignore[assignment]
        if cols:
            out[f"aue_{key}"] = np.abs(pred[:, cols] - gt[:, cols]).mean(axis=1)
        else:
            out[f"aue_{key}"] = np.full(len(pred), np.nan)
    return out


# ---- motion against synthetic truth (the grmn_eval protocol: predicted vs true jaw / gate vs intensity)


def pearson(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson r of two series [T]; None when either is constant (r undefined)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.std() < 1e-9 or b.std() < 1e-9:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def audio_energy(wav: str, t: np.ndarray, half_window_s: float = 0.02) -> np.ndarray:
    """RMS of a 16-bit PCM WAV in a 40 ms window centred on each frame time t [T] (s), scaled to [0, 1]
    (the audio-energy baseline a predicted jaw is compared with)."""
    import wave

    with wave.open(str(wav), "rb") as w:
        sr, n, ch = w.getframerate(), w.getnframes(), w.getnchannels()
        x = np.frombuffer(w.readframes(n), dtype=np.int16).astype(np.float32).reshape(-1, ch).mean(axis=1) / 32768.0
    h = int(round(half_window_s * sr))
    out = np.zeros(len(t))
    for i, ti in enumerate(t):
        c = int(round(ti * sr))
        seg = x[max(0, c - h): c + h]
        out[i] = np.sqrt(np.mean(seg ** 2)) if len(seg) else 0.0
    return (out - out.min()) / max(out.max() - out.min(), 1e-12)


TRUTH_KEYS = ("fps", "jaw", "expr", "emotion_strength", "emotion")  # what a synth truth file (clipNNN.npz) must hold


def truth_at(truth: Mapping[str, np.ndarray], t: np.ndarray) -> dict[str, np.ndarray]:
    """A synthetic clip's truth sampled at frame times t [T] (s): nearest truth frame, clamped to the clip.

    truth: fps (scalar), jaw [N, 3] (axis-angle), expr [N, E], emotion_strength [N], emotion [N] (label id).
    Returns {"jaw": [T] (opening: the axis-angle x), "expr": [T, E], "intensity": [T], "emotion": [T]}."""
    missing = [k for k in TRUTH_KEYS if k not in truth]
    if missing:
        raise ValueError(f"truth file lacks {missing}; re-run the synth stage that wrote it")
    ti = np.clip(np.round(np.asarray(t, np.float64) * float(truth["fps"])).astype(int), 0, len(truth["jaw"]) - 1)
    return {"jaw": np.asarray(truth["jaw"])[ti, 0], "expr": np.asarray(truth["expr"])[ti],
            "intensity": np.asarray(truth["emotion_strength"])[ti], "emotion": np.asarray(truth["emotion"])[ti]}


SERIES_KEYS = ("jaw", "g", "expr", "track_jaw", "track_expr", "e", "e_aus")


def motion_scores(series: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray],
                  energy: np.ndarray) -> dict[str, float | None]:
    """GRMN's motion against a synthetic identity's truth on T frames (the grmn_eval numbers).

    series: jaw [T] (predicted opening), g [T] (gate), expr [T, E] (predicted), track_jaw [T] / track_expr [T, E]
    (the tracker's, GRMN's training target), e [T] (the emotion teacher's score, Eq. 9), e_aus [T] (the AU score);
    truth: `truth_at`'s jaw [T], expr [T, E], intensity [T]; energy [T]: `audio_energy` (the baseline).
    r values are Pearson (None where a series is constant); MAEs are over every frame and coefficient."""
    missing = [k for k in SERIES_KEYS if k not in series]
    if missing:
        raise ValueError(f"motion series lack {missing}")
    n = len(truth["jaw"])
    bad = {k: len(series[k]) for k in SERIES_KEYS if len(series[k]) != n}
    if bad or len(energy) != n:
        raise ValueError(f"series lengths {bad or len(energy)} differ from the truth's {n} frames")
    true_jaw, true_expr, strength = truth["jaw"], np.asarray(truth["expr"]), truth["intensity"]
    return {"jaw_r": pearson(series["jaw"], true_jaw),
            "energy_r": pearson(energy, true_jaw),
            "tracked_jaw_r": pearson(series["track_jaw"], true_jaw),
            "gate_intensity_r": pearson(series["g"], strength),
            "teacher_e_intensity_r": pearson(series["e"], strength),
            "aus_e_intensity_r": pearson(series["e_aus"], strength),
            "gate_mean": float(np.mean(series["g"])),
            "expr_mae": float(np.abs(series["expr"] - true_expr).mean()),
            "expr_mae_zero": float(np.abs(true_expr).mean()),
            "expr_mae_tracked": float(np.abs(series["track_expr"] - true_expr).mean())}
