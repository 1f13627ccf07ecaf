"""Build real Clips for the export tests from CMU mocap (world joints known exactly)."""
from __future__ import annotations

import numpy as np

from engines.camera import CameraIntrinsics
from mocap_app.clip import Clip

from .cmu import CMU_DIR, cmu_joints_mm


def clip_from_world(joints_world_mm: np.ndarray, times_s: np.ndarray, person: np.ndarray | None = None,
                    fps: float | None = None) -> Clip:
    """A Clip carrying world joints (camera joints: the inverse of the camera-axis fallback)."""
    n = len(joints_world_mm)
    person = np.ones(n, bool) if person is None else np.asarray(person, bool)
    world = np.array(joints_world_mm, float)
    world[~person] = np.nan
    cam = world * np.array([1.0, -1.0, -1.0]) + np.array([0.0, 900.0, 3500.0])
    intr = CameraIntrinsics(width_px=640, height_px=480, fx_px=600.0, fy_px=600.0, cx_px=320.0, cy_px=240.0)
    return Clip(timestamps_s=np.asarray(times_s, float), person=person,
                keypoints_px=np.full((n, 17, 2), np.nan), confidence=np.zeros((n, 17)),
                joints_cam_mm=cam, intrinsics=intr, source={"path": "cmu", "fps": fps or 0.0},
                world={"R_cam_to_world": np.diag([1.0, -1.0, -1.0]).tolist()}, joints_world_mm=world)


def cmu_clip(name: str = "08_01.bvh", stop: int | None = 241, step: int = 4) -> tuple[Clip, np.ndarray]:
    """CMU trial as a clip at 120/step fps (frame 0, the T-pose, dropped); returns (clip, joints_mm)."""
    j, ft = cmu_joints_mm(CMU_DIR / name, start=1, stop=stop)
    j = j[::step]
    t = np.arange(len(j)) * ft * step
    return clip_from_world(j, t, fps=1.0 / (ft * step)), j
