"""Where the camera stands, from one image of a calibration board lying flat on the floor.

The board's pose in the camera (``cv2.solvePnP``, IPPE for a planar target, on undistorted corners) gives the floor
plane: its normal ``n = R e_z`` is the world up direction in camera coordinates (the side the camera is on), so pitch
and roll follow as in ``mocap_app.world.pitch_roll_from_up``, and the lens height is the camera's distance to the
plane, ``|n . t|``, plus the board's thickness. What a bubble level and a tape measure give, to a fraction of a degree
and a centimetre, and what the person-based estimate gets 7-10 deg wrong on the treadmill clip (notes/calibration.md).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engines.camera import CameraIntrinsics, undistort_px
from mocap_app.calibration.checkerboard import BoardNotFoundError, BoardSpec, detect_board
from mocap_app.calibration.profile import CalibrationError
from mocap_app.world import CameraPlacement, pitch_roll_from_up

GRAZING_DEG = 75.0     # beyond this angle between the line of sight and the floor normal the board is too foreshortened
MAX_RMS_PX = 2.0       # a worse fit means a wrong camera model or a board that is not flat


@dataclass(frozen=True)
class FloorBoardResult:
    placement: CameraPlacement
    rms_px: float                 # reprojection error of the board's corners
    distance_m: float             # lens to the board's centre
    view_angle_deg: float         # line of sight to the board against the floor normal (0 = looking straight down)
    warnings: tuple[str, ...] = ()


def placement_from_floor_board(image: np.ndarray, spec: BoardSpec, intrinsics: CameraIntrinsics,
                               board_thickness_mm: float = 0.0) -> FloorBoardResult:
    """Pitch, roll and lens height of the camera that took ``image`` of ``spec`` lying on the floor.

    ``intrinsics`` must be the camera's at the image's size (a guessed focal length gives a wrong tilt and height).
    Raises ``BoardNotFoundError`` when the board is not in the image, ``CalibrationError`` for a camera model of
    another size or a board seen edge-on.
    """
    import cv2

    h, w = image.shape[:2]
    if (w, h) != (intrinsics.width_px, intrinsics.height_px):
        raise CalibrationError(f"the camera model is for {intrinsics.width_px}x{intrinsics.height_px} but the image "
                               f"is {w}x{h}")
    if not (0.0 <= board_thickness_mm < 200.0):
        raise CalibrationError(f"board thickness {board_thickness_mm} mm must be between 0 and 200 mm")
    found = detect_board(image, spec)
    if found is None:
        raise BoardNotFoundError(f"the {spec.kind} ({spec.cols}x{spec.rows}) was not found in the image: the whole "
                                 "board must be in view, lit evenly, and not too small")
    corners, obj = found
    px = undistort_px(corners.reshape(-1, 2).astype(np.float64), intrinsics)     # the pinhole camera's pixels
    K = intrinsics.K
    ok, rvec, tvec = cv2.solvePnP(obj.astype(np.float64), px, K, None, flags=cv2.SOLVEPNP_IPPE)
    if not ok:
        raise CalibrationError("the board's pose could not be solved from its corners")
    rvec, tvec = cv2.solvePnPRefineLM(obj.astype(np.float64), px, K, None, rvec, tvec)
    proj, _ = cv2.projectPoints(obj.astype(np.float64), rvec, tvec, K, None)
    rms = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - px) ** 2, axis=-1))))
    R = cv2.Rodrigues(rvec)[0]
    t = tvec.reshape(3) / 1000.0                                    # board origin in the camera, metres
    n = R[:, 2]
    up = n if float(n @ t) < 0 else -n                              # the floor's normal on the camera's side
    centre = R @ (obj.mean(0) / 1000.0) + t
    height = abs(float(n @ t)) + board_thickness_mm / 1000.0
    view = math.degrees(math.acos(min(1.0, abs(float(up @ centre)) / np.linalg.norm(centre))))
    if view > GRAZING_DEG:
        raise CalibrationError(f"the board is seen too flat ({view:.0f} deg from straight down; at most "
                               f"{GRAZING_DEG:.0f}): lay it nearer the camera, or use a larger board")
    pitch, roll = pitch_roll_from_up(up)
    warnings = []
    if rms > MAX_RMS_PX:
        warnings.append(f"the board's corners fit the camera model poorly ({rms:.1f} px): check the camera's "
                        "calibration and that the board lies flat")
    return FloorBoardResult(CameraPlacement(pitch, roll, height), rms, float(np.linalg.norm(centre)), view,
                            tuple(warnings))
