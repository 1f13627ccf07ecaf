"""ONNX export of the shipped lifter and ONNX Runtime parity with PyTorch (issue #3, part 1-2).

The graph is exported once per test session into a temporary ``MOCAP_CACHE`` (shared by
the other ``test_runtime_*`` modules), so the user's cache is never touched.
"""
from __future__ import annotations

import io
import time
import warnings
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from engines.absposelifter.model import AbsolutePose
from engines.lifter import WEIGHTS, engine_key, example_inputs, load_lifter, load_torch_lifter
from engines.runtime import (PARITY_RTOL, ExportError, OnnxRuntimeCPU, export_onnx, fold_batchnorm,
                             onnx_cache_path, onnx_for, relative_error)
from engines.skeleton import NUM_JOINTS

WEIGHTS_PATH = WEIGHTS["absposelifter"]
VIDEO = Path("/work/shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4")
CALIB = VIDEO.parents[1] / "calibration" / "calib_opencv_from_qca.json"
BATCHES = (1, 7, 64)


@pytest.fixture(scope="module")
def module():
    assert WEIGHTS_PATH.exists(), f"shipped lifter weights missing: {WEIGHTS_PATH}"
    return AbsolutePose(load_torch_lifter(WEIGHTS_PATH)).eval()


@pytest.fixture(scope="module")
def exported(engine_cache, module):
    """Export (fresh) to where ``onnx_for`` looks, recording stdout and warnings while exporting."""
    path = onnx_cache_path(engine_key("absposelifter", module))
    path.unlink(missing_ok=True)
    out = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, redirect_stdout(out):
        warnings.simplefilter("always")
        export_onnx(module, example_inputs(), ["keypoints_px", "K"], ["joints_cam_mm"], path)
    return path, out.getvalue(), [str(w.message) for w in caught]


@pytest.fixture(scope="module")
def ort_runtime(exported):
    return OnnxRuntimeCPU(exported[0])


def torch_ref(module, kp, K) -> np.ndarray:
    with torch.inference_mode():
        return module(torch.from_numpy(np.asarray(kp, np.float32)), torch.from_numpy(np.asarray(K, np.float32))).numpy()


def test_export_is_valid_quiet_and_has_a_dynamic_batch(exported):
    path, stdout, caught = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert stdout == "", f"exporter printed to stdout: {stdout[:300]!r}"
    assert caught == [], f"exporter warned: {caught[:3]}"
    for v in [*model.graph.input, *model.graph.output]:
        d0 = v.type.tensor_type.shape.dim[0]
        assert not d0.HasField("dim_value"), f"{v.name} has a fixed batch size"
    assert [i.name for i in model.graph.input] == ["keypoints_px", "K"]
    assert [o.name for o in model.graph.output] == ["joints_cam_mm"]


def test_batchnorm_after_linear_is_folded(module, exported):
    """Only the two BNs that follow a residual sum (not a Linear) are left, in torch and in ONNX."""
    bns = lambda m: sum(isinstance(x, torch.nn.BatchNorm1d) for x in m.modules())  # noqa: E731
    folded = fold_batchnorm(module)
    assert bns(module) == 4 and bns(folded) == 2
    kp, K = _val_inputs(64)
    assert relative_error(torch_ref(folded, kp, K), torch_ref(module, kp, K)) < 1e-5
    ops = [n.op_type for n in onnx.load(str(exported[0])).graph.node]
    assert ops.count("BatchNormalization") == 2
    assert ops.count("Gemm") + ops.count("MatMul") == 6


def _val_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Validation-subject mocap seen by random virtual cameras (real poses, exact projections)."""
    from engines.data import load_split, view_poses
    rng = np.random.default_rng(seed)
    poses = load_split("val")["joints_mm"]
    v = view_poses(poses[rng.choice(len(poses), n, replace=False)], rng)
    return v.keypoints_px.astype(np.float32), v.K.astype(np.float32)


def _random_inputs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random 2D points anywhere in a 1920x1080 image, random focal lengths and principal points."""
    rng = np.random.default_rng(seed)
    kp = rng.uniform([0, 0], [1920, 1080], (n, NUM_JOINTS, 2))
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = rng.uniform(300, 3000, n)
    K[:, 0, 2] = rng.uniform(800, 1100, n)
    K[:, 1, 2] = rng.uniform(400, 700, n)
    K[:, 2, 2] = 1
    return kp.astype(np.float32), K.astype(np.float32)


@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("source", ["random", "validation mocap"])
def test_onnxruntime_matches_pytorch(module, ort_runtime, batch, source):
    kp, K = (_random_inputs if source == "random" else _val_inputs)(batch, seed=batch)
    got = ort_runtime.run({"keypoints_px": kp, "K": K})[0]
    ref = torch_ref(module, kp, K)
    assert got.shape == (batch, NUM_JOINTS, 3) and got.dtype == np.float32
    assert np.isfinite(ref).all()
    err = relative_error(got, ref)
    assert err <= PARITY_RTOL, f"{source} batch {batch}: relative error {err:.2e}"


@pytest.fixture(scope="module")
def mediapipe_inputs():
    """2D keypoints MediaPipe finds in the first frames of a real video, with its calibrated K."""
    pytest.importorskip("mocap_app.keypoints", reason="mocap_app.keypoints not present")
    import json

    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector

    K = np.array(json.loads(CALIB.read_text())["cameras"]["cam03"]["K"], np.float32)
    kps = []
    with VideoSource(VIDEO) as src, MediaPipePoseDetector(running_mode="video") as det:
        for frame in src:
            k = det.detect(frame)
            if np.isfinite(k.xy_px).all():
                kps.append(k.xy_px)
            if len(kps) == 7:
                break
    assert len(kps) == 7, "MediaPipe found no person in the first frames of the demo video"
    return np.asarray(kps, np.float32), K


def test_onnxruntime_matches_pytorch_on_mediapipe_keypoints(module, ort_runtime, mediapipe_inputs):
    kp, K = mediapipe_inputs
    for b in (1, 7):
        Kb = np.broadcast_to(K, (b, 3, 3)).copy()
        got = ort_runtime.run({"keypoints_px": kp[:b], "K": Kb})[0]
        err = relative_error(got, torch_ref(module, kp[:b], Kb))
        assert err <= PARITY_RTOL, f"MediaPipe keypoints, batch {b}: relative error {err:.2e}"
    # and a plausible result: the person stands 2-8 m in front of the camera
    z = got[:, 0, 2]
    assert ((z > 1500) & (z < 8000)).all(), z


def test_lifter_api_on_onnxruntime_matches_torch_backend(engine_cache, exported):
    ort_l = load_lifter("absposelifter", backend="onnxruntime")
    torch_l = load_lifter("absposelifter", backend="torch")
    assert ort_l.runtime.name == "onnxruntime" and torch_l.runtime.name == "torch"
    kp, K = _val_inputs(64, seed=3)
    kp[5] = np.nan                                         # a frame without a person
    a, b = ort_l.lift(kp, None, K), torch_l.lift(kp, None, K)
    assert np.isnan(a[5]).all() and np.isfinite(np.delete(a, 5, 0)).all()
    assert relative_error(np.delete(a, 5, 0), np.delete(b, 5, 0)) <= PARITY_RTOL
    one = ort_l.lift(kp[0], None, K[0])                    # [17, 2] and [3, 3]: batch-1 fast path
    assert relative_error(one, b[:1]) <= PARITY_RTOL


def test_cached_graph_is_reused_and_a_corrupt_one_is_rebuilt(engine_cache, tmp_path):
    """Tiny module, so the re-export is quick: a truncated cached file must not be trusted."""
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    m[1].running_mean.uniform_(-1, 1)
    m[1].running_var.uniform_(0.5, 2)
    m.eval()
    ex = (torch.randn(3, 4),)
    p = onnx_for(m, ex, ["x"], ["y"], "tiny-test")
    t_first = p.stat().st_mtime_ns
    time.sleep(0.01)
    assert onnx_for(m, ex, ["x"], ["y"], "tiny-test") == p and p.stat().st_mtime_ns == t_first
    p.write_bytes(p.read_bytes()[:100])                    # truncated, e.g. by a crash
    p2 = onnx_for(m, ex, ["x"], ["y"], "tiny-test")
    onnx.checker.check_model(str(p2))
    rt = OnnxRuntimeCPU(p2)
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    with torch.inference_mode():
        assert relative_error(rt.run({"x": x})[0], m(torch.from_numpy(x)).numpy()) <= PARITY_RTOL


def test_export_failure_is_a_sentence(tmp_path):
    class Eigen(torch.nn.Module):
        def forward(self, x):
            return torch.linalg.eigvals(x).real   # complex eigenvalues: no ONNX translation exists

    with pytest.raises(ExportError, match="could not export the engine to ONNX") as e:
        export_onnx(Eigen(), (torch.randn(2, 3, 3),), ["x"], ["y"], tmp_path / "bad.onnx")
    assert "\x1b[" not in str(e.value) and len(str(e.value)) < 1000
    assert not list(tmp_path.iterdir()), "a failed export left files behind"


def test_cache_key_follows_weights_and_settings(module):
    """A stale cached graph must never be served: the key changes with any weight or option."""
    import copy

    from engines.lifter import engine_key
    key = engine_key("absposelifter", module)
    assert engine_key("absposelifter", AbsolutePose(load_torch_lifter(WEIGHTS_PATH)).eval()) == key
    nudged = copy.deepcopy(module)
    with torch.no_grad():
        nudged.lifter.out.bias[0] += 1e-6
    assert engine_key("absposelifter", nudged) != key
    flipped = copy.deepcopy(module)
    flipped.flip_test = not getattr(module, "flip_test", False)
    assert engine_key("absposelifter", flipped) != key
