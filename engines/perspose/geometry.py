"""Perspective Rotation (PR, Sec. 4.2, Eq. 12-17) and Perspective Encoding (PE, Sec. 4.1, Eq. 7-9).

Conventions: OpenCV camera axes (X right, Y down, Z forward), pixels with (0, 0) at the
centre of the top-left pixel, millimetres. A crop of ``size x size`` pixels whose
centre is at pixel ``(c_u, c_v)`` of the (possibly rotated) image and spans ``box_px``
pixels there has ``K_crop = A K`` (Eq. 3-4, ``engines.camera.crop_intrinsics``).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.spatial.transform import Rotation

from engines.camera import crop_intrinsics


class PerspectiveError(ValueError):
    """A box or intrinsics that PR / cropping cannot use (degenerate, non-finite)."""


def pr_rotation(K: np.ndarray, center_px) -> np.ndarray:
    """Rotation ``R`` (3x3) taking the ray through ``center_px`` onto the optical axis (Eq. 12-15).

    ``x_c = K^-1 (u_c, v_c, 1)`` (Eq. 12); axis ``n = x_c x (0, 0, d) / |.|`` (Eq. 13), angle
    ``phi = arccos(x_c . z / |x_c|)`` (Eq. 14), ``R = Rodrigues(n, phi)`` (Eq. 15). A centre
    already on the axis gives the identity.
    """
    K = np.asarray(K, dtype=np.float64)
    c = np.asarray(center_px, dtype=np.float64).reshape(2)
    if not (np.isfinite(K).all() and np.isfinite(c).all()):
        raise PerspectiveError(f"PR needs finite intrinsics and box centre, got centre {c}")
    xc = np.linalg.solve(K, np.array([c[0], c[1], 1.0]))            # Eq. 12
    d = np.linalg.norm(xc)
    axis = np.cross(xc, np.array([0.0, 0.0, d]))                      # Eq. 13 (unnormalised)
    s = np.linalg.norm(axis)
    if s < 1e-12:
        return np.eye(3)
    phi = np.arccos(np.clip(xc[2] / d, -1.0, 1.0))                    # Eq. 14
    return Rotation.from_rotvec(axis / s * phi).as_matrix()          # Eq. 15 (Rodrigues)


def pr_homography(K: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Warp ``M = K R K^-1`` (Eq. 17) taking pixels of the original image to the centred image."""
    K = np.asarray(K, dtype=np.float64)
    return K @ R @ np.linalg.inv(K)


def pe_map(K_crop: np.ndarray, size: int, stride: int = 1) -> np.ndarray:
    """PE map ``M^xy`` ``[2, size/stride, size/stride]`` (Eq. 7-9): each crop pixel's ray on z = 1.

    With ``stride > 1`` the map is sampled at the centres of ``stride x stride`` cells, i.e. the
    map of the same frustum at the feature resolution where it is fused (Fig. 4).
    """
    n = size // stride
    g = (np.arange(n, dtype=np.float64) + 0.5) * stride - 0.5        # cell centres in crop pixels
    Kc = np.asarray(K_crop, dtype=np.float64)
    x = (g - Kc[0, 2]) / Kc[0, 0]
    y = (g - Kc[1, 2]) / Kc[1, 1]
    return np.stack(np.broadcast_arrays(x[None, :], y[:, None])).astype(np.float32)


@dataclass(frozen=True)
class CropGeometry:
    """How a network crop relates to the original camera.

    ``R``: rotation applied to the camera frame (identity without PR); ``K_crop``: intrinsics of
    the crop in the rotated frame; ``M``: 3x3 map from original-image pixels to crop pixels.
    Joints predicted in the crop frame go back with ``R^T`` (Eq. 6).
    """
    R: np.ndarray
    K_crop: np.ndarray
    M: np.ndarray
    size: int

    def to_original(self, joints_rot_mm: np.ndarray) -> np.ndarray:
        """``P = R^T P'`` (Eq. 6) for ``[..., 3]`` points."""
        return np.asarray(joints_rot_mm) @ self.R     # row vectors: (R^T p)^T = p^T R

    def to_crop_frame(self, joints_cam_mm: np.ndarray) -> np.ndarray:
        """``P' = R P`` (Eq. 16)."""
        return np.asarray(joints_cam_mm) @ self.R.T

    def source_px_per_crop_px(self) -> float:
        """Linear scale of the crop -> image map at the crop centre: ``sqrt|det J|`` of ``M^-1``'s Jacobian.

        For a homography ``H`` at ``x = (c, c, 1)`` with ``w = h_3 . x``:
        ``J = (w H_{1:2,1:2} - (H_{1:2} x) h_{3,1:2}^T) / w^2``.
        """
        H = np.linalg.inv(self.M)
        c = (self.size - 1) / 2.0
        x = np.array([c, c, 1.0])
        w = H[2] @ x
        J = (H[:2, :2] * w - np.outer(H[:2] @ x, H[2, :2])) / w ** 2
        return float(np.sqrt(abs(np.linalg.det(J))))

    def warp(self, image: np.ndarray, border_value=(0, 0, 0)) -> np.ndarray:
        """The network crop of ``image``: area-average the person's region down first, then one ``cv2.warpPerspective``.

        A person box of ~800 px going into a 64 px crop samples one source pixel in ~12 with
        bilinear interpolation alone: the crop aliases, while the training renders are drawn
        anti-aliased at crop size. So when 2.4 or more source pixels fall on a crop pixel, the
        region the crop sees is cut out and shrunk by an integer factor ``f`` with ``INTER_AREA``
        (a box filter; integer factors take OpenCV's fast path) to ~1.2-2.4 px per crop px, and
        ``M`` is composed with that cut and resize (pixel centres: ``x = x0 + f x' + (f - 1) / 2``).
        """
        M = self.M
        f = int(self.source_px_per_crop_px() / 1.2)
        if f >= 2:
            h, w = image.shape[:2]
            n = self.size - 1
            corners = apply_homography(np.linalg.inv(M), np.array([[0, 0], [n, 0], [0, n], [n, n]], float))
            x0, y0 = np.clip(np.floor(corners.min(0)).astype(int) - f, 0, [w, h])
            x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int) + f, 0, [w, h])
            x1, y1 = x0 + (x1 - x0) // f * f, y0 + (y1 - y0) // f * f          # whole blocks of f x f
            if x1 > x0 and y1 > y0:
                image = cv2.resize(image[y0:y1, x0:x1], ((x1 - x0) // f, (y1 - y0) // f), interpolation=cv2.INTER_AREA)
                M = M @ np.array([[f, 0.0, x0 + 0.5 * (f - 1)], [0.0, f, y0 + 0.5 * (f - 1)], [0.0, 0.0, 1.0]])
        return cv2.warpPerspective(image, M, (self.size, self.size), flags=cv2.INTER_LINEAR,
                                   borderMode=cv2.BORDER_CONSTANT, borderValue=border_value)


def box_from_keypoints(kp_px: np.ndarray, scale: float = 1.25) -> tuple[np.ndarray, float]:
    """Square person box ``(centre [2], side px)`` around 2D keypoints ``[J, 2]`` (NaNs ignored)."""
    kp = np.asarray(kp_px, dtype=np.float64).reshape(-1, 2)
    kp = kp[np.isfinite(kp).all(-1)]
    if len(kp) < 2:
        raise PerspectiveError("need at least two finite keypoints to place a person box")
    lo, hi = kp.min(0), kp.max(0)
    side = float(max(hi - lo) * scale)
    if side <= 1.0:
        raise PerspectiveError(f"person box of {side:.1f} px is too small to crop")
    return (lo + hi) / 2.0, side


def crop_geometry(K: np.ndarray, center_px, side_px: float, size: int, rotate: bool) -> CropGeometry:
    """Crop of ``size`` px around a person box whose centre in the original image is ``center_px``.

    Without PR: an axis-aligned crop of ``side_px`` around ``center_px`` (``K_crop = A K``).
    With PR: rotate the camera so the box centre is on the optical axis (Eq. 15) and crop the
    ``side_px`` square (measured in the rotated image) centred on the principal point, so every
    crop has its principal point at the crop centre and ``f_crop = f * size / side`` (Eq. 11).
    """
    K = np.asarray(K, dtype=np.float64)
    c = np.asarray(center_px, dtype=np.float64).reshape(2)
    if not (np.isfinite(side_px) and side_px > 1.0):
        raise PerspectiveError(f"crop side {side_px!r} px must be a finite number > 1")
    if rotate:
        R = pr_rotation(K, c)
        H = pr_homography(K, R)
        cu, cv = K[0, 2], K[1, 2]
    else:
        R, H = np.eye(3), np.eye(3)
        cu, cv = c
    s = size / side_px
    x0, y0 = cu - (size - 1) / 2.0 / s, cv - (size - 1) / 2.0 / s   # (cu, cv) -> crop centre
    K_crop = crop_intrinsics(K, (x0, y0, side_px, side_px), (size, size))
    return CropGeometry(R=R, K_crop=K_crop, M=K_crop @ np.linalg.inv(K) @ H, size=size)


def apply_homography(H: np.ndarray, pts_px: np.ndarray) -> np.ndarray:
    """Pixels ``[..., 2]`` mapped by a 3x3 homography."""
    p = np.asarray(pts_px, dtype=np.float64)
    ph = np.concatenate([p, np.ones(p.shape[:-1] + (1,))], -1) @ np.asarray(H).T
    return ph[..., :2] / ph[..., 2:3]


def person_crop(K: np.ndarray, keypoints_px: np.ndarray, size: int, rotate: bool,
                scale: float = 1.25) -> CropGeometry:
    """Crop geometry for a person given by 2D keypoints ``[J, 2]`` in the original image.

    The box centre (Eq. 12's ``(u_c, v_c)``) is the keypoints' box centre; with PR the side is
    re-measured on the keypoints warped into the centred image, so the person fills the crop
    the same way with or without PR.
    """
    center, side = box_from_keypoints(keypoints_px, scale)
    if rotate:
        R = pr_rotation(K, center)
        kp = apply_homography(pr_homography(K, R), np.asarray(keypoints_px, np.float64).reshape(-1, 2))
        side = box_from_keypoints(kp, scale)[1]
    return crop_geometry(K, center, side, size, rotate)
