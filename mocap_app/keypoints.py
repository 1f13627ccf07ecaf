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

import collections
import contextlib
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from engines.skeleton import FLIP_PERM, J, mediapipe_to_joints
from mocap_app.types import Frame, Keypoints2D

log = logging.getLogger(__name__)

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "mediapipe" / "pose_landmarker_full.task"
NUM_LANDMARKS = 33
_FLIP = list(FLIP_PERM)                                          # joint order with left and right exchanged
_LR = [j for j, m in enumerate(FLIP_PERM) if m != j]             # the 12 joints that have a mirror partner

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


def facing_width(xy_px: np.ndarray) -> float:
    """Signed width of the torso across its axis, in torso lengths: about +0.5 when the person faces the camera
    (their left on the image's right), -0.5 when they show their back, near 0 side-on."""
    up = xy_px[J["thorax"]] - xy_px[J["pelvis"]]
    lr = 0.5 * (xy_px[J["left_shoulder"]] - xy_px[J["right_shoulder"]] + xy_px[J["left_hip"]] - xy_px[J["right_hip"]])
    return float((lr[1] * up[0] - lr[0] * up[1]) / max(float(up @ up), 1e-9))


class LeftRightTracker:
    """Undo MediaPipe's left/right mirroring of a whole skeleton in a tracked 2D stream.

    MediaPipe sometimes labels the whole skeleton the other way round for a
    stretch of frames: on the pose2sim clip, cam02 (a front view of a man
    balancing on a treadmill) is mirrored in 25 of 100 frames, found by 4-view
    consistency; the sports2d demo has 4 such frames during jumping jacks. The
    lifter then turns the person round by 180 deg. One view cannot tell which
    labelling is right, but a mirroring is a jump while a real turn passes
    through side-on. ``facing_width`` says which way a frame faces when the torso
    is clearly frontal or from behind (``|w| > min_width``). The reference is the
    last such output frame, at most ``max_gap_s`` old. A new frame is mirrored back
    when all of these hold:

    * it is clearly frontal/back and faces the other way than the reference;
    * its left/right joints jumped from the previous frame's by more than
      ``min_jump`` torso lengths (a turn moves them a little per frame);
    * mirrored, they lie where the reference's are: closer than MediaPipe's labels
      by ``ratio``, and within ``max_step`` torso lengths (or ``max_speed`` torso
      lengths per second since the reference, whichever is more);
    * MediaPipe's own labels faced the other way in most clear frames of the last
      ``memory_s``, so the jump is into a mirroring, not back out of one.

    A side-on person looks the same either way round, so nothing changes then.
    Frames that MediaPipe gets wrong in other ways (common around a mirroring)
    do not become the reference unless they follow on from it. A correction is
    dropped after ``max_correction_s`` (MediaPipe's mirrorings seen so far lasted
    at most 0.33 s). A frame without a person starts afresh. The defaults were
    chosen on those two clips, so these are not held-out results; each can move
    by about half either way with at most two frames per clip changing, except
    ``max_step``, which must stay >= 0.25 (``scripts/left_right_sweep.py``). A
    half turn faster than ~0.2 s (at 30 fps) looks like a mirroring.
    """

    def __init__(self, min_width: float = 0.15, max_gap_s: float = 0.15, max_step: float = 0.3,
                 max_speed: float = 6.0, ratio: float = 0.6, min_jump: float = 0.3, memory_s: float = 2.0,
                 max_correction_s: float = 1.0):
        self.min_width, self.max_gap_s, self.max_step = float(min_width), float(max_gap_s), float(max_step)
        self.min_jump, self.memory_s = float(min_jump), float(memory_s)
        self.max_speed, self.ratio, self.max_correction_s = float(max_speed), float(ratio), float(max_correction_s)
        self.reset()

    def reset(self) -> None:
        self._ref: np.ndarray | None = None       # last clearly frontal/back output [17, 2]
        self._ref_t = 0.0
        self._ref_sign = 0.0                      # which way it faces (sign of facing_width)
        self._last: np.ndarray | None = None      # the previous frame's output
        self._raw_signs: collections.deque = collections.deque()   # (t, sign) of MediaPipe's clear frames
        self._since: float | None = None          # start of the current run of corrected frames, or None

    @property
    def correcting(self) -> bool:
        return self._since is not None

    def _ref_distance(self, x: np.ndarray) -> float:
        """Mean distance of ``x``'s left/right joints to the reference's (px)."""
        return float(np.linalg.norm(x[_LR] - self._ref[_LR], axis=-1).mean())

    def _mirror_back(self, x: np.ndarray, w: float, step_px: float, torso_px: float) -> bool:
        if self._ref is None or abs(w) <= self.min_width or np.sign(w) == self._ref_sign:
            return False
        if float(np.linalg.norm(x[_LR] - self._last[_LR], axis=-1).mean()) < self.min_jump * torso_px:
            return False      # no jump from the previous frame: a turn, not a mirroring
        if sum(s for _, s in self._raw_signs) * np.sign(w) >= 0:
            return False      # MediaPipe's labels mostly faced this way lately: it is coming back from a mirroring
        d_mirrored = self._ref_distance(x[_FLIP])
        return d_mirrored < step_px and d_mirrored < self.ratio * self._ref_distance(x)

    def update(self, kp: Keypoints2D, timestamp_s: float) -> Keypoints2D:
        """The detection, mirrored back when it is a mirroring (``left_right_fixed`` set then)."""
        if not kp.person_found:
            self.reset()
            return kp
        t, x = float(timestamp_s), kp.xy_px
        if self._ref is not None and t - self._ref_t > self.max_gap_s:
            self._ref = None
        w = facing_width(x)
        torso_px = float(np.linalg.norm(x[J["thorax"]] - x[J["pelvis"]]))
        step_px = max(self.max_step, self.max_speed * (t - self._ref_t)) * torso_px   # how far it may have moved
        while self._raw_signs and t - self._raw_signs[0][0] > self.memory_s:
            self._raw_signs.popleft()
        fix = self._mirror_back(x, w, step_px, torso_px)
        if abs(w) > self.min_width:
            self._raw_signs.append((t, float(np.sign(w))))
        if fix:
            self._since = t if self._since is None else self._since
            if t - self._since > self.max_correction_s:
                log.info("left/right: MediaPipe kept the other labelling for %.1f s; following it again",
                         t - self._since)
                fix, self._ref = False, None
        if not fix:
            self._since = None
        out = Keypoints2D(x[_FLIP], kp.confidence[_FLIP], left_right_fixed=True) if fix else kp
        # a clear frame that does not follow on from the reference is one MediaPipe got wrong otherwise
        if abs(w) > self.min_width and (self._ref is None or self._ref_distance(out.xy_px) < step_px):
            self._ref, self._ref_t, self._ref_sign = out.xy_px, t, float(np.sign(-w if fix else w))
        self._last = out.xy_px
        return out


def fix_left_right_swaps(xy_px: np.ndarray, confidence: np.ndarray, timestamps_s: np.ndarray,
                         **kwargs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``LeftRightTracker`` over a recorded stream: ``(xy [F,17,2], confidence [F,17], fixed [F] bool)``."""
    tr = LeftRightTracker(**kwargs)
    xy, cf = np.array(xy_px, np.float32), np.array(confidence, np.float32)
    fixed = np.zeros(len(xy), bool)
    for f in range(len(xy)):
        k = tr.update(Keypoints2D(xy[f], cf[f]), float(timestamps_s[f]))
        xy[f], cf[f], fixed[f] = k.xy_px, k.confidence, k.left_right_fixed
    return xy, cf, fixed


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

    In video mode, ``fix_left_right`` (default) runs a ``LeftRightTracker`` on the
    stream, so a skeleton MediaPipe suddenly mirrors is mirrored back
    (``Keypoints2D.left_right_fixed``).
    """

    def __init__(self, model_path: str | os.PathLike | None = None, running_mode: str = "video",
                 min_pose_confidence: float = 0.5, *, fix_left_right: bool = True, block_usage_logging: bool = True):
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
        self._left_right = LeftRightTracker() if fix_left_right and running_mode == "video" else None
        self._create()
        self._lm = np.empty((NUM_LANDMARKS, 3), np.float32)   # reused: x, y, confidence

    def _create(self) -> None:
        try:
            with _quiet_native_stderr():
                self._landmarker = self._vision.PoseLandmarker.create_from_options(self._options)
        except Exception as e:  # mediapipe raises RuntimeError/ValueError with its C status text
            raise KeypointsError(f"could not load the pose model {self.model_path}: {e}") from e
        self._last_ts_ms = -1
        if self._left_right is not None:
            self._left_right.reset()

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
        kp = self._keypoints(result, w, h)
        if self._left_right is not None:   # (video mode) on the detector's clock, which never goes back
            kp = self._left_right.update(kp, self._last_ts_ms / 1000.0)
        return kp

    def _keypoints(self, result, w: int, h: int) -> Keypoints2D:
        """MediaPipe's first pose as our 17 joints in frame pixels (empty when there is none)."""
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
        return Keypoints2D(xy, np.clip(joints[:, 2], 0.0, 1.0)) if np.isfinite(xy).all() else Keypoints2D.empty()

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
