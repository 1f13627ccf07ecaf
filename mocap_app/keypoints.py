"""2D body keypoints from MediaPipe's BlazePose (Tasks ``PoseLandmarker``), offline.

The model is our shipped ``assets/mediapipe/pose_landmarker_full.task`` (rebuilt
by ``packaging/build_pose_task.py``), so nothing is downloaded at run time.
MediaPipe's 33 landmarks are mapped to the project's 17 joints with
``engines.skeleton.mediapipe_to_joints``.

Pixel convention: OpenCV's (pixel centres at integer coordinates, as in our
``CameraIntrinsics``). MediaPipe's normalised coordinates span the image edges,
so ``u = x * W - 0.5``, ``v = y * H - 0.5``.

Usage logging: mediapipe 1.2.2's native library sends usage analytics
(``mediapipe::tasks::core::logging::google_internal::HttpLoggingClient``, an
HTTPS POST with libcurl to ``https://play.googleapis.com/log``) when a task is
closed and about every 60 s while it runs. It has no option to turn that off.
``block_mediapipe_usage_logging`` (called by the detector unless told not to)
points libcurl's ``https_proxy`` at a closed local port, so the POST fails at
once without a DNS lookup or any packet leaving the machine. See
notes/keypoints.md for the evidence and the side effects.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from engines.skeleton import mediapipe_to_joints
from mocap_app.types import Frame, Keypoints2D

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "mediapipe" / "pose_landmarker_full.task"
NUM_LANDMARKS = 33

# Nothing listens on the discard port of the loopback interface: libcurl's CONNECT fails immediately.
USAGE_LOG_BLOCK_PROXY = "http://127.0.0.1:9"
_PROXY_VARS = ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")


class KeypointsError(RuntimeError):
    """The pose model could not be loaded or a frame could not be processed."""


def block_mediapipe_usage_logging() -> bool:
    """Stop mediapipe's native usage logging from reaching the network; True if it is blocked.

    Sets ``https_proxy``/``HTTPS_PROXY`` for this process (and its children) to
    ``USAGE_LOG_BLOCK_PROXY``. Leaves a user's own proxy alone (and says so):
    overriding it would break their other HTTPS traffic.
    """
    own = {k: v for k in _PROXY_VARS if (v := os.environ.get(k)) and v != USAGE_LOG_BLOCK_PROXY}
    if own:
        log.warning("a proxy is configured (%s); mediapipe's usage logging to play.googleapis.com "
                    "is not blocked, it goes through that proxy", ", ".join(sorted(own)))
        return False
    no_proxy = ",".join(os.environ.get(k, "") for k in ("no_proxy", "NO_PROXY"))
    if any(h.strip() in ("*", "googleapis.com", ".googleapis.com", "play.googleapis.com")
           for h in no_proxy.split(",")):
        log.warning("no_proxy exempts googleapis.com; mediapipe's usage logging is not blocked")
        return False
    os.environ["https_proxy"] = os.environ["HTTPS_PROXY"] = USAGE_LOG_BLOCK_PROXY
    return True


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence MediaPipe/TFLite's native start-up chatter (absl warnings about feedback tensors,
    XNNPACK, NORM_RECT) that goes straight to file descriptor 2 and has no switch.

    Used only around model creation and the first inference, where those lines come from;
    ``MOCAP_NATIVE_LOGS=1`` keeps them (for debugging).
    """
    if os.environ.get("MOCAP_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):       # no real stderr (e.g. some GUI launchers): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class MediaPipePoseDetector:
    """One person's 17 joints per frame, in pixels of the full frame, with confidences.

    ``running_mode="video"`` tracks across frames (the landmark model reuses the
    previous pose's region; the person detector runs only when tracking is lost),
    which needs strictly increasing millisecond timestamps: they are derived from
    ``Frame.timestamp_s`` and bumped by 1 ms when a frame repeats a timestamp.
    ``"image"`` treats every frame independently (slower, no temporal state).

    ``confidence`` per joint is the landmark's visibility times its presence
    (each when MediaPipe gives it), clipped to [0, 1]; derived joints (pelvis,
    spine, thorax, head) average their sources.
    """

    def __init__(self, model_path: str | os.PathLike | None = None, running_mode: str = "video",
                 min_pose_confidence: float = 0.5, *, block_usage_logging: bool = True):
        if running_mode not in ("video", "image"):
            raise KeypointsError(f"running_mode must be 'video' or 'image', not {running_mode!r}")
        if not 0.0 <= float(min_pose_confidence) <= 1.0:
            raise KeypointsError(f"min_pose_confidence must be in [0, 1], not {min_pose_confidence!r}")
        path = Path(model_path) if model_path is not None else DEFAULT_MODEL_PATH
        if not path.is_file():
            raise KeypointsError(f"pose model not found: {path} (rebuild it with "
                                 f"`python packaging/build_pose_task.py`)")
        if block_usage_logging:
            block_mediapipe_usage_logging()

        import mediapipe as mp
        from mediapipe.tasks.python import vision
        from mediapipe.tasks.python.core.base_options import BaseOptions

        self._mp = mp
        self.running_mode = running_mode
        self.model_path = path
        self._vision = vision
        self._options = vision.PoseLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(path)),
            running_mode=vision.RunningMode.VIDEO if running_mode == "video" else vision.RunningMode.IMAGE,
            num_poses=1,
            min_pose_detection_confidence=float(min_pose_confidence),
            min_pose_presence_confidence=float(min_pose_confidence),
            min_tracking_confidence=float(min_pose_confidence),
            output_segmentation_masks=False,
        )
        self._landmarker = None
        self._create()
        self._lm = np.empty((NUM_LANDMARKS, 3), np.float32)   # reused: x, y, confidence

    def _create(self) -> None:
        try:
            with _quiet_native_stderr():
                self._landmarker = self._vision.PoseLandmarker.create_from_options(self._options)
        except Exception as e:  # mediapipe raises RuntimeError/ValueError with its C status text
            raise KeypointsError(f"could not load the pose model {self.model_path}: {e}") from e
        self._last_ts_ms = -1

    def reset(self) -> None:
        """Forget the tracked person and the timestamp history (start of a new video or camera stream).

        VIDEO mode cannot go back in time, so a new stream needs a fresh landmarker.
        """
        self.close()
        self._create()

    def detect(self, frame: Frame) -> Keypoints2D:
        """Joints of the most prominent person in ``frame``; ``Keypoints2D.empty()`` if there is none."""
        if self._landmarker is None:
            raise KeypointsError("this detector is closed")
        img = frame.image_bgr
        if not (isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8):
            raise KeypointsError(f"frame {frame.index}: expected an HxWx3 uint8 BGR image, got "
                                 f"{getattr(img, 'shape', None)} {getattr(img, 'dtype', type(img).__name__)}")
        h, w = img.shape[:2]
        mp_image = self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        if self.running_mode == "video":
            ts = int(round(frame.timestamp_s * 1000.0))
            if ts <= self._last_ts_ms:
                if ts < self._last_ts_ms - 1000:
                    log.warning("frame %d: timestamp %.3f s is before the previous frame's; a new stream? "
                                "call reset() first (continuing 1 ms after the previous one)",
                                frame.index, frame.timestamp_s)
                ts = self._last_ts_ms + 1
            first = self._last_ts_ms < 0
            self._last_ts_ms = ts
            with _quiet_native_stderr() if first else contextlib.nullcontext():
                result = self._landmarker.detect_for_video(mp_image, ts)
        else:
            result = self._landmarker.detect(mp_image)
        if not result.pose_landmarks:
            return Keypoints2D.empty()
        lm = self._lm
        for i, p in enumerate(result.pose_landmarks[0]):
            vis = 1.0 if p.visibility is None else p.visibility
            pres = 1.0 if p.presence is None else p.presence
            lm[i, 0] = p.x * w - 0.5
            lm[i, 1] = p.y * h - 0.5
            lm[i, 2] = vis * pres
        joints = mediapipe_to_joints(lm)
        xy = np.ascontiguousarray(joints[:, :2])
        if not np.isfinite(xy).all():
            return Keypoints2D.empty()
        return Keypoints2D(xy, np.clip(joints[:, 2], 0.0, 1.0))

    def close(self) -> None:
        if getattr(self, "_landmarker", None) is not None:
            self._landmarker.close()
            self._landmarker = None

    def __enter__(self) -> "MediaPipePoseDetector":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: mediapipe's modules may already be gone
            pass
