"""Audio features A of the Identity-Conditioned Encoder (paper Sec. 3.2.1): one vector per video frame.

Three backends, chosen by `audio_features.backend`:

- `wav2vec2` (the paper's): Wav2Vec 2.0 base through transformers, 768-d at 50 Hz, linearly
  interpolated onto the 25 fps frame grid; long audio runs in chunks with context on both sides,
  so memory is bounded whatever the length.
- `whisper` (offline, learned): Whisper tiny.en encoder states, 384-d at 50 Hz, from the model
  file `emotag fetch-assets` extracts; see `emotag_core.teachers.whisper`.
- `logmel` (offline, no weights): 80 log-mel bands at 100 Hz, four consecutive 10 ms hops stacked
  into one vector per 40 ms video frame (320-d by default).

Alignment (every backend): the vector of video frame i describes the audio of that frame's
display interval [i / fps, (i + 1) / fps); the motion network reads a `window`-frame slice
around a frame with `windows()`.
"""
from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from emotag_core.config import AudioFeaturesConfig
from emotag_core.errors import ConfigError, InputError, WeightsMissingError
from emotag_core.progress import NO_PROGRESS, Progress
from emotag_core.teachers import Backend, WeightsStatus, no_weights, register_backend
from emotag_core.teachers.whisper import WhisperFeatures
from emotag_core.teachers.whisper import locate as _locate_whisper

log = logging.getLogger("emotag.audio_features")

SAMPLE_RATE = 16000
SILENCE_PEAK = 1.0 / 32768
"""Peak amplitude at or below which a clip counts as all silence (one 16-bit step)."""
WAV2VEC2_DEFAULT = "facebook/wav2vec2-base-960h"


# ---------------------------------------------------------------------------------------------
# audio reading


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode any audio file (or a video's first audio stream) to mono float32 at `sample_rate`.

    Other rates and channel layouts are resampled and down-mixed, not rejected. Returns [N].
    """
    return np.concatenate(list(iter_audio(path, sample_rate)) or [np.zeros(0, np.float32)])


def iter_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> Iterator[np.ndarray]:
    """Stream mono float32 chunks at `sample_rate` from an audio/video file (constant memory)."""
    import av

    p = Path(path)
    if not p.exists():
        raise InputError(p, "audio file not found", "re-run the ingest stage that writes it")
    try:
        container = av.open(str(p))
    except (av.error.FFmpegError, OSError) as exc:  # type: ignore[attr-defined]
        raise InputError(p, f"cannot open as audio ({exc})", "re-run ingest or replace the file") from exc
    with container:
        if not container.streams.audio:
            raise InputError(p, "has no audio stream", "give the clip a sound track or re-run ingest")
        stream = container.streams.audio[0]
        # keep the channels through resampling and average them here: swresample's mono down-mix
        # scales each channel by 1/sqrt(2), which would make stereo copies 3 dB louder than mono
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=sample_rate)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    yield out.to_ndarray().mean(axis=0, dtype=np.float32)
            for out in resampler.resample(None):
                yield out.to_ndarray().mean(axis=0, dtype=np.float32)
        except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
            raise InputError(p, f"audio decoding failed ({exc})", "re-run ingest or replace the file") from exc


def fit_length(audio: np.ndarray, n_frames: int, fps: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Zero-pad or trim audio [N] to exactly the video's duration n_frames / fps. Returns [M]."""
    want = int(round(n_frames / fps * sample_rate))
    if len(audio) >= want:
        return audio[:want]
    return np.pad(audio, (0, want - len(audio)))


# ---------------------------------------------------------------------------------------------
# windows for the motion network


def window_offsets(window: int) -> np.ndarray:
    """Frame offsets of a `window`-frame slice around a frame: -w/2 .. w/2 - 1 (16 -> -8..7)."""
    return np.arange(window) - window // 2


def windows(features: Any, index: Any, window: int = 16) -> Any:
    """The `window` frames around each index, repeating the first/last frame at the edges.

    features [T, D] (numpy or torch), index [B] ints -> [B, window, D] of the same kind.
    """
    offsets = window_offsets(window)
    n = features.shape[0]
    if n == 0:
        raise ValueError("windows(): no frames")
    try:
        import torch

        if isinstance(features, torch.Tensor):
            idx = torch.as_tensor(index, device=features.device).long().reshape(-1, 1)
            rows = (idx + torch.as_tensor(offsets, device=features.device)).clamp(0, n - 1)
            return features[rows]
    except ImportError:  # pragma: no cover - torch is a core dependency
        pass
    idx = np.asarray(index, dtype=np.int64).reshape(-1, 1)
    rows = np.clip(idx + offsets, 0, n - 1)
    return np.asarray(features)[rows]


# ---------------------------------------------------------------------------------------------
# backends


class AudioFeatureBackend(Protocol):
    """An audio feature extractor: 16 kHz mono audio -> one vector per video frame."""

    name: str
    version: str
    feature_dim: int

    def features(self, audio: np.ndarray, n_frames: int, fps: float) -> np.ndarray:
        """audio [N] float32 at 16 kHz -> [n_frames, feature_dim] float32."""
        ...


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 20.0,
                   fmax: float | None = None) -> np.ndarray:
    """Triangular HTK-mel filters with unit area ("slaney" norm). Returns [n_mels, n_fft // 2 + 1]."""
    fmax = sample_rate / 2 if fmax is None else fmax
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))   # [n_mels + 2]
    bins = np.linspace(0, sample_rate / 2, n_fft // 2 + 1)                          # [F]
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (bins[None] - lo) / (mid - lo)
    down = (hi - bins[None]) / (hi - mid)
    fb = np.maximum(0.0, np.minimum(up, down))
    fb *= (2.0 / (hi - lo))  # equal area per band
    return fb.astype(np.float32)


def mel_centres(n_mels: int, sample_rate: int, fmin: float = 20.0, fmax: float | None = None) -> np.ndarray:
    """Centre frequency (Hz) of each mel band. Returns [n_mels]."""
    fmax = sample_rate / 2 if fmax is None else fmax
    return mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))[1:-1]


@dataclass
class LogMelFeatures:
    """Offline log-mel features: `stack` hops of 10 ms per 40 ms video frame, no weights."""

    n_mels: int = 80
    hop_ms: float = 10.0
    win_ms: float = 25.0
    n_fft: int = 512
    chunk_frames: int = 1500
    name: str = "logmel"
    version: str = "1"
    floor: float = 1e-10

    fps: float = 25.0

    def __post_init__(self) -> None:
        self.hop = int(round(SAMPLE_RATE * self.hop_ms / 1000))
        self.win = int(round(SAMPLE_RATE * self.win_ms / 1000))
        if self.win > self.n_fft:
            raise ConfigError(f"audio_features: window {self.win} samples exceeds n_fft {self.n_fft}")
        self.fb = mel_filterbank(self.n_mels, self.n_fft, SAMPLE_RATE)        # [M, F]
        self.taper = np.hanning(self.win + 2)[1:-1].astype(np.float32)         # [win]
        self.feature_dim = self.n_mels * self._stack_for(self.fps)

    def _stack_for(self, fps: float) -> int:
        per_frame = SAMPLE_RATE / fps / self.hop
        if abs(per_frame - round(per_frame)) > 1e-6:
            raise ConfigError(f"audio_features: logmel needs fps dividing {SAMPLE_RATE // self.hop} Hz "
                              f"(got {fps}); use 25 fps ingest")
        return int(round(per_frame))

    def features(self, audio: np.ndarray, n_frames: int, fps: float = 25.0) -> np.ndarray:
        """audio [N] float32 at 16 kHz -> [n_frames, n_mels * stack] float32 log-mel power."""
        stack = self._stack_for(fps)
        if stack * self.n_mels != self.feature_dim:
            raise ConfigError(f"audio_features: logmel built for {self.fps} fps, called with {fps} fps")
        hops = n_frames * stack
        # hop m is centred at (m + 0.5) * hop samples, so frame i's hops lie inside its interval
        left = self.win // 2 - self.hop // 2
        need = (hops - 1) * self.hop + self.win
        x = np.zeros(left + max(need, len(audio)) + self.win, np.float32)
        x[left:left + len(audio)] = audio[: len(x) - left]
        out = np.empty((n_frames, self.feature_dim), np.float32)
        step = self.chunk_frames * stack
        for h0 in range(0, hops, step):                   # bounded memory for long audio
            h1 = min(hops, h0 + step)
            frames = np.lib.stride_tricks.sliding_window_view(x[h0 * self.hop: (h1 - 1) * self.hop + self.win],
                                                              self.win)[:: self.hop]          # [H, win]
            spec = np.abs(np.fft.rfft(frames * self.taper, n=self.n_fft, axis=-1)) ** 2       # [H, F]
            mel = np.log(np.maximum(spec.astype(np.float32) @ self.fb.T, self.floor))          # [H, M]
            out[h0 // stack: h1 // stack] = mel.reshape(-1, stack * self.n_mels)
        return out


def _hf_cache_dir(repo_id: str) -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE) / ("models--" + repo_id.replace("/", "--"))


def resolve_wav2vec2(model_dir: str | None) -> Path:
    """Local folder of a Wav2Vec2 model: a directory, or an HF-cache snapshot of a hub id.

    Raises WeightsMissingError naming where it looked, before any work starts.
    """
    ref = model_dir or WAV2VEC2_DEFAULT
    how = (f"on a machine with internet run `huggingface-cli download {WAV2VEC2_DEFAULT}` (fills the HF cache) "
           "or save the model with save_pretrained into a folder and set audio_features.model_dir to it; "
           "or use audio_features.backend: logmel (offline)")
    p = Path(ref).expanduser()
    weights = ("model.safetensors", "pytorch_model.bin")
    if p.is_dir():
        if (p / "config.json").exists() and any((p / w).exists() for w in weights):
            return p
        raise WeightsMissingError("wav2vec2", [p / "config.json", p / weights[0]], how)
    if p.is_absolute() or ref.startswith(".") or ref.count("/") != 1:
        raise WeightsMissingError("wav2vec2", [p], how)
    cache = _hf_cache_dir(ref)
    try:
        from huggingface_hub import try_to_load_from_cache

        cfg = try_to_load_from_cache(ref, "config.json")
    except Exception:  # noqa: BLE001 - any cache trouble means "not there"
        cfg = None
    if isinstance(cfg, str) and Path(cfg).exists():
        snap = Path(cfg).parent
        if any((snap / w).exists() for w in weights):
            return snap
    raise WeightsMissingError("wav2vec2", [p.resolve() if p.exists() else p, cache], how)


def conv_geometry(conv_kernel: list[int], conv_stride: list[int]) -> tuple[int, int]:
    """(receptive field, stride) in samples of Wav2Vec2's convolutional feature encoder."""
    rf, stride = 1, 1
    for k, s in zip(conv_kernel, conv_stride):
        rf += (k - 1) * stride
        stride *= s
    return rf, stride


def frame_positions(n_frames: int, fps: float, rf: int, stride: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Fractional index into Wav2Vec2's output grid at the centre of each video frame. Returns [n_frames]."""
    centre = (np.arange(n_frames) + 0.5) / fps * sample_rate   # samples
    return (centre - rf / 2) / stride                          # output j is centred at j*stride + rf/2


def interpolate_rows(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of x [J, D] at fractional positions pos [T] (clamped). Returns [T, D]."""
    pos = np.clip(pos, 0, len(x) - 1)
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(x) - 1)
    w = (pos - lo).astype(np.float32)[:, None]
    return (1 - w) * x[lo] + w * x[hi]


class Wav2Vec2Features:
    """The paper's audio encoder: Wav2Vec 2.0 hidden states, chunked, resampled to the frame rate."""

    name = "wav2vec2"

    def __init__(self, model_dir: str | None = None, chunk_seconds: float = 20.0, context_seconds: float = 1.0,
                 device: str = "cpu", layer: int = -1) -> None:
        self.path = resolve_wav2vec2(model_dir)
        import torch
        import transformers
        from transformers import Wav2Vec2Model

        level = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()  # a CTC checkpoint's unused lm_head is expected
        try:
            self.model = Wav2Vec2Model.from_pretrained(str(self.path), local_files_only=True).to(device).eval()
        finally:
            transformers.logging.set_verbosity(level)
        cfg = self.model.config
        self.rf, self.stride = conv_geometry(list(cfg.conv_kernel), list(cfg.conv_stride))
        self.feature_dim = int(cfg.hidden_size)
        self.layer = layer
        self.device = device
        self.chunk = max(1, int(chunk_seconds * SAMPLE_RATE / self.stride))     # outputs per chunk
        self.context = max(0, int(context_seconds * SAMPLE_RATE / self.stride))  # outputs of context per side
        pre = self.path / "preprocessor_config.json"
        self.normalize = bool(json.loads(pre.read_text()).get("do_normalize", True)) if pre.exists() else True
        self.version = f"transformers-{transformers.__version__}:{self.path.name}"
        self._torch = torch

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """x [L] -> hidden states [J, D] for the outputs whose receptive fields fit in x."""
        torch = self._torch
        with torch.inference_mode():
            t = torch.from_numpy(np.ascontiguousarray(x))[None].to(self.device)
            if self.layer == -1:
                h = self.model(t).last_hidden_state
            else:
                h = self.model(t, output_hidden_states=True).hidden_states[self.layer]
        return h[0].float().cpu().numpy()

    def hidden_states(self, audio: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """audio [N] 16 kHz -> Wav2Vec2 outputs [J, D] at 50 Hz, computed chunk by chunk."""
        x = audio.astype(np.float32)
        if len(x) < self.rf:
            x = np.pad(x, (0, self.rf - len(x)))
        if self.normalize:  # whole-utterance normalisation, as the feature extractor does
            x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        n_out = (len(x) - self.rf) // self.stride + 1
        out = np.empty((n_out, self.feature_dim), np.float32)
        for a in range(0, n_out, self.chunk):
            b = min(n_out, a + self.chunk)
            ca, cb = max(0, a - self.context), min(n_out, b + self.context)
            h = self._encode(x[ca * self.stride: (cb - 1) * self.stride + self.rf])
            out[a:b] = h[a - ca: b - ca]
            if progress is not None:
                progress(b - a)
        return out

    def features(self, audio: np.ndarray, n_frames: int, fps: float = 25.0) -> np.ndarray:
        """audio [N] float32 at 16 kHz -> [n_frames, hidden_size] float32 (768 for base)."""
        h = self.hidden_states(audio)                                             # [J, D] at 50 Hz
        return interpolate_rows(h, frame_positions(n_frames, fps, self.rf, self.stride))


def load(backend: str, cfg: AudioFeaturesConfig, fps: float = 25.0) -> AudioFeatureBackend:
    """Build the configured backend; fails (WeightsMissingError) before any work if weights are absent."""
    if backend == "logmel":
        return LogMelFeatures(n_mels=cfg.n_mels, fps=fps)
    if backend == "wav2vec2":
        return Wav2Vec2Features(cfg.model_dir, chunk_seconds=cfg.chunk_seconds,
                                context_seconds=cfg.context_seconds, device=cfg.device)
    if backend == "whisper":
        return WhisperFeatures(cfg.whisper_dir, engine=cfg.whisper_engine, device=cfg.device,
                               window_seconds=cfg.whisper_window_seconds, overlap_seconds=cfg.whisper_overlap_seconds,
                               pad_to_30s=cfg.whisper_pad_to_30s, threads=cfg.whisper_threads)
    raise ConfigError(f"params: audio_features.backend `{backend}` is unknown; choose one of {sorted(BACKENDS)}")


def write_features(frames_path: str | Path, audio_for: Callable[[str], Path], out_path: str | Path,
                   cfg: AudioFeaturesConfig, progress: Progress = NO_PROGRESS, fps: float | None = None) -> int:
    """Features of every frame of a frame store, from each clip's 16 kHz wav, into `out_path` (atomic).

    Rows follow the frame store exactly (same clips, same frames, same order); progress(rows, total) per clip.
    Returns rows written. The backend loads (and fails on missing weights) before any clip is read. `fps`: the
    rate the pipeline runs at (ingest.fps); a frame store at another rate is refused before any work.
    """
    from emotag_core.io.frames import FrameStore
    from emotag_core.io.tables import TableWriter

    store = FrameStore(frames_path)
    keys = store.keys
    clip_col = keys.column("clip_id").to_numpy(zero_copy_only=False).astype(str)
    frame_col = keys.column("frame").to_numpy().astype(np.int64)
    clips = store.clip_ids
    wavs = {c: audio_for(c) for c in clips}
    missing = [str(p) for p in wavs.values() if not p.exists()]
    if missing:
        raise InputError(missing[0], f"audio of {len(missing)} clip(s) missing",
                         "re-run ingest (it writes one 16 kHz wav per clip)")
    if fps is not None and abs(float(store.fps) - float(fps)) > 1e-6:
        raise InputError(frames_path, f"frame store says {store.fps:g} fps, but the pipeline runs at ingest.fps "
                                      f"{float(fps):g}", "re-run ingest with the current params")
    try:
        teacher = load(cfg.backend, cfg, fps=store.fps)  # fails here if weights are missing
    except ConfigError as exc:  # e.g. a frame rate the backend cannot align to: name the table it came from
        raise InputError(frames_path, f"frame store says {store.fps:g} fps: {exc}",
                         "re-run ingest (ingest.fps: 25)") from exc
    meta = {"fps": store.fps, "frame_size": store.meta["frame_size"], "backend": teacher.name,
            "backend_version": teacher.version, "feature_dim": int(teacher.feature_dim),
            "sample_rate": SAMPLE_RATE, "window": int(cfg.window),
            "window_offsets": window_offsets(cfg.window).tolist(),
            "alignment": "row i describes the audio of frame i's display interval [i/fps, (i+1)/fps)"}
    if hasattr(teacher, "describe"):  # rate, engine, model checksum, windowing, pooling (whisper)
        meta.update(teacher.describe())
    with TableWriter(out_path, "audio_features", meta) as out:
        for clip in clips:
            rows = np.flatnonzero(clip_col == clip)
            frames = frame_col[rows]
            if frames.min() < 0:
                raise InputError(frames_path, f"clip `{clip}` has negative frame numbers", "re-run ingest")
            n = int(frames.max()) + 1
            raw = read_audio(wavs[clip])
            if len(raw) < SAMPLE_RATE / store.fps:
                raise InputError(wavs[clip], f"audio of clip `{clip}` is {len(raw) / SAMPLE_RATE * 1000:.1f} ms, "
                                 f"shorter than one video frame ({1000 / store.fps:.0f} ms)",
                                 "re-run ingest (the clip's sound track is missing or empty)")
            if not np.any(np.abs(raw) > SILENCE_PEAK) and not getattr(teacher, "warns_on_silence", False):
                log.warning("%s: audio of clip `%s` is all silence (peak <= %g); its features describe silence",
                            wavs[clip], clip, SILENCE_PEAK)
            wav = fit_length(raw, n, store.fps)
            feats = teacher.features(wav, n, store.fps)              # [n, D]
            if not np.isfinite(feats).all():
                raise InputError(wavs[clip], f"{teacher.name} features of clip `{clip}` are not finite",
                                 "replace the audio or use another audio_features.backend")
            out.write({"clip_id": clip_col[rows], "frame": frames.astype(np.int32), "feature": feats[frames]})
            progress(out.rows, len(clip_col))
        return out.rows


BACKENDS: dict[str, type] = {"wav2vec2": Wav2Vec2Features, "whisper": WhisperFeatures, "logmel": LogMelFeatures}


def locate_wav2vec2(cfg: AudioFeaturesConfig | None = None) -> WeightsStatus:
    """Where the wav2vec2 backend looks (audio_features.model_dir, else the HF cache); loads nothing."""
    try:
        found = resolve_wav2vec2(getattr(cfg, "model_dir", None))
    except WeightsMissingError as exc:
        return WeightsStatus(False, tuple(exc.looked), exc.how)
    return WeightsStatus(True, (str(found),), "", str(found))


register_backend(Backend("audio_features", "wav2vec2", True,
                         "Wav2Vec 2.0 base hidden states (transformers), 768-d, 50 Hz -> 25 fps", locate_wav2vec2))
def locate_whisper(cfg: AudioFeaturesConfig | None = None) -> WeightsStatus:
    """Where the whisper backend looks (audio_features.whisper_dir, else the asset home); loads nothing."""
    return _locate_whisper(cfg)


register_backend(Backend("audio_features", "whisper", False,
                         "Whisper tiny.en encoder states (CTranslate2 or its transformers port), 384-d, 50 Hz -> "
                         "25 fps", locate_whisper))
register_backend(Backend("audio_features", "logmel", False,
                         "80-band log-mel, 4 x 10 ms hops stacked per 40 ms frame (320-d), no weights", no_weights))
