"""Small typed records that flow between the pipeline stages.

frames -> 2D keypoints -> 3D pose (camera) -> world pose -> viewer/recorder -> file
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engines.camera import CameraIntrinsics  # noqa: F401  (re-exported: one camera type everywhere)


@dataclass(frozen=True)
class Frame:
    """One decoded video frame (BGR, as OpenCV gives it)."""
    index: int
    timestamp_s: float
    image_bgr: np.ndarray

    @property
    def size_wh(self) -> tuple[int, int]:
        return self.image_bgr.shape[1], self.image_bgr.shape[0]


@dataclass(frozen=True)
class Keypoints2D:
    """17 joints (``engines.JOINT_NAMES``) in pixels, with confidences in [0, 1].

    ``xy_px`` is NaN and ``confidence`` 0 for every joint when no person was found.
    """
    xy_px: np.ndarray        # [17, 2] float32
    confidence: np.ndarray   # [17] float32
    left_right_fixed: bool = False   # the detector's left/right labels were mirrored back (LeftRightTracker)

    @property
    def person_found(self) -> bool:
        return bool(np.isfinite(self.xy_px).all())

    @classmethod
    def empty(cls) -> "Keypoints2D":
        from engines.skeleton import NUM_JOINTS
        return cls(np.full((NUM_JOINTS, 2), np.nan, np.float32), np.zeros(NUM_JOINTS, np.float32))


@dataclass(frozen=True)
class PoseCam:
    """Absolute 3D joints in the camera frame (OpenCV axes), millimetres."""
    joints_mm: np.ndarray    # [17, 3]


@dataclass(frozen=True)
class PoseWorld:
    """3D joints in the world frame: Y up, floor at y = 0, millimetres."""
    joints_mm: np.ndarray    # [17, 3]
