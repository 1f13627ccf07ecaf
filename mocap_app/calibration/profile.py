"""Per-camera calibration profiles: the numbers a user measured once, reused for every clip.

A profile is one small JSON file per camera (schema ``mocap-camera`` v1) in the
user's config folder (``$MOCAP_CAMERA_DIR``, else ``$XDG_CONFIG_HOME/mocap/cameras``,
else ``~/.config/mocap/cameras``). It records *where the numbers came from*
(checkerboard with its reprojection error, a spec-sheet FOV, auto focal with its
confidence...) because a profile's trustworthiness depends on that.

The intrinsics are stored at the size they were measured at. A video of another
size from the same camera (e.g. 1280x720 from a 1920x1080-calibrated webcam) is
the same sensor scaled, so the intrinsics scale too; a different aspect ratio
means a different crop of the sensor, which scaling cannot recover, so that is an error.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engines.camera import CameraIntrinsics, InvalidIntrinsicsError
from mocap_app.clip import atomic_write_text

log = logging.getLogger(__name__)

SCHEMA = "mocap-camera"
VERSION = 1
ASPECT_TOLERANCE = 0.01          # 1 %: 1088x1920 vs 1080x1920 letterbox-free rescale passes, 4:3 vs 16:9 does not
MAX_FOCAL_ASPECT = 1.25          # fx/fy beyond this is a wrong entry, not a real (square-ish pixel) camera
MAX_ABS_DISTORTION = 10.0


class CalibrationError(ValueError):
    """Base class of every calibration problem a user can cause (bad input, unusable images...)."""


class ProfileError(CalibrationError):
    """A camera profile file or value that cannot be used."""


class AspectRatioMismatchError(ProfileError):
    """The video's aspect ratio differs from the profile's: it is a different crop of the sensor."""


def default_profile_dir() -> Path:
    """Folder holding the user's camera profiles (created on first save)."""
    env = os.environ.get("MOCAP_CAMERA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mocap" / "cameras"


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def rotated_distortion(d: tuple[float, ...]) -> tuple[tuple[float, ...], str]:
    """OpenCV distortion coefficients of the image turned 90 deg clockwise, and a note for the profile's source.

    The normalised point turns as ``(x', y') = (-y, x)``. Radial terms depend on ``r`` only; tangential
    ``dx = 2 p1 x y + p2 (r^2 + 2 x^2)``, ``dy = p1 (r^2 + 2 y^2) + 2 p2 x y`` become ``p1' = p2, p2' = -p1``; thin
    prism ``(s1, s2)`` on x and ``(s3, s4)`` on y become ``(-s3, -s4)`` and ``(s1, s2)``. A tilted sensor
    (coefficients 13-14) has no such rule here: the distortion is dropped and the note says so.
    """
    d = list(d)
    if len(d) > 12 and any(d[12:]):
        return (), " (tilted-sensor distortion dropped)"
    if len(d) >= 4:
        d[2], d[3] = d[3], -d[2]
    if len(d) >= 12:
        d[8:12] = [-d[10], -d[11], d[8], d[9]]
    return tuple(d), ""


@dataclass
class CameraProfile:
    """Intrinsics of one camera measured at one image size, plus where they came from."""
    name: str
    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float
    dist_coeffs: tuple[float, ...] = ()
    source: str = "manual"            # "manual focal", "preset: Logitech C920", "checkerboard", "auto focal", ...
    created: str = field(default_factory=_now_iso)
    reprojection_error_px: float | None = None   # checkerboard RMS, when measured
    confidence: float | None = None              # auto focal confidence in [0, 1], when estimated
    notes: str = ""
    lens_model: str = "standard"                 # OpenCV's standard distortion model, or "fisheye" (action cameras)

    def __post_init__(self):
        self.dist_coeffs = tuple(float(d) for d in self.dist_coeffs)
        self.validate()

    # -- validation -----------------------------------------------------------------------
    def validate(self) -> None:
        """Raise ``ProfileError`` with a human sentence for values no real camera has."""
        if not str(self.name).strip():
            raise ProfileError("the camera profile needs a name")
        try:
            w, h = int(self.width_px), int(self.height_px)
        except (TypeError, ValueError):
            raise ProfileError(f"image size {self.width_px!r}x{self.height_px!r} is not a pair of integers") from None
        if w < 16 or h < 16 or w > 20000 or h > 20000:
            raise ProfileError(f"image size {w}x{h} px is not a plausible video size")
        try:
            CameraIntrinsics(w, h, self.fx_px, self.fy_px, self.cx_px, self.cy_px, self.dist_coeffs, self.lens_model)
        except InvalidIntrinsicsError as e:
            raise ProfileError(f"camera '{self.name}': {e}") from None
        ratio = self.fx_px / self.fy_px
        if not 1 / MAX_FOCAL_ASPECT <= ratio <= MAX_FOCAL_ASPECT:
            raise ProfileError(f"camera '{self.name}': fx={self.fx_px:.1f} and fy={self.fy_px:.1f} px differ by "
                               f"more than {100 * (MAX_FOCAL_ASPECT - 1):.0f} %; real cameras have near-square pixels")
        for name, c, extent in (("cx", self.cx_px, w), ("cy", self.cy_px, h)):
            if not (math.isfinite(c) and 0.0 <= c <= extent):
                raise ProfileError(f"camera '{self.name}': principal point {name}={c!r} px lies outside the "
                                   f"{w}x{h} image")
        if any(not math.isfinite(d) or abs(d) > MAX_ABS_DISTORTION for d in self.dist_coeffs):
            raise ProfileError(f"camera '{self.name}': distortion coefficients {self.dist_coeffs} are not plausible")

    # -- derived --------------------------------------------------------------------------
    @property
    def size(self) -> tuple[int, int]:
        return int(self.width_px), int(self.height_px)

    def lens_summary(self) -> str:
        """One line on the lens distortion, for the dialog and the CLI ("" without)."""
        from engines.camera import distortion_shift_px
        if self.lens_model == "fisheye":      # its border has no pinhole pixel to compare with
            return f"fisheye lens, {self.fov_deg['diagonal']:.0f} deg across the diagonal, removed before lifting"
        shift = distortion_shift_px(self.intrinsics())
        return f"lens distortion: up to {shift:.0f} px at the image border, removed before lifting" \
            if self.has_distortion else ""

    @property
    def has_distortion(self) -> bool:
        return self.intrinsics().has_distortion          # one rule, the camera model's (a fisheye always has)

    @property
    def fov_deg(self) -> dict[str, float]:
        """Horizontal, vertical and diagonal field of view (pinhole, distortion ignored; a fisheye lens through its
        own model: theta_d = theta (1 + k1 theta^2 + ...) solved for the image edge's theta)."""
        w, h = self.size
        if self.lens_model == "fisheye":
            from engines.camera import fisheye_theta_d

            def angle(r):                                   # normalised image radius -> angle from the axis (deg)
                lo, hi = 0.0, math.pi / 2               # rays beyond 90 deg off the axis do not count
                for _ in range(60):                         # theta_d(theta) increases over the lens's range
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if fisheye_theta_d(mid, self.dist_coeffs) < r else (lo, mid)
                return math.degrees(lo)
            return {"horizontal": 2 * angle(w / 2 / self.fx_px), "vertical": 2 * angle(h / 2 / self.fy_px),
                    "diagonal": 2 * angle(math.hypot(w / self.fx_px, h / self.fy_px) / 2)}
        return {"horizontal": math.degrees(2 * math.atan(w / 2 / self.fx_px)),
                "vertical": math.degrees(2 * math.atan(h / 2 / self.fy_px)),
                "diagonal": math.degrees(2 * math.atan(math.hypot(w / self.fx_px, h / self.fy_px) / 2))}

    def intrinsics(self, width_px: int | None = None, height_px: int | None = None) -> CameraIntrinsics:
        """Intrinsics for a video of ``width_px`` x ``height_px`` (default: the profile's own size).

        Scales focal length and principal point with the image (uniformly, by the width ratio); an
        aspect ratio within 1 % is taken as a centred crop / letterbox of the rows. A video in the other orientation
        (a phone held upright after calibrating it on its side) is the same camera turned: the profile is rotated
        (``rotated_90``). Any other difference raises ``AspectRatioMismatchError`` (a different crop of the sensor
        that cannot be recovered).
        """
        w0, h0 = self.size
        w = w0 if width_px is None else int(width_px)
        h = h0 if height_px is None else int(height_px)
        if w <= 0 or h <= 0:
            raise ProfileError(f"video size {w}x{h} must be positive")
        if abs((w / h) / (w0 / h0) - 1.0) > ASPECT_TOLERANCE:
            if w0 != h0 and abs((w / h) / (h0 / w0) - 1.0) <= ASPECT_TOLERANCE:
                return self.rotated_90().intrinsics(w, h)
            raise AspectRatioMismatchError(
                f"camera profile '{self.name}' was measured at {w0}x{h0} (aspect {w0 / h0:.3f}) but the video is "
                f"{w}x{h} (aspect {w / h:.3f}); a different aspect ratio is a different crop of the sensor, so "
                f"the profile cannot be scaled to it. Calibrate the camera at this video size.")
        # one uniform scale (the sensor is resized, never stretched); a small aspect difference is a
        # centred crop or letterbox along the other axis: e.g. 1920x1088 encoded as 1920x1080 drops 4
        # rows top and bottom, and the pose2sim cam01 video is 1088x1920 scaled by 1080/1088 with ~7
        # black rows added top and bottom
        s = w / w0
        pad_y = (h - h0 * s) / 2.0
        # pixel centres: a pixel edge at 0 maps to 0, so the centre (c + 0.5) scales
        return CameraIntrinsics(w, h, self.fx_px * s, self.fy_px * s,
                                (self.cx_px + 0.5) * s - 0.5, (self.cy_px + 0.5) * s - 0.5 + pad_y, self.dist_coeffs,
                                self.lens_model)

    def rotated_90(self) -> "CameraProfile":
        """The same camera held in the other orientation (landscape <-> portrait), clockwise rotation."""
        w, h = self.size
        # a fisheye lens's terms are all radial: they turn with the image unchanged
        dist, note = ((self.dist_coeffs, "") if self.lens_model == "fisheye" else rotated_distortion(self.dist_coeffs))
        return CameraProfile(self.name + " (rotated)", h, w, self.fy_px, self.fx_px, h - 1 - self.cy_px,
                             self.cx_px, dist, self.source + ", rotated 90 deg" + note,
                             self.created, self.reprojection_error_px, self.confidence, self.notes, self.lens_model)

    @classmethod
    def from_intrinsics(cls, name: str, intr: CameraIntrinsics, source: str, **kw) -> "CameraProfile":
        kw.setdefault("lens_model", intr.lens_model)
        return cls(name, intr.width_px, intr.height_px, intr.fx_px, intr.fy_px, intr.cx_px, intr.cy_px,
                   tuple(intr.dist_coeffs), source, **kw)

    # -- JSON -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = asdict(self)
        d["dist_coeffs"] = list(self.dist_coeffs)
        d["fov_deg"] = {k: round(v, 3) for k, v in self.fov_deg.items()}   # informative only, ignored on load
        return {"schema": SCHEMA, "version": VERSION, **d}

    @classmethod
    def from_dict(cls, d: dict) -> "CameraProfile":
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            raise ProfileError(f"not a mocap camera profile (schema={d.get('schema') if isinstance(d, dict) else d!r})")
        if d.get("version") != VERSION:
            raise ProfileError(f"camera profile version {d.get('version')!r} is not supported (expected {VERSION})")
        try:
            return cls(name=str(d["name"]), width_px=int(d["width_px"]), height_px=int(d["height_px"]),
                       fx_px=float(d["fx_px"]), fy_px=float(d["fy_px"]), cx_px=float(d["cx_px"]),
                       cy_px=float(d["cy_px"]), dist_coeffs=tuple(d.get("dist_coeffs") or ()),
                       source=str(d.get("source", "unknown")), created=str(d.get("created", "")),
                       reprojection_error_px=d.get("reprojection_error_px"), confidence=d.get("confidence"),
                       notes=str(d.get("notes", "")), lens_model=str(d.get("lens_model", "standard")))
        except KeyError as e:
            raise ProfileError(f"camera profile is missing the field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            if isinstance(e, ProfileError):
                raise
            raise ProfileError(f"camera profile has a value of the wrong type ({e})") from None

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        out = atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        log.info("saved camera profile '%s' to %s", self.name, out)
        return out

    @classmethod
    def load(cls, path: str | os.PathLike) -> "CameraProfile":
        path = Path(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            raise ProfileError(f"camera profile {path} does not exist") from None
        except OSError as e:
            raise ProfileError(f"cannot read camera profile {path}: {e.strerror}") from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProfileError(f"{path}: not valid JSON ({e})") from None
        try:
            return cls.from_dict(d)
        except ProfileError as e:
            raise ProfileError(f"{path}: {e}") from None


def slug(name: str) -> str:
    """File-system-safe file stem for a camera name."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip()).strip("._")
    return s or "camera"


def profile_path(name: str, folder: str | os.PathLike | None = None) -> Path:
    return Path(folder or default_profile_dir()) / f"{slug(name)}.json"


def save_profile(profile: CameraProfile, folder: str | os.PathLike | None = None) -> Path:
    """Save into the profile folder under the camera's name."""
    return profile.save(profile_path(profile.name, folder))


def remove_profile(name: str, folder: str | os.PathLike | None = None) -> Path | None:
    """Delete the camera's profile file from the profile folder; its path, or None if there was none."""
    p = profile_path(name, folder)
    try:
        p.unlink()
    except FileNotFoundError:
        return None
    log.info("removed camera profile '%s' (%s)", name, p)
    return p


def list_profiles(folder: str | os.PathLike | None = None) -> list[CameraProfile]:
    """Every readable profile in the folder (unreadable files are logged and skipped)."""
    folder = Path(folder or default_profile_dir())
    out = []
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out.append(CameraProfile.load(p))
        except ProfileError as e:
            log.warning("skipping %s", e)
    return out


def resolve_profile(ref: str | os.PathLike, folder: str | os.PathLike | None = None) -> CameraProfile:
    """A profile from a path, or from a camera name in the profile folder (what ``--calibration`` takes)."""
    p = Path(ref).expanduser()
    if p.suffix.lower() == ".json" or p.exists():
        return CameraProfile.load(p)
    cand = profile_path(str(ref), folder)
    if cand.exists():
        return CameraProfile.load(cand)
    known = ", ".join(pr.name for pr in list_profiles(folder)) or "none"
    raise ProfileError(f"no camera profile file or name '{ref}' (profiles in {Path(folder or default_profile_dir())}: "
                       f"{known})")


def intrinsics_for_video(ref: str | os.PathLike, width_px: int, height_px: int,
                         folder: str | os.PathLike | None = None) -> tuple[CameraIntrinsics, str]:
    """What ``mocap-app process --calibration X`` needs: intrinsics at the video's size and a source label."""
    prof = resolve_profile(ref, folder)
    return prof.intrinsics(width_px, height_px), f"profile {prof.name} ({prof.source})"
