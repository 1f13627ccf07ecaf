"""Plot a processed clip to check it by eye: video frames with the 2D skeleton, and the 3D skeleton.

    python scripts/plot_clip.py clip.json VIDEO --out clip.png [--frames 0 30 60 90]

Top row: the frames with the 2D keypoints; bottom row: the camera-frame 3D joints seen from
the side of the camera (X right, Y up, Z away from the camera), so depth and posture are visible.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from engines.skeleton import BONES, JOINT_NAMES  # noqa: E402
from mocap_app.clip import Clip  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("clip", type=Path)
    ap.add_argument("video", type=Path)
    ap.add_argument("--out", type=Path, default=Path("clip.png"))
    ap.add_argument("--frames", type=int, nargs="*")
    a = ap.parse_args(argv)
    clip = Clip.load(a.clip)
    idx = a.frames or list(np.linspace(0, len(clip) - 1, 4).astype(int))
    cap = cv2.VideoCapture(str(a.video))
    frames = {}
    for i in range(max(idx) + 1):
        ok, img = cap.read()
        if not ok:
            break
        if i in idx:
            frames[i] = img[..., ::-1]
    fig = plt.figure(figsize=(4 * len(idx), 9))
    J = clip.joints_cam_mm
    for c, i in enumerate(idx):
        ax = fig.add_subplot(2, len(idx), c + 1)
        ax.imshow(frames.get(i, np.zeros((10, 10, 3), np.uint8)))
        if clip.person[i]:
            kp = clip.keypoints_px[i]
            for p, q in BONES:
                ax.plot(kp[[p, q], 0], kp[[p, q], 1], "-", color="lime", lw=2)
            ax.scatter(kp[:, 0], kp[:, 1], c=clip.confidence[i], cmap="RdYlGn", vmin=0, vmax=1, s=12, zorder=3)
        ax.set_title(f"frame {i}  t={clip.timestamps_s[i]:.2f}s")
        ax.axis("off")
        ax3 = fig.add_subplot(2, len(idx), len(idx) + c + 1, projection="3d")
        if clip.person[i]:
            P = J[i]
            for p, q in BONES:
                col = "tab:red" if JOINT_NAMES[q].startswith("right") else "tab:blue"
                ax3.plot(P[[p, q], 0], P[[p, q], 2], -P[[p, q], 1], "-o", ms=2, color=col)
            ax3.set_title(f"pelvis at {np.linalg.norm(P[0]) / 1000:.2f} m")
            c = P[0]   # a 2 m cube around the pelvis: the person fills the panel at any distance
            ax3.set_xlim(c[0] - 1000, c[0] + 1000); ax3.set_ylim(c[2] - 1000, c[2] + 1000)
            ax3.set_zlim(-c[1] - 1000, -c[1] + 1000)
        ax3.set_xlabel("X (mm)"); ax3.set_ylabel("Z depth (mm)"); ax3.set_zlabel("-Y (mm)")
        ax3.set_box_aspect((1, 1, 1))
        ax3.view_init(elev=15, azim=-60)
    fig.tight_layout()
    fig.savefig(a.out, dpi=70)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
