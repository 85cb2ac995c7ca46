"""Sync-C / Sync-E with SyncNet (Chung & Zisserman, "Out of time", ACCV-W 2016), as the paper
reports them (Sec. 4; the LSE-C / LSE-D protocol of the public `syncnet_python` release).

The network is the two-stream model of that release, built here so that its state dict has the
released checkpoint's layout (`syncnet_v2.model`: keys `netcnnaud.*`, `netfcaud.*`,
`netcnnlip.*`, `netfclip.*`):

- lip stream: 3-D convolutions over 5 consecutive 224x224 face crops (BGR, 0-255), one 1024-d
  embedding per 5-frame window;
- audio stream: 2-D convolutions over 13 MFCCs x 20 steps of 10 ms (0.2 s, the same 5 video
  frames at 25 fps), one 1024-d embedding per window.

Scoring (`sync_scores`): for every lag k in [-K, K] (K = 15 frames) the mean Euclidean distance
between each video embedding and the audio embedding k windows away (missing ones are zeros, as
in the release); Sync-E = the minimum over lags of that mean distance, Sync-C = median over lags
minus the minimum, AV offset = the lag of the minimum (positive: the video lags the audio).

MFCCs follow the definition the released weights were trained on (`python_speech_features.mfcc`
defaults on 16-bit PCM values: pre-emphasis 0.97, 25 ms rectangular frames every 10 ms, 512-point
power spectrum, 26 mel filters, DCT-II, lifter 22, c0 replaced by the log frame energy), computed
in torch. torchaudio is not used: its MFCC has none of pre-emphasis, lifter or energy-c0 and a
different filterbank, so the released weights would see features they were not trained on (and
no torchaudio build matches this project's torch).

No SyncNet weights ship offline: `load_syncnet` reads a local file and says what is wrong with it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emotag_core.errors import InputError, WeightsMissingError
from emotag_core.progress import NO_PROGRESS, Progress

SAMPLE_RATE = 16000
FPS = 25.0
WINDOW_FRAMES = 5  # video frames per embedding
MFCC_PER_FRAME = 4  # 10 ms MFCC steps per 40 ms video frame
MFCC_WINDOW = 20  # MFCC steps per embedding (0.2 s)
N_MFCC = 13
CROP = 224  # side of the face crop the lip stream sees
PREFIXES = ("netcnnaud.", "netfcaud.", "netcnnlip.", "netfclip.")
HOW = ("SyncNet v2 weights do not ship with any package: copy `syncnet_v2.model` (the public "
       "syncnet_python release; its download_model.sh) from a machine with internet and set "
       "evaluate.syncnet_weights to its path")


# ---------------------------------------------------------------------------------------------
# the network


def _conv_bn_relu(conv: nn.Module, channels: int, bn: type[nn.Module]) -> list[nn.Module]:
    return [conv, bn(channels), nn.ReLU(inplace=True)]


class SyncNetV2(nn.Module):
    """SyncNet's audio and lip streams; `forward_aud` / `forward_lip` give 1024-d embeddings."""

    def __init__(self, embed_dim: int = 1024) -> None:
        super().__init__()
        c2, c3 = nn.Conv2d, nn.Conv3d
        b2, b3 = nn.BatchNorm2d, nn.BatchNorm3d
        # audio: [N, 1, 13, 20] -> [N, 512, 1, 1]; module indices match the released state dict
        self.netcnnaud = nn.Sequential(
            *_conv_bn_relu(c2(1, 64, 3, padding=1), 64, b2), nn.MaxPool2d(1, 1),
            *_conv_bn_relu(c2(64, 192, 3, padding=1), 192, b2), nn.MaxPool2d(3, stride=(1, 2)),
            *_conv_bn_relu(c2(192, 384, 3, padding=1), 384, b2),
            *_conv_bn_relu(c2(384, 256, 3, padding=1), 256, b2),
            *_conv_bn_relu(c2(256, 256, 3, padding=1), 256, b2), nn.MaxPool2d(3, stride=2),
            *_conv_bn_relu(c2(256, 512, (5, 4)), 512, b2),
        )
        # lip: [N, 3, 5, 224, 224] -> [N, 512, 1, 1, 1]
        self.netcnnlip = nn.Sequential(
            *_conv_bn_relu(c3(3, 96, (5, 7, 7), stride=(1, 2, 2)), 96, b3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(96, 256, (1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), 256, b3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3),
            *_conv_bn_relu(c3(256, 256, (1, 3, 3), padding=(0, 1, 1)), 256, b3),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2)),
            *_conv_bn_relu(c3(256, 512, (1, 6, 6)), 512, b3),
        )
        self.netfcaud = self._head(embed_dim)
        self.netfclip = self._head(embed_dim)

    @staticmethod
    def _head(embed_dim: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))

    def forward_aud(self, mfcc: Tensor) -> Tensor:
        """mfcc [N, 1, 13, 20] -> [N, 1024]."""
        return self.netfcaud(self.netcnnaud(mfcc).flatten(1))

    def forward_lip(self, crops: Tensor) -> Tensor:
        """crops [N, 3, 5, 224, 224] (BGR, 0-255) -> [N, 1024]."""
        return self.netfclip(self.netcnnlip(crops).flatten(1))


def expected_shapes(model: nn.Module | None = None) -> dict[str, tuple[int, ...]]:
    """Key -> shape of every tensor a SyncNet v2 checkpoint must hold (BatchNorm counters optional)."""
    model = model or SyncNetV2()
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def load_syncnet(path: str | Path | None, device: str | torch.device = "cpu") -> SyncNetV2:
    """SyncNet v2 from a `syncnet_v2.model`-format state dict; clear errors for a wrong file."""
    if not path:
        raise WeightsMissingError("syncnet-v2", [], HOW)
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsMissingError("syncnet-v2", [p], HOW)
    try:
        state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated or not a torch file: a bad input file
        raise InputError(p, f"not a readable torch checkpoint ({type(exc).__name__}: {exc})", HOW) from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise InputError(p, "expected a state dict of tensors (keys netcnnaud.*, netfcaud.*, netcnnlip.*, "
                            "netfclip.*)", HOW)
    model = SyncNetV2()
    want = expected_shapes(model)
    for key, shape in want.items():
        if key not in state:
            raise InputError(p, f"SyncNet v2 weights lack `{key}` ({len(state)} tensors in the file)", HOW)
        if tuple(state[key].shape) != shape:
            raise InputError(p, f"`{key}` has shape {tuple(state[key].shape)}, SyncNet v2 needs {shape}", HOW)
    extra = sorted(k for k in state if k not in want and not k.endswith("num_batches_tracked"))
    if extra:
        raise InputError(p, f"unexpected key `{extra[0]}` ({len(extra)} unknown; SyncNet v2 keys start with "
                            f"{', '.join(PREFIXES)})", HOW)
    model.load_state_dict(state, strict=False)  # only the optional BatchNorm counters may be absent
    return model.eval().to(device)


# ---------------------------------------------------------------------------------------------
# inputs


def _mel_bins(n_filters: int, n_fft: int, sample_rate: int) -> np.ndarray:
    """FFT-bin edges of the triangular mel filters (HTK mel scale, floored to bins). -> [n_filters + 2]."""
    top = 2595.0 * np.log10(1.0 + (sample_rate / 2) / 700.0)
    hz = 700.0 * (10.0 ** (np.linspace(0.0, top, n_filters + 2) / 2595.0) - 1.0)
    return np.floor((n_fft + 1) * hz / sample_rate).astype(np.int64)


def mel_filterbank(n_filters: int = 26, n_fft: int = 512, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Triangles of peak 1 between consecutive bin edges. -> [n_filters, n_fft // 2 + 1]."""
    edges = _mel_bins(n_filters, n_fft, sample_rate)
    fb = np.zeros((n_filters, n_fft // 2 + 1))
    for j in range(n_filters):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        i = np.arange(lo, mid)
        fb[j, i] = (i - lo) / max(mid - lo, 1)
        i = np.arange(mid, hi)
        fb[j, i] = (hi - i) / max(hi - mid, 1)
    return fb


def mfcc(wave: np.ndarray, sample_rate: int = SAMPLE_RATE, n_mfcc: int = N_MFCC, n_filters: int = 26,
         n_fft: int = 512, preemph: float = 0.97, lifter: int = 22) -> np.ndarray:
    """MFCCs every 10 ms as SyncNet was trained on (see module doc). wave [S] float in [-1, 1] -> [13, M]."""
    x = torch.as_tensor(np.asarray(wave, np.float64).reshape(-1) * 32768.0)  # 16-bit PCM scale
    if len(x) == 0:
        raise ValueError("mfcc: empty audio")
    x = torch.cat([x[:1], x[1:] - preemph * x[:-1]])  # pre-emphasis
    flen, step = round(0.025 * sample_rate), round(0.010 * sample_rate)
    n = 1 if len(x) <= flen else 1 + math.ceil((len(x) - flen) / step)
    x = F.pad(x, (0, (n - 1) * step + flen - len(x)))
    frames = x.unfold(0, flen, step)  # [M, 400], rectangular window
    power = torch.fft.rfft(frames, n=n_fft).abs().pow(2) / n_fft  # [M, 257]
    eps = torch.finfo(torch.float64).eps
    energy = power.sum(1).clamp_min(eps)  # [M]
    fbank = power @ torch.as_tensor(mel_filterbank(n_filters, n_fft, sample_rate)).T  # [M, 26]
    logfb = fbank.clamp_min(eps).log()
    k = torch.arange(n_filters, dtype=torch.float64)
    dct = torch.cos(math.pi * k[:n_mfcc, None] * (2 * k[None] + 1) / (2 * n_filters))  # DCT-II, orthonormal
    dct[0] *= math.sqrt(1.0 / n_filters)
    dct[1:] *= math.sqrt(2.0 / n_filters)
    cep = logfb @ dct.T  # [M, 13]
    cep = cep * (1 + (lifter / 2) * torch.sin(math.pi * torch.arange(n_mfcc, dtype=torch.float64) / lifter))
    cep[:, 0] = energy.log()
    return cep.T.numpy().astype(np.float32)


def crop_boxes(landmarks: np.ndarray, valid: np.ndarray | None = None, crop_scale: float = 0.4,
               smooth: int = 13) -> np.ndarray:
    """Face crops as the release's face-track pipeline cuts them, from landmarks [T, L, >=2] (px).

    Square, centred on the face box horizontally, from `bs` above its centre to `bs (1 + 2 cs)`
    below (bs = half the larger side of the face box, cs = crop_scale); centre and size
    median-smoothed over `smooth` frames; frames without a face take the nearest valid box.
    -> [T, 4] (x0, y0, x1, y1) in pixels.
    """
    lm = np.asarray(landmarks, np.float64)[..., :2]
    T = len(lm)
    ok = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
    if T == 0 or not ok.any():
        raise ValueError("crop_boxes: no frame with landmarks")
    lo, hi = lm.min(1), lm.max(1)  # [T, 2]
    cx, cy = (lo[:, 0] + hi[:, 0]) / 2, (lo[:, 1] + hi[:, 1]) / 2
    bs = np.maximum(hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]) / 2
    good = np.nonzero(ok)[0]
    near = good[np.clip(np.searchsorted(good, np.arange(T)), 0, len(good) - 1)]
    cx, cy, bs = cx[near], cy[near], bs[near]
    if smooth > 1 and T > 1:
        from scipy.signal import medfilt

        k = min(smooth, T if T % 2 else T - 1)
        cx, cy, bs = (medfilt(v, k) if k > 1 else v for v in (cx, cy, bs))
    return np.stack([cx - bs * (1 + crop_scale), cy - bs, cx + bs * (1 + crop_scale),
                     cy + bs * (1 + 2 * crop_scale)], axis=1)


def face_crops(frames: np.ndarray | list[np.ndarray], boxes: np.ndarray | None = None, side: int = CROP,
               fill: int = 110) -> Tensor:
    """frames [T, H, W, 3] uint8 RGB, boxes [T, 4] or None (whole frame) -> [T, 3, side, side] uint8 BGR."""
    out = torch.empty(len(frames), 3, side, side, dtype=torch.uint8)
    for t, f in enumerate(frames):
        img = torch.from_numpy(np.ascontiguousarray(np.asarray(f)[..., ::-1])).permute(2, 0, 1).float()  # BGR
        if boxes is not None:
            x0, y0, x1, y1 = (int(v) for v in boxes[t])
            H, W = img.shape[1:]
            pad = max(0, -x0, -y0, x1 - W, y1 - H)  # outside the frame: the release's grey (110)
            if pad:
                img = F.pad(img, (pad, pad, pad, pad), value=float(fill))
            img = img[:, y0 + pad:y1 + pad, x0 + pad:x1 + pad]
        img = F.interpolate(img[None], size=(side, side), mode="bilinear", align_corners=False)[0]
        out[t] = img.round().clamp(0, 255).to(torch.uint8)  # the release stores its crops as 8-bit video
    return out


# ---------------------------------------------------------------------------------------------
# embeddings and scores


@torch.no_grad()
def embed(model: SyncNetV2, crops: Tensor, mfccs: np.ndarray, batch_size: int = 16,
          progress: Progress = NO_PROGRESS) -> tuple[Tensor, Tensor]:
    """Per-window embeddings. crops [T, 3, 224, 224] uint8 BGR, mfccs [13, M] -> video, audio [N, 1024].

    Window i covers video frames i..i+4 and MFCC steps 4i..4i+19; N = min(T, audio frames) - 5 as
    in the release (audio and video are cut to the shorter). progress(windows done, N).
    """
    dev = next(model.parameters()).device
    audio_frames = (mfccs.shape[1] + 1) // MFCC_PER_FRAME  # = floor(samples / 640) for >= 25 ms of audio
    T = min(len(crops), audio_frames)
    n = T - WINDOW_FRAMES
    if n < 1:
        raise ValueError(f"SyncNet needs at least {WINDOW_FRAMES + 1} frames of video and audio, got {T}")
    cc = torch.as_tensor(mfccs, dtype=torch.float32)
    vs, aus = [], []
    for s in range(0, n, batch_size):
        idx = range(s, min(n, s + batch_size))
        lip = torch.stack([crops[i:i + WINDOW_FRAMES].transpose(0, 1) for i in idx]).float()  # [B, 3, 5, 224, 224]
        aud = torch.stack([cc[:, MFCC_PER_FRAME * i:MFCC_PER_FRAME * i + MFCC_WINDOW] for i in idx])[:, None]
        vs.append(model.forward_lip(lip.to(dev)).float().cpu())
        aus.append(model.forward_aud(aud.to(dev)).float().cpu())
        progress(idx.stop, n)
    return torch.cat(vs), torch.cat(aus)


@dataclass
class SyncScores:
    """Result of `sync_scores`."""

    sync_c: float
    """Confidence: median over lags of the mean distance minus its minimum (higher = better sync)."""
    sync_e: float
    """Error: the minimum over lags of the mean embedding distance (lower = better)."""
    offset_frames: int
    """Lag of the minimum; positive = the video lags the audio."""
    lags: np.ndarray
    """[2K+1] lags tried, -K..K."""
    mean_dist: np.ndarray
    """[2K+1] mean distance at each lag."""
    windows: int
    """Number of 5-frame windows scored."""


def sync_scores(video: Tensor, audio: Tensor, max_offset: int = 15) -> SyncScores:
    """Sync-C / Sync-E / offset from per-window embeddings video, audio [N, D]."""
    v, a = torch.as_tensor(video, dtype=torch.float64), torch.as_tensor(audio, dtype=torch.float64)
    if v.ndim != 2 or v.shape != a.shape:
        raise ValueError(f"expected two [N, D] embeddings of equal shape, got {tuple(v.shape)} and {tuple(a.shape)}")
    N, K = len(v), int(max_offset)
    a_pad = F.pad(a, (0, 0, K, K))  # zeros outside the clip, as the release scores them
    # d[i, j]: video window i vs audio window i + j - K  ->  [N, 2K+1]
    d = torch.stack([F.pairwise_distance(v, a_pad[j:j + N]) for j in range(2 * K + 1)], dim=1)
    mean = d.mean(0)  # [2K+1]
    j = int(torch.argmin(mean))
    lags = np.arange(-K, K + 1)
    return SyncScores(sync_c=float(mean.median() - mean[j]), sync_e=float(mean[j]), offset_frames=int(-lags[j]),
                      lags=lags, mean_dist=mean.numpy(), windows=N)


class SyncNetScorer:
    """Sync-C / Sync-E of a talking-head video: frames + 16 kHz audio -> SyncScores."""

    name = "syncnet-v2"

    def __init__(self, weights: str | Path | None, device: str | torch.device = "cpu", max_offset: int = 15,
                 batch_size: int = 16) -> None:
        self.model = load_syncnet(weights, device)
        self.max_offset = int(max_offset)
        self.batch_size = int(batch_size)

    def __call__(self, frames: np.ndarray | list[np.ndarray], wave: np.ndarray, boxes: np.ndarray | None = None,
                 sample_rate: int = SAMPLE_RATE, progress: Progress = NO_PROGRESS) -> SyncScores:
        """frames [T, H, W, 3] uint8 RGB at 25 fps, wave [S] float at 16 kHz, boxes [T, 4] or None."""
        if sample_rate != SAMPLE_RATE:
            raise ValueError(f"SyncNet takes 16 kHz audio, got {sample_rate} Hz")
        v, a = embed(self.model, face_crops(frames, boxes), mfcc(wave, sample_rate), self.batch_size, progress)
        return sync_scores(v, a, self.max_offset)
