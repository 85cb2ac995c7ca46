"""The adapted scene's neck (`adapt.neck: tracked`): the head turns on the neck while the base of the neck and the
shoulders hold the clip's body pose; saved with the scene; the open mask and a rigid scene are unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from emotag_core.config import FlameConfig
from emotag_core.errors import InputError
from emotag_core.flame import load_head_model
from emotag_core.flame.tracker import neck_from_head
from emotag_core.avatar.scene import build_scene
from emotag_core.train.recipe import body_pose

torch.set_num_threads(1)
META = {"frame_size": [256, 256], "camera": {"fx": 500.0, "fy": 500.0, "cx": 128.0, "cy": 128.0}}


@pytest.fixture(scope="module")
def ict():
    return load_head_model(FlameConfig(model="ict"))


def _scene(head, n=2000):
    return build_scene(head, {**META, "shape": [0.0] * head.n_shape}, n, backend="torch")


def _clip(head=None, T=6, seed=0):
    """A head that turns and rolls about its neck joint (as a seated person's does): rot [T, 3], trans [T, 3]
    placing the neck joint at one point."""
    from emotag_core.flame import rodrigues

    g = np.random.default_rng(seed)
    rot = np.zeros((T, 3), np.float32)
    rot[:, 1] = np.linspace(-0.3, 0.3, T)           # the head turns
    rot[:, 2] = 0.1 * g.standard_normal(T)          # and rolls
    if head is None:
        return rot, None
    Jn = head.J_template[int(head.parents[head.jaw_joint])]                         # [3] neck joint at rest
    Rc = rodrigues(torch.as_tensor(rot)) @ head.flip                                # [T, 3, 3]
    return rot, torch.tensor([0.0, 0.0, 0.8]) - Rc @ Jn


def test_the_body_holds_while_the_head_turns(ict):
    rot, trans = _clip(ict)
    T = len(rot)
    neck = neck_from_head(rot)                                  # the tracker's split of this clip
    body = body_pose(rot, neck)
    sc = _scene(ict)
    z = ict.zeros(T)
    rigid = sc.pose(z["expr"], z["jaw"], torch.as_tensor(rot), trans, None).means
    sc.set_body(torch.from_numpy(body).float())
    torch.testing.assert_close(sc.neck(torch.as_tensor(rot)), torch.as_tensor(neck), atol=1e-5, rtol=0)
    held = sc.pose(z["expr"], z["jaw"], torch.as_tensor(rot), trans, None).means
    w_root = ict.weights[:, 0][sc.avatar.faces[sc.avatar.parent]].mean(-1)  # the Gaussians' share of the body
    body_g, head_g = w_root > 0.99, w_root == 0
    assert body_g.sum() > 10 and head_g.sum() > 1000
    torch.testing.assert_close(held[:, head_g], rigid[:, head_g])                   # the head keeps its pose
    spread = lambda m: float((m.detach()[:, body_g] - m.detach()[:1, body_g]).norm(dim=-1).max())   # noqa: E731
    assert spread(rigid) > 0.02 and spread(held) < 1e-3     # the shoulders hold still (70 mm -> 0.3 mm, w_root 0.99+)
    sc.set_body(None)
    torch.testing.assert_close(sc.pose(z["expr"], z["jaw"], torch.as_tensor(rot), trans, None).means, rigid)


def test_body_is_saved_with_the_adapted_scene(ict, tmp_path):
    from emotag_core.motion.grmn import GRMN, GRMNSpec
    from emotag_core.render.adapted import load_adapted, save_adapted

    rot, _ = _clip()
    sc = _scene(ict)
    sc.set_body(torch.from_numpy(body_pose(rot, neck_from_head(rot))).float())
    spec = GRMNSpec(audio_dim=8, n_aus=4, identity_dim=4, n_expr=ict.n_expr, n_mouth=sc.n_mouth, d_model=16,
                    d_expr=8, n_layers=1, n_heads=2, hidden=16)
    meta = {**META, "shape": [0.0] * ict.n_shape, "identity_vector": [0.0] * 4}
    save_adapted(tmp_path, GRMN(spec), sc, meta, 2000, seed=0)
    _, back, _ = load_adapted(tmp_path, FlameConfig(model="ict"), "torch")
    torch.testing.assert_close(back.body, sc.body)
    r = torch.as_tensor(rot)
    torch.testing.assert_close(back.neck(r), sc.neck(r))


def test_open_mask_and_bad_body(ict):
    from emotag_core.train.recipe import attach_body

    open_model = load_head_model(FlameConfig(model="open"))
    sc = _scene(open_model)
    assert attach_body(sc, None, None, "tracked") == {"neck": "rigid", "reason": "the head model has no neck joint"}
    assert attach_body(sc, None, None, "rigid")["neck"] == "rigid"
    with pytest.raises(InputError, match="set_body"):
        _scene(ict).set_body(torch.eye(4))
