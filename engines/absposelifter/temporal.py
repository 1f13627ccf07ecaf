"""Temporal refinement of AbsPoseLifter: an experiment beyond the paper (which lifts single frames), not shipped.

    python -m engines.absposelifter.temporal train --out runs/temporal40c.pt --minutes 40
    python -m engines.absposelifter.temporal evaluate --weights runs/temporal40c.pt

The single-frame lifter cannot tell a limb in front of the body from one behind it when
the 2D is the same; motion over a fraction of a second might, and 2D errors may average
out. ``TemporalRefiner`` sees the lifter's input (Eq. 1-4) and output (canonical root
depth, root-relative pose) for the frames ``WINDOW_TIMES_S`` around frame t and predicts a
correction of frame t's output; it starts as the identity (zero last layer), the lifter
stays frozen. Training windows are training-subject clips at 30 Hz, each seen by one
virtual camera (the sampler of ``engines.data.view_poses``, drawn for the centre frame),
with 2D errors from the fitted error model, correlated over time as real detections are
(``--independent-noise``: per frame). Results and why it is not shipped: BENCHMARKS.md,
"Temporal refinement".
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engines.absposelifter.evaluate import pose2sim_truth, scores, validation_views
from engines.absposelifter.model import AbsPoseLifter, ResidualBlock, absolute_pose
from engines.absposelifter.train import BONE_JITTER, RAW_LABELS_ERROR_MODEL, canonical_l1
from engines.data import load_split, view_poses
from engines.lifter import load_torch_lifter
from engines.noise import ErrorModel, person_scale_px
from engines.real_errors import POSE2SIM_FPS
from engines.skeleton import BONES, FLIP_PERM, NUM_JOINTS, ROOT, retarget_bones

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
# the lifter and error model its numbers were made with (BENCHMARKS.md): before the focal input and the
# keypoint stage's error model (3 Dec)
DEFAULT_LIFTER = REPO / "assets" / "absposelifter" / "absposelifter_focal_free.pt"
OFFSETS = np.arange(-12, 13, 3)          # 9 frames over 0.8 s at 30 Hz, centred on frame t
CENTRE = int(np.flatnonzero(OFFSETS == 0)[0])
WINDOW_TIMES_S = OFFSETS / 30.0          # the same window in seconds, for video at any frame rate
OUTPUT = 2 * NUM_JOINTS + 3                                 # a frame's features: the lifter's input (Eq. 1-4),
FEATURES = OUTPUT + 1 + 3 * (NUM_JOINTS - 1)                # then its output (log canonical depth, pose in m)


def window_index(clip: np.ndarray, offsets: np.ndarray = OFFSETS) -> np.ndarray:
    """``[N, T]`` frame indices around every frame of consecutive clips (names ``clip [N]``), clamped to
    the frame's own clip so windows never mix clips (edges repeat the first/last frame)."""
    n = len(clip)
    starts = np.r_[0, np.flatnonzero(clip[1:] != clip[:-1]) + 1]
    ends = np.r_[starts[1:], n] - 1
    which = np.searchsorted(starts, np.arange(n), side="right") - 1
    idx = np.arange(n)[:, None] + offsets[None]
    return np.clip(idx, starts[which][:, None], ends[which][:, None])


def window_by_time(timestamps_s: np.ndarray, valid: np.ndarray, times_s: np.ndarray = WINDOW_TIMES_S,
                   max_gap_s: float = 0.25) -> np.ndarray:
    """``[V, T]`` indices of the valid frames nearest to ``t + times_s`` for each of the ``V`` valid frames
    (at any frame rate), never across a gap of more than ``max_gap_s`` without a person: there the
    window repeats the last frame on its own side, as at the ends of the clip."""
    vi = np.flatnonzero(valid)
    t = np.asarray(timestamps_s, float)[vi]
    seg = np.r_[0, np.cumsum(np.diff(t) > max_gap_s)]                     # segment id of each valid frame
    starts = np.searchsorted(seg, seg, side="left")
    ends = np.searchsorted(seg, seg, side="right") - 1
    target = t[:, None] + np.asarray(times_s)[None]
    j = np.clip(np.searchsorted(t, target), 1, max(len(t) - 1, 1))
    nearest = np.where(np.abs(t[j - 1] - target) <= np.abs(t[np.minimum(j, len(t) - 1)] - target), j - 1, j)
    nearest = np.clip(nearest, starts[:, None], ends[:, None])
    return vi[nearest]


def view_windows(poses_mm: np.ndarray, win: np.ndarray, rng: np.random.Generator, bone_jitter: float = 0.0):
    """Windows ``poses_mm[win] [N, T, 17, 3]`` each seen by one camera drawn for its centre frame.

    Returns ``(keypoints_px [N, T, 17, 2], K [N, 3, 3], joints_cam_mm [N, T, 17, 3])``. With the same
    ``rng`` state, the centre frames get exactly the cameras ``view_poses(poses_mm[win[:, CENTRE]], rng)``
    gives, so centre-frame results compare one to one with the single-frame evaluation.
    """
    W = poses_mm[win].astype(np.float64)
    N, T = win.shape
    if bone_jitter > 0:   # one build per window: the same person throughout
        s = np.exp(rng.normal(0.0, bone_jitter, (N, 1, len(BONES))))
        W = retarget_bones(W, np.broadcast_to(s, (N, T, len(BONES))))
    v = view_poses(W[:, CENTRE], rng)
    W[v.mirrored] = W[v.mirrored][:, :, FLIP_PERM] * np.array([-1.0, 1.0, 1.0])
    cam = np.einsum("nij,ntkj->ntki", v.R_input_to_cam, W) + v.t_input_to_cam_mm[:, None, None]
    cam[..., 2] = np.maximum(cam[..., 2], 100.0)   # a neighbour frame that walked behind the camera: keep it finite
    f = v.K[:, [0, 1], [0, 1]].astype(np.float64)
    uv = cam[..., :2] / cam[..., 2:3] * f[:, None, None] + v.K[:, None, None, :2, 2]
    return uv.astype(np.float32), v.K, cam.astype(np.float32)


def lifter_features(lifter: AbsPoseLifter, keypoints_px: torch.Tensor, K: torch.Tensor, chunk: int = 32768):
    """Per-frame features ``[N, T, FEATURES]`` of windows ``keypoints_px [N, T, 17, 2]`` (one K per window)."""
    N, T = keypoints_px.shape[:2]
    kp = keypoints_px.reshape(N * T, NUM_JOINTS, 2)
    c = K[:, :2, 2].repeat_interleave(T, 0)
    f = K[:, 0, 0].repeat_interleave(T, 0)
    out = []
    with torch.no_grad():
        for i in range(0, N * T, chunk):
            # the paper's 2J + 3 inputs (a lifter that also takes the focal length appends 3 more)
            x = lifter.normalization(kp[i:i + chunk], c[i:i + chunk], f[i:i + chunk])[:, :2 * NUM_JOINTS + 3]
            depth, rel = lifter(kp[i:i + chunk], c[i:i + chunk], f[i:i + chunk])
            rel = torch.cat([rel[:, :ROOT], rel[:, ROOT + 1:]], 1).flatten(1) / 1000.0
            out.append(torch.cat([x, torch.log(depth)[:, None], rel], 1))
    return torch.cat(out).reshape(N, T, FEATURES)


class TemporalRefiner(nn.Module):
    """Window features ``[N, T, FEATURES]`` -> corrected ``(canonical_depth [N], rel_mm [N, 17, 3])`` of the
    centre frame: the lifter's centre output plus a learned correction (zero at initialisation)."""

    def __init__(self, frames: int = len(OFFSETS), width: int = 1024, num_blocks: int = 2, dropout: float = 0.0):
        super().__init__()
        self.frames = frames
        self.inp = nn.Linear(frames * FEATURES, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width, dropout) for _ in range(num_blocks)])
        self.out = nn.Linear(width, 1 + 3 * (NUM_JOINTS - 1))
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, features: torch.Tensor):
        centre = features[:, self.frames // 2, OUTPUT:]
        return lifter_output(centre + self.out(self.blocks(self.inp(features.flatten(1)))))


def lifter_output(y: torch.Tensor):
    """The output part of a frame's features ``[N, 1 + 3 (J - 1)]`` (log canonical depth, pose in m without
    the root) -> ``(canonical_depth [N], rel_mm [N, 17, 3])`` as ``AbsPoseLifter`` returns them."""
    rel = y[:, 1:].reshape(-1, NUM_JOINTS - 1, 3) * 1000.0
    return torch.exp(y[:, 0]), torch.cat([rel[:, :ROOT], torch.zeros_like(rel[:, :1]), rel[:, ROOT:]], 1)


def window_errors(em: ErrorModel, rng: np.random.Generator, kp: np.ndarray, correlated: bool = True) -> np.ndarray:
    """2D errors for windows ``kp [N, T, 17, 2]``: correlated over time as fitted to real MediaPipe
    (``ErrorModel.sample_sequence``), or independent per frame."""
    scale = person_scale_px(kp)
    if correlated:
        return em.sample_sequence(rng, scale, WINDOW_TIMES_S)
    return em.sample(rng, scale.reshape(-1)).reshape(kp.shape)


def make_windows(poses, win, rng, em, lifter, bone_jitter=BONE_JITTER, correlated=True):
    kp, K, cam = view_windows(poses, win, rng, bone_jitter)
    kp = kp + window_errors(em, rng, kp, correlated)
    K = torch.from_numpy(K)
    return lifter_features(lifter, torch.from_numpy(kp), K), K, torch.from_numpy(cam[:, CENTRE])


def train(out: Path, minutes: float, lifter_path: Path = DEFAULT_LIFTER, width: int = 1024, batch: int = 512,
          lr: float = 1e-3, windows_per_round: int = 32768, epochs_per_round: int = 3, seed: int = 0,
          threads: int = 2, lam: float = 4.0, correlated: bool = True) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    d = load_split("train")
    poses, win_all = d["joints_mm"], window_index(d["clip"])
    lifter = load_torch_lifter(lifter_path)
    em = ErrorModel.load(RAW_LABELS_ERROR_MODEL)
    model = TemporalRefiner(width=width)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    t0, step, rnd = time.time(), 0, 0
    deadline = t0 + minutes * 60
    while time.time() < deadline:
        if time.time() > t0 + minutes * 60 * 2 / 3 and opt.param_groups[0]["lr"] == lr:
            opt.param_groups[0]["lr"] = lr / 10          # the lifter's schedule shape: lr/10 for the last third
        idx = rng.integers(0, len(poses), windows_per_round)
        feats, K, cam = make_windows(poses, win_all[idx], rng, em, lifter, correlated=correlated)
        model.train()
        for _ in range(epochs_per_round):
            for b in torch.randperm(len(idx)).split(batch):
                if len(b) < batch:
                    continue
                loss, l_depth, l_pose = canonical_l1(*model(feats[b]), K[b], cam[b], lam)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
        rnd += 1
        log.info("round %d step %d loss %.2f (depth %.1f, pose %.1f mm) %.0fs", rnd, step, loss.item(),
                 l_depth.item(), l_pose.item(), time.time() - t0)
    meta = {"steps": step, "rounds": rnd, "minutes": minutes, "lr": lr, "batch": batch, "seed": seed,
            "offsets": OFFSETS.tolist(), "lifter": str(lifter_path), "correlated_noise": correlated,
            "seconds": round(time.time() - t0, 1),
            "command": "python -m engines.absposelifter.temporal " + " ".join(sys.argv[1:])}
    out.parent.mkdir(parents=True, exist_ok=True)
    model.eval()
    torch.save({"config": {"width": width}, "state_dict": model.state_dict(), "meta": meta}, out)
    log.info("saved %s", out)
    return meta


def load_refiner(path: Path) -> TemporalRefiner:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    m = TemporalRefiner(**ckpt["config"])
    m.load_state_dict(ckpt["state_dict"])
    return m.eval()


def evaluate(weights: Path, lifter_path: Path = DEFAULT_LIFTER, seed: int = 1234) -> dict:
    """Validation subjects, every frame as a centre, single frame vs temporal on the same frames.

    Cameras and the independent errors of the centre frames are those of the single-frame evaluation
    (``evaluate.validation_views``), so its numbers reappear; the neighbours get independent errors too.
    A third input has errors correlated over time as real detections are (``window_errors``)."""
    d = load_split("val")
    poses, win = d["joints_mm"], window_index(d["clip"])
    lifter, refiner = load_torch_lifter(lifter_path), load_refiner(weights)
    em = ErrorModel.load(RAW_LABELS_ERROR_MODEL)
    kp, K, cam = view_windows(poses, win, np.random.default_rng(seed))
    noisy = kp + em.sample(np.random.default_rng(seed + 2), person_scale_px(kp.reshape(-1, NUM_JOINTS, 2))
                           ).reshape(kp.shape)
    noisy[:, CENTRE] = validation_views(seed, error_model=RAW_LABELS_ERROR_MODEL)[1]   # the single-frame input
    correlated = kp + window_errors(em, np.random.default_rng(seed + 3), kp)
    res = {}
    for name, x in (("ground-truth 2D", kp), ("realistic-noise 2D", noisy),
                    ("realistic-noise 2D, correlated over time", correlated)):
        for tag, pred in _predict(lifter, refiner, x, K).items():
            res[f"{name}, {tag}"] = scores(pred, cam[:, CENTRE])
    res.update(evaluate_real(refiner, lifter))
    return res


def _predict(lifter, refiner, keypoints_px: np.ndarray, K: np.ndarray) -> dict[str, np.ndarray]:
    """Centre-frame poses of windows ``[N, T, 17, 2]`` (one ``K [N, 3, 3]`` each): the lifter alone, its output
    averaged over the middle 5 frames (0.4 s; the plain baseline), and the refiner."""
    x, Kt = torch.from_numpy(np.ascontiguousarray(keypoints_px, dtype=np.float32)), torch.from_numpy(K)
    feats = lifter_features(lifter, x, Kt)
    with torch.no_grad():
        return {name: absolute_pose(*out, x[:, CENTRE], Kt).numpy() for name, out in (
            ("single frame", lifter_output(feats[:, CENTRE, OUTPUT:])),
            ("average of 5 frames", lifter_output(feats[:, CENTRE - 2:CENTRE + 3, OUTPUT:].mean(1))),
            ("temporal", refiner(feats)))}


def evaluate_real(refiner, lifter) -> dict:
    """Real MediaPipe on the 4 pose2sim views (100 frames each), as ``evaluate.evaluate_real``."""
    preds, gts = [], []
    for _, cam, kp, conf, gt, ok in pose2sim_truth():
        # windows over the frames with a detection, by time (the video is 60 fps)
        win = window_by_time(np.arange(len(kp)) / POSE2SIM_FPS, ok)
        preds.append(_predict(lifter, refiner, kp[win], np.repeat(cam.K[None].astype(np.float32), len(win), 0)))
        gts.append(gt[ok])
    gt = np.concatenate(gts)
    return {f"real pose2sim, {k}": scores(np.concatenate([p[k] for p in preds]), gt) for k in preds[0]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--out", type=Path, required=True)
    t.add_argument("--minutes", type=float, default=35)
    t.add_argument("--width", type=int, default=1024)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--independent-noise", action="store_true",
                   help="2D errors independent per frame (default: correlated over time as real detections are)")
    e = sub.add_parser("evaluate")
    e.add_argument("--weights", type=Path, required=True)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.cmd == "train":
        train(a.out, a.minutes, width=a.width, lr=a.lr, seed=a.seed, correlated=not a.independent_noise)
    else:
        print("| input, method | poses | MPJPE | PA-MPJPE | MRPE |\n|---|---|---|---|---|")
        for k, r in evaluate(a.weights).items():
            print(f"| {k} | {r['poses']} | {r['MPJPE']:.1f} | {r['PA-MPJPE']:.1f} | {r['MRPE']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
