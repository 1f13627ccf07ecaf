"""``mocap-app adapt VIDEO... --out adapted.pt``: fit the lifter to your own camera and videos.

Runs MediaPipe on the videos, then fine-tunes the shipped lifter with synchronized
adversarial 2D-3D consistency training (``engines.plausibility.adapt``, paper 004) on
those 2D keypoints, keeping the supervised mocap loss every step so the result stays
close to the shipped solution. The weights it writes load with
``mocap-app process --weights adapted.pt`` / ``engines.load_lifter(weights=...)``.

It prints the mean plausibility of the lifted poses before and after, a label-free check
that the adapted lifter produces more human-like poses on these videos.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

EXIT_USAGE, EXIT_INPUT, EXIT_NO_PERSON, EXIT_OUTPUT = 2, 3, 4, 5   # as mocap_app.cli


def add_adapt_parser(subparsers) -> None:
    from mocap_app.cli import _positive_float

    p = subparsers.add_parser("adapt", help="fine-tune the lifter on your videos (unlabeled 2D) -> weights .pt")
    p.add_argument("videos", type=Path, nargs="+", metavar="VIDEO")
    p.add_argument("--out", type=Path, required=True, help="adapted weights to write (.pt)")
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal-px", type=_positive_float("--focal-px"), help="focal length in pixels (all videos)")
    cam.add_argument("--fov-deg", type=_positive_float("--fov-deg"), help="horizontal field of view in degrees")
    cam.add_argument("--calibration", type=Path, help="camera profile JSON (mocap-app calibrate)")
    p.add_argument("--weights", type=Path, default=None, help="lifter weights to start from (default: shipped)")
    p.add_argument("--steps", type=int, default=300, help="generator iterations (default 300)")
    p.add_argument("--warmup", type=int, default=100, help="discriminator-only iterations first (default 100)")
    p.add_argument("--max-frames", type=int, default=None, help="at most this many frames per video")
    p.add_argument("--max-minutes", type=float, default=None, help="stop training after this many minutes")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=run_adapt)


def _detect(video: Path, a) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints ``[F, 17, 2]`` (frames with a person) and ``K [3, 3]`` of one video."""
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector
    from mocap_app.pipeline import resolve_intrinsics

    with VideoSource(video) as src:
        profile = None
        if a.calibration:
            from mocap_app.calibration.profile import CameraProfile
            profile = CameraProfile.load(a.calibration).intrinsics(*src.size_wh)
        intr, _ = resolve_intrinsics(src.size_wh, a.focal_px, a.fov_deg, profile)
        kps = []
        with MediaPipePoseDetector(running_mode="video") as det:
            for i, frame in enumerate(src):
                if a.max_frames and i >= a.max_frames:
                    break
                k = det.detect(frame)
                if k.person_found:
                    kps.append(k.xy_px)
    from engines.camera import undistort_px
    kp = undistort_px(np.asarray(kps, np.float32).reshape(-1, 17, 2), intr)   # the lifter's pinhole camera
    return kp, np.asarray(intr.K, np.float32)


def run_adapt(a) -> int:
    import torch

    from engines.camera import InvalidIntrinsicsError
    from engines.data import load_split
    from engines.lifter import WEIGHTS, _check_K, check_lifter_weights
    from engines.plausibility.adapt import AdaptConfig, AdaptInputError, adapt, load_generator, save_adapted
    from engines.plausibility.evaluate import evaluate_plausibility
    from mocap_app.capture import CaptureError
    from mocap_app.keypoints import KeypointsError

    for v in a.videos:
        if not v.exists():
            return _fail(f"video not found: {v}", EXIT_INPUT)
    base = a.weights or WEIGHTS["absposelifter"]
    try:   # before minutes of 2D detection: a wrong file is one sentence now, not a traceback later
        check_lifter_weights(base)
    except (FileNotFoundError, ValueError) as e:
        return _fail(str(e), EXIT_INPUT)
    from mocap_app.cli import output_problem
    if (why := output_problem(weights=a.out)):     # before minutes of detection and training
        return _fail(why, EXIT_OUTPUT)
    if a.steps < 1 or a.warmup < 0:
        return _fail("--steps must be at least 1 and --warmup not negative", EXIT_USAGE)
    torch.set_num_threads(max(1, a.threads))
    kps, Ks = [], []
    try:
        for v in a.videos:
            kp, K = _detect(v, a)
            _check_K(K, 1)
            print(f"{v}: {len(kp)} frames with a person")
            kps.append(kp)
            Ks.append(np.broadcast_to(K, (len(kp), 3, 3)))
    except (CaptureError, KeypointsError) as e:
        return _fail(str(e), EXIT_INPUT)
    except (InvalidIntrinsicsError, ValueError) as e:
        return _fail(str(e), EXIT_USAGE)
    kp, K = np.concatenate(kps), np.concatenate(Ks)
    if len(kp) == 0:
        return _fail("no person was found in any frame of the videos", EXIT_NO_PERSON)
    model = load_generator(Path(base))
    before = evaluate_plausibility(model, kp, K)
    train = load_split("train")["joints_mm"]
    cfg = AdaptConfig(steps=a.steps, warmup=a.warmup, training="syn", kcs="wkcs",
                      max_seconds=None if a.max_minutes is None else 60.0 * a.max_minutes)
    try:
        model, info = adapt(model, kp, K, train, train, cfg)
    except AdaptInputError as e:
        return _fail(str(e), EXIT_USAGE)
    after = evaluate_plausibility(model, kp, K)
    meta = {k: v for k, v in info.items() if k != "history"}
    meta.update(videos=[str(v) for v in a.videos], plausibility_before=before, plausibility_after=after)
    try:
        save_adapted(model, Path(base), a.out, meta)
    except OSError as e:
        return _fail(f"cannot write {a.out}: {e.strerror or e}", EXIT_OUTPUT)
    print(f"mean plausibility of the lifted poses: {before:.3f} before, {after:.3f} after adaptation")
    print(f"wrote {a.out} ({info['iterations']} iterations, {info['seconds']:.0f} s on {len(kp)} frames)")
    return 0


def _fail(msg: str, code: int) -> int:
    print(f"mocap-app: error: {msg}", file=sys.stderr)
    return code
