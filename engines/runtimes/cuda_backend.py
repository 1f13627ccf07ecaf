"""CUDA backend: PyTorch on an NVIDIA GPU with one CUDA graph per batch-size bucket.

Why CUDA graphs: the lifter is a few small kernels; at batch 1 launching them from
Python costs more than running them. A captured graph replays all of them with one
launch. Batches are padded up to the next bucket (1, 2, 4, ..., 64) with copies of
their first row (BatchNorm is in eval mode, so rows never influence each other) and
larger batches run in chunks of 64, so at most 7 graphs are ever captured.

If PyTorch has no CUDA but ONNX Runtime has its CUDA provider, that runs instead.
Written against PyTorch's documented ``torch.cuda.graph`` API; it was not run in the
sandbox it was written in (no GPU there): see notes/runtime.md.
"""
from __future__ import annotations

import copy
import logging
import threading

import numpy as np
import torch

from engines.runtime import BackendUnavailable, OnnxRuntimeCPU, Runtime, cuda_unavailable_reason, onnx_for

log = logging.getLogger(__name__)

MAX_GRAPH_BATCH = 64


def _ort_cuda_available() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "CUDAExecutionProvider" in ort.get_available_providers()


def unavailable_reason() -> str | None:
    """None if a CUDA backend can run here, else why not."""
    reason = cuda_unavailable_reason()
    if reason is None or _ort_cuda_available():
        return None
    return reason


def bucket(n: int) -> int:
    """Smallest power of two >= n (n in 1..MAX_GRAPH_BATCH)."""
    if not 1 <= n <= MAX_GRAPH_BATCH:
        raise ValueError(f"batch {n} outside 1..{MAX_GRAPH_BATCH}")
    return 1 << (n - 1).bit_length()


class TorchCudaGraphRuntime:
    """Runs the module on the GPU through captured CUDA graphs (static input/output buffers)."""
    name = "cuda"

    def __init__(self, module: torch.nn.Module, example_inputs, input_names: list[str], device: str = "cuda"):
        reason = cuda_unavailable_reason()
        if reason:
            raise BackendUnavailable(f"CUDA backend: {reason}")
        self.device = torch.device(device)
        self.module = copy.deepcopy(module).eval().to(self.device)
        self.input_names = list(input_names)
        # one valid sample per input: fills the static buffers so warm-up/capture never divides by zero
        self._sample = [t[:1].detach().to(self.device, torch.float32) for t in example_inputs]
        self._graphs: dict[int, tuple[torch.cuda.CUDAGraph, list[torch.Tensor], list[torch.Tensor]]] = {}
        self._lock = threading.Lock()
        self._graph_for(1)   # fail here, at load time, if capture does not work on this GPU

    def _graph_for(self, b: int):
        if b in self._graphs:
            return self._graphs[b]
        static_in = [s.expand(b, *s.shape[1:]).clone() for s in self._sample]
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):   # warm-up on a side stream (cuBLAS handles, allocator) before capture
                self.module(*static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.no_grad(), torch.cuda.graph(graph):
            out = self.module(*static_in)
        static_out = list(out) if isinstance(out, (tuple, list)) else [out]
        self._graphs[b] = (graph, static_in, static_out)
        log.debug("captured CUDA graph for batch %d", b)
        return self._graphs[b]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(inputs[n], np.float32) for n in self.input_names]
        n = len(arrays[0])
        if n == 0:
            with torch.no_grad():
                out = self.module(*[torch.from_numpy(a).to(self.device) for a in arrays])
            return [o.cpu().numpy() for o in (out if isinstance(out, (tuple, list)) else [out])]
        chunks = []
        for s in range(0, n, MAX_GRAPH_BATCH):
            chunks.append(self._run_chunk([a[s:s + MAX_GRAPH_BATCH] for a in arrays]))
        return [np.concatenate(parts) if len(parts) > 1 else parts[0] for parts in zip(*chunks)]

    def _run_chunk(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        m = len(arrays[0])
        b = bucket(m)
        with self._lock:
            graph, static_in, static_out = self._graph_for(b)
            for buf, a in zip(static_in, arrays):
                src = torch.from_numpy(a)
                buf[:m].copy_(src)
                if b > m:
                    buf[m:].copy_(src[:1].expand(b - m, *src.shape[1:]))
            graph.replay()
            return [o[:m].cpu().numpy() for o in static_out]   # .cpu() waits for the replay


class OnnxRuntimeCUDA(OnnxRuntimeCPU):
    """ONNX Runtime's CUDA execution provider (used when PyTorch itself has no CUDA)."""
    name = "cuda"

    def __init__(self, onnx_path):
        super().__init__(onnx_path, threads=1, providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
        if "CUDAExecutionProvider" not in self.session.get_providers():
            raise BackendUnavailable("ONNX Runtime could not start its CUDA execution provider")


def make_cuda_runtime(module, example_inputs, input_names, output_names, key) -> Runtime:
    if cuda_unavailable_reason() is None:
        return TorchCudaGraphRuntime(module, example_inputs, input_names)
    if _ort_cuda_available():
        return OnnxRuntimeCUDA(onnx_for(module, example_inputs, input_names, output_names, key))
    raise BackendUnavailable(f"CUDA backend: {cuda_unavailable_reason()}")
