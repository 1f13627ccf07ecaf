"""The one 17-joint body model used everywhere (Human3.6M order).

Every stage (MediaPipe keypoints, mocap ground truth, lifters, refiners, export)
speaks this joint set, so the semantics follow what the 2D detector can see:

==========  ===========================================  ==========================================
joint       from MediaPipe's 33 landmarks                from the CMU mocap skeleton (BVH)
==========  ===========================================  ==========================================
pelvis      midpoint of the hips (23, 24)                midpoint of LeftUpLeg / RightUpLeg
r/l hip     hip (24 / 23)                                RightUpLeg / LeftUpLeg
r/l knee    knee (26 / 25)                               RightLeg / LeftLeg
r/l ankle   ankle (28 / 27)                              RightFoot / LeftFoot
spine       midpoint of pelvis and thorax                midpoint of pelvis and thorax
thorax      midpoint of the shoulders (11, 12)           midpoint of LeftArm / RightArm
nose        nose (0)                                     see ``HEAD_MODEL`` below
head        midpoint of the ears (7, 8)                  see ``HEAD_MODEL`` below
l/r shldr   shoulder (11 / 12)                           LeftArm / RightArm
l/r elbow   elbow (13 / 14)                              LeftForeArm / RightForeArm
l/r wrist   wrist (15 / 16)                              LeftHand / RightHand
==========  ===========================================  ==========================================

The mocap has neither ears nor a nose. Its ``Head`` joint sits at the top of the
neck and its end site ~10 cm above, at the crown. Ears are at about a quarter of
the way from ``Head`` to the crown, and the nose tip ~10 cm in front of the ear
midpoint and ~2 cm below it (adult anthropometry), so we place them with the
head's rotation (``HEAD_MODEL``, fractions of the Head->crown bone, expressed in
the head's rest frame where the body faces +Z and Y is up).
"""
from __future__ import annotations

import numpy as np

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "nose", "head",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
J = {name: i for i, name in enumerate(JOINT_NAMES)}
ROOT = J["pelvis"]

# parent of each joint (-1 for the root); bones are (parent, child)
PARENTS: tuple[int, ...] = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 8, 8, 11, 12, 8, 14, 15)
BONES: tuple[tuple[int, int], ...] = tuple((p, c) for c, p in enumerate(PARENTS) if p >= 0)

# left/right pairs, used for horizontal-flip augmentation
FLIP_PERM: tuple[int, ...] = (0, 4, 5, 6, 1, 2, 3, 7, 8, 9, 10, 14, 15, 16, 11, 12, 13)

# MediaPipe Pose landmark indices
MP = dict(nose=0, left_ear=7, right_ear=8, left_shoulder=11, right_shoulder=12,
          left_elbow=13, right_elbow=14, left_wrist=15, right_wrist=16,
          left_hip=23, right_hip=24, left_knee=25, right_knee=26,
          left_ankle=27, right_ankle=28)

# Head and nose in the CMU head's rest frame, as fractions of the Head->crown
# bone length (~10 cm): (x, y, z) with y up, z forward.
HEAD_MODEL = {"head": np.array([0.0, 0.25, 0.0]), "nose": np.array([0.0, 0.05, 1.0])}


def mediapipe_to_joints(lm: np.ndarray) -> np.ndarray:
    """Map MediaPipe's 33 landmarks ``[..., 33, C]`` to our 17 joints ``[..., 17, C]``.

    ``C`` can hold coordinates and a trailing confidence channel: midpoints
    average every channel, so a derived joint's confidence is the mean of its
    sources'. (Using the min would be stricter; the mean keeps one weak ear from
    discarding a well-seen head.)
    """
    lm = np.asarray(lm)
    out = np.empty(lm.shape[:-2] + (NUM_JOINTS, lm.shape[-1]), dtype=lm.dtype)

    def mid(a, b):
        return 0.5 * (lm[..., MP[a], :] + lm[..., MP[b], :])

    for side in ("left", "right"):
        for part in ("hip", "knee", "ankle", "shoulder", "elbow", "wrist"):
            out[..., J[f"{side}_{part}"], :] = lm[..., MP[f"{side}_{part}"], :]
    out[..., J["pelvis"], :] = mid("left_hip", "right_hip")
    out[..., J["thorax"], :] = mid("left_shoulder", "right_shoulder")
    out[..., J["spine"], :] = 0.5 * (out[..., J["pelvis"], :] + out[..., J["thorax"], :])
    out[..., J["nose"], :] = lm[..., MP["nose"], :]
    out[..., J["head"], :] = mid("left_ear", "right_ear")
    return out


# Detector proportions: MediaPipe's landmarks are not the mocap's joint centres (its torso is
# ~1.36x the CMU skeleton's, forearms ~1.35x, head higher, shins shorter), so the mocap joints
# are retargeted to the detector's median bone lengths (ratio per bone in BONES order, left/right
# averaged), measured by `python -m engines.detector_proportions --with-mirrored` on the 4-view pose2sim
# triangulation. Bone directions - the motion - are unchanged. (That measurement included the 25 frames
# in which MediaPipe mirrored cam02; without them hips and shoulders come out 4 % wider, forearms 2 % longer.
# The shipped lifter was trained with these values, so they stay until it is retrained.)
DETECTOR_BONE_SCALE: tuple[float, ...] | None = (
    1.046, 0.952, 0.869, 1.046, 0.952, 0.869, 1.361, 1.361, 1.430, 1.357, 0.949, 0.943, 1.354, 0.949, 0.943, 1.354)


def to_detector_proportions(joints: np.ndarray) -> np.ndarray:
    """Mocap joints ``[..., 17, 3]`` retargeted to the 2D detector's bone lengths (``DETECTOR_BONE_SCALE``)."""
    return joints if DETECTOR_BONE_SCALE is None else retarget_bones(joints, DETECTOR_BONE_SCALE)


def retarget_bones(joints: np.ndarray, scale) -> np.ndarray:
    """Joints ``[..., 17, 3]`` with each bone's length multiplied by ``scale`` (``[16]`` or ``[..., 16]``,
    BONES order), keeping every bone's direction and the root position: children follow their parents."""
    scale = np.broadcast_to(np.asarray(scale, dtype=joints.dtype), joints.shape[:-2] + (len(BONES),))
    out = joints.copy()
    for b, (p, c) in enumerate(BONES):          # BONES is in topological order: parents first
        out[..., c, :] = out[..., p, :] + (joints[..., c, :] - joints[..., p, :]) * scale[..., b, None]
    return out


def bone_lengths(joints: np.ndarray) -> np.ndarray:
    """Bone lengths ``[..., len(BONES)]`` of joints ``[..., 17, 3]``."""
    p = np.array([b[0] for b in BONES])
    c = np.array([b[1] for b in BONES])
    return np.linalg.norm(joints[..., c, :] - joints[..., p, :], axis=-1)
