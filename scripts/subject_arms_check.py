"""Does a validation subject's root-depth error come from its arms? Lift its poses as they are, and again with
each arm's bend taken from a random training pose (``with_arm_bends``), seen by the same cameras.

    PYTHONPATH=. python scripts/subject_arms_check.py [--subjects 104 06] [--weights W ...]

Prints MPJPE / MRPE (mm) and the median predicted / true root depth per subject, arms and weights.
"""
from __future__ import annotations

import argparse

import numpy as np

from engines import load_lifter
from engines.absposelifter.evaluate import lift_batched, scores, validation_views
from engines.absposelifter.train import ARMS, with_arm_bends
from engines.camera import project
from engines.data import load_split


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", nargs="+", default=["104", "06"])
    ap.add_argument("--weights", nargs="+", default=[None])
    a = ap.parse_args()
    v, _ = validation_views(1234)
    subject = load_split("val")["subject"]
    train = load_split("train")["joints_mm"].astype(np.float64)
    rng = np.random.default_rng(0)
    lifters = {w or "shipped": load_lifter("absposelifter", weights=w) for w in a.weights}
    print("| subject | weights | arms | MPJPE | MRPE | root depth predicted / true (median) |\n|---|---|---|---|---|---|")
    for s in a.subjects:
        m = subject == s
        P, K = v.joints_cam_mm[m].astype(np.float64), v.K[m].astype(np.float64)
        donors = tuple(train[rng.integers(0, len(train), len(P))] for _ in ARMS)
        for name, lifter in lifters.items():
            for arms, X in (("own", P), ("training poses'", with_arm_bends(P, donors))):
                kp = project(X, K).astype(np.float32)
                pred = lift_batched(lifter, kp, K.astype(np.float32))
                r = scores(pred, X)
                ratio = np.median(pred[:, 0, 2] / X[:, 0, 2])
                print(f"| {s} | {name} | {arms} | {r['MPJPE']:.1f} | {r['MRPE']:.1f} | {ratio:.3f} |")


if __name__ == "__main__":
    main()
