"""Models, training and runtimes for 3D pose: the part of mocap that knows no Qt."""
from engines.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, BONES  # noqa: F401


def load_lifter(name: str = "absposelifter", backend: str = "auto", weights=None, **kw):
    """``engines.lifter.load_lifter``, imported on first use so that ``import engines`` stays light (no torch)."""
    from engines.lifter import load_lifter as _load
    return _load(name, backend=backend, weights=weights, **kw)


def load_refiner(name: str = "zedo", backend: str = "auto", **kw):
    """``engines.zedo.refine.load_refiner`` (ZeDO diffusion-prior refinement), imported on first use."""
    from engines.zedo.refine import load_refiner as _load
    return _load(name, backend=backend, **kw)
