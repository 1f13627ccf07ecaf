"""Would int8 weights get the lifter under 0.5 ms at batch 1 on ONNX Runtime, and at what accuracy cost?

    python benchmarks/bench_int8.py [--reps 2000]

The fp32 lifter is memory-bound at batch 1 (16.8 MB of weights streamed per call, notes/runtime.md),
so the experiment quantises its weights to int8 (ONNX Runtime dynamic quantisation, per channel) and
measures both graphs the same way: one intra-op thread, no spinning, interleaved rounds. It also
measures their MPJPE / PA-MPJPE / MRPE on the validation views with exact 2D
(``engines.absposelifter.evaluate.validation_views``). It is an experiment, not a backend: the int8
graph cannot meet the 1e-4 parity with PyTorch that every shipped backend is held to.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from anywhere without installing


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=2000)
    a = ap.parse_args(argv)

    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from engines.absposelifter.evaluate import validation_views
    from engines.lifter import load_lifter
    from engines.metrics import mpjpe, mrpe, pa_mpjpe

    fp32 = Path(load_lifter("absposelifter", backend="onnxruntime").runtime.onnx_path)
    tmp = Path(tempfile.mkdtemp())
    m = onnx.load(str(fp32))
    del m.graph.value_info[:]   # the exporter's recorded shapes trip the quantiser's shape inference
    onnx.save(m, str(tmp / "fp32.onnx"))
    quantize_dynamic(str(tmp / "fp32.onnx"), str(tmp / "int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)

    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {name: ort.InferenceSession(str(tmp / f"{name}.onnx"), so, providers=["CPUExecutionProvider"])
                for name in ("fp32", "int8")}
    inputs = [i.name for i in sessions["fp32"].get_inputs()]
    v, _ = validation_views()
    kp, K = v.keypoints_px.astype(np.float32), v.K.astype(np.float32)

    def run(s, i, n):
        return s.run(None, {inputs[0]: kp[i:i + n], inputs[1]: K[i:i + n]})[0]

    times: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(200):
        for s in sessions.values():
            run(s, 0, 1)
    for r in range(4):   # interleaved rounds: both see the same machine state
        for name, s in sessions.items():
            for i in range(a.reps // 4):
                t0 = time.perf_counter()
                run(s, i, 1)
                times[name].append(time.perf_counter() - t0)
    print(f"{'graph':6} {'MB':>6} {'batch-1 p50 ms':>15} {'p95 ms':>8} {'MPJPE':>7} {'PA-MPJPE':>9} {'MRPE':>7}")
    for name, s in sessions.items():
        pred = np.concatenate([run(s, i, 512) for i in range(0, len(K), 512)])
        t = np.asarray(times[name]) * 1e3
        print(f"{name:6} {(tmp / f'{name}.onnx').stat().st_size / 1e6:6.1f} {np.median(t):15.3f} "
              f"{np.percentile(t, 95):8.3f} {mpjpe(pred, v.joints_cam_mm).mean():7.1f} "
              f"{pa_mpjpe(pred, v.joints_cam_mm).mean():9.1f} {mrpe(pred, v.joints_cam_mm).mean():7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
