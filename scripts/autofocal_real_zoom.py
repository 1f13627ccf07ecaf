"""Auto focal on real footage at longer focal lengths: the pose2sim views zoomed about the image centre.

    V=../shared/data/video/pose2sim_demo_singleperson/videos
    for c in cam01 cam02 cam03 cam04; do mocap-app process $V/$c.mp4 --focal-px 1681 --out runs/$c.clip.json; done
    PYTHONPATH=. python scripts/autofocal_real_zoom.py runs/cam0{1,2,3,4}.clip.json

A centred crop scaled back to the full frame is what a k-times longer lens at the same place shows, so the real
MediaPipe keypoints multiplied by k about the image centre are real 2D at the focal length k * f (frames where a
joint leaves the image are dropped, as a crop would cut them). Prints the search's relative error per view and k
(the true focal lengths: Pose2Sim's calibration, ``engines.real_errors.load_pose2sim_cameras``, in video pixels, as
everywhere in notes/calibration.md: 1659 / 1663 / 1679 / 1691 px) and the slope
of log(answer) on log(k f) per view, to set beside the synthetic clips' 0.67-0.79.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from engines.real_errors import load_pose2sim_cameras
from mocap_app.calibration import autofocal
from mocap_app.clip import Clip

ZOOMS = (1.0, 1.15, 1.3, 1.45, 1.6)
MIN_FRAMES = 20


def main(paths: list[str]) -> None:
    lifter = autofocal.load_autofocal_lifter("torch")
    cams = load_pose2sim_cameras()
    print(f"{'view':6}" + "".join(f"{'k = %.2f' % k:>16}" for k in ZOOMS) + f"{'slope':>7}")
    for p in paths:
        cam = Path(p).name.split(".")[0]
        clip = Clip.load(p)
        w, h = clip.intrinsics.width_px, clip.intrinsics.height_px
        f = cams[cam].K[0, 0] * w / cams[cam].calib_size_wh[0]      # the calibration's pixels -> the video's
        c = np.array([(w - 1) / 2, (h - 1) / 2])
        line, pts = f"{cam:6}", []
        for k in ZOOMS:
            kp = c + (clip.keypoints_px - c) * k
            inside = ((kp >= 0) & (kp <= [w - 1, h - 1])).all(-1).all(-1)
            if inside.sum() < MIN_FRAMES:
                line += f"{'-':>16}"
                continue
            est = autofocal.search_focal(autofocal.ClipLifts(lifter, kp[inside], clip.confidence[inside], (w, h)))[0]
            pts.append((np.log(k * f), np.log(est)))
            line += f"{est / (k * f) - 1:+9.3f} ({int(inside.sum()):3d})"
        slope = np.polyfit(*np.array(pts).T, 1)[0] if len(pts) > 1 else float("nan")
        print(line + f"{slope:7.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
