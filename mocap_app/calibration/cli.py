"""``mocap-app calibrate``: make a camera profile by hand, from checkerboard images, or from footage of a person.

    mocap-app calibrate manual --fov-deg 78 --fov-axis diagonal --size 1920x1080 --name "Desk C920"
    mocap-app calibrate manual --preset logitech-c920 --size 1920x1080 --name desk
    mocap-app calibrate checkerboard shots/*.jpg --pattern 4x7 --square-mm 60 --name cam03 --out cam03.json
    mocap-app calibrate auto walk.mp4 --name phone --out phone.json      (or a processed clip.json)
    mocap-app calibrate import Calib_scene.toml --camera cam03           (Pose2Sim / anipose TOML, OpenCV YAML / XML)
    mocap-app calibrate list | presets

Without ``--out`` the profile goes to the profile folder (``$MOCAP_CAMERA_DIR`` or
``~/.config/mocap/cameras``) as ``<name>.json``; ``mocap-app process --calibration``
takes that path.
"""
from __future__ import annotations

import argparse
import glob
import logging
import sys
from pathlib import Path

import numpy as np

from mocap_app.calibration.profile import (CalibrationError, CameraProfile, default_profile_dir, list_profiles,
                                           profile_path)

log = logging.getLogger(__name__)

EXIT_USAGE, EXIT_INPUT, EXIT_NO_PERSON, EXIT_OUTPUT = 2, 3, 4, 5


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().replace("*", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} must look like 1920x1080") from None
    if w <= 0 or h <= 0:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return w, h


def add_calibrate_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``calibrate`` and its sub-modes on the main CLI's subparsers."""
    from mocap_app.calibration.manual import FOV_AXES, PRESETS_BY_KEY

    p = subparsers.add_parser("calibrate", help="make a camera profile (focal length etc.)",
                              description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="calib_mode", metavar="MODE")

    def common(sp, out_required=False):
        sp.add_argument("--name", help="camera name (default: from the input)")
        sp.add_argument("--out", type=Path, required=out_required,
                        help="profile JSON to write (default: <profile folder>/<name>.json)")
        sp.add_argument("--profile-dir", type=Path, default=None, help=argparse.SUPPRESS)

    m = sub.add_parser("manual", help="focal length, field of view, 35 mm-equivalent or a preset")
    g = m.add_mutually_exclusive_group(required=True)
    g.add_argument("--focal-px", type=float, help="focal length in pixels")
    g.add_argument("--fov-deg", type=float, help="field of view in degrees (see --fov-axis)")
    g.add_argument("--focal-35mm", type=float, help="35 mm-equivalent focal length (mm)")
    g.add_argument("--preset", choices=sorted(PRESETS_BY_KEY), help="a known camera (see `calibrate presets`)")
    m.add_argument("--fov-axis", choices=FOV_AXES, default="horizontal")
    m.add_argument("--size", type=_size, required=True, help="image size WxH, e.g. 1920x1080")
    common(m)

    def board(sp):
        sp.add_argument("--pattern", default="9x6",
                        help="inner corners COLSxROWS for a chessboard, squares for ChArUco (default 9x6)")
        sp.add_argument("--square-mm", type=float, required=True, help="side of one square in mm")
        sp.add_argument("--charuco", action="store_true", help="the board is a ChArUco board")
        sp.add_argument("--marker-mm", type=float, help="ChArUco marker side in mm (default 0.75 x square)")
        sp.add_argument("--dictionary", default="DICT_5X5_100", help="ChArUco ArUco dictionary (OpenCV name, e.g. "
                                                                     "DICT_4X4_50)")
        sp.add_argument("--legacy-charuco", action="store_true",
                        help="a ChArUco board in OpenCV's layout before 4.6 (boards with an even number of rows "
                             "printed from older generators): try it when the board is not found")

    c = sub.add_parser("checkerboard", help="OpenCV calibration from images of a chessboard / ChArUco board")
    c.add_argument("images", nargs="+", help="image files or glob patterns of one camera at one size, or a video "
                                             "of the board being moved in front of it (views every 0.5 s)")
    board(c)
    c.add_argument("--fisheye", action="store_true",
                   help="fit OpenCV's fisheye lens model (action cameras, 120 deg and wider), not the standard one")
    common(c)

    fl = sub.add_parser("floor", help="where the camera stands (pitch, roll, lens height) from one image of a board "
                                      "lying flat on the floor")
    fl.add_argument("image", type=Path, help="a photo (or a video's first frame) with the board flat on the floor")
    board(fl)
    cam = fl.add_mutually_exclusive_group(required=True)
    cam.add_argument("--calibration", help="the camera's profile (a name in the profile folder, or a JSON path)")
    cam.add_argument("--focal-px", type=float, help="the camera's focal length in pixels (no lens distortion)")
    fl.add_argument("--board-thickness-mm", type=float, default=0.0,
                    help="how far the board's face is above the floor (default 0)")

    a = sub.add_parser("auto", help="estimate the focal length from a video (or processed clip) of a person")
    a.add_argument("input", type=Path, nargs="+",
                   help="video file, or a clip.json made by `mocap-app process`; several takes of one camera are "
                        "combined (geometric mean: a little better than one)")
    a.add_argument("--max-frames", type=int, default=600, help="frames to analyse (default 600)")
    a.add_argument("--step", type=int, default=2, help="use every N-th frame (default 2)")
    a.add_argument("--backend", default="auto", help="lifter backend: auto, torch, onnxruntime")
    a.add_argument("--save-unreliable", action="store_true",
                   help="write the profile even when the clip cannot tell the focal length reliably")
    common(a)

    i = sub.add_parser("import", help="a camera from another tool's calibration file (Pose2Sim / Sports2D / anipose "
                                      ".toml, OpenCV .yml / .yaml / .xml)")
    i.add_argument("file", type=Path, help="the calibration file")
    i.add_argument("--camera", help="which camera of a file that holds several: its name or its number from 1")
    common(i)

    sub.add_parser("list", help="list saved camera profiles")
    sub.add_parser("presets", help="list camera presets and where their numbers come from")
    p.set_defaults(func=run_calibrate)
    return p


def _write(profile: CameraProfile, args) -> int:
    out = args.out or profile_path(profile.name, args.profile_dir)
    try:
        written = profile.save(out)
    except OSError as e:
        return _fail(f"cannot write {out}: {e.strerror or e}", EXIT_OUTPUT)
    fov = profile.fov_deg
    print(f"wrote {written}: '{profile.name}' {profile.width_px}x{profile.height_px}, fx={profile.fx_px:.1f} "
          f"fy={profile.fy_px:.1f} px, FOV {fov['horizontal']:.1f} x {fov['vertical']:.1f} deg "
          f"(diagonal {fov['diagonal']:.1f}); source: {profile.source}")
    if lens := profile.lens_summary():
        print(f"  {lens}")
    return 0


def _print_placement(what: str, pl, height_decimals: int = 2) -> None:
    """A ``CameraPlacement`` and the ``process`` flags that use it."""
    h = f"{pl.camera_height_m:.{height_decimals}f}"
    print(f"{what}: pitch {pl.pitch_deg:.1f} deg, roll {pl.roll_deg:.1f} deg, lens {h} m above the floor")
    print(f"  while the camera stays there: mocap-app process VIDEO --pitch {pl.pitch_deg:.1f} --roll "
          f"{pl.roll_deg:.1f} --camera-height {h} (in the app: Camera ▸ Camera placement)")


def _board_spec(args):
    from mocap_app.calibration.checkerboard import BoardSpec
    return BoardSpec.parse(args.pattern, args.square_mm, "charuco" if args.charuco else "chessboard",
                           marker_mm=args.marker_mm, dictionary=args.dictionary, legacy=args.legacy_charuco)


def _run_floor(args) -> int:
    """``calibrate floor``: the camera's placement from a board on the floor, printed as ``process``'s flags."""
    from engines.camera import CameraIntrinsics
    from mocap_app.calibration.floor import placement_from_floor_board
    from mocap_app.capture import CaptureError, read_still
    spec = _board_spec(args)
    if not args.image.is_file():
        return _fail(f"image not found: {args.image}", EXIT_INPUT)
    try:
        img = read_still(args.image)
    except CaptureError as e:
        return _fail(str(e), EXIT_INPUT)
    h, w = img.shape[:2]
    if args.calibration:
        from mocap_app.calibration.profile import resolve_profile
        intr = resolve_profile(args.calibration).intrinsics(w, h)
    else:
        intr = CameraIntrinsics.from_focal(args.focal_px, w, h)
    try:
        res = placement_from_floor_board(img, spec, intr, args.board_thickness_mm)
    except CalibrationError as e:
        return _fail(str(e), EXIT_INPUT)
    _print_placement("camera placement from the board on the floor", res.placement, height_decimals=3)
    print(f"  the board {res.distance_m:.2f} m away, its corners fit to {res.rms_px:.2f} px")
    for warning in res.warnings:
        print(f"  warning: {warning}")
    return 0


def _fail(msg: str, code: int) -> int:
    print(f"mocap-app calibrate: error: {msg}", file=sys.stderr)
    return code


def _expand(patterns: list[str]) -> list[str]:
    out = []
    for p in patterns:
        hits = sorted(glob.glob(p)) if any(ch in p for ch in "*?[") else [p]
        out.extend(hits)
    return out


def run_calibrate(args: argparse.Namespace) -> int:
    """Run one calibrate mode; returns the process exit code (0 ok, 2 usage, 3 input, 4 no person, 5 output)."""
    mode = getattr(args, "calib_mode", None)
    try:
        if mode == "manual":
            from mocap_app.calibration.manual import profile_from_manual
            w, h = args.size
            name = args.name or (args.preset or "camera")
            prof = profile_from_manual(name, w, h, focal_px=args.focal_px, fov_deg=args.fov_deg,
                                       fov_axis=args.fov_axis, focal_35mm=args.focal_35mm, preset=args.preset)
            return _write(prof, args)
        if mode == "checkerboard":
            from mocap_app.calibration.checkerboard import calibrate
            files = _expand(args.images)
            missing = [f for f in files if not Path(f).is_file()]
            if missing or not files:
                return _fail(f"image not found: {missing[0] if missing else args.images[0]}", EXIT_INPUT)
            res = calibrate(files, _board_spec(args), fisheye=args.fisheye)
            for name, why in res.rejected.items():
                print(f"  skipped {name}: {why}")
            print(f"calibrated from {len(res.used)} views, RMS reprojection error {res.rms_px:.3f} px")
            for tip in res.coverage.advice:
                print(f"  tip: {tip}")
            return _write(res.profile(args.name or Path(files[0]).parent.name or "camera"), args)
        if mode == "auto":
            return _run_auto(args)
        if mode == "floor":
            return _run_floor(args)
        if mode == "import":
            from mocap_app.calibration.importers import import_camera
            try:
                cam = import_camera(args.file, args.camera, args.name)
            except CalibrationError as e:        # the file's fault, not the command line's
                return _fail(str(e), EXIT_INPUT)
            code = _write(cam.profile, args)
            if code == 0 and cam.placement is not None:
                _print_placement("  placement in the scene (Z up, floor at 0)", cam.placement)
            return code
        if mode == "list":
            folder = default_profile_dir()
            profs = list_profiles()
            print(f"profiles in {folder}:" if profs else f"no profiles in {folder}")
            for p in profs:
                print(f"  {p.name}: {p.width_px}x{p.height_px}, fx={p.fx_px:.1f} px, "
                      f"hFOV {p.fov_deg['horizontal']:.1f} deg ({p.source})")
            return 0
        if mode == "presets":
            from mocap_app.calibration.manual import PRESETS
            for p in PRESETS:
                print(f"  {p.key:20s} {p.label}\n  {'':20s} source: {p.source}")
            return 0
        return _fail("choose a mode: manual, checkerboard, auto, import, floor, list or presets "
                     "(mocap-app calibrate -h)", EXIT_USAGE)
    except CalibrationError as e:
        from mocap_app.calibration.checkerboard import BoardNotFoundError, UnreadableInputError
        return _fail(str(e), EXIT_INPUT if isinstance(e, (BoardNotFoundError, UnreadableInputError)) else EXIT_USAGE)


def keypoints_from_clip(clip, max_frames: int = 600, step: int = 2) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Every ``step``-th frame's 2D joints of a processed clip (a ``Clip``), at most ``max_frames`` of them."""
    sl = slice(0, max_frames * step, step)
    return clip.keypoints_px[sl], clip.confidence[sl], (clip.intrinsics.width_px, clip.intrinsics.height_px)


def _keypoints_from_input(path: Path, max_frames: int, step: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """2D joints of the person: from a processed clip, or by running MediaPipe on the video."""
    if path.suffix.lower() == ".json":
        from mocap_app.clip import Clip, ClipFormatError
        try:
            clip = Clip.load(path)
        except ClipFormatError as e:
            raise CalibrationError(str(e)) from None
        return keypoints_from_clip(clip, max_frames, step)
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector
    kps, confs = [], []
    with VideoSource(path) as src, MediaPipePoseDetector(running_mode="video") as det:
        size = src.size_wh
        for frame in src:
            if frame.index % step:
                continue
            k = det.detect(frame)
            kps.append(k.xy_px)
            confs.append(k.confidence)
            if len(kps) >= max_frames:
                break
    if not kps:
        raise CalibrationError(f"{path}: no frames could be read")
    return np.stack(kps).astype(float), np.stack(confs).astype(float), size


def _run_auto(args) -> int:
    from mocap_app.calibration.autofocal import AutoFocalError, combine_takes, estimate_focal
    missing = [p for p in args.input if not p.exists()]
    if missing:
        return _fail(f"input not found: {missing[0]}", EXIT_INPUT)
    if args.max_frames < 10 or args.step < 1:
        return _fail("--max-frames must be >= 10 and --step >= 1", EXIT_USAGE)
    takes = []
    for path in args.input:
        try:
            takes.append(_keypoints_from_input(path, args.max_frames, args.step))
        except CalibrationError as e:
            return _fail(str(e), EXIT_INPUT)
        except Exception as e:  # video / detector failures carry their own sentence
            if type(e).__name__ in ("CaptureError", "KeypointsError"):
                return _fail(str(e), EXIT_INPUT)
            raise
    from mocap_app.calibration.autofocal import load_autofocal_lifter
    try:
        lifter = load_autofocal_lifter(args.backend)
    except (FileNotFoundError, ValueError) as e:
        return _fail(f"cannot load the 3D lifter: {e}", EXIT_INPUT)
    results = []
    for path, (kp, conf, size) in zip(args.input, takes):
        try:
            results.append(estimate_focal(kp, conf, size, lifter))
        except AutoFocalError as e:
            return _fail(f"{path.name}: {e}" if len(args.input) > 1 else str(e), EXIT_NO_PERSON)
        if len(args.input) > 1:
            print(f"  {path.name}: {results[-1].focal_px:.0f} px (confidence {results[-1].confidence:.2f})")
    try:
        res = combine_takes(results)
    except AutoFocalError as e:
        return _fail(str(e), EXIT_INPUT)
    print(f"auto focal: {res.focal_px:.0f} px (confidence {res.confidence:.2f}; {res.reason})")
    if not res.reliable and not args.save_unreliable:
        return _fail("not saving an unreliable estimate (use --save-unreliable to keep it anyway, or "
                     "calibrate with a checkerboard)", EXIT_NO_PERSON)
    return _write(res.profile(args.name or args.input[0].stem), args)


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m mocap_app.calibration.cli ...``) for when the main CLI is not wired."""
    ap = argparse.ArgumentParser(prog="mocap-app")
    sub = ap.add_subparsers(dest="command", required=True)
    add_calibrate_parser(sub)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = ap.parse_args(argv)
    return run_calibrate(args)


if __name__ == "__main__":
    sys.exit(main())
