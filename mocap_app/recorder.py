"""Recording: per-frame pipeline results accumulated into a :class:`~mocap_app.clip.Clip`.

The pipeline worker appends one :class:`RecordedFrame` per processed frame while
recording; the UI turns the take into a clip (optionally trimmed) for review and
export. The recorder autosaves to a clip JSON in the user's data folder so that a
crash of the worker (or of the whole app) never loses a take: the file is written
atomically (``mocap_app.clip.atomic_write_text``), so it is always a readable clip.
"""
from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.camera import CameraIntrinsics
from engines.skeleton import NUM_JOINTS
from mocap_app.clip import Clip

log = logging.getLogger(__name__)


class RecorderError(RuntimeError):
    """A recording that cannot become a clip (nothing recorded, bad trim range)."""


def default_data_dir() -> Path:
    """The user's data folder for takes and autosaves (``$MOCAP_DATA_DIR`` overrides, for tests)."""
    env = os.environ.get("MOCAP_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "mocap"


def autosave_dir() -> Path:
    return default_data_dir() / "autosave"


@dataclass(frozen=True)
class RecordedFrame:
    """One processed frame as the recorder keeps it."""
    timestamp_s: float
    keypoints_px: np.ndarray        # [17, 2], NaN without a person
    confidence: np.ndarray          # [17]
    joints_cam_mm: np.ndarray       # [17, 3], NaN without a person
    joints_world_mm: np.ndarray | None = None   # [17, 3] when the world frame is known
    left_right_fixed: bool = False              # the keypoint stage mirrored MediaPipe's labels back


class Recorder:
    """Thread-safe take: the worker appends, the UI reads snapshots.

    ``intrinsics``/``source``/``engine`` describe the take; ``world`` is the world
    alignment dict (``mocap_app.world.WorldAlignment.to_dict``) when known.
    """

    def __init__(self, intrinsics: CameraIntrinsics, intrinsics_source: str = "unknown",
                 source: dict | None = None, engine: dict | None = None,
                 autosave_path: Path | None = None, autosave_every_s: float = 5.0):
        self.intrinsics = intrinsics
        self.intrinsics_source = intrinsics_source
        self.source = dict(source or {})
        self.engine = dict(engine or {})
        self.world: dict | None = None
        self._frames: list[RecordedFrame] = []
        self._lock = threading.Lock()
        self.autosave_path = autosave_path
        self.autosave_every_s = autosave_every_s
        self._last_save = time.monotonic()
        self._saved_count = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._frames)

    def append(self, frame: RecordedFrame) -> None:
        with self._lock:
            if self._frames and frame.timestamp_s <= self._frames[-1].timestamp_s:
                log.debug("dropping out-of-order frame at %.3f s", frame.timestamp_s)
                return
            self._frames.append(frame)
        if self.autosave_path is not None and time.monotonic() - self._last_save > self.autosave_every_s:
            self.autosave()

    def set_world(self, world: dict | None) -> None:
        with self._lock:
            self.world = world

    @property
    def dirty(self) -> bool:
        """True when frames were recorded since the last autosave."""
        return len(self) != self._saved_count

    def to_clip(self, start: int = 0, stop: int | None = None) -> Clip:
        """The take (frames ``[start, stop)``) as a clip; timestamps keep their origin."""
        with self._lock:
            frames = list(self._frames)
            world = self.world
        n = len(frames)
        stop = n if stop is None else stop
        if n == 0:
            raise RecorderError("nothing was recorded yet: press Record while the pipeline runs")
        if not (0 <= start < stop <= n):
            raise RecorderError(f"trim range [{start}, {stop}) is outside the recording's {n} frames")
        frames = frames[start:stop]
        kp = np.stack([f.keypoints_px for f in frames]).astype(np.float64)
        person = np.isfinite(kp).all(axis=(1, 2))
        has_world = world is not None and all(f.joints_world_mm is not None for f in frames)
        return Clip(timestamps_s=np.array([f.timestamp_s for f in frames], np.float64), person=person,
                    keypoints_px=kp, confidence=np.stack([f.confidence for f in frames]).astype(np.float64),
                    joints_cam_mm=np.stack([f.joints_cam_mm for f in frames]).astype(np.float64),
                    intrinsics=self.intrinsics, intrinsics_source=self.intrinsics_source,
                    source=dict(self.source), engine=dict(self.engine), world=world if has_world else None,
                    joints_world_mm=np.stack([f.joints_world_mm for f in frames]).astype(np.float64)
                    if has_world else None,
                    left_right_fixed=np.array([f.left_right_fixed for f in frames], bool))

    @classmethod
    def from_clip(cls, clip: Clip) -> "Recorder":
        """A recorder holding an existing clip (to review and trim a clip opened from disk)."""
        rec = cls(clip.intrinsics, clip.intrinsics_source, clip.source, clip.engine)
        rec.world = clip.world
        for i in range(len(clip)):
            rec._frames.append(RecordedFrame(
                float(clip.timestamps_s[i]), np.asarray(clip.keypoints_px[i], np.float32),
                np.asarray(clip.confidence[i], np.float32), np.asarray(clip.joints_cam_mm[i], np.float32),
                None if clip.joints_world_mm is None else np.asarray(clip.joints_world_mm[i], np.float32),
                bool(clip.left_right_fixed[i]) if clip.left_right_fixed is not None else False))
        rec._saved_count = len(rec._frames)
        return rec

    def autosave(self) -> Path | None:
        """Write the take to ``autosave_path`` (atomic); returns the path, or None when empty/disabled."""
        if self.autosave_path is None or len(self) == 0:
            return None
        n = len(self)
        try:
            self.autosave_path.parent.mkdir(parents=True, exist_ok=True)
            self.to_clip().save(self.autosave_path)
        except OSError as e:
            log.error("autosave to %s failed: %s", self.autosave_path, e)
            return None
        self._last_save = time.monotonic()
        self._saved_count = n
        log.debug("autosaved %d frames to %s", n, self.autosave_path)
        return self.autosave_path


def new_autosave_path() -> Path:
    """A fresh autosave file name, e.g. ``~/.local/share/mocap/autosave/take-20260101-120000.clip.json``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return autosave_dir() / f"take-{stamp}.clip.json"


def empty_frame(timestamp_s: float) -> RecordedFrame:
    """A frame without a person (timing is kept)."""
    return RecordedFrame(timestamp_s, np.full((NUM_JOINTS, 2), np.nan, np.float32),
                         np.zeros(NUM_JOINTS, np.float32), np.full((NUM_JOINTS, 3), np.nan, np.float32))
