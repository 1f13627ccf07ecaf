"""K-means initial poses for zero-shot ZeDO (Sec. 4.2: "sampled from training sets by the K-Means algorithm").

    python -m engines.zedo.hypotheses --out assets/zedo/kmeans_hypotheses.npz

Training poses are made pelvis-relative and heading-normalised (hips parallel to the
image's X axis, facing the camera), then put into level-camera axes (OpenCV: Y down).
One K-means run per S; the initial pose optimiser later finds each one's heading.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np
from scipy.cluster.vq import kmeans2

from engines.data import load_split
from engines.skeleton import J, ROOT

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "assets" / "zedo" / "kmeans_hypotheses.npz"
SIZES = (1, 5, 10, 20, 50)


def canonical_camera_poses(joints_world_mm: np.ndarray) -> np.ndarray:
    """World poses (Y up) -> pelvis-relative, facing a level camera, in OpenCV camera axes."""
    X = joints_world_mm - joints_world_mm[:, ROOT:ROOT + 1]
    hip = X[:, J["left_hip"]] - X[:, J["right_hip"]]
    ang = np.arctan2(hip[:, 2], hip[:, 0])            # rotate about Y so that left - right hip = -X
    yaw = np.pi - ang
    c, s = np.cos(yaw), np.sin(yaw)
    # rotation about +Y by yaw: x' = c x + s z, z' = -s x + c z ... chosen so the hip vector maps to -X
    R = np.zeros((len(X), 3, 3))
    R[:, 0, 0] = c; R[:, 0, 2] = -s; R[:, 1, 1] = 1; R[:, 2, 0] = s; R[:, 2, 2] = c
    Xw = np.einsum("nij,nkj->nki", R, X)
    return Xw * np.array([-1.0, -1.0, 1.0])           # world (Y up, facing -Z) -> camera (Y down)


def make_hypotheses(sizes=SIZES, seed: int = 0, max_poses: int = 20000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    poses = load_split("train")["joints_mm"].astype(np.float64)
    poses = poses[rng.permutation(len(poses))[:max_poses]]
    X = canonical_camera_poses(poses).reshape(len(poses), -1)
    out = {}
    for S in sizes:
        if S == 1:
            c = X.mean(0, keepdims=True)
        else:
            c, _ = kmeans2(X, S, iter=50, minit="++", seed=seed)
        out[f"S_{S}"] = c.reshape(S, -1, 3).astype(np.float32)
        log.info("K-means S=%d done", S)
    return out


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(a.out, **make_hypotheses(seed=a.seed))
    log.info("saved %s", a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
