"""Evaluate PersPose: the Table 2 ablation on held-out rendered data, and real video.

    nice -n 10 python -m engines.perspose.evaluate ablation --run runs/perspose
    nice -n 10 python -m engines.perspose.evaluate real [--weights assets/perspose/perspose.pt]

* ablation: validation subjects (06, 08, 90, 104) rendered like training (subjects anywhere in
  the frame), each variant on its own crop type; depth error (mean |d_i - d_i^gt| of the decoder's
  relative depths over the 16 non-root joints, in the variant's crop frame, as the paper), MPJPE
  (root-aligned), PA-MPJPE, MRPE, in the original camera frame (after ``R^T``), also split by the
  PR angle phi (how far off-centre the subject is, Fig. 7).
* real: the pose2sim person (4 calibrated views, MediaPipe boxes); each view against the 3D
  triangulated from the other 3 views; PersPose vs AbsPoseLifter (same MediaPipe 2D), plus a
  matplotlib 3D figure in ``notes/``; and the sports2d demo clip (no 3D truth: figure only).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.metrics import mpjpe, mrpe, pa_mpjpe
from engines.perspose.engine import load_model
from engines.perspose.model import decode
from engines.perspose.train import VARIANTS, load_rendered
from engines.skeleton import BONES, ROOT

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
PHI_BINS = ((0, 10), (10, 25), (25, 90))


@torch.inference_mode()
def predict_rendered(weights: Path, data: dict, batch: int = 256) -> dict:
    net, ckpt = load_model(weights)
    crop = ckpt["crop"]
    uvds, Ps = [], []
    for i in range(0, len(data["s_pr"]), batch):
        img = torch.from_numpy(data[f"img_{crop}"][i:i + batch]).permute(0, 3, 1, 2).float()
        K = torch.from_numpy(data[f"K_{crop}"][i:i + batch]).float()
        u, v, d, s = net(img, K)
        uvds.append(torch.stack([u, v, d], -1).numpy())
        P = decode(u, v, d, s, K).double().numpy()
        if crop == "pr":
            P = P @ data["R_pr"][i:i + batch].astype(np.float64)           # Eq. 6, row vectors
        Ps.append(P)
    return {"uvd": np.concatenate(uvds), "joints": np.concatenate(Ps), "crop": crop, "ckpt": ckpt}


def ablation_metrics(pred: dict, data: dict) -> dict:
    gt = data["joints_cam"].astype(np.float64)
    d_err = np.abs(pred["uvd"][..., 2] - data[f"uvd_{pred['crop']}"][..., 2])
    d_err = np.delete(d_err, ROOT, axis=1).mean(-1)
    m, pa, mr = mpjpe(pred["joints"], gt), pa_mpjpe(pred["joints"], gt), mrpe(pred["joints"], gt)
    phi = data["phi_deg"]
    out = {"depth_error": float(d_err.mean()), "MPJPE": float(m.mean()), "PA-MPJPE": float(pa.mean()),
           "MRPE": float(mr.mean()), "n": int(len(gt)), "by_phi": {}}
    for lo, hi in PHI_BINS:
        sel = (phi >= lo) & (phi < hi)
        if sel.any():
            out["by_phi"][f"{lo}-{hi} deg"] = {"n": int(sel.sum()), "depth_error": float(d_err[sel].mean()),
                                               "MPJPE": float(m[sel].mean()), "PA-MPJPE": float(pa[sel].mean())}
    return out


def ablation(run: Path, size: int) -> dict:
    data = load_rendered("val", size)
    res = {}
    for v in VARIANTS:
        w = run / f"perspose_{v}.pt"
        if w.exists():
            res[v] = ablation_metrics(predict_rendered(w, data), data)
    return res


def baselines(size: int) -> dict:
    """Trivial references on the validation renders: relative depth 0, the mean training depth, the mean pose."""
    val, tr = load_rendered("val", size), load_rendered("train", size)
    out = {}
    for crop in ("box", "pr"):
        d = np.delete(val[f"uvd_{crop}"][..., 2], ROOT, 1)
        mean_d = np.delete(tr[f"uvd_{crop}"][..., 2].mean(0), ROOT)
        out[f"depth error, relative depth 0 ({crop} crop)"] = float(np.abs(d).mean())
        out[f"depth error, mean training depth ({crop} crop)"] = float(np.abs(d - mean_d).mean())
    gt = val["joints_cam"].astype(np.float64)
    rel = tr["joints_cam"].astype(np.float64)
    mean_pose = (rel - rel[:, ROOT:ROOT + 1]).mean(0)
    X = mean_pose[None] + gt[:, ROOT:ROOT + 1]
    out["mean training pose at the true root: MPJPE"] = float(mpjpe(X, gt).mean())
    out["mean training pose at the true root: PA-MPJPE"] = float(pa_mpjpe(X, gt).mean())
    return out


def format_ablation(res: dict) -> str:
    names = {"none": "-  | -", "pe": "-  | yes", "pe_pr": "yes | yes"}
    lines = ["| PR | PE | depth error (mm) | MPJPE (mm) | PA-MPJPE (mm) | MRPE (mm) | "
             + " | ".join(f"depth err / MPJPE, phi {b}" for b in next(iter(res.values()))["by_phi"]) + " |",
             "|---|---|---|---|---|---|" + "---|" * len(next(iter(res.values()))["by_phi"])]
    for v, r in res.items():
        lines.append(f"| {names[v]} | {r['depth_error']:.1f} | {r['MPJPE']:.1f} | {r['PA-MPJPE']:.1f} | "
                     f"{r['MRPE']:.0f} | " + " | ".join(f"{b['depth_error']:.1f} / {b['MPJPE']:.1f} (n={b['n']})"
                                                     for b in r["by_phi"].values()) + " |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- real video

def undistorted_frames(cam, max_frames: int = 100) -> list[np.ndarray]:
    """Video frames resampled into undistorted calibration pixels (letterbox undone), matching ``cam.K``."""
    W, H = cam.calib_size_wh
    mx, my = cv2.initUndistortRectifyMap(cam.K, cam.dist, None, cam.K, (W, H), cv2.CV_32FC1)
    if cam.letterboxed:   # calibration pixel -> video pixel (inverse of CalibratedCamera.video_to_calib)
        s = cam.video_size_wh[0] / cam.calib_size_wh[0]
        pad = round((cam.video_size_wh[1] - cam.calib_size_wh[1] * s) / 2)
        mx, my = mx * s, my * s + pad
    cap = cv2.VideoCapture(str(cam.video))
    frames = []
    while len(frames) < max_frames:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(cv2.remap(f, mx, my, cv2.INTER_LINEAR))
    cap.release()
    return frames


def evaluate_real(weights: Path | None = None, backend: str = "onnxruntime", figure: Path | None = None) -> dict:
    from engines.absposelifter.evaluate import pose2sim_truth
    from engines.lifter import load_lifter

    pp = load_lifter("perspose", backend=backend, weights=weights)
    ab = load_lifter("absposelifter", backend=backend)
    res, show = {"perspose": {}, "absposelifter": {}}, None
    allp, alla, allg = [], [], []
    for c, (n, cam, kp_c, conf_c, gt, ok) in enumerate(pose2sim_truth()):
        frames = undistorted_frames(cam, len(ok))
        idx = np.flatnonzero(ok[:len(frames)])
        pj = pp.lift(kp_c[idx], conf_c[idx], cam.K, images=[frames[i] for i in idx])
        aj = ab.lift(kp_c[idx], conf_c[idx], cam.K)
        g = gt[idx]
        good = np.isfinite(pj).all((-1, -2))
        for name, pr in (("perspose", pj), ("absposelifter", aj)):
            res[name][n] = {"PA-MPJPE": float(pa_mpjpe(pr[good], g[good]).mean()),
                            "MPJPE": float(mpjpe(pr[good], g[good]).mean()),
                            "MRPE": float(mrpe(pr[good], g[good]).mean()), "frames": int(good.sum())}
        allp.append(pj[good]); alla.append(aj[good]); allg.append(g[good])
        if c == 2:
            k = len(idx) // 2
            show = (frames[idx[k]], kp_c[idx[k]], pj[k], aj[k], g[k], n, int(idx[k]))
    pj, aj, g = map(np.concatenate, (allp, alla, allg))
    for name, pr in (("perspose", pj), ("absposelifter", aj)):
        res[name]["all"] = {"PA-MPJPE": float(pa_mpjpe(pr, g).mean()), "MPJPE": float(mpjpe(pr, g).mean()),
                            "MRPE": float(mrpe(pr, g).mean()), "frames": int(len(g))}
    if figure is not None and show is not None:
        img, kp, p1, p2, gt1, n, fi = show
        plot_side_by_side(figure, img, kp, {"PersPose": p1, "AbsPoseLifter": p2, "triangulation (3 other views)": gt1},
                          f"pose2sim {n}, frame {fi}")
    return res


def sports2d(weights: Path | None, backend: str, video: Path, figure: Path, frames: int = 60) -> dict:
    """The sports2d demo clip (no 3D truth): both engines on the same MediaPipe boxes; figure of one frame."""
    from engines.lifter import load_lifter
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector
    from mocap_app.pipeline import resolve_intrinsics

    pp = load_lifter("perspose", backend=backend, weights=weights)
    ab = load_lifter("absposelifter", backend=backend)
    imgs, kps, confs = [], [], []
    with VideoSource(video) as src, MediaPipePoseDetector(running_mode="video") as det:
        intr, _ = resolve_intrinsics(src.size_wh)
        for fr in src:
            if fr.index >= frames:
                break
            k = det.detect(fr)
            imgs.append(fr.image_bgr); kps.append(k.xy_px); confs.append(k.confidence)
    kp, conf = np.asarray(kps, np.float32), np.asarray(confs, np.float32)
    person = np.flatnonzero(np.isfinite(kp).all((1, 2)))
    pj = pp.lift(kp[person], conf[person], intr.K, images=[imgs[i] for i in person])
    aj = ab.lift(kp[person], conf[person], intr.K)
    both = np.isfinite(pj).all((1, 2))
    k = len(person) // 2
    plot_side_by_side(figure, imgs[person[k]], kp[person[k]], {"PersPose": pj[k], "AbsPoseLifter": aj[k]},
                      f"sports2d demo, frame {person[k]} (no 3D truth; assumed diagonal FOV)")
    return {"frames": int(both.sum()), "PA-MPJPE PersPose vs AbsPoseLifter (agreement)":
            float(pa_mpjpe(pj[both], aj[both]).mean()),
            "root depth PersPose / AbsPoseLifter (mm)": [float(np.nanmedian(pj[:, ROOT, 2])),
                                                          float(np.nanmedian(aj[:, ROOT, 2]))]}


def plot_side_by_side(path: Path, image: np.ndarray, kp: np.ndarray, skeletons: dict, title: str) -> None:
    """Frame with the box + one 3D panel per skeleton (root-centred, camera axes: x right, y down, z forward)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = ["tab:red", "tab:blue", "tab:green"]
    fig = plt.figure(figsize=(5 + 4 * len(skeletons), 5.5))
    ax0 = fig.add_subplot(1, len(skeletons) + 1, 1)
    ax0.imshow(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    ax0.plot(kp[:, 0], kp[:, 1], "y.", ms=4)
    ax0.set_title(title, fontsize=9); ax0.axis("off")
    ref = None
    for i, (name, P) in enumerate(skeletons.items()):
        ax = fig.add_subplot(1, len(skeletons) + 1, i + 2, projection="3d")
        Q = np.asarray(P, float) - P[ROOT]
        ref = Q if ref is None else ref
        for a, b in BONES:   # plot (x, z, -y): depth into the page, up is up
            ax.plot([Q[a, 0], Q[b, 0]], [Q[a, 2], Q[b, 2]], [-Q[a, 1], -Q[b, 1]], color=colors[i % 3], lw=2)
        lim = 1000
        ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_zlim(-lim, lim)
        ax.set_xlabel("x (mm)"); ax.set_ylabel("z depth (mm)"); ax.set_zlabel("-y (mm)")
        ax.view_init(elev=10, azim=-60)
        ax.set_title(f"{name}\nroot at z = {P[ROOT, 2] / 1000:.2f} m", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["ablation", "real"])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "perspose")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--backend", default="onnxruntime")
    ap.add_argument("--sports2d", type=Path, default=None, help="path of the sports2d demo.mp4")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    if a.what == "ablation":
        res = ablation(a.run, a.size)
        print(json.dumps(res, indent=1))
        print(format_ablation(res))
        for k, v in baselines(a.size).items():
            print(f"{k}: {v:.1f} mm")
    else:
        res = {"pose2sim": evaluate_real(a.weights, a.backend, REPO / "notes" / "perspose_pose2sim.png")}
        if a.sports2d:
            res["sports2d"] = sports2d(a.weights, a.backend, a.sports2d, REPO / "notes" / "perspose_sports2d.png")
        print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
