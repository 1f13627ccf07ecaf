"""Training/validation data: real CMU mocap seen through virtual cameras placed the way
people really film themselves.

World frame of the mocap: Y up, floor at y = 0, millimetres. A virtual camera is
drawn per pose with

* horizontal distance to the pelvis 1.5-8 m, camera height 0.3-2.2 m above the floor,
* pitch -30..+20 deg (negative = looking down), roll ~N(0, 3 deg) clipped to +-10 deg,
* focal length 400-2500 px (log-uniform), image 640x480 .. 1920x1080, portrait too,
  principal point near the image centre,
* the pelvis anywhere in the image (5-95 % of width and height), so subjects near the
  borders are common; at least 13 of the 17 joints must be inside the image.

Constraints between these (a low camera pitched down cannot see a far pelvis at the
top of the image) are met by rejection sampling, so every accepted camera is one a
person could have set up. The subject's heading is uniform, and half the poses are
mirrored left/right (the paper's flip augmentation).
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from engines.bvh import load_joints17
from engines.skeleton import FLIP_PERM, ROOT, to_detector_proportions

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MOCAP_DIR = SHARED / "data" / "mocap" / "cmu"
CACHE_DIR = REPO / ".cache"

IMAGE_SIZES = ((640, 480), (1280, 720), (1920, 1080), (1280, 960), (480, 640), (720, 1280), (1080, 1920))
IMAGE_SIZE_P = np.array([0.2, 0.25, 0.2, 0.05, 0.08, 0.12, 0.1])


def mocap_index(mocap_dir: Path = MOCAP_DIR) -> list[dict]:
    if not (mocap_dir / "index.csv").exists():
        raise FileNotFoundError(f"mocap data not found at {mocap_dir} (expected ../shared/data/mocap/cmu)")
    with open(mocap_dir / "index.csv") as fh:
        return list(csv.DictReader(fh))


def load_split(split: str, step: int = 4, mocap_dir: Path = MOCAP_DIR, cache: bool = True, raw: bool = False) -> dict:
    """All poses of one split (``'train'`` or ``'val'``, by subject as the data README suggests).

    ``step`` subsamples the 120 Hz capture (4 -> 30 Hz). Returns ``joints_mm [N, 17, 3]``
    (world, Y up), ``subject [N]`` and ``clip [N]`` (file name). Cached under ``.cache/``.
    Joints are retargeted to the 2D detector's proportions (``skeleton.DETECTOR_BONE_SCALE``),
    so what engines learn matches what MediaPipe reports; ``raw=True`` keeps the CMU skeleton's.
    """
    out = _load_split_raw(split, step, mocap_dir, cache)
    if not raw:
        out = dict(out, joints_mm=to_detector_proportions(out["joints_mm"]))
    return out


def _load_split_raw(split: str, step: int, mocap_dir: Path, cache: bool) -> dict:
    cache_file = CACHE_DIR / f"mocap17_{split}_step{step}.npz"
    if cache and cache_file.exists():
        d = np.load(cache_file)
        return {k: d[k] for k in d.files}
    rows = [r for r in mocap_index(mocap_dir) if r["split"] == split]
    if not rows:
        raise ValueError(f"no files in split {split!r}")
    joints, subj, clip = [], [], []
    for r in rows:
        j, _ = load_joints17(mocap_dir / r["file"], step=step)
        joints.append(j.astype(np.float32))
        subj += [r["subject"]] * len(j)
        clip += [r["file"]] * len(j)
    out = {"joints_mm": np.concatenate(joints), "subject": np.array(subj), "clip": np.array(clip)}
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(cache_file, **out)
    log.info("loaded %s split: %d poses from %d files", split, len(out["joints_mm"]), len(rows))
    return out


@dataclass
class CameraSampler:
    distance_m: tuple[float, float] = (1.5, 8.0)
    height_m: tuple[float, float] = (0.3, 2.2)
    pitch_deg: tuple[float, float] = (-30.0, 20.0)
    roll_std_deg: float = 3.0
    roll_max_deg: float = 10.0
    focal_px: tuple[float, float] = (400.0, 2500.0)
    pelvis_margin: float = 0.05
    min_joints_in_image: int = 13


@dataclass
class Views:
    """Poses seen by virtual cameras."""
    joints_cam_mm: np.ndarray     # [N, 17, 3]
    keypoints_px: np.ndarray      # [N, 17, 2] exact projections
    K: np.ndarray                 # [N, 3, 3]
    image_wh: np.ndarray          # [N, 2]
    R_world_to_cam: np.ndarray    # [N, 3, 3]
    cam_center_mm: np.ndarray     # [N, 3]
    # the whole map from the *input* poses: joints_cam = R_input_to_cam @ X + t_input_to_cam_mm, with X the
    # input pose, mirrored left/right first where ``mirrored``; it places other frames of a clip in the same view
    mirrored: np.ndarray | None = None           # [N] bool
    R_input_to_cam: np.ndarray | None = None     # [N, 3, 3]
    t_input_to_cam_mm: np.ndarray | None = None  # [N, 3]


def _world_to_cam_rotation(pitch_deg, roll_deg) -> np.ndarray:
    """World (Y up, camera looks along +Z) -> OpenCV camera (Y down), with pitch (+ = up) and roll."""
    flip = np.diag([-1.0, -1.0, 1.0])  # 180 deg about Z: world (Y up, looking +Z) -> OpenCV (Y down, X right)
    # camera-to-world: yaw 0, pitch about X (positive looks up), then roll about the optical axis
    r_cw = Rotation.from_euler("XZ", np.stack([-np.asarray(pitch_deg), np.asarray(roll_deg)], -1),
                               degrees=True).as_matrix()
    # R_wc maps world vectors to camera: first undo the camera's orientation, then flip Y
    return flip @ np.swapaxes(r_cw, -1, -2)


def view_poses(joints_world_mm: np.ndarray, rng: np.random.Generator,
               cfg: CameraSampler = CameraSampler(), mirror: bool = True) -> Views:
    """Random plausible camera for each pose ``[N, 17, 3]`` (see the module docstring)."""
    N = len(joints_world_mm)
    X = joints_world_mm.astype(np.float64).copy()
    m = np.zeros(N, bool)
    if mirror:
        m = rng.random(N) < 0.5
        X[m] = X[m][:, FLIP_PERM] * np.array([-1.0, 1.0, 1.0])
    # random heading about the vertical axis through the pelvis
    yaw = rng.uniform(0, 2 * np.pi, N)
    c, s = np.cos(yaw), np.sin(yaw)
    Ry = np.zeros((N, 3, 3)); Ry[:, 0, 0] = c; Ry[:, 0, 2] = s; Ry[:, 1, 1] = 1; Ry[:, 2, 0] = -s; Ry[:, 2, 2] = c
    pel = X[:, ROOT:ROOT + 1].copy()
    pel[..., 1] = 0.0
    X = np.einsum("nij,nkj->nki", Ry, X - pel)  # pelvis above the origin, floor at y = 0

    out_K = np.zeros((N, 3, 3)); out_R = np.zeros((N, 3, 3)); out_C = np.zeros((N, 3))
    out_wh = np.zeros((N, 2)); done = np.zeros(N, bool)
    for _ in range(200):
        todo = np.flatnonzero(~done)
        if len(todo) == 0:
            break
        n = len(todo)
        wh = np.array(IMAGE_SIZES)[rng.choice(len(IMAGE_SIZES), n, p=IMAGE_SIZE_P)].astype(float)
        f = np.exp(rng.uniform(*np.log(cfg.focal_px), n))
        K = np.zeros((n, 3, 3)); K[:, 0, 0] = f; K[:, 1, 1] = f; K[:, 2, 2] = 1
        K[:, 0, 2] = (wh[:, 0] - 1) / 2 + rng.normal(0, 0.01, n) * wh[:, 0]
        K[:, 1, 2] = (wh[:, 1] - 1) / 2 + rng.normal(0, 0.01, n) * wh[:, 1]
        pitch = rng.uniform(*cfg.pitch_deg, n)
        roll = np.clip(rng.normal(0, cfg.roll_std_deg, n), -cfg.roll_max_deg, cfg.roll_max_deg)
        R_wc = _world_to_cam_rotation(pitch, roll)
        # pelvis pixel -> ray in world; camera centre = pelvis - s * ray at the sampled horizontal distance
        uv = rng.uniform(cfg.pelvis_margin, 1 - cfg.pelvis_margin, (n, 2)) * wh
        ray_c = np.stack([(uv[:, 0] - K[:, 0, 2]) / f, (uv[:, 1] - K[:, 1, 2]) / f, np.ones(n)], -1)
        ray_w = np.einsum("nji,nj->ni", R_wc, ray_c)
        dist = rng.uniform(*cfg.distance_m, n) * 1000.0
        s_ = dist / np.linalg.norm(ray_w[:, [0, 2]], axis=-1)
        P = X[todo, ROOT]
        C = P - s_[:, None] * ray_w
        ok = (C[:, 1] >= cfg.height_m[0] * 1000) & (C[:, 1] <= cfg.height_m[1] * 1000)
        Xc = np.einsum("nij,nkj->nki", R_wc, X[todo] - C[:, None])
        ok &= (Xc[..., 2] > 200).all(-1)
        uvj = Xc[..., :2] / Xc[..., 2:3] * f[:, None, None] + K[:, None, :2, 2]
        inside = ((uvj >= 0) & (uvj <= wh[:, None] - 1)).all(-1).sum(-1)
        ok &= inside >= cfg.min_joints_in_image
        idx = todo[ok]
        out_K[idx], out_R[idx], out_C[idx], out_wh[idx] = K[ok], R_wc[ok], C[ok], wh[ok]
        done[idx] = True
    if not done.all():
        raise RuntimeError(f"could not place a camera for {np.sum(~done)} poses")
    Xc = np.einsum("nij,nkj->nki", out_R, X - out_C[:, None])
    uv = Xc[..., :2] / Xc[..., 2:3] * out_K[:, None, [0, 1], [0, 1]] + out_K[:, None, :2, 2]
    R_in = out_R @ Ry                                            # cam = R_wc (Ry (X - pel) - C)
    t_in = -np.einsum("nij,nj->ni", out_R, np.einsum("nij,nj->ni", Ry, pel[:, 0]) + out_C)
    return Views(Xc.astype(np.float32), uv.astype(np.float32), out_K.astype(np.float32),
                 out_wh.astype(np.float32), out_R.astype(np.float32), out_C.astype(np.float32),
                 m, R_in, t_in)
