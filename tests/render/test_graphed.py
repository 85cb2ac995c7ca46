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
from emotag_core.avatar.scene import build_scene

torch.set_num_threads(1)


def _setup(device: str, n_gaussians: int = 3000, d_model: int = 32, seed: int = 0, audio_dim: int = 20,
           model: str = "open", neck: bool = False):
    """neck: the ICT head with a body pose (`set_body`), so the pose step turns the head on the neck."""
    torch.manual_seed(seed)
    head = load_head_model(FlameConfig(model=model), device)
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512],
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    scene = build_scene(head, meta, n_gaussians, None, "auto", device)
    if neck:
        from emotag_core.flame import rodrigues

        scene.set_body(rodrigues(torch.tensor([[0.05, 0.1, 0.0]]))[0])
    with torch.no_grad():  # a non-trivial appearance and background, as after fitting
        scene.avatar.sh.add_(0.5 * torch.randn_like(scene.avatar.sh))
        scene.avatar.opacity_logit.add_(torch.randn_like(scene.avatar.opacity_logit))
        scene.background.uniform_(0, 1)
    spec = GRMNSpec(audio_dim=audio_dim, n_aus=len(UPPER_AUS), identity_dim=8, n_expr=head.n_expr, n_mouth=scene.n_mouth,
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


def test_eager_poser_turns_the_head_on_the_neck():
    _, scene, grmn = _setup("cpu", model="ict", neck=True)
    a, e, rot, trans, s = _inputs(grmn, 2, 1, "cpu")
    poser = FramePoser(grmn, scene, s, batch=2, mode="eager")
    with torch.no_grad():
        out = grmn(a, e, s[None].expand(2, -1))
        ref = scene.render(out.expr, out.jaw, rot, trans, out.mouth, 48)["image"]
        scene_rigid = scene.neck(rot)
    assert scene_rigid is not None and float(scene_rigid.norm()) > 0.05
    torch.testing.assert_close(poser.render(a, e, rot, trans, size=48), ref, rtol=0, atol=0)


@pytest.mark.gpu
@pytest.mark.parametrize("mode,model", [("graph", "open"), ("compile", "open"), ("graph", "ict")])
def test_fast_modes_match_eager_on_cuda(mode, model):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    _, scene, grmn = _setup("cuda", n_gaussians=20000, d_model=64, model=model, neck=model == "ict")
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


# ---- the render stage's animator: graphed on CUDA by default, eager on the CPU --------------------


def _adapted(tmp_path, n_gaussians: int, d_model: int, audio_dim: int):
    """An adapted identity on disk in adapt@<id>'s format (random GRMN, fitted-looking scene)."""
    from emotag_core.config import Params
    from types import SimpleNamespace

    from emotag_core.render.adapted import save_adapted

    head, scene, grmn = _setup("cpu", n_gaussians=n_gaussians, d_model=d_model, audio_dim=audio_dim)
    s = torch.randn(grmn.spec.identity_dim, generator=torch.Generator().manual_seed(5))
    meta = {"shape": [0.0] * head.n_shape, "frame_size": [512, 512], "identity_vector": s.tolist(),
            "camera": {"fx": 900.0, "fy": 900.0, "cx": 256.0, "cy": 256.0}}
    paths = SimpleNamespace(models=tmp_path / "data" / "models" / "anna")  # adapt@anna's output folder
    save_adapted(paths.models, grmn, scene, meta, n_gaussians, seed=0)
    return Params(), paths


def _stream_frames(animator, T: int, batch: int, audio_dim: int):
    """The render stage's frame loop (render_to_mp4 / render_stream run it) into a list -> frames, trace."""
    import numpy as np

    from emotag_core.render.driver import CueTrack, animate_stream
    from emotag_core.teachers.audio import LogMelFeatures

    rng = np.random.default_rng(0)
    wave = (rng.normal(0, 0.2, T * 640) * np.repeat(rng.uniform(0, 1, T) ** 2, 640)).astype(np.float32)
    n = 9  # cue clip shorter than the audio: pingpong
    cues = CueTrack(rot=rng.normal(0, 0.1, (n, 3)), trans=np.tile([0, 0, 0.5], (n, 1)) + rng.normal(0, 0.005, (n, 3)),
                    aus=rng.uniform(0, 3, (n, len(UPPER_AUS))), mode="pingpong", source="test cues")
    feats = LogMelFeatures()
    assert feats.feature_dim == audio_dim
    out: dict[int, object] = {}
    trace = animate_stream(animator, [wave[i:i + 640] for i in range(0, len(wave), 640)], feats, cues,
                           lambda t, f, s: out.__setitem__(t, f), batch_size=batch)
    return np.stack([out[t] for t in range(T)]), trace


def _load(p, paths, batch=None):
    """render@<id>'s animator for the test identity (what the stage and `emotag render` load)."""
    from emotag_core.render.adapted import load_animator

    return load_animator(paths.models, p.flame, p.pretrain.rasterizer, p.render, p.ingest.size, batch=batch)


def test_stage_animator_is_eager_on_cpu_and_graph_needs_cuda(tmp_path):
    from emotag_core.config import RenderConfig, from_dict
    from emotag_core.render.graphed import build_animator
    from emotag_core.render.adapted import animator_kind

    assert from_dict(RenderConfig, {"graphed": "auto"}).graphed == "auto"
    assert from_dict(RenderConfig, {"graphed": False}).graphed is False
    with pytest.raises(ConfigError, match="graphed"):
        from_dict(RenderConfig, {"graphed": "yes"})
    p, paths = _adapted(tmp_path, n_gaussians=600, d_model=16, audio_dim=320)
    p.ingest.size, p.render.size, p.render.gate_scale = 48, 32, 0.5
    an = _load(p, paths)
    assert type(an) is Animator and animator_kind(an) == "eager" and an.size == 48 and an.raster_size == 32
    assert an.control == GateControl(scale=0.5)
    p.render.graphed = True
    with pytest.raises(ConfigError, match="CUDA"):
        _load(p, paths)
    with pytest.raises(ConfigError, match="auto, true or false"):
        build_animator(an.grmn, an.scene, an.s, graphed="on")


def test_poser_animator_streams_the_same_frames_as_eager(tmp_path):
    """The render loop through GraphedAnimator (eager poser on the CPU) = through Animator: padding of
    the last partial batch, gate control and traces included."""

    p, paths = _adapted(tmp_path, n_gaussians=600, d_model=16, audio_dim=320)
    p.ingest.size, p.render.size, p.render.gate_override = 40, 32, 0.3
    ref = _load(p, paths)
    fast = GraphedAnimator(ref.grmn, ref.scene, ref.s, batch=4, size=40, control=ref.control, mode="eager",
                           raster_size=32)
    T = 11  # 4 + 4 + 3: the last batch is padded
    f_ref, t_ref = _stream_frames(ref, T, 4, 320)
    f_fast, t_fast = _stream_frames(fast, T, 4, 320)
    assert f_ref.shape == (T, 40, 40, 3)
    assert abs(f_ref.astype(int) - f_fast.astype(int)).max() <= 1
    assert abs(f_ref[0].astype(int) - f_ref[-1].astype(int)).max() > 10  # the stream is not a still
    for k in ("g", "g_pred", "jaw_open", "cue_index"):
        torch.testing.assert_close(torch.tensor(getattr(t_fast, k)), torch.tensor(getattr(t_ref, k)))
    assert max(abs(g - 0.3) for g in t_fast.g) < 1e-6


@pytest.mark.gpu
def test_render_stage_graphed_matches_eager_on_cuda(tmp_path):
    """render@<id>'s animator on CUDA: graphed by default, and the frames it streams = eager's."""
    import numpy as np

    from emotag_core.render.adapted import animator_kind

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    p, paths = _adapted(tmp_path, n_gaussians=20000, d_model=64, audio_dim=320)
    p.render.device, p.render.batch_size, p.render.gate_scale, p.render.size = "cuda", 8, 0.6, 256
    fast = _load(p, paths)  # render.graphed: auto
    assert isinstance(fast, GraphedAnimator) and animator_kind(fast) == "graph (batch 8)"
    p.render.graphed = False
    ref = _load(p, paths)
    assert type(ref) is Animator and animator_kind(ref) == "eager"
    T = 21  # 8 + 8 + 5: the last batch is padded
    f_ref, t_ref = _stream_frames(ref, T, 8, 320)
    f_fast, t_fast = _stream_frames(fast, T, 8, 320)
    assert f_fast.shape == f_ref.shape == (T, 512, 512, 3)
    d = np.abs(f_ref.astype(int) - f_fast.astype(int))
    # ~1e-6 pose differences can flip a Gaussian past gsplat's alpha cut-off at an edge: rare, small
    assert d.mean() < 0.05 and (d > 2).mean() < 1e-3 and d.max() <= 64, (d.mean(), (d > 2).mean(), d.max())
    assert np.abs(f_ref[0].astype(int) - f_ref[10].astype(int)).max() > 10  # motion reaches the frames
    for k in ("g", "g_pred", "jaw_open"):
        np.testing.assert_allclose(getattr(t_fast, k), getattr(t_ref, k), rtol=1e-4, atol=1e-5)
    assert t_fast.cue_index == t_ref.cue_index
    np.testing.assert_allclose(t_fast.g, np.clip(np.asarray(t_fast.g_pred) * 0.6, 0, 1), atol=1e-6)  # gate_scale
    # streaming (batch 1, as `emotag render --stream` builds it) gives the same frames too
    p.render.graphed = "auto"
    one = _load(p, paths, batch=1)
    assert animator_kind(one) == "graph (batch 1)"
    f_one, _ = _stream_frames(one, 6, 1, 320)
    f_ref1, _ = _stream_frames(ref, 6, 1, 320)
    assert np.abs(f_one.astype(int) - f_ref1.astype(int)).mean() < 0.05


def _layers(scene, size: int = 512, seed: int = 4, moving: bool = False) -> None:
    """A random plate and a torso layer on the lower third (as adapt's attach_layers gives); `moving`: the layer
    follows the head pose (it shifts sideways with rot[1], `adapt.layer_motion: pose`)."""
    g = torch.Generator().manual_seed(seed)
    plate = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
    torso = torch.zeros(4, size, size, dtype=torch.uint8)
    torso[:3] = torch.randint(0, 256, (3, size, size), generator=g, dtype=torch.uint8)
    torso[3, 2 * size // 3:] = 255
    motion = None
    if moving:
        motion = torch.zeros(1, 7, 6)
        motion[0, 6] = torch.tensor([1.0, 0, 0, 0, 1, 0])
        motion[0, 1, 2] = 0.5
    scene.set_layers(plate, torso, motion)


def _layered_check(device: str, batch: int, moving: bool = False) -> None:
    """Eager Animator = GraphedAnimator (graph on CUDA, eager poser on the CPU) with the scene's layers, and
    away from the head the frames are the plate / torso at full resolution (not an upsampled raster)."""
    import numpy as np

    _, scene, grmn = _setup(device, n_gaussians=3000 if device == "cpu" else 20000)
    _layers(scene, moving=moving)
    a, e, rot, trans, s = _inputs(grmn, batch, 7, device)
    args = [x.cpu().numpy() for x in (a, e, rot, trans)]
    ref = Animator(grmn, scene, s, size=512, device=device, raster_size=64)(*args)
    fast = GraphedAnimator(grmn, scene, s, batch=batch, size=512, device=device, raster_size=64,
                           mode="graph" if device == "cuda" else "eager")(*args)
    d = np.abs(ref.frames.astype(int) - fast.frames.astype(int))
    assert ref.frames.shape == (batch, 512, 512, 3) and d.mean() < 0.05 and d.max() <= 64
    plate = scene.plate[0].permute(1, 2, 0).cpu().numpy().astype(int)
    torso = scene.torso[0, :3].permute(1, 2, 0).cpu().numpy().astype(int)
    # the top-left corner lies off the head: the plate itself, pixel for pixel (a 64 px raster upsampled would blur it)
    assert np.abs(ref.frames[0, :40, :40].astype(int) - plate[:40, :40]).max() <= 1
    if moving:  # each frame's layer sits where its own pose puts it: not the zero-pose backdrop
        still = (scene.backdrop(512)[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(int)
        assert np.abs(ref.frames[0, -20:].astype(int) - still[-20:]).mean() > 10
        return
    assert np.abs(ref.frames[0, -20:, :20].astype(int) - torso[-20:, :20]).max() <= 1


def test_layered_scene_renders_the_plate_at_full_size_eager_and_poser():
    _layered_check("cpu", 2)


def test_moving_layers_render_the_same_eager_and_through_the_poser():
    _layered_check("cpu", 2, moving=True)


@pytest.mark.gpu
def test_layered_scene_graphed_matches_eager_on_cuda():
    """In its own process: run inside the suite's shared CUDA context, this capture made a later test's
    training-graph capture (tests/train/test_fast_gpu.py) fail with cudaErrorStreamCaptureInvalidated."""
    import subprocess
    import sys
    from pathlib import Path

    code = ("import torch; torch.backends.cuda.matmul.allow_tf32 = False; torch.backends.cudnn.allow_tf32 = False\n"
            "from tests.render.test_graphed import _layered_check; _layered_check('cuda', 4); "
            "_layered_check('cuda', 4, moving=True); print('LAYERED OK')")
    r = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0 and "LAYERED OK" in r.stdout, (r.stdout[-2000:], r.stderr[-4000:])
