"""Backend selection and fallback, TensorRT cache keys, CUDA buckets, the lift fast path, and
(where an NVIDIA GPU exists) GPU parity (issue #3, parts 3-5)."""
from __future__ import annotations

import logging
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from engines.absposelifter.model import AbsolutePose
from engines.camera import InvalidIntrinsicsError
from engines.lifter import (WEIGHTS, InvalidKeypointsError, UnknownEngineError, backend_candidates, example_inputs,
                            load_lifter, load_torch_lifter, select_backend)
from engines.runtime import BACKENDS, PARITY_RTOL, Backend, BackendUnavailable, relative_error
from engines.runtimes import cuda_backend, tensorrt_backend
from engines.skeleton import NUM_JOINTS

HAS_CUDA = torch.cuda.is_available()
NO_GPU = f"needs an NVIDIA GPU; PyTorch {torch.__version__} sees none"

pytestmark = pytest.mark.usefixtures("engine_cache")


@pytest.fixture(scope="module")
def ort_lifter(engine_cache):
    return load_lifter("absposelifter", backend="onnxruntime")


@pytest.fixture(scope="module")
def torch_lifter(engine_cache):
    return load_lifter("absposelifter", backend="torch")


def _inputs(n: int, seed: int = 0):
    from engines.data import load_split, view_poses
    rng = np.random.default_rng(seed)
    poses = load_split("val")["joints_mm"]
    v = view_poses(poses[rng.choice(len(poses), n, replace=False)], rng)
    return v.keypoints_px.astype(np.float32), v.K.astype(np.float32)


# ----------------------------------------------------------------------------- selection

def test_registry_is_ordered_fastest_first_and_torch_always_available():
    assert list(BACKENDS) == ["tensorrt", "cuda", "onnxruntime", "torch"]
    assert BACKENDS["torch"].unavailable_reason() is None
    assert BACKENDS["onnxruntime"].unavailable_reason() is None


def test_auto_picks_fastest_available_and_says_why():
    chain, why = backend_candidates("auto")
    assert chain[-1] == "torch"
    assert [BACKENDS[b].priority for b in chain] == sorted((BACKENDS[b].priority for b in chain), reverse=True)
    if not HAS_CUDA:
        assert chain == ["onnxruntime", "torch"] and select_backend("auto") == "onnxruntime"
        assert "tensorrt" in why and "cuda" in why and "GPU" in why


def test_unknown_backend_is_a_sentence():
    with pytest.raises(UnknownEngineError, match="unknown backend 'tpu'; available: auto, tensorrt"):
        load_lifter("absposelifter", backend="tpu")


@pytest.mark.skipif(HAS_CUDA, reason="checks the CPU-only log; this machine has a GPU")
def test_cpu_only_auto_logs_one_informative_line_and_no_warning(caplog, ort_lifter):
    caplog.set_level(logging.DEBUG)
    lifter = load_lifter("absposelifter", backend="auto")
    assert lifter.runtime.name == "onnxruntime"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    gpu_lines = [r for r in caplog.records if "GPU" in r.getMessage() or "tensorrt" in r.getMessage()]
    assert len(gpu_lines) == 1 and gpu_lines[0].levelno == logging.INFO, [r.getMessage() for r in gpu_lines]
    msg = gpu_lines[0].getMessage()
    assert "onnxruntime" in msg and "auto" in msg and "NVIDIA" in msg


@pytest.mark.skipif(HAS_CUDA, reason="TensorRT may really load on this GPU machine")
def test_tensorrt_requested_without_gpu_falls_back_with_one_warning(caplog):
    caplog.set_level(logging.INFO)
    lifter = load_lifter("absposelifter", backend="tensorrt")
    assert lifter.runtime.name == "onnxruntime"
    warns = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warns) == 1 and "tensorrt" in warns[0] and "onnxruntime" in warns[0], warns
    kp, K = _inputs(2)
    assert np.isfinite(lifter.lift(kp, None, K)).all()


def test_backend_that_fails_to_load_falls_back_with_a_warning(monkeypatch, caplog):
    """A backend that probes fine but raises while loading (driver mismatch, bad engine file)."""
    def broken(*args):
        raise RuntimeError("libnvinfer.so.10: cannot open shared object file")

    monkeypatch.setitem(BACKENDS, "broken", Backend("broken", 99, broken, lambda: None, "cuda"))
    caplog.set_level(logging.INFO)
    assert backend_candidates("auto")[0][0] == "broken"
    lifter = load_lifter("absposelifter", backend="auto")
    warns = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lifter.runtime.name != "broken"
    assert len(warns) == 1 and "broken failed to load" in warns[0] and "libnvinfer" in warns[0], warns


def test_tensorrt_import_failure_is_backend_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)    # `import tensorrt` raises ImportError
    with pytest.raises(BackendUnavailable, match="TensorRT cannot be loaded"):
        tensorrt_backend.import_tensorrt()


@pytest.mark.skipif(HAS_CUDA, reason="on a GPU machine the TensorRT runtime may load")
def test_tensorrt_runtime_refuses_cleanly_without_gpu(tmp_path):
    with pytest.raises(BackendUnavailable, match="TensorRT backend: .*GPU"):
        tensorrt_backend.TensorRTRuntime(tmp_path / "x.onnx", torch.nn.Identity(), example_inputs(), ["a", "b"])
    with pytest.raises(BackendUnavailable, match="GPU"):
        cuda_backend.make_cuda_runtime(torch.nn.Identity(), example_inputs(), ["a", "b"], ["c"], "k")
    assert tensorrt_backend.unavailable_reason() is not None
    assert cuda_backend.unavailable_reason() is not None


# ----------------------------------------------------------------------------- TensorRT cache key

def test_tensorrt_engine_key_changes_with_gpu_version_and_graph(tmp_path):
    onnx_a, onnx_b = tmp_path / "lifter-a.onnx", tmp_path / "lifter-b.onnx"
    onnx_a.write_bytes(b"graph A")
    onnx_b.write_bytes(b"graph B")
    key = tensorrt_backend.engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0")
    same = tensorrt_backend.engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0")
    assert key == same and key.digest() == same.digest()
    variants = [tensorrt_backend.engine_cache_key(onnx_b, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0"),
                tensorrt_backend.engine_cache_key(onnx_a, "NVIDIA GeForce RTX 4090", "8.9", "10.3.0"),
                tensorrt_backend.engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "9.0", "10.4.0"),
                replace(key, max_batch=128), replace(key, settings_version=key.settings_version + 1)]
    digests = {key.digest(), *(v.digest() for v in variants)}
    assert len(digests) == 1 + len(variants)
    p = tensorrt_backend.engine_path(key, onnx_a, tmp_path)
    assert p.parent == tmp_path and p.name.startswith("lifter-a-") and p.suffix == ".engine"
    assert tensorrt_backend.engine_path(variants[0], onnx_a, tmp_path) != p
    onnx_a.write_bytes(b"graph A, new weights")                # same file name, new content -> new engine
    assert tensorrt_backend.engine_cache_key(onnx_a, "NVIDIA H100 80GB HBM3", "9.0", "10.3.0") != key


def test_tensorrt_default_engine_folder_is_in_the_cache(engine_cache, tmp_path):
    onnx_a = tmp_path / "g.onnx"
    onnx_a.write_bytes(b"x")
    key = tensorrt_backend.engine_cache_key(onnx_a, "gpu", "8.0", "10.0.1")
    assert tensorrt_backend.engine_path(key, onnx_a).parent == engine_cache / "tensorrt"


def test_tensorrt_parity_inputs_look_like_people():
    kp, K = tensorrt_backend._parity_inputs(example_inputs())
    assert kp.shape == (64, NUM_JOINTS, 2) and K.shape == (64, 3, 3)
    spread = kp.std(dim=1)
    assert (spread > 10).all() and (spread < 2000).all()


# ----------------------------------------------------------------------------- CUDA buckets

def test_cuda_graph_buckets_are_powers_of_two():
    assert [cuda_backend.bucket(n) for n in (1, 2, 3, 7, 8, 33, 64)] == [1, 2, 4, 8, 8, 64, 64]
    with pytest.raises(ValueError):
        cuda_backend.bucket(65)


# ----------------------------------------------------------------------------- lift fast path

def test_changing_K_between_calls_is_not_served_from_the_cache(ort_lifter, torch_lifter):
    kp, _ = _inputs(1)
    K1 = np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]])
    K2 = K1.copy()
    K2[0, 0] = K2[1, 1] = 1500.0
    a = ort_lifter.lift(kp, None, K1)
    b = ort_lifter.lift(kp, None, K2)
    assert b[0, 0, 2] / a[0, 0, 2] > 1.3                    # depth grows with the focal length (Eq. 6)
    assert relative_error(b, torch_lifter.lift(kp, None, K2)) <= PARITY_RTOL
    assert relative_error(a, torch_lifter.lift(kp, None, K1)) <= PARITY_RTOL
    bad = K1.copy()
    bad[0, 0] = -5
    with pytest.raises(InvalidIntrinsicsError, match="positive"):
        ort_lifter.lift(kp, None, bad)
    with pytest.raises(InvalidIntrinsicsError, match="required"):
        ort_lifter.lift(kp, None, None)


def test_bad_input_is_a_sentence(ort_lifter):
    kp, K = _inputs(3)
    with pytest.raises(InvalidKeypointsError, match=r"shape \[N, 17, 2\]"):
        ort_lifter.lift(kp[:, :5], None, K)
    with pytest.raises(InvalidKeypointsError, match="confidence must have shape"):
        ort_lifter.lift(kp, np.ones((2, NUM_JOINTS)), K)
    with pytest.raises(InvalidKeypointsError, match="confidences contain NaN"):
        ort_lifter.lift(kp, np.full((3, NUM_JOINTS), np.nan), K)
    part = kp.copy()
    part[1, 4] = np.nan
    with pytest.raises(InvalidKeypointsError, match=r"frame 1: keypoints for joints \[4\]"):
        ort_lifter.lift(part, None, K)
    assert ort_lifter.lift(np.zeros((0, NUM_JOINTS, 2)), None, K[:0]).shape == (0, NUM_JOINTS, 3)


def _interleaved_median_ms(fns, reps: int) -> list[float]:
    t = np.zeros((len(fns), reps))
    for r in range(reps):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            t[i, r] = time.perf_counter() - t0
    return list(np.median(t, axis=1) * 1e3)


def test_batch1_onnxruntime_is_faster_than_pytorch(ort_lifter, torch_lifter):
    """Relative, interleaved timing (robust to other load on the machine); absolute numbers: notes/runtime.md."""
    kp, K = _inputs(1)
    K = K[0]
    for _ in range(20):
        ort_lifter.lift(kp, None, K), torch_lifter.lift(kp, None, K)
    t_ort, t_torch = _interleaved_median_ms([lambda: ort_lifter.lift(kp, None, K),
                                             lambda: torch_lifter.lift(kp, None, K)], reps=300)
    assert t_ort < t_torch, f"onnxruntime {t_ort:.3f} ms vs torch {t_torch:.3f} ms"


def test_lift_validation_overhead_is_small(ort_lifter):
    """Lifter.lift's own work at batch 1 (checks, conversions; the runtime call replaced by one that
    returns a ready array) is a few percent of the ~0.5 ms engine call."""
    import copy

    class Ready:
        name = "ready"
        out = [np.zeros((1, NUM_JOINTS, 3), np.float32)]

        def run(self, inputs):
            return self.out

    lifter = copy.copy(ort_lifter)
    lifter.runtime = Ready()
    kp, K = _inputs(1)
    conf = np.ones((1, NUM_JOINTS), np.float32)
    K0 = K[0].astype(np.float64)
    (t_lift,) = _interleaved_median_ms([lambda: lifter.lift(kp, conf, K0)], reps=3000)
    assert t_lift < 0.05, f"Lifter.lift overhead {t_lift * 1e3:.0f} us at batch 1"
    assert lifter.lift(kp, conf, K0) is Ready.out[0]        # the fast path hands the result straight back


# ----------------------------------------------------------------------------- GPU (skipped on CPU)

@pytest.fixture(scope="module")
def torch_module():
    return AbsolutePose(load_torch_lifter(WEIGHTS["absposelifter"])).eval()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
@pytest.mark.parametrize("batch", [1, 7, 64, 100])
def test_cuda_graph_backend_matches_pytorch(torch_module, batch):
    rt = cuda_backend.TorchCudaGraphRuntime(torch_module, example_inputs(), ["keypoints_px", "K"])
    kp, K = _inputs(batch, seed=batch)
    got = rt.run({"keypoints_px": kp, "K": K})[0]
    with torch.inference_mode():
        ref = torch_module(torch.from_numpy(kp), torch.from_numpy(K)).numpy()
    assert got.shape == ref.shape
    assert relative_error(got, ref) <= 1e-3     # GPU matmuls may use TF32
    again = rt.run({"keypoints_px": kp[::-1].copy(), "K": K[::-1].copy()})[0]   # graph replay with new data
    assert relative_error(again[::-1], ref) <= 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)
def test_auto_on_gpu_picks_a_gpu_backend(engine_cache):
    lifter = load_lifter("absposelifter", backend="auto")
    assert lifter.runtime.name in ("tensorrt", "cuda")
    kp, K = _inputs(7)
    ref = load_lifter("absposelifter", backend="torch").lift(kp, None, K)
    assert relative_error(lifter.lift(kp, None, K), ref) <= tensorrt_backend.FP16_MAX_REL_ERROR


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA or tensorrt_backend.unavailable_reason() is not None,
                    reason=f"needs an NVIDIA GPU and TensorRT: {tensorrt_backend.unavailable_reason()}")
def test_tensorrt_engine_matches_pytorch_and_is_cached(engine_cache, torch_module):
    from engines.lifter import engine_key
    from engines.runtime import onnx_for
    path = onnx_for(torch_module, example_inputs(), ["keypoints_px", "K"], ["joints_cam_mm"],
                    engine_key("absposelifter", torch_module))
    rt = tensorrt_backend.TensorRTRuntime(path, torch_module, example_inputs(), ["keypoints_px", "K"])
    assert rt.path.exists() and rt.path.parent == engine_cache / "tensorrt"
    for b in (1, 7, 64, 100):
        kp, K = _inputs(b, seed=b)
        with torch.inference_mode():
            ref = torch_module(torch.from_numpy(kp), torch.from_numpy(K)).numpy()
        assert relative_error(rt.run({"keypoints_px": kp, "K": K})[0], ref) <= tensorrt_backend.FP16_MAX_REL_ERROR
    mtime = rt.path.stat().st_mtime_ns
    rt2 = tensorrt_backend.TensorRTRuntime(path, torch_module, example_inputs(), ["keypoints_px", "K"])
    assert rt2.path == rt.path and rt.path.stat().st_mtime_ns == mtime   # loaded, not rebuilt
