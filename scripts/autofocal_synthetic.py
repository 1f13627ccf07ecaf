"""Auto focal with the real AbsPoseLifter on the synthetic validation clips of tests/test_calibration_autofocal.py.

    PYTHONPATH=. python scripts/autofocal_synthetic.py                      # the test's 8 clips (seed 2, every 3rd)
    PYTHONPATH=. python scripts/autofocal_synthetic.py --seeds 2 3 --step 1 [--cmu-skeleton] [--depth-uncertainty 0]
    PYTHONPATH=. python scripts/autofocal_synthetic.py --seeds $(seq 10 29) --step 1 \
        --sizes 1280x720 640x480 1920x1080 1080x1920 [--lift-scale 1]      # the search alone, per image size
    PYTHONPATH=. python scripts/autofocal_synthetic.py --seeds 50 51 52 --step 1 --sizes 1280x720 \
        --subjects train                                                    # the shrinkage line on training subjects
    PYTHONPATH=. python scripts/autofocal_synthetic.py --seeds $(seq 10 29) --step 1 --error-scale  # see below

Per clip: true focal, relative error of ``estimate_focal``, its confidence and reliability, the lifter's
root-relative MPJPE, the depth scale (least squares, true / lifted root-relative depths) and the error
the search gives with the lifted depths multiplied by that true scale. Then the medians, and how the estimate
shrinks towards the middle of the range: the slope of log(estimate) on log(true focal), and the median error left
after the best straight-line correction in log (fitted on the same clips, so an optimistic bound). ``--sizes`` prints
that line per size too (focal lengths per 1280 px of the long side), on ``--subjects`` (default: validation).

``--error-scale``: how good the lifter's relative pose would have to be. The search runs on the true relative pose
plus the lifter's own error (lifted at the true focal length) times 0 ... 1, and on parts of that error (depth only,
image-plane only, its mean over the clip, the rest), at 1280 x 720.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from engines import load_lifter                                                 # noqa: E402
from engines.lifter import FOCAL_FREE_WEIGHTS                                   # noqa: E402
from mocap_app.calibration import autofocal                                     # noqa: E402
from mocap_app.calibration.synthetic import (TRAIN_SUBJECTS, VAL_SUBJECTS,      # noqa: E402
                                             autofocal_clips)
from test_calibration_autofocal import SIZE, cases                              # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[2])
    ap.add_argument("--step", type=int, default=3, help="every n-th validation file (the test uses 3)")
    ap.add_argument("--cmu-skeleton", action="store_true", help="build the clips in the CMU skeleton (as before)")
    ap.add_argument("--depth-uncertainty", type=float, default=autofocal.LIFTER_DEPTH_UNCERTAINTY)
    ap.add_argument("--weights", type=Path, default=FOCAL_FREE_WEIGHTS,
                    help="lifter weights (default: the focal-free lifter auto focal runs; one that takes f as an "
                         "input goes through self_consistent_focal)")
    ap.add_argument("--sizes", nargs="+", help="only the plain search's median |error| per image size (WxH), on the "
                    "same protocol with the focal range scaled by the long side (synthetic.autofocal_clips)")
    ap.add_argument("--subjects", choices=["val", "train"], default="val",
                    help="with --sizes: the CMU validation subjects (default) or the training subjects")
    ap.add_argument("--lift-scale", type=float, default=None,
                    help="with --sizes: lift at this scale instead of ClipLifts' own choice (1: frames as they are)")
    ap.add_argument("--error-scale", action="store_true",
                    help="the search with the lifter's relative-pose error scaled down or split into parts")
    a = ap.parse_args()
    lifter = load_lifter("absposelifter", backend="torch", weights=a.weights)
    if a.sizes:
        search_by_size(lifter, a)
        return
    if a.error_scale:
        search_with_scaled_error(lifter, a)
        return
    rows = []
    print(f"{'seed':>4} {'clip':8} {'f px':>6} {'error':>7} {'conf':>5} {'rel':>3} {'MPJPE':>6} {'scale':>6} "
          f"{'err@scale':>9}")
    for seed in a.seeds:
        for name, f, v, inside, kp, _ in cases(seed=seed, step=a.step, detector_proportions=not a.cmu_skeleton):
            conf = np.ones(kp.shape[:2])
            r = autofocal.estimate_focal(kp, conf, SIZE, lifter, bootstrap=6, depth_uncertainty=a.depth_uncertainty)
            lifts = autofocal.ClipLifts(lifter, kp, conf, SIZE)
            L = lifts.at(f)                                      # the lifted pose at the true focal length
            true = v.joints_cam_mm[inside]
            rel_t = true - true[:, :1]
            mpjpe = float(np.linalg.norm(L.rel - rel_t, axis=-1).mean())
            lz, tz = L.rel[..., 2], rel_t[..., 2]
            k = float((lz * tz).sum() / (lz * lz).sum())
            scaled = lifts.with_depth_scale(k)
            err_k = (autofocal.search_focal(scaled)[0] if lifts.focal_independent
                     else autofocal.self_consistent_focal(scaled)[0]) / f - 1
            rows.append((f, r.focal_px / f - 1, r.reliable, mpjpe, k, err_k))
            print(f"{seed:4d} {name:8} {f:6.0f} {rows[-1][1]:+7.3f} {r.confidence:5.2f} {int(r.reliable):3d} "
                  f"{mpjpe:6.1f} {k:6.2f} {err_k:+9.3f}", flush=True)
    ft, e, rel, mp, k, ek = (np.array(c, float) for c in zip(*rows))
    print(f"{len(rows)} clips: median |error| {np.median(np.abs(e)):.3f}, reliable {int(rel.sum())}, unflagged misses "
          f"(> 10 %) {int(((np.abs(e) > 0.1) & (rel > 0)).sum())}; median MPJPE {np.median(mp):.1f} mm; depth scale "
          f"median {np.median(k):.2f} (IQR {np.percentile(k, 25):.2f}-{np.percentile(k, 75):.2f}, log spread "
          f"{np.std(np.log(np.clip(k, 0.05, None))):.2f}); median |error| with the true scale "
          f"{np.median(np.abs(ek)):.3f}")
    lt, le = np.log(ft), np.log(ft * (1 + e))
    slope, icpt = np.polyfit(lt, le, 1)
    debiased = np.exp((le - icpt) / slope) / ft - 1
    print(f"log(estimate) = {slope:.2f} log(true) + {icpt:.2f} (correlation {np.corrcoef(lt, le)[0, 1]:.2f}); "
          f"after that line is inverted (in-sample): median |error| {np.median(np.abs(debiased)):.3f}")


def search_by_size(lifter, a) -> None:
    """The search's answer (no bootstrap, no confidence) on ``autofocal_clips`` at each of ``a.sizes``, and the line
    log(answer) = slope log(true) + intercept in focal lengths per 1280 px of the long side."""
    subjects = TRAIN_SUBJECTS if a.subjects == "train" else VAL_SUBJECTS
    for text in a.sizes:
        size = tuple(int(x) for x in text.split("x"))
        rows = []
        for seed in a.seeds:
            for _, f, _, _, kp, _ in autofocal_clips(seed, a.step, not a.cmu_skeleton, size, subjects=subjects):
                lifts = autofocal.ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size, lift_scale=a.lift_scale)
                rows.append((f, autofocal.search_focal(lifts)[0]))
        f, est = np.array(rows).T
        err = np.abs(est / f - 1)
        k = autofocal.REFERENCE_LONG_SIDE_PX / max(size)
        slope, icpt = np.polyfit(np.log(f * k), np.log(est * k), 1)
        print(f"{text}: {len(err)} clips, search median |error| {np.median(err):.3f}, within 10 % "
              f"{np.mean(err <= 0.1):.2f} (lift scale {lifts.lift_scale:g}); log(answer) = {slope:.3f} log(true) + "
              f"{icpt:.3f} per 1280 px", flush=True)


# (name, error -> the part kept): the lifter's error e [N, J, 3] (camera frame, mm) as it enters the relative pose
ERROR_PARTS = [(f"all x {k:g}", lambda e, k=k: k * e) for k in (0.0, 0.25, 0.5, 0.6, 0.7, 0.8, 1.0)] + [
    ("depth x 0.5", lambda e: e * np.array([1.0, 1.0, 0.5])),
    ("image plane x 0.5", lambda e: e * np.array([0.5, 0.5, 1.0])),
    ("depth only (image plane exact)", lambda e: e * np.array([0.0, 0.0, 1.0])),
    ("image plane only (depth exact)", lambda e: e * np.array([1.0, 1.0, 0.0])),
    ("its mean over the clip", lambda e: np.broadcast_to(e.mean(0, keepdims=True), e.shape)),
    ("the rest (mean over the clip removed)", lambda e: e - e.mean(0, keepdims=True)),
]


def search_with_scaled_error(lifter, a) -> None:
    """The search on ``true relative pose + part of the lifter's error``: which error, and how much less of it,
    auto focal can afford (the search's answer only, like ``--sizes``)."""
    err = {name: [] for name, _ in ERROR_PARTS}
    mpjpe = {name: [] for name, _ in ERROR_PARTS}
    for seed in a.seeds:
        for _, f, v, inside, kp, _ in autofocal_clips(seed, a.step, not a.cmu_skeleton, SIZE):
            lifts = autofocal.ClipLifts(lifter, kp, np.ones(kp.shape[:2]), SIZE)
            if not lifts.focal_independent:
                raise SystemExit("--error-scale needs a focal-free lifter (its error does not depend on f)")
            L = lifts.at(f)
            true = v.joints_cam_mm[inside]
            rel_t = true - true[:, :1]
            e = L.rel - rel_t
            for name, part in ERROR_PARTS:
                rel = rel_t + part(e)
                rel = rel - rel[:, :1]
                other = lifts.with_lifted(autofocal.LiftedClip(L.kp, L.w, L.cdepth, rel, L.c))
                err[name].append(abs(autofocal.search_focal(other)[0] / f - 1))
                mpjpe[name].append(float(np.linalg.norm(rel - rel_t, axis=-1).mean()))
    print(f"{len(err[ERROR_PARTS[0][0]])} clips at {SIZE[0]} x {SIZE[1]}")
    print(f"{'lifter error kept':40} {'MPJPE':>6} {'median |error|':>14} {'within 10 %':>11}")
    for name, _ in ERROR_PARTS:
        print(f"{name:40} {np.median(mpjpe[name]):6.1f} {np.median(err[name]):14.3f} "
              f"{np.mean(np.asarray(err[name]) <= 0.1):11.2f}")


if __name__ == "__main__":
    main()
