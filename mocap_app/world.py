"""World alignment: from camera-frame poses to a gravity-aligned frame with the floor at y = 0.

A single camera does not know which way is up or where the floor is, but the person
does: over a clip the feet keep touching one plane, and a standing body is roughly
vertical. We estimate the up direction ``u`` (a unit vector in camera coordinates)
from three cues, strongest first:

1. **Floor plane from foot contacts.** In each frame the lower ankle is (nearly) on
   the floor; where it is also still, it is a contact. If the contacts spread over
   an area, a plane fit gives ``u`` directly (its normal).
2. **Walking line.** If the contacts only spread along a line (walking straight),
   that line is horizontal, which fixes ``u`` up to a rotation about the line. A short
   line is a poor guide, so its weight ramps up with its length (``LINE_SPREAD_MIN_MM``
   to ``LINE_SPREAD_FULL_MM``) rather than switching on at one length.
3. **Upright body.** The mean ankle-midpoint -> thorax direction over upright frames.
   People lean forward a few degrees when walking (more when running), but that
   lean lies along the walking line, which cue 2 removes.

Pitch and roll of the camera follow from ``u`` (yaw is unobservable and is kept:
world forward is the camera's viewing direction projected onto the floor). The
floor height comes from the lowest ankle heights along ``u`` minus the ankle's
height above the sole (fitted on the CMU *training* subjects; ``ANKLE_ABOVE_FLOOR_MM``).

World frame (right-handed, millimetres): **X** to the camera's right, **Y up**,
**Z towards the camera** (the camera looks along -Z, as in OpenGL/BVH; a person
facing the camera faces +Z). The origin is on the floor below the person's pelvis
in the first valid frame (``origin="person"``) or below the camera (``origin="camera"``).

Angles: ``pitch_deg`` > 0 when the camera looks up, < 0 looking down; ``roll_deg`` > 0
when the camera is rotated clockwise about its viewing axis (as seen from behind it),
which makes the scene appear rotated anticlockwise in the image.
"""
from __future__ import annotations

import argparse
import copy
import logging
import math
from dataclasses import dataclass, field

import numpy as np

from engines.skeleton import J

log = logging.getLogger(__name__)

ANKLE_ABOVE_FLOOR_MM = 80.0     # median height of the lower ankle (CMU train subjects 02/07/105/137/144: 60-90 mm)
MIN_VALID_FRAMES = 5
AREA_SPREAD_MM = 400.0          # contacts spread this far in 2 directions -> plane fit
# contacts spread in 1 direction -> walking-line constraint, weighted from 0 at LINE_SPREAD_MIN_MM to 1 at
# LINE_SPREAD_FULL_MM: a ramp, not a threshold, so a clip near the limit does not jump between two answers
LINE_SPREAD_MIN_MM = 200.0
LINE_SPREAD_FULL_MM = 600.0
MAX_CUE_DISAGREEMENT_DEG = 25.0


class WorldAlignmentError(ValueError):
    """Not enough usable body to tell which way is up."""


# -- angle conventions ------------------------------------------------------------------------
def pitch_roll_from_up(up_cam: np.ndarray) -> tuple[float, float]:
    """Camera pitch and roll (degrees) from the world up direction expressed in camera coordinates."""
    u = np.asarray(up_cam, float)
    u = u / np.linalg.norm(u)
    pitch = math.degrees(math.asin(np.clip(u[2], -1.0, 1.0)))
    roll = math.degrees(math.atan2(-u[0], -u[1]))
    return pitch, roll


def up_from_pitch_roll(pitch_deg: float, roll_deg: float) -> np.ndarray:
    """Inverse of ``pitch_roll_from_up``."""
    p, r = math.radians(pitch_deg), math.radians(roll_deg)
    c = math.cos(p)
    return np.array([-c * math.sin(r), -c * math.cos(r), math.sin(p)])


def rotation_cam_to_world(up_cam: np.ndarray) -> np.ndarray:
    """Rows are the world X, Y, Z axes in camera coordinates (see the module docstring)."""
    y = np.asarray(up_cam, float)
    y = y / np.linalg.norm(y)
    fwd = np.array([0.0, 0.0, 1.0]) - y[2] * y          # camera forward projected onto the floor
    if np.linalg.norm(fwd) < 1e-6:
        raise WorldAlignmentError("the camera looks straight up or down; its heading is undefined")
    z = -fwd / np.linalg.norm(fwd)
    x = np.cross(y, z)
    return np.stack([x, y, z])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def body_axis(joints: np.ndarray) -> np.ndarray:
    """Unit ankle-midpoint -> thorax direction per frame ``[N, 3]`` (NaN where joints are missing)."""
    return _unit(joints[:, J["thorax"]] - 0.5 * (joints[:, J["left_ankle"]] + joints[:, J["right_ankle"]]))


def _angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return math.degrees(math.acos(float(np.clip(np.dot(_unit(a), _unit(b)), -1.0, 1.0))))


# -- result -------------------------------------------------------------------------------------
@dataclass
class FloorPlane:
    """The floor in camera coordinates: points ``p`` with ``normal_cam . p = -camera_height_mm``."""
    normal_cam: np.ndarray          # unit world-up in camera coordinates
    camera_height_mm: float         # camera centre above the floor
    n_contacts: int = 0
    source: str = "lowest ankles"

    def to_dict(self) -> dict:
        return {"normal_cam": [float(v) for v in self.normal_cam], "camera_height_mm": float(self.camera_height_mm),
                "n_contacts": int(self.n_contacts), "source": self.source}

    @classmethod
    def from_dict(cls, d: dict) -> "FloorPlane":
        return cls(np.asarray(d["normal_cam"], float), float(d["camera_height_mm"]), int(d.get("n_contacts", 0)),
                   str(d.get("source", "")))


@dataclass
class WorldAlignment:
    """Rigid camera -> world transform ``p_world = R p_cam + t`` and how it was found."""
    R_cam_to_world: np.ndarray                  # [3, 3]
    t_cam_to_world_mm: np.ndarray               # [3]
    pitch_deg: float
    roll_deg: float
    floor: FloorPlane
    method: str                                 # which cues set the up direction, e.g. "floor plane", "user"
    confidence: float                           # 0..1
    details: dict = field(default_factory=dict)

    @property
    def camera_height_mm(self) -> float:
        return self.floor.camera_height_mm

    def to_dict(self) -> dict:
        return {"R_cam_to_world": np.asarray(self.R_cam_to_world, float).round(8).tolist(),
                "t_cam_to_world_mm": [round(float(v), 3) for v in self.t_cam_to_world_mm],
                "pitch_deg": round(float(self.pitch_deg), 4), "roll_deg": round(float(self.roll_deg), 4),
                "camera_height_mm": round(float(self.floor.camera_height_mm), 2),
                "floor": self.floor.to_dict(), "method": self.method,
                "confidence": round(float(self.confidence), 4),
                "axes": "X right, Y up, Z towards the camera (camera looks along -Z); floor at y = 0; mm",
                "details": self.details}

    @classmethod
    def from_dict(cls, d: dict) -> "WorldAlignment":
        return cls(np.asarray(d["R_cam_to_world"], float), np.asarray(d["t_cam_to_world_mm"], float),
                   float(d["pitch_deg"]), float(d["roll_deg"]), FloorPlane.from_dict(d["floor"]),
                   str(d.get("method", "")), float(d.get("confidence", 0.0)), dict(d.get("details", {})))


def apply(alignment: WorldAlignment, joints_cam_mm: np.ndarray) -> np.ndarray:
    """World-frame joints ``[..., 3]`` from camera-frame joints (NaN stays NaN)."""
    p = np.asarray(joints_cam_mm, float)
    return p @ np.asarray(alignment.R_cam_to_world).T + np.asarray(alignment.t_cam_to_world_mm)


# -- estimation ---------------------------------------------------------------------------------
def _lower_ankle(joints: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Per frame, the ankle that is lower along ``up`` ``[N, 3]``."""
    la, ra = joints[:, J["left_ankle"]], joints[:, J["right_ankle"]]
    return np.where(((la - ra) @ up < 0)[:, None], la, ra)


def _upright_up(joints: np.ndarray, prior: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Mean ankle-midpoint -> thorax direction over upright frames (iteratively re-selected)."""
    body = body_axis(joints)
    up = _unit(np.mean(body, axis=0)) if prior is None else prior
    sel = np.ones(len(body), bool)
    for thresh in (35.0, 20.0, 15.0):
        sel = np.degrees(np.arccos(np.clip(body @ up, -1, 1))) < thresh
        if sel.sum() < max(3, 0.1 * len(body)):
            break
        up = _unit(np.mean(body[sel], axis=0))
    return up, int(sel.sum())


def _contacts(joints: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Lower-ankle positions in frames where that ankle is low and still (likely on the floor)."""
    low = _lower_ankle(joints, up)
    h = low @ up
    speed = np.full(len(low), np.inf)
    if len(low) >= 3:
        v = np.linalg.norm(low[2:] - low[:-2], axis=1) / 2
        speed[1:-1] = v
    keep = (h <= np.percentile(h, 60)) & (speed <= np.percentile(speed[np.isfinite(speed)], 50)
                                           if np.isfinite(speed).any() else True)
    return low[keep]


def _plane_normal_ransac(pts: np.ndarray, up_hint: np.ndarray, thresh_mm: float = 40.0,
                         iters: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Plane normal (oriented like ``up_hint``) and the inlier mask, by RANSAC then least squares."""
    rng = np.random.default_rng(seed)
    best = np.zeros(len(pts), bool)
    for _ in range(iters):
        a, b, c = pts[rng.choice(len(pts), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-6:
            continue
        n = _unit(n)
        if abs(n @ up_hint) < math.cos(math.radians(MAX_CUE_DISAGREEMENT_DEG)):
            continue
        inl = np.abs((pts - a) @ n) < thresh_mm
        if inl.sum() > best.sum():
            best = inl
    if best.sum() < 3:
        best[:] = True
    q = pts[best] - pts[best].mean(0)
    n = np.linalg.svd(q, full_matrices=False)[2][-1]
    return (n if n @ up_hint > 0 else -n), best


def estimate_world_alignment(joints_cam_mm: np.ndarray, valid: np.ndarray | None = None,
                             pitch_deg: float | None = None, roll_deg: float | None = None,
                             camera_height_mm: float | None = None, origin: str = "person",
                             line_spread_mm: tuple[float, float] = (LINE_SPREAD_MIN_MM, LINE_SPREAD_FULL_MM)
                             ) -> WorldAlignment:
    """Camera pitch/roll and floor from the person over a clip, or from the user where given.

    ``joints_cam_mm`` is ``[N, 17, 3]`` (OpenCV camera axes); ``valid`` marks frames with
    a person (default: all-finite frames). ``pitch_deg``/``roll_deg``/``camera_height_mm``
    override the estimates (a user-measured tripod angle beats any guess). ``line_spread_mm`` is the walking
    line's ramp (weight 0 at the first contact spread, 1 at the second; ``bench_world.py --line-spread``).
    """
    X = np.asarray(joints_cam_mm, float)
    if X.ndim != 3 or X.shape[1:] != (17, 3):
        raise WorldAlignmentError(f"expected joints of shape [N, 17, 3], got {list(X.shape)}")
    ok = np.isfinite(X).all(axis=(1, 2))
    if valid is not None:
        ok &= np.asarray(valid, bool)
    X = X[ok]
    if origin not in ("person", "camera"):
        raise WorldAlignmentError(f"origin must be 'person' or 'camera' (got {origin!r})")
    user_angles = pitch_deg is not None and roll_deg is not None
    if len(X) < (1 if user_angles and camera_height_mm is not None else MIN_VALID_FRAMES):
        raise WorldAlignmentError(f"only {len(X)} frames with a person; at least {MIN_VALID_FRAMES} are needed to "
                                  f"find the floor (or give --pitch, --roll and --camera-height)")
    details: dict = {"frames": int(len(X))}

    # 1. up direction
    up_body, n_upright = _upright_up(X)
    details["upright_frames"] = n_upright
    # how much the body axis wanders: ~2-5 deg for walking / dribbling (CMU val), 13 deg for the pose2sim
    # balance clip where the person leans persistently; the upright cue is then biased by the lean
    body = body_axis(X)
    wander = float(np.median(np.degrees(np.arccos(np.clip(body @ up_body, -1.0, 1.0)))))
    details["body_axis_wander_deg"] = round(wander, 2)
    upright_trust = float(np.clip(1.0 - (wander - 5.0) / 8.0, 0.2, 1.0))
    contacts = _contacts(X, up_body)
    details["contacts"] = int(len(contacts))
    method = "upright body"
    up = up_body
    conf = 0.5 * min(1.0, n_upright / 30.0) * upright_trust
    if len(contacts) >= 6:
        c = contacts - contacts.mean(0)
        c_h = c - np.outer(c @ up_body, up_body)                 # horizontal spread of the contacts
        evals = np.linalg.eigvalsh(c_h.T @ c_h / len(c_h))[::-1]
        spread = 2 * np.sqrt(np.maximum(evals, 0))               # ~ +-1 sigma extents, largest first
        details["contact_spread_mm"] = [round(float(v), 1) for v in spread[:2]]
        if spread[1] > AREA_SPREAD_MM:
            n, inl = _plane_normal_ransac(contacts, up_body)
            if _angle_deg(n, up_body) < MAX_CUE_DISAGREEMENT_DEG:
                up, method = n, "floor plane from foot contacts"
                conf = min(1.0, 0.6 + 0.4 * min(1.0, spread[1] / 1000.0)) * float(inl.mean()) ** 0.5
        elif spread[0] > line_spread_mm[0]:
            d = _unit(np.linalg.svd(c, full_matrices=False)[2][0])   # walking direction: horizontal
            if abs(_angle_deg(d, up_body) - 90.0) < MAX_CUE_DISAGREEMENT_DEG:
                lo, full = line_spread_mm
                w = float(np.clip((spread[0] - lo) / max(full - lo, 1e-6), 0.0, 1.0))
                up = _unit(up_body - w * (up_body @ d) * d)          # w = 1: up exactly across the line
                method = "walking line + upright body"
                details["walking_line_weight"] = round(w, 3)
                line_conf = (min(1.0, 0.5 + 0.3 * min(1.0, spread[0] / 1500.0)) * min(1.0, n_upright / 30.0 + 0.3)
                             * upright_trust)
                conf = (1.0 - w) * conf + w * line_conf
        details["up_disagreement_deg"] = round(_angle_deg(up, up_body), 2)
    est_pitch, est_roll = pitch_roll_from_up(up)
    if pitch_deg is not None or roll_deg is not None:
        up = up_from_pitch_roll(est_pitch if pitch_deg is None else float(pitch_deg),
                                est_roll if roll_deg is None else float(roll_deg))
        which = "pitch" if pitch_deg is not None else "roll"
        method = "user pitch and roll" if user_angles else f"{method}, user {which}"
        if user_angles:
            conf = 1.0
    pitch, roll = pitch_roll_from_up(up)

    # 2. floor height along up: lowest ankles sit ANKLE_ABOVE_FLOOR_MM above the floor
    if camera_height_mm is not None:
        h_cam = float(camera_height_mm)
        floor_src = "user camera height"
    else:
        low_h = _lower_ankle(X, up) @ up                    # heights relative to the camera centre
        h_cam = -(float(np.median(low_h)) - ANKLE_ABOVE_FLOOR_MM)
        floor_src = "lowest ankles"
    if not (h_cam > -5000 and h_cam < 50000):
        raise WorldAlignmentError(f"floor estimate puts the camera {h_cam / 1000:.1f} m above the floor; the poses "
                                  "look implausible (check units are millimetres)")
    floor = FloorPlane(up, h_cam, len(contacts), floor_src)

    # 3. frame: rotation, then floor to y = 0 and the origin under the person or the camera
    R = rotation_cam_to_world(up)
    t = np.array([0.0, h_cam, 0.0])
    if origin == "person" and len(X):
        p0 = R @ X[0, J["pelvis"]] + t
        t = t - np.array([p0[0], 0.0, p0[2]])
    details["camera_position_world_mm"] = [round(float(v), 2) for v in t]   # R*0 + t: the camera centre
    return WorldAlignment(R, t, pitch, roll, floor, method, float(np.clip(conf, 0.0, 1.0)), details)


def align_clip(clip, **overrides):
    """A copy of ``clip`` with ``world`` and ``joints_world_mm`` filled (overrides go to the estimator)."""
    out = copy.copy(clip)
    al = estimate_world_alignment(clip.joints_cam_mm, clip.person, **overrides)
    out.world = al.to_dict()
    world = apply(al, clip.joints_cam_mm)
    world[~np.asarray(clip.person, bool)] = np.nan
    out.joints_world_mm = world
    log.info("world alignment: pitch %.1f deg, roll %.1f deg, camera %.2f m above the floor (%s, confidence %.2f)",
             al.pitch_deg, al.roll_deg, al.camera_height_mm / 1000, al.method, al.confidence)
    return out


def add_world_args(parser: argparse.ArgumentParser) -> None:
    """``--world`` and its overrides, for ``mocap-app process``."""
    g = parser.add_argument_group("world alignment")
    g.add_argument("--world", action="store_true",
                   help="express the skeleton in a gravity-aligned world frame (Y up, floor at y=0), estimating the "
                        "camera's pitch, roll and height from the person")
    g.add_argument("--pitch", type=float, default=None, metavar="DEG",
                   help="camera pitch in degrees if known (negative = looking down); implies --world")
    g.add_argument("--roll", type=float, default=None, metavar="DEG",
                   help="camera roll in degrees if known (positive = rotated clockwise); implies --world")
    g.add_argument("--camera-height", type=float, default=None, metavar="M",
                   help="camera height above the floor in metres if known; implies --world")


MAX_PITCH_DEG = 89.0          # straight down / up has no horizon to hold a heading
MAX_ROLL_DEG = 180.0
MAX_CAMERA_HEIGHT_M = 50.0


def _check_placement(pitch_deg, roll_deg, camera_height_m, names=("camera pitch", "camera roll", "camera height")):
    for name, v, lim in ((names[0], pitch_deg, MAX_PITCH_DEG), (names[1], roll_deg, MAX_ROLL_DEG)):
        if v is not None and not (math.isfinite(v) and abs(v) <= lim):
            raise WorldAlignmentError(f"{name} {v} deg is outside [-{lim:.0f}, {lim:.0f}]")
    h = camera_height_m
    if h is not None and not (math.isfinite(h) and 0.0 < h < MAX_CAMERA_HEIGHT_M):
        raise WorldAlignmentError(f"{names[2]} {h} m must be between 0 and {MAX_CAMERA_HEIGHT_M:.0f} m")


@dataclass(frozen=True)
class CameraPlacement:
    """What the user knows of where the camera stands; ``None`` = estimate it from the person.

    A bubble level and a tape measure beat any estimate from the body, and with all three given the world frame
    needs a single frame of the person (the estimate needs ``MIN_VALID_FRAMES``, the app's live view waits for 15).
    Raises ``WorldAlignmentError`` for values no camera has.
    """
    pitch_deg: float | None = None        # negative = looking down
    roll_deg: float | None = None         # positive = rotated clockwise
    camera_height_m: float | None = None  # lens above the floor

    def __post_init__(self):
        _check_placement(self.pitch_deg, self.roll_deg, self.camera_height_m)

    @property
    def known(self) -> bool:
        return any(v is not None for v in (self.pitch_deg, self.roll_deg, self.camera_height_m))

    @property
    def complete(self) -> bool:
        return all(v is not None for v in (self.pitch_deg, self.roll_deg, self.camera_height_m))

    def overrides(self) -> dict:
        """Keyword overrides for ``estimate_world_alignment`` / ``align_clip``."""
        h = self.camera_height_m
        return {"pitch_deg": self.pitch_deg, "roll_deg": self.roll_deg,
                "camera_height_mm": None if h is None else 1000.0 * h}

    def describe(self) -> str:
        def part(name, v, fmt):
            return f"{name} {fmt.format(v)}" if v is not None else f"{name} from the person"
        return ", ".join((part("pitch", self.pitch_deg, "{:+.1f} deg"), part("roll", self.roll_deg, "{:+.1f} deg"),
                          part("height", self.camera_height_m, "{:.2f} m")))

    def to_dict(self) -> dict:
        return {"pitch_deg": self.pitch_deg, "roll_deg": self.roll_deg, "camera_height_m": self.camera_height_m}

    @classmethod
    def from_dict(cls, d: dict | None) -> "CameraPlacement":
        d = d or {}
        get = (lambda k: None if d.get(k) is None else float(d[k]))
        return cls(get("pitch_deg"), get("roll_deg"), get("camera_height_m"))


def world_overrides_from_args(args: argparse.Namespace) -> dict | None:
    """Keyword overrides for ``align_clip`` from parsed args, or None when no world alignment was asked for."""
    pitch, roll = getattr(args, "pitch", None), getattr(args, "roll", None)
    height = getattr(args, "camera_height", None)
    if not (getattr(args, "world", False) or pitch is not None or roll is not None or height is not None):
        return None
    _check_placement(pitch, roll, height, names=("--pitch", "--roll", "--camera-height"))   # the flags' names
    return CameraPlacement(pitch, roll, height).overrides()
