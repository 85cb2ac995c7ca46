"""Landmark-fitting head tracker: shared shape + focal, per-frame expression, jaw and head pose.

Fits the head model's MediaPipe landmark embedding to 2-D landmarks (crop pixels) by non-linear
least squares (Levenberg-Marquardt) on reprojection error with L2 priors and a first-difference
temporal smoothness term. Two passes: (1) identity: shape and focal length jointly with the
per-frame parameters of a spread of frames from all clips (normal equations reduced to the shared
parameters by a Schur complement); (2) per clip, chunk by chunk, the per-frame parameters with
shape and focal fixed, the temporal coupling solved exactly as a block-tridiagonal system, each
chunk warm-started from (and tied to) the end of the previous one. Jacobians come from forward-mode
autodiff of a per-frame residual (`torch.func`), batched over frames; the small linear solves run in
float64. Frames without landmarks take no data term and are linearly interpolated afterwards
(valid = False).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from emotag_core.config import TrackConfig
from emotag_core.errors import ConfigError, DivergenceError, InputError
from emotag_core.flame.model import HeadModel, intrinsics, rodrigues
from emotag_core.flame.photometric import SAMPLE_BARY, ImageSource, ImageTerm, estimate_albedo, facing, \
    prepare_images, surface_points

IRIS = slice(468, 478)
BLOWUP_PX = 1e5   # a mean squared landmark error beyond this (px^2) after fitting is a divergence
# temporal smoothness per parameter group (x track.smooth_weight), px^2 per unit^2 of frame-to-frame change
SMOOTH = {"expr": 2.0, "jaw": 500.0, "rot": 500.0, "trans": 2e4}
FOCAL_PRIOR = 10.0   # px^2 per frame per (log focal - log focal_init)^2


@dataclass
class Camera:
    """Pinhole intrinsics of the crop (principal point at the centre)."""

    focal: float
    size: int

    def K(self, batch: int = 1, device: torch.device | str = "cpu") -> Tensor:
        return intrinsics(self.focal, self.size, batch).to(device)

    def as_dict(self) -> dict[str, float]:
        c = self.size / 2
        return {"fx": self.focal, "fy": self.focal, "cx": c, "cy": c, "width": self.size, "height": self.size}


@dataclass
class ClipTrack:
    """Per-frame fit of one clip."""

    clip_id: str
    frame: np.ndarray          # [T] int
    valid: np.ndarray          # [T] bool
    expr: np.ndarray           # [T, E]
    jaw: np.ndarray            # [T, 3]
    rot: np.ndarray            # [T, 3]
    trans: np.ndarray          # [T, 3]
    fit_error_px: np.ndarray   # [T] mean landmark error (-1 where invalid)
    neck: np.ndarray | None = None   # [T, 3] neck rotation (FLAME frame) against the clip's body pose


def neck_from_head(rot: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-frame neck rotations [T, 3] (FLAME frame, body -> head) for head rotations rot [T, 3] (camera
    frame), with the body holding the clip's mean head rotation (chordal mean over valid frames): the
    head keeps its pose and the base of the neck holds still (`HeadModel.forward(neck=...)`)."""
    from emotag_core.flame.model import FLAME_TO_CV, matrix_to_axis_angle

    R = rodrigues(torch.as_tensor(np.asarray(rot, np.float64)))                   # [T, 3, 3]
    v = np.ones(len(R), bool) if valid is None or not np.any(valid) else np.asarray(valid, bool)
    u, _, vt = torch.linalg.svd(R[torch.as_tensor(v)].mean(0))
    Rb = u @ torch.diag(torch.tensor([1.0, 1.0, float(torch.det(u @ vt))], dtype=u.dtype)) @ vt
    F = FLAME_TO_CV.double()
    return matrix_to_axis_angle(F @ Rb.T[None] @ R @ F).numpy().astype(np.float32)


def landmark_weights(model: HeadModel, cfg: TrackConfig) -> Tensor:
    """Per-landmark weight of the data term [478] (0 = not fitted)."""
    w = model.landmark_mask.float().clone()
    w[IRIS] *= cfg.iris_weight
    return w


def _skew(v: Tensor) -> Tensor:
    """[..., 3] -> cross-product matrices [..., 3, 3]."""
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], -1).reshape(*v.shape, 3)


def _rodrigues_d(aa: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation matrices [T, 3, 3] of axis-angles aa [T, 3] and their derivatives d R / d aa_k
    [T, 3(k), 3, 3] (Gallego & Yezzi 2015, eq. 9; [e_k]x at zero angle)."""
    R = rodrigues(aa)
    th2 = (aa * aa).sum(-1)                                                     # [T]
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device)
    e = eye[None].expand(aa.shape[0], 3, 3)                                     # e[t, k] = e_k
    cross = torch.linalg.cross(aa[:, None].expand(-1, 3, -1), ((eye - R) @ eye).transpose(1, 2))  # w x (I - R) e_k
    small = th2 < 1e-12
    safe = torch.where(small, torch.ones_like(th2), th2)
    dR = (aa[:, :, None, None] * _skew(aa)[:, None] + _skew(cross)) / safe[:, None, None, None] @ R[:, None]
    return R, torch.where(small[:, None, None, None], _skew(e), dR)


class LandmarkFunction:
    """The landmarks of the head model in crop pixels as a function of its parameters, with
    analytic Jacobians (batched over frames).

    Same geometry as `HeadModel.forward` + `landmarks` with only the jaw joint posed (the tracker fits
    no eye rotation). Every step before the head's rigid motion is linear in the vertices, so the
    barycentric landmark mix is folded into the bases once and the fit never touches the mesh.
    Per-frame parameters theta [T, P] = expr [E], jaw [3], rot [3], trans [3]; shared phi [Q] =
    shape [S], log focal [1].
    """

    def __init__(self, model: HeadModel, lmk_ids: Tensor | None, size: int,
                 points: tuple[Tensor, Tensor] | None = None) -> None:
        """`lmk_ids` [L] pick landmarks of the model's embedding; or `points` = (vertex ids [L, 3],
        barycentric weights [L, 3]) name any surface points (the photometric term's samples)."""
        j = model.jaw_joint
        self.E, self.S = model.n_expr, model.n_shape
        self.P, self.Q = self.E + 9, self.S + 1
        self.size = size
        tri, bary = (model.lmk_vertex_ids[lmk_ids], model.lmk_bary[lmk_ids]) if points is None else points
        L = len(tri)                                                             # tri [L, 3] vertex ids
        sup, local = torch.unique(tri.reshape(-1), return_inverse=True)
        B = torch.zeros(L, len(sup), dtype=model.v_template.dtype, device=sup.device)
        B.index_put_((torch.arange(L, device=sup.device).repeat_interleave(3), local),
                     bary.reshape(-1).to(B.dtype), accumulate=True)              # [L, n] barycentric mix
        w = model.weights[sup, j]                                                # [n] jaw skinning weight
        Bw = B * w[None]
        dirs = torch.cat([model.exprdirs[sup], model.shapedirs[sup]], -1)        # [n, 3, E + S]
        pd = model.posedirs[(j - 1) * 9: j * 9].reshape(9, -1, 3)[:, sup]        # [9, n, 3] jaw correctives
        mix = lambda m, x: torch.einsum("ln,n...->l...", m, x)  # noqa: E731
        self.b_t, self.bw_t = mix(B, model.v_template[sup]), mix(Bw, model.v_template[sup])   # [L, 3]
        self.b_d, self.bw_d = mix(B, dirs), mix(Bw, dirs)                       # [L, 3, E + S]
        self.b_p = torch.einsum("ln,knc->klc", B, pd).reshape(9, -1)            # [9, L*3]
        self.bw_p = torch.einsum("ln,knc->klc", Bw, pd).reshape(9, -1)
        self.bw = Bw.sum(1)                                                      # [L]
        self.J_dirs = torch.cat([model.J_exprdirs[j], model.J_shapedirs[j]], -1)  # [3, E + S]
        self.J_t = model.J_template[j]                                           # [3]
        self.flip = model.flip                                                   # [3, 3]
        self.eye = torch.eye(3, dtype=self.b_t.dtype, device=self.b_t.device)

    def __call__(self, theta: Tensor, phi: Tensor, jacobian: bool = False,
                 shared: bool = False) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """uv [T, L, 2]; with `jacobian`: d uv / d theta [T, L, 2, P] (and d uv / d phi [T, L, 2, Q] if `shared`)."""
        E, S = self.E, self.S
        T = theta.shape[0]
        L = self.b_t.shape[0]
        expr, jaw, rot, trans = theta[:, :E], theta[:, E:E + 3], theta[:, E + 3:E + 6], theta[:, E + 6:E + 9]
        shape, f = phi[:S], torch.exp(phi[S])
        coef = torch.cat([expr, shape[None].expand(T, -1)], -1)                 # [T, E + S]
        Jj = self.J_t + coef @ self.J_dirs.T                                     # [T, 3] jaw joint
        if jacobian:
            Rj, dRj = _rodrigues_d(jaw)
            Rr, dRr = _rodrigues_d(rot)
        else:
            Rj, Rr = rodrigues(jaw), rodrigues(rot)
        M = Rj - self.eye                                                        # [T, 3, 3]
        Mf = M.reshape(T, 9)
        lin = coef @ self.b_d.reshape(L * 3, -1).T                               # [T, L*3]
        lin_w = coef @ self.bw_d.reshape(L * 3, -1).T
        v1 = (self.b_t.reshape(-1) + lin + Mf @ self.b_p).reshape(T, L, 3)      # B v1 (pose correctives in)
        dw = (self.bw_t.reshape(-1) + lin_w + Mf @ self.bw_p).reshape(T, L, 3) \
            - self.bw[None, :, None] * Jj[:, None]                               # B (w (v1 - J))
        v2 = v1 + dw @ M.transpose(1, 2)                                         # B v2 (jaw LBS)
        Rc = Rr @ self.flip                                                      # [T, 3, 3]
        p = v2 @ Rc.transpose(1, 2) + trans[:, None]                             # [T, L, 3] camera space
        z = p[..., 2:3].clamp_min(1e-6)
        uv = f * p[..., :2] / z + self.size / 2
        if not jacobian:
            return uv, None, None
        K = E + S if shared else E
        fz = f / z[..., 0]
        dudp = torch.zeros(T, L, 2, 3, dtype=p.dtype, device=p.device)          # d uv / d p
        dudp[..., 0, 0] = fz
        dudp[..., 1, 1] = fz
        dudp[..., :, 2] = -(uv - self.size / 2) / z
        dudx = dudp @ Rc[:, None]                                                # [T, L, 2, 3] d uv / d v2
        # linear bases (expression, shape): d v2 = D + M (Dw - bw dJ), so d uv = dudx D + (dudx M) (Dw - bw dJ):
        # one batched product per landmark over the stacked bases (no [T, L, 3, K] intermediate)
        Dw = self.bw_d[..., :K] - self.bw[:, None, None] * self.J_dirs[None, :, :K]   # [L, 3, K]
        G = torch.cat([dudx, dudx @ M[:, None]], -1)                             # [T, L, 2, 6]
        duv_lin = torch.einsum("tlac,lck->tlak", G, torch.cat([self.b_d[..., :K], Dw], 1))  # [T, L, 2, K]
        # jaw: d v2 = d v1 + d dw M^T + dw dM^T
        dv1 = torch.einsum("tkm,mq->tkq", dRj.reshape(T, 3, 9), self.b_p).reshape(T, 3, L, 3)
        ddw = torch.einsum("tkm,mq->tkq", dRj.reshape(T, 3, 9), self.bw_p).reshape(T, 3, L, 3)
        dv_jaw = dv1 + ddw @ M.transpose(1, 2)[:, None] + torch.einsum("tlb,tkab->tkla", dw, dRj)
        duv_jaw = dudx @ dv_jaw.permute(0, 2, 3, 1)                              # [T, L, 2, 3]
        # head rotation: d p = dRr F v2; translation: d p = I
        dpr = torch.einsum("tkab,bc,tlc->tlak", dRr, self.flip, v2)              # [T, L, 3, 3]
        Jt = torch.cat([duv_lin[..., :E], duv_jaw, dudp @ dpr, dudp], -1)        # [T, L, 2, P]
        Jp = None
        if shared:
            Jp = torch.cat([duv_lin[..., E:K], (uv - self.size / 2)[..., None]], -1)  # [T, L, 2, Q]
        return uv, Jt, Jp


def _block_tridiag_solve(A: Tensor, c: Tensor, b: Tensor) -> Tensor:
    """Solve the block-tridiagonal system with diagonal blocks A [T, P, P], off-diagonal blocks
    -diag(c) [P] and right-hand side b [T, P] (block Thomas algorithm)."""
    T = A.shape[0]
    Dinv = [torch.linalg.inv(A[0])]
    y = [b[0]]
    for t in range(1, T):
        Dinv.append(torch.linalg.inv(A[t] - c[:, None] * Dinv[-1] * c[None, :]))
        y.append(b[t] + c * (Dinv[-2] @ y[-1]))
    x = [Dinv[-1] @ y[-1]]
    for t in range(T - 2, -1, -1):
        x.append(Dinv[t] @ (y[t] + c * x[-1]))
    return torch.stack(x[::-1])


def _damped_step(propose, F: Tensor, lam: float, tol: float, may_stop: bool):  # noqa: ANN202
    """One Levenberg-Marquardt step: raise the damping until `propose(lam)` (new state..., cost)
    lowers the cost `F`. Returns (accepted state or None, new damping, converged-or-stuck)."""
    while True:
        out = propose(lam)
        F_n = out[-1]
        if torch.isfinite(F_n) and F_n <= F:
            return out, max(lam / 3, 1e-7), bool((F - F_n) <= tol * F) and may_stop
        lam *= 8
        if lam > 1e8:
            return None, lam, True


def init_pose(model: HeadModel, lmk: Tensor, found: Tensor, focal: float, size: int) -> tuple[Tensor, Tensor]:
    """rot = 0 and trans from the 2-D centroid and spread of the landmarks. lmk [T, 478, 2] -> [T, 3] x 2."""
    mask = model.landmark_mask
    z = model.zeros(1)
    ref = model.landmarks_from_params(z["shape"], z["expr"], z["jaw"], torch.zeros_like(z["jaw"]),
                                      torch.zeros_like(z["jaw"]))[0, mask]         # [n, 3] at origin
    r_m = (ref[:, :2] - ref[:, :2].mean(0)).norm(dim=-1).mean()
    pts = lmk[:, mask]                                                              # [T, n, 2]
    c = pts.mean(1)
    spread = (pts - c[:, None]).norm(dim=-1).mean(1).clamp_min(1.0)
    depth = focal * r_m / spread
    depth = torch.where(found, depth, depth[found].median() if found.any() else torch.full_like(depth, 0.6))
    cc = torch.where(found[:, None], c, torch.full_like(c, size / 2))
    tx = (cc[:, 0] - size / 2) * depth / focal - ref[:, 0].mean()
    ty = (cc[:, 1] - size / 2) * depth / focal - ref[:, 1].mean()
    trans = torch.stack([tx, ty, depth - ref[:, 2].mean()], -1)
    return torch.zeros_like(trans), trans


def _interpolate(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Linear interpolation of rows of x [T, D] at invalid frames (edges hold the nearest)."""
    if valid.all() or not valid.any():
        return x
    t = np.arange(len(x))
    out = x.copy()
    for d in range(x.shape[1]):
        out[~valid, d] = np.interp(t[~valid], t[valid], x[valid, d])
    return out


class Tracker:
    """Fits a head model to landmark tracks; `fit_identity` once, then `track_clip` per clip."""

    def __init__(self, model: HeadModel, cfg: TrackConfig, size: int) -> None:
        self.model = model
        self.cfg = cfg
        self.size = size
        self.device = torch.device(cfg.device)
        if self.device.type == "cpu":
            torch.set_num_threads(max(1, cfg.threads))
        if model.v_template.device != self.device:
            model = model.to(self.device)
            self.model = model
        w = landmark_weights(model, cfg).to(self.device)
        ids = torch.nonzero(w > 0)[:, 0]
        if len(ids) < 6:
            raise ConfigError(f"track: only {len(ids)} landmarks to fit (head model `{model.name}` embeds "
                              f"{int(model.landmark_mask.sum())}); the tracker needs at least 6")
        self.lmk_ids = ids                                                       # [L]
        self.w = w[ids] / w[ids].sum()                                           # [L] sums to 1
        self.fn = LandmarkFunction(model, ids, size)
        self.prior = torch.tensor([math.sqrt(cfg.expr_prior), math.sqrt(cfg.jaw_prior)], device=self.device)
        # MediaPipe blendshape prior (models with ARKit-named expressions: ICT): expression k's prior mean and
        # first guess is the score of blendshape bs_index[k]; the jaw opening's is jawOpen x the model's angle
        self._prior_mean: Tensor | None = None
        self.bs_index: np.ndarray | None = None
        self.bs_jaw: int = -1
        self.jaw_open_rad = float(getattr(model, "jaw_open_rad", 0.0))
        self.prior_jaw_x = math.sqrt(cfg.expr_prior) / max(self.jaw_open_rad, 1e-3)
        P = self.fn.P
        E = self.fn.E
        c = torch.empty(P, dtype=torch.float64, device=self.device)
        c[:E], c[E:E + 3], c[E + 3:E + 6], c[E + 6:] = (SMOOTH["expr"], SMOOTH["jaw"], SMOOTH["rot"], SMOOTH["trans"])
        self.smooth = c * cfg.smooth_weight                                      # [P]
        self.shape = torch.zeros(model.n_shape, device=self.device)
        self.log_f = torch.tensor(math.log(cfg.focal_init * size), device=self.device)
        self.albedo: Tensor | None = None       # [Pp] per-identity albedo of the surface points (photometric)
        self.albedo_w: Tensor | None = None     # [Pp] their sqrt weights in the photometric term
        if cfg.photo_weight > 0:
            tri, bary = surface_points(model.faces, model.n_face_faces)
            self.n_tri = len(tri) // len(SAMPLE_BARY)
            self.pfn = LandmarkFunction(model, None, size, points=(tri, bary))
            # which projected winding is front-facing: the one of the neutral head facing the camera
            z = model.zeros(1, self.device)                                      # neutral, 0.6 m ahead
            uv0 = self.pfn(self._pack(z["expr"], z["jaw"], z["rot"], z["trans"]), self.phi)[0]
            self.front = 1.0 if facing(uv0, self.n_tri, 1.0).float().mean() > 0.5 else -1.0

    @property
    def camera(self) -> Camera:
        return Camera(float(self.log_f.exp()), self.size)

    @property
    def phi(self) -> Tensor:
        return torch.cat([self.shape, self.log_f[None]])

    def _lmk(self, landmarks: np.ndarray) -> Tensor:
        """Landmark table rows [T, 478, 2+] -> fitted landmarks [T, L, 2] on the device."""
        lm = torch.as_tensor(np.asarray(landmarks, np.float32)[..., :2], device=self.device)
        return lm[:, self.lmk_ids]

    def _wsq(self, found: Tensor) -> Tensor:
        """Per-frame sqrt data weights [T, L] (0 on frames without landmarks)."""
        return self.w.sqrt()[None] * found.float()[:, None]

    def _pack(self, expr: Tensor, jaw: Tensor, rot: Tensor, trans: Tensor) -> Tensor:
        return torch.cat([expr, jaw, rot, trans], -1).float().to(self.device)

    def _check(self, r: Tensor, clip: str, frames: np.ndarray, it: int) -> None:
        bad = ~torch.isfinite(r).all(-1)
        if bad.any():
            i = int(torch.nonzero(bad)[0])
            raise DivergenceError(f"clip {clip}: frame {int(frames[i])}: tracking diverged at step {it} "
                                  "(non-finite residual); check that frame's landmarks (NaN or infinite values?)")

    def _data_px2(self, r: Tensor) -> Tensor:
        """Mean squared landmark error per frame [T] (px^2) from residuals (weights sum to 1)."""
        L2 = 2 * len(self.lmk_ids)
        return (r[:, :L2] ** 2).sum(-1)

    def _photo_rows(self, theta: Tensor, phi: Tensor, found: Tensor, photo: tuple[ImageTerm, Tensor, Tensor],
                    jac: int) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Photometric residuals [T, Pp] (image - albedo at the projected surface points, zero where
        unseen) and, with jac, their Jacobians d / d theta [T, Pp, P] (and d / d phi [T, Pp, Q])."""
        term, albedo, pw = photo
        uv, Ju, Jq = self.pfn(theta, phi, jacobian=jac > 0, shared=jac > 1)      # [T, Pp, 2], [T, Pp, 2, P]
        inten, dI, inside = term.sample(uv)
        vis = (facing(uv, self.n_tri, self.front) & inside).to(inten.dtype) * found[:, None]
        sw = pw[None] * vis                                                      # [T, Pp]
        r = sw * (inten - albedo[None])
        if jac == 0:
            return r, None, None
        g = dI * sw[..., None]                                                   # [T, Pp, 2]
        Jt = (g[..., None] * Ju).sum(-2)                                         # [T, Pp, P]
        return r, Jt, None if Jq is None else (g[..., None] * Jq).sum(-2)

    def _eval(self, theta: Tensor, phi: Tensor, lmk: Tensor, wsq: Tensor, jac: int = 0,
              photo: tuple[ImageTerm, Tensor, Tensor] | None = None
              ) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """Residuals r [T, R] = weighted landmark errors [2L], photometric errors [Pp] (with `photo` =
        (images, albedo [Pp], sqrt point weights [Pp])), then priors [E + 4] (expression about its mean: 0, or
        the MediaPipe blendshape scores; jaw y/z and closing; jaw opening about the `jawOpen` score); with jac >= 1 their
        Jacobian d r / d theta [T, R, P], with jac = 2 also d r / d phi [T, R, Q]."""
        E, T = self.fn.E, theta.shape[0]
        uv, Ju, Jp = self.fn(theta, phi, jacobian=jac > 0, shared=jac > 1)
        a, b = self.prior[0], self.prior[1]
        expr, jaw = theta[:, :E], theta[:, E:E + 3]
        jaw_r = torch.stack([jaw[:, 1], jaw[:, 2], torch.relu(-jaw[:, 0])], -1)
        rows = [((uv - lmk) * wsq[..., None]).reshape(T, -1)]
        if photo is not None:
            rph, Jph, Jphq = self._photo_rows(theta, phi, (wsq[:, 0] > 0).to(uv.dtype), photo, jac)
            rows.append(rph)
        pm = self._prior_mean                     # [T, E + 1] blendshape-derived means (expr, jaw x) or None
        c = self.prior_jaw_x if pm is not None else 0.0
        e_mean = pm[:, :E] if pm is not None else 0.0
        j_mean = pm[:, E] if pm is not None else torch.zeros_like(jaw[:, 0])
        r = torch.cat([*rows, a * (expr - e_mean), b * jaw_r, (c * (jaw[:, 0] - j_mean))[:, None]], -1)
        if jac == 0:
            return r, None, None
        P = self.fn.P
        Jd = (Ju * wsq[..., None, None]).reshape(T, -1, P)
        if photo is not None:
            Jd = torch.cat([Jd, Jph], 1)
        Jpr = torch.zeros(T, E + 4, P, dtype=Jd.dtype, device=Jd.device)
        Jpr[:, :E, :E] = a * torch.eye(E, dtype=Jd.dtype, device=Jd.device)
        Jpr[:, E, E + 1] = b
        Jpr[:, E + 1, E + 2] = b
        Jpr[:, E + 2, E] = -b * (jaw[:, 0] < 0).to(Jd.dtype)
        Jpr[:, E + 3, E] = c
        J = torch.cat([Jd, Jpr], 1)
        if jac == 1:
            return r, J, None
        Jq = torch.cat([(Jp * wsq[..., None, None]).reshape(T, -1, self.fn.Q),
                        *([Jphq] if photo is not None else []),
                        torch.zeros(T, E + 4, self.fn.Q, dtype=Jd.dtype, device=Jd.device)], 1)
        return r, J, Jq

    # ---- blendshape prior ---------------------------------------------------------------------
    def use_blendshapes(self, names: list[str]) -> bool:
        """Map the landmarks table's blendshape columns (`blendshape_names`) onto the model's expressions.
        True if the prior is on (track.blendshape_prior and a model with MediaPipe-named expressions)."""
        mp = getattr(self.model, "expr_mediapipe", None)
        if not self.cfg.blendshape_prior or not mp:
            return False
        pos = {n: i for i, n in enumerate(names)}
        self.bs_index = np.array([pos.get(n, -1) for n in mp])
        self.bs_jaw = pos.get("jawOpen", -1) if self.jaw_open_rad > 0 else -1
        return bool((self.bs_index >= 0).any())

    def _blend_mean(self, blend: np.ndarray | None, found: Tensor) -> Tensor | None:
        """Blendshape scores [T, B] -> prior means [T, E + 1] (expression, jaw opening); None without."""
        if blend is None or self.bs_index is None:
            return None
        b = torch.as_tensor(np.array(blend, np.float32), device=self.device)
        idx = torch.as_tensor(self.bs_index, device=self.device)
        e = torch.where(idx[None] >= 0, b[:, idx.clamp_min(0)], torch.zeros(1, device=self.device))
        j = b[:, self.bs_jaw] * self.jaw_open_rad if self.bs_jaw >= 0 else torch.zeros(len(b), device=self.device)
        return torch.cat([e, j[:, None]], 1) * found[:, None].float()

    # ---- identity ---------------------------------------------------------------------------
    def fit_identity(self, clips: list[tuple[str, np.ndarray, np.ndarray, np.ndarray]],
                     images: ImageSource | None = None) -> None:
        """Shared shape and focal from frames spread over clips [(clip_id, frames [T], lmk [T, 478, 2+], found [T])];
        with `track.photo_weight` > 0 and `images`, also the per-identity albedo, refined photometrically."""
        picks = []
        for clip in clips:   # (clip_id, frames, lmk, found[, blendshapes [T, B]])
            clip_id, frames, lmk, found = clip[:4]
            blend = clip[4] if len(clip) > 4 else None
            idx = np.nonzero(found)[0]
            picks += [(clip_id, frames[i], lmk[i], None if blend is None else blend[i]) for i in idx]
        if not picks:
            raise InputError(None, "no frame of any clip has landmarks; nothing to track",
                             "check the landmarks stage output (face_found is False everywhere)")
        k = min(self.cfg.identity_frames, len(picks))
        sel = [picks[int(i)] for i in np.linspace(0, len(picks) - 1, k).round().astype(int)]
        lm_full = torch.as_tensor(np.stack([np.asarray(s[2], np.float32)[..., :2] for s in sel]), device=self.device)
        lmk = lm_full[:, self.lmk_ids]
        found = torch.ones(k, dtype=torch.bool, device=self.device)
        frames = np.array([s[1] for s in sel])
        rot, trans = init_pose(self.model, lm_full, found, float(self.log_f.exp()), self.size)
        has_bs = all(s[3] is not None for s in sel)
        self._prior_mean = self._blend_mean(np.stack([s[3] for s in sel]) if has_bs else None, found)
        theta = self._pack(torch.zeros(k, self.fn.E, device=self.device), torch.zeros(k, 3, device=self.device),
                           rot, trans)
        if self._prior_mean is not None:   # first guess: the blendshape scores
            theta[:, :self.fn.E + 1] = self._prior_mean
        theta, phi = self._lm_identity(theta, self.phi, lmk, self._wsq(found), sel[0][0], frames)
        if self.cfg.photo_weight > 0 and images is not None:
            crops = np.concatenate([images(c, np.array([s[1] for s in sel if s[0] == c]))
                                    for c in dict.fromkeys(s[0] for s in sel)])
            term = self._image_term(crops)
            for _ in range(self.cfg.photo_rounds):
                photo = self._fit_albedo(theta, phi, term)
                theta, phi = self._lm_identity(theta, phi, lmk, self._wsq(found), sel[0][0], frames, photo, rigid=0,
                                               iters=self.cfg.photo_iters)
            self.albedo, self.albedo_w = self._fit_albedo(theta, phi, term)[1:]
        self._prior_mean = None
        self.shape, self.log_f = phi[:-1].clone(), phi[-1].clone()

    def _image_term(self, crops: np.ndarray) -> ImageTerm:
        """Crops [T, H, W, 3] uint8 -> the photometric term's images (batched to bound memory)."""
        if crops.shape[1] != self.size or crops.shape[2] != self.size:
            raise InputError(None, f"photometric term: crops are {crops.shape[2]}x{crops.shape[1]}, the landmarks "
                             f"are in {self.size}x{self.size} crop pixels", "pass the frame store the landmarks came from")
        imgs = torch.cat([prepare_images(crops[s:s + 32], self.cfg.photo_size, self.cfg.photo_blur)
                          for s in range(0, len(crops), 32)])
        return ImageTerm(imgs.to(self.device), self.size)

    def _fit_albedo(self, theta: Tensor, phi: Tensor, term: ImageTerm) -> tuple[ImageTerm, Tensor, Tensor]:
        """Per-point albedo [Pp] from the frames of `term` at the current fit, and the sqrt point
        weights [Pp] (points seen in fewer than half of the frames take no part)."""
        uv = self.pfn(theta, phi)[0]
        inten, _, inside = term.sample(uv)
        albedo, seen = estimate_albedo(inten, facing(uv, self.n_tri, self.front) & inside)
        keep = (seen >= 0.5).to(inten.dtype)
        pw = keep * math.sqrt(self.cfg.photo_weight / max(1.0, float(keep.sum())))
        return term, albedo, pw

    def _shared_prior(self, phi: Tensor, T: int) -> tuple[Tensor, Tensor]:
        """Residuals of the shared priors [Q] and their (diagonal) Jacobian [Q]."""
        S = self.fn.S
        sd = torch.full((S + 1,), math.sqrt(self.cfg.shape_prior), device=phi.device)
        f0 = math.log(self.cfg.focal_init * self.size)
        sd[S] = math.sqrt(FOCAL_PRIOR * T)
        target = torch.zeros_like(phi)
        target[S] = f0
        return sd * (phi - target), sd

    def _lm_identity(self, theta: Tensor, phi: Tensor, lmk: Tensor, wsq: Tensor, clip: str,
                     frames: np.ndarray, photo: tuple[ImageTerm, Tensor, Tensor] | None = None,
                     rigid: int = 2, iters: int | None = None) -> tuple[Tensor, Tensor]:
        """LM over per-frame theta [T, P] and shared phi [Q] (Schur complement on the frames)."""
        T, P = theta.shape
        Q = phi.shape[0]
        f64 = torch.float64
        fit_focal = self.cfg.fit_focal

        def cost(th: Tensor, ph: Tensor) -> tuple[Tensor, Tensor]:
            r = self._eval(th, ph, lmk, wsq, photo=photo)[0]
            rp, _ = self._shared_prior(ph, T)
            return r, (r.double() ** 2).sum() + (rp.double() ** 2).sum()

        r, F = cost(theta, phi)
        self._check(r, clip, frames, 0)
        lam = 1e-3
        for it in range(self.cfg.iters * 2 if iters is None else iters):
            _, Jt, Jp = self._eval(theta, phi, lmk, wsq, jac=2, photo=photo)                    # [T, R, P], [T, R, Q]
            rp, dp = self._shared_prior(phi, T)
            JtT = Jt.transpose(1, 2)                                             # products in float32,
            A = (JtT @ Jt).double()                                              # solves in float64 [T, P, P]
            B = (JtT @ Jp).double()                                              # [T, P, Q]
            Sm = (Jp.transpose(1, 2) @ Jp).double().sum(0) + torch.diag(dp.double() ** 2)  # [Q, Q]
            gt = (JtT @ r[..., None])[..., 0].double()                           # [T, P]
            gp = (Jp.transpose(1, 2) @ r[..., None])[..., 0].double().sum(0) + dp.double() * rp.double()
            if not fit_focal:
                Sm[-1, -1] += 1e12

            def propose(lam: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
                Ad = A + lam * torch.diag_embed(A.diagonal(dim1=1, dim2=2) + 1e-9)
                if it < rigid:   # rigid start: expression, jaw and shape held
                    Ad[:, :self.fn.E + 3, :self.fn.E + 3] += torch.eye(self.fn.E + 3, dtype=f64, device=A.device) * 1e12
                Sd = Sm + lam * torch.diag(Sm.diagonal() + 1e-9)
                if it < rigid:
                    Sd = Sd + torch.eye(Q, dtype=f64, device=A.device) * 1e12
                Ainv = torch.linalg.inv(Ad)
                BtAi = B.transpose(1, 2) @ Ainv                                  # [T, Q, P]
                Sc = Sd - (BtAi @ B).sum(0)
                gc = gp - (BtAi @ gt[..., None])[..., 0].sum(0)
                dphi = -torch.linalg.solve(Sc, gc)
                dth = -(Ainv @ (gt + (B @ dphi))[..., None])[..., 0]
                th_n, ph_n = theta + dth.float(), phi + dphi.float()
                return (th_n, ph_n, *cost(th_n, ph_n))

            accepted, lam, done = _damped_step(propose, F, lam, self.cfg.tol, it >= rigid)
            if accepted is not None:
                theta, phi, r, F = accepted
            if done:
                break
        self._blowup(r, clip, frames)
        return theta, phi

    def _blowup(self, r: Tensor, clip: str, frames: np.ndarray) -> None:
        e = self._data_px2(r)
        if (e > BLOWUP_PX).any():
            i = int(torch.argmax(e))
            raise DivergenceError(f"clip {clip}: frame {int(frames[i])}: tracking diverged (mean squared "
                                  f"landmark error {float(e[i]):.3g} px^2); check that frame's landmarks")

    # ---- per-frame --------------------------------------------------------------------------
    def _lm_frames(self, theta: Tensor, lmk: Tensor, wsq: Tensor, clip: str, frames: np.ndarray,
                   anchor: Tensor | None, rigid: int, photo: tuple[ImageTerm, Tensor, Tensor] | None = None,
                   iters: int | None = None) -> tuple[Tensor, Tensor]:
        """LM over per-frame theta [T, P] with shape and focal fixed and temporal smoothness
        (block-tridiagonal normal equations); `anchor` [P] ties frame 0 to the previous chunk."""
        T, P = theta.shape
        phi = self.phi
        c = self.smooth if T > 1 or anchor is not None else torch.zeros_like(self.smooth)
        f64 = torch.float64
        nb = torch.full((T,), 2.0, dtype=f64, device=theta.device)                # neighbours per frame
        nb[0] -= 1
        nb[-1] -= 1
        if anchor is not None:
            nb[0] += 1
            anchor = anchor.double()

        def cost(th: Tensor) -> tuple[Tensor, Tensor]:
            r = self._eval(th, phi, lmk, wsq, photo=photo)[0]
            d = th.double()
            s = (c * (d[1:] - d[:-1]) ** 2).sum()
            if anchor is not None:
                s = s + (c * (d[0] - anchor) ** 2).sum()
            return r, (r.double() ** 2).sum() + s

        r, F = cost(theta)
        self._check(r, clip, frames, 0)
        lam = 1e-3
        hold = torch.zeros(P, dtype=f64, device=theta.device)
        hold[:self.fn.E + 3] = 1e12
        for it in range(self.cfg.iters if iters is None else iters):
            J = self._eval(theta, phi, lmk, wsq, jac=1, photo=photo)[1]                       # [T, R, P]
            A = (J.transpose(1, 2) @ J).double()                                 # products in float32, solves in float64
            d = theta.double()
            g = (J.transpose(1, 2) @ r[..., None])[..., 0].double()              # [T, P]
            gs = torch.zeros_like(g)                                             # smoothness gradient
            gs[1:] += c * (d[1:] - d[:-1])
            gs[:-1] += c * (d[:-1] - d[1:])
            if anchor is not None:
                gs[0] += c * (d[0] - anchor)
            g = g + gs

            def propose(lam: float) -> tuple[Tensor, Tensor, Tensor]:
                Ad = A + lam * torch.diag_embed(A.diagonal(dim1=1, dim2=2) + 1e-9) \
                    + torch.diag_embed(nb[:, None] * c[None])
                if it < rigid:
                    Ad = Ad + torch.diag(hold)
                step = _block_tridiag_solve(Ad, c, -g) if T > 1 else torch.linalg.solve(Ad[0], -g[0])[None]
                th_n = theta + step.float()
                return (th_n, *cost(th_n))

            accepted, lam, done = _damped_step(propose, F, lam, self.cfg.tol, it >= rigid)
            if accepted is not None:
                theta, r, F = accepted
            if done:
                break
        self._blowup(r, clip, frames)
        err = (self._res_px(theta, lmk)).detach()
        return theta, err

    def _res_px(self, theta: Tensor, lmk: Tensor) -> Tensor:
        """Mean landmark error per frame [T] in px (unweighted, over the fitted landmarks)."""
        uv = self.fn(theta, self.phi)[0]
        return (uv - lmk).norm(dim=-1).mean(-1)

    def track_clip(self, clip_id: str, frames: np.ndarray, landmarks: np.ndarray, found: np.ndarray,
                   progress: Callable[[int], None] | None = None, images: ImageSource | None = None,
                   blendshapes: np.ndarray | None = None) -> ClipTrack:
        """Per-frame parameters of one clip: landmarks [T, 478, 2+] in crop pixels, found [T]; with the
        identity's albedo (`fit_identity` with images) and `images`, refined photometrically; with
        `blendshapes` [T, B] (after `use_blendshapes`), the scores are the expression prior and first guess.
        The head pose is split into a per-clip body rotation and a per-frame neck rotation (`neck`)."""
        T = len(frames)
        found = np.asarray(found, bool)
        if not found.any():
            raise InputError(None, f"clip {clip_id}: no frame has landmarks; nothing to track",
                             "drop the clip or re-run landmarks")
        E = self.model.n_expr
        out = np.zeros((T, E + 9), np.float32)
        err = np.full(T, -1.0, np.float32)
        prev: Tensor | None = None
        step = self.cfg.chunk
        with torch.no_grad():
            for s in range(0, T, step):
                sl = slice(s, min(T, s + step))
                n = sl.stop - sl.start
                lm_full = torch.as_tensor(np.asarray(landmarks[sl], np.float32)[..., :2], device=self.device)
                fnd = torch.as_tensor(found[sl], device=self.device)
                rot, trans = init_pose(self.model, lm_full, fnd, float(self.log_f.exp()), self.size)
                theta = self._pack(torch.zeros(n, E, device=self.device), torch.zeros(n, 3, device=self.device),
                                   rot, trans)
                if prev is not None:   # warm start from the end of the previous chunk (all but translation)
                    theta[:, :E + 6] = prev[:E + 6]
                self._prior_mean = self._blend_mean(None if blendshapes is None else blendshapes[sl], fnd)
                if self._prior_mean is not None:   # first guess: the blendshape scores
                    theta[:, :E + 1] = torch.where(fnd[:, None], self._prior_mean, theta[:, :E + 1])
                if fnd.any():
                    theta, e = self._lm_frames(theta, lm_full[:, self.lmk_ids], self._wsq(fnd), clip_id,
                                               np.asarray(frames[sl]), prev, rigid=0 if prev is not None else 2)
                    if self.albedo is not None and images is not None:
                        photo = (self._image_term(images(clip_id, np.asarray(frames[sl]))), self.albedo, self.albedo_w)
                        theta, e = self._lm_frames(theta, lm_full[:, self.lmk_ids], self._wsq(fnd), clip_id,
                                                   np.asarray(frames[sl]), prev, 0, photo, self.cfg.photo_iters)
                    err[sl] = np.where(found[sl], e.cpu().numpy(), -1.0)
                out[sl] = theta.cpu().numpy()
                prev = theta[-1].clone()
                if progress is not None:
                    progress(n)
        self._prior_mean = None
        out = _interpolate(out, found)
        rot = out[:, E + 3:E + 6]
        return ClipTrack(clip_id, np.asarray(frames), found.copy(), out[:, :E], out[:, E:E + 3],
                         rot, out[:, E + 6:], err, neck_from_head(rot, found))
