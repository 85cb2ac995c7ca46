"""The metrics record written to `metrics/<id>.json` (keys fixed by DESIGN.md).

Every headline key is present; a metric that cannot be computed is `None` with a sibling
`<key>_reason` saying why (missing weights, no labels, ...), never a made-up number.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

KEYS = ("psnr", "ssim", "lpips", "lmd", "aue_l", "aue_u", "sync_c", "sync_e", "fps", "train_s")
# shown in the report beside the headline: the frozen-frame baseline, the head-mask scores, the mouth and sync measures
REPORT_KEYS = ("psnr_frozen", "ssim_frozen", "psnr_oracle", "ssim_oracle", "psnr_head", "psnr_head_frozen",
               "psnr_head_oracle", "ssim_head", "ssim_head_frozen", "ssim_head_oracle",
               "mouth_corr", "mouth_corr_energy", "mouth_std_ratio", "av_offset_frames", "av_confidence")
LIP_SYNC_KEYS = ("lmd", "sync_c", "sync_e", "av_offset_frames", "av_confidence")


class MetricsRecord:
    """Collects headline metrics, reasons for absent ones, flags and nested settings."""

    def __init__(self) -> None:
        self.values: dict[str, float | None] = {k: None for k in KEYS}
        self.reasons: dict[str, str] = {k: "not computed" for k in KEYS}
        self.extra: dict[str, Any] = {}
        self.flags: dict[str, list[str]] = {}

    def set(self, key: str, value: float | np.floating | None, reason: str | None = None) -> None:
        """Set a metric; a None or non-finite value needs (or gets) a reason."""
        v = None if value is None else float(value)
        if v is not None and not math.isfinite(v):
            reason = reason or "no valid frames (all NaN)"
            v = None
        self.values[key] = v
        if v is None:
            self.reasons[key] = reason or "not computed"
        else:
            self.reasons.pop(key, None)

    def mean(self, key: str, per_frame: np.ndarray, reason_if_empty: str) -> None:
        """Set `key` to the nan-mean of per-frame values."""
        a = np.asarray(per_frame, np.float64)
        ok = np.isfinite(a)
        self.set(key, float(a[ok].mean()) if ok.any() else None, None if ok.any() else reason_if_empty)

    def missing(self, key: str, reason: str) -> None:
        self.set(key, None, reason)

    def flag(self, key: str, flag: str) -> None:
        """Attach a caveat to a metric (e.g. `dubbed_audio` on lip-sync metrics)."""
        self.flags.setdefault(key, [])
        if flag not in self.flags[key]:
            self.flags[key].append(flag)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.values)
        for k, r in self.reasons.items():
            out[f"{k}_reason"] = r
        if self.flags:
            out["flags"] = {k: list(v) for k, v in self.flags.items()}
        out.update(self.extra)
        return _clean(out)


def _clean(x: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/Inf to None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (np.floating, float)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, np.bool_):
        return bool(x)
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    return x
