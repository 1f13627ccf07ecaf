"""The public lifter API: ``engines.load_lifter(name, backend=...)``.

``lift(keypoints_px [N,17,2], confidence [N,17], K [3,3] or [N,3,3]) -> joints_cam_mm [N,17,3]``
returns absolute camera-frame joints (OpenCV axes, mm). Frames whose keypoints are
all NaN (no person) come back as NaN; partly NaN or otherwise invalid input raises
``InvalidKeypointsError`` with a sentence saying what is wrong.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from engines.absposelifter.model import AbsolutePose, AbsPoseLifter, LifterConfig
from engines.camera import MAX_FOCAL_PX, MIN_FOCAL_PX, InvalidIntrinsicsError
from engines.runtime import BACKENDS, file_sha256
from engines.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
WEIGHTS = {"absposelifter": REPO / "assets" / "absposelifter" / "absposelifter.pt"}


class InvalidKeypointsError(ValueError):
    """Keypoints that cannot be lifted (wrong shape, partly NaN, infinite)."""


class UnknownEngineError(ValueError):
    pass


def load_torch_lifter(weights: Path) -> AbsPoseLifter:
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    model = AbsPoseLifter(LifterConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


class Lifter:
    """A 2D -> absolute 3D engine bound to one runtime backend."""
    input_names = ["keypoints_px", "K"]
    output_names = ["joints_cam_mm"]

    def __init__(self, name: str, backend: str, weights: Path):
        self.name = name
        self.weights = Path(weights)
        self.module = AbsolutePose(load_torch_lifter(self.weights)).eval()
        self.backend = select_backend(backend)
        key = f"{name}-{file_sha256(self.weights)[:16]}"
        example = (torch.zeros(2, NUM_JOINTS, 2) + torch.arange(NUM_JOINTS)[None, :, None] * 10.0,
                   torch.tensor([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]]).expand(2, 3, 3).contiguous())
        self.runtime = BACKENDS[self.backend](self.module, example, self.input_names, self.output_names, key)
        log.info("lifter %s on %s", name, self.runtime.name)

    def lift(self, keypoints_px, confidence=None, K=None) -> np.ndarray:
        kp = np.asarray(keypoints_px, dtype=np.float64)
        if kp.ndim == 2:
            kp = kp[None]
        if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
            raise InvalidKeypointsError(f"keypoints must have shape [N, {NUM_JOINTS}, 2], got {kp.shape}")
        N = len(kp)
        if confidence is not None:
            conf = np.asarray(confidence, dtype=np.float64).reshape(N, NUM_JOINTS) if N else np.zeros((0, NUM_JOINTS))
            if not np.isfinite(conf).all():
                raise InvalidKeypointsError("confidences contain NaN or infinite values")
        K = _check_K(K, N)
        finite = np.isfinite(kp).all(-1)                     # [N, J]
        person = finite.all(-1)
        partial = ~person & finite.any(-1)
        if partial.any():
            i = int(np.flatnonzero(partial)[0])
            bad = [j for j in range(NUM_JOINTS) if not finite[i, j]]
            raise InvalidKeypointsError(
                f"frame {i}: keypoints for joints {bad} are NaN/infinite while others are valid; "
                "give all 17 joints, or all NaN to mark a frame without a person")
        out = np.full((N, NUM_JOINTS, 3), np.nan, np.float32)
        if person.any():
            res = self.runtime.run({"keypoints_px": kp[person].astype(np.float32),
                                    "K": K[person].astype(np.float32)})[0]
            out[person] = res
        return out


def _check_K(K, N: int) -> np.ndarray:
    if K is None:
        raise InvalidIntrinsicsError("camera intrinsics K are required (focal length in px and principal point)")
    K = np.asarray(getattr(K, "K", K), dtype=np.float64)
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (N, 3, 3))
    if K.shape != (N, 3, 3):
        raise InvalidIntrinsicsError(f"K must have shape [3, 3] or [N, 3, 3], got {K.shape}")
    f = K[:, [0, 1], [0, 1]]
    if not np.isfinite(K).all() or (f <= 0).any():
        raise InvalidIntrinsicsError("focal length must be a positive, finite number of pixels")
    if (f < MIN_FOCAL_PX).any() or (f > MAX_FOCAL_PX).any():
        raise InvalidIntrinsicsError(
            f"focal length {f.min():.1f}-{f.max():.1f} px is outside the plausible range "
            f"[{MIN_FOCAL_PX:.0f}, {MAX_FOCAL_PX:.0f}] px")
    return K


def select_backend(backend: str) -> str:
    """``auto`` picks the fastest available backend and logs why."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise UnknownEngineError(f"unknown backend {backend!r}; available: {', '.join(BACKENDS)}")
        return backend
    choice = "onnxruntime" if "onnxruntime" in BACKENDS else "torch"
    log.info("backend auto -> %s (no NVIDIA GPU backend available)", choice)
    return choice


def load_lifter(name: str = "absposelifter", backend: str = "auto", weights: str | Path | None = None) -> Lifter:
    if name not in WEIGHTS:
        raise UnknownEngineError(f"unknown lifter {name!r}; available: {', '.join(WEIGHTS)}")
    w = Path(weights) if weights else WEIGHTS[name]
    if not w.exists():
        raise FileNotFoundError(f"weights for {name} not found at {w}")
    return Lifter(name, backend, w)
