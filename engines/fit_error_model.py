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
from engines.skeleton import JOINT_NAMES

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "noise"
SOURCE = ASSETS / "mediapipe_errors_pose2sim.npz"


RESIDUAL_GATE_CROP_PX = 15.0


def load_errors_crop(path: Path = SOURCE) -> np.ndarray:
    """Errors ``[M, 17, 2]`` in crop pixels (``e_px * 256 / person bbox diagonal``), robust reference."""
    from engines.real_errors import load_pose2sim_cameras, triangulate_dlt

    d = np.load(path)
    cams = load_pose2sim_cameras()
    names = [str(n) for n in d["camera_names"]]
    xy, conf = d["detections_video_px"], d["detections_confidence"].astype(float)
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
        e = e[np.isfinite(e).all((-1, -2))]
        out.append(e - e.mean((0, 1)))                     # the camera's constant offset
    return np.concatenate(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--errors", type=Path, default=SOURCE)
    ap.add_argument("--out-dir", type=Path, default=ASSETS)
    a = ap.parse_args(argv)
    a.out_dir.mkdir(parents=True, exist_ok=True)
    e = load_errors_crop(a.errors)
    src = (f"{a.errors.name}: {len(e)} detections, robust leave-one-camera-out MediaPipe errors on the pose2sim "
           "demo (4 calibrated views, BSD-3); fitted by `python -m engines.fit_error_model`")
    mix = ErrorModel.fit(e, "mixture", src)
    gau = ErrorModel.fit(e, "gaussian", src)
    mix.save(a.out_dir / "mediapipe_error_model.json")
    gau.save(a.out_dir / "mediapipe_error_model_gaussian.json")
    print("| joint | mu_x | mu_y | sigma_x | sigma_y | gamma | Gaussian sigma_x | Gaussian sigma_y |")
    print("|---|---|---|---|---|---|---|---|")
    for j, name in enumerate(JOINT_NAMES):
        print(f"| {name} | {mix.mu[j, 0]:.2f} | {mix.mu[j, 1]:.2f} | {mix.sigma[j, 0]:.2f} | {mix.sigma[j, 1]:.2f} "
              f"| {mix.gamma[j]:.3f} | {gau.sigma[j, 0]:.2f} | {gau.sigma[j, 1]:.2f} |")
    print(f"\nmean NLL per joint sample: mixture {mix.nll(e):.3f}, single Gaussian {gau.nll(e):.3f} (crop px)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
