"""Evaluate lifter weights on the validation subjects (06, 08, 90, 104), never seen in training,
and on real video.

    python -m engines.absposelifter.evaluate [--weights assets/absposelifter/absposelifter.pt]

Every validation pose is seen by one virtual camera (fixed seed, same sampler as
training) with (a) ground-truth 2D and (b) realistic 2D: errors drawn from the
Gaussian + uniform mixture fitted to real MediaPipe errors; and (c) real MediaPipe
2D on the pose2sim video against 3-view triangulation (``evaluate_real``). Prints
MPJPE, PA-MPJPE (root-aligned / Procrustes-aligned, mm) and MRPE (mm).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from engines.absposelifter.train import DEFAULT_ERROR_MODEL
from engines.data import load_split, view_poses
from engines.lifter import load_lifter
from engines.metrics import mpjpe, mrpe, pa_mpjpe
from engines.noise import ErrorModel, person_scale_px

REPO = Path(__file__).resolve().parents[2]


def validation_views(seed: int = 1234, max_poses: int | None = None, error_model: Path = DEFAULT_ERROR_MODEL):
    poses = load_split("val")["joints_mm"]
    if max_poses:
        poses = poses[np.random.default_rng(seed).permutation(len(poses))[:max_poses]]
    rng = np.random.default_rng(seed)
    v = view_poses(poses, rng)
    return v, with_realistic_errors(v.keypoints_px, seed + 1, error_model)


def with_realistic_errors(keypoints_px: np.ndarray, seed: int, error_model: Path = DEFAULT_ERROR_MODEL) -> np.ndarray:
    """``keypoints_px`` plus errors drawn from the MediaPipe error model (the shipped one by default)."""
    noise = ErrorModel.load(error_model).sample(np.random.default_rng(seed), person_scale_px(keypoints_px))
    return keypoints_px + noise


def evaluate(weights: Path | None = None, backend: str = "onnxruntime", seed: int = 1234,
             max_poses: int | None = None, flip_test: bool = True,
             error_model: Path = DEFAULT_ERROR_MODEL) -> dict[str, dict[str, float]]:
    lifter = load_lifter("absposelifter", backend=backend, weights=weights, flip_test=flip_test)
    v, noisy = validation_views(seed, max_poses, error_model)
    return {name: scores(lift_batched(lifter, kp, v.K), v.joints_cam_mm)
            for name, kp in (("ground-truth 2D", v.keypoints_px), ("realistic-noise 2D", noisy))}


def lift_batched(lifter, kp: np.ndarray, K: np.ndarray) -> np.ndarray:
    """``lifter.lift`` over many poses, 4096 at a time (no confidences)."""
    return np.concatenate([lifter.lift(kp[i:i + 4096], None, K[i:i + 4096]) for i in range(0, len(kp), 4096)])


def scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """The papers' metrics (mm), averaged over poses, and the number of poses."""
    return {"MPJPE": float(mpjpe(pred, gt).mean()), "PA-MPJPE": float(pa_mpjpe(pred, gt).mean()),
            "MRPE": float(mrpe(pred, gt).mean()), "poses": len(gt)}


def evaluate_by_subject(weights: Path | None = None, backend: str = "onnxruntime", seed: int = 1234,
                        flip_test: bool = True, train_poses: int = 6000,
                        error_model: Path = DEFAULT_ERROR_MODEL) -> dict[str, dict[str, float]]:
    """Ground-truth 2D per validation subject (the views of ``evaluate``), and ``train_poses`` random
    training-subject poses seen the same way (new cameras; exact and realistic-noise 2D): how much of the
    error is fitting and how much is new subjects."""
    lifter = load_lifter("absposelifter", backend=backend, weights=weights, flip_test=flip_test)
    v, _ = validation_views(seed)
    pred = lift_batched(lifter, v.keypoints_px, v.K)
    subject = load_split("val")["subject"]
    res = {f"ground-truth 2D, subject {s}": scores(pred[subject == s], v.joints_cam_mm[subject == s])
           for s in ("08", "06", "104", "90")}
    poses = load_split("train")["joints_mm"]
    rng = np.random.default_rng(seed)
    t = view_poses(poses[rng.permutation(len(poses))[:train_poses]], rng)
    noisy = with_realistic_errors(t.keypoints_px, seed + 1, error_model)
    for name, kp in (("ground-truth 2D", t.keypoints_px), ("realistic-noise 2D", noisy)):
        res[f"{name}, training subjects"] = scores(lift_batched(lifter, kp, t.K), t.joints_cam_mm)
    return res


def pose2sim_detections(cache: bool = True):
    """MediaPipe on the 4 pose2sim views (cached): cameras, video px ``[C,F,17,2]``, confidence ``[C,F,17]``."""
    from engines.data import CACHE_DIR
    from engines.real_errors import detect_videos, load_pose2sim_cameras

    cams = load_pose2sim_cameras()
    path = CACHE_DIR / "pose2sim_mediapipe.npz"
    if cache and path.exists():
        d = np.load(path)
        return cams, d["xy"], d["conf"]
    xy, conf = detect_videos(cams)
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(path, xy=xy, conf=conf)
    return cams, xy, conf


def pose2sim_views():
    """The 4 pose2sim views ready for geometry: ``(cams, names, und [C,F,17,2], conf [C,F,17], P [C,3,4])``
    with detections mapped to undistorted calibration pixels."""
    cams, xy, conf = pose2sim_detections()
    names = list(cams)
    und = np.stack([cams[n].undistort(cams[n].video_to_calib(xy[i])) for i, n in enumerate(names)])
    P = np.stack([cams[n].P for n in names])
    return cams, names, und, conf, P


def pose2sim_truth(views=None, fix_left_right: bool = True, drop_mirrored: bool = True):
    """Each pose2sim view with its leave-one-out reference: yields ``(name, camera, keypoints_px [F,17,2]
    (undistorted calibration px), confidence [F,17], joints_cam_mm [F,17,3], ok [F])``, where the joints are
    triangulated from the *other* 3 views and moved into this camera, and ``ok`` marks frames with both.
    ``views``: what ``pose2sim_views()`` returns (the default), or the same built from other detections.
    ``fix_left_right``: the yielded keypoints are what the app's keypoint stage gives
    (``engines.real_errors.pose2sim_keypoints``);
    the reference is always triangulated from MediaPipe's own labels.

    A view whose whole skeleton MediaPipe mirrored in a frame (cam02 in 25 frames) is left out of the
    other views' reference in that frame, as in ``engines.real_errors.leave_one_out``; its own detections
    stay as they are (a real detector failure the lifter is charged for). Until 3 Dec 2026 the mirrored
    views were triangulated too, which bent the reference of the other three cameras (``drop_mirrored=False``
    gives that old reference back, for comparison).
    """
    from engines.real_errors import pose2sim_keypoints, reference_weights, triangulate_dlt

    cams, names, und, conf, P = views if views is not None else pose2sim_views()
    uv = np.moveaxis(und, 0, 2)
    w = np.moveaxis(reference_weights(und, P, conf, drop_mirrored)[0], 0, 2)
    for c, n in enumerate(names):
        others = [o for o in range(len(names)) if o != c]
        X = triangulate_dlt(uv[:, :, others], P[others], w[:, :, others])            # world, m
        gt = (X @ cams[n].R.T + cams[n].t) * 1000.0                                   # camera c, mm
        ok = np.isfinite(und[c]).all((-1, -2)) & np.isfinite(gt).all((-1, -2))
        yield (n, cams[n], *pose2sim_keypoints(und[c], conf[c], fix_left_right), gt, ok)


def evaluate_real(weights: Path | None = None, backend: str = "onnxruntime",
                  flip_test: bool = True, fix_left_right: bool = True) -> dict[str, float]:
    """Real MediaPipe 2D on each pose2sim view, against the 3D triangulated from the *other* 3 views.

    The reference shares MediaPipe's joint semantics (e.g. its hip landmark), which
    differ slightly from the mocap joints the lifter was trained on, so these errors
    include that systematic offset as well as the triangulation's own error.
    ``fix_left_right``: the detections as the app uses them (mirrored skeletons mirrored back).
    """
    lifter = load_lifter("absposelifter", backend=backend, weights=weights, flip_test=flip_test)
    preds, gts = [], []
    for _, cam, kp, conf, gt, ok in pose2sim_truth(fix_left_right=fix_left_right):
        preds.append(lifter.lift(kp[ok], conf[ok], cam.K))
        gts.append(gt[ok])
    return scores(np.concatenate(preds), np.concatenate(gts))


def format_table(res: dict) -> str:
    lines = ["| input | poses | MPJPE (mm) | PA-MPJPE (mm) | MRPE (mm) |", "|---|---|---|---|---|"]
    for k, r in res.items():
        lines.append(f"| {k} | {r['poses']} | {r['MPJPE']:.1f} | {r['PA-MPJPE']:.1f} | {r['MRPE']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--max-poses", type=int, default=None)
    ap.add_argument("--no-flip", action="store_true",
                    help="without test-time flip averaging (how every number before 19:30 UTC 2026-11-21 was measured)")
    ap.add_argument("--by-subject", action="store_true",
                    help="ground-truth 2D per validation subject, and training subjects seen the same way")
    ap.add_argument("--error-model", type=Path, default=DEFAULT_ERROR_MODEL,
                    help="the realistic-noise rows' 2D error model (default: the shipped one)")
    a = ap.parse_args(argv)
    if a.by_subject:
        print(format_table(evaluate_by_subject(a.weights, a.backend, a.seed, flip_test=not a.no_flip,
                                               error_model=a.error_model)))
        return 0
    res = evaluate(a.weights, a.backend, a.seed, a.max_poses, flip_test=not a.no_flip, error_model=a.error_model)
    try:
        res["real MediaPipe 2D (pose2sim, 4 views)"] = evaluate_real(a.weights, a.backend, flip_test=not a.no_flip)
        res["real MediaPipe 2D, without the left/right fix"] = evaluate_real(a.weights, a.backend,
                                                                             flip_test=not a.no_flip,
                                                                             fix_left_right=False)
    except Exception as e:  # the real-video check needs ../shared/data/video and MediaPipe
        print(f"(real-video evaluation skipped: {e})", file=sys.stderr)
    print(format_table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
