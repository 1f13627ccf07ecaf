"""What removing a profile's lens distortion costs (``engines.camera.undistort_px`` / ``undistort_image``).

    python benchmarks/bench_undistort.py [--reps 200]

Keypoints: one frame's 17 joints (what the app's worker does per frame) and a 600-frame clip (``process``, ``relift``).
Frames: only PersPose needs them; the first call at a size builds the remap tables, later calls reuse them. A profile
without distortion costs nothing (the input is returned as it is).
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from engines.camera import CameraIntrinsics, _undistort_maps, undistort_image, undistort_px

LENS = (-0.35, 0.12, 0.0015, -0.001, 0.0)    # a wide webcam


def timed_ms(fn, reps: int) -> tuple[float, float]:
    t = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        t.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(t, 50)), float(np.percentile(t, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    rows = []
    for w, h in ((1280, 720), (1920, 1080)):
        intr = CameraIntrinsics(w, h, 0.55 * w, 0.55 * w, w / 2, h / 2, LENS)
        one = rng.uniform([0, 0], [w, h], (1, 17, 2)).astype(np.float32)
        clip = rng.uniform([0, 0], [w, h], (600, 17, 2)).astype(np.float32)
        rows.append((f"keypoints, 1 frame, {w}x{h}", *timed_ms(lambda: undistort_px(one, intr), a.reps)))
        reps_clip = max(5, a.reps // 20)
        rows.append((f"keypoints, 600 frames, {w}x{h}", *timed_ms(lambda: undistort_px(clip, intr), reps_clip)))
        img = rng.integers(0, 255, (h, w, 3), np.uint8)
        _undistort_maps.cache_clear()
        t0 = time.perf_counter()
        undistort_image(img, intr)
        rows.append((f"frame, first call (tables), {w}x{h}", (time.perf_counter() - t0) * 1e3, float("nan")))
        rows.append((f"frame, {w}x{h}", *timed_ms(lambda: undistort_image(img, intr), a.reps)))
    print(f"{'what':40s} {'p50 ms':>9s} {'p95 ms':>9s}")   # first call: one run, no p95
    for name, p50, p95 in rows:
        print(f"{name:40s} {p50:9.3f} {p95:9.3f}")


if __name__ == "__main__":
    main()
