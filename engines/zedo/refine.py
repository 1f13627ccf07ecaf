"""ZeDO Algorithm 1: optimise 3D poses against 2D keypoints with a diffusion pose prior in the loop.

    P_0 = R_0 P_init                      initial pose optimiser (zero-shot) or the lifter's pose (refine)
    r^ = K^-1 p / |K^-1 p|                unit rays of the 2D keypoints
    for i in 0..n-1:
        T_i = T_0 if i < warmup else argmin_T |C (K(P_i + T) - p)|     (closed form, ``solve_translation``)
        P~_i = ((P_i + T_i) . r^) r^ - T_i                              (joints onto their rays)
        P_{i+1} = theta_g(P~_i, t(i))                                    (one prior step, t(i) in (0, 0.1])
    return P_n (+ its translation)

Everything is batched: frames x hypotheses run as one batch through the prior, whose
graph runs on a ``engines.runtime`` backend (ONNX Runtime on CPU by default).

Choices the paper leaves open, taken from the ZeDO release where it has them:

* t(i) decreases linearly from ``t_max`` = 0.1 to ``t_min`` = 0.01, warm-up is the first
  fifth of the iterations, and one prior step is an Euler step of the probability-flow
  ODE with dt = 1/1000 at 1000 iterations (``dt = step_scale / iterations``).
* Initial pose optimiser: rotation about the vertical axis only, translation along the
  pelvis ray with its distance bounded to [``depth_min``, ``depth_max``], fitted on the
  torso and head joints (``IPO_JOINTS``; the release: pelvis and hips) with an L1 pixel loss. The release runs 500 Adam steps on two
  parameters; we search the angle on a grid (10 deg, then 1 deg) and solve the
  distance in closed form for each angle, which finds the global optimum of the same
  loss in a fraction of the time. Without world alignment the vertical axis is the
  camera's -Y ("up" in the image), which is right for a level camera and off by the
  camera's pitch otherwise; pass ``up_cam`` (e.g. from ``mocap_app.world``) to do better.
* Zero-shot initial poses: K-means centres of the training poses (``assets/zedo``),
  heading-normalised, so the S hypotheses differ in pose, not in heading (the
  rotation search supplies the heading).

Deviation (zero-shot, ``start_depth_scale = 0``): after the rotation search the start's
offsets along the pelvis ray are removed (``flatten_along_ray``). Alg. 1's projection moves
each joint to the closest point of its ray and so keeps the start's depths; a K-means pose
carries its own limb depths, which the loop then cannot undo (notes/zedo.md: S=1 zero-shot
MPJPE 157 -> 129 mm with realistic 2D). ``start_depth_scale=1`` is the paper's start.

Deviation (refine mode only, ``REFINE_DEFAULTS``): with realistic 2D errors the hard
projection imports the keypoint noise every iteration, so refine mode moves joints only
part of the way to their rays (``ray_weight``, ``ray_robust_mm``) and starts at t = 0.05.
``ray_weight=1, ray_robust_mm=0, t_max=0.1`` is Alg. 1 exactly; zero-shot mode uses it.
See notes/zedo.md for the measurements behind this.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from engines.lifter import BUNDLED_WEIGHTS, InvalidKeypointsError, UnknownEngineError, _check_K, as_keypoints, select_backend
from engines.runtime import BACKENDS, file_sha256
from engines.skeleton import J, NUM_JOINTS, ROOT
from engines.zedo.prior import DenoiseStep, load_prior

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets" / "zedo"
PRIOR_WEIGHTS = BUNDLED_WEIGHTS["zedo"]
HYPOTHESES = ASSETS / "kmeans_hypotheses.npz"
UP_CAM = np.array([0.0, -1.0, 0.0])   # a level camera's "up" in OpenCV axes
# Refine mode's defaults, tuned on validation poses of another seed than the reported tables
# (notes/zedo.md): with realistic 2D errors, Alg. 1's hard projection imports the keypoints'
# noise into the pose; moving joints 10 % of the way to their rays per iteration (and less
# for joints far from their ray, i.e. 2D outliers) lets the prior average it out. The lifter's
# pose is already close, so the diffusion time starts lower (0.03 instead of 0.1).
REFINE_DEFAULTS = {"ray_weight": 0.1, "ray_robust_mm": 100.0, "t_max": 0.03}
TORSO = (J["pelvis"], J["right_hip"], J["left_hip"], J["right_shoulder"], J["left_shoulder"])
# The initial pose optimiser fits the torso plus the head: hips and shoulders are left/right
# symmetric, so a body turned by +yaw or -yaw projects almost alike and the torso alone picks the
# wrong one about half the time; the nose sits in front of the head and tells which way the body
# faces (zero-shot S=1, 200 it, tuning seed: MPJPE 144 -> 134 mm, notes/zedo.md).
IPO_JOINTS = TORSO + (J["nose"], J["head"])


@dataclass(frozen=True)
class ZedoConfig:
    """Knobs of Algorithm 1 (defaults: the paper / release where they say, see the module docstring)."""
    iterations: int = 1000
    warmup_frac: float = 0.2          # warm-up = first 20 % (200 of 1000 in the paper)
    t_max: float = 0.1                # truncated diffusion time (0, 0.1]
    t_min: float = 0.01
    step_scale: float = 1.0           # dt = step_scale / iterations
    rotation_opt: bool = True         # initial pose optimiser's rotation (zero-shot mode)
    ipo_joints: tuple[int, ...] = IPO_JOINTS
    depth_min_mm: float = 1000.0      # bounded translation of the initial pose optimiser
    depth_max_mm: float = 12000.0
    min_confidence: float = 1e-4      # confidences are clipped to [min_confidence, 1] (as the release)
    gauss_newton: int = 0             # pixel-error polish of T inside the loop (0 = the paper's closed form)
    ray_weight: float = 1.0           # 1 = Alg. 1's hard projection onto the rays; < 1 moves joints part way
    ray_robust_mm: float = 0.0        # > 0: joints far from their ray (2D outliers) move less, Cauchy weight
    start_depth_scale: float = 0.0    # zero-shot: scale of the start's offsets along the pelvis ray (1 = the paper)

    @property
    def warmup(self) -> int:
        return int(round(self.warmup_frac * self.iterations))


# ----------------------------------------------------------------------------------------------
# geometry
# ----------------------------------------------------------------------------------------------
def inv3(M: np.ndarray) -> np.ndarray:
    """Inverse of a batch of 3x3 matrices ``[..., 3, 3]`` by the adjugate.

    Written out because LAPACK's per-call overhead (and OpenBLAS waking its threads)
    costs ~0.2 ms per tiny solve on a busy 2-core machine, which Alg. 1 pays 1000 times.
    """
    a, b, c = M[..., 0, 0], M[..., 0, 1], M[..., 0, 2]
    d, e, f = M[..., 1, 0], M[..., 1, 1], M[..., 1, 2]
    g, h, i = M[..., 2, 0], M[..., 2, 1], M[..., 2, 2]
    A, B_, C = e * i - f * h, f * g - d * i, d * h - e * g
    det = a * A + b * B_ + c * C
    adj = np.stack([A, c * h - b * i, b * f - c * e,
                    B_, a * i - c * g, c * d - a * f,
                    C, b * g - a * h, a * e - b * d], -1).reshape(M.shape)
    return adj / det[..., None, None]


def solve3(M: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``M^-1 v`` for batches ``M [B, 3, 3]``, ``v [B, 3]``."""
    return np.einsum("bij,bj->bi", inv3(M), v)


def unit_rays(keypoints_px: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``r^ = K^-1 p / |K^-1 p|`` for pixels ``[B, J, 2]`` and ``K [B, 3, 3]`` -> ``[B, J, 3]``."""
    ph = np.concatenate([keypoints_px, np.ones(keypoints_px.shape[:-1] + (1,))], -1)
    r = np.einsum("bij,bkj->bki", inv3(K), ph)
    return r / np.linalg.norm(r, axis=-1, keepdims=True)


def project_to_rays(P: np.ndarray, T: np.ndarray, rhat: np.ndarray) -> np.ndarray:
    """Alg. 1 / Eq. 4: ``P~ = ((P + T) . r^) r^ - T`` (each joint moved to the closest point of its ray)."""
    X = P + T[:, None]
    return (X * rhat).sum(-1, keepdims=True) * rhat - T[:, None]


class TranslationSolver:
    r"""``T = argmin_T sum_j c_j^2 |proj_K(P_j + T) - p_j|^2`` (Eq. 6) for a batch, in closed form.

    Derivation. Let ``q_j = K^-1 (u_j, v_j, 1) = (a_j, b_j, 1)``. The point ``P_j + T``
    projects onto ``p_j`` iff it lies on the ray ``s q_j``, i.e. iff

        (X_j + T_x) - a_j (Z_j + T_z) = 0,     (Y_j + T_y) - b_j (Z_j + T_z) = 0.

    Both residuals are linear in T. Since ``u - u_j = f_x ((X+T_x)/(Z+T_z) - a_j)``, the
    pixel error is ``f_x / D_j`` (resp. ``f_y / D_j``) times them, with the joint's depth
    ``D_j = Z_j + T_z``. Taking ``D_j`` as a common constant (the person is far compared
    to its depth extent) turns Eq. 6 into weighted linear least squares: with rows
    ``A_j = [[1, 0, -a_j], [0, 1, -b_j]]``, right-hand sides ``y_j = (a_j Z_j - X_j,
    b_j Z_j - Y_j)`` and weights ``W_j = c_j^2 diag(f_x^2, f_y^2)``, T solves the 3x3
    normal equations

        (sum_j A_j^T W_j A_j) T = sum_j A_j^T W_j y_j.

    This is the closed form (the ZeDO release solves the same system). It is exact when
    the keypoints are exact; with noisy keypoints ``gauss_newton`` steps on the true
    pixel objective (Jacobian ``d(u, v)/dT = [[f_x/D, 0, -f_x X'/D^2], [0, f_y/D, -f_y Y'/D^2]]``)
    remove the small bias of the constant-depth approximation (2 steps reach the
    optimum to < 0.5 mm). Shapes: ``P [B, J, 3]`` (mm), pixels ``[B, J, 2]``,
    ``K [B, 3, 3]``, ``confidence [B, J]`` -> ``T [B, 3]``. Solutions that put the pelvis
    closer than ``min_depth_mm`` (or behind the camera) are replaced by ``fallback``.

    Everything that depends only on the keypoints (the 3x3 normal matrix and its
    inverse) is computed once per batch, so a solve inside Alg. 1 costs a handful of
    array operations.
    """

    def __init__(self, keypoints_px: np.ndarray, K: np.ndarray, confidence: np.ndarray, min_depth_mm: float = 100.0):
        ph = np.concatenate([keypoints_px, np.ones(keypoints_px.shape[:-1] + (1,))], -1)
        q = np.einsum("bij,bkj->bki", inv3(K), ph)
        self.a, self.b = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]
        self.c2 = confidence ** 2
        self.fx, self.fy = K[:, 0, 0, None], K[:, 1, 1, None]
        wx, wy = self.c2 * self.fx ** 2, self.c2 * self.fy ** 2
        a, b = self.a, self.b
        M = np.zeros(keypoints_px.shape[:1] + (3, 3))
        M[:, 0, 0] = wx.sum(-1); M[:, 1, 1] = wy.sum(-1)
        M[:, 0, 2] = M[:, 2, 0] = -(wx * a).sum(-1)
        M[:, 1, 2] = M[:, 2, 1] = -(wy * b).sum(-1)
        M[:, 2, 2] = (wx * a * a + wy * b * b).sum(-1)
        self.Minv = inv3(M)
        self.wx, self.wy, self.wxa, self.wyb = wx, wy, wx * a, wy * b
        self.min_depth_mm = min_depth_mm

    def __call__(self, P: np.ndarray, gauss_newton: int = 2, fallback: np.ndarray | None = None) -> np.ndarray:
        X, Y, Z = P[..., 0], P[..., 1], P[..., 2]
        a, b, fx, fy, c2 = self.a, self.b, self.fx, self.fy, self.c2
        yx, yy = a * Z - X, b * Z - Y
        v = np.stack([(self.wx * yx).sum(-1), (self.wy * yy).sum(-1),
                      -(self.wxa * yx + self.wyb * yy).sum(-1)], -1)
        T = np.einsum("bij,bj->bi", self.Minv, v)
        for _ in range(max(0, gauss_newton)):
            Xp, Yp = X + T[:, None, 0], Y + T[:, None, 1]
            D = np.maximum(Z + T[:, None, 2], self.min_depth_mm)
            ex, ey = Xp / D, Yp / D
            ru, rv = fx * (ex - a), fy * (ey - b)                       # pixel residuals [B, J]
            w = c2 / D ** 2                                              # Jacobian rows written out:
            H = np.zeros(P.shape[:1] + (3, 3))                           # d(u,v)/dT = [[fx, 0, -fx ex],
            H[:, 0, 0] = (w * fx * fx).sum(-1); H[:, 1, 1] = (w * fy * fy).sum(-1)   # [0, fy, -fy ey]] / D
            H[:, 0, 2] = H[:, 2, 0] = -(w * fx * fx * ex).sum(-1)
            H[:, 1, 2] = H[:, 2, 1] = -(w * fy * fy * ey).sum(-1)
            H[:, 2, 2] = (w * (fx * fx * ex * ex + fy * fy * ey * ey)).sum(-1)
            cd = c2 / D
            g = np.stack([(cd * ru * fx).sum(-1), (cd * rv * fy).sum(-1),
                          -(cd * (ru * fx * ex + rv * fy * ey)).sum(-1)], -1)
            T = T - solve3(H, g)
        bad = ~np.isfinite(T).all(-1) | (T[:, 2] + P[:, ROOT, 2] < self.min_depth_mm)
        if bad.any() and fallback is not None:
            T[bad] = fallback[bad]
        return T


def solve_translation(P: np.ndarray, keypoints_px: np.ndarray, K: np.ndarray, confidence: np.ndarray,
                      gauss_newton: int = 2, fallback: np.ndarray | None = None,
                      min_depth_mm: float = 100.0) -> np.ndarray:
    """One-off ``TranslationSolver(keypoints_px, K, confidence)(P, gauss_newton, fallback)``."""
    return TranslationSolver(keypoints_px, K, confidence, min_depth_mm)(P, gauss_newton, fallback)


def reprojection_error_px(P: np.ndarray, T: np.ndarray, keypoints_px: np.ndarray, K: np.ndarray,
                          confidence: np.ndarray) -> np.ndarray:
    """Confidence-weighted mean pixel distance ``[B]`` of ``P + T`` to the keypoints."""
    X = P + T[:, None]
    uv = np.einsum("bij,bkj->bki", K, X)
    uv = uv[..., :2] / np.maximum(uv[..., 2:3], 1e-6)
    e = np.linalg.norm(uv - keypoints_px, axis=-1)
    return (confidence * e).sum(-1) / confidence.sum(-1)


def up_alignment(up_cam: np.ndarray) -> np.ndarray:
    """Rotation(s) taking the level camera's up (-Y) onto ``up_cam`` ``[3]`` or ``[B, 3]``.

    Axis ``u0 x u``, angle ``atan2(|u0 x u|, u0 . u)`` (identity for a level camera);
    returns ``[3, 3]`` or ``[B, 3, 3]`` to match the input.
    """
    up = np.asarray(up_cam, float)
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)
    axis = np.cross(UP_CAM, up)
    s, c = np.linalg.norm(axis, axis=-1, keepdims=True), up @ UP_CAM
    angle = np.arctan2(s[..., 0], c)
    # opposite vectors: any axis perpendicular to -Y works; X is one
    axis = np.where(s > 1e-12, axis / np.maximum(s, 1e-12), np.array([1.0, 0.0, 0.0]))
    return Rotation.from_rotvec(axis * angle[..., None]).as_matrix()


def initial_pose_optimizer(P_init: np.ndarray, keypoints_px: np.ndarray, K: np.ndarray, confidence: np.ndarray,
                           cfg: ZedoConfig, up_cam: np.ndarray = UP_CAM, rotate: bool = True
                           ) -> tuple[np.ndarray, np.ndarray]:
    """``R_0, T_0 = argmin |K(R_0 P_init + T_0) - p|`` with R_0 about the vertical, T_0 bounded (Sec. 3.2).

    The vertical is ``up_cam`` in camera axes, ``[3]`` for all frames or ``[B, 3]`` per frame.

    ``T_0 = d r^_pelvis`` with ``d`` in [depth_min, depth_max]; the L1 pixel loss is taken over
    ``cfg.ipo_joints``, weighted by confidence. Returns ``P_0 = R_0 P_init [B, J, 3]`` and ``T_0 [B, 3]``.
    """
    B = len(P_init)
    up = np.broadcast_to(np.asarray(up_cam, float), (B, 3))
    up = up / np.linalg.norm(up, axis=-1, keepdims=True)                      # [B, 3]
    P_init = np.einsum("bij,bkj->bki", up_alignment(up), P_init)
    jj = list(cfg.ipo_joints)
    kp, w = keypoints_px[:, jj], confidence[:, jj]
    rhat = unit_rays(keypoints_px[:, [ROOT]], K)[:, 0]                      # pelvis ray [B, 3]
    q = np.einsum("bij,bkj->bki", inv3(K), np.concatenate([kp, np.ones(kp.shape[:-1] + (1,))], -1))
    a, b = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]                    # [B, j]

    def evaluate(theta: np.ndarray):
        """theta [B, A] -> (loss [B, A], rotations [B, A, 3, 3], depth [B, A])."""
        R = Rotation.from_rotvec((theta[..., None] * up[:, None]).reshape(-1, 3)).as_matrix().reshape(theta.shape + (3, 3))
        Pr = np.einsum("baij,bkj->baki", R, P_init[:, jj])                  # [B, A, j, 3]
        # residuals (X + d rx) - a (Z + d rz), (Y + d ry) - b (Z + d rz): linear in d -> 1D least squares
        n0x, n0y = Pr[..., 0] - a[:, None] * Pr[..., 2], Pr[..., 1] - b[:, None] * Pr[..., 2]
        n1x = rhat[:, None, None, 0] - a[:, None] * rhat[:, None, None, 2]
        n1y = rhat[:, None, None, 1] - b[:, None] * rhat[:, None, None, 2]
        ww = w[:, None]
        d = -(ww * (n0x * n1x + n0y * n1y)).sum(-1) / np.maximum((ww * (n1x ** 2 + n1y ** 2)).sum(-1), 1e-12)
        d = np.clip(d, cfg.depth_min_mm, cfg.depth_max_mm)
        X = Pr + d[..., None, None] * rhat[:, None, None]
        uv = np.einsum("bij,bakj->baki", K, X)
        uv = uv[..., :2] / np.maximum(uv[..., 2:3], 1e-6)
        loss = (ww * np.abs(uv - kp[:, None]).sum(-1)).sum(-1)
        return loss, R, d

    if rotate:
        coarse = np.broadcast_to(np.deg2rad(np.arange(0.0, 360.0, 10.0)), (B, 36))
        loss, _, _ = evaluate(coarse)
        best = coarse[np.arange(B), loss.argmin(-1)]
        fine = best[:, None] + np.deg2rad(np.arange(-10.0, 10.5, 1.0))[None]
    else:
        fine = np.zeros((B, 1))
    loss, R, d = evaluate(fine)
    k = loss.argmin(-1)
    R0 = R[np.arange(B), k]
    P0 = np.einsum("bij,bkj->bki", R0, P_init)
    return P0, d[np.arange(B), k, None] * rhat


def flatten_along_ray(P: np.ndarray, ray: np.ndarray, scale: float) -> np.ndarray:
    """Scale pelvis-relative joints ``[B, J, 3]`` along the unit pelvis ray ``[B, 3]``: ``P - (1 - s)(P . r) r``.

    Why (zero-shot, measured in notes/zedo.md): Alg. 1 moves each joint to the *closest* point of
    its ray, which keeps the joint's depth. A K-means start turned to the right heading still
    carries the hypothesis' own limb depths (a leg back where the person's is forward), and
    neither the 2D nor the prior undoes them. With the depth offsets removed (``s = 0``) the
    first projection takes the 2D layout and the prior builds the depth.
    """
    if scale == 1.0:
        return P
    d = (P * ray[:, None]).sum(-1, keepdims=True)
    return P - (1.0 - scale) * d * ray[:, None]


# ----------------------------------------------------------------------------------------------
# the refiner
# ----------------------------------------------------------------------------------------------
class ZedoRefiner:
    """ZeDO bound to a prior checkpoint and a runtime backend. See ``refine`` and ``zero_shot``."""
    input_names = ["x_mm", "t", "dt"]
    output_names = ["x_out_mm"]

    def __init__(self, backend: str = "auto", weights: Path = PRIOR_WEIGHTS, hypotheses: Path = HYPOTHESES,
                 config: ZedoConfig = ZedoConfig()):
        self.weights = Path(weights)
        if not self.weights.exists():
            raise FileNotFoundError(f"ZeDO prior weights not found at {self.weights} "
                                    "(train them with: python -m engines.zedo.train)")
        net, self.meta = load_prior(self.weights)
        self.module = DenoiseStep(net).eval()
        self.backend = select_backend(backend)
        example = (torch.randn(2, NUM_JOINTS, 3) * 300.0, torch.full((2,), 0.05), torch.full((2,), 1e-3))
        key = f"zedo-prior-{file_sha256(self.weights)[:16]}"
        self.runtime = BACKENDS[self.backend](self.module, example, self.input_names, self.output_names, key)
        self.hypotheses_path = Path(hypotheses)
        self._hyp: dict[int, np.ndarray] | None = None
        self.config = config
        log.info("ZeDO refiner on %s", self.runtime.name)

    # -- inputs ---------------------------------------------------------------------------------
    def hypotheses(self, S: int) -> np.ndarray:
        """The S K-means initial poses ``[S, 17, 3]`` (mm, pelvis-relative, level camera axes)."""
        if self._hyp is None:
            if not self.hypotheses_path.exists():
                raise FileNotFoundError(f"K-means hypotheses not found at {self.hypotheses_path} "
                                        "(make them with: python -m engines.zedo.train_hypotheses)")
            d = np.load(self.hypotheses_path)
            self._hyp = {int(k.split("_")[1]): d[k] for k in d.files if k.startswith("S_")}
        if S not in self._hyp:
            raise ValueError(f"no K-means hypotheses for S={S}; shipped: {sorted(self._hyp)}")
        return self._hyp[S]

    @staticmethod
    def _check(keypoints_px, confidence, K, joints_cam_mm=None):
        kp = as_keypoints(keypoints_px, np.float64)
        N = len(kp)
        conf = np.ones((N, NUM_JOINTS)) if confidence is None else \
            np.asarray(confidence, dtype=np.float64).reshape(N, NUM_JOINTS)
        if not np.isfinite(conf).all():
            raise InvalidKeypointsError("confidences contain NaN or infinite values")
        Kb = _check_K(K, N)
        finite = np.isfinite(kp).all(-1)
        person = finite.all(-1)
        partial = ~person & finite.any(-1)
        if partial.any():
            i = int(np.flatnonzero(partial)[0])
            raise InvalidKeypointsError(f"frame {i}: some keypoints are NaN/infinite while others are valid; "
                                        "give all 17 joints, or all NaN to mark a frame without a person")
        J3 = None
        if joints_cam_mm is not None:
            J3 = np.asarray(joints_cam_mm, dtype=np.float64).reshape(N, NUM_JOINTS, 3)
            bad = person & ~np.isfinite(J3).all((1, 2))
            if bad.any():
                raise InvalidKeypointsError(f"frame {int(np.flatnonzero(bad)[0])}: initial 3D joints are NaN "
                                            "for a frame whose keypoints are valid")
            if (J3[person, ROOT, 2] <= 0).any():
                raise InvalidKeypointsError("initial 3D joints must be in front of the camera (pelvis z > 0 mm)")
        return kp, conf, Kb, person, J3

    # -- Algorithm 1 ------------------------------------------------------------------------------
    def run_loop(self, P0: np.ndarray, T0: np.ndarray, keypoints_px: np.ndarray, K: np.ndarray,
                 confidence: np.ndarray, cfg: ZedoConfig) -> tuple[np.ndarray, np.ndarray]:
        """The iterative part of Alg. 1 for a batch ``[B, 17, 3]``; returns ``(P_n, T_n)``."""
        n = int(cfg.iterations)
        if n < 0:
            raise ValueError(f"iterations must be >= 0, got {n}")
        conf = np.clip(confidence, cfg.min_confidence, 1.0)
        rhat = unit_rays(keypoints_px, K)
        solver = TranslationSolver(keypoints_px, K, conf)
        ts = np.linspace(cfg.t_max, cfg.t_min, n) if n > 1 else np.full(n, cfg.t_max)
        dt = np.full(len(P0), cfg.step_scale / max(n, 1), np.float32)
        P, T = P0.astype(np.float64), T0.astype(np.float64)
        for i in range(n):
            if i >= cfg.warmup:
                T = solver(P, gauss_newton=cfg.gauss_newton, fallback=T)
            Pt = project_to_rays(P, T, rhat)
            if cfg.ray_weight != 1.0 or cfg.ray_robust_mm > 0:
                w = cfg.ray_weight
                if cfg.ray_robust_mm > 0:
                    d2 = ((Pt - P) ** 2).sum(-1, keepdims=True) / cfg.ray_robust_mm ** 2
                    w = w / (1.0 + d2)
                Pt = P + w * (Pt - P)
            P = self.runtime.run({"x_mm": Pt.astype(np.float32), "t": np.full(len(P), ts[i], np.float32),
                                  "dt": dt})[0].astype(np.float64)
        T = solver(P, gauss_newton=2, fallback=T)
        return P, T

    def refine(self, joints_cam_mm, keypoints_px, confidence=None, K=None, iterations: int = 20,
               init_joints_mm=None, keep_depth: bool = True, **overrides) -> np.ndarray:
        """Refine mode: start Alg. 1 from a lifter's absolute camera-frame joints ``[N, 17, 3]`` (mm).

        ``init_joints_mm`` (optional, ``[N, 17, 3]``): a different starting pose per frame,
        e.g. the previous frame's refined pose for a warm start in video; the starting
        translation is still the lifter's. Frames whose keypoints are all NaN come back NaN.
        ``overrides`` replace ``ZedoConfig`` fields (``warmup_frac``, ``t_max``, ...); unless
        overridden, ``REFINE_DEFAULTS`` apply (``ray_weight=1, ray_robust_mm=0`` is the paper's
        hard projection).

        ``keep_depth``: scale the refined pose about the camera centre so that its pelvis keeps
        the lifter's distance. Alg. 1's closed-form translation puts the pose wherever the
        prior's body size says, and the prior only knows the training subjects' average size,
        while the lifter was trained for absolute depth. Scaling by ``k`` about the camera
        centre (``X -> k X``) leaves every projection unchanged, so the fit to the 2D is kept.
        ``False`` returns Alg. 1's translation as is.
        """
        kp, conf, Kb, person, J3 = self._check(keypoints_px, confidence, K, joints_cam_mm)
        if J3 is None:
            raise InvalidKeypointsError("refine needs the lifter's joints_cam_mm to start from")
        cfg = replace(self.config, iterations=iterations, **(REFINE_DEFAULTS | overrides))
        out = np.full((len(kp), NUM_JOINTS, 3), np.nan, np.float32)
        if not person.any():
            return out
        Jp = J3[person]
        T0 = Jp[:, ROOT].copy()
        start = Jp if init_joints_mm is None else np.asarray(init_joints_mm, np.float64).reshape(-1, NUM_JOINTS, 3)[person]
        if not np.isfinite(start).all():
            start = np.where(np.isfinite(start).all((1, 2), keepdims=True), start, Jp)
        P0 = start - start[:, ROOT:ROOT + 1]
        P, T = self.run_loop(P0, T0, kp[person], Kb[person], conf[person], cfg)
        X = P + T[:, None]
        if keep_depth:
            k = T0[:, 2] / X[:, ROOT, 2]
            X = X * np.where(np.isfinite(k) & (k > 0), k, 1.0)[:, None, None]
        out[person] = X
        return out

    def zero_shot(self, keypoints_px, confidence=None, K=None, hypotheses: int = 1, iterations: int = 1000,
                  up_cam: np.ndarray = UP_CAM, **overrides) -> tuple[np.ndarray, np.ndarray]:
        """Zero-shot mode: S K-means initial poses per frame, each through the initial pose optimiser and Alg. 1.

        Returns ``(best [N, 17, 3], all [N, S, 17, 3])`` absolute camera-frame joints (mm);
        ``best`` is the hypothesis with the lowest confidence-weighted reprojection error
        (the paper reports the oracle min-MPJPE over ``all`` instead). ``up_cam``: the
        world's up in camera axes, ``[3]`` or ``[N, 3]`` per frame (e.g. from
        ``mocap_app.world``); the default assumes a level camera.
        """
        kp, conf, Kb, person, _ = self._check(keypoints_px, confidence, K)
        cfg = replace(self.config, iterations=iterations, **overrides)
        S = int(hypotheses)
        N = len(kp)
        best = np.full((N, NUM_JOINTS, 3), np.nan, np.float32)
        allh = np.full((N, S, NUM_JOINTS, 3), np.nan, np.float32)
        if not person.any():
            return best, allh
        M = int(person.sum())
        hyp = self.hypotheses(S)
        P_init = np.broadcast_to(hyp[None], (M, S, NUM_JOINTS, 3)).reshape(M * S, NUM_JOINTS, 3)
        kpb = np.repeat(kp[person], S, 0)
        Kbb = np.repeat(Kb[person], S, 0)
        cb = np.repeat(np.clip(conf[person], cfg.min_confidence, 1.0), S, 0)
        up = np.asarray(up_cam, float)
        if up.ndim == 2:                                   # one up direction per frame
            up = np.repeat(np.broadcast_to(up, (N, 3))[person], S, 0)
        P0, T0 = initial_pose_optimizer(P_init, kpb, Kbb, cb, cfg, up, rotate=cfg.rotation_opt)
        P0 = flatten_along_ray(P0, T0 / np.linalg.norm(T0, axis=-1, keepdims=True), cfg.start_depth_scale)  # T0 is on the pelvis ray
        P, T = self.run_loop(P0, T0, kpb, Kbb, cb, cfg)
        X = (P + T[:, None]).reshape(M, S, NUM_JOINTS, 3)
        err = reprojection_error_px(P, T, kpb, Kbb, cb).reshape(M, S)
        allh[person] = X
        best[person] = X[np.arange(M), err.argmin(-1)]
        return best, allh


def load_refiner(name: str = "zedo", backend: str = "auto", weights: str | Path | None = None,
                 **config) -> ZedoRefiner:
    """The public refiner API: ``engines.load_refiner("zedo", backend="auto")``."""
    if name != "zedo":
        raise UnknownEngineError(f"unknown refiner {name!r}; available: zedo")
    return ZedoRefiner(backend, Path(weights) if weights else PRIOR_WEIGHTS, config=ZedoConfig(**config))


# ----------------------------------------------------------------------------------------------
# video
# ----------------------------------------------------------------------------------------------
def refine_sequence(refiner: ZedoRefiner, joints_cam_mm, keypoints_px, confidence, K, iterations: int = 20,
                    warm_start: bool = True, **overrides) -> np.ndarray:
    """Refine consecutive frames; with ``warm_start`` each frame starts from the previous refined pose.

    Without warm start all frames run as one batch (fastest offline). With it frames run one
    after another (as they would live); a frame after a gap starts from its lifter pose.
    """
    joints = np.asarray(joints_cam_mm, np.float64)
    if not warm_start:
        return refiner.refine(joints, keypoints_px, confidence, K, iterations=iterations, **overrides)
    kp = np.asarray(keypoints_px, np.float64)
    conf = None if confidence is None else np.asarray(confidence, np.float64)
    Kb = _check_K(K, len(kp))
    out = np.full(joints.shape, np.nan, np.float32)
    prev = None
    for i in range(len(kp)):
        ci = None if conf is None else conf[i:i + 1]
        out[i] = refiner.refine(joints[i:i + 1], kp[i:i + 1], ci, Kb[i:i + 1], iterations=iterations,
                                init_joints_mm=prev, **overrides)[0]
        prev = out[i:i + 1] if np.isfinite(out[i]).all() else None
    return out


def refine_clip(clip, iterations: int = 20, refiner: ZedoRefiner | None = None, backend: str = "auto",
                warm_start: bool = False):
    """``Clip -> Clip`` with ``joints_cam_mm`` refined by ZeDO (for ``mocap-app process --refine zedo``).

    World joints are dropped (set to None) because they derive from the camera joints;
    re-run world alignment on the result. ``clip.engine['refine']`` records what ran.
    ``warm_start`` (start each frame from the previous refined pose) halves the jitter but
    lags behind fast motion (notes/zedo.md), so frames are independent by default.
    """
    from dataclasses import replace as dc_replace

    from engines.camera import undistort_px

    refiner = refiner or load_refiner("zedo", backend=backend)
    t0 = time.perf_counter()
    person = np.asarray(clip.person, bool)
    kp = undistort_px(np.where(person[:, None, None], clip.keypoints_px, np.nan), clip.intrinsics)  # rays of K
    joints = refine_sequence(refiner, clip.joints_cam_mm, kp, clip.confidence, clip.intrinsics.K,
                             iterations=iterations, warm_start=warm_start)
    ms = (time.perf_counter() - t0) * 1e3 / max(1, int(person.sum()))
    log.info("ZeDO refined %d frames, %.1f ms/frame (%d iterations)", int(person.sum()), ms, iterations)
    engine = dict(clip.engine)
    engine["refine"] = f"zedo(iterations={iterations}, warm_start={warm_start})"
    return dc_replace(clip, joints_cam_mm=joints.astype(np.float64), engine=engine, world=None,
                      joints_world_mm=None)
