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
from engines.runtime import BACKENDS, module_fingerprint
from engines.skeleton import NUM_JOINTS

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[1]
WEIGHTS = {"absposelifter": REPO / "assets" / "absposelifter" / "absposelifter.pt"}   # the 2D -> 3D lifters
# The paper's lifter without the focal-length input (the shipped weights of 3 Dec, before it was added): its
# relative pose does not depend on f, which auto focal needs (mocap_app.calibration.autofocal; with the lifter
# that takes f it was far off on real video, notes/calibration.md).
FOCAL_FREE_WEIGHTS = REPO / "assets" / "absposelifter" / "absposelifter_focal_free.pt"
# every engine's shipped weights, in one place (the engines' modules take their defaults from here), so
# asking what is installed imports none of them
BUNDLED_WEIGHTS = {**WEIGHTS, "perspose": REPO / "assets" / "perspose" / "perspose.pt",
                   "zedo": REPO / "assets" / "zedo" / "zedo_prior.pt"}


class InvalidKeypointsError(ValueError):
    """Keypoints that cannot be lifted (wrong shape, partly NaN, infinite)."""


def as_keypoints(keypoints_px, dtype=np.float32) -> np.ndarray:
    """Keypoints as ``[N, 17, 2]`` (a single ``[17, 2]`` pose becomes N = 1); any other shape is refused."""
    kp = np.asarray(keypoints_px, dtype=dtype)
    if kp.ndim == 2:
        kp = kp[None]
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise InvalidKeypointsError(f"keypoints must have shape [N, {NUM_JOINTS}, 2], got {kp.shape}")
    return kp


class UnknownEngineError(ValueError):
    pass


class InvalidWeightsError(ValueError):
    """A weights file that is not this engine's (another model, a damaged download, any other file)."""


def load_checked(loader, path: Path, what: str):
    """``loader(path)``, with any failure to read it as ``what`` turned into one sentence (``InvalidWeightsError``)."""
    try:
        return loader(path)
    except Exception as e:  # noqa: BLE001 - pickle, zip, key and shape errors all mean the same to a user
        raise InvalidWeightsError(f"{Path(path).name} is not {what} ({type(e).__name__})") from e


def load_torch_lifter(weights: Path) -> AbsPoseLifter:
    ckpt = torch.load(weights, map_location="cpu", weights_only=False)
    model = AbsPoseLifter(LifterConfig(**ckpt["config"]))
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()


def engine_key(name: str, module: torch.nn.Module) -> str:
    """Cache key of the exported graph: changes whenever the weights, settings or model code do."""
    return f"{name}-{module_fingerprint(module)[:16]}"


def example_inputs(n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs used to trace/export the graph (and to check the export): a spread-out 2D pose and a K."""
    return (torch.zeros(n, NUM_JOINTS, 2) + torch.arange(NUM_JOINTS)[None, :, None] * 10.0 + 300.0,
            torch.tensor([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]]).expand(n, 3, 3).contiguous())


class Lifter:
    """A 2D -> absolute 3D engine bound to one runtime backend.

    ``backend`` is a name from ``engines.runtime.BACKENDS`` or ``auto``; a backend that
    cannot load falls back (with one warning) to the next fastest, ending at ``torch``.
    """
    input_names = ["keypoints_px", "K"]
    output_names = ["joints_cam_mm"]

    def __init__(self, name: str, backend: str, weights: Path, flip_test: bool = True):
        self.name = name
        self.weights = Path(weights)
        model = load_checked(load_torch_lifter, self.weights, "AbsPoseLifter weights (from training or `mocap-app "
                                                              "adapt`)")
        # whether the focal length is an input (LifterConfig.use_focal) or only scales the root depth (the paper's)
        self.uses_focal = bool(model.cfg.use_focal)
        self.module = AbsolutePose(model, flip_test=flip_test).eval()
        self.runtime = open_runtime(name, backend, self.module, example_inputs(), self.input_names,
                                    self.output_names, engine_key(name, self.module))
        self.backend = self.runtime.name
        self._k_key: bytes | None = None      # last validated 3x3 K (live capture reuses one camera)
        self._k32 = np.zeros((1, 3, 3), np.float32)

    def lift(self, keypoints_px, confidence=None, K=None) -> np.ndarray:
        kp = as_keypoints(keypoints_px)
        N = len(kp)
        if confidence is not None:
            conf = np.asarray(confidence, dtype=np.float32)
            if conf.size != N * NUM_JOINTS:
                raise InvalidKeypointsError(f"confidence must have shape [N, {NUM_JOINTS}] matching {N} frame(s) "
                                            f"of keypoints, got {conf.shape}")
            if not np.isfinite(conf).all():
                raise InvalidKeypointsError("confidences contain NaN or infinite values")
        Kn = self._intrinsics(K, N)
        if N and np.isfinite(kp).all():       # fast path: a person in every frame
            return self.runtime.run({"keypoints_px": np.ascontiguousarray(kp), "K": Kn})[0]
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
            out[person] = self.runtime.run({"keypoints_px": np.ascontiguousarray(kp[person]),
                                            "K": np.ascontiguousarray(Kn[person])})[0]
        return out

    def _intrinsics(self, K, N: int) -> np.ndarray:
        """Validated float32 ``[N, 3, 3]``; a 3x3 K equal to the last one is not re-validated."""
        if K is None:
            raise InvalidIntrinsicsError("camera intrinsics K are required (focal length in px and principal point)")
        K = np.asarray(getattr(K, "K", K))
        if K.shape != (3, 3):
            return np.ascontiguousarray(_check_K(K, N), dtype=np.float32)
        key = K.dtype.str.encode() + K.tobytes()
        if key != self._k_key:
            _check_K(K, 1)
            self._k32 = np.ascontiguousarray(K, dtype=np.float32).reshape(1, 3, 3)
            self._k_key = key
        return self._k32 if N == 1 else np.ascontiguousarray(np.broadcast_to(self._k32, (N, 3, 3)))


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


def open_runtime(label: str, backend: str, module, example, input_names, output_names, key: str):
    """The first backend of ``backend_candidates(backend)`` that loads ``module``; a backend that fails
    to load falls back to the next with one warning (never a crash), and the choice is logged once."""
    chain, why = backend_candidates(backend)
    for i, b in enumerate(chain):
        try:
            runtime = BACKENDS[b](module, example, input_names, output_names, key)
        except Exception as e:
            if i + 1 == len(chain):
                raise
            log.warning("%s backend %s failed to load (%s: %s); falling back to %s",
                        label, b, type(e).__name__, e, chain[i + 1])
            log.debug("backend %s failure", b, exc_info=True)
            continue
        log.info("%s on %s (%s)", label, runtime.name, why)
        return runtime
    raise RuntimeError(f"no backend could run {label}")


def backend_candidates(backend: str) -> tuple[list[str], str]:
    """Backends to try, in order, and why the first: ``auto`` -> every available one, fastest first;
    a named backend -> it, then (if it fails to load) the available ones after it.

    Logs nothing for unavailable backends under ``auto`` (the caller logs one line with ``why``);
    a backend asked for by name that cannot run here is one warning.
    """
    if backend != "auto" and backend not in BACKENDS:
        raise UnknownEngineError(f"unknown backend {backend!r}; available: auto, {', '.join(BACKENDS)}")
    reasons: dict[str, str] = {}
    available = []
    for b in sorted(BACKENDS.values(), key=lambda b: -b.priority):
        r = b.unavailable_reason()
        if r is None:
            available.append(b.name)
        else:
            reasons[b.name] = r
    if "torch" not in available:
        available.append("torch")
    if backend == "auto":
        skipped = {}
        for name, r in reasons.items():
            if BACKENDS[name].priority > BACKENDS[available[0]].priority:
                skipped.setdefault(r, []).append(name)
        why = "auto: fastest available" + "".join(f"; {', '.join(n)}: {r}" for r, n in skipped.items())
        return available, why
    if backend in reasons:
        rest = [b for b in available if BACKENDS[b].priority < BACKENDS[backend].priority] or ["torch"]
        log.warning("lifter backend %s cannot run here (%s); using %s", backend, reasons[backend], rest[0])
        return rest, f"{backend} requested but unavailable"
    return [backend] + [b for b in available if BACKENDS[b].priority < BACKENDS[backend].priority], "requested"


def select_backend(backend: str) -> str:
    """The backend ``load_lifter(..., backend=backend)`` tries first (``auto``: fastest available)."""
    return backend_candidates(backend)[0][0]


def engine_available(name: str) -> bool:
    """Whether this installation has the bundled weights of ``name`` (``absposelifter``, ``perspose``, ``zedo``)."""
    return name in BUNDLED_WEIGHTS and BUNDLED_WEIGHTS[name].exists()


def check_lifter_weights(path: str | Path) -> Path:
    """Refuse, with a sentence, a file that is not AbsPoseLifter weights (e.g. for the GUI's weight picker)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"lifter weights {p} do not exist")
    # the config and every tensor must fit the architecture
    load_checked(load_torch_lifter, p, "AbsPoseLifter weights (from training or `mocap-app adapt`)")
    return p


def load_lifter(name: str = "absposelifter", backend: str = "auto", weights: str | Path | None = None,
                flip_test: bool = True) -> Lifter:
    """``flip_test``: also lift the mirrored 2D and average (AbsPoseLifter; on by default, BENCHMARKS.md)."""
    if name == "perspose":   # image-based engine (engines/perspose): lift(kp, conf, K, images=frames)
        from engines.perspose.engine import PersPoseEngine
        return PersPoseEngine(backend, weights)
    if name not in WEIGHTS:
        raise UnknownEngineError(f"unknown lifter {name!r}; available: {', '.join([*WEIGHTS, 'perspose'])}")
    w = Path(weights) if weights else WEIGHTS[name]
    if not w.exists():
        raise FileNotFoundError(f"weights for {name} not found at {w}")
    return Lifter(name, backend, w, flip_test=flip_test)
