"""How the lifter's pose error grows with the torso's lean from vertical (validation subjects and real video).

    PYTHONPATH=. python scripts/lean_breakdown.py [--weights W ...] [--error-model F]

Lean = angle between pelvis -> thorax and world up: in `evaluate`'s validation views (seed 1234; world up from each
virtual camera's rotation) and in the pose2sim clip (world Z up, triangulated from the views with mirrored views left
out). Per lean band: poses and PA-MPJPE (mm) with exact 2D, realistic-noise 2D, real MediaPipe 2D (with the keypoint
stage's left/right fix) and, on the real clip, the exact projections of its reference (what the lifter does with
perfect 2D of those poses). 42 % of the real clip's poses lean more than 30 deg (the man balancing on a treadmill),
against 9 % of the validation poses and 12 % of the training poses.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engines import load_lifter
from engines.absposelifter.evaluate import lift_batched, pose2sim_truth, pose2sim_views, validation_views
from engines.absposelifter.train import RAW_LABELS_ERROR_MODEL
from engines.lifter import FOCAL_FREE_WEIGHTS
from engines.metrics import pa_mpjpe
from engines.real_errors import reference_weights, triangulate_dlt
from engines.skeleton import J

BANDS = ((0, 10), (10, 20), (20, 30), (30, 60), (60, 180))


def lean_deg(joints: np.ndarray, up: np.ndarray) -> np.ndarray:
    axis = joints[:, J["thorax"]] - joints[:, J["pelvis"]]
    return np.degrees(np.arccos(np.clip(np.sum(axis * up, -1) / np.linalg.norm(axis, axis=-1), -1.0, 1.0)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, nargs="*", default=[FOCAL_FREE_WEIGHTS],
                    help="default: the 3 Dec 11:32 lifter (now the focal-free one), as in BENCHMARKS.md")
    ap.add_argument("--error-model", type=Path, default=RAW_LABELS_ERROR_MODEL,
                    help="realistic-noise rows (default: MediaPipe's own labels, as in BENCHMARKS.md)")
    a = ap.parse_args()
    v, noisy = validation_views(1234, error_model=a.error_model)
    val_lean = lean_deg(v.joints_cam_mm, np.einsum("nij,j->ni", v.R_world_to_cam, [0.0, 1.0, 0.0]))
    cams, names, und, conf, P = pose2sim_views()
    Xw = triangulate_dlt(np.moveaxis(und, 0, 2), P, np.moveaxis(reference_weights(und, P, conf)[0], 0, 2))
    real_lean_all = lean_deg(Xw, np.array([0.0, 0.0, 1.0]))
    from engines.data import load_split
    train = load_split("train")["joints_mm"]                                   # world frame, Y up
    print(f"poses leaning more than 30 deg: training {np.mean(lean_deg(train, np.array([0.0, 1.0, 0.0])) > 30):.1%}, "
          f"validation {np.mean(val_lean > 30):.1%}, real clip {np.mean(real_lean_all > 30):.1%}\n")
    print("| weights | input | " + " | ".join(f"lean {lo}-{hi} deg" for lo, hi in BANDS) + " | all |")
    print("|---|---|" + "---|" * (len(BANDS) + 1))
    for w in a.weights:
        lifter = load_lifter("absposelifter", backend="onnxruntime", weights=w)
        rows = [("exact 2D", pa_mpjpe(lift_batched(lifter, v.keypoints_px, v.K), v.joints_cam_mm), val_lean),
                ("realistic-noise 2D", pa_mpjpe(lift_batched(lifter, noisy, v.K), v.joints_cam_mm), val_lean)]
        pa_r, pa_x, lean_r = [], [], []
        for _, cam, kp, cf, gt, ok in pose2sim_truth():
            g = gt[ok]
            proj = g @ cam.K.T
            pa_r.append(pa_mpjpe(lifter.lift(kp[ok], cf[ok], cam.K), g))
            pa_x.append(pa_mpjpe(lifter.lift(proj[..., :2] / proj[..., 2:], np.ones(g.shape[:2]), cam.K), g))
            lean_r.append(real_lean_all[ok])
        lean_r = np.concatenate(lean_r)
        rows += [("real video (pose2sim)", np.concatenate(pa_r), lean_r),
                 ("real poses, exact projections", np.concatenate(pa_x), lean_r)]
        for name, pa, lean in rows:
            cells = []
            for lo, hi in BANDS:
                m = (lean >= lo) & (lean < hi)
                cells.append(f"{pa[m].mean():.1f} ({m.sum()})" if m.any() else "-")
            print(f"| {w.name} | {name} | " + " | ".join(cells) + f" | {pa.mean():.1f} |")


if __name__ == "__main__":
    main()
