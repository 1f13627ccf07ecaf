"""One small interface for running an exported engine graph, whatever runs it.

A ``Runtime`` takes named float32 arrays and returns a list of float32 arrays.
Backends, fastest first: ``tensorrt`` (NVIDIA GPU + the optional ``tensorrt``
package), ``cuda`` (PyTorch CUDA graphs, or ONNX Runtime's CUDA provider),
``onnxruntime`` (CPU; the default without an NVIDIA GPU), ``torch`` (the
reference; always available). Each backend is a ``Backend`` in ``BACKENDS``: it
says whether it can run here (``unavailable_reason``) without importing heavy
packages, and builds a runtime from the PyTorch module (``__call__``).
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np
import torch

log = logging.getLogger(__name__)

# Bump when the exported graph changes for the same weights (exporter options, graph
# surgery): cached ONNX files (and the TensorRT engines keyed by their hash) are rebuilt.
EXPORT_VERSION = 2
PARITY_RTOL = 1e-4   # float32 backends must match PyTorch to this relative error (see ``relative_error``)


class BackendUnavailable(RuntimeError):
    """A backend cannot run on this machine (a package or a GPU is missing); the message says which."""


class ExportError(RuntimeError):
    """The engine could not be exported to a valid ONNX graph that matches PyTorch."""


def cache_dir() -> Path:
    """Per-user cache for exported/compiled engines (``$MOCAP_CACHE`` or ``~/.cache/mocap``)."""
    d = Path(os.environ.get("MOCAP_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mocap"))
    d.mkdir(parents=True, exist_ok=True)
    return d


class Runtime(Protocol):
    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


def relative_error(a: np.ndarray, ref: np.ndarray) -> float:
    """max |a - ref| / max |ref|: one number per comparison, insensitive to near-zero entries
    (the root joint's relative coordinates are exactly 0, so an element-wise ratio is meaningless)."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    scale = max(float(np.abs(ref).max(initial=0.0)), 1e-12)
    return float(np.abs(a - ref).max(initial=0.0)) / scale


class TorchRuntime:
    """Runs the PyTorch module directly (reference backend)."""
    name = "torch"

    def __init__(self, module: torch.nn.Module, input_names: list[str], threads: int | None = None):
        self.module = module.eval()
        self.input_names = input_names
        if threads:
            torch.set_num_threads(threads)

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        out = self.module(*[torch.from_numpy(np.ascontiguousarray(inputs[n], np.float32)) for n in self.input_names])
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o.numpy() for o in outs]


# ----------------------------------------------------------------------------- ONNX export

def fold_batchnorm(module: torch.nn.Module) -> torch.nn.Module:
    """Copy of ``module`` with every eval BatchNorm1d that follows a Linear (possibly through
    Dropout/Identity, which are no-ops in eval) folded into that Linear's weights.

    Why: a folded BN costs nothing at run time, on every backend, whatever the ONNX
    exporter's own optimiser does. BNs that follow a residual sum (not a Linear) stay.
    """
    import copy

    from torch.nn.utils.fusion import fuse_linear_bn_eval

    m = copy.deepcopy(module).eval()
    for seq in [s for s in m.modules() if isinstance(s, torch.nn.Sequential)]:
        last_linear = None
        for i, child in enumerate(list(seq)):
            if isinstance(child, torch.nn.Linear):
                last_linear = i
            elif isinstance(child, (torch.nn.Dropout, torch.nn.Identity)):
                continue
            elif isinstance(child, torch.nn.BatchNorm1d) and last_linear is not None and child.track_running_stats:
                seq[last_linear] = fuse_linear_bn_eval(seq[last_linear], child)
                seq[i] = torch.nn.Identity()
                last_linear = None
            else:
                last_linear = None
    return m


@contextlib.contextmanager
def _quiet_export():
    """Silence the exporter: its progress lines on stdout, FutureWarning/UserWarning noise and
    torch's logger warnings (e.g. "torchvision is not installed") say nothing a user can act on."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    buf = io.StringIO()
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(buf):
            warnings.simplefilter("ignore")
            yield buf
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_onnx(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], input_names: list[str],
                output_names: list[str], path: Path, fold_bn: bool = True) -> Path:
    """Export with a dynamic batch dimension (dim 0 of every input and output), check the graph
    with ``onnx.checker`` and check ONNX Runtime against PyTorch on the example inputs.

    Uses the ``torch.export`` (dynamo) exporter; if that fails on some torch version, the
    TorchScript exporter. Writes atomically (a half-written file never has the final name).
    """
    import onnx

    module = (fold_batchnorm(module) if fold_bn else module).eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.onnx")
    errors = []
    try:
        for exporter in (_export_dynamo, _export_torchscript):
            try:
                with _quiet_export():
                    exporter(module, example_inputs, input_names, output_names, tmp)
                model = onnx.load(str(tmp))
                onnx.checker.check_model(model, full_check=True)
                _check_dynamic_batch(model)
                break
            except Exception as e:  # try the next exporter, report all if none works
                errors.append(f"{exporter.__name__.lstrip('_')}: {type(e).__name__}: {_first_line(e)}")
                log.debug("ONNX export with %s failed", exporter.__name__, exc_info=True)
        else:
            raise ExportError("could not export the engine to ONNX: " + " | ".join(errors))
        err = _onnx_parity(tmp, module, example_inputs, input_names)
        if err > PARITY_RTOL:
            raise ExportError(f"the exported ONNX graph differs from PyTorch by {err:.2e} (relative), "
                              f"more than {PARITY_RTOL:.0e}")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _first_line(e: BaseException) -> str:
    """The exception's first line without terminal colour codes (exporter messages are pages long)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(e)).strip()
    return (text.splitlines() or [""])[0][:300]


def _export_dynamo(module, example_inputs, input_names, output_names, out: Path) -> None:
    batch = torch.export.Dim("batch", min=1, max=65536)
    program = torch.onnx.export(module, tuple(example_inputs), input_names=input_names, output_names=output_names,
                                dynamic_shapes=tuple({0: batch} for _ in example_inputs), dynamo=True,
                                external_data=False, verbose=False, optimize=True)
    program.save(str(out))


def _export_torchscript(module, example_inputs, input_names, output_names, out: Path) -> None:
    axes = {n: {0: "batch"} for n in [*input_names, *output_names]}
    torch.onnx.export(module, tuple(example_inputs), str(out), input_names=input_names, output_names=output_names,
                      dynamic_axes=axes, opset_version=17, dynamo=False, do_constant_folding=True)


def _check_dynamic_batch(model) -> None:
    for v in [*model.graph.input, *model.graph.output]:
        d0 = v.type.tensor_type.shape.dim[0]
        if d0.HasField("dim_value"):
            raise ExportError(f"{v.name}: batch dimension was exported as the constant {d0.dim_value}")


def _onnx_parity(path: Path, module, example_inputs, input_names) -> float:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: t.numpy() for n, t in zip(input_names, example_inputs)})[0]
    with torch.inference_mode():
        ref = module(*example_inputs)
    ref = ref[0] if isinstance(ref, (tuple, list)) else ref
    return relative_error(got, ref.numpy())


def onnx_cache_path(key: str) -> Path:
    """Where ``onnx_for`` keeps the graph for ``key`` (the exporter version is part of the name)."""
    return cache_dir() / "onnx" / f"{key}-v{EXPORT_VERSION}.onnx"


def onnx_for(module: torch.nn.Module, example_inputs, input_names, output_names, key: str) -> Path:
    """Cached ONNX file for ``module``; ``key`` must change whenever the weights do.

    A cached file that ONNX cannot load (truncated, from an older exporter) is re-exported.
    """
    import onnx

    path = onnx_cache_path(key)
    if path.exists():
        try:
            onnx.checker.check_model(str(path))
            return path
        except Exception as e:
            log.warning("cached ONNX graph %s is unreadable (%s); exporting it again", path, e)
    log.info("exporting ONNX graph to %s (once per weights file)", path)
    return export_onnx(module, example_inputs, input_names, output_names, path)


def module_fingerprint(module: torch.nn.Module) -> str:
    """Hash of everything the exported graph depends on: every parameter and buffer, the plain
    settings of every submodule (e.g. a ``flip_test`` flag), the source of the project's own
    module classes and the torch version. Any change gives a new cache key, so a stale graph
    (or TensorRT engine) is never served after weights, options or code change."""
    import inspect

    h = hashlib.sha256(f"torch {torch.__version__}; export v{EXPORT_VERSION}".encode())
    for name, t in module.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes())
    seen = set()
    for name, m in module.named_modules():
        cls = type(m)
        settings = {k: v for k, v in vars(m).items()
                    if not k.startswith("_") and isinstance(v, (bool, int, float, str, tuple))}
        h.update(f"{name}:{cls.__module__}.{cls.__qualname__}:{sorted(settings.items())!r}".encode())
        if cls not in seen and not cls.__module__.startswith("torch."):
            seen.add(cls)
            try:
                h.update(inspect.getsource(cls).encode())
            except (OSError, TypeError):   # no source (frozen app): weights + settings still count
                pass
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- ONNX Runtime (CPU)

class OnnxRuntimeCPU:
    """ONNX Runtime on the CPU.

    Threads: MediaPipe runs beside the lifter on the same few cores, and a batch-1 MLP
    gains nothing from a second thread (measured: with the cores busy, a second intra-op
    thread makes the median 10x worse; notes/runtime.md), so intra-op threads default to 1
    and threads never spin (a spinning thread would steal a core from MediaPipe).
    Calls go through plain ``InferenceSession.run``: measured per-call overhead ~10 us,
    against ~47 us for a pre-bound ``IOBinding`` and ~55 us for ``run_with_ort_values``.
    """
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 1, providers: Sequence[str] = ("CPUExecutionProvider",)):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.onnx_path = Path(onnx_path)
        self.session = ort.InferenceSession(str(onnx_path), so, providers=list(providers))
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._run_options = ort.RunOptions()

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        feed = {n: np.ascontiguousarray(inputs[n], np.float32) for n in self.input_names}
        return self.session.run(self.output_names, feed, self._run_options)


# ----------------------------------------------------------------------------- backend registry

Factory = Callable[..., Runtime]   # (module, example_inputs, input_names, output_names, key) -> Runtime


@dataclass(frozen=True)
class Backend:
    """A way to run an engine: ``priority`` orders ``auto`` (higher = faster when available)."""
    name: str
    priority: int
    factory: Factory
    probe: Callable[[], str | None]   # None if it can run here, else a sentence saying why not
    device: str = "cpu"

    def __call__(self, module, example_inputs, input_names, output_names, key) -> Runtime:
        return self.factory(module, example_inputs, input_names, output_names, key)

    def unavailable_reason(self) -> str | None:
        try:
            return self.probe()
        except Exception as e:   # a broken optional install must not break the app
            return f"probing it failed ({type(e).__name__}: {e})"


def cuda_unavailable_reason() -> str | None:
    """Why PyTorch cannot use an NVIDIA GPU here, or None if it can."""
    if torch.version.cuda is None:
        return f"no NVIDIA GPU support in this PyTorch build ({torch.__version__})"
    if not torch.cuda.is_available():
        return "no NVIDIA GPU found by PyTorch"
    return None


def _probe_onnxruntime() -> str | None:
    if importlib.util.find_spec("onnxruntime") is None:
        return "the onnxruntime package is not installed"
    return None


def _probe_tensorrt() -> str | None:
    from engines.runtimes.tensorrt_backend import unavailable_reason
    return unavailable_reason()


def _probe_cuda() -> str | None:
    from engines.runtimes.cuda_backend import unavailable_reason
    return unavailable_reason()


def _make_onnxruntime(module, ex, inn, outn, key) -> Runtime:
    return OnnxRuntimeCPU(onnx_for(module, ex, inn, outn, key))


def _make_tensorrt(module, ex, inn, outn, key) -> Runtime:
    from engines.runtimes.tensorrt_backend import TensorRTRuntime
    return TensorRTRuntime(onnx_for(module, ex, inn, outn, key), module, ex, inn)


def _make_cuda(module, ex, inn, outn, key) -> Runtime:
    from engines.runtimes.cuda_backend import make_cuda_runtime
    return make_cuda_runtime(module, ex, inn, outn, key)


BACKENDS: dict[str, Backend] = {b.name: b for b in sorted([
    Backend("tensorrt", 40, _make_tensorrt, _probe_tensorrt, "cuda"),
    Backend("cuda", 30, _make_cuda, _probe_cuda, "cuda"),
    Backend("onnxruntime", 20, _make_onnxruntime, _probe_onnxruntime, "cpu"),
    Backend("torch", 10, lambda module, ex, inn, outn, key: TorchRuntime(module, inn), lambda: None, "cpu"),
], key=lambda b: -b.priority)}
