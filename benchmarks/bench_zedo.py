"""Speed of ZeDO on this machine: ms per frame for iterations x hypotheses, live (1 frame) and batched.

    nice -n 10 python benchmarks/bench_zedo.py [--quick]

Reports wall time and the process's CPU time (``time.process_time``): on a shared,
busy machine the wall time includes waiting for a core, the CPU time does not. The
1-minute load average is printed with the table so numbers can be read in context.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.zedo.evaluate import validation_views  # noqa: E402
from engines.zedo.refine import load_refiner  # noqa: E402


def timed(fn, repeats: int) -> tuple[float, float]:
    fn()  # warm-up
    w, c = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        w.append(time.perf_counter() - t0); c.append(time.process_time() - c0)
    return float(np.median(w)) * 1e3, float(np.median(c)) * 1e3


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer repeats and no 1000-iteration batch rows")
    p.add_argument("--backend", default="onnxruntime")
    p.add_argument("--weights", default=None, help="prior checkpoint (default: the shipped one)")
    a = p.parse_args(argv)
    r = load_refiner("zedo", backend=a.backend, weights=a.weights)
    v, kp = validation_views(32, seed=11)
    gt, K = v.joints_cam_mm.astype(np.float64), v.K.astype(np.float64)
    conf = np.ones(kp.shape[:2])
    rows = []
    reps = 2 if a.quick else 3
    print(f"backend {r.runtime.name}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| mode | iterations | S | frames per call | wall ms/frame | CPU ms/frame |")
    print("|---|---|---|---|---|---|")
    for it in (10, 20, 50, 100):
        w, c = timed(lambda: r.refine(gt[:1], kp[:1], conf[:1], K[:1], iterations=it), reps)
        rows.append(("refine (live)", it, 1, 1, w, c))
        print("| %s | %d | %d | %d | %.1f | %.1f |" % rows[-1], flush=True)
    for it in (50, 200, 1000):
        for S in (1, 10):
            w, c = timed(lambda: r.zero_shot(kp[:1], conf[:1], K[:1], hypotheses=S, iterations=it), reps)
            rows.append(("zero-shot (live)", it, S, 1, w, c))
            print("| %s | %d | %d | %d | %.1f | %.1f |" % rows[-1], flush=True)
            if it == 1000 and a.quick:
                continue
            n = 32
            w, c = timed(lambda: r.zero_shot(kp[:n], conf[:n], K[:n], hypotheses=S, iterations=it), 1)
            rows.append(("zero-shot (batch)", it, S, n, w / n, c / n))
            print("| %s | %d | %d | %d | %.1f | %.1f |" % rows[-1], flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
