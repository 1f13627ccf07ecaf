"""One small interface for running an exported engine graph, whatever runs it.

A ``Runtime`` takes named float32 arrays and returns a list of float32 arrays.
Backends: ``torch`` (the reference), ``onnxruntime`` (CPU; the default without an
NVIDIA GPU). Further backends register themselves in ``BACKENDS``.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Per-user cache for exported/compiled engines (``$MOCAP_CACHE`` or ``~/.cache/mocap``)."""
    d = Path(os.environ.get("MOCAP_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mocap"))
    d.mkdir(parents=True, exist_ok=True)
    return d


class Runtime(Protocol):
    name: str

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]: ...


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


def export_onnx(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], input_names: list[str],
                output_names: list[str], path: Path) -> Path:
    """Export with a dynamic batch dimension (dim 0 of every input and output) and check the graph."""
    import onnx

    module = module.eval()
    batch = torch.export.Dim("batch", min=1, max=65536)
    dynamic_shapes = tuple({0: batch} for _ in example_inputs)
    tmp = path.with_suffix(".tmp.onnx")
    onnx_program = torch.onnx.export(module, example_inputs, input_names=input_names, output_names=output_names,
                                     dynamic_shapes=dynamic_shapes, dynamo=True, external_data=False)
    onnx_program.save(str(tmp))
    onnx.checker.check_model(onnx.load(str(tmp)), full_check=True)
    os.replace(tmp, path)
    return path


def onnx_for(module: torch.nn.Module, example_inputs, input_names, output_names, key: str) -> Path:
    """Cached ONNX file for ``module``; ``key`` must change whenever the weights do."""
    path = cache_dir() / "onnx" / f"{key}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        log.info("exporting ONNX graph to %s", path)
        export_onnx(module, example_inputs, input_names, output_names, path)
    return path


class OnnxRuntimeCPU:
    """ONNX Runtime on the CPU.

    Threads: MediaPipe runs beside the lifter on the same few cores, and a tiny MLP
    gains nothing from many threads, so intra-op threads default to 1 and no
    spinning (spinning threads would steal a core from MediaPipe).
    """
    name = "onnxruntime"

    def __init__(self, onnx_path: Path, threads: int = 1):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3
        self.session = ort.InferenceSession(str(onnx_path), so, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, {n: np.ascontiguousarray(inputs[n], np.float32) for n in self.input_names})


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# name -> factory(module, example_inputs, input_names, output_names, key) -> Runtime
BACKENDS: dict[str, Callable[..., Runtime]] = {
    "torch": lambda module, ex, inn, outn, key: TorchRuntime(module, inn),
    "onnxruntime": lambda module, ex, inn, outn, key: OnnxRuntimeCPU(onnx_for(module, ex, inn, outn, key)),
}
