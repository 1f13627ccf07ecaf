"""Per-frame plausibility of 3D poses in [0, 1]: the product of three checks.

* **bone lengths** (``bone``): a person's bones keep their length, so each frame's bone
  lengths are compared with the clip's median. Each bone's relative deviation is divided
  by its own tolerance (the 95th percentile seen within training clips, at least
  ``BONE_TOL_FLOOR``: the neck-to-nose "bone" changes with every nod, a shin never), and
  ``z`` = the worst bone gives ``exp(-0.5 (max(0, z - 1) / BONE_Z_TOL)^2)``. Clips of fewer
  than ``MIN_CLIP_FRAMES`` frames are compared with the training subjects' median
  proportions scaled to the frame (tolerance ``BONE_TOL_SINGLE``).
* **joint angles** (``angle``): data-driven joint limits. Each limb bone's direction is
  expressed in a frame attached to its parent bone (thigh and upper arm: pelvis and
  torso frames; shin and forearm: thigh and upper-arm frames; nose and head: torso
  frame) and compared with the directions seen in the training subjects' mocap (mirrored
  too). A knee or elbow bending backwards, or an arm through the chest, lands far from
  every training direction (real validation poses: 95 % within 3 deg; reversed knees and
  flipped limbs: typically 2-30 deg).
  ``exp(-0.5 (max(0, worst angle - ANGLE_FREE_DEG) / ANGLE_TOL_DEG)^2)``.
* **learned wKCS discriminator** (``learned``): the Fig. 4 discriminator without the 2D
  input (3D pose in a body-fixed frame + wKCS, both normalised as Sec. 3.6), trained
  with a logistic loss on training-subject poses vs corruptions of them
  (``engines.plausibility.corruptions.TRAIN_FAMILIES``); the sigmoid of its logit averaged
  over the pose and its left/right mirror image.

Everything is invariant to where the camera is (poses are put in a body-fixed frame by a
proper rotation), so camera-frame (Y down) and world-frame (Y up) joints score the same.
The reference data and weights ship in ``assets/plausibility/`` (``python -m
engines.plausibility.score --fit`` rebuilds them from the training subjects only).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from engines.plausibility.corruptions import TRAIN_FAMILIES, corrupt
from engines.plausibility.critic import Critic, CriticConfig
from engines.plausibility.wkcs import normalize_pose
from engines.skeleton import BONES, FLIP_PERM, J, NUM_JOINTS, ROOT, bone_lengths

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
ASSETS = REPO / "assets" / "plausibility"
REFERENCE_FILE = ASSETS / "reference.npz"
DISCRIMINATOR_FILE = ASSETS / "discriminator.pt"
CALIBRATION_FILE = ASSETS / "calibration.json"
# calibrated scores (percentiles of the lifter's own validation poses) under this are flagged:
# 2 % of normal output, most corrupted poses (``python -m engines.plausibility.evaluate calibrate``)
FLAG_BELOW = 0.02

MIN_CLIP_FRAMES = 8
BONE_TOL_FLOOR = 0.04      # smallest per-bone relative tolerance (2D noise moves lifted bones too)
BONE_Z_TOL = 2.0
BONE_TOL_SINGLE = 0.35     # relative deviation giving exp(-0.5) when only population proportions are known
ANGLE_FREE_DEG = 1.0       # novel directions this close to the training set are not penalised
ANGLE_TOL_DEG = 3.0


class PlausibilityInputError(ValueError):
    """Joints that cannot be scored (wrong shape, partly NaN frames)."""


class MissingAssetError(FileNotFoundError):
    pass


# -- body-fixed frames ---------------------------------------------------------------------

def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)


def _frame(x_ref: np.ndarray, up: np.ndarray) -> np.ndarray:
    """Rows = axes of a right-handed frame with ``y`` along ``up`` and ``x`` along ``x_ref`` made orthogonal."""
    y = _unit(up)
    x = _unit(x_ref - (x_ref * y).sum(-1, keepdims=True) * y)
    z = np.cross(x, y)
    return np.stack([x, y, z], -2)


def body_frame(joints: np.ndarray) -> np.ndarray:
    """``[N, 3, 3]``: x from the right to the left hip, y up the spine (pelvis -> thorax), z = x cross y."""
    return _frame(joints[:, J["left_hip"]] - joints[:, J["right_hip"]], joints[:, J["thorax"]] - joints[:, ROOT])


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """Root-relative joints rotated (a proper rotation: chirality kept) into the body frame."""
    R = body_frame(joints)
    return np.einsum("nij,nkj->nki", R, joints - joints[:, ROOT:ROOT + 1])


# (bone child joint, parent-bone joints (a, b) giving the frame's first axis b - a or None for the
#  torso frame, lateral reference joints (l, r))
_ANGLE_BONES = (
    ("left_knee", None, "hips"), ("right_knee", None, "hips"),
    ("left_ankle", ("left_hip", "left_knee"), "hips"), ("right_ankle", ("right_hip", "right_knee"), "hips"),
    ("left_elbow", None, "torso"), ("right_elbow", None, "torso"),
    ("left_wrist", ("left_shoulder", "left_elbow"), "shoulders"),
    ("right_wrist", ("right_shoulder", "right_elbow"), "shoulders"),
    ("nose", None, "torso"), ("head", None, "torso"),
)
_PARENT = {c: p for p, c in BONES}


def limb_directions(joints: np.ndarray) -> np.ndarray:
    """``[N, 10, 3]`` unit directions of the limb/head bones in frames attached to their parents."""
    hips = joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
    shoulders = joints[:, J["left_shoulder"]] - joints[:, J["right_shoulder"]]
    up = joints[:, J["thorax"]] - joints[:, ROOT]
    frames = {"hips": _frame(hips, up), "torso": _frame(shoulders, up)}
    out = []
    for child, parent_bone, ref in _ANGLE_BONES:
        c = J[child]
        d = joints[:, c] - joints[:, _PARENT[c]]
        if parent_bone is None:
            R = frames[ref]
        else:
            a, b = J[parent_bone[0]], J[parent_bone[1]]
            lateral = hips if ref == "hips" else shoulders
            R = _frame(lateral, joints[:, b] - joints[:, a])   # y along the parent bone
        out.append(_unit(np.einsum("nij,nj->ni", R, d)))
    return np.stack(out, 1)


def mirror(joints: np.ndarray) -> np.ndarray:
    """Left/right mirror image (a real pose mirrored is a real pose)."""
    return joints[:, FLIP_PERM] * np.array([-1.0, 1.0, 1.0], dtype=joints.dtype)


# -- reference data and the discriminator ------------------------------------------------------

@dataclass
class Reference:
    directions: list[np.ndarray]     # per angle bone: unit vectors [M_k, 3]
    proportions: np.ndarray          # [b] median bone length / median sum of bone lengths
    bone_tol: np.ndarray             # [b] relative length tolerance per bone

    @classmethod
    def build(cls, poses: np.ndarray, clips: np.ndarray, grid: float = 0.02) -> "Reference":
        both = np.concatenate([poses, mirror(poses)])
        dirs = limb_directions(both.astype(np.float64))
        keep = [np.unique(np.round(dirs[:, k] / grid), axis=0) * grid for k in range(dirs.shape[1])]
        bl = bone_lengths(both)
        blc = bone_lengths(poses)
        dev = np.zeros_like(blc)
        for c in np.unique(clips):
            m = clips == c
            dev[m] = blc[m] / np.median(blc[m], 0) - 1.0
        tol = np.maximum(np.percentile(np.abs(dev), 95, axis=0), BONE_TOL_FLOOR)
        return cls([_unit(k).astype(np.float32) for k in keep], np.median(bl / bl.sum(-1, keepdims=True), 0), tol)

    def save(self, path: Path) -> None:
        np.savez_compressed(path, proportions=self.proportions, bone_tol=self.bone_tol,
                            **{f"dir{k}": d.astype(np.float16) for k, d in enumerate(self.directions)})

    @classmethod
    def load(cls, path: Path) -> "Reference":
        d = np.load(path)
        n = len([k for k in d.files if k.startswith("dir")])
        return cls([_unit(d[f"dir{k}"].astype(np.float64)) for k in range(n)], d["proportions"], d["bone_tol"])


@lru_cache(maxsize=4)
def _load(reference_file: Path = REFERENCE_FILE, discriminator_file: Path = DISCRIMINATOR_FILE):
    for f in (reference_file, discriminator_file):
        if not Path(f).exists():
            raise MissingAssetError(f"plausibility asset {f} is missing; rebuild with "
                                    "`python -m engines.plausibility.score --fit`")
    ref = Reference.load(reference_file)
    trees = [cKDTree(d) for d in ref.directions]
    ckpt = torch.load(discriminator_file, map_location="cpu", weights_only=False)
    net = Critic(CriticConfig(**ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    return ref, trees, net.eval()


def discriminator_input(joints: np.ndarray) -> torch.Tensor:
    """Body-frame, Sec. 3.6-normalised poses as a float32 tensor ``[N, 17, 3]``."""
    n, _ = normalize_pose(canonicalize(joints.astype(np.float64)))
    return torch.from_numpy(n.astype(np.float32))


# -- the score -------------------------------------------------------------------------------

@dataclass
class PlausibilityParts:
    bone: np.ndarray       # [N]
    angle: np.ndarray      # [N]
    learned: np.ndarray    # [N]
    angle_deg: np.ndarray  # [N] worst distance to a training direction
    bone_dev: np.ndarray   # [N] worst relative bone-length deviation

    @property
    def score(self) -> np.ndarray:
        return self.bone * self.angle * self.learned


def _validate(joints) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(joints, dtype=np.float64)
    if X.ndim == 2:
        X = X[None]
    if X.ndim != 3 or X.shape[1:] != (NUM_JOINTS, 3):
        raise PlausibilityInputError(f"joints must have shape [N, {NUM_JOINTS}, 3] (mm), got {X.shape}")
    fin = np.isfinite(X).all(-1)
    valid = fin.all(-1)
    partial = ~valid & fin.any(-1)
    if partial.any():
        raise PlausibilityInputError(f"frame {int(np.flatnonzero(partial)[0])} has some NaN joints; give all 17 "
                                     "joints or all NaN for a frame without a person")
    return X, valid


def plausibility_parts(joints_mm) -> PlausibilityParts:
    """The three checks for the frames of one clip ``[N, 17, 3]``; NaN frames give NaN."""
    X, valid = _validate(joints_mm)
    ref, trees, net = _load()
    N = len(X)
    parts = {k: np.full(N, np.nan) for k in ("bone", "angle", "learned", "angle_deg", "bone_dev")}
    if not valid.any():
        return PlausibilityParts(**parts)
    Y = X[valid]
    bl = bone_lengths(Y)
    if len(Y) >= MIN_CLIP_FRAMES:
        rel = np.abs(bl / np.median(bl, 0) - 1.0)
        dev = rel.max(-1)
        z = (rel / ref.bone_tol).max(-1)
        bone = np.exp(-0.5 * (np.maximum(z - 1.0, 0.0) / BONE_Z_TOL) ** 2)
    else:  # too few frames for a clip median: population proportions at the best-fitting scale
        p = ref.proportions
        s = (bl @ p) / (p @ p)
        dev = np.abs(bl / (s[:, None] * p) - 1.0).max(-1)
        bone = np.exp(-0.5 * (dev / BONE_TOL_SINGLE) ** 2)
    dirs = limb_directions(Y)
    chord = np.stack([t.query(dirs[:, k])[0] for k, t in enumerate(trees)], 1)
    ang = np.degrees(2 * np.arcsin(np.clip(chord / 2, 0, 1))).max(-1)
    with torch.no_grad():   # a mirrored real pose is real: average the logit over the pose and its mirror
        x = discriminator_input(Y)
        xm = x[:, list(FLIP_PERM)] * torch.tensor([-1.0, 1.0, 1.0])
        logit = (0.5 * (net(x) + net(xm))).numpy().astype(np.float64)
    parts["bone_dev"][valid] = dev
    parts["bone"][valid] = bone
    parts["angle_deg"][valid] = ang
    parts["angle"][valid] = np.exp(-0.5 * (np.maximum(ang - ANGLE_FREE_DEG, 0) / ANGLE_TOL_DEG) ** 2)
    parts["learned"][valid] = 1.0 / (1.0 + np.exp(-logit))
    return PlausibilityParts(**parts)


def plausibility_scores(joints_mm) -> np.ndarray:
    """Per-frame plausibility ``[N]`` in [0, 1] of one clip's joints ``[N, 17, 3]`` (mm, any frame).

    The frames are treated as one clip of one person (bone lengths are compared across them);
    frames without a person (all NaN) score NaN.
    """
    return plausibility_parts(joints_mm).score


@lru_cache(maxsize=2)
def load_calibration(path: Path = CALIBRATION_FILE) -> dict:
    if not Path(path).exists():
        raise MissingAssetError(f"plausibility calibration {path} is missing; rebuild with "
                                "`python -m engines.plausibility.evaluate calibrate`")
    return json.loads(Path(path).read_text())


CALIBRATED_PARTS = ("bone_dev", "angle_deg", "learned_nll")


def badness(parts: PlausibilityParts) -> dict[str, np.ndarray]:
    """Each check as a 'higher is worse' number: bone-length deviation, joint-angle distance, -log p(real)."""
    return {"bone_dev": parts.bone_dev, "angle_deg": parts.angle_deg,
            "learned_nll": -np.log(np.maximum(parts.learned, 1e-300))}


def combine(bad: dict[str, np.ndarray], calibration: dict) -> np.ndarray:
    """q = prod_k (1 - F_k(b_k)): each check's badness as the fraction of reference poses it beats."""
    lv = np.asarray(calibration["levels"])
    return np.prod([1.0 - np.interp(bad[k], calibration["part_quantiles"][k], lv) for k in CALIBRATED_PARTS], axis=0)


def to_percentile(parts: PlausibilityParts, calibration: dict | None = None) -> np.ndarray:
    """The three checks -> one calibrated plausibility in [0, 1] per frame (NaN stays NaN).

    Each check's badness b_k is turned into F_k(b_k), the fraction of the reference poses
    that are better on that check, where the reference is the lifter's own output on
    validation motion (realistic 2D noise, ``evaluate calibrate``). The checks combine as
    q = prod_k (1 - F_k(b_k)) and the result is G(q), the fraction of reference poses with a
    lower q: 0.5 is a typical frame of our own output, 0.01 is worse than 99 % of it. (The raw
    product of the checks is tiny for any lifted pose, so it cannot be read or thresholded.)
    """
    c = calibration or load_calibration()
    lv = np.asarray(c["levels"])
    bad = badness(parts)
    out = np.interp(combine(bad, c), c["combined_quantiles"], lv)
    return np.where(np.isfinite(parts.score), out, np.nan)


def calibrated_scores(joints_mm) -> np.ndarray:
    """Per-frame calibrated plausibility ``[N]`` of one clip's joints (see ``to_percentile``)."""
    return to_percentile(plausibility_parts(joints_mm))


def implausible(plausibility) -> np.ndarray:
    """Frames to flag: calibrated plausibility below ``FLAG_BELOW`` (frames without a person are not flagged)."""
    p = np.asarray(plausibility, dtype=np.float64)
    return np.isfinite(p) & (p < FLAG_BELOW)


def add_plausibility(clip):
    """Set ``clip.plausibility`` (calibrated, per frame, NaN without a person) from its camera-frame joints."""
    clip.plausibility = calibrated_scores(clip.joints_cam_mm).astype(np.float64)
    return clip


# -- fitting ---------------------------------------------------------------------------------

def fit(out_dir: Path = ASSETS, steps: int = 3000, batch: int = 256, seed: int = 0, width: int = 128,
        reference_only: bool = False, pool_mult: int = 1) -> dict:
    """Build the reference data and train the discriminator on the *training* subjects only."""
    from engines.data import load_split

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = load_split("train")
    poses = train["joints_mm"].astype(np.float64)
    out_dir.mkdir(parents=True, exist_ok=True)
    ref = Reference.build(poses, train["clip"])
    ref.save(out_dir / REFERENCE_FILE.name)
    log.info("reference: %s directions per bone; bone tolerances %s", [len(d) for d in ref.directions],
             np.round(ref.bone_tol, 3).tolist())
    _load.cache_clear()
    if reference_only:
        return {"reference": str(out_dir / REFERENCE_FILE.name)}
    # a fixed pool of negatives (corruption is per-pose Python; the pool keeps steps cheap)
    pool_n = len(poses) * pool_mult
    src = poses[rng.permutation(pool_n) % len(poses)]
    src = np.where(rng.random(pool_n)[:, None, None] < 0.5, mirror(src), src)
    t0 = time.time()
    fake, _ = corrupt(src, rng, TRAIN_FAMILIES)
    log.info("corrupted %d poses in %.0fs", pool_n, time.time() - t0)
    real_t = discriminator_input(np.concatenate([poses, mirror(poses)]))
    fake_t = discriminator_input(fake)
    cfg = CriticConfig(width=width, use_2d=False, kcs="wkcs")
    net = Critic(cfg)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    bce = torch.nn.BCEWithLogitsLoss()
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        r = real_t[torch.randint(len(real_t), (batch // 2,), generator=gen)]
        f = fake_t[torch.randint(len(fake_t), (batch // 2,), generator=gen)]
        x = torch.cat([r, f]) * (1 + 0.02 * torch.randn(batch, 1, 1, generator=gen))  # scale jitter
        y = torch.cat([torch.ones(batch // 2), torch.zeros(batch // 2)])
        loss = bce(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 500 == 0 or step == steps - 1:
            log.info("discriminator step %d/%d loss %.4f", step, steps, loss.item())
    meta = {"steps": steps, "batch": batch, "seed": seed, "width": width, "pool": pool_n, "train_families": list(TRAIN_FAMILIES),
            "poses": len(poses), "seconds": round(time.time() - t0, 1),
            "command": "python -m engines.plausibility.score --fit"}
    torch.save({"config": cfg.to_dict(), "state_dict": net.state_dict(), "meta": meta}, out_dir / DISCRIMINATOR_FILE.name)
    _load.cache_clear()
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit", action="store_true", help="rebuild assets/plausibility from the training subjects")
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--pool-mult", type=int, default=2, help="corrupted copies per training pose")
    ap.add_argument("--reference-only", action="store_true", help="rebuild only the reference data")
    ap.add_argument("--out-dir", type=Path, default=ASSETS)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    if a.fit:
        print(json.dumps(fit(a.out_dir, a.steps, width=a.width, reference_only=a.reference_only,
                                    pool_mult=a.pool_mult), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
