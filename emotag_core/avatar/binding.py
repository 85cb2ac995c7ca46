"""FLAME-rigged Gaussians: triangle-bound 3D Gaussians carried by the mesh (paper Sec. 3.1, 3.2.3).

Each Gaussian belongs to one parent triangle. Its local attributes (position, rotation, scale)
live in the triangle's frame; `GaussianAvatar.bind` maps them to camera space for a batch of
deformed meshes (Eq. 7) and adds the motion network's residuals on the mouth subset (Eq. 8).
Opacity and SH are static appearance.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from emotag_core.errors import InputError

MOUTH_OFFSET_DIM = 10  # per mouth Gaussian: d_mu (3), d_rot (4, quaternion wxyz), d_log_scale (3)
SH_C0 = 0.28209479177387814  # Y_0^0


@dataclass
class Gaussians:
    """A batch of posed Gaussians ready to rasterize (camera or world space, see `rasterize`)."""

    means: Tensor      # [B, N, 3]
    quats: Tensor      # [B, N, 4] wxyz, not necessarily unit length
    scales: Tensor     # [B, N, 3] positive (activated)
    opacities: Tensor  # [N] or [B, N], in (0, 1) (activated)
    sh: Tensor         # [N, K, 3] or [B, N, K, 3], K = (degree + 1)^2 real SH coefficients

    @property
    def batch(self) -> int:
        return self.means.shape[0]

    @property
    def n(self) -> int:
        return self.means.shape[1]

    @property
    def sh_degree(self) -> int:
        return int(math.isqrt(self.sh.shape[-2])) - 1

    def to(self, *args, **kwargs) -> "Gaussians":
        return Gaussians(*(t.to(*args, **kwargs) for t in (self.means, self.quats, self.scales,
                                                            self.opacities, self.sh)))

    def detach(self) -> "Gaussians":
        return replace(self, **{k: getattr(self, k).detach() for k in ("means", "quats", "scales", "opacities", "sh")})


# --- small quaternion / frame helpers -----------------------------------------------------------

def quat_to_rotmat(q: Tensor) -> Tensor:
    """[..., 4] wxyz (any norm) -> [..., 3, 3] rotation matrices."""
    q = F.normalize(q, dim=-1)
    w, x, y, z = q.unbind(-1)
    m = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1)
    return m.reshape(q.shape[:-1] + (3, 3))


def rotmat_to_quat(m: Tensor) -> Tensor:
    """[..., 3, 3] rotation matrices -> [..., 4] unit quaternions wxyz (w >= 0).

    Shepperd's method: of the four algebraic solutions, each entry uses the one whose pivot is
    largest, so the result stays accurate (and its gradient finite) near half turns.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    piv = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    r = 0.5 * torch.sqrt(piv.clamp_min(1e-8))               # [..., 4]
    d = 4 * r
    cand = torch.stack([
        torch.stack([r[..., 0], (m21 - m12) / d[..., 0], (m02 - m20) / d[..., 0], (m10 - m01) / d[..., 0]], -1),
        torch.stack([(m21 - m12) / d[..., 1], r[..., 1], (m01 + m10) / d[..., 1], (m02 + m20) / d[..., 1]], -1),
        torch.stack([(m02 - m20) / d[..., 2], (m01 + m10) / d[..., 2], r[..., 2], (m12 + m21) / d[..., 2]], -1),
        torch.stack([(m10 - m01) / d[..., 3], (m02 + m20) / d[..., 3], (m12 + m21) / d[..., 3], r[..., 3]], -1),
    ], -2)                                                   # [..., 4 candidates, 4]
    best = piv.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4))[..., 0, :]
    q = torch.where(q[..., :1] < 0, -q, q)
    return F.normalize(q, dim=-1)


def quat_mul(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a * b of [..., 4] wxyz quaternions (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def face_frames(verts: Tensor, faces: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-triangle rotation R, centre C and isotropic scale k (Eq. 7's R^j, C^j, k^j).

    verts [B, V, 3], faces [F, 3] -> R [B, F, 3, 3] (columns: edge, in-plane perpendicular,
    normal), C [B, F, 3], k [B, F] (mean of the first edge's length and the height over it).
    Rigid motions of the mesh rotate R and move C; k changes only when the triangle is scaled.
    """
    tri = verts[:, faces]                                   # [B, F, 3, 3]
    v0, v1, v2 = tri.unbind(2)
    e1, e2 = v1 - v0, v2 - v0
    len1 = e1.norm(dim=-1).clamp_min(1e-12)
    x = e1 / len1[..., None]
    n = torch.cross(e1, e2, dim=-1)
    area2 = n.norm(dim=-1).clamp_min(1e-12)
    z = n / area2[..., None]
    y = torch.cross(z, x, dim=-1)
    R = torch.stack([x, y, z], -1)                          # [B, F, 3, 3]
    C = tri.mean(2)                                         # [B, F, 3]
    k = 0.5 * (len1 + area2 / len1)                         # edge length and its height
    return R, C, k


def topology_seed(faces: Tensor, n_gaussians: int) -> int:
    """A sampling seed that depends only on the mesh topology and the Gaussian budget.

    Every identity rigged on the same template gets the same parents, barycentric layout and
    hence the same mouth set (the paper's "fixed set chosen on the template topology").
    """
    import hashlib

    import numpy as np

    h = hashlib.sha256(np.ascontiguousarray(faces.detach().cpu().numpy().astype("<i8")).tobytes())
    h.update(int(n_gaussians).to_bytes(8, "little"))
    return int.from_bytes(h.digest()[:8], "little") & ((1 << 63) - 1)


def sample_barycentric(n_faces: int, per_face: int, generator: torch.Generator) -> Tensor:
    """Equal number of uniform barycentric samples per triangle (Eq. 3). -> [F * per_face, 3]."""
    u = torch.rand(n_faces * per_face, 2, generator=generator, dtype=torch.float64)
    s = u[:, 0].sqrt()
    w = torch.stack([1 - s, s * (1 - u[:, 1]), s * u[:, 1]], -1)   # w >= 0, sums to 1
    return w.float()


# --- the avatar ---------------------------------------------------------------------------------

class GaussianAvatar(nn.Module):
    """One identity's FLAME-rigged Gaussians: local attributes per Gaussian, bound to triangles.

    Built from a rest mesh (verts [V, 3], faces [F, 3]); `per_face` = round(n_gaussians / F) Gaussians
    per triangle at seeded barycentric positions (Eq. 3). A budget below one per triangle (a dense
    full-head mesh on the CPU profile) puts one Gaussian on each of `n_gaussians` triangles drawn
    uniformly (`per_face` 0), so the count honours the budget; `seed=None` derives the seed from the topology and
    `n_gaussians` only (`topology_seed`), so identities on one template share the layout and the
    mouth set. `mouth_gaussians` (sorted long [M]) are the indices
    that receive the motion network's residual offsets (Eq. 8), in the order of the offsets.
    """

    def __init__(self, rest_verts: Tensor, faces: Tensor, n_gaussians: int = 60_000, sh_degree: int = 0,
                 mouth_vertex_mask: Tensor | None = None, seed: int | None = None, init_opacity: float = 0.5,
                 init_color: tuple[float, float, float] = (0.5, 0.5, 0.5), flatness: float = 0.3) -> None:
        super().__init__()
        if rest_verts.ndim != 2 or rest_verts.shape[-1] != 3:
            raise InputError(None, f"rest_verts must be [V, 3], got {tuple(rest_verts.shape)}")
        if faces.ndim != 2 or faces.shape[-1] != 3:
            raise InputError(None, f"faces must be [F, 3], got {tuple(faces.shape)}")
        if not 0 <= sh_degree <= 3:
            raise InputError(None, f"sh_degree must be 0..3, got {sh_degree}")
        faces = faces.detach().long().cpu()            # built on the CPU; move the module with .to()
        rest_verts = rest_verts.detach().float().cpu()
        n_faces = faces.shape[0]
        if n_gaussians < 1:
            raise InputError(None, f"n_gaussians must be >= 1, got {n_gaussians}")
        gen = torch.Generator().manual_seed(topology_seed(faces, n_gaussians) if seed is None else seed)
        if n_gaussians >= n_faces:
            per_face = round(n_gaussians / n_faces)
            parent = torch.arange(n_faces).repeat_interleave(per_face)     # [N]
        else:  # a budget below one per triangle: one Gaussian on each of n_gaussians triangles drawn uniformly
            per_face = 0
            parent = torch.randperm(n_faces, generator=gen)[:n_gaussians].sort().values  # [N]
        bary = sample_barycentric(parent.numel(), 1, gen)                   # [N, 3]
        self.register_buffer("faces", faces, persistent=True)
        self.register_buffer("parent", parent, persistent=True)
        self.register_buffer("bary", bary, persistent=True)
        self.per_face = per_face
        self.sh_degree = sh_degree

        # local attributes from the rest mesh: mu_l = R^T (mu - C) / k (inverse of Eq. 7)
        rest = rest_verts.detach().float()[None]
        R, C, k = face_frames(rest, faces)                                 # [1, F, ...]
        mu = (bary[:, :, None] * rest[0][faces[parent]]).sum(1)            # [N, 3] Eq. 3
        Rp, Cp, kp = R[0, parent], C[0, parent], k[0, parent]
        mu_l = torch.einsum("nji,nj->ni", Rp, mu - Cp) / kp[:, None]
        # spacing between neighbouring samples on the triangle, in units of k
        area = 0.5 * torch.cross(rest[0][faces[:, 1]] - rest[0][faces[:, 0]],
                                 rest[0][faces[:, 2]] - rest[0][faces[:, 0]], dim=-1).norm(dim=-1)
        density = parent.numel() / n_faces                                  # Gaussians per triangle (< 1: a subset)
        spacing = (area / density).clamp_min(1e-12).sqrt()[parent] / kp  # [N]
        log_s = torch.log(spacing)[:, None].repeat(1, 3)
        log_s[:, 2] += math.log(flatness)                                   # thin along the normal
        n = parent.numel()
        self.mu_l = nn.Parameter(mu_l)                                       # [N, 3]
        self.rot_l = nn.Parameter(torch.tensor([1.0, 0, 0, 0]).repeat(n, 1))  # [N, 4] wxyz
        self.log_scale_l = nn.Parameter(log_s)                              # [N, 3]
        self.opacity_logit = nn.Parameter(torch.full((n,), math.log(init_opacity / (1 - init_opacity))))
        sh = torch.zeros(n, (sh_degree + 1) ** 2, 3)
        sh[:, 0] = (torch.tensor(init_color) - 0.5) / SH_C0
        self.sh = nn.Parameter(sh)                                          # [N, K, 3]
        mouth = torch.zeros(0, dtype=torch.long)
        if mouth_vertex_mask is not None:
            from emotag_core.avatar.mouth import gaussians_in_region

            mouth = gaussians_in_region(mouth_vertex_mask, faces, parent, bary)
        self.register_buffer("mouth_gaussians", mouth, persistent=True)

    @property
    def n(self) -> int:
        return self.parent.numel()

    @property
    def n_mouth(self) -> int:
        return self.mouth_gaussians.numel()

    def set_mouth_region(self, mouth_vertex_mask: Tensor) -> None:
        """Choose the mouth Gaussians from a per-vertex region mask [V] (see `mouth.py`)."""
        from emotag_core.avatar.mouth import gaussians_in_region

        self.mouth_gaussians = gaussians_in_region(mouth_vertex_mask, self.faces, self.parent, self.bary).to(
            self.parent.device)

    def bind(self, verts: Tensor, mouth_offsets: Tensor | None = None) -> Gaussians:
        """Pose the Gaussians on deformed meshes.

        verts [B, V, 3] (camera space, metres); mouth_offsets [B, M, 10] (d_mu, d_rot, d_log_scale
        per mouth Gaussian, in `mouth_gaussians` order) or None. -> Gaussians with means [B, N, 3].
        """
        if verts.ndim != 3 or verts.shape[-1] != 3:
            raise InputError(None, f"verts must be [B, V, 3], got {tuple(verts.shape)}")
        R, C, k = face_frames(verts, self.faces)                     # [B, F, 3, 3], [B, F, 3], [B, F]
        Rp, Cp, kp = R[:, self.parent], C[:, self.parent], k[:, self.parent]
        means = kp[..., None] * torch.einsum("bnij,nj->bni", Rp, self.mu_l) + Cp   # Eq. 7: mu = k R mu_l + C
        q_face = rotmat_to_quat(R)[:, self.parent]                  # [B, N, 4]
        quats = quat_mul(q_face, F.normalize(self.rot_l, dim=-1)[None])           # Eq. 7: r = R r_l
        log_scales = torch.log(kp)[..., None] + self.log_scale_l[None]             # Eq. 7: s = k s_l
        if mouth_offsets is not None:
            means, quats, log_scales = self._apply_mouth(means, quats, log_scales, mouth_offsets)
        return Gaussians(means=means, quats=quats, scales=log_scales.exp(),
                         opacities=torch.sigmoid(self.opacity_logit), sh=self.sh)

    def _apply_mouth(self, means: Tensor, quats: Tensor, log_scales: Tensor, off: Tensor):
        B, M = means.shape[0], self.n_mouth
        if off.shape != (B, M, MOUTH_OFFSET_DIM):
            raise InputError(None, f"mouth_offsets must be [B={B}, M={M}, {MOUTH_OFFSET_DIM}], got {tuple(off.shape)}",
                             "the motion network's mouth head must match avatar.n_mouth")
        idx = self.mouth_gaussians
        # Eq. 8: mu* = mu + d_mu, r* = r + d_r, s* = s + d_s (scales offset in log space: stays positive)
        means = means.index_add(1, idx, off[..., 0:3])
        quats = quats.index_add(1, idx, off[..., 3:7])
        log_scales = log_scales.index_add(1, idx, off[..., 7:10])
        return means, quats, log_scales
