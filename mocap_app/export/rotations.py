"""3D joint positions -> local joint rotations of a rig (and back, by forward kinematics).

Each rig joint's local rotation ``L`` rotates its rest offsets (all rest rotations
are the identity, as in BVH); world rotations chain as ``G = G_parent * L`` and
``pos = pos_parent + G_parent * offset``.

* Joints with one child: the *minimal* rotation (shortest arc) that turns the
  rest bone towards the child's target as seen from where the rig's joint
  actually is (not the input bone's direction: with constant bone lengths the
  errors would otherwise add up down the chain), expressed in the parent's posed
  frame, so the joint adds no twist of its own. The shortest arc is ill-defined where the bone
  points opposite to its rest direction (a knee folded past ~150 degrees, a leg
  swung overhead in a cartwheel): its axis can swing round in one frame and the
  bone would spin about itself. A twist about the bone is therefore carried
  over from the previous frame, cancelling that spin, and eased back to zero
  (the minimal rotation) with time constant ``twist_settle_s``. Positions are the
  same either way (a twist about a bone does not move its child).
* The pelvis and thorax: a full frame from two vectors (the hip / shoulder line
  kept exactly, the spine direction orthogonalised against it).
* Leaves: the identity.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skeleton import J
from mocap_app.export.rig import JOINT_TO_RIG as J2R
from mocap_app.export.rig import RIG_JOINTS, TWO_VECTOR_JOINTS, Rig, rig_positions

_EPS = 1e-9


@dataclass
class Motion:
    """Animation of a rig: root position (cm, world) and per-joint local rotations (quaternions x, y, z, w)."""
    root_cm: np.ndarray      # [N, 3]
    local_quat: np.ndarray   # [N, R, 4]

    def __len__(self) -> int:
        return len(self.root_cm)


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames ``[..., 3, 3]`` (columns) whose first axis is ``primary``."""
    e1 = primary / np.maximum(np.linalg.norm(primary, axis=-1, keepdims=True), _EPS)
    s = secondary - (secondary * e1).sum(-1, keepdims=True) * e1
    e2 = s / np.maximum(np.linalg.norm(s, axis=-1, keepdims=True), _EPS)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], axis=-1)


def shortest_arc(a: np.ndarray, b: np.ndarray, fallback_axis: np.ndarray | None = None) -> Rotation:
    """Minimal rotations taking directions ``a [N,3]`` to ``b [N,3]``.

    Anti-parallel pairs have no unique minimal rotation; they turn about
    ``fallback_axis`` (or any axis perpendicular to ``a``) by 180 degrees.
    """
    a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), _EPS)
    b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), _EPS)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1)
    c = (a * b).sum(-1)
    angle = np.arctan2(s, c)
    degenerate = s < 1e-8
    if degenerate.any():
        perp = np.cross(a, np.array([1.0, 0.0, 0.0]))
        small = np.linalg.norm(perp, axis=-1) < 1e-6
        perp[small] = np.cross(a[small], np.array([0.0, 1.0, 0.0]))
        if fallback_axis is not None:
            perp = np.where(degenerate[:, None], fallback_axis, perp)
        axis = np.where(degenerate[:, None], perp, axis)
        s = np.linalg.norm(axis, axis=-1)
    rotvec = axis / np.maximum(s, _EPS)[:, None] * angle[:, None]
    return Rotation.from_rotvec(rotvec)


def _twist_angle(rot: Rotation, axis: np.ndarray) -> np.ndarray:
    """Angle of the twist part of ``rot`` about unit ``axis`` (swing-twist decomposition), in (-pi, pi]."""
    q = rot.as_quat()
    ang = 2.0 * np.arctan2(q[:, :3] @ axis, q[:, 3])
    return (ang + np.pi) % (2 * np.pi) - np.pi


def _continuous_swing(swing: Rotation, rest_dir: np.ndarray, fps: float, settle_s: float) -> Rotation:
    """``swing * twist(theta_t)`` about ``rest_dir`` with the twist that keeps frame-to-frame change
    minimal, decaying to 0 with time constant ``settle_s``.

    With ``S_t`` the shortest arcs, ``theta_t = k wrap(theta_{t-1} + phi_t)``, where ``phi_t`` is the
    twist of ``S_t^-1 S_{t-1}`` about the rest direction, ``k = exp(-1 / (fps * settle_s))`` and
    ``wrap`` maps to (-pi, pi] (a twist of 270 degrees unwinds as -90).
    """
    n = len(swing)
    if n < 2 or settle_s <= 0:
        return swing
    axis = rest_dir / np.linalg.norm(rest_dir)
    phi = _twist_angle(swing[1:].inv() * swing[:-1], axis)
    k = float(np.exp(-1.0 / (fps * settle_s)))
    theta = np.zeros(n)
    for t, p in enumerate(phi.tolist(), start=1):
        v = theta[t - 1] + p
        theta[t] = k * ((v + np.pi) % (2 * np.pi) - np.pi)
    return swing * Rotation.from_rotvec(theta[:, None] * axis)


def positions_to_motion(rig: Rig, joints_mm: np.ndarray, fps: float = 30.0,
                        twist_settle_s: float = 2.0) -> Motion:
    """Solve local rotations so that the rig's bones point where the joints ``[N, 17, 3]`` (mm) do.

    ``fps`` and ``twist_settle_s`` only set how fast a twist carried through a near-singular
    pose eases back to the minimal rotation (see the module docstring); 0 disables it.
    """
    joints_mm = np.asarray(joints_mm, float)
    if joints_mm.ndim != 3 or joints_mm.shape[1:] != (17, 3):
        raise ValueError(f"expected joints [N, 17, 3], got {joints_mm.shape}")
    if not np.isfinite(joints_mm).all():
        raise ValueError("joint positions must be finite in every frame (fill gaps first)")
    n = len(joints_mm)
    cm = joints_mm / 10.0
    P = rig_positions(cm)                      # [N, R, 3]
    children = rig.children
    n_rig = len(rig.parents)
    G: list[Rotation | None] = [None] * n_rig
    L = np.zeros((n, n_rig, 4))
    pos = np.zeros((n, n_rig, 3))            # where the rig's joints actually are (FK so far)
    for r in range(n_rig):
        p = rig.parents[r]
        g_parent = G[p] if p >= 0 else Rotation.identity(n)
        pos[:, r] = P[:, 0] if p < 0 else pos[:, p] + g_parent.apply(np.tile(rig.offsets_cm[r], (n, 1)))
        name = RIG_JOINTS[r]
        if name in TWO_VECTOR_JOINTS:
            (a0, a1), (b0, b1) = TWO_VECTOR_JOINTS[name]
            rest = rig.rest_positions_cm()
            rest_f = _frame(rest[J2R[J[a1]]] - rest[J2R[J[a0]]], rest[J2R[J[b1]]] - rest[J2R[J[b0]]])
            posed_f = _frame(cm[:, J[a1]] - cm[:, J[a0]], cm[:, J[b1]] - cm[:, J[b0]])
            g = Rotation.from_matrix(posed_f @ rest_f.T)
            local = g_parent.inv() * g
        elif len(children[r]) == 1:
            c = children[r][0]
            # aim from where the rig's joint is (not where the input put it) at the child's target:
            # with constant bone lengths the errors then do not add up down the chain
            d_world = P[:, c] - pos[:, r]
            d_local = g_parent.inv().apply(d_world)
            rest_dir = rig.offsets_cm[c]
            local = _continuous_swing(shortest_arc(np.tile(rest_dir, (n, 1)), d_local), rest_dir,
                                      fps, twist_settle_s)
            g = g_parent * local
        elif not children[r]:
            local = Rotation.identity(n)
            g = g_parent
        else:  # pragma: no cover - the rig spec has no other kind of joint
            raise ValueError(f"rig joint {name} has {len(children[r])} children and no two-vector rule")
        G[r] = g
        L[:, r] = local.as_quat()
    # one sign per quaternion track: neighbouring frames in the same hemisphere (smooth interpolation)
    for t in range(1, n):
        flip = (L[t] * L[t - 1]).sum(-1) < 0
        L[t, flip] *= -1
    return Motion(root_cm=P[:, 0].copy(), local_quat=L)


def forward_kinematics(rig: Rig, motion: Motion) -> np.ndarray:
    """World joint positions ``[N, R, 3]`` (cm) of the rig driven by ``motion``."""
    n = len(motion)
    pos = np.zeros((n, len(rig.parents), 3))
    G: list[Rotation | None] = [None] * len(rig.parents)
    for r, p in enumerate(rig.parents):
        local = Rotation.from_quat(motion.local_quat[:, r])
        if p < 0:
            pos[:, r] = motion.root_cm + rig.offsets_cm[r]
            G[r] = local
        else:
            pos[:, r] = pos[:, p] + G[p].apply(np.tile(rig.offsets_cm[r], (n, 1)))
            G[r] = G[p] * local
    return pos


def to_euler(quat: np.ndarray, order: str) -> np.ndarray:
    """Quaternions ``[N, 4]`` (or ``[N, R, 4]``) -> intrinsic Euler angles in degrees ``[N, 3]``
    (``[N, R, 3]``) in ``order`` (e.g. ``"ZXY"``), made continuous over time: of the two
    equivalent angle triples, each frame takes the one nearest the previous frame, and angles
    are unwrapped by multiples of 360 degrees."""
    quat = np.asarray(quat, float)
    shape = quat.shape[:-1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # gimbal lock warnings: the angles are still a valid rotation
        e = Rotation.from_quat(quat.reshape(-1, 4)).as_euler(order.upper(), degrees=True).reshape(shape + (3,))
    if e.ndim == 2:
        e = e[:, None]
    alt = np.stack([e[..., 0] + 180.0, 180.0 - e[..., 1], e[..., 2] + 180.0], axis=-1)
    out = e.copy()
    for t in range(1, len(e)):          # sequential in time, vectorised over joints
        prev = out[t - 1]
        a = e[t] + 360.0 * np.round((prev - e[t]) / 360.0)
        b = alt[t] + 360.0 * np.round((prev - alt[t]) / 360.0)
        take_b = np.abs(b - prev).sum(-1) < np.abs(a - prev).sum(-1)
        out[t] = np.where(take_b[:, None], b, a)
    return out.reshape(shape + (3,))


def from_euler(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """Intrinsic Euler angles (degrees, in ``order``) -> quaternions."""
    return Rotation.from_euler(order.upper(), angles_deg, degrees=True).as_quat()
