"""Frames from a video file or a webcam (OpenCV), with timestamps in seconds.

``VideoSource`` hides the difference between the two: iterate it to get
``Frame`` records (BGR, as OpenCV decodes them). File timestamps come from the
container (``CAP_PROP_POS_MSEC`` of the frame just decoded) and fall back to
``index / fps`` when the container gives none or they stop increasing; webcam
timestamps come from a monotonic clock at grab time, because dropped frames
make ``index / fps`` drift. Every failure a user can cause (a path that does not
exist, a file that is not a decodable video, a camera that is not there) raises
``CaptureError`` with a sentence saying which.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from mocap_app.types import Frame

log = logging.getLogger(__name__)

# file name endings offered as videos (open dialog, drag and drop, `mocap-app FILE`)
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})

DEFAULT_CAMERA_FPS = 30.0


class CaptureError(RuntimeError):
    """A video file or camera could not be opened or read."""


@contextlib.contextmanager
def _quiet_opencv():
    """Silence OpenCV's own log (it warns on every absent camera index while probing)."""
    lg = getattr(getattr(cv2, "utils", None), "logging", None)
    if lg is None:
        yield
        return
    old = lg.getLogLevel()
    lg.setLogLevel(lg.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        lg.setLogLevel(old)


def _camera_backend() -> int:
    # V4L2 on Linux opens fast and fails fast; CAP_ANY also tries FFmpeg/OBSensor and logs errors.
    return cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY


class VideoSource:
    """A video file path or a webcam index, iterated as ``Frame`` s.

    Usage::

        with VideoSource("clip.mp4") as src:
            for frame in src:
                ...

    Attributes: ``fps`` (container or camera rate; 30 if the camera reports none),
    ``frame_count`` (``None`` for cameras and containers that do not say),
    ``size_wh`` (width, height in pixels), ``is_camera``.
    """

    def __init__(self, source: str | os.PathLike | int, *, camera_size_wh: tuple[int, int] | None = None):
        self.is_camera = isinstance(source, int) and not isinstance(source, bool)
        self.source = source if self.is_camera else Path(source)
        self._cap: cv2.VideoCapture | None = None
        self._pending = None          # first frame, decoded at open to prove the source works
        self._grabbed = None          # (index, timestamp, image or None) of the last grab()
        self._next_index = 0
        self._last_ts = -math.inf
        self._t0 = 0.0
        if self.is_camera:
            self._open_camera(int(source), camera_size_wh)
        else:
            self._open_file(self.source)

    # -- opening ----------------------------------------------------------------------
    def _open_file(self, path: Path) -> None:
        if not path.exists():
            raise CaptureError(f"Video file not found: {path}")
        if not path.is_file():
            raise CaptureError(f"{path} is not a file, so it cannot be read as a video")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            cap.release()
            raise CaptureError(f"{path} could not be opened as a video: OpenCV/FFmpeg found no decodable "
                               f"video stream (the file may be corrupt, truncated or not a video)")
        ok, img = cap.read()
        if not ok or img is None:
            cap.release()
            raise CaptureError(f"{path} opened as a video but its first frame could not be decoded "
                               f"(the file may be corrupt or truncated)")
        self._cap = cap
        self._pending = (img, cap.get(cv2.CAP_PROP_POS_MSEC))
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else DEFAULT_CAMERA_FPS
        n = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.frame_count = int(n) if n and math.isfinite(n) and n > 0 else None
        self.size_wh = (img.shape[1], img.shape[0])

    def _open_camera(self, index: int, size_wh: tuple[int, int] | None) -> None:
        with _quiet_opencv():
            cap = cv2.VideoCapture(index, _camera_backend())
            if cap.isOpened():
                cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)      # live use: hand out the newest frame, not a backlog
            if cap.isOpened() and size_wh is not None:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, size_wh[0])
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, size_wh[1])
            ok, img = cap.read() if cap.isOpened() else (False, None)
        if not ok or img is None:
            cap.release()
            raise CaptureError(f"Camera {index} is not available: there is no camera at that index, "
                               f"or another program is using it")
        self._cap = cap
        self._t0 = time.monotonic()
        self._pending = (img, None)
        fps = cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and math.isfinite(fps) and fps > 0 else DEFAULT_CAMERA_FPS
        self.frame_count = None
        self.size_wh = (img.shape[1], img.shape[0])

    # -- reading ----------------------------------------------------------------------
    def _timestamp(self, index: int, container_ms: float | None) -> float:
        if self.is_camera:
            ts = time.monotonic() - self._t0
        elif container_ms is not None and math.isfinite(container_ms) and container_ms / 1000.0 > self._last_ts:
            ts = container_ms / 1000.0
        else:
            ts = index / self.fps
            if ts <= self._last_ts:   # keep timestamps strictly increasing whatever the container says
                ts = self._last_ts + 1.0 / self.fps
        self._last_ts = ts
        return ts

    def read(self) -> Frame | None:
        """The next frame, or ``None`` at the end of a file (or when a camera stops delivering)."""
        if self.grab() is None:      # OpenCV's own read() is grab() then retrieve() too
            return None
        return self.retrieve()

    def grab(self) -> float | None:
        """Step to the next frame without making an image of it: its timestamp, or ``None`` at the end. ``retrieve``
        then gives the image, if it is wanted. For callers that skip most frames (a view of a board every 0.5 s):
        the colour conversion ``read`` does is a quarter to a half of its time."""
        if self._cap is None:
            raise CaptureError("this video source is closed")
        if self._pending is not None:
            img, ms = self._pending
            self._pending = None
            if self.is_camera:
                ms = None
        else:
            if not self._cap.grab():
                self._ended()
                return None
            img, ms = None, (None if self.is_camera else self._cap.get(cv2.CAP_PROP_POS_MSEC))
        i = self._next_index
        self._next_index += 1
        self._grabbed = (i, self._timestamp(i, ms), img)
        return self._grabbed[1]

    def retrieve(self) -> Frame | None:
        """The frame ``grab`` stepped to, as a ``Frame`` (None if it cannot be decoded)."""
        if self._grabbed is None:
            raise CaptureError("retrieve() needs a grab() first")
        i, ts, img = self._grabbed
        if img is None:
            ok, img = self._cap.retrieve()
            if not ok or img is None:
                return None
        return Frame(index=i, timestamp_s=ts, image_bgr=img)

    def _ended(self) -> None:
        self._grabbed = None
        if self.frame_count is not None and self._next_index < self.frame_count:
            log.warning("%s ended after %d of %d frames (truncated or damaged file?)",
                        self.source, self._next_index, self.frame_count)
            self.frame_count = self._next_index

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    # -- lifetime ---------------------------------------------------------------------
    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()

    def __repr__(self) -> str:
        kind = "camera" if self.is_camera else "file"
        return f"VideoSource({kind}={self.source!s}, {self.size_wh[0]}x{self.size_wh[1]} @ {self.fps:g} fps)"


SYSFS_VIDEO = Path("/sys/class/video4linux")


def read_still(path) -> np.ndarray:
    """A BGR image from an image file, or a video's first frame (a board filmed instead of photographed).
    Raises ``CaptureError`` with a sentence when it is neither."""
    img = cv2.imread(str(path))
    if img is not None:
        return img
    try:
        with VideoSource(path) as src:
            frame = src.read()
    except CaptureError:
        frame = None
    if frame is None:
        raise CaptureError(f"{path} could not be read as an image or a video")
    return frame.image_bgr


def camera_name(index: int, sysfs: Path = SYSFS_VIDEO) -> str | None:
    """The camera's own name where the system says it (Linux: ``/sys/class/video4linux/videoN/name``, e.g.
    "HD Pro Webcam C920"), else None. OpenCV has no portable way to ask."""
    try:
        name = (Path(sysfs) / f"video{int(index)}" / "name").read_text(errors="replace").strip()
    except OSError:
        return None
    return name or None


def list_cameras(max_index: int = 8) -> list[int]:
    """Indices ``0..max_index-1`` of cameras that open and deliver a frame (probed without log noise)."""
    found = []
    for i in range(max_index):
        if sys.platform.startswith("linux") and not os.path.exists(f"/dev/video{i}"):
            continue          # nothing to probe; avoids a slow open attempt per index
        with _quiet_opencv():
            cap = cv2.VideoCapture(i, _camera_backend())
            try:
                if cap.isOpened() and cap.read()[0]:
                    found.append(i)
            finally:
                cap.release()
    return found
