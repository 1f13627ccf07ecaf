"""Pinhole camera model (OpenCV convention: X right, Y down, Z forward; millimetres), and lens distortion removed.

Intrinsics ``K = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]``. A camera-frame point
``P = (X, Y, Z)`` projects to ``p = (fx X / Z + cx, fy Y / Z + cy)``, and a pixel
back-projects to the ray ``r = K^-1 (u, v, 1)^T``; ``P = Z r``.

Focal length from a field of view: ``f = (w / 2) / tan(fov_h / 2)``; from a 35 mm
equivalent focal length ``f_35`` (full-frame sensor, 36 x 24 mm, diagonal 43.27 mm):
``f_px = f_35 * diag_px / 43.27``.

Lens distortion (OpenCV's model, ``dist_coeffs = (k1, k2, p1, p2[, k3[, k4, k5, k6[, s1..s4]]])``) maps the ray's
normalised point ``x = (X/Z, Y/Z)`` to ``x_d = x (1 + k1 r^2 + k2 r^4 + k3 r^6) / (1 + k4 r^2 + ...) + tangential``
and the pixel is ``K x_d``. Action cameras (GoPro and the like, 120-170 deg) need OpenCV's fisheye model instead
(``lens_model="fisheye"``, ``dist_coeffs = (k1, k2, k3, k4)``): the ray at angle ``theta`` from the axis lands at radius
``theta_d = theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 + k4 theta^8)`` in normalised units. Every engine assumes a
pinhole camera, so keypoints (and PersPose's frames) go through ``undistort_px`` / ``undistort_image`` first: the pixel
where the same ray meets the pinhole image of the same ``K``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
MIN_FOCAL_PX = 50.0       # below this a "camera" would see > 170 deg across a 1080p frame
MAX_FOCAL_PX = 50000.0


class InvalidIntrinsicsError(ValueError):
    """Focal length or principal point that no real camera has."""


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of one camera at one image size."""
    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    dist_coeffs: tuple[float, ...] = field(default=())
    lens_model: str = "standard"       # OpenCV's calibrateCamera model, or "fisheye" (cv2.fisheye, k1..k4)

    def __post_init__(self):
        for name in ("fx_px", "fy_px"):
            f = getattr(self, name)
            if not (isinstance(f, (int, float, np.floating)) and math.isfinite(f)) or f <= 0:
                raise InvalidIntrinsicsError(f"focal length {name}={f!r} must be a positive number of pixels")
            if not MIN_FOCAL_PX <= f <= MAX_FOCAL_PX:
                raise InvalidIntrinsicsError(
                    f"focal length {name}={f:.1f} px is outside the plausible range "
                    f"[{MIN_FOCAL_PX:.0f}, {MAX_FOCAL_PX:.0f}] px")
        if self.width_px <= 0 or self.height_px <= 0:
            raise InvalidIntrinsicsError(f"image size {self.width_px}x{self.height_px} must be positive")
        if self.lens_model not in LENS_MODELS:
            raise InvalidIntrinsicsError(f"lens model {self.lens_model!r} must be one of {', '.join(LENS_MODELS)}")
        if self.lens_model == "fisheye" and len(self.dist_coeffs) != 4:
            raise InvalidIntrinsicsError(f"a fisheye lens has 4 distortion coefficients (k1 k2 k3 k4), not "
                                         f"{len(self.dist_coeffs)}")
        if len(self.dist_coeffs) > OPENCV_DIST_SIZES[-1]:
            raise InvalidIntrinsicsError(f"{len(self.dist_coeffs)} distortion coefficients: OpenCV's model "
                                         f"(k1 k2 p1 p2 k3 k4 k5 k6 s1 s2 s3 s4 tx ty) has at most 14")

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def from_focal(cls, focal_px: float, width_px: int, height_px: int, **kw) -> "CameraIntrinsics":
        """Square pixels, principal point at the image centre."""
        return cls(int(width_px), int(height_px), float(focal_px), float(focal_px),
                   (width_px - 1) / 2.0, (height_px - 1) / 2.0, **kw)

    @classmethod
    def from_fov(cls, fov_deg: float, width_px: int, height_px: int, axis: str = "horizontal") -> "CameraIntrinsics":
        """From a field of view across ``axis`` ('horizontal', 'vertical' or 'diagonal')."""
        if not (0.0 < fov_deg < 180.0):
            raise InvalidIntrinsicsError(f"field of view {fov_deg!r} deg must be in (0, 180)")
        extent = {"horizontal": width_px, "vertical": height_px,
                  "diagonal": math.hypot(width_px, height_px)}[axis]
        return cls.from_focal(extent / 2.0 / math.tan(math.radians(fov_deg) / 2.0), width_px, height_px)

    @classmethod
    def from_35mm(cls, focal_35mm: float, width_px: int, height_px: int) -> "CameraIntrinsics":
        """From a 35 mm-equivalent focal length (matched on the diagonal, as phone makers quote it)."""
        if not focal_35mm > 0:
            raise InvalidIntrinsicsError(f"35 mm-equivalent focal length {focal_35mm!r} must be positive")
        diag = math.hypot(width_px, height_px)
        return cls.from_focal(focal_35mm * diag / FULL_FRAME_DIAGONAL_MM, width_px, height_px)

    @classmethod
    def from_matrix(cls, K, width_px: int, height_px: int, dist_coeffs=(), lens_model: str = "standard"
                    ) -> "CameraIntrinsics":
        K = np.asarray(K, dtype=float)
        return cls(int(width_px), int(height_px), float(K[0, 0]), float(K[1, 1]),
                   float(K[0, 2]), float(K[1, 2]), tuple(float(d) for d in dist_coeffs), lens_model)

    # -- derived --------------------------------------------------------------------
    @property
    def has_distortion(self) -> bool:
        # a fisheye lens with all k = 0 is still equidistant (r = f theta), not a pinhole (r = f tan theta)
        return self.lens_model == "fisheye" or any(d != 0.0 for d in self.dist_coeffs)

    @property
    def pinhole(self) -> "CameraIntrinsics":
        """The same ``K`` without lens distortion: the camera of ``undistort_px``'s pixels."""
        return CameraIntrinsics(self.width_px, self.height_px, self.fx_px, self.fy_px, self.cx_px, self.cy_px)

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx_px, 0.0, self.cx_px], [0.0, self.fy_px, self.cy_px], [0.0, 0.0, 1.0]])

    @property
    def fov_deg(self) -> tuple[float, float]:
        """(horizontal, vertical) field of view in degrees."""
        return (math.degrees(2 * math.atan(self.width_px / 2 / self.fx_px)),
                math.degrees(2 * math.atan(self.height_px / 2 / self.fy_px)))

    def to_dict(self) -> dict:
        d = {"width_px": self.width_px, "height_px": self.height_px, "fx_px": self.fx_px,
             "fy_px": self.fy_px, "cx_px": self.cx_px, "cy_px": self.cy_px,
             "dist_coeffs": list(self.dist_coeffs)}
        if self.lens_model != "standard":       # older readers see the usual keys
            d["lens_model"] = self.lens_model
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "CameraIntrinsics":
        return cls(int(d["width_px"]), int(d["height_px"]), float(d["fx_px"]), float(d["fy_px"]),
                   float(d["cx_px"]), float(d["cy_px"]), tuple(d.get("dist_coeffs", ())),
                   str(d.get("lens_model", "standard")))


def project(points_cam: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels ``[..., J, 2]`` of camera-frame points ``[..., J, 3]``: ``p ~ K P`` (no distortion).

    ``K`` is ``[3, 3]`` or batched ``[..., 3, 3]`` matching the points' leading dims.
    """
    ph = np.matmul(points_cam, np.swapaxes(np.asarray(K), -1, -2))
    return ph[..., :2] / ph[..., 2:3]


def rays(pixels: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Rays ``r = K^-1 (u, v, 1)^T`` (unit depth) for pixels ``[..., J, 2]`` -> ``[..., J, 3]``."""
    ph = np.concatenate([pixels, np.ones(pixels.shape[:-1] + (1,))], axis=-1)
    return np.matmul(ph, np.swapaxes(np.linalg.inv(np.asarray(K, dtype=float)), -1, -2))


def back_project(pixels: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points ``Z r`` at depth ``Z`` (``[..., J]``) on the rays of ``pixels``."""
    return rays(pixels, K) * np.asarray(depth)[..., None]


def crop_intrinsics(K: np.ndarray, box_xywh, out_size: tuple[int, int]) -> np.ndarray:
    """Intrinsics of a crop resized to ``out_size`` (PersPose Eq. 3-4): ``K_crop = A K``.

    ``A = [[s_x, 0, -s_x x0], [0, s_y, -s_y y0], [0, 0, 1]]`` with ``s = out / box``
    maps original pixels into the resized crop whose top-left corner is ``(x0, y0)``.
    """
    x0, y0, w, h = box_xywh
    sx, sy = out_size[0] / w, out_size[1] / h
    A = np.array([[sx, 0.0, -sx * x0], [0.0, sy, -sy * y0], [0.0, 0.0, 1.0]])
    return A @ np.asarray(K, dtype=float)


OPENCV_DIST_SIZES = (4, 5, 8, 12, 14)
LENS_MODELS = ("standard", "fisheye")
FISHEYE_MAX_DEG = 85.0      # beyond this off-axis angle a pinhole pixel is too far out to mean anything


def fisheye_theta_d(theta, dist):
    """OpenCV's fisheye model: the normalised image radius ``theta (1 + k1 theta^2 + k2 theta^4 + k3 theta^6 +
    k4 theta^8)`` of a ray ``theta`` radians off the axis."""
    t2 = np.square(theta)
    k1, k2, k3, k4 = dist
    return theta * (1 + t2 * (k1 + t2 * (k2 + t2 * (k3 + t2 * k4))))


def opencv_dist_coeffs(dist) -> np.ndarray:
    """``dist`` padded with zeros to a length OpenCV takes (4, 5, 8, 12 or 14): a profile may give just k1, k2."""
    d = np.asarray(dist, float).ravel()
    n = next((k for k in OPENCV_DIST_SIZES if k >= len(d)), None)
    if n is None:
        raise InvalidIntrinsicsError(f"{len(d)} distortion coefficients: OpenCV's model has at most 14")
    return np.concatenate([d, np.zeros(n - len(d))])


def undistort_px(pixels: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """Pinhole pixels ``[..., 2]`` of the distorted image pixels ``pixels`` of camera ``intr``: ``K x`` where
    ``distort(x) = K^-1 p`` (solved iteratively by OpenCV to 1e-9). NaN stays NaN; without distortion the input
    is returned as it is."""
    import cv2

    p = np.asarray(pixels)
    if not intr.has_distortion:
        return p
    flat = p.reshape(-1, 2).astype(np.float64)
    out = np.full_like(flat, np.nan)
    ok = np.isfinite(flat).all(-1)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-9)   # OpenCV's 5 steps: 0.2 px off (wide)
    if intr.lens_model == "fisheye":
        D = np.asarray(intr.dist_coeffs, float)
        # a ray FISHEYE_MAX_DEG or more off the axis has no usable pinhole pixel (at 90 deg none at all): such points
        # become NaN (no person), not garbage
        theta_d_max = fisheye_theta_d(math.radians(FISHEYE_MAX_DEG), D)
        xd = (flat - [intr.cx_px, intr.cy_px]) / [intr.fx_px, intr.fy_px]
        ok &= np.linalg.norm(np.nan_to_num(xd), axis=-1) < theta_d_max
        if ok.any():
            out[ok] = cv2.fisheye.undistortPoints(flat[ok].reshape(-1, 1, 2), intr.K, D, R=np.eye(3), P=intr.K,
                                                  criteria=crit).reshape(-1, 2)
    elif ok.any():
        args = (flat[ok].reshape(-1, 1, 2), intr.K, opencv_dist_coeffs(intr.dist_coeffs))
        if hasattr(cv2, "undistortPointsIter"):                                # OpenCV 4
            und = cv2.undistortPointsIter(*args, None, intr.K, crit)
        else:                                                                  # OpenCV 5 merged it
            und = cv2.undistortPoints(*args, R=None, P=intr.K, criteria=crit)
        out[ok] = und.reshape(-1, 2)
    return out.reshape(p.shape).astype(p.dtype if np.issubdtype(p.dtype, np.floating) else np.float64)


def distortion_shift_px(intr: CameraIntrinsics) -> float:
    """How far the lens moves a point on the image border at most (px; 0 without distortion): what ignoring the
    distortion would cost there."""
    if not intr.has_distortion:
        return 0.0
    w, h = intr.width_px - 1, intr.height_px - 1
    t = np.linspace(0.0, 1.0, 65)
    z = 0 * t
    border = np.concatenate([np.c_[t * w, z], np.c_[t * w, z + h], np.c_[z, t * h], np.c_[z + w, t * h]])
    shift = np.linalg.norm(undistort_px(border, intr) - border, axis=-1)
    return float(np.nanmax(shift))


@lru_cache(maxsize=4)
def _undistort_maps(intr: CameraIntrinsics):
    import cv2
    size = (intr.width_px, intr.height_px)
    if intr.lens_model == "fisheye":
        return cv2.fisheye.initUndistortRectifyMap(intr.K, np.asarray(intr.dist_coeffs, float), np.eye(3), intr.K,
                                                   size, cv2.CV_16SC2)
    return cv2.initUndistortRectifyMap(intr.K, opencv_dist_coeffs(intr.dist_coeffs), None, intr.K, size,
                                       cv2.CV_16SC2)


def undistort_image(image: np.ndarray, intr: CameraIntrinsics) -> np.ndarray:
    """The pinhole image of ``K`` (same size) seen through the lens of ``intr`` (``cv2.remap``, the maps built once
    per camera). Without distortion the input itself."""
    import cv2

    if not intr.has_distortion:
        return image
    m1, m2 = _undistort_maps(intr)
    return cv2.remap(image, m1, m2, cv2.INTER_LINEAR)
