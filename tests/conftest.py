"""Shared pytest fixtures: real videos for the tests.

* ``sports2d_video``: the demo clip shipped inside the ``sports2d`` wheel on PyPI
  (BSD-3-Clause, (c) perfanalytics): ``pip download --no-deps`` into
  ``~/.cache/mocap-tests/``, extracted once. Skips only when the package index
  cannot be reached.
* ``pose2sim_multiperson_videos``: the multi-person demo inside the ``pose2sim`` wheel, the same way.
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
from typing import NamedTuple

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
POSE2SIM = SHARED / "data" / "video" / "pose2sim_demo_singleperson"
TEST_CACHE = Path(os.environ.get("MOCAP_TEST_CACHE", Path.home() / ".cache" / "mocap-tests"))

SPORTS2D_VERSION = "0.8.34"
SPORTS2D_MEMBER = "Sports2D/Demo/demo.mp4"           # 1768x994, 30 fps, 230 frames
POSE2SIM_WHEEL_VERSION = "0.10.49"                    # 51 MB; its Demo_Batch/Trial_2 is the multi-person demo
_OFFLINE_HINTS = ("NewConnectionError", "Temporary failure in name resolution", "Name or service not known",
                  "Max retries exceeded", "Network is unreachable", "Connection refused", "ConnectTimeout",
                  "ProxyError", "Failed to establish a new connection", "Read timed out")


def _pip_env() -> dict[str, str]:
    """The environment for pip, without the proxy that blocks mediapipe's usage logging."""
    from mocap_app.keypoints import USAGE_LOG_BLOCK_PROXY
    return {k: v for k, v in os.environ.items() if v != USAGE_LOG_BLOCK_PROXY}


def _from_wheel(package: str, version: str, members: dict[str, str]) -> dict[str, Path]:
    """``members`` (name -> path inside the wheel) of ``package==version`` from PyPI, extracted once into
    ``TEST_CACHE/<package>-<version>/``; skips only when the package index cannot be reached."""
    folder = TEST_CACHE / f"{package}-{version}"
    # a single member sits directly in the folder (where the sports2d demo has always been cached)
    out = {k: folder / Path(m).name if len(members) == 1 else folder / m for k, m in members.items()}
    if all(p.is_file() for p in out.values()):
        return out
    wheel_dir = folder / "wheel"
    wheel_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(wheel_dir.glob(f"{package}-{version}-*.whl"))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
               "--timeout", "30", "--retries", "2", f"{package}=={version}", "-d", str(wheel_dir)]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=_pip_env())
        except subprocess.TimeoutExpired:
            pytest.skip(f"the package index did not answer within 300 s (offline?): cannot fetch {package}'s demo")
        if res.returncode != 0:
            text = res.stdout + res.stderr
            if any(h in text for h in _OFFLINE_HINTS):
                pytest.skip(f"the package index cannot be reached, so {package}'s demo is unavailable: "
                            + text.strip().splitlines()[-1])
            pytest.fail(f"`{' '.join(cmd)}` failed:\n{text}")
        wheels = sorted(wheel_dir.glob(f"{package}-{version}-*.whl"))
        assert wheels, f"pip reported success but no {package} wheel is in {wheel_dir}"
    with zipfile.ZipFile(wheels[0]) as zf:
        for k, m in members.items():
            out[k].parent.mkdir(parents=True, exist_ok=True)
            tmp = out[k].with_suffix(".part")
            tmp.write_bytes(zf.read(m))
            tmp.replace(out[k])
    return out


@pytest.fixture(scope="session")
def sports2d_video() -> Path:
    """Path of the Sports2D demo video (a man on a box facing the camera, a woman walking past)."""
    return _from_wheel("sports2d", SPORTS2D_VERSION, {"video": SPORTS2D_MEMBER})["video"]


@pytest.fixture(scope="session")
def sports2d_calibration() -> Path:
    """The Sports2D demo's camera calibration (a Pose2Sim TOML, BSD-3), from the same wheel as the demo video."""
    return _from_wheel("sports2d", SPORTS2D_VERSION, {"calib": "Sports2D/Demo/Calib_demo.toml"})["calib"]


@pytest.fixture(scope="session")
def pose2sim_multiperson_videos() -> dict[str, Path]:
    """The pose2sim wheel's multi-person demo (BSD-3-Clause, (c) perfanalytics): the treadmill man and a woman,
    4 views x 100 frames at 60 fps, 1088x1920, the same calibrated cameras as ``pose2sim_videos``. Not in
    ``../shared``: a held-out clip for the keypoint stage."""
    return _from_wheel("pose2sim", POSE2SIM_WHEEL_VERSION,
                       {f"cam0{i}": f"Pose2Sim/Demo_Batch/Trial_2/videos/cam0{i}.mp4" for i in range(1, 5)})


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


BOARD_HOLD_FRAMES = 20     # each board photo held 2/3 s at 30 fps: one view per photo at the 0.5 s view spacing


class BoardVideo(NamedTuple):
    path: Path
    hold_frames: int        # frames each photo is held for


@pytest.fixture(scope="session")
def cam04_board_video(tmp_path_factory) -> BoardVideo:
    """A 'camera' filming the board: pose2sim cam04's 7 real checkerboard photos, each held ``BOARD_HOLD_FRAMES``
    frames of a 30 fps MJPG video (reference focal length 1675.2 px)."""
    import cv2
    files = sorted((POSE2SIM / "calibration" / "intrinsics" / "int_cam04_img").glob("*.jpg"))
    if not files:
        pytest.skip(f"shared data not found at {POSE2SIM}")
    path = tmp_path_factory.mktemp("board") / "board_cam04.avi"
    h, w = cv2.imread(str(files[0])).shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    out.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for f in files:
        img = cv2.imread(str(f))
        for _ in range(BOARD_HOLD_FRAMES):
            out.write(img)
    out.release()
    return BoardVideo(path, BOARD_HOLD_FRAMES)
