"""Evaluate lifter weights on the validation subjects (06, 08, 90, 104), never seen in training.

    python -m engines.absposelifter.evaluate [--weights assets/absposelifter/absposelifter.pt]

Every validation pose is seen by one virtual camera (fixed seed, same sampler as
training) with (a) ground-truth 2D and (b) realistic 2D: errors drawn from the
Gaussian + uniform mixture fitted to real MediaPipe errors. Prints MPJPE,
PA-MPJPE (root-aligned / Procrustes-aligned, mm) and MRPE (mm).
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


def validation_views(seed: int = 1234, max_poses: int | None = None):
    poses = load_split("val")["joints_mm"]
    if max_poses:
        poses = poses[np.random.default_rng(seed).permutation(len(poses))[:max_poses]]
    rng = np.random.default_rng(seed)
    v = view_poses(poses, rng)
    noise = ErrorModel.load(DEFAULT_ERROR_MODEL).sample(np.random.default_rng(seed + 1), person_scale_px(v.keypoints_px))
    return v, v.keypoints_px + noise


def evaluate(weights: Path | None = None, backend: str = "onnxruntime", seed: int = 1234,
             max_poses: int | None = None) -> dict[str, dict[str, float]]:
    lifter = load_lifter("absposelifter", backend=backend, weights=weights)
    v, noisy = validation_views(seed, max_poses)
    res = {}
    for name, kp in (("ground-truth 2D", v.keypoints_px), ("realistic-noise 2D", noisy)):
        pred = np.concatenate([lifter.lift(kp[i:i + 4096], None, v.K[i:i + 4096]) for i in range(0, len(kp), 4096)])
        res[name] = {"MPJPE": float(mpjpe(pred, v.joints_cam_mm).mean()),
                     "PA-MPJPE": float(pa_mpjpe(pred, v.joints_cam_mm).mean()),
                     "MRPE": float(mrpe(pred, v.joints_cam_mm).mean()),
                     "poses": len(kp)}
    return res


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
    a = ap.parse_args(argv)
    print(format_table(evaluate(a.weights, a.backend, a.seed, a.max_poses)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
