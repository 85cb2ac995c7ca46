"""A random-weight Whisper encoder in the `export_encoder` format: for tests and benches of the mechanics.

The speed of an encode does not depend on the weights' values, so `tiny.en` sizes (d 384, 4 layers, 6 heads,
1500 positions) time like the real model; small sizes exercise windowing and streaming cheaply.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_random_encoder(out: str | Path, d_model: int = 384, layers: int = 4, heads: int = 6,
                         positions: int = 1500, ffn: int | None = None, seed: int = 0) -> Path:
    """Write random encoder weights (fp16, CTranslate2 naming with `.`) to `out` (safetensors), atomically."""
    import torch
    from safetensors.torch import save_file

    from emotag_core.io.atomic import atomic_path

    g = torch.Generator().manual_seed(seed)
    ffn = ffn or 4 * d_model

    def r(*shape: int, scale: float = 1.0) -> torch.Tensor:
        return (torch.randn(*shape, generator=g) * scale / np.sqrt(shape[-1])).half()

    t = {"conv1.weight": r(d_model, 80, 3), "conv1.bias": torch.zeros(d_model).half(),
         "conv2.weight": r(d_model, d_model, 3), "conv2.bias": torch.zeros(d_model).half(),
         "position_encodings.encodings": (torch.randn(positions, d_model, generator=g) * 0.1).half(),
         "layer_norm.gamma": torch.ones(d_model).half(), "layer_norm.beta": torch.zeros(d_model).half(),
         "num_heads": torch.tensor([heads], dtype=torch.int32)}
    for i in range(layers):
        p = f"layer_{i}."
        bias = torch.cat([r(d_model), torch.zeros(d_model).half(), r(d_model)])   # q, k (no bias), v
        t.update({p + "self_attention.linear_0.weight": r(3 * d_model, d_model), p + "self_attention.linear_0.bias": bias,
                  p + "self_attention.linear_1.weight": r(d_model, d_model), p + "self_attention.linear_1.bias": r(d_model),
                  p + "self_attention.layer_norm.gamma": torch.ones(d_model).half(),
                  p + "self_attention.layer_norm.beta": torch.zeros(d_model).half(),
                  p + "ffn.linear_0.weight": r(ffn, d_model), p + "ffn.linear_0.bias": r(ffn),
                  p + "ffn.linear_1.weight": r(d_model, ffn), p + "ffn.linear_1.bias": r(d_model),
                  p + "ffn.layer_norm.gamma": torch.ones(d_model).half(), p + "ffn.layer_norm.beta": torch.zeros(d_model).half()})
    out = Path(out)
    with atomic_path(out) as tmp:
        save_file({k: v.contiguous() for k, v in t.items()}, str(tmp), metadata={"source": f"random seed {seed}"})
    return out
