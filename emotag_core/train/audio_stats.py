"""Per-channel statistics of the audio features over the pretraining corpus (GRMN's input standardisation).

Used when `pretrain.audio_norm` is on: GRMN standardises every audio feature channel with the
corpus's mean and std, which are stored in the model (buffers) so adaptation and inference use
the pretraining corpus's statistics, never the target's.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from emotag_core.errors import InputError
from emotag_core.io.tables import TableReader, column_array

MIN_STD = 1e-3  # a channel that never varies (e.g. a silent mel band) is divided by this, not by ~0


def audio_feature_stats(tables: Sequence[str | Path], min_std: float = MIN_STD) -> tuple[Tensor, Tensor]:
    """Mean and std of every feature channel over all rows of the given audio_features tables -> ([D], [D]).

    Streams one row group at a time (memory bounded by a row group, whatever the corpus size).
    Every table must have the same `feature_dim`; std is floored at `min_std`.
    """
    if not tables:
        raise InputError(None, "no audio_features table to compute statistics from", "list corpus identities")
    total = 0
    s1: np.ndarray | None = None
    s2: np.ndarray | None = None
    for path in tables:
        r = TableReader(path, "audio_features")
        for g in range(r.num_row_groups):
            x = column_array(r.read_row_group(g, columns=["feature"]), "feature").astype(np.float64)  # [N, D]
            if s1 is None:
                s1, s2 = np.zeros(x.shape[1]), np.zeros(x.shape[1])
            elif x.shape[1] != len(s1):
                raise InputError(path, f"feature width {x.shape[1]} differs from the first table's {len(s1)}",
                                 "compute every identity's audio features with the same backend")
            if not np.isfinite(x).all():
                raise InputError(path, f"non-finite audio features in row group {g}", "re-run audio_features")
            s1 += x.sum(0)
            s2 += (x * x).sum(0)
            total += len(x)
    if total == 0 or s1 is None or s2 is None:
        raise InputError(tables[0], "the audio_features tables have no rows", "re-run audio_features")
    mean = s1 / total
    std = np.sqrt(np.maximum(s2 / total - mean * mean, 0.0))
    return torch.tensor(mean, dtype=torch.float32), torch.tensor(np.maximum(std, min_std), dtype=torch.float32)
