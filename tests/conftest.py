"""Shared pytest fixtures: real videos for the tests.

* ``sports2d_video``: the demo clip shipped inside the ``sports2d`` wheel on PyPI
  (BSD-3-Clause, (c) perfanalytics): ``pip download --no-deps`` into
  ``~/.cache/mocap-tests/``, extracted once. Skips only when the package index
  cannot be reached.
* ``pose2sim_videos``: the 4 calibrated pose2sim views in ``../shared/data/video``
  (the repo and ``shared/`` sit side by side, locally and in CI). Skips if absent.
"""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
POSE2SIM = SHARED / "data" / "video" / "pose2sim_demo_singleperson"
TEST_CACHE = Path(os.environ.get("MOCAP_TEST_CACHE", Path.home() / ".cache" / "mocap-tests"))

SPORTS2D_VERSION = "0.8.34"
SPORTS2D_MEMBER = "Sports2D/Demo/demo.mp4"           # 1768x994, 30 fps, 230 frames
_OFFLINE_HINTS = ("NewConnectionError", "Temporary failure in name resolution", "Name or service not known",
                  "Max retries exceeded", "Network is unreachable", "Connection refused", "ConnectTimeout",
                  "ProxyError", "Failed to establish a new connection", "Read timed out")


def _pip_env() -> dict[str, str]:
    """The environment for pip, without the proxy that blocks mediapipe's usage logging."""
    from mocap_app.keypoints import USAGE_LOG_BLOCK_PROXY
    return {k: v for k, v in os.environ.items() if v != USAGE_LOG_BLOCK_PROXY}


@pytest.fixture(scope="session")
def sports2d_video() -> Path:
    """Path of the Sports2D demo video (a man on a box facing the camera, a woman walking past)."""
    out = TEST_CACHE / f"sports2d-{SPORTS2D_VERSION}" / "demo.mp4"
    if out.is_file():
        return out
    wheel_dir = out.parent / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           "--timeout", "30", "--retries", "2", f"sports2d=={SPORTS2D_VERSION}", "-d", str(wheel_dir)]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_pip_env())
    except subprocess.TimeoutExpired:
        pytest.skip("the package index did not answer within 300 s (offline?): cannot fetch the sports2d demo video")
    if res.returncode != 0:
        text = res.stdout + res.stderr
        if any(h in text for h in _OFFLINE_HINTS):
            pytest.skip("the package index cannot be reached, so the sports2d demo video is unavailable: "
                        + text.strip().splitlines()[-1])
        pytest.fail(f"`{' '.join(cmd)}` failed:\n{text}")
    wheels = sorted(wheel_dir.glob(f"sports2d-{SPORTS2D_VERSION}-*.whl"))
    assert wheels, f"pip reported success but no sports2d wheel is in {wheel_dir}"
    with zipfile.ZipFile(wheels[0]) as zf:
        tmp = out.with_suffix(".part")
        tmp.write_bytes(zf.read(SPORTS2D_MEMBER))
        tmp.replace(out)
    return out


@dataclass(frozen=True)
class Pose2SimData:
    root: Path
    videos: dict[str, Path]       # cam01..cam04
    calibration: Path             # calib_opencv_from_qca.json (OpenCV convention, metres)


@pytest.fixture(scope="session")
def pose2sim_videos() -> Pose2SimData:
    """The pose2sim single-person demo: 4 calibrated 60 fps views, 100 frames (cam01/02 letterboxed)."""
    if not POSE2SIM.is_dir():
        pytest.skip(f"shared data not found at {POSE2SIM} (clone the repo with shared/ beside it)")
    videos = {f"cam0{i}": POSE2SIM / "videos" / f"cam0{i}.mp4" for i in range(1, 5)}
    calib = POSE2SIM / "calibration" / "calib_opencv_from_qca.json"
    missing = [str(p) for p in [*videos.values(), calib] if not p.is_file()]
    assert not missing, f"pose2sim demo incomplete, missing: {missing}"
    return Pose2SimData(POSE2SIM, videos, calib)


@pytest.fixture(scope="module")
def engine_cache(tmp_path_factory):
    """A temporary engine cache (``MOCAP_CACHE``) shared by the test_runtime_* modules, so one ONNX export
    serves the session and the user's own cache is never touched; restored after each module."""
    d = tmp_path_factory.getbasetemp() / "runtime_cache"
    d.mkdir(exist_ok=True)
    old = os.environ.get("MOCAP_CACHE")
    os.environ["MOCAP_CACHE"] = str(d)
    yield d
    if old is None:
        os.environ.pop("MOCAP_CACHE", None)
    else:
        os.environ["MOCAP_CACHE"] = old
