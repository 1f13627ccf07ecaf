"""Which ONNX Runtime CPU setup runs the lifter fastest? (notes/runtime.md records the answer)

    nice -n 10 python -m benchmarks.bench_engines [--weights W] [--reps 3000]

Variants run round-robin (one call of each in turn), so load from other processes on
this shared 2-core machine affects all of them alike; reports median / p95 / p10 in ms.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from engines.lifter import WEIGHTS, load_lifter
from engines.runtime import OnnxRuntimeCPU, file_sha256, onnx_for


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
    key = f"absposelifter-{file_sha256(a.weights)[:16]}"
    path = onnx_for(lifter.module, None, None, None, key)   # cached: no export happens here
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
    for level in ("ORT_ENABLE_BASIC", "ORT_ENABLE_EXTENDED", "ORT_ENABLE_ALL"):
        for threads in (1, 2):
            s = _session(path, threads, level, spin=False)
            variants[f"ort {level[11:].lower()} intra={threads} run()"] = (lambda s=s: s.run(None, feed))
    s = _session(path, 1, "ORT_ENABLE_ALL", spin=True)
    variants["ort all intra=1 spinning run()"] = lambda: s.run(None, feed)
    rt = OnnxRuntimeCPU(path)
    variants["OnnxRuntimeCPU.run (iobinding at batch 1)"] = lambda: rt.run(feed)
    Kone = K[0]
    variants["Lifter.lift onnxruntime (validation incl.)"] = lambda: lifter.lift(kp, None, Kone)
    variants["Lifter.lift torch (validation incl.)"] = lambda: ref_lifter.lift(kp, None, Kone)

    names = list(variants)
    for f in variants.values():
        for _ in range(30):
            f()
    t = np.zeros((len(names), a.reps))
    for r in range(a.reps):
        for i, n in enumerate(names):
            t0 = time.perf_counter()
            variants[n]()
            t[i, r] = time.perf_counter() - t0
    t *= 1e3
    print(f"batch {a.batch}, {a.reps} round-robin repetitions, ms")
    print(f"{'variant':48s} {'p50':>7s} {'p95':>7s} {'p10':>7s}")
    for i, n in enumerate(names):
        print(f"{n:48s} {np.median(t[i]):7.3f} {np.percentile(t[i], 95):7.3f} {np.percentile(t[i], 10):7.3f}")


if __name__ == "__main__":
    main()
