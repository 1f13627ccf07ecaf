"""Implausible poses made from real ones: negatives for the discriminator and the validation test.

Families (each keeps the rest of the body untouched):

* ``swap``: the distal joints of the left and right arm (or leg) trade places, as when a
  2D detector confuses sides;
* ``depth_flip``: a limb mirrored in depth about its root joint, seen from a random
  viewpoint: the classic monocular ambiguity (bone lengths unchanged, only angles wrong);
* ``stretch``: one or two bones 1.3-1.7x longer or 0.55-0.75x shorter (subtree moved along);
* ``twist``: a limb rotated 50-150 deg about a random axis through its root;

held out from discriminator training, to check that the score generalises:

* ``hinge``: a bent knee or elbow bent the other way (shin/forearm rotated 180 deg
  about the thigh/upper arm), i.e. bending backwards;
* ``jitter``: every joint moved by N(0, 50 mm) noise.

A corruption that moves no joint by at least ``min_move_mm`` (a limb lying in the image
plane flipped in depth, a straight knee "reversed") is redrawn, so every negative really
differs from its source.
"""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from engines.skeleton import J, PARENTS

TRAIN_FAMILIES = ("swap", "depth_flip", "stretch", "twist")
HELD_OUT_FAMILIES = ("hinge", "jitter")
ALL_FAMILIES = TRAIN_FAMILIES + HELD_OUT_FAMILIES

# limbs as (root joint, moved joints)
LIMBS = {
    "left_arm": (J["left_shoulder"], (J["left_elbow"], J["left_wrist"])),
    "right_arm": (J["right_shoulder"], (J["right_elbow"], J["right_wrist"])),
    "left_forearm": (J["left_elbow"], (J["left_wrist"],)),
    "right_forearm": (J["right_elbow"], (J["right_wrist"],)),
    "left_leg": (J["left_hip"], (J["left_knee"], J["left_ankle"])),
    "right_leg": (J["right_hip"], (J["right_knee"], J["right_ankle"])),
    "left_shin": (J["left_knee"], (J["left_ankle"],)),
    "right_shin": (J["right_knee"], (J["right_ankle"],)),
}
HINGES = (  # (proximal joint, hinge joint, distal joint)
    (J["left_hip"], J["left_knee"], J["left_ankle"]), (J["right_hip"], J["right_knee"], J["right_ankle"]),
    (J["left_shoulder"], J["left_elbow"], J["left_wrist"]),
    (J["right_shoulder"], J["right_elbow"], J["right_wrist"]))
SWAPS = ((J["left_elbow"], J["right_elbow"], J["left_wrist"], J["right_wrist"]),
         (J["left_knee"], J["right_knee"], J["left_ankle"], J["right_ankle"]))


class UnknownCorruptionError(ValueError):
    pass


def _subtree(j: int) -> list[int]:
    out = [j]
    for c, p in enumerate(PARENTS):
        if p == j:
            out += _subtree(c)
    return out


def _random_unit(rng, n=None):
    v = rng.normal(size=(3,) if n is None else (n, 3))
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def corrupt_one(pose: np.ndarray, family: str, rng: np.random.Generator, min_move_mm: float = 80.0) -> np.ndarray:
    """One corrupted copy of ``pose [17, 3]`` (mm, any right-handed frame)."""
    if family not in ALL_FAMILIES:
        raise UnknownCorruptionError(f"unknown corruption {family!r}; choose from {', '.join(ALL_FAMILIES)}")
    for _ in range(20):
        out = _corrupt(pose, family, rng)
        if np.linalg.norm(out - pose, axis=-1).max() >= min_move_mm:
            return out
    return out


def _corrupt(pose, family, rng):
    X = pose.astype(np.float64).copy()
    if family == "swap":
        a, b, c, d = SWAPS[rng.integers(len(SWAPS))]
        X[[a, b]] = X[[b, a]]
        X[[c, d]] = X[[d, c]]
    elif family == "depth_flip":
        root, moved = list(LIMBS.values())[rng.integers(len(LIMBS))]
        v = _random_unit(rng)                      # the viewing direction of some camera
        m = list(moved)
        X[m] = X[m] - 2.0 * ((X[m] - X[root]) @ v)[:, None] * v
    elif family == "stretch":
        bones = [j for j in range(len(PARENTS)) if PARENTS[j] >= 0]
        for j in rng.choice(bones, size=rng.integers(1, 3), replace=False):
            f = rng.uniform(1.3, 1.7) if rng.random() < 0.5 else rng.uniform(0.55, 0.75)
            delta = (f - 1.0) * (X[j] - X[PARENTS[j]])
            X[_subtree(j)] += delta
    elif family == "twist":
        root, moved = list(LIMBS.values())[rng.integers(len(LIMBS))]
        R = Rotation.from_rotvec(_random_unit(rng) * np.deg2rad(rng.uniform(50, 150))).as_matrix()
        m = list(moved)
        X[m] = (X[m] - X[root]) @ R.T + X[root]
    elif family == "hinge":
        a, b, c = HINGES[rng.integers(len(HINGES))]
        axis = (X[b] - X[a]) / np.linalg.norm(X[b] - X[a])
        R = Rotation.from_rotvec(axis * np.pi).as_matrix()
        X[c] = (X[c] - X[b]) @ R.T + X[b]
    elif family == "jitter":
        X = X + rng.normal(0, 50.0, X.shape)
    return X.astype(pose.dtype)


def corrupt(poses: np.ndarray, rng: np.random.Generator, families=TRAIN_FAMILIES) -> tuple[np.ndarray, np.ndarray]:
    """Corrupt each of ``poses [N, 17, 3]`` with a family drawn uniformly from ``families``.

    Returns ``(corrupted [N, 17, 3], family index into families [N])``.
    """
    fam = rng.integers(len(families), size=len(poses))
    out = np.stack([corrupt_one(p, families[f], rng) for p, f in zip(poses, fam)]) if len(poses) else poses.copy()
    return out, fam
