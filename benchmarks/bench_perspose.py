"""PersPose engine speed on the CPU: PR warp + crop, and the network through ONNX Runtime (batch 1).

    nice -n 10 python benchmarks/bench_perspose.py [--reps 200] [--backend onnxruntime]

Prints per-frame milliseconds (median, p90) for a 1280x720 frame with the person off-centre.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere without installing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--backend", default="onnxruntime")
    a = ap.parse_args(argv)
    import torch
    torch.set_num_threads(1)
    from engines.camera import project
    from engines.lifter import load_lifter

    eng = load_lifter("perspose", backend=a.backend)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (720, 1280, 3), np.uint8)
    K = np.array([[1000.0, 0, 639.5], [0, 1000.0, 359.5], [0, 0, 1]])
    P = rng.normal(size=(17, 3)) * [200, 450, 150] + [900, -100, 3500]
    kp = project(P, K)[None]
    crop_ms, net_ms, total_ms = [], [], []
    for i in range(a.reps + 10):
        t0 = time.perf_counter()
        img, Kc, R, idx = eng.crops([frame], kp, K)
        t1 = time.perf_counter()
        eng.runtime.run({"image": img, "K_crop": Kc, "R": R})
        t2 = time.perf_counter()
        eng.lift(kp, None, K, images=[frame])
        t3 = time.perf_counter()
        if i >= 10:
            crop_ms.append((t1 - t0) * 1e3); net_ms.append((t2 - t1) * 1e3); total_ms.append((t3 - t2) * 1e3)
    res = {"backend": eng.backend, "input": f"{eng.size}x{eng.size}", "reps": a.reps}
    for k, v in (("PR warp + crop", crop_ms), ("network", net_ms), ("lift() total", total_ms)):
        res[k] = {"median_ms": round(float(np.median(v)), 3), "p90_ms": round(float(np.percentile(v, 90)), 3)}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
