"""Gated Residual Motion Network (paper Sec. 3.2.1-3.2.2): audio + upper-face AUs + identity -> motion.

The network predicts, per video frame, FLAME expression and jaw offsets from neutral (zero
expression, closed jaw) and per-mouth-Gaussian offsets (Delta mu, Delta r, Delta s; Eq. 8).
Names follow the paper: `adain`, `base`, `residual` (EMO encoder -> `z_e` -> EMO decoder), `gate`.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from emotag_core.errors import ConfigError

N_EMOTIONS = 7  # z_e has one logit per DeepFace emotion class (Eq. 12)
ADAIN_AXES = ("time", "channel")  # what Eq. 5's InstanceNorm normalises over
MOUTH_PARAMS = 10  # per mouth Gaussian: Delta mu (3), Delta r (quaternion, 4), Delta s (log-scale, 3)


@dataclass
class GRMNSpec:
    """Sizes and switches of one GRMN; the input sizes come from table metadata, never guessed."""

    audio_dim: int
    """Audio feature dimension (audio_features metadata `feature_dim`: 768 for Wav2Vec2-base)."""
    n_aus: int
    """Upper-face AUs read as the expression feature E (paper: 6)."""
    identity_dim: int
    """Identity vector size (identity metadata `identity_vector` length)."""
    n_expr: int
    """FLAME expression dimension of the head model (flame metadata `n_expr`)."""
    n_mouth: int
    """Number of mouth Gaussians receiving offsets (the avatar's mouth index set)."""
    window: int = 16
    """Audio/AU frames per window (paper: 16)."""
    d_model: int = 256
    """Width of the audio Transformer and the fused features."""
    d_expr: int = 64
    """Width of the AU (expression) embedding E."""
    n_layers: int = 4
    """Transformer encoder layers (paper: 4)."""
    n_heads: int = 4
    """Attention heads."""
    hidden: int = 256
    """Hidden width of the decoder MLPs."""
    adain: bool = True
    """AdaIN from the identity vector (Eq. 4-5); off = InstanceNorm with a learned, identity-free affine."""
    residual: bool = True
    """Residual (emotion) branch; off = delta is the base branch alone."""
    gate: bool = True
    """Gate branch; off = g fixed to 1 in Eq. 6."""
    audio_norm: bool = False
    """Standardise each audio feature channel at the input with the pretraining corpus's mean and
    std (buffers `audio_mean`, `audio_std`, saved with the weights; set by `set_audio_stats`)."""
    dropout: float = 0.0
    """Dropout probability inside the audio Transformer layers (training only; 0 = none)."""
    clip_norm: bool = False
    """The model was trained on per-clip standardised audio features (CMVN per channel over the clip):
    whoever feeds it (loaders, the render driver) must standardise the same way; forward does not."""
    adain_axis: str = "time"
    """Axis of Eq. 5's InstanceNorm on a window's features [T, C]: `time` (per channel, over the
    window's frames) or `channel` (per frame, over its channels). The paper writes InstanceNorm(F)
    without the axis; `time` is this project's reading, `channel` keeps each frame's absolute level."""

    def __post_init__(self) -> None:
        for name in ("audio_dim", "n_aus", "identity_dim", "n_expr", "window", "d_model", "n_layers", "n_heads"):
            if int(getattr(self, name)) <= 0:
                raise ConfigError(f"GRMN: `{name}` must be positive, got {getattr(self, name)}")
        if self.n_mouth < 0:
            raise ConfigError(f"GRMN: `n_mouth` must be >= 0, got {self.n_mouth}")
        if self.adain_axis not in ADAIN_AXES:
            raise ConfigError(f"GRMN: `adain_axis` must be one of {ADAIN_AXES}, got {self.adain_axis!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GRMN: `dropout` must be in [0, 1), got {self.dropout}")
        if self.d_model % self.n_heads:
            raise ConfigError(f"GRMN: d_model={self.d_model} is not divisible by n_heads={self.n_heads}")

    @classmethod
    def from_config(cls, pretrain: Any, ablation: Any, window: int, meta: dict[str, Any], n_mouth: int) -> "GRMNSpec":
        """The architecture from `pretrain.*` (PretrainConfig), `ablation.*` (AblationConfig), `audio_features.window`
        and an identity's table metadata (`feature_dim`, `identity_vector`, `n_expr`); n_mouth from the avatar."""
        from emotag_core.io.tables import UPPER_AUS

        c = pretrain
        return cls(audio_dim=meta["feature_dim"], n_aus=len(UPPER_AUS), identity_dim=len(meta["identity_vector"]),
                   n_expr=meta["n_expr"], n_mouth=n_mouth, window=window, d_model=c.d_model, d_expr=c.d_expr,
                   n_layers=c.n_layers, n_heads=c.n_heads, hidden=c.hidden, adain=ablation.adain,
                   residual=ablation.residual, gate=ablation.gate, audio_norm=c.audio_norm, dropout=c.dropout,
                   adain_axis=c.adain_axis, clip_norm=c.clip_norm)


@dataclass
class MotionOutput:
    """What GRMN predicts for a batch of frames (all offsets from the identity's neutral)."""

    expr: Tensor  # [B, n_expr]     FLAME expression (delta_face, part 1)
    jaw: Tensor  # [B, 3]           jaw pose, axis-angle (delta_face, part 2)
    mouth: Tensor  # [B, M, 10]     per mouth Gaussian: dmu (3), dr (4), ds (3) (delta_mouth)
    g: Tensor  # [B, 1]             gate in [0, 1] (Eq. 6)
    z_e: Tensor | None  # [B, 7]    emotion latent (None without the residual branch)
    delta_b: Tensor  # [B, P]       base branch, flat
    delta_r: Tensor | None  # [B, P] residual branch, flat
    extras: dict[str, Tensor] = field(default_factory=dict)

    @property
    def mouth_dmu(self) -> Tensor:  # [B, M, 3]
        return self.mouth[..., 0:3]

    @property
    def mouth_drot(self) -> Tensor:  # [B, M, 4]
        return self.mouth[..., 3:7]

    @property
    def mouth_dscale(self) -> Tensor:  # [B, M, 3]
        return self.mouth[..., 7:10]


def _mlp(d_in: int, d_hidden: int, d_out: int, n_hidden: int = 1) -> nn.Sequential:
    layers: list[nn.Module] = []
    d = d_in
    for _ in range(n_hidden):
        layers += [nn.Linear(d, d_hidden), nn.LeakyReLU(0.02)]
        d = d_hidden
    layers.append(nn.Linear(d, d_out))
    return nn.Sequential(*layers)


class AdaIN(nn.Module):
    """Identity modulation of a feature stream (Eq. 4-5): gamma, beta = MLP(s); F~ = gamma*IN(F) + beta.

    The instance normalisation runs over time (the window), per channel (`axis="time"`), or over
    the channels of each frame (`axis="channel"`). With `adaptive=False` (ablation `adain: false`)
    gamma and beta are plain learned vectors that ignore s.
    """

    def __init__(self, channels: int, identity_dim: int, adaptive: bool = True, hidden: int = 128,
                 eps: float = 1e-5, axis: str = "time") -> None:
        super().__init__()
        if axis not in ADAIN_AXES:
            raise ConfigError(f"AdaIN: axis must be one of {ADAIN_AXES}, got {axis!r}")
        self.channels = channels
        self.adaptive = adaptive
        self.eps = eps
        self.dim = 1 if axis == "time" else 2  # of f [B, T, C]
        if adaptive:
            self.mlp = _mlp(identity_dim, hidden, 2 * channels)  # Eq. 4
            last = self.mlp[-1]
            assert isinstance(last, nn.Linear)
            nn.init.normal_(last.weight, std=1e-2)  # start near gamma = 1, beta = 0
            nn.init.zeros_(last.bias)
        else:
            self.gamma = nn.Parameter(torch.ones(channels))
            self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, f: Tensor, s: Tensor) -> Tensor:
        """f [B, T, C], s [B, S] -> [B, T, C]."""
        mean = f.mean(dim=self.dim, keepdim=True)
        var = f.var(dim=self.dim, keepdim=True, unbiased=False)
        normed = (f - mean) / torch.sqrt(var + self.eps)  # InstanceNorm (over time per channel, or per frame)
        if self.adaptive:
            gb = self.mlp(s)  # [B, 2C]
            gamma = 1.0 + gb[:, None, : self.channels]
            beta = gb[:, None, self.channels:]
        else:
            gamma, beta = self.gamma, self.beta
        return gamma * normed + beta  # Eq. 5


class AudioEncoder(nn.Module):
    """Audio window -> per-frame tokens: temporal 1-D CNN, MLP, Transformer encoder (Sec. 3.2.1)."""

    def __init__(self, audio_dim: int, d_model: int, n_layers: int, n_heads: int, window: int,
                 dropout: float = 0.0) -> None:
        super().__init__()
        mid = max(d_model, 64)
        self.cnn = nn.Sequential(  # temporal 1-D CNN over the window (AD-NeRF style refinement)
            nn.Conv1d(audio_dim, mid, kernel_size=3, padding=1), nn.LeakyReLU(0.02),
            nn.Conv1d(mid, mid, kernel_size=3, padding=1), nn.LeakyReLU(0.02),
        )
        self.mlp = _mlp(mid, d_model, d_model)
        self.pos = nn.Parameter(torch.zeros(1, window, d_model))
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout,
                                           batch_first=True, norm_first=True)
        self.transformer = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)

    def forward(self, audio: Tensor) -> Tensor:
        """audio [B, T, D] -> [B, T, d_model]."""
        x = self.cnn(audio.transpose(1, 2)).transpose(1, 2)  # [B, T, mid]
        x = self.mlp(x) + self.pos[:, : x.shape[1]]
        return self.transformer(x)


class AUEncoder(nn.Module):
    """MLP AU encoder: upper-face AU intensities -> expression feature E, per frame."""

    def __init__(self, n_aus: int, d_expr: int) -> None:
        super().__init__()
        self.mlp = _mlp(n_aus, d_expr, d_expr, n_hidden=2)

    def forward(self, aus: Tensor) -> Tensor:
        """aus [B, T, n_aus] (OpenFace 0-5 scale) -> [B, T, d_expr]."""
        return self.mlp(aus / 5.0)


class IdentityConditionedEncoder(nn.Module):
    """Audio and AU streams, each modulated by the identity vector through AdaIN (Eq. 4-5)."""

    def __init__(self, spec: GRMNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.audio = AudioEncoder(spec.audio_dim, spec.d_model, spec.n_layers, spec.n_heads, spec.window,
                                  dropout=spec.dropout)
        self.au = AUEncoder(spec.n_aus, spec.d_expr)
        self.adain_audio = AdaIN(spec.d_model, spec.identity_dim, adaptive=spec.adain, axis=spec.adain_axis)
        self.adain_expr = AdaIN(spec.d_expr, spec.identity_dim, adaptive=spec.adain, axis=spec.adain_axis)

    def forward(self, audio: Tensor, aus: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """audio [B, T, D], aus [B, T, n_aus], s [B, S] -> (A~ [B, d_model], E~ [B, d_expr]) at the centre frame."""
        if audio.shape[1] != aus.shape[1]:
            raise ValueError(f"GRMN: audio window has {audio.shape[1]} frames, AU window {aus.shape[1]}")
        c = audio.shape[1] // 2
        a = self.adain_audio(self.audio(audio), s)  # [B, T, d_model]
        e = self.adain_expr(self.au(aus), s)  # [B, T, d_expr]
        return a[:, c], e[:, c]


class ExpertMotionDecoder(nn.Module):
    """Base, residual and gate branches; delta = delta_b + g * delta_r (Eq. 6)."""

    def __init__(self, spec: GRMNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.n_out = spec.n_expr + 3 + MOUTH_PARAMS * spec.n_mouth
        self.base = _mlp(spec.d_model, spec.hidden, self.n_out, n_hidden=2)
        _small_last(self.base)
        fused = spec.d_model + spec.d_expr
        if spec.residual:
            self.emo_encoder = _mlp(fused, spec.hidden, N_EMOTIONS, n_hidden=2)  # -> z_e
            self.emo_decoder = _mlp(N_EMOTIONS, spec.hidden, self.n_out, n_hidden=2)  # z_e -> delta_r
            _small_last(self.emo_decoder)
            if spec.gate:
                self.gate = _mlp(fused, spec.hidden // 2, 1, n_hidden=1)

    def forward(self, a: Tensor, e: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
        """a [B, d_model], e [B, d_expr] -> (delta, delta_b [B, P], g [B, 1], z_e [B, 7] | None, delta_r | None)."""
        delta_b = self.base(a)
        ones = a.new_ones(a.shape[0], 1)
        if not self.spec.residual:
            return delta_b, delta_b, ones, None, None
        fused = torch.cat([a, e], dim=-1)
        z_e = self.emo_encoder(fused)
        delta_r = self.emo_decoder(z_e)
        g = torch.sigmoid(self.gate(fused)) if self.spec.gate else ones
        return delta_b + g * delta_r, delta_b, g, z_e, delta_r  # Eq. 6


def _small_last(seq: nn.Sequential) -> None:
    last = seq[-1]
    assert isinstance(last, nn.Linear)
    nn.init.normal_(last.weight, std=1e-3)
    nn.init.zeros_(last.bias)


class GRMN(nn.Module):
    """Gated Residual Motion Network: (audio window, AU window, identity) -> motion offsets."""

    def __init__(self, spec: GRMNSpec) -> None:
        super().__init__()
        self.spec = spec
        self.encoder = IdentityConditionedEncoder(spec)
        self.decoder = ExpertMotionDecoder(spec)
        if spec.audio_norm:  # filled from the pretraining corpus by set_audio_stats; identity until then
            self.register_buffer("audio_mean", torch.zeros(spec.audio_dim))
            self.register_buffer("audio_std", torch.ones(spec.audio_dim))

    def set_audio_stats(self, mean: Tensor, std: Tensor) -> None:
        """Per-channel input statistics of the audio features (mean, std: [D]); needs `spec.audio_norm`."""
        d = self.spec.audio_dim
        if not self.spec.audio_norm:
            raise ConfigError("GRMN.set_audio_stats: this model was built with `audio_norm` off")
        if tuple(mean.shape) != (d,) or tuple(std.shape) != (d,):
            raise ValueError(f"GRMN.set_audio_stats: mean and std must be [{d}], got {list(mean.shape)}, {list(std.shape)}")
        if not bool(torch.isfinite(mean).all()) or not bool((std > 0).all()):
            raise ValueError("GRMN.set_audio_stats: mean must be finite and std > 0 in every channel")
        self.audio_mean.copy_(mean)
        self.audio_std.copy_(std)

    def forward(self, audio: Tensor, aus: Tensor, s: Tensor) -> MotionOutput:
        """audio [B, T, D], aus [B, T, n_aus], s [B, S] -> MotionOutput for the window's centre frame."""
        sp = self.spec
        if audio.ndim != 3 or audio.shape[-1] != sp.audio_dim:
            raise ValueError(f"GRMN: audio must be [B, T, {sp.audio_dim}], got {list(audio.shape)}; "
                             "the audio table's feature_dim differs from the one this model was built for")
        if aus.ndim != 3 or aus.shape[-1] != sp.n_aus:
            raise ValueError(f"GRMN: aus must be [B, T, {sp.n_aus}], got {list(aus.shape)}")
        if s.ndim != 2 or s.shape[-1] != sp.identity_dim:
            raise ValueError(f"GRMN: identity vector must be [B, {sp.identity_dim}], got {list(s.shape)}")
        if sp.audio_norm:
            audio = (audio - self.audio_mean) / self.audio_std  # per-channel standardisation (corpus stats)
        a, e = self.encoder(audio, aus, s)
        delta, delta_b, g, z_e, delta_r = self.decoder(a, e)
        n = sp.n_expr
        return MotionOutput(
            expr=delta[:, :n], jaw=delta[:, n:n + 3],
            mouth=delta[:, n + 3:].reshape(delta.shape[0], sp.n_mouth, MOUTH_PARAMS),
            g=g, z_e=z_e, delta_b=delta_b, delta_r=delta_r,
        )

    def grow_mouth(self, n_mouth: int) -> None:
        """Give a GRMN without mouth outputs (`spec.n_mouth` 0: pretrained motion-only, where no L_Render
        trains the intra-oral offsets of Eq. 8) `n_mouth` mouth Gaussians, in place: the last layers of the
        base and residual decoders gain 10 rows per Gaussian, initialised as a fresh GRMN's (std 1e-3, zero
        bias: near-zero offsets), while the expression and jaw rows keep their trained weights."""
        if self.spec.n_mouth != 0:
            raise ConfigError(f"GRMN.grow_mouth: the model already predicts {self.spec.n_mouth} mouth Gaussians")
        if n_mouth <= 0:
            return
        extra = MOUTH_PARAMS * n_mouth
        dec = self.decoder
        for seq in [dec.base] + ([dec.emo_decoder] if self.spec.residual else []):
            old = seq[-1]
            seq[-1] = nn.Linear(old.in_features, old.out_features + extra).to(old.weight.device, old.weight.dtype)
            _small_last(seq)  # the new rows as a fresh GRMN's
            with torch.no_grad():
                seq[-1].weight[:old.out_features] = old.weight
                seq[-1].bias[:old.out_features] = old.bias
        self.spec = replace(self.spec, n_mouth=int(n_mouth))
        dec.spec = self.spec
        self.encoder.spec = self.spec
        dec.n_out += extra

    def adain_parameters(self) -> list[nn.Parameter]:
        """The identity-modulation parameters that adaptation tunes (Sec. 3.3).

        With `adain` off these are the InstanceNorm affine vectors (gamma, beta) of both streams.
        """
        return list(self.encoder.adain_audio.parameters()) + list(self.encoder.adain_expr.parameters())

    def adain_parameter_names(self) -> set[str]:
        """Qualified names of `adain_parameters()`."""
        return {n for n, _ in self.named_parameters() if n.startswith(("encoder.adain_audio.", "encoder.adain_expr."))}
