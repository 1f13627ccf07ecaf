"""AbsPoseLifter (paper 001): 2D pose -> canonical root depth + root-relative 3D pose.

Parts, with the paper's names:

* ``NormalizationLayer`` (Eq. 1-4): subtract the principal point, then
  ``p~_i = (p'_i - m) / sigma`` with ``m`` the mean joint and ``sigma`` the RMS spread;
  output the 2J normalised coordinates plus the *location* ``m`` and *scale* ``sigma``
  (2J + 3 numbers). We feed ``m / 1000`` and ``log(sigma / 100)``: the same information,
  on a scale an MLP trains on easily (raw pixels span 1-2000).
* ``ResidualBlock`` (Sec. 3.2, after Martinez et al.): (BN, dropout, ReLU, linear) x 2 + skip.
* ``AbsPoseLifter``: linear -> 2 residual blocks -> linear to 3J - 2 outputs: the
  canonical root depth ``R~z = R_z / alpha`` (mm per px; we predict its log so it stays
  positive) and the 3(J-1) root-relative coordinates (mm).
* ``AbsolutePose`` (Eq. 5-6): ``R_z = alpha R~z``, ``R_x = (r_x - c_x) R_z / f_x``,
  ``R_y = (r_y - c_y) R_z / f_y``, ``P_i = R + P~_i``; with ``alpha = f_x``.

Width: the paper uses 4096 (67 M parameters, 270 MB). We use 1024 (4.2 M parameters,
17 MB of float32 weights): under the 40 MB shipping limit, ~0.2 s per 1024-sample
training step on a 2-core CPU, and a batch-1 forward pass well under a millisecond.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from engines.skeleton import FLIP_PERM, NUM_JOINTS, ROOT


@dataclass
class LifterConfig:
    num_joints: int = NUM_JOINTS
    width: int = 1024
    num_blocks: int = 2
    dropout: float = 0.1
    use_location_scale: bool = True   # ablation: without m and sigma (Table 1 "w/o location & scale")
    use_focal: bool = False           # also feed the focal length (m / f and log f): see NormalizationLayer

    def to_dict(self) -> dict:
        return asdict(self)


class NormalizationLayer(nn.Module):
    """Eq. 1-4: keypoints ``[N, J, 2]`` px and principal point ``[N, 2]`` -> ``[N, 2J + 3]``.

    With ``use_focal`` (our extension; the paper's cameras hardly vary) it appends ``m / f`` (the tangent of
    the angle between the optical axis and the body's ray) and ``log(f / 1000)``: ``[N, 2J + 6]``. Without
    them the lifter cannot tell a body seen 45 deg off-axis by a wide lens (f = 500 px, m = 500 px) from one
    seen 11 deg off-axis by a long one (f = 2500 px), which turns the camera-frame pose, and it cannot know the
    strength of the perspective in the 2D.
    """

    def __init__(self, use_location_scale: bool = True, use_focal: bool = False):
        super().__init__()
        self.use_location_scale = use_location_scale
        self.use_focal = use_focal

    def forward(self, keypoints_px: torch.Tensor, principal_point_px: torch.Tensor,
                focal_px: torch.Tensor | None = None) -> torch.Tensor:
        p = keypoints_px - principal_point_px[:, None, :]                       # Eq. 1
        m = p.mean(dim=1)                                                        # Eq. 3
        sigma = ((p - m[:, None]) ** 2).sum(-1).mean(-1, keepdim=True).sqrt()    # Eq. 4
        sigma = sigma.clamp_min(1e-3)
        p_norm = ((p - m[:, None]) / sigma[:, None]).flatten(1)                  # Eq. 2
        loc, scale = m / 1000.0, torch.log(sigma / 100.0)
        if not self.use_location_scale:
            loc, scale = torch.zeros_like(loc), torch.zeros_like(scale)
        if not self.use_focal:
            return torch.cat([p_norm, loc, scale], dim=1)
        if focal_px is None:
            raise ValueError("this lifter was trained with the focal length as an input: pass focal_px")
        f = focal_px.reshape(-1, 1)
        return torch.cat([p_norm, loc, scale, m / f, torch.log(f / 1000.0)], dim=1)


class ResidualBlock(nn.Module):
    def __init__(self, width: int, dropout: float):
        super().__init__()
        self.layers = nn.Sequential(
            nn.BatchNorm1d(width), nn.Dropout(dropout), nn.ReLU(), nn.Linear(width, width),
            nn.BatchNorm1d(width), nn.Dropout(dropout), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.layers(x)


class AbsPoseLifter(nn.Module):
    """Returns ``(canonical_root_depth [N] mm/px, relative_pose_mm [N, J, 3])`` (root row = 0)."""

    def __init__(self, cfg: LifterConfig = LifterConfig()):
        super().__init__()
        self.cfg = cfg
        J = cfg.num_joints
        self.normalization = NormalizationLayer(cfg.use_location_scale, cfg.use_focal)
        self.inp = nn.Linear(2 * J + (6 if cfg.use_focal else 3), cfg.width)
        self.blocks = nn.Sequential(*[ResidualBlock(cfg.width, cfg.dropout) for _ in range(cfg.num_blocks)])
        self.out = nn.Linear(cfg.width, 3 * J - 2)
        # output scales: relative coordinates are hundreds of mm; log canonical depth moves
        # slowly around a typical 4 mm/px (4 m at f = 1000 px) so early steps cannot blow it up
        self.register_buffer("pose_scale_mm", torch.tensor(300.0))
        self.register_buffer("log_depth_offset", torch.tensor(1.386))
        self.register_buffer("log_depth_scale", torch.tensor(0.1))

    def forward(self, keypoints_px: torch.Tensor, principal_point_px: torch.Tensor,
                focal_px: torch.Tensor | None = None):
        x = self.inp(self.normalization(keypoints_px, principal_point_px, focal_px))
        y = self.out(self.blocks(x))
        canonical_depth = torch.exp(self.log_depth_offset + self.log_depth_scale * y[:, 0])
        rel = y[:, 1:].reshape(-1, self.cfg.num_joints - 1, 3) * self.pose_scale_mm
        zero = torch.zeros_like(rel[:, :1])
        rel = torch.cat([rel[:, :ROOT], zero, rel[:, ROOT:]], dim=1)
        return canonical_depth, rel


class AbsolutePose(nn.Module):
    """Lifter + Eq. 5-6 in one graph: ``(keypoints_px [N,J,2], K [N,3,3]) -> joints_cam_mm [N,J,3]``.

    This is what runtimes export and run, so every backend returns absolute poses. ``flip_test`` (on by
    default) also lifts the mirrored 2D and averages: ~1 mm better on every synthetic input and 1.6-2.7 mm better
    PA-MPJPE on real video (BENCHMARKS.md) for a second batch row, cheap next to the 2D detector.
    """

    def __init__(self, lifter: AbsPoseLifter, flip_test: bool = True):
        super().__init__()
        self.lifter = lifter
        self.flip_test = flip_test
        self.register_buffer("flip_perm", torch.tensor(FLIP_PERM))

    def forward(self, keypoints_px: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
        c, f = K[:, :2, 2], K[:, 0, 0]
        if self.flip_test:
            # test-time flip: mirror the image about the principal point (x -> 2 c_x - x) and swap
            # left/right; in the camera frame that mirror is X -> -X. Average both predictions.
            mirrored = keypoints_px[:, self.flip_perm].clone()
            mirrored[..., 0] = 2 * c[:, None, 0] - mirrored[..., 0]
            n = keypoints_px.shape[0]
            depth2, rel2 = self.lifter(torch.cat([keypoints_px, mirrored]), torch.cat([c, c]), torch.cat([f, f]))
            rel_m = rel2[n:, self.flip_perm] * torch.tensor([-1.0, 1.0, 1.0])
            canonical_depth, rel = 0.5 * (depth2[:n] + depth2[n:]), 0.5 * (rel2[:n] + rel_m)
        else:
            canonical_depth, rel = self.lifter(keypoints_px, c, f)
        return absolute_pose(canonical_depth, rel, keypoints_px, K)


def absolute_pose(canonical_depth: torch.Tensor, rel: torch.Tensor, keypoints_px: torch.Tensor,
                  K: torch.Tensor) -> torch.Tensor:
    """Eq. 5-6: the root at depth ``R_z = f_x * canonical_depth`` on the ray of its pixel, plus the relative pose."""
    c = K[:, :2, 2]
    fx, fy = K[:, 0, 0], K[:, 1, 1]
    Rz = fx * canonical_depth                                          # Eq. 6
    r = keypoints_px[:, ROOT]
    Rx = (r[:, 0] - c[:, 0]) * Rz / fx                                 # Eq. 5
    Ry = (r[:, 1] - c[:, 1]) * Rz / fy
    root = torch.stack([Rx, Ry, Rz], dim=-1)
    return root[:, None, :] + rel
