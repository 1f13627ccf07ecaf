"""Video file -> clip: frames -> 2D keypoints -> absolute 3D (camera) [-> world].

Decoding runs on its own thread (OpenCV releases the GIL while decoding), so on a
2-core machine it overlaps with MediaPipe; the lifter runs in batches.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from engines.camera import CameraIntrinsics
from engines.skeleton import NUM_JOINTS
from mocap_app.clip import Clip
from mocap_app.types import Frame

log = logging.getLogger(__name__)

DEFAULT_DIAGONAL_FOV_DEG = 70.0   # typical webcam / phone main camera, used when nothing is known


class NoPersonError(RuntimeError):
    """The video holds no frame in which a person was found."""


def resolve_intrinsics(size_wh: tuple[int, int], focal_px: float | None = None, fov_deg: float | None = None,
                       profile: CameraIntrinsics | None = None) -> tuple[CameraIntrinsics, str]:
    """The camera model for a video: explicit focal > FOV > calibration profile > default FOV."""
    w, h = size_wh
    if focal_px is not None:
        return CameraIntrinsics.from_focal(focal_px, w, h), "cli focal"
    if fov_deg is not None:
        return CameraIntrinsics.from_fov(fov_deg, w, h, "horizontal"), "cli horizontal fov"
    if profile is not None:
        return profile, "profile"
    log.warning("no focal length given: assuming a %.0f deg diagonal field of view; absolute distances "
                "scale with the focal length (calibrate for metric depth and the most accurate pose)",
                DEFAULT_DIAGONAL_FOV_DEG)
    return CameraIntrinsics.from_fov(DEFAULT_DIAGONAL_FOV_DEG, w, h, "diagonal"), "default fov"


def lifter_weights(intrinsics_source: str, engine: str = "absposelifter",
                   weights: str | Path | None = None) -> Path | None:
    """The AbsPoseLifter weights for a camera model (``None``: the engine's shipped ones).

    Explicit ``weights`` win. When the focal length is only the default guess, the focal-free lifter: the shipped
    one takes the focal length as an input and is better with a focal length within about 20 % of the truth, but
    worse beyond (validation MPJPE 53.7 vs 48.7 mm at 0.7 x the true focal, 52.0 at 1.4 x;
    ``scripts/focal_misestimate.py``), and a guessed field of view can be that far off.
    """
    if weights:
        return Path(weights)
    if engine == "absposelifter" and intrinsics_source == "default fov":
        from engines.lifter import FOCAL_FREE_WEIGHTS
        return FOCAL_FREE_WEIGHTS
    return None


def engine_info(engine: str, lifter, refine: str | None = None) -> dict:
    """The clip's ``engine`` record: name, runtime backend, refinement and, when they are not the engine's bundled
    ones (adapted weights, the focal-free lifter), which weights ran."""
    from engines.lifter import BUNDLED_WEIGHTS
    info = {"name": engine, "backend": lifter.runtime.name, "refine": refine}
    w = getattr(lifter, "weights", None)
    bundled = BUNDLED_WEIGHTS.get(engine)
    if w is not None and (bundled is None or Path(w).resolve() != bundled.resolve()):
        info["weights"] = Path(w).name
    return info


def threaded_frames(source, maxsize: int = 8) -> Iterator[Frame]:
    """Iterate ``source`` on a background thread through a bounded queue (every frame kept)."""
    q: queue.Queue = queue.Queue(maxsize=maxsize)
    done = object()
    err: list[BaseException] = []
    stop = threading.Event()

    def reader():
        try:
            for f in source:
                while not stop.is_set():
                    try:
                        q.put(f, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # surfaced in the consumer
            err.append(e)
        finally:
            q.put(done)

    t = threading.Thread(target=reader, name="decode", daemon=True)
    t.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            yield item
        if err:
            raise err[0]
    finally:
        # The caller may close ``source`` as soon as we return (``with VideoSource(...)``): wait for
        # the reader to leave ``source`` first, else it decodes from a released capture (segfault).
        stop.set()
        while t.is_alive():
            try:
                q.get(timeout=0.05)   # unblock a reader stuck in put() on a full queue
            except queue.Empty:
                pass
        t.join()


@dataclass
class StageTimes:
    """Per-frame latency of each stage in milliseconds."""
    decode_ms: list[float] = field(default_factory=list)
    keypoints_ms: list[float] = field(default_factory=list)
    lift_ms: list[float] = field(default_factory=list)


def process_video(path: str | Path, focal_px: float | None = None, fov_deg: float | None = None,
                  profile: CameraIntrinsics | None = None, engine: str = "absposelifter", backend: str = "auto",
                  max_frames: int | None = None, progress: Callable[[int, int], None] | None = None,
                  times: StageTimes | None = None, lifter=None, detector=None, fix_left_right: bool = True,
                  weights: str | Path | None = None) -> Clip:
    """Run the whole pipeline on a video file and return the clip (camera-frame 3D). ``fix_left_right``: mirror
    back skeletons MediaPipe suddenly mirrors (``mocap_app.keypoints.LeftRightTracker``; for an own detector, its
    own setting applies). Without ``lifter``, ``engine`` is loaded with ``weights`` or those ``lifter_weights``
    picks for the camera model."""
    from engines.camera import undistort_image, undistort_px
    from engines.lifter import load_lifter
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector

    with VideoSource(path) as src:
        intr, intr_source = resolve_intrinsics(src.size_wh, focal_px, fov_deg, profile)
        if profile is not None and (profile.width_px, profile.height_px) != tuple(src.size_wh):
            raise ValueError(f"calibration is for {profile.width_px}x{profile.height_px} but the video is "
                             f"{src.size_wh[0]}x{src.size_wh[1]}")
        if lifter is None:
            w = lifter_weights(intr_source, engine, weights)
            if w is not None and not weights:
                log.info("the focal length is a guess: lifting with the focal-free AbsPoseLifter")
            lifter = load_lifter(engine, backend=backend, weights=w)
        own_detector = detector is None
        detector = detector or MediaPipePoseDetector(running_mode="video", fix_left_right=fix_left_right)
        ts, kps, confs, fixed = [], [], [], []
        # image engines (PersPose) lift inside the loop, while the frame is at hand; 2D lifters
        # lift the whole clip in one batch afterwards (faster)
        needs_images = getattr(lifter, "needs_images", False)
        per_frame: list[np.ndarray] = []
        total = src.frame_count or 0
        try:
            t_prev = time.perf_counter()
            for frame in threaded_frames(src):
                t0 = time.perf_counter()
                k = detector.detect(frame)
                t1 = time.perf_counter()
                if times is not None:
                    times.decode_ms.append((t0 - t_prev) * 1e3)   # time waiting for the decoder
                    times.keypoints_ms.append((t1 - t0) * 1e3)
                ts.append(frame.timestamp_s); kps.append(k.xy_px); confs.append(k.confidence)
                fixed.append(k.left_right_fixed)
                if needs_images:
                    per_frame.append(lifter.lift(undistort_px(k.xy_px[None], intr), k.confidence[None], intr.K,
                                                 images=[undistort_image(frame.image_bgr, intr)])[0])
                if progress:
                    progress(len(ts), total)
                t_prev = time.perf_counter()
                if max_frames and len(ts) >= max_frames:
                    break
        finally:
            if own_detector:
                detector.close()
        fps, n_src = src.fps, src.frame_count
    if not ts:
        raise NoPersonError(f"{path}: the video has no frames")
    kp = np.asarray(kps, np.float32).reshape(-1, NUM_JOINTS, 2)
    conf = np.asarray(confs, np.float32).reshape(-1, NUM_JOINTS)
    person = np.isfinite(kp).all((1, 2))
    if not person.any():
        raise NoPersonError(f"{path}: no person was found in any of its {len(ts)} frames")
    t0 = time.perf_counter()
    # the clip keeps the detected pixels (they match the video); the lifter gets the pinhole camera's
    joints = np.asarray(per_frame, np.float32) if needs_images else lifter.lift(undistort_px(kp, intr), conf, intr.K)
    if times is not None and not needs_images:
        times.lift_ms.extend([(time.perf_counter() - t0) * 1e3 / len(kp)] * len(kp))
    log.info("%s: %d frames, person in %d, left/right mirrored back in %d", path, len(ts), int(person.sum()),
             int(sum(fixed)))
    return Clip(timestamps_s=np.asarray(ts, np.float64), person=person, keypoints_px=kp, confidence=conf,
                joints_cam_mm=joints, intrinsics=intr, intrinsics_source=intr_source,
                left_right_fixed=np.asarray(fixed, bool),
                source={"path": str(Path(path).resolve()), "fps": fps, "frame_count": n_src,
                        "width_px": intr.width_px, "height_px": intr.height_px},
                engine=engine_info(engine, lifter))


class ReliftError(ValueError):
    """A take that cannot be lifted again as asked (e.g. an image engine without the video)."""


def relift_clip(clip: Clip, intrinsics: CameraIntrinsics, intrinsics_source: str, engine: str | None = None,
                backend: str = "auto", weights: str | Path | None = None, lifter=None,
                video: str | Path | None = None, progress: Callable[[int, int], None] | None = None) -> Clip:
    """Lift a take's stored 2D keypoints again with another camera model (or other weights): no second 2D pass.

    The 3D of a monocular take depends on the focal length it was lifted with (root depth scales with it, and the
    shipped lifter takes it as an input), so a take recorded before calibrating is lifted again rather than recorded
    again. ``engine`` defaults to the one that made the take; the weights follow ``lifter_weights`` (a calibrated
    camera gets the lifter that takes the focal length). An image engine (PersPose) needs the take's video: frames are
    matched to the take by timestamp (``video`` defaults to the path the take was made from). The result has no world
    frame, plausibility or refinement: they derive from the camera-frame joints, so the caller redoes them.
    """
    from dataclasses import replace

    from engines.camera import undistort_px
    from engines.lifter import load_lifter

    if (intrinsics.width_px, intrinsics.height_px) != (clip.intrinsics.width_px, clip.intrinsics.height_px):
        raise ReliftError(f"the camera model is for {intrinsics.width_px}x{intrinsics.height_px} but the take is "
                          f"{clip.intrinsics.width_px}x{clip.intrinsics.height_px}")
    engine = engine or (clip.engine or {}).get("name") or "absposelifter"
    if lifter is None:
        lifter = load_lifter(engine, backend=backend, weights=lifter_weights(intrinsics_source, engine, weights))
    person = np.asarray(clip.person, bool)
    kp = undistort_px(np.where(person[:, None, None], clip.keypoints_px, np.nan).astype(np.float32), intrinsics)
    conf = np.nan_to_num(np.asarray(clip.confidence, np.float32))
    if getattr(lifter, "needs_images", False):
        joints = _relift_with_frames(clip, kp, conf, intrinsics, lifter, video, progress)
    else:
        joints = lifter.lift(kp, conf, intrinsics.K)
        if progress:
            progress(len(clip), len(clip))
    return replace(clip, joints_cam_mm=np.asarray(joints, np.float64), intrinsics=intrinsics,
                   intrinsics_source=intrinsics_source, engine=engine_info(engine, lifter), world=None,
                   joints_world_mm=None, plausibility=None)


def _relift_with_frames(clip: Clip, kp: np.ndarray, conf: np.ndarray, intr: CameraIntrinsics, lifter,
                        video, progress) -> np.ndarray:
    """Lift frame by frame with the video's images, each matched to the take's frame by its timestamp (``kp``:
    the take's keypoints already undistorted)."""
    from engines.camera import undistort_image
    from mocap_app.capture import CaptureError, VideoSource

    path = video or (clip.source or {}).get("path")
    if not path or not Path(str(path)).is_file():
        raise ReliftError(f"the {getattr(lifter, 'name', 'image')} engine needs the take's video frames, and "
                          + (f"its video {path} is not there" if path and not str(path).isdigit()
                             else "this take was recorded live, without a video")
                          + ": re-lift it with AbsPoseLifter, or open the video and process it again")
    out = np.full((len(clip), NUM_JOINTS, 3), np.nan, np.float32)
    todo = np.flatnonzero(clip.person)
    ts = np.asarray(clip.timestamps_s, float)
    done = np.zeros(len(clip), bool)
    try:
        with VideoSource(path) as src:
            if tuple(src.size_wh) != (intr.width_px, intr.height_px):
                raise ReliftError(f"{path} is {src.size_wh[0]}x{src.size_wh[1]}, not the take's "
                                  f"{intr.width_px}x{intr.height_px}: it is not this take's video")
            tol = 0.5 / max(float(src.fps or 0) or clip.fps, 1.0)
            last = ts[todo[-1]] if len(todo) else -np.inf
            for frame in threaded_frames(src):
                if frame.timestamp_s > last + tol:
                    break
                j = int(np.searchsorted(ts, frame.timestamp_s))   # the take's timestamps increase
                i = min((k for k in (j - 1, j) if 0 <= k < len(ts)), key=lambda k: abs(ts[k] - frame.timestamp_s))
                if abs(ts[i] - frame.timestamp_s) > tol or not clip.person[i] or done[i]:
                    continue
                image = undistort_image(frame.image_bgr, intr)
                out[i] = lifter.lift(kp[i:i + 1], conf[i:i + 1], intr.K, images=[image])[0]
                done[i] = True
                if progress:
                    progress(int(done.sum()), len(todo))
    except CaptureError as e:
        raise ReliftError(str(e)) from None
    missing = int(len(todo) - done[todo].sum())
    if missing:
        raise ReliftError(f"{path} does not hold {missing} of the take's {len(todo)} frames with a person "
                          "(matched by time): it is not this take's video")
    return out
