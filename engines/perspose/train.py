"""Train PersPose variants on the pre-rendered synthetic crops (``engines.perspose.render``).

Shipped weights (``assets/perspose/perspose.pt``) = the ``pe_pr`` model of this ablation run:

    python -m engines.perspose.render --size 64 --train 8000 --val 2000
    python -m engines.perspose.render --size 64 --only train --train 4000 --seed 7
    python -m engines.perspose.render --size 64 --only train --train 20000 --seed 11
    python -m engines.perspose.render --size 64 --only train --train 20000 --seed 12
    python -m engines.perspose.train --size 64 --steps 40000 --minutes 55 --threads 2 --batch 64 --out runs/perspose_v2
    cp runs/perspose_v2/perspose_pe_pr.pt assets/perspose/perspose.pt    # 8,371 steps on an idle 2-core CPU

The Table 2 ablation trains the three variants in ONE process, interleaved step by step on
the same batches from the same initial weights (identical budgets even when the shared CPU
slows down mid-run): ``none`` (box crop, no PE), ``pe`` (box crop + PE), ``pe_pr`` (PR crop
+ PE). AdamW (paper: 3e-4; here 2e-3 for a tiny net and a short run), cosine decay over
whichever budget (steps or minutes) runs out first, batch 32.
Eq. 18's L1 terms without SMPL.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from engines.data import CACHE_DIR
from engines.perspose.model import PersPoseConfig, PersPoseNet, config_dict, loss_fn

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
VARIANTS = {"none": ("box", False), "pe": ("box", True), "pe_pr": ("pr", True)}
DEFAULT_WEIGHTS = REPO / "assets" / "perspose" / "perspose.pt"


class DatasetMissingError(FileNotFoundError):
    """The pre-rendered crops are not there yet."""


def load_rendered(split: str, size: int, root: Path = CACHE_DIR / "perspose") -> dict:
    """All rendered shards of a split (``train64``, ``train64_s2``, ...) concatenated."""
    dirs = [d for d in sorted(root.glob(f"{split}{size}*")) if (d / "s_pr.npy").exists()]
    if not dirs:
        raise DatasetMissingError(f"no rendered {split} crops under {root}: run "
                                  f"`python -m engines.perspose.render --size {size}` first")
    shards = [{p.stem: np.load(p) for p in d.glob("*.npy")} for d in dirs]
    return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}


def batch(data: dict, crop: str, idx: np.ndarray):
    img = torch.from_numpy(data[f"img_{crop}"][idx]).permute(0, 3, 1, 2).float()
    K = torch.from_numpy(data[f"K_{crop}"][idx]).float()
    uvd = torch.from_numpy(data[f"uvd_{crop}"][idx]).float()
    s = torch.from_numpy(data[f"s_{crop}"][idx]).float()
    return img, K, uvd, s


def train(size: int, steps: int, minutes: float, variants: list[str], out_dir: Path, seed: int = 0,
          batch_size: int = 32, lr: float = 2e-3, init: Path | None = None) -> dict:
    data = load_rendered("train", size)
    n = len(data["s_pr"])
    models, opts = {}, {}
    for v in variants:
        torch.manual_seed(seed)             # same initial weights for the shared layers
        models[v] = PersPoseNet(PersPoseConfig(size=size, use_pe=VARIANTS[v][1])).train()
        if init is not None:    # continue training (the shipped model continues the ablation's pe_pr run)
            ck = torch.load(init / f"perspose_{v}.pt" if init.is_dir() else init, map_location="cpu",
                            weights_only=False)
            models[v].load_state_dict(ck["state_dict"])
        opts[v] = torch.optim.AdamW(models[v].parameters(), lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    t0, hist, done = time.time(), {v: [] for v in variants}, 0
    for step in range(steps):
        f = max(step / steps, (time.time() - t0) / (minutes * 60))   # schedule follows whichever budget ends first
        if f >= 1.0:
            log.info("time budget of %.1f min reached after %d steps (each variant)", minutes, step)
            break
        cur = lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * f))) * min(1.0, (step + 1) / 50)
        idx = np.sort(rng.choice(n, batch_size, replace=False))
        for v in variants:
            img, K, uvd, s = batch(data, VARIANTS[v][0], idx)
            for g in opts[v].param_groups:
                g["lr"] = cur
            loss, parts = loss_fn(models[v](img, K), uvd, s, size)
            opts[v].zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(models[v].parameters(), 5.0)
            opts[v].step()
            hist[v].append([float(loss.detach()), parts["uv_px"], parts["d_mm"], parts["s"]])
        done = step + 1
        if step % 50 == 0 or step == steps - 1:
            msg = "  ".join(f"{v}: L={np.mean([h[0] for h in hist[v][-50:]]):.4f} "
                            f"uv={np.mean([h[1] for h in hist[v][-50:]]):.2f}px "
                            f"d={np.mean([h[2] for h in hist[v][-50:]]):.0f}mm" for v in variants)
            log.info("step %d/%d (%.0fs) lr %.1e  %s", step, steps, time.time() - t0, cur, msg)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = {"init": str(init) if init else None, "steps": done, "seconds": round(time.time() - t0, 1), "batch": batch_size, "lr": lr, "size": size,
            "train_samples": n, "seed": seed}
    for v in variants:
        ckpt = {"config": config_dict(models[v].cfg), "state_dict": models[v].eval().state_dict(),
                "variant": v, "crop": VARIANTS[v][0], "train": info,
                "final_loss": float(np.mean([h[0] for h in hist[v][-100:]]))}
        torch.save(ckpt, out_dir / f"perspose_{v}.pt")
    (out_dir / "train_info.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--minutes", type=float, default=15.0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "perspose")
    ap.add_argument("--init", type=Path, default=None, help="checkpoint (or run folder) to continue from")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(a.threads)
    info = train(a.size, a.steps, a.minutes, a.variants, a.out, seed=a.seed, batch_size=a.batch, lr=a.lr,
                 init=a.init)
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
