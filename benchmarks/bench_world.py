"""World-alignment benchmark: camera pitch / roll / height estimated from the person vs the truth.

    python benchmarks/bench_world.py                 # real video (pose2sim, 4 calibrated cameras) + synthetic
    python benchmarks/bench_world.py --synthetic-only
    python benchmarks/bench_world.py --weights runs/w1700.pt [--no-flip]   # another lifter on the real video
    python benchmarks/bench_world.py --line-spread 400 400                 # another walking-line ramp (mm)

**Real video.** The pose2sim demo's 4 cameras are calibrated against a floor-aligned
world frame (metres, **Z up**, origin on the floor). The truth per camera: world up
in camera coordinates ``u = R_world_to_cam @ (0, 0, 1)`` gives pitch and roll
(``mocap_app.world`` conventions), the camera centre's Z is its height above the floor.
Estimates come from two kinds of 3D poses:

* ``triangulated``: MediaPipe 2D joints of all 4 views, undistorted, triangulated
  (confidence-weighted DLT, ``engines.real_errors``; a view whose skeleton MediaPipe mirrored
  in a frame is left out of that frame) and moved into each camera's frame
  - the poses are good, so this measures the alignment method itself;
* ``lifter``: each camera alone - its MediaPipe joints as the app's keypoint stage gives them
  (left/right fix), lifted by the AbsPoseLifter with the calibrated K - which is what the product
  sees. For these it also prints the body axis (ankle midpoint -> thorax): its median angle to the
  triangulated one, and the tilt of the mean axis towards the camera, estimated vs triangulated.
* ``lifter, placement known``: the same lifter poses with the measured pitch, roll and height given, as a user
  enters them in Camera > Camera placement (``--pitch/--roll/--camera-height`` in the CLI); only the floor under
  the person is left to measure (the lifter's depth of the person).

``feet height`` (real video): median over frames of |the lower ankle's height above the floor - the triangulated
one's| - whether the person stands on the floor as shown.

**Synthetic.** Validation mocap (CMU subjects 06, 08, 90, 104) before virtual cameras
with pitch -30..+20 deg, roll -10..+10 deg, height 0.5-2.5 m, 3-6 m away, with lifter-like
noise (25 mm per joint, 3 % smooth depth error).

MediaPipe detections are cached in ``~/.cache/mocap/bench_world_pose2sim.npz``.
"""
from __future__ import annotations

import argparse
import logging
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.skeleton import J  # noqa: E402
from mocap_app.world import (LINE_SPREAD_FULL_MM, LINE_SPREAD_MIN_MM, apply, body_axis,  # noqa: E402
                             estimate_world_alignment, pitch_roll_from_up)

CACHE = Path.home() / ".cache" / "mocap" / "bench_world_pose2sim.npz"


def _detections(cams):
    from engines.real_errors import detect_videos
    if CACHE.exists():
        d = np.load(CACHE)
        return d["xy"], d["conf"]
    xy, conf = detect_videos(cams, max_frames=100)
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(CACHE, xy=xy, conf=conf)
    return xy, conf


def real_video(lifter_backend: str | None = "torch", weights: str | None = None, flip_test: bool = True,
               line_spread_mm: tuple[float, float] = (LINE_SPREAD_MIN_MM, LINE_SPREAD_FULL_MM)
               ) -> list[dict]:
    from engines.real_errors import load_pose2sim_cameras, pose2sim_keypoints, reference_weights, triangulate_dlt
    cams = load_pose2sim_cameras(calibration="qca")
    names = list(cams)
    xy, conf = _detections(cams)
    und = np.stack([cams[n].undistort(cams[n].video_to_calib(xy[i])) for i, n in enumerate(names)])  # [C,F,17,2]
    P = np.stack([cams[n].P for n in names])
    w = reference_weights(und, P, conf)[0]         # a view's frames with a mirrored skeleton are left out
    X_world = triangulate_dlt(np.moveaxis(und, 0, 2), P, np.moveaxis(w, 0, 2))                   # [F,17,3] m
    lifter = None
    if lifter_backend:
        try:
            from engines import load_lifter
            lifter = load_lifter("absposelifter", backend=lifter_backend, weights=weights, flip_test=flip_test)
        except (FileNotFoundError, ImportError, ValueError) as e:
            logging.warning("no lifter (%s): only triangulated poses are evaluated", e)
    rows = []
    for i, n in enumerate(names):
        cam = cams[n]
        up_true = cam.R @ np.array([0.0, 0.0, 1.0])
        p_true, r_true = pitch_roll_from_up(up_true)
        C = -cam.R.T @ cam.t                                    # camera centre, world metres
        h_true = 1000.0 * C[2]
        sources = {"triangulated": (X_world @ cam.R.T + cam.t) * 1000.0}
        if lifter is not None:
            kp, cf = pose2sim_keypoints(und[i], conf[i])      # as the app's keypoint stage gives them
            ok = np.isfinite(kp).all(-1).all(-1)
            out = np.full(kp.shape[:2] + (3,), np.nan)
            out[ok] = lifter.lift(kp[ok], cf[ok], cam.K)
            sources["lifter"] = out
        axis_tri = body_axis(sources["triangulated"])
        runs = [(src, Xc, {}) for src, Xc in sources.items()]
        if "lifter" in sources:   # what a user who enters the measured placement (Camera > Camera placement) gets
            runs.append(("lifter, placement known", sources["lifter"],
                         dict(pitch_deg=p_true, roll_deg=r_true, camera_height_mm=h_true)))
        for src, Xc, known in runs:
            valid = np.isfinite(Xc).all(-1).all(-1)
            al = estimate_world_alignment(Xc, valid, line_spread_mm=line_spread_mm, **known)
            axis = body_axis(Xc)
            cos = np.clip(np.sum(axis * axis_tri, -1), -1.0, 1.0)
            # floor error under the person: the true floor point below the mean pelvis (world Z = 0)
            pel = np.nanmean(X_world[:, J["pelvis"]], axis=0)
            below = np.array([pel[0], pel[1], 0.0])
            floor_at_person = apply(al, (cam.R @ below + cam.t) * 1000.0)[1]
            # where the person's feet end up: lower ankle's height above the floor, against the triangulated truth
            ank = [J["left_ankle"], J["right_ankle"]]
            feet = np.nanmin(apply(al, Xc)[:, ank, 1], axis=1) - 1000.0 * np.nanmin(X_world[:, ank, 2], axis=1)
            rows.append(dict(camera=n, source=src, pitch_true=p_true, roll_true=r_true, height_true=h_true,
                             pitch=al.pitch_deg, roll=al.roll_deg, height=al.camera_height_mm,
                             floor_at_person=floor_at_person, feet=float(np.nanmedian(np.abs(feet[valid]))),
                             method=al.method, confidence=al.confidence,
                             frames=int(valid.sum()),
                             axis_vs_triangulated=float(np.nanmedian(np.degrees(np.arccos(cos)))),
                             axis_tilt=_tilt_deg(axis), axis_tilt_true=_tilt_deg(axis_tri)))
    return rows


def _tilt_deg(axis: np.ndarray) -> float:
    """Tilt of the mean body axis ``a`` in the camera's Y-Z plane: ``atan2(a_z, -a_y)`` (Y down, Z forward).
    For an upright person this is the camera's pitch (negative when the camera looks down)."""
    a = np.nanmean(axis, axis=0)
    return float(np.degrees(np.arctan2(a[2], -a[1])))


def synthetic(seed: int = 7, per_clip: int = 2,
              line_spread_mm: tuple[float, float] = (LINE_SPREAD_MIN_MM, LINE_SPREAD_FULL_MM)) -> list[dict]:
    from mocap_app.calibration.synthetic import lifter_like_noise, load_segment, make_view, subject_files
    rng = np.random.default_rng(seed)
    rows = []
    for f in subject_files():
        jw = load_segment(f, seconds=5, fps=30, start_s=0.5)
        if len(jw) < 60:
            continue
        for _ in range(per_clip):
            v = make_view(jw, focal_px=1000, distance_mm=rng.uniform(3000, 6000), height_mm=rng.uniform(500, 2500),
                          pitch_deg=rng.uniform(-30, 20), roll_deg=rng.uniform(-10, 10), rng=rng)
            al = estimate_world_alignment(lifter_like_noise(v.joints_cam_mm, rng), line_spread_mm=line_spread_mm)
            below = jw[:, J["pelvis"]].mean(0) * np.array([1, 0, 1])
            rows.append(dict(camera=f.stem, source="synthetic", pitch_true=v.pitch_deg, roll_true=v.roll_deg,
                             height_true=v.camera_height_mm, pitch=al.pitch_deg, roll=al.roll_deg,
                             height=al.camera_height_mm,
                             floor_at_person=apply(al, v.R_world_to_cam @ (below - v.camera_center_mm))[1],
                             method=al.method, confidence=al.confidence, frames=len(jw)))
    return rows


def table(rows: list[dict]) -> str:
    out = ["| camera | poses | pitch true / est (deg) | roll true / est (deg) | height true / est (m) | "
           "floor under person (mm) | feet height (mm) | method | conf |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['camera']} | {r['source']} | {r['pitch_true']:.1f} / {r['pitch']:.1f} | "
                   f"{r['roll_true']:.1f} / {r['roll']:.1f} | "
                   f"{r['height_true'] / 1000:.2f} / {r['height'] / 1000:.2f} | "
                   f"{r['floor_at_person']:+.0f} | {r.get('feet', float('nan')):.0f} | {r['method']} | "
                   f"{r['confidence']:.2f} |")
    return "\n".join(out)


def summary(rows: list[dict], label: str) -> str:
    e = np.array([[abs(r["pitch"] - r["pitch_true"]), abs(r["roll"] - r["roll_true"]),
                   abs(r["height"] - r["height_true"]), abs(r["floor_at_person"])] for r in rows])
    med, p90 = np.median(e, 0), np.percentile(e, 90, 0)
    return (f"{label}: n={len(rows)}  median |error| pitch {med[0]:.2f} deg, roll {med[1]:.2f} deg, "
            f"camera height {med[2]:.0f} mm, floor under the person {med[3]:.0f} mm  "
            f"(90th pct: {p90[0]:.2f} deg, {p90[1]:.2f} deg, {p90[2]:.0f} mm, {p90[3]:.0f} mm)"
            + (f"; feet height {np.median([r['feet'] for r in rows]):.0f} mm" if all('feet' in r for r in rows)
               else ""))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--synthetic-only", action="store_true")
    ap.add_argument("--no-lifter", action="store_true", help="skip the monocular lifter poses on the real video")
    ap.add_argument("--table", action="store_true", help="print per-case markdown tables")
    ap.add_argument("--weights", default=None, help="lifter weights (default: the shipped ones)")
    ap.add_argument("--no-flip", action="store_true", help="lifter without test-time flip averaging")
    ap.add_argument("--line-spread", nargs=2, type=float, metavar=("MIN_MM", "FULL_MM"),
                    default=[LINE_SPREAD_MIN_MM, LINE_SPREAD_FULL_MM],
                    help="walking-line ramp (default: the shipped one; '400 400' is the on/off rule used until "
                         "22 Nov 03:10 UTC)")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    t0 = time.time()
    ramp = tuple(a.line_spread)
    syn = synthetic(line_spread_mm=ramp)
    print(summary(syn, "synthetic val mocap"))
    if a.table:
        print(table(syn))
    if not a.synthetic_only:
        real = real_video(None if a.no_lifter else "torch", a.weights, not a.no_flip, ramp)
        print(table(real))
        print("body axis (ankle midpoint -> thorax): median angle to the triangulated one / mean tilt towards the "
              "camera, estimated vs triangulated (deg)")
        for r in real:
            if r["source"] != "triangulated":
                print(f"  {r['camera']} {r['source']}: {r['axis_vs_triangulated']:.1f} / {r['axis_tilt']:.1f} vs "
                      f"{r['axis_tilt_true']:.1f}")
        for src in sorted({r["source"] for r in real}):
            print(summary([r for r in real if r["source"] == src], f"pose2sim real video, {src} poses"))
    print(f"({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
