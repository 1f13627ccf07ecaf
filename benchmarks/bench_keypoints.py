"""Decode and 2D-keypoint timings on real clips: pose2sim cam03 (1088x1920) and the Sports2D demo (1768x994).

    python benchmarks/bench_keypoints.py [--frames 100] [--mode video|image] [--sports2d PATH]

Per clip: OpenCV decode time per frame, MediaPipePoseDetector.detect time per
frame (p50/p95 wall clock, and CPU time of all threads; BGR->RGB conversion
included, the first frame excluded as warm-up), the fps the two give together,
and how often a person was found. The load average is printed because wall
times on a shared machine are only meaningful when it is low.
The Sports2D clip is fetched like the test fixture does (``pip download
--no-deps sports2d`` into ``~/.cache/mocap-tests``) unless ``--sports2d`` is given.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mocap_app.capture import VideoSource  # noqa: E402
from mocap_app.keypoints import USAGE_LOG_BLOCK_PROXY, MediaPipePoseDetector  # noqa: E402

POSE2SIM_CAM03 = REPO.parent / "shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4"
SPORTS2D_VERSION = "0.8.34"


def sports2d_clip() -> Path:
    out = Path.home() / ".cache" / "mocap-tests" / f"sports2d-{SPORTS2D_VERSION}" / "demo.mp4"
    if not out.is_file():
        wd = out.parent / "wheel"
        wd.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if v != USAGE_LOG_BLOCK_PROXY}
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"sports2d=={SPORTS2D_VERSION}",
                        "-d", str(wd)], check=True, capture_output=True, env=env)
        with zipfile.ZipFile(next(wd.glob("sports2d-*.whl"))) as zf:
            out.write_bytes(zf.read("Sports2D/Demo/demo.mp4"))
    return out


def bench(path: Path, frames: int, mode: str) -> dict:
    dec, det_t, cpu, found = [], [], [], 0
    with VideoSource(path) as src, MediaPipePoseDetector(running_mode=mode) as det:
        size = src.size_wh
        for i in range(frames):
            t0 = time.perf_counter()
            f = src.read()
            t1, c1 = time.perf_counter(), time.process_time()
            if f is None:
                break
            k = det.detect(f)
            t2, c2 = time.perf_counter(), time.process_time()
            dec.append(t1 - t0)
            det_t.append(t2 - t1)
            cpu.append(c2 - c1)
            found += k.person_found
    dec_ms, det_ms = 1000 * np.array(dec[1:]), 1000 * np.array(det_t[1:])
    return dict(clip=path.name, size=f"{size[0]}x{size[1]}", n=len(det_t), decode=np.median(dec_ms),
                p50=np.median(det_ms), p95=np.percentile(det_ms, 95), cpu=1000 * np.median(cpu[1:]),
                fps=1000.0 / np.mean(dec_ms + det_ms), found=found / max(len(det_t), 1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--mode", choices=["video", "image"], default="video")
    ap.add_argument("--sports2d", type=Path, help="path of the Sports2D demo.mp4 (default: fetch it)")
    a = ap.parse_args(argv)
    clips = [POSE2SIM_CAM03, a.sports2d or sports2d_clip()]
    import mediapipe
    print(f"# mediapipe {mediapipe.__version__}, {a.mode} mode, {a.frames} frames/clip, "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'clip':<12}{'size':>11}{'frames':>8}{'decode ms':>11}{'detect p50':>12}{'detect p95':>12}"
          f"{'detect CPU':>12}{'fps':>7}{'found':>7}")
    for c in clips:
        r = bench(c, a.frames, a.mode)
        print(f"{r['clip']:<12}{r['size']:>11}{r['n']:>8}{r['decode']:>11.1f}{r['p50']:>12.1f}{r['p95']:>12.1f}"
              f"{r['cpu']:>12.1f}{r['fps']:>7.1f}{r['found']:>7.0%}")
    print("# ms per frame; detect CPU = process CPU time (all threads) per detect call, p50; "
          "fps = 1 / mean(decode + detect)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
