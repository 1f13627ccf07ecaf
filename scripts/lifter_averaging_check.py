"""Two training-free ways to average a lifter's answers, measured as ``engines.absposelifter.evaluate`` does
(exact 2D, realistic-noise 2D, real pose2sim video; BENCHMARKS.md, "What else was tried"):

* ``--average W1 W2 ...``: the lifter whose parameters are the mean of several checkpoints of one lineage
  (fine-tunes of the same start; BatchNorm statistics averaged as well);
* ``--rotations A1 A2 ...``: test-time rotation - the 2D turned about the principal point by each angle (deg),
  each lifted with its flip, the 3D turned back about the optical axis and all averaged (exact for square pixels).

    PYTHONPATH=. python scripts/lifter_averaging_check.py --average runs/ft6.pt runs/ft7.pt
    PYTHONPATH=. python scripts/lifter_averaging_check.py --rotations -10 0 10 [--weights W]
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from engines.absposelifter.evaluate import (evaluate, evaluate_real, format_table, pose2sim_truth, scores,
                                            validation_views)
from engines.absposelifter.model import FLIP_PERM, AbsPoseLifter, LifterConfig, absolute_pose

SHIPPED = Path(__file__).resolve().parents[1] / "assets" / "absposelifter" / "absposelifter.pt"


def averaged_checkpoint(paths: list[Path], out: Path) -> Path:
    cks = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    sd = {k: sum(c["state_dict"][k] for c in cks) / len(cks) if v.is_floating_point() else v
          for k, v in cks[0]["state_dict"].items()}
    torch.save(dict(cks[0], state_dict=sd, meta=dict(cks[0]["meta"], averaged=[str(p) for p in paths])), out)
    return out


def rotation_lift(model: AbsPoseLifter, kp: np.ndarray, K: np.ndarray, angles_deg) -> np.ndarray:
    """Absolute joints ``[N, 17, 3]`` averaged over in-plane rotations of the input (each with its flip)."""
    kp_t, K_t = torch.from_numpy(kp).float(), torch.from_numpy(K).float()
    c = K_t[:, :2, 2]
    perm = torch.tensor(FLIP_PERM)
    depths, rels = [], []
    with torch.no_grad():
        for a in np.radians(angles_deg):
            R3 = torch.eye(3)
            R3[:2, :2] = torch.tensor([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], dtype=torch.float32)
            turned = (kp_t - c[:, None]) @ R3[:2, :2].T + c[:, None]
            mirrored = turned[:, perm].clone()
            mirrored[..., 0] = 2 * c[:, None, 0] - mirrored[..., 0]
            for k, flipped in ((turned, False), (mirrored, True)):
                d, r = model(k, c)
                if flipped:
                    r = r[:, perm] * torch.tensor([-1.0, 1.0, 1.0])
                depths.append(d)                     # the depth along the optical axis does not turn
                rels.append(r @ R3)                  # rows: R3^T r, the pose turned back
        return absolute_pose(torch.stack(depths).mean(0), torch.stack(rels).mean(0), kp_t, K_t).numpy()


def rotation_table(weights: Path, angles_deg) -> dict:
    ck = torch.load(weights, map_location="cpu", weights_only=False)
    model = AbsPoseLifter(LifterConfig(**ck["config"]))
    model.load_state_dict(ck["state_dict"])
    model.eval()

    def lift(kp, K):
        return np.concatenate([rotation_lift(model, kp[i:i + 2048], K[i:i + 2048], angles_deg)
                               for i in range(0, len(kp), 2048)])

    v, noisy = validation_views(1234)
    res = {name: scores(lift(kp, v.K), v.joints_cam_mm)
           for name, kp in (("ground-truth 2D", v.keypoints_px), ("realistic-noise 2D", noisy))}
    preds, gts = [], []
    for _, cam, kp, _, gt, ok in pose2sim_truth():
        preds.append(lift(kp[ok].astype(np.float32), np.repeat(cam.K[None], ok.sum(), 0).astype(np.float32)))
        gts.append(gt[ok])
    res["real MediaPipe 2D (pose2sim, 4 views)"] = scores(np.concatenate(preds), np.concatenate(gts))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_mutually_exclusive_group(required=True)
    g.add_argument("--average", nargs="+", type=Path, help="checkpoints to average")
    g.add_argument("--rotations", nargs="+", type=float, help="in-plane angles (deg) to average over")
    ap.add_argument("--weights", type=Path, default=SHIPPED, help="lifter for --rotations (default: shipped)")
    a = ap.parse_args()
    if a.average:
        with tempfile.TemporaryDirectory() as tmp:
            w = averaged_checkpoint(a.average, Path(tmp) / "average.pt")
            res = evaluate(w)
            res["real MediaPipe 2D (pose2sim, 4 views)"] = evaluate_real(w)
    else:
        res = rotation_table(a.weights, a.rotations)
    print(format_table(res))


if __name__ == "__main__":
    main()
