"""Intrinsics typed in by hand: focal length in pixels, a field of view, a 35 mm-equivalent, or a preset.

Presets carry their source because spec-sheet numbers are approximate: a webcam's
quoted diagonal FOV is usually within a few degrees, and a phone's 35 mm-equivalent
refers to its 4:3 *photo* frame, while video is a 16:9 crop of it that keeps the
sensor's full long side (plus up to ~10 % more crop when electronic stabilisation is
on). So a phone preset is converted along the long side of the 4:3 frame, not along
the video's diagonal, and is good to about +-10 %. Checkerboard calibration is
better when accuracy matters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from engines.camera import FULL_FRAME_DIAGONAL_MM, CameraIntrinsics, InvalidIntrinsicsError
from mocap_app.calibration.profile import CameraProfile, ProfileError

FOV_AXES = ("horizontal", "vertical", "diagonal")


@dataclass(frozen=True)
class Preset:
    """A camera whose field of view is known from its maker's spec sheet."""
    key: str
    label: str
    kind: str                 # "fov_diag": diagonal FOV of a frame of `aspect`; "f35": 35 mm-equivalent of a 4:3 frame
    value: float
    aspect: tuple[int, int]   # native frame aspect the number refers to (long side first)
    source: str

    def long_side_fov_deg(self) -> float:
        """Field of view across the long side of the sensor frame (the side video keeps)."""
        a, b = self.aspect
        if self.kind == "fov_diag":
            t = math.tan(math.radians(self.value) / 2) * a / math.hypot(a, b)
        else:  # 35 mm-eq matched on the diagonal of the a:b frame; long side = diag * a / hypot(a, b)
            long_mm = FULL_FRAME_DIAGONAL_MM * a / math.hypot(a, b)
            t = long_mm / 2 / self.value
        return math.degrees(2 * math.atan(t))

    def intrinsics(self, width_px: int, height_px: int) -> CameraIntrinsics:
        """Intrinsics for a landscape or portrait video of this size (the long side keeps the full FOV)."""
        long_px = max(width_px, height_px)
        f = long_px / 2 / math.tan(math.radians(self.long_side_fov_deg()) / 2)
        return CameraIntrinsics.from_focal(f, width_px, height_px)


PRESETS: tuple[Preset, ...] = (
    Preset("logitech-c920", "Logitech C920 / C922 (78 deg diagonal)", "fov_diag", 78.0, (16, 9),
           "Logitech C920 HD Pro spec sheet: diagonal FOV 78 deg (70.4 x 43.3 deg)"),
    Preset("logitech-c270", "Logitech C270 (55 deg diagonal)", "fov_diag", 55.0, (16, 9),
           "Logitech C270 spec sheet: diagonal FOV 55 deg"),
    Preset("logitech-brio-90", "Logitech Brio, widest setting (90 deg diagonal)", "fov_diag", 90.0, (16, 9),
           "Logitech Brio spec sheet: diagonal FOV 65/78/90 deg selectable"),
    Preset("ms-lifecam-hd3000", "Microsoft LifeCam HD-3000 (68.5 deg diagonal)", "fov_diag", 68.5, (16, 9),
           "Microsoft LifeCam HD-3000 spec: 68.5 deg diagonal FOV"),
    Preset("laptop-webcam", "Typical laptop webcam (~75 deg diagonal)", "fov_diag", 75.0, (16, 9),
           "assumption: laptop webcams are commonly specified at 70-80 deg diagonal; check your model"),
    Preset("iphone-main", "iPhone main (wide) camera, 26 mm-eq", "f35", 26.0, (4, 3),
           "Apple tech specs (iPhone 11-15): main camera 26 mm equivalent; 24 mm on 15 Pro/16 Pro"),
    Preset("iphone-ultrawide", "iPhone ultra wide, 13 mm-eq", "f35", 13.0, (4, 3),
           "Apple tech specs: ultra wide 13 mm equivalent (120 deg); lens distortion is strong, "
           "calibrate if you can"),
    Preset("iphone-tele-3x", "iPhone 3x telephoto, 77 mm-eq", "f35", 77.0, (4, 3),
           "Apple tech specs (iPhone 13 Pro-15 Pro): telephoto 77 mm equivalent"),
    Preset("android-main", "Android flagship main camera, ~24 mm-eq", "f35", 24.0, (4, 3),
           "Samsung Galaxy S21-S24 / Pixel 6-8 main cameras are quoted at 23-26 mm equivalent"),
)
PRESETS_BY_KEY = {p.key: p for p in PRESETS}


def intrinsics_from_manual(width_px: int, height_px: int, *, focal_px: float | None = None,
                           fov_deg: float | None = None, fov_axis: str = "horizontal",
                           focal_35mm: float | None = None, preset: str | None = None
                           ) -> tuple[CameraIntrinsics, str]:
    """Intrinsics from exactly one of focal (px), FOV, 35 mm-equivalent or preset key, and a source label."""
    given = [k for k, v in (("focal_px", focal_px), ("fov_deg", fov_deg), ("focal_35mm", focal_35mm),
                            ("preset", preset)) if v is not None]
    if len(given) != 1:
        raise ProfileError("give exactly one of: focal length in px, field of view, 35 mm-equivalent focal "
                           f"length, or a preset (got {', '.join(given) or 'none'})")
    if width_px is None or height_px is None or int(width_px) <= 0 or int(height_px) <= 0:
        raise ProfileError(f"image size {width_px}x{height_px} must be two positive integers")
    w, h = int(width_px), int(height_px)
    try:
        if focal_px is not None:
            return CameraIntrinsics.from_focal(float(focal_px), w, h), f"manual focal {float(focal_px):.1f} px"
        if fov_deg is not None:
            if fov_axis not in FOV_AXES:
                raise ProfileError(f"FOV axis must be one of {', '.join(FOV_AXES)} (got {fov_axis!r})")
            return (CameraIntrinsics.from_fov(float(fov_deg), w, h, fov_axis),
                    f"manual {fov_axis} FOV {float(fov_deg):.1f} deg")
        if focal_35mm is not None:
            return (CameraIntrinsics.from_35mm(float(focal_35mm), w, h),
                    f"manual 35 mm-equivalent {float(focal_35mm):.1f} mm (matched on the video diagonal)")
        if preset not in PRESETS_BY_KEY:
            raise ProfileError(f"unknown preset {preset!r}; known: {', '.join(PRESETS_BY_KEY)}")
        p = PRESETS_BY_KEY[preset]
        return p.intrinsics(w, h), f"preset {p.label} [{p.source}]"
    except InvalidIntrinsicsError as e:
        raise ProfileError(str(e)) from None


def profile_from_manual(name: str, width_px: int, height_px: int, **kw) -> CameraProfile:
    intr, source = intrinsics_from_manual(width_px, height_px, **kw)
    return CameraProfile.from_intrinsics(name, intr, source)
