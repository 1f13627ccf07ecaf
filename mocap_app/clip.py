"""A processed clip and its versioned JSON file format.

Schema ``mocap-clip`` version 1 (all lengths in millimetres, pixels in the
source video's pixel grid, camera frame = OpenCV axes: X right, Y down, Z forward)::

    {
      "schema": "mocap-clip", "version": 1,
      "joint_names": ["pelvis", ...17 names...],
      "source": {"path": str, "fps": float, "frame_count": int, "width_px": int, "height_px": int},
      "intrinsics": {"width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px", "dist_coeffs",
                     ["lens_model": "fisheye"],   (absent: OpenCV's standard distortion model)
                     "source": "cli focal" | "cli fov" | "profile" | "default fov" | ...},
      "engine": {"name": str, "backend": str, "refine": str | null},
      "world": null | {"R_cam_to_world": 3x3, "t_cam_to_world_mm": [3], ...},
      "frames": [
        {"index": int, "timestamp_s": float, "person": bool,
         "keypoints_px": [[x, y] * 17] | null, "confidence": [c * 17] | null,
         "joints_cam_mm": [[x, y, z] * 17] | null,
         "joints_world_mm": [[x, y, z] * 17] | null   (only when "world" is set),
         "plausibility": float in [0, 1] | null       (optional, engines.plausibility.score: 0.5 = a typical
                                                      frame of our output; < 0.02 = flagged as implausible),
         "left_right_fixed": bool                     (optional: MediaPipe mirrored the skeleton and the
                                                      keypoint stage mirrored it back, LeftRightTracker)}
      ]
    }

Frames in which no person was found are kept, with ``"person": false`` and
null arrays, so timing is never lost.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engines.camera import CameraIntrinsics
from engines.skeleton import JOINT_NAMES, NUM_JOINTS

SCHEMA = "mocap-clip"
VERSION = 1


class ClipFormatError(ValueError):
    """A file that is not a clip this version can read."""


@dataclass
class Clip:
    timestamps_s: np.ndarray          # [N]
    person: np.ndarray                # [N] bool
    keypoints_px: np.ndarray          # [N, 17, 2], NaN where no person
    confidence: np.ndarray            # [N, 17]
    joints_cam_mm: np.ndarray         # [N, 17, 3], NaN where no person
    intrinsics: CameraIntrinsics
    intrinsics_source: str = "unknown"
    source: dict = field(default_factory=dict)
    engine: dict = field(default_factory=dict)
    world: dict | None = None
    joints_world_mm: np.ndarray | None = None   # [N, 17, 3] Y up, floor at y = 0
    plausibility: np.ndarray | None = None      # [N] in [0, 1], NaN where no person (optional)
    left_right_fixed: np.ndarray | None = None  # [N] bool: labels mirrored back by the keypoint stage (optional)

    def __len__(self) -> int:
        return len(self.timestamps_s)

    @property
    def fps(self) -> float:
        """Mean frame rate from the timestamps (falls back to the source's rate)."""
        if len(self) > 1 and self.timestamps_s[-1] > self.timestamps_s[0]:
            return (len(self) - 1) / float(self.timestamps_s[-1] - self.timestamps_s[0])
        return float(self.source.get("fps", 30.0))

    # -- JSON ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        def arr(a, i):
            return None if not self.person[i] else np.round(a[i].astype(float), 3).tolist()

        frames = []
        for i in range(len(self)):
            f = {"index": i, "timestamp_s": round(float(self.timestamps_s[i]), 6),
                 "person": bool(self.person[i]),
                 "keypoints_px": arr(self.keypoints_px, i), "confidence": arr(self.confidence, i),
                 "joints_cam_mm": arr(self.joints_cam_mm, i)}
            if self.joints_world_mm is not None:
                f["joints_world_mm"] = arr(self.joints_world_mm, i)
            if self.plausibility is not None:
                q = float(self.plausibility[i])
                f["plausibility"] = round(q, 4) if self.person[i] and np.isfinite(q) else None
            if self.left_right_fixed is not None:
                f["left_right_fixed"] = bool(self.left_right_fixed[i])
            frames.append(f)
        intr = self.intrinsics.to_dict() | {"source": self.intrinsics_source}
        return {"schema": SCHEMA, "version": VERSION, "joint_names": list(JOINT_NAMES),
                "source": self.source, "intrinsics": intr, "engine": self.engine,
                "world": self.world, "frames": frames}

    @classmethod
    def from_dict(cls, d: dict) -> "Clip":
        if d.get("schema") != SCHEMA:
            raise ClipFormatError(f"not a mocap clip (schema={d.get('schema')!r})")
        if d.get("version") != VERSION:
            raise ClipFormatError(f"clip version {d.get('version')!r} is not supported (expected {VERSION})")
        if list(d.get("joint_names") or []) != list(JOINT_NAMES):
            raise ClipFormatError("clip joint set differs from this version's 17 joints")
        fr = d.get("frames")
        if not isinstance(fr, list) or not fr:
            raise ClipFormatError("the clip has no frames")
        n = len(fr)
        for i, f in enumerate(fr):
            missing = [k for k in ("timestamp_s", "person") if not isinstance(f, dict) or k not in f]
            if missing:
                raise ClipFormatError(f"frame {i} has no {' or '.join(missing)}")

        def stack(key, shape):
            out = np.full((n,) + shape, np.nan, np.float64)
            for i, f in enumerate(fr):
                if f.get(key) is not None:
                    a = np.asarray(f[key], dtype=np.float64)
                    if a.size != int(np.prod(shape)):
                        want = " x ".join(map(str, shape))
                        raise ClipFormatError(f"frame {i}: {key} has {a.size} numbers, not {want}")
                    out[i] = a.reshape(shape)
            return out

        has_world = d.get("world") is not None
        has_plaus = any("plausibility" in f for f in fr)
        has_fixed = any("left_right_fixed" in f for f in fr)
        if not isinstance(d.get("intrinsics"), dict):
            raise ClipFormatError("the clip has no camera intrinsics")
        intr = dict(d["intrinsics"])
        kp = stack("keypoints_px", (NUM_JOINTS, 2))
        finite = np.isfinite(kp).all(-1)
        return cls(
            timestamps_s=np.array([f["timestamp_s"] for f in fr], np.float64),
            # a frame with some but not all of its 2D joints (a hand-edited file) cannot be lifted or trusted; one
            # with no 2D at all is a 3D-only clip (converted mocap) and keeps its flag
            person=np.array([bool(f["person"]) for f in fr]) & (finite.all(1) | ~finite.any(1)),
            keypoints_px=kp,
            confidence=np.nan_to_num(stack("confidence", (NUM_JOINTS,))),
            joints_cam_mm=stack("joints_cam_mm", (NUM_JOINTS, 3)),
            intrinsics=CameraIntrinsics.from_dict(intr),
            intrinsics_source=intr.get("source", "unknown"),
            source=d.get("source", {}), engine=d.get("engine", {}), world=d.get("world"),
            joints_world_mm=stack("joints_world_mm", (NUM_JOINTS, 3)) if has_world else None,
            plausibility=np.array([np.nan if f.get("plausibility") is None else float(f["plausibility"])
                                   for f in fr]) if has_plaus else None,
            left_right_fixed=np.array([bool(f.get("left_right_fixed", False)) for f in fr]) if has_fixed else None)

    def save(self, path: str | os.PathLike) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), separators=(",", ":")))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Clip":
        """Read a clip file. A relative source video path that does not lead to the video from here but does from
        the clip's folder (clips written by older versions, or moved with their video) is made absolute."""
        try:
            d = json.loads(Path(path).read_text())
        except json.JSONDecodeError as e:
            raise ClipFormatError(f"{path}: not valid JSON ({e})") from None
        clip = cls.from_dict(d)
        video = clip.source.get("path") if isinstance(clip.source, dict) else None
        if video and not str(video).isdigit() and not Path(video).is_absolute() and not Path(video).exists():
            beside = Path(path).resolve().parent / video
            if beside.is_file():
                clip.source = {**clip.source, "path": str(beside.resolve())}
        return clip


class OutputPathError(ValueError):
    """An output that cannot be written: its folder missing or read-only, a folder in its place, or two outputs on
    one path."""


def check_outputs(targets: dict[str, str | os.PathLike | None]) -> dict[str, Path]:
    """``{kind: path}`` for the outputs given (None ones skipped), each writable and no two on one path; else
    ``OutputPathError`` with a sentence. Callers check before the work that produces them, not after."""
    out: dict[str, Path] = {}
    seen: dict[Path, str] = {}
    for kind, path in targets.items():
        if not path:
            continue
        p = Path(path)
        other = seen.setdefault(p.resolve(), kind)
        if other != kind:   # the second would silently replace the first
            raise OutputPathError(f"the {other} and {kind} files would both be written to {p}")
        folder = p.parent if str(p.parent) else Path(".")
        if p.is_dir():
            raise OutputPathError(f"cannot write the {kind} file {p}: it is a folder")
        if not folder.is_dir():
            raise OutputPathError(f"cannot write the {kind} file {p}: folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise OutputPathError(f"cannot write the {kind} file {p}: folder {folder} is not writable")
        out[kind] = p
    return out


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write to a temporary file in the target folder, then rename: never a half-written file."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OSError(f"folder {folder} does not exist")   # callers say "cannot write {path}: ..."
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path
