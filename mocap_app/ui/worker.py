"""The pipeline off the UI thread: capture -> 2D -> 3D -> world -> recorder.

Two plain Python threads (both spend most of their time in C++ that releases the
GIL: OpenCV decoding, MediaPipe, ONNX Runtime):

* the **capture** thread reads frames into a bounded queue. Live sources (a webcam)
  use a one-slot queue that always holds the *newest* frame (stale frames are
  dropped and counted), so latency never builds up; files use a blocking queue
  so every frame is processed.
* the **processing** thread runs detection, lifting, world alignment, display
  smoothing and the recorder, and publishes a :class:`FrameResult`.

The UI is told through a Qt signal, but only when it has consumed the previous
result (``take_latest``), so a slow UI can never build a backlog of queued signals.
"""
from __future__ import annotations

import logging
import os
import queue
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal

from engines.camera import CameraIntrinsics, undistort_image, undistort_px
from engines.skeleton import NUM_JOINTS
from mocap_app.recorder import RecordedFrame, Recorder, new_autosave_path

log = logging.getLogger(__name__)

WORLD_MIN_FRAMES = 15        # valid frames before the first world estimate
WORLD_LOCK_FRAMES = 90       # the estimate is refined until this many valid frames, then kept
DISPLAY_MAX_PX = 720         # frames are downscaled on the worker so the UI thread only blits


@dataclass
class PipelineConfig:
    """What to run on which source."""
    source: str | int                     # video path or camera index
    live: bool = False                    # camera: drop stale frames; file: process every frame
    engine: str = "absposelifter"
    backend: str = "auto"
    weights: Path | None = None           # None: the engine's bundled weights (else e.g. `mocap-app adapt` output)
    refine: str | None = None             # "zedo": refine every 3D pose with the ZeDO pose prior
    refine_iterations: int = 20
    fix_left_right: bool = True           # mirror back skeletons MediaPipe suddenly mirrors (LeftRightTracker)
    focal_px: float | None = None
    fov_deg: float | None = None
    profile: CameraIntrinsics | None = None
    camera_profile: object | None = None  # mocap_app.calibration.profile.CameraProfile, scaled to the source
    smoothing: float = 0.5                # 0 = off .. 1 = strongest (display only; export has its own)
    record: bool = False                  # start recording immediately (files: the whole file)
    source_factory: object | None = None  # picklable callable returning a source (tests, benchmarks)
    use_process: bool = True              # run the pipeline in a worker process (else a thread)
    autosave_path: str | None = None      # set by PipelineWorker when autosave is on
    autosave_every_s: float = 5.0
    max_frames: int | None = None
    autosave: bool = True
    placement: object | None = None       # mocap_app.world.CameraPlacement: what the user knows of pitch/roll/height

    def camera_size_wh(self) -> tuple[int, int] | None:
        """The resolution to ask a camera for: the one its profile was calibrated at (a webcam's default mode may be
        another crop of the sensor, which the profile cannot be scaled to); None for files, or without a profile."""
        if isinstance(self.source, int) and self.camera_profile is not None and self.focal_px is None:
            return tuple(self.camera_profile.size)
        return None


@dataclass
class FrameResult:
    """One processed frame, everything the UI draws."""
    index: int
    timestamp_s: float
    image_bgr: np.ndarray                 # display copy (downscaled to <= DISPLAY_MAX_PX)
    display_scale: float                  # image_bgr pixels per source pixel
    keypoints_px: np.ndarray              # [17, 2], NaN when no person
    confidence: np.ndarray                # [17]
    joints_cam_mm: np.ndarray             # [17, 3]
    joints_world_mm: np.ndarray           # [17, 3] (display-smoothed)
    t_capture: float                      # perf_counter when the frame was read
    stage_ms: dict[str, float] = field(default_factory=dict)   # wait, 2d, 3d, world
    fps: float = 0.0
    frames_done: int = 0
    frames_total: int = 0
    dropped: int = 0
    recording: bool = False
    recorded: int = 0
    world_method: str = ""
    cam_R: np.ndarray | None = None       # camera -> displayed world rotation (frustum)
    cam_t_mm: np.ndarray | None = None
    world: dict | None = None             # the world alignment so far (WorldAlignment.to_dict)

    @property
    def person(self) -> bool:
        return bool(np.isfinite(self.keypoints_px).all())


class StreamingOneEuro:
    """One Euro filter (Casiez et al. 2012) for a live stream of ``[17, 3]`` poses.

    Same maths as ``mocap_app.export.filters.one_euro`` but one sample at a time;
    a joint's x, y, z share one cutoff. ``strength`` in [0, 1] maps to the cutoff at
    rest (0 = off, 1 = 0.3 Hz: very smooth, laggy).
    """

    def __init__(self, strength: float = 0.5, beta: float = 0.02, d_cutoff_hz: float = 1.0):
        self.strength = strength
        self.beta = beta
        self.d_cutoff_hz = d_cutoff_hz
        self.reset()

    def reset(self) -> None:
        self._x = None
        self._dx = None
        self._t = None

    @property
    def min_cutoff_hz(self) -> float:
        s = float(np.clip(self.strength, 0.0, 1.0))
        return float(np.exp(np.log(8.0) + s * (np.log(0.3) - np.log(8.0))))

    @staticmethod
    def _alpha(cutoff, dt):
        tau = 1.0 / (2 * np.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        x = np.asarray(x, float)
        if self.strength <= 0 or not np.isfinite(x).all():
            if not np.isfinite(x).all():
                self.reset()
            return x
        if self._x is None:
            self._x, self._dx, self._t = x, np.zeros_like(x), t
            return x
        dt = max(t - self._t, 1e-3)
        dx = (x - self._x) / dt
        a_d = self._alpha(self.d_cutoff_hz, dt)
        self._dx = a_d * dx + (1 - a_d) * self._dx
        cutoff = self.min_cutoff_hz + self.beta * np.linalg.norm(self._dx, axis=-1, keepdims=True)
        a = self._alpha(cutoff, dt)
        self._x = a * x + (1 - a) * self._x
        self._t = t
        return self._x


def camera_axes_to_world(joints_cam_mm: np.ndarray) -> np.ndarray:
    """Until the world frame is estimated: camera axes flipped to Y up (level-camera guess)."""
    return np.asarray(joints_cam_mm, float) * np.array([1.0, -1.0, -1.0])


class PipelineRunner:
    """The pipeline itself (no Qt): runs in the worker process (or a thread), reports through ``emit``.

    ``emit(kind, payload)`` kinds: ``started`` (dict), ``status`` (str), ``result`` (FrameResult),
    ``failed`` (str), ``take`` (Clip or None: the recording, at the end), ``finished`` (bool).
    Control comes in through ``stop``/``recording`` events and the ``smoothing`` value
    (multiprocessing objects when in a process).
    """

    def __init__(self, config: PipelineConfig, emit, stop, recording, smoothing):
        self.config = config
        self.emit = emit
        self._stop = stop
        self._recording = recording
        self._smoothing = smoothing
        self.recorder: Recorder | None = None
        self.refiner = None                            # ZeDO, when config.refine == "zedo"
        self._smoother = StreamingOneEuro(config.smoothing)
        self.alignment = None
        placement = config.placement
        self._known_placement = placement.overrides() if placement is not None else {}
        # a fully known placement needs no body cues: the world frame holds from the first frame, and never changes
        self._placement_complete = placement is not None and placement.complete
        self._guess_offset: np.ndarray | None = None   # level-camera guess until the world is estimated

    def _publish(self, r: FrameResult) -> None:
        self.emit("result", r)

    def run(self) -> None:
        try:
            ok = self._run()
        except Exception as e:  # noqa: BLE001 - any crash must keep the recording and reach the user
            log.error("pipeline crashed:\n%s", traceback.format_exc())
            saved = self.recorder.autosave() if self.recorder is not None else None
            msg = _describe(e)
            if saved:
                msg += f" The recording so far was saved to {saved}."
            self.emit("failed", msg)
            self._send_take()
            self.emit("finished", False)
            return
        if self.recorder is not None:
            self.recorder.autosave()
        self._send_take()
        self.emit("finished", ok)

    def _send_take(self) -> None:
        rec = self.recorder
        clip = None
        if rec is not None and len(rec) > 0:
            try:
                clip = rec.to_clip()
            except Exception as e:  # noqa: BLE001
                log.error("recording could not be assembled: %s", e)
        self.emit("take", (clip, str(rec.autosave_path) if rec is not None and rec.autosave_path else None))

    def _open_source(self):
        if self.config.source_factory is not None:
            return self.config.source_factory()
        from mocap_app.capture import VideoSource
        return VideoSource(self.config.source, camera_size_wh=self.config.camera_size_wh())

    def _run(self) -> bool:
        from engines.lifter import load_lifter
        from mocap_app.keypoints import MediaPipePoseDetector
        from mocap_app.pipeline import engine_info, lifter_weights, resolve_intrinsics

        cfg = self.config
        self.emit("status", "opening the source...")
        src = self._open_source()
        try:
            size = tuple(src.size_wh)
            profile = cfg.profile
            if profile is None and cfg.camera_profile is not None and cfg.focal_px is None:
                profile = cfg.camera_profile.intrinsics(*size)   # raises a sentence on an aspect mismatch
            intr, intr_src = resolve_intrinsics(size, cfg.focal_px, cfg.fov_deg, profile)
            self.emit("status", "loading the 2D and 3D engines...")
            # adapted lifter weights are for the AbsPoseLifter; PersPose always uses its own
            weights = Path(cfg.weights) if cfg.weights and cfg.engine == "absposelifter" else None
            weights = lifter_weights(intr_src, cfg.engine, weights)   # a guessed focal length: the focal-free lifter
            lifter = load_lifter(cfg.engine, backend=cfg.backend, weights=weights)
            self.refiner = None
            if cfg.refine == "zedo":
                from engines.zedo.refine import load_refiner
                self.refiner = load_refiner("zedo", backend=cfg.backend)
            detector = MediaPipePoseDetector(running_mode="video", fix_left_right=cfg.fix_left_right)
            total = 0 if cfg.live else int(getattr(src, "frame_count", 0) or 0)
            if cfg.max_frames:
                total = min(total, cfg.max_frames) if total else cfg.max_frames
            self.recorder = Recorder(
                intr, intr_src,
                source={"path": str(Path(cfg.source).resolve()) if isinstance(cfg.source, str) else str(cfg.source),
                        "fps": float(getattr(src, "fps", 0.0) or 0.0),
                        "frame_count": total, "width_px": size[0], "height_px": size[1]},
                engine=engine_info(cfg.engine, lifter, cfg.refine),
                autosave_path=Path(cfg.autosave_path) if cfg.autosave_path else None,
                autosave_every_s=cfg.autosave_every_s)
            self.emit("started", {"backend": lifter.runtime.name, "engine": cfg.engine, "intrinsics": intr,
                                  "intrinsics_source": intr_src, "size": size, "frames_total": total,
                                  "live": cfg.live, "weights": weights.name if weights else None,
                                  "focal_free": not getattr(lifter, "uses_focal", True)})
            self.emit("status", "running")
            try:
                return self._loop(src, detector, lifter, intr, total)
            finally:
                detector.close()
        finally:
            src.close()

    def _capture(self, src, q: queue.Queue, done: object, err: list, counters: dict) -> None:
        live = self.config.live
        try:
            for frame in src:
                if self._stop.is_set():
                    break
                item = (frame, time.perf_counter())
                if live:   # keep only the newest frame
                    try:
                        q.put_nowait(item)
                    except queue.Full:
                        try:
                            q.get_nowait()
                            counters["dropped"] += 1
                        except queue.Empty:
                            pass
                        q.put_nowait(item)
                else:
                    while not self._stop.is_set():
                        try:
                            q.put(item, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                counters["read"] += 1
                if self.config.max_frames and counters["read"] >= self.config.max_frames:
                    break
        except Exception as e:  # noqa: BLE001 - surfaced by the processing thread
            err.append(e)
        finally:
            while True:
                try:
                    q.put(done, timeout=0.1)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        break

    def _loop(self, src, detector, lifter, intr: CameraIntrinsics, total: int) -> bool:
        from mocap_app import world as world_mod

        q: queue.Queue = queue.Queue(maxsize=1 if self.config.live else 4)
        done = object()
        err: list[BaseException] = []
        counters = {"dropped": 0, "read": 0}
        cap = threading.Thread(target=self._capture, args=(src, q, done, err, counters), name="capture",
                               daemon=True)
        cap.start()
        K = intr.K
        needs_images = getattr(lifter, "needs_images", False)   # PersPose crops the frame around the person
        valid_cam: list[np.ndarray] = []
        n_done = 0
        t_start = time.perf_counter()
        fps_ema = 0.0
        t_prev_done = None
        t_wait0 = time.perf_counter()
        try:
            while not self._stop.is_set():
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    continue
                if item is done:
                    break
                frame, t_cap = item
                t0 = time.perf_counter()
                kp = detector.detect(frame)
                t1 = time.perf_counter()
                xy = np.asarray(kp.xy_px, np.float32)
                conf = np.asarray(kp.confidence, np.float32)
                if np.isfinite(xy).all():
                    # engines see the pinhole camera K; the recorded keypoints stay the detected ones
                    xy_k = undistort_px(xy, intr)
                    extra = {"images": [undistort_image(frame.image_bgr, intr)]} if needs_images else {}
                    cam = lifter.lift(xy_k[None], conf[None], K, **extra)[0].astype(float)
                    if self.refiner is not None:
                        cam = self.refiner.refine(cam[None], xy_k[None], conf[None], K,
                                                  iterations=self.config.refine_iterations)[0].astype(float)
                else:
                    xy = np.full((NUM_JOINTS, 2), np.nan, np.float32)
                    cam = np.full((NUM_JOINTS, 3), np.nan)
                t2 = time.perf_counter()
                img = frame.image_bgr
                scale = min(1.0, DISPLAY_MAX_PX / max(img.shape[:2]))
                if scale < 1.0:
                    img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                world = self._world(world_mod, cam, valid_cam)
                self._smoother.strength = float(self._smoothing.value)
                shown = self._smoother(world, frame.timestamp_s)
                t3 = time.perf_counter()
                rec = self.recorder
                if self._recording.is_set() and rec is not None:
                    rec.append(RecordedFrame(frame.timestamp_s, xy, conf, cam.astype(np.float32),
                                             left_right_fixed=kp.left_right_fixed))
                n_done += 1
                if t_prev_done is not None:
                    inst = 1.0 / max(t3 - t_prev_done, 1e-6)
                    fps_ema = inst if fps_ema == 0 else 0.9 * fps_ema + 0.1 * inst
                t_prev_done = t3
                self._publish(FrameResult(
                    index=frame.index, timestamp_s=frame.timestamp_s, image_bgr=img, display_scale=scale,
                    keypoints_px=xy, confidence=conf, joints_cam_mm=cam, joints_world_mm=shown, t_capture=t_cap,
                    stage_ms={"queue": (t0 - t_cap) * 1e3, "2d": (t1 - t0) * 1e3, "3d": (t2 - t1) * 1e3,
                              "world": (t3 - t2) * 1e3, "wait": (t0 - t_wait0) * 1e3},
                    fps=fps_ema, frames_done=n_done, frames_total=total, dropped=counters["dropped"],
                    recording=self._recording.is_set(), recorded=len(rec) if rec is not None else 0,
                    world_method=self.alignment.method if self.alignment is not None else "camera axes (guess)",
                    cam_R=self.cam_to_world()[0], cam_t_mm=self.cam_to_world()[1],
                    world=self.alignment.to_dict() if self.alignment is not None else None))
                t_wait0 = time.perf_counter()
        finally:
            self._stop.set()
            cap.join(2.0)
        if err:
            raise err[0]
        log.info("pipeline: %d frames in %.1f s, %d dropped", n_done, time.perf_counter() - t_start,
                 counters["dropped"])
        return not (self._stop.is_set() and q.qsize() > 0) and n_done > 0

    def _world(self, world_mod, cam: np.ndarray, valid_cam: list) -> np.ndarray:
        """World joints for display: estimated from the first valid frames, refined, then locked."""
        if np.isfinite(cam).all() and len(valid_cam) < WORLD_LOCK_FRAMES:
            valid_cam.append(cam)
            n = len(valid_cam)
            due = (n == 1 if self._placement_complete
                   else n >= WORLD_MIN_FRAMES and (n % 15 == 0 or n == WORLD_LOCK_FRAMES))
            if due:
                try:
                    self.alignment = world_mod.estimate_world_alignment(np.stack(valid_cam), **self._known_placement)
                    if self.recorder is not None:
                        self.recorder.set_world(self.alignment.to_dict())
                except world_mod.WorldAlignmentError as e:
                    log.info("world alignment not ready: %s", e)
        if self.alignment is None:
            if self._guess_offset is None and np.isfinite(cam).all():
                w = camera_axes_to_world(cam)
                from engines.skeleton import J
                floor = min(w[J["left_ankle"], 1], w[J["right_ankle"], 1]) - world_mod.ANKLE_ABOVE_FLOOR_MM
                self._guess_offset = np.array([w[J["pelvis"], 0], floor, w[J["pelvis"], 2]])
            off = self._guess_offset if self._guess_offset is not None else np.zeros(3)
            return camera_axes_to_world(cam) - off
        return world_mod.apply(self.alignment, cam)

    def cam_to_world(self) -> tuple[np.ndarray, np.ndarray]:
        """Rotation and translation (mm) from camera to the displayed world frame (for the frustum)."""
        if self.alignment is not None:
            return np.asarray(self.alignment.R_cam_to_world, float), np.asarray(self.alignment.t_cam_to_world_mm, float)
        off = self._guess_offset if self._guess_offset is not None else np.zeros(3)
        return np.diag([1.0, -1.0, -1.0]), -off


def _describe(e: BaseException) -> str:
    """One sentence for the user, never a traceback."""
    name = type(e).__name__
    text = str(e).strip() or name
    if name in ("CaptureError", "NoPersonError", "InvalidIntrinsicsError", "InvalidKeypointsError",
                "UnknownEngineError", "FileNotFoundError", "KeypointsError", "ProfileError",
                "AspectRatioMismatchError", "CalibrationError"):
        return f"{text.rstrip('.')}."
    return f"The pipeline stopped unexpectedly ({name}: {text})."


def _child_main(config: PipelineConfig, conn, stop, recording, smoothing) -> None:
    """Worker process entry: run the pipeline, send every event through ``conn``."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _lower_priority(PIPELINE_NICE)

    def emit(kind, payload):
        try:
            conn.send((kind, payload))
        except (BrokenPipeError, OSError):   # the app went away: stop
            stop.set()
    PipelineRunner(config, emit, stop, recording, smoothing).run()
    conn.close()


PIPELINE_NICE = int(os.environ.get("MOCAP_PIPELINE_NICE", "4"))   # the UI process wins a saturated CPU


def _lower_priority(increment: int) -> None:
    """Best effort: make this (child) process yield the CPU to the UI process."""
    try:
        os.nice(increment)
    except (AttributeError, OSError):
        pass


class PipelineWorker(QObject):
    """The UI side of the pipeline. Call its methods from the UI thread only.

    The pipeline runs in a **worker process** (spawned): MediaPipe, ONNX Runtime and the
    Python glue around them then never hold the UI process's GIL, so the event loop
    keeps running even when the CPU is saturated (with threads, a GIL holder preempted
    by the OS stalled the UI for hundreds of ms on the 2-core machine). A receiver
    thread reads the process's messages, keeps only the newest result and notifies the
    UI (``result_ready``) only when it has taken the previous one. If the process dies
    without reporting (a native crash), the autosaved take is read back from disk.
    """

    started = Signal(dict)    # {"backend", "engine", "intrinsics", "intrinsics_source", "size", "frames_total", "live",
                              #  "weights": the lifter weights' file name when not the bundled ones,
                              #  "focal_free": the lifter does not take the focal length (a guessed one)}
    result_ready = Signal()               # a new FrameResult: call take_latest()
    status = Signal(str)                  # human-readable progress ("loading the 3D engine...")
    failed = Signal(str)                  # one sentence; the recording (if any) was autosaved
    finished = Signal(bool)               # True when the source ended normally, False when stopped/failed

    def __init__(self, config: PipelineConfig, parent=None):
        super().__init__(parent)
        import dataclasses
        import multiprocessing as mp
        if config.autosave and not config.autosave_path:
            config = dataclasses.replace(config, autosave_path=str(new_autosave_path()))
        self.config = config
        self._ctx = mp.get_context("spawn")
        self._stop = self._ctx.Event()
        self._recording = self._ctx.Event()
        if config.record:
            self._recording.set()
        self._smoothing = self._ctx.Value("d", float(config.smoothing))
        self._latest: FrameResult | None = None
        self._latest_lock = threading.Lock()
        self._notified = False
        self._thread: threading.Thread | None = None
        self._proc = None
        self.recorder: Recorder | None = None     # the take, available after ``finished``
        self.autosave_path: Path | None = None
        self.alignment = None
        self.recorded = 0
        self.error: str | None = None
        self._done = False

    # -- control (UI thread) ----------------------------------------------------------
    def start(self) -> None:
        if self.config.use_process:
            self._conn, child = self._ctx.Pipe(duplex=False)
            self._proc = self._ctx.Process(target=_child_main, name="mocap-pipeline", daemon=True,
                                           args=(self.config, child, self._stop, self._recording, self._smoothing))
            self._proc.start()
            child.close()
            target = self._receive
        else:
            target = self._run_in_thread
        self._thread = threading.Thread(target=target, name="pipeline-rx", daemon=True)
        self._thread.start()

    def stop(self, wait_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None and wait_s > 0:
            self._thread.join(wait_s)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def set_recording(self, on: bool) -> None:
        (self._recording.set if on else self._recording.clear)()

    @property
    def recording(self) -> bool:
        return self._recording.is_set()

    def set_smoothing(self, strength: float) -> None:
        self._smoothing.value = float(strength)

    def take_latest(self) -> FrameResult | None:
        """The newest result (None if already taken); re-arms the notification."""
        with self._latest_lock:
            r, self._latest = self._latest, None
            self._notified = False
        return r

    # -- receiver thread -------------------------------------------------------------------
    def _handle(self, kind: str, payload) -> None:
        if kind == "result":
            self.recorded = payload.recorded
            if payload.world is not None:
                self.alignment = payload.world
            with self._latest_lock:
                self._latest = payload
                notify = not self._notified
                self._notified = True
            if notify:
                self.result_ready.emit()
        elif kind == "started":
            self.started.emit(payload)
        elif kind == "status":
            self.status.emit(payload)
        elif kind == "failed":
            self.error = payload
            self.failed.emit(payload)
        elif kind == "take":
            clip, path = payload
            self.autosave_path = Path(path) if path else None
            if clip is not None:
                self.recorder = Recorder.from_clip(clip)
                self.recorder.autosave_path = self.autosave_path
        elif kind == "finished":
            self._done = True
            self.finished.emit(bool(payload))

    def _run_in_thread(self) -> None:
        PipelineRunner(self.config, self._handle, self._stop, self._recording, self._smoothing).run()

    def _receive(self) -> None:
        try:
            while True:
                try:
                    kind, payload = self._conn.recv()
                except (EOFError, OSError):
                    break
                self._handle(kind, payload)
                if kind == "finished":
                    break
        finally:
            self._proc.join(5.0)
            if not self._done:
                self._process_died()

    def _process_died(self) -> None:
        """The worker process ended without a word (native crash, killed): recover the autosave."""
        code = self._proc.exitcode
        msg = f"The pipeline process stopped unexpectedly (exit code {code})."
        saved = Path(self.config.autosave_path) if self.config.autosave_path else None
        if saved is not None and saved.exists():
            try:
                from mocap_app.clip import Clip
                self.recorder = Recorder.from_clip(Clip.load(saved))
                self.recorder.autosave_path = self.autosave_path = saved
                msg += f" The recording so far was recovered from {saved}."
            except Exception as e:  # noqa: BLE001
                log.error("autosave %s unreadable: %s", saved, e)
        self.error = msg
        self.failed.emit(msg)
        self._done = True
        self.finished.emit(False)
