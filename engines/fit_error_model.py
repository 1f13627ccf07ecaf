"""Fit the 2D error models (mixture by EM, and a single Gaussian for the ablation) to real
MediaPipe errors, and write them to ``assets/noise/``.

    python -m engines.fit_error_model

Input: ``assets/noise/mediapipe_errors_pose2sim.npz`` made by ``python -m engines.real_errors``
(MediaPipe detections on the 4 calibrated pose2sim views). Each detection in camera
*c* is compared with the projection of the joint triangulated from the *other* cameras,
robustly: the 3-view triangulation is kept when it agrees with its own views (max
reprojection residual <= 15 crop px), else the best-agreeing pair is used. Without
this, one wrong view (a left/right swap, say) spoils the reference for all three
other cameras and triples the apparent outlier rate. Each camera's constant offset
(its mean error over all joints and frames: a calibration/letterbox artefact, not a
detector error; up to 10 crop px in x for cam01) is removed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import itertools

import numpy as np

from engines.noise import CROP_PX, ErrorModel, person_scale_px
from engines.real_errors import POSE2SIM_FPS
from engines.skeleton import JOINT_NAMES

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "noise"
SOURCE = ASSETS / "mediapipe_errors_pose2sim.npz"


RESIDUAL_GATE_CROP_PX = 15.0


def load_error_sequences(path: Path = SOURCE, fix_left_right: bool = False) -> np.ndarray:
    """Errors ``[C, F, 17, 2]`` per camera and frame in crop pixels (``e_px * 256 / person bbox diagonal``),
    robust reference, NaN where a view has no detection. ``fix_left_right``: each view's detections as the app's
    keypoint stage gives them (``mocap_app.keypoints.LeftRightTracker``); the shipped model uses MediaPipe's own."""
    from engines.real_errors import load_pose2sim_cameras, pose2sim_keypoints, triangulate_dlt

    d = np.load(path)
    cams = load_pose2sim_cameras()
    names = [str(n) for n in d["camera_names"]]
    xy, conf = d["detections_video_px"], d["detections_confidence"].astype(float)
    if fix_left_right:
        fixed = [pose2sim_keypoints(xy[c], conf[c]) for c in range(len(names))]
        xy, conf = np.stack([f[0] for f in fixed]), np.stack([f[1] for f in fixed]).astype(float)
    und = np.stack([cams[n].undistort(cams[n].video_to_calib(xy[i])) for i, n in enumerate(names)])  # [C,F,J,2]
    P = np.stack([cams[n].P for n in names])
    out = []
    for c, name in enumerate(names):
        others = [o for o in range(len(names)) if o != c]
        subsets = [others] + [list(p) for p in itertools.combinations(others, 2)]
        Xs, res = [], []
        for sub in subsets:
            X = triangulate_dlt(np.moveaxis(und[sub], 0, 2), P[sub], np.moveaxis(conf[sub], 0, 2))   # [F,J,3]
            res.append(np.stack([np.linalg.norm(cams[names[s]].project(X) - und[s], axis=-1) for s in sub]).max(0))
            Xs.append(X)
        Xs, res = np.stack(Xs), np.stack(res)
        scale = person_scale_px(cams[name].project(Xs[0]))                                  # [F]
        gate = RESIDUAL_GATE_CROP_PX * scale / CROP_PX
        with np.errstate(invalid="ignore"):
            choice = np.where(res[0] <= gate[:, None], 0, 1 + np.argmin(np.nan_to_num(res[1:], nan=np.inf), axis=0))
        X = np.take_along_axis(Xs, choice[None, ..., None], 0)[0]
        e = (und[c] - cams[name].project(X)) * (CROP_PX / scale)[:, None, None]
        found = np.isfinite(e).all((-1, -2))
        e[~found] = np.nan
        out.append(e - e[found].mean((0, 1)))              # the camera's constant offset
    return np.stack(out)


def detections_only(seq: np.ndarray) -> np.ndarray:
    """``[C, F, 17, 2]`` -> ``[M, 17, 2]``: every (camera, frame) with a detection."""
    e = seq.reshape(-1, *seq.shape[2:])
    return e[np.isfinite(e).all((-1, -2))]


def load_errors_crop(path: Path = SOURCE) -> np.ndarray:
    """Errors ``[M, 17, 2]`` in crop pixels, robust reference (``load_error_sequences`` without the time axis)."""
    return detections_only(load_error_sequences(path))


def error_autocorrelation(seq: np.ndarray, lags, gate_crop_px: float = 20.0) -> np.ndarray:
    """Correlation of the same joint's error ``lag`` frames apart, per lag, from ``seq [C, F, J, 2]`` (crop px),
    over pairs where both errors are under ``gate_crop_px`` (the uniform outliers would swamp it)."""
    e = seq - np.nanmean(seq.reshape(-1, *seq.shape[2:]), 0)       # each joint's mean error
    out = []
    for lag in lags:
        a, b = e[:, :-lag].reshape(-1, 2), e[:, lag:].reshape(-1, 2)
        with np.errstate(invalid="ignore"):
            ok = (np.isfinite(a).all(-1) & np.isfinite(b).all(-1) & (np.linalg.norm(a, axis=-1) < gate_crop_px)
                  & (np.linalg.norm(b, axis=-1) < gate_crop_px))
        a, b = a[ok], b[ok]
        out.append((a * b).sum() / np.sqrt((a ** 2).sum() * (b ** 2).sum()))
    return np.asarray(out)


def fit_temporal(seq: np.ndarray, fps: float, model: ErrorModel,
                 lags: tuple[int, ...] = (1, 2, 3, 6, 9, 12, 18, 24, 36)) -> dict:
    """The time constants of ``model.sample_sequence`` that reproduce the real errors' autocorrelation.

    ``corr(dt) = persistent + (1 - persistent) * ar_per_100ms ** (dt / 0.1 s)``: a part that stays over the
    clip (semantic offsets, a slow drift) and a part that fades. The measured correlation is over inlier pairs,
    which the outlier switching lowers, so the model is fitted by simulation: a grid over both constants, each
    scored by the same measurement on sequences sampled from it (fixed seed), least squares over ``lags``.
    """
    r = error_autocorrelation(seq, lags)
    times = np.r_[0, lags] / fps
    grid = np.linspace(0.0, 0.98, 50)   # steps of 0.02
    best = (np.inf, 0.0, 0.0, [])   # cost, persistent, ar_per_100ms, the model's autocorrelation
    for p in grid:
        for phi in grid:
            m = ErrorModel(model.kind, model.mu, model.sigma, model.gamma, persistent=p, ar_per_100ms=phi)
            x = m.sample_sequence(np.random.default_rng(0), np.full((1500, len(times)), CROP_PX), times)
            sim = [error_autocorrelation(x[:, [0, k]], [1])[0] for k in range(1, len(times))]
            cost = float(((np.asarray(sim) - r) ** 2).sum())
            if cost < best[0]:
                best = (cost, float(p), float(phi), sim)
    return {"persistent": best[1], "ar_per_100ms": best[2], "lags_s": (np.asarray(lags) / fps).round(4).tolist(),
            "autocorrelation": r.round(4).tolist(), "model_autocorrelation": np.round(best[3], 4).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", type=Path, default=SOURCE)
    ap.add_argument("--out-dir", type=Path, default=ASSETS)
    ap.add_argument("--raw-labels", action="store_true",
                    help="fit MediaPipe's own labels, mirrorings included (the model before 3 Dec), not what the "
                         "keypoint stage hands the lifter; writes mediapipe_error_model_raw_labels*.json")
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    seq = load_error_sequences(a.errors, fix_left_right=not a.raw_labels)
    e = detections_only(seq)
    what = ("MediaPipe's own labels" if a.raw_labels else
            "the detections as the app's keypoint stage gives them (MediaPipe + left/right fix)")
    src = (f"{a.errors.name}: {len(e)} detections, robust leave-one-camera-out errors of {what} on the pose2sim "
           "demo (4 calibrated views, BSD-3); fitted by `python -m engines.fit_error_model"
           + (" --raw-labels`" if a.raw_labels else "`"))
    stem = "mediapipe_error_model" + ("_raw_labels" if a.raw_labels else "")
    mix = ErrorModel.fit(e, "mixture", src)
    gau = ErrorModel.fit(e, "gaussian", src)
    temporal = fit_temporal(seq, POSE2SIM_FPS, mix)
    for m in (mix, gau):
        m.persistent, m.ar_per_100ms = temporal["persistent"], temporal["ar_per_100ms"]
    mix.save(a.out_dir / f"{stem}.json")
    gau.save(a.out_dir / f"{stem}_gaussian.json")
    print("| joint | mu_x | mu_y | sigma_x | sigma_y | gamma | Gaussian sigma_x | Gaussian sigma_y |")
    print("|---|---|---|---|---|---|---|---|")
    for j, name in enumerate(JOINT_NAMES):
        print(f"| {name} | {mix.mu[j, 0]:.2f} | {mix.mu[j, 1]:.2f} | {mix.sigma[j, 0]:.2f} | {mix.sigma[j, 1]:.2f} "
              f"| {mix.gamma[j]:.3f} | {gau.sigma[j, 0]:.2f} | {gau.sigma[j, 1]:.2f} |")
    print(f"\nmean NLL per joint sample: mixture {mix.nll(e):.3f}, single Gaussian {gau.nll(e):.3f} (crop px)")
    print("\nover time: corr(dt) = persistent + (1 - persistent) * ar_per_100ms ** (dt / 0.1 s), "
          f"persistent {temporal['persistent']:.3f}, ar_per_100ms {temporal['ar_per_100ms']:.3f}")
    print("| lag (s) | " + " | ".join(f"{t:.3f}" for t in temporal["lags_s"]) + " |")
    print("|---|" + "---|" * len(temporal["lags_s"]))
    print("| measured | " + " | ".join(f"{r:.3f}" for r in temporal["autocorrelation"]) + " |")
    print("| model, measured the same way | "
          + " | ".join(f"{r:.3f}" for r in temporal["model_autocorrelation"]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
