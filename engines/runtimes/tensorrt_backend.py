"""TensorRT backend (NVIDIA GPUs; optional: ``pip install .[tensorrt]``).

Builds a TensorRT engine from the cached ONNX graph with TensorRT's Python API
(>= 10): one optimisation profile per opt point (batch 1 for live capture, batch 64
for offline videos), both covering batch 1..64; larger batches run in chunks.
FP16 is tried first with the geometry (normalisation, Eq. 5-6: sums of squared pixel
offsets overflow FP16) pinned to FP32, so only the big matrix multiplies run in FP16;
the built engine is checked against PyTorch and rebuilt in FP32 if the error is larger
than ``FP16_MAX_REL_ERROR``.

Engines are cached under ``cache_dir()/tensorrt/`` in a file named by a hash of the
GPU model, compute capability, TensorRT version, the ONNX graph's SHA-256 and the
build settings (``engine_cache_key``): change any and the engine is rebuilt.

Not run where it was written (no GPU, no TensorRT there); see notes/runtime.md.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engines.runtime import BackendUnavailable, cache_dir, cuda_unavailable_reason, file_sha256, relative_error

log = logging.getLogger(__name__)

MIN_BATCH, MAX_BATCH = 1, 64
OPT_BATCHES = (1, 64)          # one optimisation profile per opt point
FP16_MAX_REL_ERROR = 2e-3      # ~2 mm on a 1 m scale: far below the lifter's own error (tens of mm)
FP32_MAX_REL_ERROR = 1e-3      # TF32/tactic differences; anything larger is a broken engine
WORKSPACE_BYTES = 1 << 30
BUILD_SETTINGS_VERSION = 1     # bump when the build recipe below changes


def unavailable_reason() -> str | None:
    """None if TensorRT can run here, else why not (checked without importing tensorrt)."""
    reason = cuda_unavailable_reason()
    if reason:
        return reason
    if importlib.util.find_spec("tensorrt") is None:
        return "the optional tensorrt package is not installed (pip install 'mocap[tensorrt]')"
    return None


def import_tensorrt():
    """``import tensorrt`` with a sentence instead of a traceback when it cannot be loaded."""
    try:
        import tensorrt as trt
    except Exception as e:   # ImportError, or a missing/mismatched libnvinfer raising OSError
        raise BackendUnavailable(f"TensorRT cannot be loaded ({type(e).__name__}: {e})") from e
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise BackendUnavailable(f"TensorRT {trt.__version__} is too old; version 10 or newer is needed")
    return trt


@dataclass(frozen=True)
class EngineKey:
    """Everything a serialised engine depends on: an engine is only valid for this exact set."""
    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    onnx_sha256: str
    min_batch: int = MIN_BATCH
    max_batch: int = MAX_BATCH
    opt_batches: tuple[int, ...] = OPT_BATCHES
    settings_version: int = BUILD_SETTINGS_VERSION

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


def engine_cache_key(onnx_path: Path, gpu_name: str, compute_capability: str, tensorrt_version: str) -> EngineKey:
    return EngineKey(gpu_name=gpu_name, compute_capability=compute_capability, tensorrt_version=tensorrt_version,
                     onnx_sha256=file_sha256(onnx_path))


def engine_path(key: EngineKey, onnx_path: Path, root: Path | None = None) -> Path:
    """Where the engine for ``key`` lives: readable stem + key hash (so a changed key is a new file)."""
    return (root or cache_dir() / "tensorrt") / f"{Path(onnx_path).stem}-{key.digest()}.engine"


def current_key(onnx_path: Path, trt_version: str, device: int = 0) -> EngineKey:
    major, minor = torch.cuda.get_device_capability(device)
    return engine_cache_key(onnx_path, torch.cuda.get_device_name(device), f"{major}.{minor}", trt_version)


class TensorRTRuntime:
    """A deserialised TensorRT engine with one execution context per optimisation profile."""
    name = "tensorrt"

    def __init__(self, onnx_path: Path, module: torch.nn.Module, example_inputs, input_names: list[str],
                 device: int = 0):
        reason = unavailable_reason()
        if reason:
            raise BackendUnavailable(f"TensorRT backend: {reason}")
        self.trt = trt = import_tensorrt()
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.device = torch.device("cuda", device)
        self.input_names = list(input_names)
        self.onnx_path = Path(onnx_path)
        self.key = current_key(self.onnx_path, trt.__version__, device)
        self.path = engine_path(self.key, self.onnx_path)
        self._lock = threading.Lock()
        self.stream = torch.cuda.Stream(self.device)
        probe = _parity_inputs(example_inputs)
        with torch.inference_mode():
            ref = module.eval()(*probe)
        ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()

        meta = self._load_meta()
        if self.path.exists() and meta is not None:
            try:
                self._load(self.path.read_bytes())
                self.precision = meta["precision"]
                err = relative_error(self.run(dict(zip(self.input_names, [p.numpy() for p in probe])))[0], ref)
                limit = FP16_MAX_REL_ERROR if self.precision == "fp16" else FP32_MAX_REL_ERROR
                if err <= limit:
                    log.info("TensorRT engine %s (%s) loaded from cache", self.path.name, self.precision)
                    return
                log.warning("cached TensorRT engine %s is off by %.1e; rebuilding it", self.path.name, err)
            except Exception as e:
                log.warning("cached TensorRT engine %s could not be used (%s); rebuilding it", self.path.name, e)
        self._build_and_check(probe, ref)

    # -- build -------------------------------------------------------------------------
    def _build_and_check(self, probe, ref) -> None:
        feeds = dict(zip(self.input_names, [p.numpy() for p in probe]))
        errors = {}
        for precision in ("fp16", "fp32"):
            if precision == "fp16" and not self._fast_fp16():
                continue
            log.info("building TensorRT %s engine for %s (once per GPU / TensorRT version / weights; "
                     "takes a minute)", precision, torch.cuda.get_device_name(self.device))
            data = self._build(precision)
            self._load(data)
            err = relative_error(self.run(feeds)[0], ref)
            errors[precision] = err
            limit = FP16_MAX_REL_ERROR if precision == "fp16" else FP32_MAX_REL_ERROR
            if err <= limit:
                self.precision = precision
                self._save(data, {"precision": precision, "relative_error": err, "key": asdict(self.key)})
                log.info("TensorRT %s engine matches PyTorch to %.1e (relative); cached at %s", precision, err,
                         self.path)
                return
            log.info("TensorRT %s engine is off by %.1e (limit %.0e); trying the next precision",
                     precision, err, limit)
        raise BackendUnavailable(f"TensorRT engines do not match PyTorch (relative errors {errors})")

    def _fast_fp16(self) -> bool:
        builder = self.trt.Builder(self.logger)
        return bool(getattr(builder, "platform_has_fast_fp16", True))

    def _build(self, precision: str) -> bytes:
        trt = self.trt
        builder = trt.Builder(self.logger)
        network = builder.create_network(0)   # explicit batch is the only mode in TensorRT 10
        parser = trt.OnnxParser(network, self.logger)
        if not parser.parse(self.onnx_path.read_bytes()):
            msgs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise BackendUnavailable(f"TensorRT cannot parse {self.onnx_path.name}: {msgs}")
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, WORKSPACE_BYTES)
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
            config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
            _pin_geometry_to_fp32(trt, network)
        for opt in OPT_BATCHES:
            profile = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                t = network.get_input(i)
                rest = tuple(int(d) for d in list(t.shape)[1:])
                profile.set_shape(t.name, (MIN_BATCH, *rest), (opt, *rest), (MAX_BATCH, *rest))
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise BackendUnavailable(f"TensorRT failed to build a {precision} engine (see its log above)")
        return bytes(serialized)

    def _save(self, data: bytes, meta: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for p, blob in ((self.path, data), (self.path.with_suffix(".json"), json.dumps(meta, indent=1).encode())):
            tmp = p.with_name(f"{p.name}.{os.getpid()}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, p)

    def _load_meta(self) -> dict | None:
        try:
            meta = json.loads(self.path.with_suffix(".json").read_text())
            return meta if meta.get("key") == json.loads(json.dumps(asdict(self.key))) else None
        except (OSError, ValueError):
            return None

    # -- run ---------------------------------------------------------------------------
    def _load(self, data: bytes) -> None:
        trt = self.trt
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise BackendUnavailable("TensorRT could not deserialise the engine")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.contexts = []
        for p in range(self.engine.num_optimization_profiles):
            ctx = self.engine.create_execution_context()
            ctx.set_optimization_profile_async(p, self.stream.cuda_stream)
            self.contexts.append(ctx)
        self.stream.synchronize()

    def _context_for(self, n: int):
        """The context whose profile's opt point is nearest (in log scale) to the batch size."""
        best = min(range(len(OPT_BATCHES)), key=lambda i: abs(np.log(OPT_BATCHES[i]) - np.log(n)))
        return self.contexts[min(best, len(self.contexts) - 1)]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(inputs[n], np.float32) for n in self.input_names]
        n = len(arrays[0])
        if n == 0:
            return [np.zeros((0, *list(self.engine.get_tensor_shape(o))[1:]), np.float32) for o in self.outputs]
        chunks = [self._run_chunk([a[s:s + MAX_BATCH] for a in arrays]) for s in range(0, n, MAX_BATCH)]
        return [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*chunks)]

    def _run_chunk(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        n = len(arrays[0])
        with self._lock, torch.cuda.stream(self.stream):
            ctx = self._context_for(n)
            ins = [torch.from_numpy(a).to(self.device, non_blocking=False) for a in arrays]
            for name, t in zip(self.input_names, ins):
                ctx.set_input_shape(name, tuple(t.shape))
                ctx.set_tensor_address(name, t.data_ptr())
            outs = []
            for name in self.outputs:
                out = torch.empty(tuple(ctx.get_tensor_shape(name)), dtype=torch.float32, device=self.device)
                ctx.set_tensor_address(name, out.data_ptr())
                outs.append(out)
            if not ctx.execute_async_v3(self.stream.cuda_stream):
                raise RuntimeError("TensorRT execution failed")
            self.stream.synchronize()
            return [o.cpu().numpy() for o in outs]


def _pin_geometry_to_fp32(trt, network) -> None:
    """Keep every float layer except matrix multiplies in FP32 (the normalisation's squared pixel
    sums exceed FP16's range); TensorRT then runs only the GEMMs in FP16."""
    float_types = {trt.float32, trt.float16}
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in (trt.LayerType.MATRIX_MULTIPLY, trt.LayerType.CONSTANT):
            continue   # the GEMMs (and their weights) are what FP16 is for
        outs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if outs and all(o.dtype in float_types for o in outs):
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)


def _parity_inputs(example_inputs, n: int = 64, seed: int = 0) -> list[torch.Tensor]:
    """Person-like inputs for the post-build parity check: the example's first sample with the
    keypoints spread over a person-sized box and shifted around the image (deterministic)."""
    if len(example_inputs) != 2 or tuple(example_inputs[1].shape[1:]) != (3, 3) or example_inputs[0].shape[-1] != 2:
        return [t.float().contiguous() for t in example_inputs]   # not a (keypoints, K) engine
    g = torch.Generator().manual_seed(seed)
    kp, K = example_inputs[0][:1].float(), example_inputs[1][:1].float()
    J = kp.shape[1]
    spread = torch.tensor([60.0, 180.0]) * torch.exp(torch.randn(n, 1, 1, generator=g) * 0.5)
    centre = K[:, :2, 2] + torch.randn(n, 2, generator=g) * 150.0
    keypoints = centre[:, None, :] + torch.randn(n, J, 2, generator=g) * spread
    return [keypoints.contiguous(), K.expand(n, 3, 3).contiguous()]
