"""``mocap-app``: the command line.

    mocap-app                         open the desktop app
    mocap-app process VIDEO --out clip.json [--focal-px F | --fov-deg D | --calibration P] [--bvh/--fbx ...]
    mocap-app relift clip.json --calibration P --out new.clip.json   (the same 2D, lifted with another camera)
    mocap-app convert clip.json --bvh out.bvh --fbx out.fbx [--glb out.glb]
    mocap-app calibrate ...
    mocap-app bench [VIDEO] | --engines
    mocap-app adapt VIDEO... --out adapted.pt      (then: process --weights adapted.pt)

Every failure a user can cause (missing file, unreadable video, no person, absurd
focal length, unwritable path) prints one clear sentence and exits non-zero.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger("mocap_app")

EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_NO_PERSON = 4
EXIT_OUTPUT = 5


def _positive_float(name: str):
    def conv(s: str) -> float:
        try:
            v = float(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a number, got {s!r}") from None
        if not v > 0 or v != v or v == float("inf"):
            raise argparse.ArgumentTypeError(f"{name} must be a positive number, got {s}")
        return v
    return conv


def _int_at_least(name: str, low: int):
    def conv(s: str) -> int:
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {s!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"{name} must be at least {low}, got {v}")
        return v
    return conv


def add_process_parser(sub) -> None:
    p = sub.add_parser("process", help="video -> 2D keypoints -> absolute 3D clip (JSON, optional BVH/FBX)")
    p.add_argument("video", type=Path)
    p.add_argument("--out", type=Path, help="clip JSON to write (default: VIDEO name + .clip.json)")
    _add_lift_arguments(p, engine_default="absposelifter")
    p.add_argument("--max-frames", type=_int_at_least("--max-frames", 1), default=None,
                   help="process only the first N frames")
    p.add_argument("--no-left-right-fix", action="store_true",
                   help="keep MediaPipe's left/right labels as they are (by default a skeleton it suddenly "
                        "mirrors is mirrored back)")
    _add_output_arguments(p)
    p.set_defaults(func=run_process)


def add_relift_parser(sub) -> None:
    p = sub.add_parser("relift", help="lift a processed clip's 2D again with another camera model or engine (no "
                                      "second 2D pass), e.g. after calibrating the camera it was recorded with")
    p.add_argument("clip", type=Path, help="a clip JSON (mocap-app process, or saved from the app)")
    p.add_argument("--out", type=Path, help="clip JSON to write (default: CLIP name + .relift.clip.json)")
    _add_lift_arguments(p, engine_default=None)
    p.add_argument("--video", type=Path, default=None,
                   help="the take's video, for --engine perspose (default: the path stored in the clip)")
    _add_output_arguments(p)
    p.set_defaults(func=run_relift)


def _add_lift_arguments(p, engine_default: str | None) -> None:
    """The camera model and 3D engine options ``process`` and ``relift`` share."""
    cam = p.add_mutually_exclusive_group()
    cam.add_argument("--focal-px", type=_positive_float("--focal-px"), help="focal length in pixels")
    cam.add_argument("--fov-deg", type=_positive_float("--fov-deg"), help="horizontal field of view in degrees")
    cam.add_argument("--calibration", type=Path, help="camera profile JSON (mocap-app calibrate)")
    p.add_argument("--engine", default=engine_default, choices=["absposelifter", "perspose"],
                   help="3D engine: absposelifter (2D -> 3D" + (", default" if engine_default else "")
                        + ") or perspose (image crops; experimental, CPU-trained, see BENCHMARKS.md)"
                        + ("" if engine_default else "; default: the engine that made the clip"))
    p.add_argument("--backend", default="auto", help="auto | onnxruntime | torch (and GPU backends when present)")
    p.add_argument("--weights", type=Path, default=None, help="lifter weights to use instead of the shipped ones")
    p.add_argument("--refine", choices=["none", "zedo"], default="none",
                   help="refine the 3D with the ZeDO diffusion pose prior (off by default: neutral with real "
                        "2D noise in our measurements, see BENCHMARKS.md)")
    p.add_argument("--refine-iterations", type=_int_at_least("--refine-iterations", 0), default=20,
                   help="ZeDO iterations per frame (default: 20)")


def _add_output_arguments(p) -> None:
    from mocap_app.export.cli import add_export_arguments
    from mocap_app.world import add_world_args
    add_world_args(p)
    add_export_arguments(p)   # --bvh/--fbx/--glb and their options (same as `convert`)


def run_process(a) -> int:
    from engines.camera import InvalidIntrinsicsError
    from engines.lifter import InvalidKeypointsError, InvalidWeightsError
    from mocap_app.capture import CaptureError
    from mocap_app.pipeline import NoPersonError, process_video
    from mocap_app.world import WorldAlignmentError, world_overrides_from_args

    if not a.video.exists():
        return _fail(f"video not found: {a.video}", EXIT_INPUT)
    if a.video.suffix.lower() == ".json":
        return _fail(f"{a.video} is a clip, not a video: `mocap-app relift {a.video} --calibration CAMERA` lifts its "
                     "2D again with another camera, `mocap-app convert` exports it", EXIT_INPUT)
    out = a.out or a.video.with_suffix(".clip.json")
    if (why := output_problem(clip=out, BVH=a.bvh, FBX=a.fbx, GLB=a.glb)):
        return _fail(why, EXIT_OUTPUT)
    try:
        world = world_overrides_from_args(a)
        profile = None
        if a.calibration:
            from mocap_app.calibration.profile import CameraProfile
            profile = _profile_intrinsics(CameraProfile.load(a.calibration), a.video)
        clip = process_video(a.video, focal_px=a.focal_px, fov_deg=a.fov_deg, engine=a.engine, backend=a.backend,
                             max_frames=a.max_frames, profile=profile, weights=a.weights,
                             fix_left_right=not a.no_left_right_fix)
    except CaptureError as e:
        return _fail(str(e), EXIT_INPUT)
    except NoPersonError as e:
        return _fail(str(e), EXIT_NO_PERSON)
    except (FileNotFoundError, InvalidWeightsError) as e:
        return _fail(str(e), EXIT_INPUT)
    except (InvalidIntrinsicsError, InvalidKeypointsError, WorldAlignmentError, ValueError) as e:
        return _fail(str(e), EXIT_USAGE)
    return _finish_clip(clip, a, out, world)


def run_relift(a) -> int:
    from engines.camera import CameraIntrinsics, InvalidIntrinsicsError
    from engines.lifter import InvalidKeypointsError, InvalidWeightsError
    from mocap_app.clip import Clip, ClipFormatError
    from mocap_app.pipeline import ReliftError, relift_clip
    from mocap_app.world import WorldAlignmentError, world_overrides_from_args

    if not a.clip.is_file():
        return _fail(f"clip not found: {a.clip}", EXIT_INPUT)
    name = a.clip.name.removesuffix(".json").removesuffix(".clip")
    out = a.out or a.clip.with_name(name + ".relift.clip.json")
    if (why := output_problem(clip=out, BVH=a.bvh, FBX=a.fbx, GLB=a.glb)):
        return _fail(why, EXIT_OUTPUT)
    try:
        clip = Clip.load(a.clip)
    except (ClipFormatError, KeyError, TypeError, ValueError) as e:
        return _fail(f"{a.clip} is not a readable clip: {e}", EXIT_INPUT)
    if not clip.person.any():
        return _fail(f"{a.clip}: no frame has a person to lift", EXIT_NO_PERSON)
    w, h = clip.intrinsics.width_px, clip.intrinsics.height_px
    try:
        world = world_overrides_from_args(a)
        if a.focal_px is not None:
            intr, src = CameraIntrinsics.from_focal(a.focal_px, w, h), "cli focal"
        elif a.fov_deg is not None:
            intr, src = CameraIntrinsics.from_fov(a.fov_deg, w, h, "horizontal"), "cli horizontal fov"
        elif a.calibration:
            from mocap_app.calibration.profile import CameraProfile
            intr, src = CameraProfile.load(a.calibration).intrinsics(w, h), "profile"
        else:   # the take's own camera: other weights or another engine
            intr, src = clip.intrinsics, clip.intrinsics_source
        clip = relift_clip(clip, intr, src, engine=a.engine, backend=a.backend, weights=a.weights, video=a.video)
    except (FileNotFoundError, InvalidWeightsError, ReliftError) as e:
        return _fail(str(e), EXIT_INPUT)
    except (InvalidIntrinsicsError, InvalidKeypointsError, WorldAlignmentError, ValueError) as e:
        return _fail(str(e), EXIT_USAGE)
    return _finish_clip(clip, a, out, world)


def _finish_clip(clip, a, out: Path, world: dict | None) -> int:
    """What ``process`` and ``relift`` do after lifting: refine, score plausibility, align, save, export."""
    from engines.plausibility.score import MissingAssetError, add_plausibility, implausible
    from mocap_app.world import WorldAlignmentError, align_clip

    if a.refine == "zedo":   # before world alignment: refinement changes the camera-frame joints
        from engines.zedo.refine import refine_clip
        clip = refine_clip(clip, iterations=a.refine_iterations, backend=a.backend)
    try:   # calibrated per-frame plausibility in [0, 1] for the clip JSON; its absence costs nothing else
        clip = add_plausibility(clip)
        flagged = np.flatnonzero(implausible(clip.plausibility))
        if len(flagged):
            log.warning("%d frame(s) look implausible (plausibility < flag level), first: %s", len(flagged),
                        ", ".join(str(int(i)) for i in flagged[:10]))
    except MissingAssetError as e:
        log.warning("no plausibility scores: %s", e)
    if world is not None or a.bvh or a.fbx or a.glb:
        try:
            clip = align_clip(clip, **(world or {}))
        except WorldAlignmentError as e:
            log.warning("world alignment failed (%s); the clip keeps camera coordinates only", e)
    try:
        clip.save(out)
    except OSError as e:
        return _fail(f"cannot write {out}: {e.strerror or e}", EXIT_OUTPUT)
    n = int(clip.person.sum())
    print(f"wrote {out}: {len(clip)} frames ({n} with a person), "
          f"focal {clip.intrinsics.fx_px:.0f} px ({clip.intrinsics_source})")
    if a.bvh or a.fbx or a.glb:
        from mocap_app.export import ExportError, export_clip
        from mocap_app.export.cli import options_from_args
        try:
            res = export_clip(clip, bvh=a.bvh, fbx=a.fbx, glb=a.glb, options=options_from_args(a))
        except (ExportError, OSError) as e:
            return _fail(f"export failed ({e}); the clip is safe in {out}", EXIT_OUTPUT)
        for w in res.warnings:
            print(f"warning: {w}", file=sys.stderr)
        for kind, path in res.written.items():
            print(f"wrote {kind.upper()}: {path} ({res.frames} frames at {res.fps:.3f} fps)")
    return 0


def output_problem(**targets) -> str | None:
    """A sentence for the first output that cannot be written (``mocap_app.clip.check_outputs``), checked before
    minutes of processing rather than after; None when all can be."""
    from mocap_app.clip import OutputPathError, check_outputs
    try:
        check_outputs(targets)
    except OutputPathError as e:
        return str(e)
    return None


def _profile_intrinsics(profile, video: Path):
    from mocap_app.capture import VideoSource
    with VideoSource(video) as src:
        return profile.intrinsics(*src.size_wh)


def _fail(msg: str, code: int) -> int:
    print(f"mocap-app: error: {msg}", file=sys.stderr)
    return code


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="mocap-app", description="Real-time motion capture from video to BVH/FBX.")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command")
    add_process_parser(sub)
    add_relift_parser(sub)
    # other commands live beside the code they drive
    for mod, fn in (("mocap_app.export.cli", "add_convert_parser"),
                    ("mocap_app.calibration.cli", "add_calibrate_parser"),
                    ("mocap_app.bench", "add_bench_parser"),
                    ("mocap_app.adapt_cli", "add_adapt_parser")):
        try:
            getattr(__import__(mod, fromlist=[fn]), fn)(sub)
        except ImportError as e:  # an optional part missing from this install
            log.debug("command from %s unavailable: %s", mod, e)
    return ap


def gui_file_argument(argv: list[str]) -> str | None:
    """``mocap-app FILE`` (a file manager's *Open with*, the .desktop entry's ``%f``): the video or clip to
    open in the desktop app; None for a command line."""
    if len(argv) != 1 or argv[0].startswith("-"):
        return None
    from mocap_app.capture import VIDEO_EXTS   # only here: keeps OpenCV out of every other command's start-up
    return argv[0] if Path(argv[0]).suffix.lower() in VIDEO_EXTS | {".json"} else None


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verbose = any(t in ("-v", "--verbose") for t in argv)   # accepted anywhere, also after the command
    argv = [t for t in argv if t not in ("-v", "--verbose")]
    gui_file = gui_file_argument(argv)
    ap = build_parser()
    a = ap.parse_args([] if gui_file else argv)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if a.command is None:
        try:
            from mocap_app.ui.main_window import run_app
        except ImportError:
            ap.print_help()
            return 0
        return run_app([sys.argv[0], gui_file] if gui_file else None)
    func = getattr(a, "func", None) or getattr(a, "run", None)
    try:
        return int(func(a) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
