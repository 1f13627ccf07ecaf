"""The keypoint stage's left/right fix on the two real clips, at its defaults and with each threshold moved.

    PYTHONPATH=. python scripts/left_right_sweep.py [--sports2d .../demo.mp4] [--weights W]

pose2sim: the cached MediaPipe detections of the 4 views (MediaPipe's own labels); per setting, how many frames of
each view are fixed, the agreement with the frames 4-view geometry finds mirrored, and the lifter's MPJPE /
PA-MPJPE against the reference triangulated from the other views. sports2d: which of the demo's frames are fixed
(MediaPipe run once with the fix off). Last, per camera, the old reference (mirrored views triangulated too, as
before 3 Dec 2026) and the corrected one, without and with the fix. Notes: notes/keypoints.md, section 4b.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from engines import load_lifter
from engines.absposelifter.evaluate import pose2sim_truth, pose2sim_views, scores
from engines.lifter import FOCAL_FREE_WEIGHTS
from engines.real_errors import reference_weights
from mocap_app.keypoints import fix_left_right_swaps

SETTINGS = [{}] + [{k: v} for k, vs in (("min_width", (0.1, 0.22)), ("max_step", (0.2, 0.25, 0.45)),
                                        ("ratio", (0.45, 0.75)), ("min_jump", (0.2, 0.45)),
                                        ("max_gap_s", (0.1, 0.22)), ("memory_s", (1.0, 4.0)),
                                        ("max_speed", (3.0, 9.0))) for v in vs]


def sports2d_raw(video: Path):
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector
    xy, conf, ts = [], [], []
    with VideoSource(video) as src, MediaPipePoseDetector(running_mode="video", fix_left_right=False) as det:
        for frame in src:
            k = det.detect(frame)
            xy.append(k.xy_px); conf.append(k.confidence); ts.append(frame.timestamp_s)
    return np.array(xy), np.array(conf), np.array(ts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sports2d", type=Path, default=Path.home() / ".cache/mocap-tests/sports2d-0.8.34/demo.mp4")
    ap.add_argument("--weights", type=Path, default=FOCAL_FREE_WEIGHTS,
                    help="default: the 3 Dec 11:32 lifter (now the focal-free one), as in BENCHMARKS.md")
    a = ap.parse_args()
    lifter = load_lifter("absposelifter", backend="onnxruntime", weights=a.weights)
    views = list(pose2sim_truth(fix_left_right=False))
    cams, names, und, conf, P = pose2sim_views()
    mirrored = reference_weights(und, P, conf)[1]                                   # [F, C]
    ts = np.arange(und.shape[1]) / 60.0
    s2d = sports2d_raw(a.sports2d) if a.sports2d.is_file() else None
    print("| setting | fixed per view (cam01-04) | agreement with 4-view flags, cam02 | MPJPE / PA-MPJPE, all views "
          "| cam02 | sports2d frames fixed |")
    print("|---|---|---|---|---|---|")
    for kw in [None] + SETTINGS:
        preds, gts, nfix, cam02 = [], [], [], ""
        for c, (n, cam, kp, cf, gt, ok) in enumerate(views):
            if kw is not None:
                kp, cf, fixed = fix_left_right_swaps(kp, cf, ts, **kw)
            else:
                fixed = np.zeros(len(kp), bool)
            p = lifter.lift(kp[ok], cf[ok], cam.K)
            preds.append(p); gts.append(gt[ok]); nfix.append(int(fixed.sum()))
            if c == 1:
                r = scores(p, gt[ok])
                cam02 = f"{np.mean(fixed == mirrored[:, 1]):.2f} | ", f"{r['MPJPE']:.1f} / {r['PA-MPJPE']:.1f}"
        r = scores(np.concatenate(preds), np.concatenate(gts))
        s2 = "-" if s2d is None or kw is None else str(np.flatnonzero(fix_left_right_swaps(*s2d, **kw)[2]).tolist())
        label = "no fix" if kw is None else (", ".join(f"{k}={v}" for k, v in kw.items()) or "defaults")
        print(f"| {label} | {' / '.join(map(str, nfix))} | {cam02[0]}{r['MPJPE']:.1f} / {r['PA-MPJPE']:.1f} | "
              f"{cam02[1]} | {s2} |")
    print("\n| reference | left/right fix | " + " | ".join(names) + " | all (MPJPE / PA-MPJPE / MRPE) |")
    print("|---|---|" + "---|" * (len(names) + 1))
    for ref, fix in (("old (mirrored views in)", False), ("corrected", False), ("corrected", True)):
        preds, gts, cells = [], [], []
        for _, cam, kp, cf, gt, ok in pose2sim_truth(fix_left_right=fix, drop_mirrored=ref == "corrected"):
            p = lifter.lift(kp[ok], cf[ok], cam.K)
            r = scores(p, gt[ok])
            cells.append(f"{r['MPJPE']:.1f} / {r['PA-MPJPE']:.1f}")
            preds.append(p); gts.append(gt[ok])
        r = scores(np.concatenate(preds), np.concatenate(gts))
        print(f"| {ref} | {'on' if fix else 'off'} | " + " | ".join(cells)
              + f" | {r['MPJPE']:.1f} / {r['PA-MPJPE']:.1f} / {r['MRPE']:.1f} |")


if __name__ == "__main__":
    main()
