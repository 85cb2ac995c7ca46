"""The live control hook: `set_control` between two calls changes the gate of the next frames, on the eager
animator, the poser animator (eager on the CPU) and a captured CUDA graph (which bakes the control in)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.io.tables import UPPER_AUS
from emotag_core.render.driver import Animator, GateControl
from emotag_core.render.graphed import GraphedAnimator


def _parts(device: str):
    from emotag_core.avatar.scene import build_scene
    from emotag_core.flame import load_head_model
    from emotag_core.motion.grmn import GRMN, GRMNSpec

    torch.manual_seed(0)
    head = load_head_model(FlameConfig(), device)
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    scene = build_scene(head, meta, 800, None, "auto", device)
    spec = GRMNSpec(audio_dim=20, n_aus=len(UPPER_AUS), identity_dim=8, n_expr=head.n_expr, n_mouth=scene.n_mouth,
                    d_model=16, d_expr=8, n_layers=1, n_heads=2, hidden=16)
    grmn = GRMN(spec).to(device).eval()
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(1, spec.window, 20)).astype(np.float32), rng.uniform(0, 3, (1, spec.window, 6)).astype(np.float32),
         np.zeros((1, 3), np.float32), np.array([[0, 0, 0.55]], np.float32))
    return grmn, scene, torch.randn(8, device=device), x


def _switch(an, x):
    an.set_control(GateControl(override=0.0))
    a = an(*x)
    an.set_control(GateControl(override=1.0))
    b = an(*x)
    an.set_control(GateControl(scale=0.5))
    c = an(*x)
    assert float(a.g[0]) == 0.0 and float(b.g[0]) == 1.0
    assert float(c.g[0]) == pytest.approx(min(1.0, 0.5 * float(c.g_pred[0])), abs=1e-6)
    assert np.abs(a.frames.astype(int) - b.frames.astype(int)).max() > 0  # the gate reached the image


@pytest.mark.parametrize("kind", ["eager", "poser"])
def test_set_control_changes_the_next_frames(kind, one_torch_thread):
    grmn, scene, s, x = _parts("cpu")
    an = Animator(grmn, scene, s, size=48) if kind == "eager" else \
        GraphedAnimator(grmn, scene, s, batch=1, size=48, mode="eager")
    _switch(an, x)
    if kind == "poser":
        assert an.poser.control == an.control == GateControl(scale=0.5)


@pytest.mark.gpu
def test_set_control_recaptures_the_cuda_graph():
    grmn, scene, s, x = _parts("cuda")
    an = GraphedAnimator(grmn, scene, s, batch=1, size=128, device="cuda", mode="graph")
    _switch(an, x)
