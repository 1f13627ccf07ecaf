"""ZeDO's 3D pose prior: a score-matching diffusion model over pelvis-relative poses (ZeDO Sec. 3.1).

Forward SDE: the sub-VP SDE of Song et al. (2021) with a linear ``beta(t)``; its
perturbation kernel is ZeDO Eq. 1,

    p(x(t) | x(0)) = N(x(t); alpha(t) x(0), sigma(t)^2 I),
    alpha(t) = exp(-1/2 int_0^t beta),   sigma(t) = 1 - exp(-int_0^t beta),

and training minimises Eq. 3, ``E_t ||sigma(t) s_theta(x(t), t) + z||^2``. We
parameterise ``s_theta = -eps_theta / sigma`` (as the ZeDO release does for
continuous sub-VP models), so Eq. 3 is exactly ``||eps_theta - z||^2``.

The network sees poses in metres (17 x 3, pelvis at the origin, OpenCV camera
axes: X right, Y down, Z forward), so the noise scale at the truncated inference
time t = 0.1 (sigma ~ 0.10) is ~10 cm. The public side speaks millimetres:
``DenoiseStep`` converts inside the exported graph.

The network is the release's ``ScoreModelFC_Adv`` shrunk for CPU: an MLP with
residual blocks, each linear layer receiving its own projection of the time
embedding.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from engines.skeleton import NUM_JOINTS

MM_PER_UNIT = 1000.0   # network units are metres


@dataclass(frozen=True)
class PriorConfig:
    hidden: int = 512
    embed: int = 128
    blocks: int = 2
    dropout: float = 0.0
    beta_min: float = 0.1     # sub-VP SDE schedule (the release's defaults)
    beta_max: float = 20.0

    def to_dict(self) -> dict:
        return asdict(self)


class SubVPSDE:
    """Closed forms of the sub-VP SDE ``dx = -1/2 beta x dt + sqrt(beta (1 - e^{-2 int beta})) dw``.

    Works on numpy arrays and torch tensors alike (only +, *, exp are used).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0):
        self.beta_min, self.beta_max = float(beta_min), float(beta_max)

    def beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def int_beta(self, t):
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) * t * t

    def alpha(self, t):
        e = -0.5 * self.int_beta(t)
        return torch.exp(e) if isinstance(t, torch.Tensor) else np.exp(e)

    def sigma(self, t):
        e = -self.int_beta(t)
        return 1.0 - (torch.exp(e) if isinstance(t, torch.Tensor) else np.exp(e))

    def g2(self, t):
        """Squared diffusion coefficient ``beta (1 - e^{-2 int beta})``."""
        e = -2.0 * self.int_beta(t)
        return self.beta(t) * (1.0 - (torch.exp(e) if isinstance(t, torch.Tensor) else np.exp(e)))


def timestep_embedding(t: torch.Tensor, dim: int, max_positions: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of ``999 t`` (the release's 'positional' embedding of continuous t)."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * (-math.log(max_positions) / (half - 1)))
    args = (t.float() * 999.0)[:, None] * freqs[None, :]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=-1)


class ScoreNet(nn.Module):
    """``eps_theta(x, t)``: x ``[B, 17, 3]`` metres, t ``[B]`` -> predicted unit noise ``[B, 17, 3]``."""

    def __init__(self, cfg: PriorConfig = PriorConfig()):
        super().__init__()
        self.cfg = cfg
        d, h, e = NUM_JOINTS * 3, cfg.hidden, cfg.embed
        self.act = nn.SiLU()
        self.time = nn.Sequential(nn.Linear(e, e), nn.SiLU())
        self.pre = nn.Linear(d, h)
        self.pre_t = nn.Linear(e, h)
        self.pre_norm = nn.LayerNorm(h)
        self.drop = nn.Dropout(cfg.dropout)
        self.dense = nn.ModuleList(nn.Linear(h, h) for _ in range(2 * cfg.blocks))
        self.dense_t = nn.ModuleList(nn.Linear(e, h) for _ in range(2 * cfg.blocks))
        self.norms = nn.ModuleList(nn.LayerNorm(h) for _ in range(2 * cfg.blocks))
        self.post = nn.Linear(h, d)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        B = x.shape[0]
        temb = self.time(timestep_embedding(t, self.cfg.embed))
        h = self.drop(self.act(self.pre_norm(self.pre(x.reshape(B, -1)) + self.pre_t(temb))))
        for b in range(self.cfg.blocks):
            h1 = self.drop(self.act(self.norms[2 * b](self.dense[2 * b](h) + self.dense_t[2 * b](temb))))
            h2 = self.drop(self.act(self.norms[2 * b + 1](self.dense[2 * b + 1](h1) + self.dense_t[2 * b + 1](temb))))
            h = h + h2
        return self.post(h).reshape(B, NUM_JOINTS, 3)


class DenoiseStep(nn.Module):
    """One denoising step of the prior, ``theta_g(P, t)`` in Alg. 1, in millimetres.

    Inputs ``x_mm [B, 17, 3]`` (pelvis-relative, camera axes), ``t [B]`` in (0, 1]
    and ``dt [B]``; output the pose after one Euler step of the reverse-time
    probability-flow ODE from t to t - dt (what the ZeDO release runs each
    iteration: Euler-Maruyama predictor, ``probability_flow=True``, no corrector):

        x <- x - [f(x, t) - 1/2 g(t)^2 s(x, t)] dt,   f = -1/2 beta x,   s = -eps / sigma.

    The pull towards the denoised pose has rate ``lambda = g^2 dt / (2 sigma^2)``;
    we clip dt to ``2 sigma^2 / g^2`` (lambda <= 1) so that large steps (few
    iterations) land on the Tweedie estimate instead of overshooting it
    (identical to the release for its dt = 1/1000 at t >= 0.01).
    """

    def __init__(self, net: ScoreNet):
        super().__init__()
        self.net = net
        self.sde = SubVPSDE(net.cfg.beta_min, net.cfg.beta_max)

    def max_dt(self, t):
        """Largest useful step at time t (lambda = 1): ``2 sigma^2 / g^2``."""
        return 2.0 * self.sde.sigma(t) ** 2 / self.sde.g2(t)

    def forward(self, x_mm: torch.Tensor, t: torch.Tensor, dt: torch.Tensor) -> torch.Tensor:
        x = x_mm / MM_PER_UNIT
        eps = self.net(x, t)
        sig = self.sde.sigma(t)[:, None, None]
        a = self.sde.alpha(t)[:, None, None]
        g2 = self.sde.g2(t)[:, None, None]
        beta = self.sde.beta(t)[:, None, None]
        d = dt[:, None, None]
        x0 = (x - sig * eps) / a                       # Tweedie estimate of the clean pose
        d = torch.minimum(d, 2.0 * sig * sig / g2)
        lam = 0.5 * g2 * d / (sig * sig)
        # -[f - 1/2 g^2 s] dt = 1/2 beta x dt - lam (x - a x0)   (s = -(x - a x0) / sigma^2)
        out = x + 0.5 * beta * d * x - lam * (x - a * x0)
        return out * MM_PER_UNIT


def load_prior(path) -> tuple[ScoreNet, dict]:
    """ScoreNet and the checkpoint's metadata from a file written by ``engines.zedo.train``."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    net = ScoreNet(PriorConfig(**ckpt["config"]))
    net.load_state_dict(ckpt["state_dict"])
    return net.eval(), ckpt
