"""Synthetic camera views of CMU mocap, with known focal length, pitch, roll and height.

Used by the calibration / world-alignment tests and benchmarks: a mocap clip (BVH
world frame, Y up, floor at y = 0) is watched by a virtual pinhole camera, giving
camera-frame joints and their pixels with every true parameter known. The camera
is built here from explicit rotations (not with ``mocap_app.world``'s helpers) so
that a convention bug there cannot hide in its own test data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.camera import CameraIntrinsics, project
from engines.skeleton import J

MOCAP_DIR = Path("/work/shared/data/mocap/cmu")
VAL_SUBJECTS = ("06", "08", "90", "104")
TRAIN_SUBJECTS = ("01", "02", "03", "05", "07", "09", "105", "120", "124", "137", "144")


def subject_files(subjects=VAL_SUBJECTS, folder: Path = MOCAP_DIR) -> list[Path]:
    return sorted(p for p in Path(folder).glob("*.bvh") if p.stem.split("_")[0] in subjects)


def load_segment(path: Path, seconds: float = 4.0, fps: float = 30.0, start_s: float = 0.0,
                 detector_proportions: bool = False) -> np.ndarray:
    """``[T, 17, 3]`` mm in the BVH world frame (Y up), resampled from 120 to ``fps``.

    ``detector_proportions``: bones rescaled to the 2D detector's (``skeleton.DETECTOR_BONE_SCALE``), as the
    lifter is trained and evaluated, so that 2D made from these joints looks like MediaPipe's to the lifter
    (fed the CMU skeleton's 2D, its relative pose was about twice as wrong: notes/calibration.md). The legs get shorter,
    so the feet no longer touch y = 0: world-alignment clips keep the CMU skeleton.
    """
    from engines.bvh import load_joints17   # the lead's BVH reader
    step = max(1, int(round(120.0 / fps)))
    joints, _ = load_joints17(path, step=step)
    a = int(start_s * fps)
    joints = joints[a:a + int(seconds * fps)]
    if detector_proportions:
        from engines.skeleton import to_detector_proportions
        joints = to_detector_proportions(joints)
    return joints


def camera_rotation(yaw_deg: float, pitch_deg: float, roll_deg: float) -> np.ndarray:
    """``R_world_to_cam`` (OpenCV camera axes) for a camera in a Y-up world.

    Yaw turns the level viewing direction about world Y (0 = looking along world -Z),
    pitch > 0 looks up, roll > 0 turns the camera clockwise as seen from behind.
    """
    Y = np.array([0.0, 1.0, 0.0])
    a = math.radians(yaw_deg)
    f = np.array([-math.sin(a), 0.0, -math.cos(a)])        # level forward
    x0 = np.cross(-Y, f)                                   # right
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    z = math.cos(p) * f + math.sin(p) * Y
    y1 = -math.cos(p) * Y + math.sin(p) * f
    x = math.cos(r) * x0 + math.sin(r) * y1
    y = -math.sin(r) * x0 + math.cos(r) * y1
    return np.stack([x, y, z])                             # rows: camera axes in world coordinates


@dataclass
class SyntheticView:
    joints_cam_mm: np.ndarray       # [T, 17, 3]
    keypoints_px: np.ndarray        # [T, 17, 2]
    intrinsics: CameraIntrinsics
    R_world_to_cam: np.ndarray
    camera_center_mm: np.ndarray    # world (BVH) frame
    pitch_deg: float
    roll_deg: float
    camera_height_mm: float


def make_view(joints_world: np.ndarray, *, focal_px: float, size=(1280, 720), distance_mm: float = 4000.0,
              height_mm: float = 1300.0, pitch_deg: float = 0.0, roll_deg: float = 0.0,
              yaw_deg: float | None = None, aim: bool = False, rng: np.random.Generator | None = None
              ) -> SyntheticView:
    """Place a camera ``distance_mm`` (horizontally) from the clip's mean pelvis, at ``height_mm``.

    With ``aim`` the pitch is chosen so the person's mean pelvis is at the image centre
    (``pitch_deg`` then is ignored); the person stays in front of the camera either way.
    """
    rng = rng or np.random.default_rng(0)
    yaw = float(rng.uniform(-180, 180)) if yaw_deg is None else yaw_deg
    centre = joints_world[:, J["pelvis"]].mean(0)
    a = math.radians(yaw)
    f = np.array([-math.sin(a), 0.0, -math.cos(a)])
    C = np.array([centre[0], height_mm, centre[2]]) - distance_mm * f
    if aim:
        d = centre - C
        pitch_deg = math.degrees(math.atan2(d[1], math.hypot(d[0], d[2])))
    R = camera_rotation(yaw, pitch_deg, roll_deg)
    cam = (joints_world - C) @ R.T
    intr = CameraIntrinsics.from_focal(focal_px, *size)
    return SyntheticView(cam, project(cam, intr.K), intr, R, C, pitch_deg, roll_deg, height_mm)


def aimed_clip(joints_world: np.ndarray, focal_px: float, distance_mm: float, rng: np.random.Generator,
               size=(1280, 720), noise_px: float = 2.0) -> tuple[SyntheticView, np.ndarray, np.ndarray]:
    """The auto-focal protocol: a camera at a random yaw and 0.8-2 m high, aimed at the person's mean pelvis;
    while less than 70 % of the frames show the whole body, the camera moves back (x1.25, up to 6 m) and the clip
    is shortened. Returns the view, the frames kept and their 2D joints with ``noise_px`` Gaussian noise."""
    yaw = rng.uniform(-180, 180)
    height = rng.uniform(800, 2000)
    d, jw = distance_mm, joints_world
    for _ in range(8):
        v = make_view(jw, focal_px=focal_px, size=size, distance_mm=d, height_mm=height, aim=True, yaw_deg=yaw,
                      rng=rng)
        inside = ((v.keypoints_px >= 0) & (v.keypoints_px <= np.array(size))).all(-1).all(-1)
        if inside.mean() > 0.7:
            break
        d, jw = min(d * 1.25, 6000.0), jw[:int(len(jw) * 0.8)]
    kp = v.keypoints_px[inside] + rng.normal(0, noise_px, v.keypoints_px[inside].shape)
    return v, inside, kp


def autofocal_clips(seed: int, step: int = 1, detector_proportions: bool = False, size=(1280, 720),
                    subjects=VAL_SUBJECTS):
    """The auto-focal test clips: 4 s at 15 fps from 0.5 s into every ``step``-th file of ``subjects``, focal length
    log-uniform in 400-2500 px for a 1280 px long side (scaled with it for other sizes), the camera 2-6 m away
    (``aimed_clip``). Yields ``(name, focal_px, view, frames kept, 2D joints, rng)``: the generator's own rng, which
    a caller may draw from between clips (the test oracle's noise), as the test clips always have."""
    rng = np.random.default_rng(seed)
    k = max(size) / 1280.0
    for path in subject_files(subjects)[::step]:
        jw = load_segment(path, seconds=4, fps=15, start_s=0.5, detector_proportions=detector_proportions)
        if len(jw) < 40:
            continue
        f = float(np.exp(rng.uniform(np.log(400 * k), np.log(2500 * k))))
        d = rng.uniform(2000, 6000)
        v, inside, kp = aimed_clip(jw, f, d, rng, size)
        yield path.stem, f, v, inside, kp, rng


def lifter_like_noise(joints_cam_mm: np.ndarray, rng: np.random.Generator, joint_mm: float = 25.0,
                      depth_frac: float = 0.03, smooth: int = 9) -> np.ndarray:
    """Errors like a monocular lifter's: iid joint noise plus a slowly varying error of the whole body's
    depth along the viewing ray (a few % of the distance)."""
    T = len(joints_cam_mm)
    k = np.ones(smooth) / smooth
    e = np.convolve(rng.normal(0, 1, T + smooth), k, "same")[:T]
    e = e / (e.std() + 1e-9) * depth_frac
    root = joints_cam_mm[:, J["pelvis"]]
    shift = root * e[:, None]                      # move the body along its ray: depth scaled by (1 + e)
    return joints_cam_mm + shift[:, None, :] + rng.normal(0, joint_mm, joints_cam_mm.shape)


class OracleLifter:
    """A stand-in for the AbsPoseLifter built from the true camera-frame joints, with lifter-like errors.

    It follows the canonical-depth model exactly (root depth = f * canonical depth, relative pose
    independent of f) and adds errors of the size a trained lifter makes: ``rel_mm`` iid per joint
    on the relative pose, and a slowly varying relative error ``depth_frac`` of the canonical depth.
    It only answers for the keypoints it was built for (same array), in order, but at any resize of the frames
    (as ``autofocal.ClipLifts`` runs it): ``size`` is the image they were made for.
    """

    def __init__(self, joints_cam_mm: np.ndarray, focal_px: float, rng: np.random.Generator,
                 rel_mm: float = 30.0, depth_frac: float = 0.05, smooth: int = 9, size=(1280, 720)):
        self.cx0 = (size[0] - 1) / 2.0
        T = len(joints_cam_mm)
        root = joints_cam_mm[:, J["pelvis"]]
        k = np.ones(smooth) / smooth
        e = np.convolve(rng.normal(0, 1, T + smooth), k, "same")[:T]
        e = e / (e.std() + 1e-9) * depth_frac
        self.cdepth = root[:, 2] / focal_px * (1 + e)
        self.rel = joints_cam_mm - root[:, None] + rng.normal(0, rel_mm, joints_cam_mm.shape)
        self.rel[:, J["pelvis"]] = 0.0
        self._calls = 0

    def lift(self, keypoints_px, confidence, K):
        kp = np.asarray(keypoints_px, float)
        n = len(kp)
        sl = slice(0, n)            # autofocal lifts the whole clip, then probes a prefix
        K = np.asarray(K, float)
        f, c = K[0, 0], K[:2, 2]
        cd = self.cdepth[sl] / (c[0] / self.cx0)     # canonical depth per pixel of the resized frames
        root = np.concatenate([(kp[:, J["pelvis"]] - c) * cd[:, None], (f * cd)[:, None]], 1)
        return root[:, None] + self.rel[sl]
