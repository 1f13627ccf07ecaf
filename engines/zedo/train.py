"""Train ZeDO's pose prior on the training subjects' 3D poses only (no 2D, no cameras' images).

    python -m engines.zedo.train --hidden 512 --blocks 2 --threads 2 --minutes 1000 --max-steps 33787 --seed 3 \
        --out assets/zedo/zedo_prior.pt      # the shipped prior: 35 min on an idle 2-core CPU

Every batch draws training poses, makes them pelvis-relative and applies the
paper's augmentation (Sec. 4.2): a left/right flip for half of them and a random
rotation. Our refiner works in the camera frame, so the rotation is the one a
camera would see: any heading, pitch -35..+25 deg, roll ~N(0, 3 deg), the same
family of cameras as ``engines.data`` (a few degrees wider). Loss: Eq. 3 with
``s_theta = -eps_theta / sigma`` (see ``prior.py``), t ~ U(0, 1]. Because ZeDO
only queries the prior at t <= 0.1, ``--small-t-frac`` of each batch draws
t ~ U(0, 0.1] instead (a deviation from the paper's uniform t, for the small
CPU training budget; 0 restores the paper's sampling). Adam, lr 2e-4 with
warm-up and cosine decay as the paper, EMA weights are what we ship.
"""
from __future__ import annotations

import argparse
import copy
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from engines.data import _world_to_cam_rotation, load_split
from engines.skeleton import FLIP_PERM, ROOT
from engines.zedo.prior import MM_PER_UNIT, PriorConfig, ScoreNet, SubVPSDE

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "assets" / "zedo" / "zedo_prior.pt"
T_EPS = 1e-4


def yaw_matrices(yaw: np.ndarray) -> np.ndarray:
    """Rotations about the world's vertical (Y) axis ``[N, 3, 3]``."""
    c, s = np.cos(yaw), np.sin(yaw)
    R = np.zeros((len(yaw), 3, 3))
    R[:, 0, 0] = c; R[:, 0, 2] = s; R[:, 1, 1] = 1; R[:, 2, 0] = -s; R[:, 2, 2] = c
    return R


def augment(poses_world_mm: np.ndarray, rng: np.random.Generator, pitch_deg=(-35.0, 25.0),
            roll_std_deg: float = 3.0, roll_max_deg: float = 10.0) -> np.ndarray:
    """Pelvis-relative camera-frame poses (mm) of world poses ``[N, 17, 3]`` under random flip + rotation."""
    N = len(poses_world_mm)
    X = poses_world_mm - poses_world_mm[:, ROOT:ROOT + 1]
    flip = rng.random(N) < 0.5
    X = X.copy()
    X[flip] = X[flip][:, FLIP_PERM] * np.array([-1.0, 1.0, 1.0])
    pitch = rng.uniform(*pitch_deg, N)
    roll = np.clip(rng.normal(0.0, roll_std_deg, N), -roll_max_deg, roll_max_deg)
    R = _world_to_cam_rotation(pitch, roll) @ yaw_matrices(rng.uniform(0, 2 * np.pi, N))
    return np.einsum("nij,nkj->nki", R, X)


def diffusion_loss(net: ScoreNet, sde: SubVPSDE, x0: torch.Tensor, small_t_frac: float,
                   gen: torch.Generator | None = None) -> torch.Tensor:
    """Eq. 3: ``E ||sigma s_theta(x_t, t) + z||^2 = E ||eps_theta(x_t, t) - z||^2`` (x0 in metres)."""
    B = x0.shape[0]
    t = torch.rand(B, generator=gen) * (1.0 - T_EPS) + T_EPS
    small = torch.rand(B, generator=gen) < small_t_frac
    t = torch.where(small, t * 0.1, t)
    z = torch.randn(x0.shape, generator=gen)
    xt = sde.alpha(t)[:, None, None] * x0 + sde.sigma(t)[:, None, None] * z
    return ((net(xt, t) - z) ** 2).sum((1, 2)).mean()


def train(out: Path, minutes: float = 11.0, max_steps: int = 200000, batch: int = 2048, lr: float = 2e-4,
          small_t_frac: float = 0.5, cfg: PriorConfig = PriorConfig(), seed: int = 0, threads: int = 1,
          ema_decay: float = 0.999, warmup: int = 500, log_every: int = 250, init: Path | None = None,
          raw_joints: bool = False) -> dict:
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    poses = load_split("train", raw=raw_joints)["joints_mm"].astype(np.float64)
    net = ScoreNet(cfg)
    history = []
    if init is not None:   # continue from a checkpoint (its EMA weights), e.g. to focus on small t
        prev = torch.load(init, map_location="cpu", weights_only=False)
        if PriorConfig(**prev["config"]) != cfg:
            raise ValueError(f"--init {init} has config {prev['config']}, not {cfg.to_dict()}")
        net.load_state_dict(prev["state_dict"])
        history = prev.get("history", []) + [{k: prev.get(k) for k in ("command", "steps", "small_t_frac", "val_loss")}]
    ema = copy.deepcopy(net).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    sde = SubVPSDE(cfg.beta_min, cfg.beta_max)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    # the step budget is set by wall time: estimate it after warm-up, cosine-decay over it
    budget_s = minutes * 60.0
    t0 = time.time()
    total = max_steps
    chunk = 16
    losses = []
    step = 0
    while step < total:
        if step % chunk == 0:
            x_all = torch.from_numpy((augment(poses[rng.integers(0, len(poses), batch * chunk)], rng)
                                      / MM_PER_UNIT).astype(np.float32))
        x0 = x_all[(step % chunk) * batch:(step % chunk + 1) * batch]
        if step == 200:   # measured speed -> number of steps that fit the time budget
            per = (time.time() - t0) / 200
            total = min(max_steps, max(step + 1, int(budget_s / per)))
            log.info("%.1f ms/step -> %d steps in %.1f min", per * 1e3, total, minutes)
        frac = step / max(total, 1)
        lr_now = lr * min(1.0, (step + 1) / warmup) * (0.5 * (1 + np.cos(np.pi * min(frac, 1.0))) if step > warmup else 1.0)
        for g in opt.param_groups:
            g["lr"] = lr_now
        net.train()
        loss = diffusion_loss(net, sde, x0, small_t_frac)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(ema_decay, (1 + step) / (10 + step))
            for pe, pn in zip(ema.parameters(), net.parameters()):
                pe.mul_(d).add_(pn.detach(), alpha=1 - d)
        losses.append(float(loss.detach()))
        if step % log_every == 0:
            log.info("step %d/%d loss %.4f lr %.2e (%.0f s)", step, total, np.mean(losses[-log_every:]), lr_now,
                     time.time() - t0)
        step += 1
    val = validation_loss(ema, sde)
    meta = {"config": cfg.to_dict(), "state_dict": ema.state_dict(), "steps": step, "batch": batch, "lr": lr,
            "small_t_frac": small_t_frac, "seed": seed, "raw_joints": raw_joints, "train_minutes": (time.time() - t0) / 60,
            "final_train_loss": float(np.mean(losses[-log_every:])), "val_loss": val,
            "data": "CMU mocap training subjects (engines.data.load_split('train'))",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), "history": history}
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(meta, out)
    log.info("saved %s (val loss %s)", out, val)
    return meta


@torch.no_grad()
def validation_loss(net: ScoreNet, sde: SubVPSDE, n: int = 4096, seed: int = 7) -> dict:
    """Eq. 3 on validation subjects, overall and for the truncated range t <= 0.1 ZeDO uses."""
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    val = load_split("val")["joints_mm"]
    x0 = torch.from_numpy((augment(val[rng.integers(0, len(val), n)], rng) / MM_PER_UNIT).astype(np.float32))
    net.eval()
    return {"t_uniform_0_1": float(diffusion_loss(net, sde, x0, 0.0, gen)),
            "t_uniform_0_0.1": float(diffusion_loss(net, sde, x0, 1.0, gen))}


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--minutes", type=float, default=11.0, help="wall-time budget; the cosine schedule fits it")
    p.add_argument("--max-steps", type=int, default=200000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--small-t-frac", type=float, default=0.75)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--blocks", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="1 is fastest on a busy 2-core machine")
    p.add_argument("--init", type=Path, default=None, help="continue from this checkpoint")
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--raw-joints", action="store_true",
                   help="CMU joint centres instead of the detector-proportion retargeted joints (load_split raw=True)")
    a = p.parse_args(argv)
    train(a.out, a.minutes, a.max_steps, a.batch, a.lr, a.small_t_frac,
          PriorConfig(hidden=a.hidden, blocks=a.blocks), a.seed, a.threads, warmup=a.warmup, init=a.init,
          raw_joints=a.raw_joints)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
