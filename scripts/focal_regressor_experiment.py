"""Experiment (not shipped): learn the focal length from a clip of 2D joints, W-HMR style.

    PYTHONPATH=. python scripts/focal_regressor_experiment.py train --features 2d --out runs/focal_2d.pt
    PYTHONPATH=. python scripts/focal_regressor_experiment.py train --features hybrid --out runs/focal_hyb.pt
    PYTHONPATH=. python scripts/focal_regressor_experiment.py eval runs/focal_hyb.pt --seeds 2 3 --with-geometric
    PYTHONPATH=. python scripts/focal_regressor_experiment.py real runs/focal_hyb.pt --clips cam01.clip.json ... \
        --true-px 1671 1676 1678 1690            # pose2sim views, from `mocap-app process`

A clip network (DeepSets: a per-frame MLP, mean and std pooled over the frames, a head) predicts log f
with a Gaussian NLL. Training windows: 4 s of a training subject's clip (30 frames), one random camera
from ``engines.data.view_poses`` for the whole window (1.5-8 m, focal 400-2500 px, anywhere in the image),
MediaPipe-like 2D errors times U(0, 1). Features per frame: ``2d`` = joints relative to the principal point
(/1000 px) and normalised by the person's 2D size; ``hybrid`` adds the AbsPoseLifter's relative pose and
canonical depth and the per-frame reprojection cost of ``autofocal`` on a 12-focal grid (its cue, learned
how to weigh). Evaluated on the auto-focal test's synthetic clips (validation subjects, detector
proportions), beside ``estimate_focal``; results in notes/calibration.md.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.absposelifter.train import BONE_JITTER, RAW_LABELS_ERROR_MODEL
from engines.data import FLIP_PERM, load_split, view_poses
from engines.lifter import FOCAL_FREE_WEIGHTS
from engines.noise import ErrorModel, person_scale_px
from engines.skeleton import BONES, ROOT, retarget_bones
from mocap_app.calibration.autofocal import LiftedClip, reprojection_cost

GRID = np.geomspace(300, 4000, 12)


def features_2d(kp, c):
    """``kp [n,17,2]`` px, principal point ``c [n,2]`` -> ``[n, 71]``."""
    p = (kp - c[:, None]) / 1000.0
    root = p[:, ROOT]
    rel = p - root[:, None]
    s = np.sqrt((rel ** 2).sum(-1).mean(-1, keepdims=True)) + 1e-6
    return np.concatenate([p.reshape(len(p), -1), (rel / s[:, None]).reshape(len(p), -1), root, np.log(s)], -1)


class Hybrid:
    def __init__(self, lifter=None):
        from engines import load_lifter
        self.module = (lifter or load_lifter("absposelifter", backend="torch",
                                             weights=FOCAL_FREE_WEIGHTS)).module   # with test-time flip

    def __call__(self, kp, c):
        n = len(kp)
        K = np.zeros((n, 3, 3), np.float32)
        K[:, 0, 0] = K[:, 1, 1] = 1000.0
        K[:, :2, 2] = c
        K[:, 2, 2] = 1
        with torch.no_grad():
            out = self.module(torch.from_numpy(kp.astype(np.float32)), torch.from_numpy(K)).double().numpy()
        cd, rel = out[:, ROOT, 2] / 1000.0, out - out[:, ROOT:ROOT + 1]
        lifted = LiftedClip(kp, np.ones(kp.shape[:2]), cd, rel, c)     # one principal point per frame
        costs = np.log(np.stack([reprojection_cost(lifted, f) for f in GRID], -1) + 1e-4)
        costs -= costs.min(-1, keepdims=True)
        return np.concatenate([features_2d(kp, c), rel.reshape(n, -1) / 1000.0, np.log(np.maximum(cd, 1e-3))[:, None],
                               costs], -1)


class ClipNet(nn.Module):
    def __init__(self, fin: int, w: int = 256):
        super().__init__()
        self.frame = nn.Sequential(nn.Linear(fin, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU())
        self.head = nn.Sequential(nn.Linear(2 * w, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), nn.Linear(w, 2))

    def forward(self, x, m):
        """``x [B,T,F]``, frame mask ``m [B,T]`` -> mean and log-variance of log(f / 1000 px)."""
        h = self.frame(x)
        mf = m.float()[..., None]
        n = mf.sum(1).clamp(min=1)
        mean = (h * mf).sum(1) / n
        sd = (((h - mean[:, None]) ** 2 * mf).sum(1) / n).clamp(min=1e-6).sqrt()
        o = self.head(torch.cat([mean, sd], -1))
        return o[:, 0], o[:, 1].clamp(-8, 4)


def windows(P, starts, counts, rng, em, B, T=30, span=120):
    """``B`` windows of training clips, each seen by one random camera: ``kp [B,T,17,2]``, ``c [B,T,2]``,
    frame mask (body in the image, in front), log(f / 1000)."""
    ok = counts >= 40
    ci = rng.choice(np.flatnonzero(ok), B, p=counts[ok] / counts[ok].sum())
    L = np.minimum(counts[ci], span)
    a = starts[ci] + (rng.random(B) * (counts[ci] - L + 1)).astype(int)
    X = P[a[:, None] + (np.linspace(0, 1, T)[None] * (L[:, None] - 1)).round().astype(int)].astype(np.float64)
    mir = rng.random(B) < 0.5
    X[mir] = X[mir][:, :, FLIP_PERM] * np.array([-1.0, 1.0, 1.0])
    sc = np.exp(rng.normal(0, BONE_JITTER, (B, len(BONES))))
    X = retarget_bones(X.reshape(B * T, 17, 3), np.repeat(sc, T, 0)).reshape(B, T, 17, 3)
    ref = X.mean(1) - X.mean(1)[:, ROOT:ROOT + 1] + X[:, T // 2, ROOT:ROOT + 1]
    v = view_poses(ref, rng, mirror=False)
    cam = np.einsum("bij,btkj->btki", v.R_input_to_cam, X) + v.t_input_to_cam_mm[:, None, None]
    K = v.K.astype(np.float64)
    uv = cam[..., :2] / np.maximum(cam[..., 2:3], 1.0) * K[:, None, None, [0, 1], [0, 1]] + K[:, None, None, :2, 2]
    wh = v.image_wh.astype(np.float64)
    m = (((uv >= 0) & (uv <= wh[:, None, None] - 1)).all(-1).mean(-1) >= 0.9) & (cam[..., 2] > 300).all(-1)
    kp = uv.reshape(B * T, 17, 2)
    kp = kp + em.sample(rng, person_scale_px(kp)) * np.repeat(rng.random(B), T)[:, None, None]
    return kp.reshape(B, T, 17, 2), np.repeat(K[:, None, :2, 2], T, 1), m, np.log(K[:, 0, 0] / 1000.0)


def train(kind: str, out: Path, steps: int, n_hybrid: int = 12000, seed: int = 0) -> None:
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    rng = np.random.default_rng(seed)
    d = load_split("train")
    _, starts, counts = np.unique(d["clip"], return_index=True, return_counts=True)
    em = ErrorModel.load(RAW_LABELS_ERROR_MODEL)   # as its numbers were made
    feat = features_2d if kind == "2d" else Hybrid()

    def batch(B):
        kp, c, m, y = windows(d["joints_mm"], starts, counts, rng, em, B)
        keep = m.sum(1) >= 8
        kp, c, m, y = kp[keep], c[keep], m[keep], y[keep]
        x = feat(kp.reshape(-1, 17, 2), c.reshape(-1, 2)).reshape(len(m), m.shape[1], -1)
        x[~m] = 0
        return torch.from_numpy(x.astype(np.float32)), torch.from_numpy(m), torch.from_numpy(y.astype(np.float32))

    if kind == "hybrid":   # the lifter makes features slow: a fixed set of windows, many epochs
        parts = []
        while sum(len(p[2]) for p in parts) < n_hybrid:
            parts.append(batch(128))
        X, M, Y = (torch.cat([p[i] for p in parts]) for i in range(3))
    net = None
    t0 = time.time()
    for step in range(steps):
        if kind == "hybrid":
            i = torch.randint(0, len(Y), (128,))
            x, m, y = X[i], M[i], Y[i]
        else:
            x, m, y = batch(128)
        if net is None:
            net = ClipNet(x.shape[-1])
            opt = torch.optim.Adam(net.parameters(), 1e-3)
            sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(steps * 0.7)], 0.1)
        net.train()
        mu, lv = net(x, m)
        loss = (0.5 * (lv + (mu - y) ** 2 / lv.exp())).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 250 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} |log f err| {(mu - y).abs().mean().item():.3f} "
                  f"{time.time() - t0:.0f}s", flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"kind": kind, "fin": x.shape[-1], "state_dict": net.state_dict()}, out)


def _load_net(path: Path) -> tuple[ClipNet, str]:
    ck = torch.load(path)
    net = ClipNet(ck["fin"])
    net.load_state_dict(ck["state_dict"])
    return net.eval(), ck["kind"]


def evaluate(weights: list[Path], seeds: list[int], with_geometric: bool = False) -> None:
    """Median error on the test's clips; several ``weights`` (same features) are averaged in log f."""
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from test_calibration_autofocal import SIZE, cases
    from engines import load_lifter
    from mocap_app.calibration.autofocal import estimate_focal
    nets, kinds = zip(*(_load_net(w) for w in weights))
    if len(set(kinds)) != 1:
        raise SystemExit("weights with different features cannot be averaged")
    lifter = (load_lifter("absposelifter", backend="torch", weights=FOCAL_FREE_WEIGHTS)
              if with_geometric or kinds[0] == "hybrid" else None)
    feat = features_2d if kinds[0] == "2d" else Hybrid(lifter)
    errs, geo = [], []
    for seed in seeds:
        for name, f, v, inside, kp, rng in cases(seed=seed, step=1, detector_proportions=True):
            c = np.tile(np.array([(SIZE[0] - 1) / 2, (SIZE[1] - 1) / 2]), (len(kp), 1))
            x = torch.from_numpy(feat(kp, c).astype(np.float32))[None]
            with torch.no_grad():
                out = [net(x, torch.ones(1, len(kp), dtype=torch.bool)) for net in nets]
            mu = float(np.mean([o[0].item() for o in out]))
            sd = float(np.exp(np.mean([o[1].item() for o in out]) / 2))
            errs.append(float(np.exp(mu) * 1000 / f - 1))
            line = f"seed {seed} {name:8s} f {f:6.0f} px  error {errs[-1]:+.3f}  sd {sd:.3f}"
            if with_geometric:
                r = estimate_focal(kp, np.ones(kp.shape[:2]), SIZE, lifter, bootstrap=6)
                geo.append(r.focal_px / f - 1)
                line += f"  estimate_focal {geo[-1]:+.3f}"
            print(line, flush=True)
    print(f"median |relative error| {np.median(np.abs(errs)):.3f} over {len(errs)} clips")
    if with_geometric:
        both = np.expm1(0.5 * (np.log1p(errs) + np.log1p(geo)))     # geometric mean of the two estimates
        print(f"estimate_focal {np.median(np.abs(geo)):.3f}; error correlation (log) "
              f"{np.corrcoef(np.log1p(errs), np.log1p(geo))[0, 1]:.2f}; geometric mean of both "
              f"{np.median(np.abs(both)):.3f}")


def real(weights: Path, clips: list[Path], true_px: list[float], frames: int = 30) -> None:
    """The network and ``estimate_focal`` on clip JSONs of real video (``mocap-app process``) of known focal."""
    import json
    from engines import load_lifter
    from mocap_app.calibration.autofocal import estimate_focal
    net, kind = _load_net(weights)
    lifter = load_lifter("absposelifter", backend="torch", weights=FOCAL_FREE_WEIGHTS)
    feat = features_2d if kind == "2d" else Hybrid(lifter)
    for path, f in zip(clips, true_px):
        d = json.loads(Path(path).read_text())
        fr = [x for x in d["frames"] if x["person"]]
        kp = np.array([x["keypoints_px"] for x in fr], float)
        conf = np.array([x["confidence"] for x in fr], float)
        size = (d["source"]["width_px"], d["source"]["height_px"])
        idx = np.linspace(0, len(kp) - 1, frames).round().astype(int)
        c = np.tile([(size[0] - 1) / 2, (size[1] - 1) / 2], (frames, 1))
        with torch.no_grad():
            mu, _ = net(torch.from_numpy(feat(kp[idx], c).astype(np.float32))[None],
                        torch.ones(1, frames, dtype=torch.bool))
        r = estimate_focal(kp, conf, size, lifter, bootstrap=6)
        print(f"{Path(path).name}: true {f:.0f} px, network {np.exp(mu.item()) * 1000 / f - 1:+.2f}, "
              f"estimate_focal {r.focal_px / f - 1:+.2f} (confidence {r.confidence:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--features", choices=["2d", "hybrid"], required=True)
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--steps", type=int, default=None, help="default 4000 (2d), 3000 (hybrid)")
    t.add_argument("--windows", type=int, default=12000, help="training windows of the hybrid features")
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("eval")
    e.add_argument("weights", type=Path, nargs="+")
    e.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    e.add_argument("--with-geometric", action="store_true", help="also run estimate_focal and combine the two")
    r = sub.add_parser("real")
    r.add_argument("weights", type=Path)
    r.add_argument("--clips", type=Path, nargs="+", required=True)
    r.add_argument("--true-px", type=float, nargs="+", required=True)
    a = ap.parse_args()
    if a.cmd == "train":
        train(a.features, a.out, a.steps or (4000 if a.features == "2d" else 3000), a.windows, a.seed)
    elif a.cmd == "eval":
        evaluate(a.weights, a.seeds, a.with_geometric)
    else:
        real(a.weights, a.clips, a.true_px)


if __name__ == "__main__":
    main()
