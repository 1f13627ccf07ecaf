"""``mocap-app bench``: where the time goes, per pipeline stage and per lifter backend.

    mocap-app bench [VIDEO] [--max-frames N] [--backend B] [--no-world] [--no-export]
    mocap-app bench --engines [--reps N]

The pipeline table times a real run of ``process_video`` (decode, 2D keypoints, lift),
then world alignment and BVH+FBX export of the resulting clip, and prints p50/p95
latency per frame and end-to-end frames per second. Decode runs on its own thread, so
its row is the time the pipeline *waited* for a frame, not the decoder's own time.
``--engines`` prints the lifter's latency (``Lifter.lift``, validation included) at
batch 1 (live capture) and batch 64 (offline) on every backend that can run here.
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

log = logging.getLogger(__name__)

DEFAULT_VIDEO = Path("/work/shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4")


@dataclass
class Row:
    stage: str
    p50_ms: float
    p95_ms: float
    n: int
    note: str = ""


def percentiles(ms: list[float] | np.ndarray) -> tuple[float, float]:
    a = np.asarray(ms, float)
    if a.size == 0:
        return float("nan"), float("nan")
    return float(np.percentile(a, 50)), float(np.percentile(a, 95))


def time_calls(fn: Callable[[], object], reps: int, warmup: int = 20, max_seconds: float = 60.0,
               min_reps: int = 10, cpu_ms: list | None = None) -> np.ndarray:
    """Wall-clock latency of ``fn`` in ms over ``reps`` calls after ``warmup`` untimed ones; stops
    early (after at least ``min_reps``) once ``max_seconds`` have passed, so a slow backend cannot
    stall the bench. ``cpu_ms`` (if given) receives the calling thread's CPU time per call: on a
    busy machine that is close to what the call costs when it has a core to itself."""
    for _ in range(warmup):
        fn()
    t = np.empty(reps)
    c = np.empty(reps)
    start = time.perf_counter()
    n = reps
    for i in range(reps):
        c0, t0 = time.thread_time(), time.perf_counter()
        fn()
        t[i], c[i] = time.perf_counter() - t0, time.thread_time() - c0
        if i + 1 >= min_reps and t0 - start > max_seconds:
            n = i + 1
            break
    if cpu_ms is not None:
        cpu_ms.extend((c[:n] * 1e3).tolist())
    return t[:n] * 1e3


def format_table(rows: list[Row], title: str) -> str:
    lines = [title, f"{'stage':34s} {'p50 ms':>9s} {'p95 ms':>9s} {'n':>6s}  note", "-" * 78]
    for r in rows:
        if r.n == 0:
            lines.append(f"{r.stage:34s} {'-':>9s} {'-':>9s} {'-':>6s}  {r.note}")
        else:
            lines.append(f"{r.stage:34s} {r.p50_ms:9.3f} {r.p95_ms:9.3f} {r.n:6d}  {r.note}")
    return "\n".join(lines)


def machine_line() -> str:
    import os

    import torch
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"machine: {cpu}, {os.cpu_count()} cores, {gpu}; Python {platform.python_version()}, "
            f"torch {torch.__version__}; load average {load:.1f}")


# ----------------------------------------------------------------------------- pipeline

def bench_pipeline(video: Path, max_frames: int | None = None, backend: str = "auto", world: bool = True,
                   export: bool = True, focal_px: float | None = None, weights: Path | None = None,
                   repeats: int = 5) -> tuple[list[Row], dict]:
    """Run the pipeline once on ``video`` and time every stage; returns table rows and totals."""
    from engines.lifter import load_lifter
    from mocap_app.pipeline import StageTimes, process_video

    lifter = load_lifter("absposelifter", backend=backend, weights=weights)
    times = StageTimes()
    t0 = time.perf_counter()
    clip = process_video(video, focal_px=focal_px, max_frames=max_frames, times=times, lifter=lifter)
    t_pipeline = time.perf_counter() - t0
    n = len(clip)
    rows = [Row("decode (wait for frame)", *percentiles(times.decode_ms), len(times.decode_ms),
                "decoder runs on its own thread"),
            Row("2D keypoints (MediaPipe)", *percentiles(times.keypoints_ms), len(times.keypoints_ms))]
    if clip.person.any():   # the keypoint stage's left/right fix, timed on its own over the clip's keypoints
        from mocap_app.keypoints import LeftRightTracker
        from mocap_app.types import Keypoints2D
        tracker, lat = LeftRightTracker(), []
        for i in range(len(clip)):
            k = Keypoints2D(clip.keypoints_px[i].astype(np.float32), clip.confidence[i].astype(np.float32))
            t1 = time.perf_counter()
            tracker.update(k, float(clip.timestamps_s[i]))
            lat.append((time.perf_counter() - t1) * 1e3)
        rows.append(Row("  of which left/right fix", *percentiles(np.array(lat)), len(lat),
                        f"LeftRightTracker.update; {int(clip.left_right_fixed.sum())} frames fixed"
                        if clip.left_right_fixed is not None else "LeftRightTracker.update"))
    p50, p95 = percentiles(times.lift_ms)
    rows.append(Row("lift, whole clip in one batch", p50, p95, len(times.lift_ms),
                    f"{lifter.runtime.name}; per frame (batch time / frames)"))
    person = np.flatnonzero(clip.person)
    if len(person):
        kp, conf, K = clip.keypoints_px, clip.confidence, clip.intrinsics.K
        order = np.resize(person, max(len(person), 200))   # every frame once, cycled to >= 200 calls
        lat = np.empty(len(order))
        for j, i in enumerate(order):
            t1 = time.perf_counter()
            lifter.lift(kp[i:i + 1], conf[i:i + 1], K)
            lat[j] = (time.perf_counter() - t1) * 1e3
        rows.append(Row("lift, batch 1 (live capture)", *percentiles(lat), len(lat), lifter.runtime.name))
    rows.append(Row("refine", float("nan"), float("nan"), 0, "off (no refinement stage in this pipeline)"))
    t_world = t_export = 0.0
    if world and clip.person.any():
        from mocap_app.world import align_clip
        lat = time_calls(lambda: align_clip(clip), reps=repeats, warmup=1) / n
        t_world = float(np.median(lat)) * n / 1e3
        rows.append(Row("world alignment", *percentiles(lat), repeats, "per frame (whole-clip call / frames)"))
        clip = align_clip(clip)
        if export:
            from mocap_app.export import export_clip
            with tempfile.TemporaryDirectory() as d:
                lat = time_calls(lambda: export_clip(clip, bvh=Path(d) / "b.bvh", fbx=Path(d) / "b.fbx"),
                                 reps=repeats, warmup=1) / n
            t_export = float(np.median(lat)) * n / 1e3
            rows.append(Row("export (BVH + FBX)", *percentiles(lat), repeats, "per frame (whole-clip call / frames)"))
    totals = {"frames": n, "pipeline_s": t_pipeline, "world_s": t_world, "export_s": t_export,
              "fps_pipeline": n / t_pipeline, "fps_end_to_end": n / (t_pipeline + t_world + t_export),
              "backend": lifter.runtime.name}
    return rows, totals


# ----------------------------------------------------------------------------- engines

def available_backends() -> list[str]:
    from engines.runtime import BACKENDS
    return [name for name, b in BACKENDS.items() if b.unavailable_reason() is None]


def bench_engines(reps: int = 2000, weights: Path | None = None, batches: tuple[int, ...] = (1, 64),
                  backends: list[str] | None = None, max_seconds: float = 60.0) -> list[Row]:
    """Latency of ``Lifter.lift`` per available backend and batch size (validation included)."""
    import torch

    from engines.lifter import load_lifter
    from engines.runtime import BACKENDS

    kp_all, K_all = bench_inputs(max(batches))
    rows = []
    for name in backends or available_backends():
        lifter = load_lifter("absposelifter", backend=name, weights=weights)
        if lifter.runtime.name != name:   # fell back: already reported by load_lifter
            continue
        # torch's default is one intra-op thread per core; ONNX Runtime here uses one thread,
        # so torch is also timed with one thread for a like-for-like comparison
        thread_settings = [None, 1] if name == "torch" and torch.get_num_threads() > 1 else [None]
        for threads in thread_settings:
            saved = torch.get_num_threads()
            if threads:
                torch.set_num_threads(threads)
            try:
                for b in batches:
                    kp, K = kp_all[:b], K_all[:b]
                    r = reps if b == 1 else max(10, reps // 10)
                    cpu: list[float] = []
                    lat = time_calls(lambda: lifter.lift(kp, None, K), reps=r, warmup=min(20, r),
                                     max_seconds=max_seconds, cpu_ms=cpu)
                    label = f"{name}{' (1 thread)' if threads else ''}, batch {b}"
                    single_thread_cpu = BACKENDS[name].device == "cpu" and (threads or name != "torch")
                    cpu_note = f"; calling thread's CPU p50 {np.median(cpu):.3f} ms" if single_thread_cpu else ""
                    rows.append(Row(label, *percentiles(lat), len(lat),
                                    f"{b / np.median(lat) * 1e3:,.0f} poses/s{cpu_note}"))
            finally:
                torch.set_num_threads(saved)
    return rows


def bench_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` lifter inputs: validation mocap seen by virtual cameras when the training data is on
    this machine (a developer checkout), else person-sized random keypoints (an installed app;
    the timing does not depend on the values)."""
    rng = np.random.default_rng(seed)
    try:
        from engines.data import load_split, view_poses
        poses = load_split("val")["joints_mm"]
        v = view_poses(poses[rng.choice(len(poses), n)], rng)
        return v.keypoints_px.astype(np.float32), v.K.astype(np.float32)
    except (FileNotFoundError, ValueError, OSError):
        K = np.tile(np.array([[1000.0, 0, 639.5], [0, 1000.0, 359.5], [0, 0, 1]], np.float32), (n, 1, 1))
        centre = np.array([640.0, 360.0]) + rng.normal(0, 100, (n, 1, 2))
        kp = centre + rng.normal(0, 1, (n, 17, 2)) * np.array([60.0, 180.0])
        return kp.astype(np.float32), K


# ----------------------------------------------------------------------------- CLI

def add_bench_parser(sub) -> None:
    p = sub.add_parser("bench", help="time each pipeline stage on a video, or the lifter on each backend")
    p.add_argument("video", type=Path, nargs="?", default=None,
                   help=f"video to run (default: {DEFAULT_VIDEO})")
    p.add_argument("--engines", action="store_true",
                   help="time the lifter at batch 1 and 64 on every available backend instead")
    p.add_argument("--reps", type=int, default=2000, help="--engines: batch-1 repetitions (batch 64: a tenth)")
    p.add_argument("--backend", default="auto", help="lifter backend for the pipeline run")
    p.add_argument("--max-frames", type=int, default=None)
    p.add_argument("--focal-px", type=float, default=None, help="focal length in px (default: assumed FOV)")
    p.add_argument("--no-world", action="store_true", help="skip world alignment (and export)")
    p.add_argument("--no-export", action="store_true", help="skip BVH/FBX export")
    p.add_argument("--weights", type=Path, default=None, help="lifter weights (default: the shipped ones)")
    p.set_defaults(func=run_bench)


def run_bench(a: argparse.Namespace) -> int:
    from engines.lifter import UnknownEngineError

    print(machine_line())
    try:
        if a.engines:
            if a.reps < 1:
                print("mocap-app: error: --reps must be at least 1", file=sys.stderr)
                return 2
            rows = bench_engines(reps=a.reps, weights=a.weights)
            print(format_table(rows, "lifter latency per backend (Lifter.lift, validation included)"))
            return 0
        video = a.video or DEFAULT_VIDEO
        if not Path(video).exists():
            print(f"mocap-app: error: video not found: {video}", file=sys.stderr)
            return 3
        rows, tot = bench_pipeline(Path(video), max_frames=a.max_frames, backend=a.backend,
                                   world=not a.no_world, export=not (a.no_world or a.no_export),
                                   focal_px=a.focal_px, weights=a.weights)
    except (FileNotFoundError, UnknownEngineError) as e:
        print(f"mocap-app: error: {e}", file=sys.stderr)
        return 3
    except Exception as e:   # a stage failing (no person, unreadable video): one sentence, not a traceback
        from mocap_app.pipeline import NoPersonError
        if isinstance(e, NoPersonError) or type(e).__name__ in ("CaptureError", "KeypointsError"):
            print(f"mocap-app: error: {e}", file=sys.stderr)
            return 4
        raise
    print(format_table(rows, f"pipeline stages on {video} ({tot['frames']} frames, lifter on {tot['backend']})"))
    print(f"end to end: {tot['fps_pipeline']:.1f} frames/s for decode + keypoints + lift "
          f"({tot['pipeline_s']:.2f} s), {tot['fps_end_to_end']:.1f} frames/s including world alignment and export")
    return 0
