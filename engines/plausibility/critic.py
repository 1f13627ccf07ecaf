"""Networks of paper 004: the discriminator (Fig. 4) and the reprojection network (Fig. 3, Sec. 3.2).

Discriminator: three inputs, each to a feature vector of the same width,

* 3D pose (normalised, Sec. 3.6) -> fully connected layer -> residual block,
* 2D pose (normalised) -> fully connected layer (optional: the plausibility score has no 2D),
* (w)KCS upper triangle -> fully connected layer,

concatenated -> fully connected layer -> one number (a WGAN critic value, or a logit).
``kcs="wkcs"`` uses Eq. 6, ``"kcs"`` the unweighted Eq. 4 (the Table 5 ablation).

Reprojection network: like the generator (Martinez-style) with one residual block:
normalised 3D pose ``[N, 17, 3]`` -> 2D pose ``[N, 17, 2]``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from engines.plausibility.wkcs import NUM_BONES, kcs, upper_triangle, wkcs
from engines.skeleton import NUM_JOINTS

KCS_FEATURES = NUM_BONES * (NUM_BONES + 1) // 2


@dataclass
class CriticConfig:
    width: int = 256
    use_2d: bool = True
    kcs: str = "wkcs"              # "wkcs" | "kcs" | "none"
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class Res(nn.Module):
    """Residual block (Martinez et al.): (linear, norm, leaky ReLU, dropout) x 2 + skip.

    Layer norm rather than batch norm: a WGAN-GP critic must not mix samples of a batch.
    """

    def __init__(self, width: int, dropout: float = 0.0):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                               nn.Linear(width, width), nn.LayerNorm(width), nn.LeakyReLU(0.2), nn.Dropout(dropout))

    def forward(self, x):
        return x + self.f(x)


def kcs_features(pose_norm: torch.Tensor, kind: str) -> torch.Tensor:
    """Upper triangle of the (w)KCS of normalised poses ``[N, 17, 3]``."""
    m = wkcs(pose_norm) if kind == "wkcs" else kcs(pose_norm)
    return upper_triangle(m)


class Critic(nn.Module):
    def __init__(self, cfg: CriticConfig = CriticConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.pose = nn.Sequential(nn.Linear(NUM_JOINTS * 3, w), nn.LeakyReLU(0.2), Res(w, cfg.dropout))
        n = 1
        if cfg.use_2d:
            self.p2d = nn.Sequential(nn.Linear(NUM_JOINTS * 2, w), nn.LeakyReLU(0.2))
            n += 1
        if cfg.kcs != "none":
            self.kcs = nn.Sequential(nn.Linear(KCS_FEATURES, w), nn.LeakyReLU(0.2))
            n += 1
        self.head = nn.Sequential(nn.Linear(n * w, w), nn.LeakyReLU(0.2), nn.Linear(w, 1))

    def forward(self, pose_norm: torch.Tensor, pose2d_norm: torch.Tensor | None = None) -> torch.Tensor:
        """``pose_norm [N, 17, 3]`` (Sec. 3.6 units), ``pose2d_norm [N, 17, 2]`` -> ``[N]``."""
        feats = [self.pose(pose_norm.flatten(1))]
        if self.cfg.use_2d:
            if pose2d_norm is None:
                raise ValueError("this critic was built with a 2D input; pass pose2d_norm")
            feats.append(self.p2d(pose2d_norm.flatten(1)))
        if self.cfg.kcs != "none":
            feats.append(self.kcs(kcs_features(pose_norm, self.cfg.kcs)))
        return self.head(torch.cat(feats, 1))[:, 0]


class ReprojectionNet(nn.Module):
    """Normalised 3D pose -> normalised 2D pose (one residual block, Sec. 3.2)."""

    def __init__(self, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(NUM_JOINTS * 3, width), nn.LeakyReLU(0.2), Res(width),
                                 nn.Linear(width, NUM_JOINTS * 2))

    def forward(self, pose_norm: torch.Tensor) -> torch.Tensor:
        return self.net(pose_norm.flatten(1)).reshape(-1, NUM_JOINTS, 2)
