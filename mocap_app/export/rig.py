"""The export rig: a T-pose skeleton (centimetres, Y up, facing +Z) built from one clip's bone lengths.

Our 17 joints (``engines.skeleton``) become 19 rig joints. Two joints without a
position of their own are inserted, both with a zero offset:

* ``lower_back`` at the pelvis, between the pelvis and the spine point, and
* ``neck`` at the thorax, between the thorax and the head.

Why: one rotation per joint moves all of that joint's children rigidly. The
pelvis carries both hips *and* the spine, and the thorax both shoulders *and*
the head, yet the spine bends and the neck turns independently of the hip and
shoulder lines. With the zero-offset joints the pelvis/thorax rotation takes the
hip/shoulder line exactly, and the spine/neck get their own rotation, so every
joint lands where the input put it (up to the per-clip constant bone lengths).
The nose hangs below the head (not the thorax, as in ``engines.skeleton.PARENTS``)
so turning the head moves the nose with it.

Names: ``standard`` uses our joint names (plus ``lower_back`` and ``neck``);
``mixamo`` uses Mixamo's bone names without the ``mixamorig:`` prefix, ``mixamorig`` with it. Mixamo has
no nose, so it keeps the name ``Nose`` (a retargeter ignores it); the ear-midpoint
``head`` maps to ``Head`` and our shoulder-midpoint ``thorax`` to ``Spine2``.
Mixamo's ``LeftShoulder`` (clavicle) and toes do not exist here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.skeleton import J, NUM_JOINTS

# (rig name, parent rig name or None, our joint name the rig joint sits on, mixamo name)
_RIG_SPEC: tuple[tuple[str, str | None, str, str], ...] = (
    ("pelvis", None, "pelvis", "Hips"),
    ("left_hip", "pelvis", "left_hip", "LeftUpLeg"),
    ("left_knee", "left_hip", "left_knee", "LeftLeg"),
    ("left_ankle", "left_knee", "left_ankle", "LeftFoot"),
    ("right_hip", "pelvis", "right_hip", "RightUpLeg"),
    ("right_knee", "right_hip", "right_knee", "RightLeg"),
    ("right_ankle", "right_knee", "right_ankle", "RightFoot"),
    ("lower_back", "pelvis", "pelvis", "Spine"),
    ("spine", "lower_back", "spine", "Spine1"),
    ("thorax", "spine", "thorax", "Spine2"),
    ("neck", "thorax", "thorax", "Neck"),
    ("head", "neck", "head", "Head"),
    ("nose", "head", "nose", "Nose"),
    ("left_shoulder", "thorax", "left_shoulder", "LeftArm"),
    ("left_elbow", "left_shoulder", "left_elbow", "LeftForeArm"),
    ("left_wrist", "left_elbow", "left_wrist", "LeftHand"),
    ("right_shoulder", "thorax", "right_shoulder", "RightArm"),
    ("right_elbow", "right_shoulder", "right_elbow", "RightForeArm"),
    ("right_wrist", "right_elbow", "right_wrist", "RightHand"),
)
RIG_JOINTS: tuple[str, ...] = tuple(s[0] for s in _RIG_SPEC)
RIG_PARENTS: tuple[int, ...] = tuple(-1 if s[1] is None else RIG_JOINTS.index(s[1]) for s in _RIG_SPEC)
# our joint index each rig joint sits on
RIG_SOURCE: tuple[int, ...] = tuple(J[s[2]] for s in _RIG_SPEC)
# rig index that represents each of our 17 joints (the first rig joint on it)
JOINT_TO_RIG: tuple[int, ...] = tuple(RIG_SOURCE.index(j) for j in range(NUM_JOINTS))
NAME_SETS = {"standard": RIG_JOINTS, "mixamo": tuple(s[3] for s in _RIG_SPEC),
             # as in files downloaded from Mixamo (an FBX namespace); some retargeters want the prefix
             "mixamorig": tuple("mixamorig:" + s[3] for s in _RIG_SPEC)}

# joints whose rotation comes from two directions (primary kept exactly, secondary orthogonalised):
# rig joint -> ((from, to) primary, (from, to) secondary), in our joint names
TWO_VECTOR_JOINTS = {
    "pelvis": (("right_hip", "left_hip"), ("pelvis", "spine")),
    "thorax": (("right_shoulder", "left_shoulder"), ("spine", "thorax")),
}

# Rest (T-pose) direction of the bone that ends at each rig joint (facing +Z, Y up, left = +X).
_REST_DIR = {
    "left_hip": (1, 0, 0), "right_hip": (-1, 0, 0),
    "left_knee": (0, -1, 0), "left_ankle": (0, -1, 0),
    "right_knee": (0, -1, 0), "right_ankle": (0, -1, 0),
    "spine": (0, 1, 0), "thorax": (0, 1, 0), "head": (0, 1, 0),
    # nose relative to the ear midpoint: forward and a little down (engines.skeleton.HEAD_MODEL)
    "nose": (0, -0.2, 1),
    "left_shoulder": (1, 0, 0), "left_elbow": (1, 0, 0), "left_wrist": (1, 0, 0),
    "right_shoulder": (-1, 0, 0), "right_elbow": (-1, 0, 0), "right_wrist": (-1, 0, 0),
}
# End Sites of the leaf joints, as fractions of the bone ending at the leaf, in rest directions
_END_SITES = {
    "left_ankle": (0, -0.15, 0.4), "right_ankle": (0, -0.15, 0.4),   # toes: forward, a little down
    "left_wrist": (0.4, 0, 0), "right_wrist": (-0.4, 0, 0),          # middle of the hand
    "nose": (0, 0, 0.3),                                              # a short stub forward
}


class RigError(ValueError):
    """Not enough valid frames to measure the bone lengths."""


@dataclass(frozen=True)
class Rig:
    """A rest skeleton: offsets are in the parent's (identity-rotated) rest frame, centimetres."""
    names: tuple[str, ...]
    parents: tuple[int, ...]
    offsets_cm: np.ndarray              # [R, 3]; root offset is 0 (the root position is animated)
    end_sites_cm: dict[int, np.ndarray]  # leaf rig index -> End Site offset
    bone_lengths_cm: dict[str, float]    # per rig joint with a non-zero bone

    @property
    def children(self) -> list[list[int]]:
        out: list[list[int]] = [[] for _ in self.names]
        for c, p in enumerate(self.parents):
            if p >= 0:
                out[p].append(c)
        return out

    def rest_positions_cm(self) -> np.ndarray:
        """World positions of the rest pose with the root at the origin."""
        pos = np.zeros((len(self.names), 3))
        for j, p in enumerate(self.parents):
            pos[j] = self.offsets_cm[j] + (pos[p] if p >= 0 else 0.0)
        return pos


def apply_definitions(joints: np.ndarray) -> np.ndarray:
    """Re-derive the midpoint joints from their definitions (``engines.skeleton``): a copy with
    pelvis = mid(hips), thorax = mid(shoulders), spine = mid(pelvis, thorax).

    A lifter's outputs need not honour them exactly; a rig whose pelvis sits off the
    hip line gets lopsided hip bones that one rotation cannot fit. Data built from the
    definitions (MediaPipe, CMU) is unchanged.
    """
    out = np.array(joints, float)
    out[..., J["pelvis"], :] = 0.5 * (out[..., J["left_hip"], :] + out[..., J["right_hip"], :])
    out[..., J["thorax"], :] = 0.5 * (out[..., J["left_shoulder"], :] + out[..., J["right_shoulder"], :])
    out[..., J["spine"], :] = 0.5 * (out[..., J["pelvis"], :] + out[..., J["thorax"], :])
    return out


def build_rig(joints_mm: np.ndarray, valid: np.ndarray, names: str = "standard", symmetric: bool = False) -> Rig:
    """Measure bone lengths (median over valid frames) and lay them out as a T-pose.

    The median ignores the occasional mis-detected frame that a mean would average in.
    With ``symmetric`` a left bone and its right twin get the mean of their two
    medians (people are near-symmetric; a monocular lifter's left/right lengths
    differ mostly by error, and retargeting tools expect a symmetric rig). Off by
    default: CMU subjects' calibrated legs differ by up to 2 cm, and averaging them
    would move their knees and ankles by ~1 cm from where the input put them.
    """
    if names not in NAME_SETS:
        raise RigError(f"unknown bone name set {names!r}; choose one of {sorted(NAME_SETS)}")
    joints_mm = np.asarray(joints_mm, float)
    ok = np.asarray(valid, bool) & np.isfinite(joints_mm).all(axis=(1, 2))
    if not ok.any():
        raise RigError("the clip has no frame with a person: nothing to measure the skeleton from")
    pts = joints_mm[ok]
    offsets = np.zeros((len(RIG_JOINTS), 3))
    lengths: dict[str, float] = {}
    for r, name in enumerate(RIG_JOINTS):
        p = RIG_PARENTS[r]
        if p < 0 or RIG_SOURCE[p] == RIG_SOURCE[r]:
            continue   # root or a zero-offset joint
        d = pts[:, RIG_SOURCE[r]] - pts[:, RIG_SOURCE[p]]
        length_cm = float(np.median(np.linalg.norm(d, axis=-1))) / 10.0
        direction = np.asarray(_REST_DIR[name], float)
        offsets[r] = direction / np.linalg.norm(direction) * length_cm
        lengths[name] = length_cm
    if symmetric:
        for r, name in enumerate(RIG_JOINTS):
            if name.startswith("left_") and name in lengths:
                twin = RIG_JOINTS.index("right_" + name[5:])
                mean = 0.5 * (lengths[name] + lengths[RIG_JOINTS[twin]])
                for k in (r, twin):
                    offsets[k] *= mean / lengths[RIG_JOINTS[k]]
                    lengths[RIG_JOINTS[k]] = mean
    end_sites = {RIG_JOINTS.index(n): np.asarray(f, float) * lengths[n] for n, f in _END_SITES.items()}
    return Rig(NAME_SETS[names], RIG_PARENTS, offsets, end_sites, lengths)


def rig_positions(joints: np.ndarray) -> np.ndarray:
    """Our 17 joints ``[..., 17, 3]`` -> rig joints ``[..., 19, 3]`` (zero-offset joints duplicate their parent)."""
    return np.asarray(joints)[..., list(RIG_SOURCE), :]
