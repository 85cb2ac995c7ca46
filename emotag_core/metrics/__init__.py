"""Evaluation metrics of the paper (Sec. 4): image fidelity, facial motion, lip sync, efficiency.

Heavy pieces (lpips, SyncNet) are imported by the functions that use them.
"""
from emotag_core.metrics.image import psnr, ssim
from emotag_core.metrics.motion import MOUTH, aue, lmd, mouth_opening
from emotag_core.metrics.summary import KEYS, MetricsRecord
from emotag_core.metrics.sync import av_offset, frame_energy

__all__ = ["KEYS", "MOUTH", "MetricsRecord", "aue", "av_offset", "frame_energy", "lmd", "mouth_opening",
           "psnr", "ssim"]
