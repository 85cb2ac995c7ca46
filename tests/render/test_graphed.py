"""FramePoser (the batch-1 fast path of inference): eager matches IdentityScene.render on the CPU;
the CUDA-graph and compiled modes match eager on the GPU (marked gpu)."""
from __future__ import annotations

import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.flame import load_head_model
from emotag_core.io.tables import UPPER_AUS
from emotag_core.motion.grmn import GRMN, GRMNSpec
from emotag_core.render.driver import Animator, GateControl, apply_gate
from emotag_core.render.graphed import FramePoser, GraphedAnimator
from emotag_core.train.scene import build_scene

torch.set_num_threads(1)


def _setup(device: str, n_gaussians: int = 3000, d_model: int = 32, seed: int = 0):
    torch.manual_seed(seed)
    head = load_head_model(FlameConfig(), device)
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    scene = build_scene(head, meta, n_gaussians, None, "auto", device)
    with torch.no_grad():  # a non-trivial appearance and background, as after fitting
        scene.avatar.sh.add_(0.5 * torch.randn_like(scene.avatar.sh))
        scene.avatar.opacity_logit.add_(torch.randn_like(scene.avatar.opacity_logit))
        scene.background.uniform_(0, 1)
    spec = GRMNSpec(audio_dim=20, n_aus=len(UPPER_AUS), identity_dim=8, n_expr=head.n_expr, n_mouth=scene.n_mouth,
                    d_model=d_model, d_expr=16, n_layers=2, n_heads=4, hidden=32)
    grmn = GRMN(spec).to(device).eval()
    with torch.no_grad():  # larger decoder outputs so motion visibly moves the mesh
        for m in (grmn.decoder.base[-1], grmn.decoder.emo_decoder[-1]):
            m.weight.normal_(std=0.02)
    return head, scene, grmn


def _inputs(grmn: GRMN, B: int, seed: int, device: str):
    g = torch.Generator().manual_seed(seed)
    sp = grmn.spec
    a = torch.randn(B, sp.window, sp.audio_dim, generator=g)
    e = torch.rand(B, sp.window, sp.n_aus, generator=g) * 5
    rot = 0.2 * torch.randn(B, 3, generator=g)
    trans = torch.tensor([0.0, 0.0, 0.5]) + 0.01 * torch.randn(B, 3, generator=g)
    s = torch.randn(sp.identity_dim, generator=g)
    return [t.to(device) for t in (a, e, rot, trans, s)]


def test_eager_poser_renders_what_the_scene_renders():
    _, scene, grmn = _setup("cpu")
    a, e, rot, trans, s = _inputs(grmn, 2, 1, "cpu")
    control = GateControl(scale=0.5)
    poser = FramePoser(grmn, scene, s, batch=2, mode="eager", control=control)
    got = poser.render(a, e, rot, trans, size=48)
    with torch.no_grad():
        out = apply_gate(grmn(a, e, s[None].expand(2, -1)), control, grmn.spec.n_expr)
        ref = scene.render(out.expr, out.jaw, rot, trans, out.mouth, 48)["image"]
    assert got.shape == (2, 3, 48, 48)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    # the two frames differ (motion and pose reach the image) and the control reached the gate
    assert (got[0] - got[1]).abs().max() > 1e-2
    posed = poser.pose(a, e, rot, trans)
    torch.testing.assert_close(posed.g, (grmn(a, e, s[None].expand(2, -1)).g * 0.5).clamp(0, 1))


def test_graphed_animator_is_a_drop_in_animator_with_padding():
    _, scene, grmn = _setup("cpu", n_gaussians=1200)
    a, e, rot, trans, s = _inputs(grmn, 2, 3, "cpu")
    control = GateControl(override=0.8)
    ref = Animator(grmn, scene, s, size=40, control=control)(a.numpy(), e.numpy(), rot.numpy(), trans.numpy())
    fast = GraphedAnimator(grmn, scene, s, batch=3, size=40, control=control, mode="eager")
    got = fast(a.numpy(), e.numpy(), rot.numpy(), trans.numpy())  # 2 frames through a batch-3 poser
    assert got.frames.shape == ref.frames.shape == (2, 40, 40, 3)
    assert abs(got.frames.astype(int) - ref.frames.astype(int)).max() <= 1
    for k in ("g", "g_pred", "z_e", "jaw"):
        torch.testing.assert_close(torch.as_tensor(getattr(got, k)), torch.as_tensor(getattr(ref, k)))
    assert float(abs(got.g - 0.8).max()) < 1e-6 and float(abs(got.g_pred - 0.8).max()) > 1e-3


def test_poser_refuses_wrong_batch_and_graph_on_cpu():
    _, scene, grmn = _setup("cpu", n_gaussians=1200)
    a, e, rot, trans, s = _inputs(grmn, 3, 0, "cpu")
    poser = FramePoser(grmn, scene, s, batch=2, mode="eager")
    with pytest.raises(InputError, match="batch 2"):
        poser.pose(a, e, rot, trans)
    with pytest.raises(ConfigError, match="CUDA"):
        FramePoser(grmn, scene, s, batch=1, mode="graph")


@pytest.mark.gpu
@pytest.mark.parametrize("mode", ["graph", "compile"])
def test_fast_modes_match_eager_on_cuda(mode):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _, scene, grmn = _setup("cuda", n_gaussians=20000, d_model=64)
    B = 2
    _, _, _, _, s = _inputs(grmn, B, 0, "cuda")
    eager = FramePoser(grmn, scene, s, batch=B, mode="eager")
    fast = FramePoser(grmn, scene, s, batch=B, mode=mode)
    imgs = []
    for seed in (1, 2, 3):  # fresh inputs each replay: the graph must read the new inputs
        a, e, rot, trans, _ = _inputs(grmn, B, seed, "cuda")
        pe, pf = eager.pose(a, e, rot, trans), fast.pose(a, e, rot, trans)
        for k in ("means", "quats", "scales", "g", "jaw"):
            x, y = getattr(pe, k), getattr(pf, k)
            rel = float((x - y).norm() / x.norm().clamp_min(1e-12))
            assert rel < 1e-5, (mode, k, rel)
        ie, i_f = eager.draw(pe, 128), fast.draw(pf, 128)
        # ~1e-6 pose differences (fused kernels) can flip a Gaussian past gsplat's alpha cut-off at an edge
        assert float((ie - i_f).abs().mean()) < 1e-5 and float((ie - i_f).abs().max()) < 0.05
        imgs.append(i_f.clone())
    assert float((imgs[0] - imgs[1]).abs().max()) > 1e-2  # not a stale replay of the first inputs
