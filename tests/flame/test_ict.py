"""The ICT-FaceKit head model: asset round trip and checksum, loader errors, jaw rig, neck, eyes, sets."""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.errors import ConfigError, InputError
from emotag_core.flame import ICT_MODEL_FILE, load_head_model, load_ict_model_data
from emotag_core.flame.ict import ICT_CHECKSUM_FILE, read_source, source_dir

SHARED = source_dir()


@pytest.fixture(scope="module")
def ict():
    return load_head_model(FlameConfig(model="ict"))


def test_asset_checksum_size_and_licence():
    digest = hashlib.sha256(ICT_MODEL_FILE.read_bytes()).hexdigest()
    assert ICT_CHECKSUM_FILE.read_text().split()[0] == digest
    assert ICT_MODEL_FILE.stat().st_size <= 8 * 2**20
    lic = (ICT_MODEL_FILE.parent / "LICENSE_ICT").read_text()
    assert "MIT" in lic or "Permission is hereby granted" in lic
    prov = (ICT_MODEL_FILE.parent / "PROVENANCE_ICT.md").read_text()
    assert "ict_face_model.npz" in prov and "sha256" in prov


def test_corrupt_or_missing_asset_is_a_named_error(tmp_path):
    bad = tmp_path / "ict_head.npz"
    raw = bytearray(ICT_MODEL_FILE.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    bad.write_bytes(bytes(raw))
    shutil.copy(ICT_CHECKSUM_FILE, tmp_path / "ict_head.sha256")
    with pytest.raises(InputError, match="corrupt"):
        load_head_model(FlameConfig(model="ict", path=str(bad)))
    with pytest.raises(InputError, match="not found"):
        load_head_model(FlameConfig(model="ict", path=str(tmp_path / "missing.npz")))


def test_flame_pickle_and_open_models_are_not_interchangeable(flame_file):
    with pytest.raises(ConfigError, match="FLAME pickle"):
        load_head_model(FlameConfig(model="ict", path=str(flame_file)))
    with pytest.raises(ConfigError, match="`ict` head model"):
        load_head_model(FlameConfig(model="flame2020", path=str(ICT_MODEL_FILE), n_expr=50))
    from emotag_core.flame import OPEN_MODEL_FILE
    with pytest.raises(ConfigError, match="`open` head model"):
        load_head_model(FlameConfig(model="flame2023", path=str(OPEN_MODEL_FILE), n_expr=50))
    with pytest.raises(ConfigError, match="own dimension"):
        load_head_model(FlameConfig(model="ict", n_expr=50))


def test_generator_needs_the_shared_source(tmp_path):
    with pytest.raises(InputError, match="ict_face_model.npz.*not found"):
        read_source(tmp_path)


@pytest.mark.skipif(not (SHARED / "ict_face_model.npz").exists(), reason="ICT-FaceKit source (../shared) absent")
def test_generator_reproduces_the_committed_asset(tmp_path):
    """Round trip: regenerating from the shared source gives the committed arrays."""
    pytest.importorskip("pyfqmr")
    from emotag_core.flame.ict import write_ict_model

    out = tmp_path / "ict_head.npz"
    write_ict_model(out, measure=False)
    new, _ = load_ict_model_data(out)
    old, _ = load_ict_model_data()
    assert np.array_equal(new.faces, old.faces)
    for k in ("v_template", "shapedirs", "exprdirs", "weights", "lmk_bary"):
        assert np.allclose(getattr(new, k), getattr(old, k), atol=1e-6), k
    assert np.array_equal(new.lmk_vertex_ids, old.lmk_vertex_ids)


def test_contract_density_and_parts(ict):
    assert 5000 <= ict.n_verts <= 12000
    assert (ict.n_shape, ict.n_expr) == (100, 52)
    assert "jawOpen" not in ict.expr_names and "eyeBlink_L" in ict.expr_names
    assert ict.expr_mediapipe[ict.expr_names.index("eyeBlink_L")] == "eyeBlinkLeft"
    assert bool(ict.landmark_mask.all())           # all 478 MediaPipe points embedded
    names = ict.part_names
    for p in ("face", "head_neck", "mouth_socket", "gums_tongue", "teeth_upper", "teeth_lower",
              "eyeball_left", "eyeball_right"):
        assert (ict.part == names.index(p)).sum() > 100, p
    # the intra-oral set is the model's own (no procedural augmentation added)
    mouth_parts = {names.index(p) for p in ("mouth_socket", "gums_tongue", "teeth_upper", "teeth_lower")}
    assert set(ict.part[ict.mouth_vertex_ids].tolist()) == mouth_parts
    assert int(ict.mouth_faces.max()) < ict.n_verts and ict.faces.shape[0] == ict.n_face_faces + len(ict.mouth_faces)


def _jaw_open_verts(m, expr_w: torch.Tensor | None = None, jaw: float = 0.0) -> torch.Tensor:
    z = m.zeros(1)
    if expr_w is not None:
        z["expr"] = expr_w
    z["jaw"][0, 0] = jaw
    return m(**z)[0]


def test_jaw_open_is_the_jaw_rotation_and_separable(ict):
    """jawOpen of the source at weight 1 = the jaw rotation by the model's jaw_open angle; the jaw moves the
    lower teeth rigidly and the upper teeth not at all; expression shapes leave the lower teeth (and jaw) alone."""
    if not (SHARED / "ict_face_model.npz").exists():
        pytest.skip("ICT-FaceKit source (../shared) absent")
    src, _ = read_source()
    names = [str(x) for x in src["expression_names"]]
    # the source's jawOpen at the decimated vertices (resampled as the generator does)
    data, sets = load_ict_model_data()
    d = np.load(ICT_MODEL_FILE)
    open_v = _jaw_open_verts(ict, jaw=ict.jaw_open_rad)
    rest = _jaw_open_verts(ict)
    moved = (open_v - rest).norm(dim=-1)
    lower, teeth = ict.lower_teeth_vertex_ids, ict.teeth_vertex_ids
    upper = teeth[~torch.isin(teeth, lower)]
    assert float(moved[upper].max()) < 1e-6
    assert float(moved[lower].mean()) > 0.01                   # ~25 deg opening moves the incisors cm
    # lower teeth rigid: pairwise distances kept
    a, b = rest[lower], open_v[lower]
    dist = lambda x: torch.cdist(x.double(), x.double(), compute_mode="donot_use_mm_for_euclid_dist")  # noqa: E731
    assert torch.allclose(dist(a), dist(b), atol=2e-5)
    # separability: no expression shape moves the lower teeth like the jaw does (they stay in place)
    ex = ict.exprdirs[lower].norm(dim=1).max(0).values          # [E] max lower-teeth displacement per unit
    jaw_like = {"jawForward", "jawLeft", "jawRight", "mouthClose"}
    for n, mv in zip(ict.expr_names, ex.tolist()):
        if n not in jaw_like:
            assert mv < 1e-3, (n, mv)
    # the source's jawOpen delta is reproduced by the rotation (+ corrective) on the skin within 1 mm
    i = names.index("jawOpen")
    lip = (ict.part == ict.part_names.index("face")).nonzero()[:, 0]
    tri, bary = d["src_tri"][lip.numpy()], d["src_bary"][lip.numpy()].astype(np.float64)
    src_delta = np.einsum("vkc,vk->vc", src["expression"][i][tri].astype(np.float64), bary) * 0.01
    ours = (open_v - rest)[lip].numpy() @ np.diag([1, -1, -1])   # camera -> FLAME frame
    assert np.abs(ours - src_delta).max() < 2e-4                  # float16 bases
    assert np.abs(src_delta).max() > 0.02                          # it is a big motion (cm)


def test_jaw_and_expression_fits_are_separable(ict):
    """Least-squares recovery: a mesh made with jaw rotation + expression is explained by the jaw, not by
    the expression basis (the expression estimate with the jaw known vs unknown agree)."""
    g = torch.Generator().manual_seed(0)
    expr = (torch.rand(1, ict.n_expr, generator=g) * (torch.rand(1, ict.n_expr, generator=g) < 0.2)).float()
    z = ict.zeros(1)
    z["expr"], z["jaw"][0, 0] = expr, 0.25
    target = ict(**z)[0]
    rest = ict(**{**z, "expr": torch.zeros_like(expr)})[0]
    # the expression basis cannot reproduce the jaw opening: its best fit leaves > 30 % of the motion
    d_jaw = (rest - ict(**{**z, "expr": torch.zeros_like(expr), "jaw": torch.zeros(1, 3)})[0]).reshape(-1)
    B = (ict.exprdirs * torch.tensor([1.0, -1.0, -1.0])[None, :, None]).reshape(-1, ict.n_expr)
    coef = torch.linalg.lstsq(B, d_jaw[:, None]).solution
    left = (d_jaw - (B @ coef)[:, 0]).norm() / d_jaw.norm()
    assert left > 0.3
    assert target.shape == rest.shape


def test_neck_turns_the_head_and_keeps_the_base(ict):
    z = ict.zeros(1)
    rest = ict(**z)[0]
    z2 = dict(z)
    z2["rot"] = torch.tensor([[0.0, 0.5, 0.0]])
    # camera-frame rot [0, a, 0] = FLAME-frame [0, -a, 0] (the flip is a half turn about x)
    turned = ict(**z2, neck=torch.tensor([[0.0, -0.5, 0.0]]))[0]
    w_root = ict.weights[:, 0]
    base = w_root > 0.999
    head = (w_root == 0) & (ict.part == ict.part_names.index("face"))
    assert base.sum() > 50
    # body: rot * neck^-1 = identity, so the base of the neck only translates (rot turns about the model
    # origin, not the neck joint: a constant offset), it does not turn
    d_base = (turned - rest)[base]
    assert float((d_base - d_base.mean(0)).norm(dim=-1).max()) < 1e-4   # float32 at 0.6 m
    assert float((turned - rest)[head].norm(dim=-1).mean()) > 0.01
    # no neck argument = rigid neck (the old contract): everything turns
    rigid = ict(**z2)[0]
    assert float((rigid - rest)[base].norm(dim=-1).mean()) > 0.01


def test_eyeballs_rotate_with_gaze(ict):
    z = ict.zeros(1)
    rest = ict(**z)[0]
    gaze = ict(**z, eyes=torch.tensor([[0.0, 0.3, 0.0, 0.0, 0.3, 0.0]]))[0]
    for side, j in (("eyeball_left", 3), ("eyeball_right", 4)):
        ids = (ict.part == ict.part_names.index(side)).nonzero()[:, 0]
        c = (ict.J_regressor[j] @ ict.v_template)
        assert float((gaze - rest)[ids].norm(dim=-1).max()) > 0.003
        # rigid about the eye centre: distances to it unchanged
        cc = (rodrigues_cv(c))
        r0 = (rest[ids] - cc).norm(dim=-1)
        r1 = (gaze[ids] - cc).norm(dim=-1)
        assert torch.allclose(r0, r1, atol=1e-5)
    skin = ict.part == ict.part_names.index("face")
    assert float((gaze - rest)[skin].abs().max()) == 0.0


def rodrigues_cv(c: torch.Tensor) -> torch.Tensor:
    """A FLAME-frame point at the neutral pose -> camera space (rot 0, head 0.6 m ahead)."""
    return c * torch.tensor([1.0, -1.0, -1.0]) + torch.tensor([0.0, 0.0, 0.6])


def test_landmark_embedding_lies_on_the_face(ict):
    """Each landmark triangle belongs to the face part (mesh points) or its iris (irises); the lips sit on
    their own side of the jaw."""
    names = ict.part_names
    tri_part = ict.part[ict.lmk_vertex_ids]                                   # [478, 3]
    assert bool((tri_part[:468] <= names.index("head_neck")).all())
    assert set(tri_part[468:].reshape(-1).tolist()) <= {names.index("eyeball_left"), names.index("eyeball_right")}
    w_jaw = (ict.weights[:, 2][ict.lmk_vertex_ids] * ict.lmk_bary).sum(-1)    # [478]
    assert float(w_jaw[14]) > 0.5 and float(w_jaw[17]) > 0.5                 # lower lip follows the jaw
    assert float(w_jaw[13]) < 0.5 and float(w_jaw[0]) < 0.5                  # upper lip does not
