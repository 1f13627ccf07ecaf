"""Which ONNX Runtime CPU setup runs the lifter fastest? (notes/runtime.md records the answer)

    nice -n 10 python -m benchmarks.bench_engines [--weights W] [--reps 3000]

Variants run round-robin (one call of each in turn), so load from other processes on
this shared 2-core machine affects all of them alike; reports median / p95 / p10 in ms.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from engines.lifter import WEIGHTS, load_lifter
from engines.runtime import OnnxRuntimeCPU


def _session(path: Path, threads: int, level: str, spin: bool):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weights", type=Path, default=WEIGHTS["absposelifter"])
    ap.add_argument("--reps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    lifter = load_lifter("absposelifter", backend="onnxruntime", weights=a.weights)
    ref_lifter = load_lifter("absposelifter", backend="torch", weights=a.weights)
    path = lifter.runtime.onnx_path
    rng = np.random.default_rng(0)
    kp = (rng.random((a.batch, 17, 2)) * 300 + 300).astype(np.float32)
    K = np.tile(np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]], np.float32), (a.batch, 1, 1))
    feed = {"keypoints_px": kp, "K": K}
    tk, tK = torch.from_numpy(kp), torch.from_numpy(K)
    variants = {}

    def torch_call():
        with torch.inference_mode():
            lifter.module(tk, tK)
    variants["torch 1 thread (module call)"] = torch_call

    def torch_call_2():
        torch.set_num_threads(2)
        try:
            with torch.inference_mode():
                lifter.module(tk, tK)
        finally:
            torch.set_num_threads(1)
    variants["torch 2 threads (module call)"] = torch_call_2
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        for threads in (1, 2):
            s = _session(path, threads, level, spin=False)
            variants[f"ort {level[11:].lower()} intra={threads} run()"] = (lambda s=s: s.run(None, feed))
    s = _session(path, 1, "ORT_ENABLE_ALL", spin=True)
    variants["ort all intra=1 spinning run()"] = lambda: s.run(None, feed)
    rt = OnnxRuntimeCPU(path)
    variants["OnnxRuntimeCPU.run (the backend)"] = lambda: rt.run(feed)
    Kone = K[0]
    variants["Lifter.lift onnxruntime (validation incl.)"] = lambda: lifter.lift(kp, None, Kone)
    variants["Lifter.lift torch 1 thread (validation incl.)"] = lambda: ref_lifter.lift(kp, None, Kone)

    names = list(variants)
    for f in variants.values():
        for _ in range(30):
            f()
    t = np.zeros((len(names), a.reps))
    c = np.zeros((len(names), a.reps))
    for r in range(a.reps):
        for i, n in enumerate(names):
            c0, t0 = time.thread_time(), time.perf_counter()
            variants[n]()
            t[i, r], c[i, r] = time.perf_counter() - t0, time.thread_time() - c0
    t *= 1e3
    c *= 1e3
    print(f"batch {a.batch}, {a.reps} round-robin repetitions, ms; load average {os.getloadavg()[0]:.1f}")
    print("wall = perf_counter per call; cpu = this thread's CPU time per call (excludes time the")
    print("process waited for a core; only meaningful for single-threaded variants)")
    print(f"{'variant':48s} {'wall p50':>9s} {'wall p95':>9s} {'wall p10':>9s} {'cpu p50':>9s}")
    for i, n in enumerate(names):
        print(f"{n:48s} {np.median(t[i]):9.3f} {np.percentile(t[i], 95):9.3f} {np.percentile(t[i], 10):9.3f} "
              f"{np.median(c[i]):9.3f}")


if __name__ == "__main__":
    main()
