"""Measure how MediaPipe's landmarks are proportioned compared with the CMU mocap joints.

    python -m engines.detector_proportions

MediaPipe's landmarks are not the CMU skeleton's joint centres: triangulated from the
4 calibrated pose2sim views, the detector's torso (pelvis -> thorax) is ~1.36x the
CMU training subjects', its forearms ~1.35x, its head/nose ~1.4x higher above the
thorax and its shins ~0.87x. (The CMU/cgspeed skeleton places the shoulder joints low
and the wrist at the radius end: a 39 cm torso and 19 cm forearm against ~50 cm and
~26 cm anatomically.) A lifter trained on CMU proportions therefore sees a "bigger"
person in real 2D and puts it ~17 % too close. This script prints the median bone
length of each 17-joint bone on both sides and the ratio (left/right averaged), which
``engines.skeleton.DETECTOR_BONE_SCALE`` records.
"""
from __future__ import annotations

import sys

import numpy as np

from engines.skeleton import BONES, FLIP_PERM, JOINT_NAMES, J, bone_lengths


def symmetric_ratio(ratio: np.ndarray) -> np.ndarray:
    """Average each bone's ratio with its mirror bone (the detector has no handedness), and the two
    torso halves together (spine is defined as the pelvis-thorax midpoint on both sides)."""
    mirror = [BONES.index((FLIP_PERM[p], FLIP_PERM[c])) for p, c in BONES]
    out = 0.5 * (ratio + ratio[mirror])
    torso = [BONES.index((J["pelvis"], J["spine"])), BONES.index((J["spine"], J["thorax"]))]
    out[torso] = out[torso].mean()
    return out


def measure(with_mirrored: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Median bone lengths ``(detector [16], mocap train [16])`` in mm. A view whose skeleton MediaPipe mirrored
    in a frame is left out of that frame's triangulation, unless ``with_mirrored`` (how the shipped
    ``DETECTOR_BONE_SCALE`` was measured)."""
    from engines.absposelifter.evaluate import pose2sim_views
    from engines.data import load_split
    from engines.real_errors import reference_weights, triangulate_dlt

    _, _, und, conf, P = pose2sim_views()
    w = conf.astype(float) if with_mirrored else reference_weights(und, P, conf)[0]
    X = triangulate_dlt(np.moveaxis(und, 0, 2), P, np.moveaxis(w, 0, 2)) * 1000.0
    det = np.nanmedian(bone_lengths(X), 0)
    mocap = np.median(bone_lengths(load_split("train", raw=True)["joints_mm"]), 0)
    return det, mocap


def main(argv: list[str] | None = None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--with-mirrored", action="store_true",
                    help="triangulate mirrored views too (reproduces the shipped DETECTOR_BONE_SCALE)")
    det, mocap = measure(ap.parse_args(argv).with_mirrored)
    ratio = symmetric_ratio(det / mocap)
    print("| bone | MediaPipe (pose2sim, mm) | CMU train (mm) | ratio (L/R averaged) |")
    print("|---|---|---|---|")
    for (p, c), d, m, r in zip(BONES, det, mocap, ratio):
        print(f"| {JOINT_NAMES[p]} -> {JOINT_NAMES[c]} | {d:.0f} | {m:.0f} | {r:.3f} |")
    print("\nDETECTOR_BONE_SCALE =", "(" + ", ".join(f"{r:.3f}" for r in ratio) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
