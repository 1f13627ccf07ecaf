"""``convert`` sub-command: clip.json -> BVH / FBX / GLB, and the export flags shared with ``process``.

Wiring (done by ``mocap_app/cli.py``)::

    add_convert_parser(subparsers)          # registers "convert", sets func=run_convert
    add_export_arguments(process_parser)    # --bvh/--fbx/--glb + option flags on "process"
    options_from_args(args) -> ExportOptions
"""
from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger(__name__)


def add_export_arguments(p: argparse.ArgumentParser, outputs: bool = True) -> None:
    """Output paths (optional) and the export option flags."""
    from mocap_app.export.bvh import VALID_ORDERS
    if outputs:
        p.add_argument("--bvh", metavar="OUT.bvh", help="write a BVH file (centimetres, Y up)")
        p.add_argument("--fbx", metavar="OUT.fbx", help="write a binary FBX 7.4 file (centimetres, Y up)")
        p.add_argument("--glb", metavar="OUT.glb", help="write a glTF 2.0 binary file (metres, Y up)")
    g = p.add_argument_group("export options")
    g.add_argument("--names", choices=("standard", "mixamo", "mixamorig"), default="standard",
                   help="bone names: our joint names, Mixamo's, or Mixamo's with the mixamorig: prefix "
                        "(default: standard)")
    g.add_argument("--rotation-order", default="ZXY", type=str.upper, choices=VALID_ORDERS,
                   help="BVH rotation channel order (default: ZXY)")
    g.add_argument("--fps", type=float, default=None,
                   help="output frame rate (default: the clip's own rate; variable-rate clips are resampled)")
    g.add_argument("--max-gap", type=float, default=0.5, metavar="SECONDS",
                   help="interpolate gaps without a person up to this long (default: 0.5 s)")
    g.add_argument("--smooth", action="store_true", help="One Euro filter on joint positions")
    g.add_argument("--min-cutoff", type=float, default=1.0, metavar="HZ",
                   help="One Euro minimum cutoff; lower = smoother (default: 1.0 Hz)")
    g.add_argument("--beta", type=float, default=0.02,
                   help="One Euro speed coefficient per mm/s; higher = less lag (default: 0.02)")
    g.add_argument("--foot-lock", action="store_true", help="pin feet that touch the floor")
    g.add_argument("--symmetric", action="store_true",
                   help="give left and right bones their mean length (default: each side its own median)")
    g.add_argument("--foot-height", type=float, default=100.0, metavar="MM",
                   help="ankle height below which a foot can be in contact (default: 100 mm)")
    g.add_argument("--foot-speed", type=float, default=250.0, metavar="MM_S",
                   help="ankle speed below which a low foot is in contact (default: 250 mm/s)")


def options_from_args(args: argparse.Namespace):
    from mocap_app.export import ExportOptions
    return ExportOptions(names=args.names, rotation_order=args.rotation_order, fps=args.fps,
                         max_gap_s=args.max_gap, smoothing=args.smooth, min_cutoff_hz=args.min_cutoff,
                         beta=args.beta, foot_lock=args.foot_lock, foot_height_mm=args.foot_height,
                         foot_speed_mm_s=args.foot_speed, symmetric=args.symmetric)


def add_convert_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("convert", help="export a processed clip (clip.json) to BVH / FBX / GLB",
                              description="Export a processed clip's world skeleton to BVH, FBX and/or GLB.")
    p.add_argument("clip", help="clip JSON written by `mocap-app process`")
    add_export_arguments(p)
    p.set_defaults(func=run_convert)
    return p


def run_convert(args: argparse.Namespace) -> int:
    """Run ``convert``; returns the exit code ``mocap-app`` documents (2 usage, 3 input, 4 no person, 5 output) and
    prints one clear line per problem (no tracebacks)."""
    from mocap_app.clip import Clip, ClipFormatError
    from mocap_app.export import ExportError, ExportPathError, NothingToExportError, export_clip

    if not (args.bvh or args.fbx or args.glb):
        return _fail("nothing to write: give --bvh, --fbx and/or --glb", 2)
    try:
        clip = Clip.load(args.clip)
    except FileNotFoundError:
        return _fail(f"clip file not found: {args.clip}", 3)
    except IsADirectoryError:
        return _fail(f"{args.clip} is a folder, not a clip file", 3)
    except (ClipFormatError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        return _fail(f"{args.clip} is not a readable clip: {e}", 3)
    except OSError as e:
        return _fail(f"cannot read {args.clip}: {e.strerror or e}", 3)
    try:
        res = export_clip(clip, bvh=args.bvh, fbx=args.fbx, glb=args.glb, options=options_from_args(args))
    except ExportPathError as e:
        return _fail(str(e), 5)
    except NothingToExportError as e:
        return _fail(str(e), 4)
    except ExportError as e:      # an option out of range
        return _fail(str(e), 2)
    for w in res.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for kind, path in res.written.items():
        print(f"wrote {kind.upper()}: {path} ({res.frames} frames at {res.fps:.3f} fps)")
    return 0


def _fail(msg: str, code: int) -> int:
    print(f"mocap-app: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m mocap_app.export convert ...``) until the main CLI wires it in."""
    parser = argparse.ArgumentParser(prog="mocap-export")
    sub = parser.add_subparsers(dest="command", required=True)
    add_convert_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
