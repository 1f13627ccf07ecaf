"""How much of the realistic-noise MPJPE is the error model's uniform outliers? (issue #2's 65 mm target)

    PYTHONPATH=. python scripts/noise_breakdown.py [--weights W] [--seed 1234]

The lifter (by default that of 3 Dec 11:32) on `evaluate`'s validation views (same cameras, same seed), with 2D
errors drawn from the fitted MediaPipe error model (MediaPipe's own labels) and from variants of it that keep its
Gaussian part and scale each joint's outlier fraction ``1 - gamma`` by a factor (0 = Gaussian part only, 1 = the
model as fitted). Then, for the model as fitted, MPJPE split by whether a pose has any outlier joint, and the
per-joint error against exact 2D. Last, the mixture refitted (same EM, ``engines.fit_error_model``) without the 25
detections in which MediaPipe mirrored the whole skeleton (cam02, ``mirrored`` in the errors file): how much of the
outlier mass those frames of one view make (``--save-refit F.json`` writes that model, for ``train --error-model``
and ``evaluate --error-model``); and refitted on the detections as the app's keypoint stage gives them, with its
left/right fix (``LeftRightTracker``), which mirrors those 25 back (``--save-fixed F.json`` writes that model).
"""
from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np

from engines.absposelifter.evaluate import lift_batched, scores, validation_views
from engines.absposelifter.train import RAW_LABELS_ERROR_MODEL
from engines.fit_error_model import SOURCE, load_error_sequences
from engines.lifter import FOCAL_FREE_WEIGHTS, load_lifter
from engines.metrics import mpjpe
from engines.noise import ErrorModel, person_scale_px
from engines.skeleton import JOINT_NAMES


def draw(em: ErrorModel, kp: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``kp`` plus errors from ``em`` (the draws of ``evaluate.with_realistic_errors`` for the same seed), and
    ``outlier [N, J]``."""
    e, outlier = em.sample_with_outliers(np.random.default_rng(seed), person_scale_px(kp))
    return kp + e, outlier


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=FOCAL_FREE_WEIGHTS,
                    help="default: the 3 Dec 11:32 lifter (now the focal-free one), as in BENCHMARKS.md")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--save-refit", type=Path, default=None,
                    help="write the mixture refitted without the mirrored detections here (JSON, as assets/noise)")
    ap.add_argument("--save-fixed", type=Path, default=None,
                    help="write the mixture refitted on the left/right-fixed detections here (JSON)")
    a = ap.parse_args()
    lifter = load_lifter("absposelifter", backend="onnxruntime", weights=a.weights)
    v, _ = validation_views(a.seed)
    em = ErrorModel.load(RAW_LABELS_ERROR_MODEL)   # the model before 3 Dec, whose outliers this breaks down
    exact = lift_batched(lifter, v.keypoints_px, v.K)
    s = scores(exact, v.joints_cam_mm)
    print(f"mean outlier fraction of the fitted model: {np.mean(1 - em.gamma):.3f} (per joint "
          f"{np.min(1 - em.gamma):.2f}-{np.max(1 - em.gamma):.2f})")
    print("| 2D input | outliers per pose (mean) | MPJPE | PA-MPJPE | MRPE |\n|---|---|---|---|---|")
    print(f"| exact | 0 | {s['MPJPE']:.1f} | {s['PA-MPJPE']:.1f} | {s['MRPE']:.1f} |")
    fitted = None
    for k in (0.0, 0.25, 0.5, 0.75, 1.0):
        m = replace(em, gamma=1.0 - k * (1.0 - em.gamma))
        kp, outlier = draw(m, v.keypoints_px, a.seed + 1)
        pred = lift_batched(lifter, kp, v.K)
        s = scores(pred, v.joints_cam_mm)
        name = "Gaussian part only" if k == 0 else ("as fitted" if k == 1 else f"outlier fraction x {k}")
        print(f"| {name} | {outlier.sum(1).mean():.2f} | {s['MPJPE']:.1f} | {s['PA-MPJPE']:.1f} | {s['MRPE']:.1f} |")
        if k == 1:
            fitted = pred, outlier
    pred, outlier = fitted
    per_pose = mpjpe(pred, v.joints_cam_mm)
    any_out = outlier.any(1)
    print(f"\nas fitted: {any_out.mean():.1%} of poses have an outlier joint; "
          f"MPJPE {per_pose[any_out].mean():.1f} mm on "
          f"those, {per_pose[~any_out].mean():.1f} mm on the others")
    rel = lambda p: p - p[:, :1]                                                    # noqa: E731
    err_n = np.linalg.norm(rel(pred) - rel(v.joints_cam_mm), axis=-1)
    err_x = np.linalg.norm(rel(exact) - rel(v.joints_cam_mm), axis=-1)
    print("\n| joint | outlier fraction | error, exact 2D | error, fitted noise | ... when that joint is an outlier |")
    print("|---|---|---|---|---|")
    for j, name in enumerate(JOINT_NAMES):
        o = outlier[:, j]
        when = f"{err_n[o, j].mean():.1f}" if o.any() else "-"
        print(f"| {name} | {o.mean():.2f} | {err_x[:, j].mean():.1f} | {err_n[:, j].mean():.1f} | {when} |")

    def refit_and_score(e: np.ndarray, label: str, source: str, save: Path | None) -> None:
        """Refit the mixture on errors ``e [M, 17, 2]`` (same EM), optionally save it, and score the lifter on it."""
        refit = ErrorModel.fit(e, "mixture", f"{SOURCE.name} {source}; fitted by `scripts/noise_breakdown.py` "
                                             "(an experiment, not the shipped model)")
        if save:
            refit.save(save)
        kp, outlier = draw(refit, v.keypoints_px, a.seed + 1)
        s = scores(lift_batched(lifter, kp, v.K), v.joints_cam_mm)
        print(f"\nrefitted {label} ({len(e)}): mean outlier fraction {np.mean(1 - refit.gamma):.3f} (per joint "
              f"{np.min(1 - refit.gamma):.2f}-{np.max(1 - refit.gamma):.2f}), {outlier.sum(1).mean():.2f} outliers "
              f"per pose: MPJPE {s['MPJPE']:.1f}, PA-MPJPE {s['PA-MPJPE']:.1f}, MRPE {s['MRPE']:.1f}")

    seq = load_error_sequences(SOURCE)                                              # [C, F, 17, 2] crop px
    d = np.load(SOURCE)
    keep = np.ones(seq.shape[:2], bool)
    keep[d["camera"][d["mirrored"]], d["frame"][d["mirrored"]]] = False
    found = np.isfinite(seq).all((-1, -2))
    n = int((~keep).sum())
    refit_and_score(seq[keep & found], f"without the {n} mirrored detections", f"without its {n} mirrored detections",
                    a.save_refit)
    seq = load_error_sequences(SOURCE, fix_left_right=True)
    refit_and_score(seq[np.isfinite(seq).all((-1, -2))], "on the detections with the keypoint stage's left/right fix",
                    "as the app's keypoint stage gives it (left/right fix)", a.save_fixed)

if __name__ == "__main__":
    main()
