"""Export a clip's world skeleton as BVH, FBX (binary 7.4) and GLB (glTF 2.0).

Pipeline (every step returns new arrays; the Clip is never modified)::

    clip.joints_world_mm (or mocap_app.world.align_clip, or the camera-axis fallback)
      -> midpoint joints re-derived from their definitions (pelvis = mid hips, ...)
      -> fill gaps (interpolate <= max_gap_s, hold longer ones and report them)
      -> resample to a constant rate (when the source was variable or --fps is given)
      -> One Euro smoothing (optional) -> foot locking (optional)
      -> rest skeleton from median bone lengths (optionally left/right averaged) -> local rotations
      -> BVH / FBX / GLB

Usage::

    from mocap_app.export import export_clip, ExportOptions
    result = export_clip(clip, bvh="take.bvh", fbx="take.fbx", options=ExportOptions(names="mixamo"))
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.skeleton import J
from mocap_app.export.bvh import VALID_ORDERS, bvh_text
from mocap_app.export.fbx import fbx_bytes
from mocap_app.export.filters import FootLockReport, GapReport, fill_gaps, foot_lock, is_constant_rate, one_euro, \
    resample, two_bone_ik
from mocap_app.export.rig import JOINT_TO_RIG, NAME_SETS, Rig, RigError, apply_definitions, build_rig
from mocap_app.export.rotations import Motion, forward_kinematics, positions_to_motion

log = logging.getLogger(__name__)

__all__ = ["ExportError", "ExportPathError", "NothingToExportError", "ExportOptions", "ExportResult", "PreparedMotion",
           "export_clip", "prepare_motion",
           "world_joints_of", "camera_to_world_fallback", "add_convert_parser", "run_convert"]


class ExportError(RuntimeError):
    """Export failed for a reason the user can act on (bad option, nothing to export, unwritable path)."""


class ExportPathError(ExportError):
    """An output file that cannot be written (missing or read-only folder, a folder in its place, two outputs on one
    path)."""


class NothingToExportError(ExportError):
    """The clip has no frame with a person."""


@dataclass(frozen=True)
class ExportOptions:
    names: str = "standard"              # "standard" (our joint names), "mixamo" or "mixamorig"
    rotation_order: str = "ZXY"          # BVH channel order
    fps: float | None = None             # None: the clip's own rate
    max_gap_s: float = 0.5               # longer gaps without a person hold the nearest pose
    smoothing: bool = False              # One Euro filter on positions
    min_cutoff_hz: float = 1.0
    beta: float = 0.02                   # per mm/s
    foot_lock: bool = False
    foot_height_mm: float = 100.0        # ankle height below which a foot may be in contact
    foot_speed_mm_s: float = 250.0       # ankle speed below which it is in contact
    symmetric: bool = False              # same length (the mean) for left and right bones

    def validate(self) -> None:
        if self.names not in NAME_SETS:
            raise ExportError(f"bone names must be one of {', '.join(NAME_SETS)}, not {self.names!r}")
        if self.rotation_order.upper() not in VALID_ORDERS:
            raise ExportError(f"rotation order must be one of {', '.join(VALID_ORDERS)}, not {self.rotation_order!r}")
        if self.fps is not None and not (0 < self.fps <= 1000):
            raise ExportError(f"fps must be in (0, 1000], not {self.fps}")
        if self.max_gap_s < 0:
            raise ExportError(f"max gap must be >= 0 s, not {self.max_gap_s}")
        if self.min_cutoff_hz <= 0 or self.beta < 0:
            raise ExportError("One Euro filter needs min cutoff > 0 Hz and beta >= 0")
        if self.foot_height_mm <= 0 or self.foot_speed_mm_s <= 0:
            raise ExportError("foot locking needs a positive height (mm) and speed (mm/s) threshold")


@dataclass
class PreparedMotion:
    """Everything the writers need, plus what was done on the way."""
    rig: Rig
    motion: Motion
    fps: float
    joints_mm: np.ndarray          # [N, 17, 3] cleaned targets the rotations were solved for
    times_s: np.ndarray            # [N] constant-rate times
    gaps: GapReport
    foot_lock: FootLockReport | None
    resampled: bool
    fk_error_mm: np.ndarray        # [N, 17] distance of the rig's joints from the targets


@dataclass
class ExportResult:
    written: dict[str, Path] = field(default_factory=dict)
    frames: int = 0
    fps: float = 0.0
    resampled: bool = False
    gaps: GapReport = field(default_factory=GapReport)
    foot_lock: FootLockReport | None = None
    max_fk_error_mm: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def __iter__(self):
        """The written paths (so ``for path in export_clip(...)`` works)."""
        return iter(self.written.values())


def camera_to_world_fallback(joints_cam_mm: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """FALLBACK used only when ``mocap_app.world.align_clip`` is unavailable: camera axes -> Y up.

    OpenCV camera (X right, Y down, Z forward) -> (x, -y, -z): Y up, and a person
    facing the camera faces +Z. The floor (y = 0) is put at the 5th percentile of
    the lower ankle's height over valid frames. Assumes a level camera.
    """
    w = np.asarray(joints_cam_mm, float) * np.array([1.0, -1.0, -1.0])
    ok = np.asarray(valid, bool) & np.isfinite(w).all(axis=(1, 2))
    if ok.any():
        low = np.minimum(w[ok, J["left_ankle"], 1], w[ok, J["right_ankle"], 1])
        w[..., 1] -= np.percentile(low, 5)
    return w


def world_joints_of(clip, notes: list[str] | None = None) -> np.ndarray:
    """World joints ``[N, 17, 3]`` of a clip (a copy), aligning it first when it has none.

    If ``mocap_app.world`` is missing or cannot align this clip, the camera-axis
    fallback is used and a sentence saying so is appended to ``notes``.
    """
    if clip.joints_world_mm is not None:
        return np.array(clip.joints_world_mm, float)
    reason = None
    try:
        from mocap_app.world import align_clip  # the world-alignment stage
    except ImportError:
        reason = "mocap_app.world is unavailable"
    else:
        try:
            aligned = align_clip(clip)
            if aligned.joints_world_mm is not None:
                return np.array(aligned.joints_world_mm, float)
            reason = "world alignment produced no world joints"
        except ValueError as e:      # WorldAlignmentError and friends: not enough to go on
            reason = f"world alignment failed ({e})"
    msg = f"{reason}: used the plain camera-axis fallback (assumes a level camera)"
    log.warning(msg)
    if notes is not None:
        notes.append(msg)
    return camera_to_world_fallback(clip.joints_cam_mm, clip.person)


def prepare_motion(joints_mm: np.ndarray, times_s: np.ndarray, valid: np.ndarray,
                   options: ExportOptions = ExportOptions(), source_fps: float | None = None) -> PreparedMotion:
    """World joints -> rig + motion, with gap filling, resampling and the optional clean-ups."""
    options.validate()
    joints_mm = np.asarray(joints_mm, float)
    times_s = np.asarray(times_s, float)
    if joints_mm.ndim != 3 or joints_mm.shape[1:] != (17, 3) or times_s.shape != (len(joints_mm),) \
            or np.shape(valid) != (len(joints_mm),):
        raise ExportError(f"expected joints [N, 17, 3], N timestamps and N person flags, got "
                          f"{joints_mm.shape}, {times_s.shape} and {np.shape(valid)}")
    valid = np.asarray(valid, bool) & np.isfinite(joints_mm).all(axis=(1, 2))
    if len(joints_mm) == 0 or not valid.any():
        raise NothingToExportError("nothing to export: no frame of the clip has a person")
    if not np.isfinite(times_s).all():
        raise ExportError("timestamps must be finite numbers")
    if len(times_s) > 1 and np.any(np.diff(times_s) <= 0):
        raise ExportError("timestamps must increase strictly")
    joints_mm = apply_definitions(joints_mm)
    try:
        rig = build_rig(joints_mm, valid, options.names, options.symmetric)
    except RigError as e:
        raise ExportError(str(e)) from None
    filled, gaps = fill_gaps(joints_mm, times_s, valid, options.max_gap_s)
    if options.fps is not None:
        fps = float(options.fps)
    elif source_fps and source_fps > 0 and len(times_s) > 1 and abs(
            (len(times_s) - 1) / (times_s[-1] - times_s[0]) / source_fps - 1) < 0.05:
        fps = float(source_fps)
    else:
        fps = (len(times_s) - 1) / float(times_s[-1] - times_s[0]) if len(times_s) > 1 else 30.0
    constant = is_constant_rate(times_s) and abs(np.mean(np.diff(times_s)) * fps - 1) < 1e-3 \
        if len(times_s) > 1 else True
    if constant:
        times = times_s - times_s[0]
    else:
        filled, times = resample(filled, times_s, fps)
        times = times - times[0]
        log.info("resampled %d frames at a variable rate to %d frames at %.3f fps", len(times_s), len(times), fps)
    if options.smoothing:
        filled = apply_definitions(one_euro(filled, times, options.min_cutoff_hz, options.beta))
    fl = None
    if options.foot_lock:
        filled, fl = foot_lock(filled, times, options.foot_height_mm, options.foot_speed_mm_s)
    motion = positions_to_motion(rig, filled, fps=fps)
    if fl is not None and any(m.any() for m in fl.moved.values()):
        filled = _relock_on_rig(rig, motion, filled, fl)
        motion = positions_to_motion(rig, filled, fps=fps)
    fk = forward_kinematics(rig, motion)[:, list(JOINT_TO_RIG)] * 10.0
    err = np.linalg.norm(fk - filled, axis=-1)
    return PreparedMotion(rig, motion, fps, filled, times, gaps, fl, not constant, err)


def _relock_on_rig(rig: Rig, motion: Motion, targets: np.ndarray, fl: FootLockReport) -> np.ndarray:
    """Foot locking, second pass: re-solve knee and ankle of the locked frames from the *rig's* hip
    and bone lengths, so the exported ankle (not just the target) stays put.

    The rig's constant lengths and hip width differ from a lifter's per-frame ones by
    centimetres, which let a locked target still slide in the output by ~6 mm (cam03).
    """
    fk = forward_kinematics(rig, motion)[:, list(JOINT_TO_RIG)] * 10.0
    out = targets.copy()
    for side, moved in fl.moved.items():
        hip, knee, ankle = J[f"{side}_hip"], J[f"{side}_knee"], J[f"{side}_ankle"]
        l1 = rig.bone_lengths_cm[f"{side}_knee"] * 10.0
        l2 = rig.bone_lengths_cm[f"{side}_ankle"] * 10.0
        for t in np.flatnonzero(moved):
            out[t, knee], out[t, ankle] = two_bone_ik(fk[t, hip], targets[t, knee], targets[t, ankle], l1, l2)
    return out


def export_clip(clip, bvh=None, fbx=None, glb=None, options: ExportOptions = ExportOptions()) -> ExportResult:
    """Write the clip's world skeleton to the given files; returns what was written and done.

    All targets are checked before anything is written, and each file is written
    atomically (temporary file + rename), so a failure never leaves a half-written file.
    """
    from mocap_app.clip import OutputPathError, atomic_write_bytes, check_outputs

    options.validate()
    try:
        checked = check_outputs({"BVH": bvh, "FBX": fbx, "GLB": glb})
    except OutputPathError as e:
        raise ExportPathError(str(e)) from None
    targets = {k.lower(): p for k, p in checked.items()}
    if not targets:
        raise ExportError("nothing to do: give at least one of bvh=, fbx=, glb=")
    notes: list[str] = []
    world = world_joints_of(clip, notes)
    src_fps = clip.source.get("fps") if isinstance(clip.source, dict) else None
    prep = prepare_motion(world, np.asarray(clip.timestamps_s, float), np.asarray(clip.person, bool), options,
                          source_fps=float(src_fps) if isinstance(src_fps, (int, float)) else None)
    payload: dict[str, bytes] = {}
    if "bvh" in targets:
        payload["bvh"] = bvh_text(prep.rig, prep.motion, 1.0 / prep.fps, options.rotation_order).encode()
    if "fbx" in targets:
        payload["fbx"] = fbx_bytes(prep.rig, prep.motion, prep.fps)
    if "glb" in targets:
        from mocap_app.export.glb import GlbUnavailable, glb_bytes
        try:
            payload["glb"] = glb_bytes(prep.rig, prep.motion, prep.fps)
        except GlbUnavailable as e:
            raise ExportError(str(e)) from None
    res = ExportResult(frames=len(prep.motion), fps=prep.fps, resampled=prep.resampled, gaps=prep.gaps,
                       foot_lock=prep.foot_lock, max_fk_error_mm=float(prep.fk_error_mm.max()), warnings=notes)
    for kind, data in payload.items():
        try:
            res.written[kind] = atomic_write_bytes(targets[kind], data)
        except OSError as e:
            reason = e.strerror or str(e)
            raise ExportPathError(f"cannot write the {kind.upper()} file {targets[kind]}: {reason}") from None
    if prep.gaps.held:
        res.warnings.append(f"{prep.gaps.held_frames} frame(s) without a person in gaps longer than "
                            f"{options.max_gap_s:.2f} s (or at the clip's ends) hold the nearest pose")
    return res


from mocap_app.export.cli import add_convert_parser, run_convert  # noqa: E402  (re-exported)
