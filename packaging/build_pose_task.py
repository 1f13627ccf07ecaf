"""Rebuild ``assets/mediapipe/pose_landmarker_full.task`` from the package registry, offline-usable.

Why: mediapipe 1.2.2 (our runtime) ships no models and would download them at
run time. The 0.10.14 wheel (Apache-2.0) bundles the two BlazePose networks as
plain ``.tflite`` files; the Tasks ``PoseLandmarker`` wants them as a ``.task``
bundle (an uncompressed, 4-byte-aligned zip holding ``pose_detector.tflite`` and
``pose_landmarks_detector.tflite``) whose models carry TFLite metadata with the
input normalisation. We add that metadata with 0.10.14's own metadata writer
(1.2.2's writer lacks its native ``_pywrap_metadata_version`` module).

Steps (all cached under ``.cache/mediapipe-0.10.14/``, which git ignores):

1. ``pip download --no-deps mediapipe==0.10.14`` (cp311, manylinux x86_64) and
   check its sha256;
2. create a venv with that wheel (``--no-deps``) and the few packages its import
   needs (numpy<2, protobuf<5, ...; no jax, no sounddevice);
3. in that venv (``--stage write``): read the two tflite files from the wheel,
   populate metadata (detector: mean/std 127.5/127.5 -> [-1, 1]; landmark
   model: mean/std 0/255 -> [0, 1], RGB), and write the bundle with fixed zip
   timestamps so the output is byte-reproducible;
4. load the result with the installed mediapipe and run it on a blank frame.

Usage::

    python packaging/build_pose_task.py            # writes assets/mediapipe/pose_landmarker_full.task
    python packaging/build_pose_task.py --out /tmp/x.task --no-verify
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

log = logging.getLogger("build_pose_task")

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "mediapipe-0.10.14"
VENV = CACHE / "venv"
DEFAULT_OUT = REPO / "assets" / "mediapipe" / "pose_landmarker_full.task"

MP_VERSION = "0.10.14"
WHEEL_NAME = "mediapipe-0.10.14-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
WHEEL_SHA256 = "a807328339e7356fda0bb14df12fedbf1d33bdf81649c5f8666b0026b1cc30b4"
# What ``import mediapipe`` (0.10.14) needs to reach the metadata writer; jax/jaxlib/sounddevice are not imported.
VENV_REQUIREMENTS = ["numpy<2", "protobuf>=4.25.3,<5", "flatbuffers>=2.0", "absl-py", "attrs>=19.1.0",
                     "matplotlib", "opencv-contrib-python<4.11"]

# member of the wheel -> (name inside the .task, norm mean, norm std, description)
MODELS = {
    "mediapipe/modules/pose_detection/pose_detection.tflite":
        ("pose_detector.tflite", 127.5, 127.5,
         "BlazePose person detector (224x224 RGB in [-1, 1])"),
    "mediapipe/modules/pose_landmark/pose_landmark_full.tflite":
        ("pose_landmarks_detector.tflite", 0.0, 255.0,
         "BlazePose GHUM 3D landmark model, full (256x256 RGB in [0, 1])"),
}
ZIP_DATE = (1980, 1, 1, 0, 0, 0)   # fixed so that rebuilding gives the same bytes


class BuildError(RuntimeError):
    """A step of the rebuild failed; the message says which and why."""


def _run(cmd: list[str]) -> None:
    log.info("$ %s", " ".join(str(c) for c in cmd))
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if res.returncode != 0:
        raise BuildError(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch_wheel() -> Path:
    """Download the 0.10.14 wheel once (pip's own index configuration applies) and check its hash."""
    wheel = CACHE / WHEEL_NAME
    if not wheel.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        _run([sys.executable, "-m", "pip", "download", "--no-deps", f"mediapipe=={MP_VERSION}",
              "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
              "--platform", "manylinux_2_17_x86_64", "--only-binary=:all:", "-d", CACHE])
    if not wheel.exists():
        raise BuildError(f"pip did not produce {wheel.name} in {CACHE}")
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise BuildError(f"{wheel.name} has sha256 {digest}, expected {WHEEL_SHA256}; delete it and retry")
    return wheel


def ensure_venv(wheel: Path) -> Path:
    """A venv where ``import mediapipe`` gives 0.10.14 (needs numpy<2 and protobuf<5)."""
    py = VENV / "bin" / "python"
    marker = VENV / ".ready"
    if not marker.exists():
        _run([sys.executable, "-m", "venv", "--clear", VENV])
        _run([py, "-m", "pip", "install", "-q", "--no-deps", wheel])
        _run([py, "-m", "pip", "install", "-q", *VENV_REQUIREMENTS])
        marker.write_text("ok\n")
    return py


def stage_write(wheel: Path, out: Path) -> None:
    """Runs inside the 0.10.14 venv: add metadata and write the aligned, stored zip."""
    import mediapipe
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer, model_asset_bundle_utils

    if mediapipe.__version__ != MP_VERSION:
        raise BuildError(f"stage 'write' needs mediapipe {MP_VERSION}, found {mediapipe.__version__}")
    with zipfile.ZipFile(wheel) as whl:
        models = {}
        for member, (name, mean, std, desc) in MODELS.items():
            buf = bytearray(whl.read(member))
            writer = (metadata_writer.MetadataWriter.create(buf)
                      .add_general_info(name.removesuffix(".tflite"), desc)
                      .add_image_input(norm_mean=[mean], norm_std=[std]))
            models[name], _ = writer.populate()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".task.tmp")
    # Same writer as model_asset_bundle_utils.create_model_asset_bundle, with fixed timestamps.
    with model_asset_bundle_utils.AlignZipFile(tmp, mode="w", alignment=model_asset_bundle_utils._ALIGNMENT) as zf:
        for name, data in models.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            zf.writestr(info, bytes(data))
    tmp.replace(out)


def verify(task: Path) -> None:
    """Load the bundle with the installed (runtime) mediapipe and run it on a blank frame."""
    import numpy as np
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    opts = vision.PoseLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(task)),
                                        running_mode=vision.RunningMode.IMAGE, num_poses=1)
    with vision.PoseLandmarker.create_from_options(opts) as lm:
        res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.zeros((256, 256, 3), np.uint8)))
    if res.pose_landmarks:
        raise BuildError("verification: a pose was 'found' in a black image")
    log.info("verified with mediapipe %s: loads and runs (no pose in a black frame)", mp.__version__)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--no-verify", action="store_true", help="skip loading the result with the installed mediapipe")
    ap.add_argument("--stage", choices=["all", "write"], default="all", help=argparse.SUPPRESS)
    ap.add_argument("--wheel", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.stage == "write":
            stage_write(args.wheel, args.out)
            return 0
        wheel = fetch_wheel()
        py = ensure_venv(wheel)
        _run([py, Path(__file__).resolve(), "--stage", "write", "--wheel", wheel, "--out", args.out.resolve()])
        log.info("wrote %s (%d bytes, sha256 %s)", args.out, args.out.stat().st_size, sha256_file(args.out))
        with zipfile.ZipFile(args.out) as zf:
            for info in zf.infolist():
                log.info("  %-32s %9d bytes  CRC %08x", info.filename, info.file_size, info.CRC)
        if not args.no_verify:
            verify(args.out)
    except BuildError as e:
        log.error("build_pose_task: %s", e)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
