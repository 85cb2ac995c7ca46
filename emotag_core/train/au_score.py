"""The gate's score target e for L_Score (Eq. 13): the emotion teacher's score (Eq. 9) or an AU intensity.

`pretrain.score_target` chooses it (not in the paper; `teacher` is the paper):

- `teacher`: e = 1 - p(neutral) from the emotion table (Eq. 9), as the paper.
- `aus`: an expression intensity read from the identity's upper-face AU table (OpenFace 0-5 scale),
  for corpora where the emotion teacher does not see the expressions. Per clip, with the fixed rule:

  1. neutral level n_k of each score AU k (`SCORE_AUS`: the upper-face AUs without AU45, a blink)
     = its `NEUTRAL_PERCENTILE`-th percentile over the clip's frames;
  2. activation a_t = || max(AU_t - n, 0) ||_2 over those AUs (only activation above neutral counts);
  3. e_t = clip(a_t / P_`SCALE_PERCENTILE`(a over the clip), 0, 1); a clip whose scale is ~0 (no
     activation above neutral) gets e = 0 everywhere. Frames whose AUs are missing (NaN) get 0 and
     are left out of the clip's statistics.

  "The clip" is the frames the loader may use (adaptation: only its first `adapt.train_seconds`).
"""
from __future__ import annotations

import numpy as np

from emotag_core.errors import ConfigError
from emotag_core.io.tables import UPPER_AUS

SCORE_TARGETS = ("teacher", "aus")
SCORE_AUS = tuple(a for a in UPPER_AUS if a != "AU45")  # AU45 (blink) is eye motion, not an expression
NEUTRAL_PERCENTILE = 10.0
SCALE_PERCENTILE = 95.0


def check_score_target(target: str) -> str:
    """`target` if it is a known score target, else a ConfigError naming the param."""
    if target not in SCORE_TARGETS:
        raise ConfigError(f"`pretrain.score_target` must be one of {SCORE_TARGETS}, got {target!r}")
    return target


def au_intensity_score(aus: np.ndarray) -> np.ndarray:
    """Per-frame intensity in [0, 1] of one clip's score AUs (rule in the module docstring).

    aus: [N, K] the clip's `SCORE_AUS` activations in frame order (NaN = missing) -> [N] float64."""
    x = np.asarray(aus, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"au_intensity_score needs a non-empty [N, K] array, got shape {x.shape}")
    ok = np.all(np.isfinite(x), axis=1)  # [N]
    out = np.zeros(x.shape[0], dtype=np.float64)
    if not ok.any():
        return out
    neutral = np.percentile(x[ok], NEUTRAL_PERCENTILE, axis=0)  # [K]
    act = np.linalg.norm(np.maximum(x[ok] - neutral, 0.0), axis=1)  # [N_ok]
    scale = float(np.percentile(act, SCALE_PERCENTILE))
    if scale <= 1e-6:
        return out
    out[ok] = np.clip(act / scale, 0.0, 1.0)
    return out
