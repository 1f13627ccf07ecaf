"""PersPose network (Fig. 4, Sec. 5.1) scaled down to run in real time on a CPU.

Why this size: the paper's HRNet-W48 at 256x256 is ~30 GFLOPs per image, far too slow
for a CPU pipeline that also runs MediaPipe. Here a MobileNet-style backbone at 128x128
(two strided 3x3 convs, then depthwise-separable blocks down to 8x8) costs ~25 MFLOPs, a
few ms in ONNX Runtime on one core (``benchmarks/bench_perspose.py``).

* Image branch: stem (3x3 s2, 3x3 s2) -> 32x32 features.
* PE branch (optional): the PE map ``M^xy`` (Eq. 7-9) of ``K_crop``, built *inside the graph*
  at the 32x32 fusion resolution (cell centres; the map is linear in pixels, so this equals
  average-pooling the full-resolution map), through its own convs, then element-wise added
  to the image features (Fig. 4; the paper adds before HRNet's stage 2).
* Decoder: one conv -> 17 heatmaps at 32x32 -> soft-argmax (u, v in crop pixels); from the
  pooled global feature, one linear layer -> relative depths ``d_i`` (mm, pelvis = 0) and one
  -> the scale ``s = d0_abs / f_crop`` (mm/px).
* Eq. 5: ``P'_i = (d_i + s f_crop) K_crop^-1 (u_i, v_i, 1)``; Eq. 6 (``R^T``) is applied by
  ``AbsoluteFromImage`` so the exported graph returns original-camera joints.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
import torch.nn.functional as F

from engines.skeleton import NUM_JOINTS, ROOT

DEPTH_UNIT_MM = 1000.0    # network predicts relative depth in metres
SCALE_UNIT = 10.0         # and the scale factor s in 10 mm/px


@dataclass(frozen=True)
class PersPoseConfig:
    size: int = 128
    use_pe: bool = True
    width: int = 32          # channels at the 32x32 fusion stage
    hidden: int = 256


def _cbr(cin, cout, k=3, s=1, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         nn.ReLU(inplace=True))


class DWBlock(nn.Module):
    """Depthwise 3x3 + pointwise 1x1 (MobileNet v1), residual when shapes match."""

    def __init__(self, cin, cout, stride=1):
        super().__init__()
        self.dw = _cbr(cin, cin, 3, stride, groups=cin)
        self.pw = _cbr(cin, cout, 1)
        self.res = stride == 1 and cin == cout

    def forward(self, x):
        y = self.pw(self.dw(x))
        return x + y if self.res else y


def pe_grid(K_crop: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """PE map ``[B, 2, size/stride, size/stride]`` from ``K_crop [B, 3, 3]`` (Eq. 7-9 at cell centres)."""
    n = size // stride
    g = (torch.arange(n, dtype=K_crop.dtype, device=K_crop.device) + 0.5) * stride - 0.5
    fx, fy = K_crop[:, 0, 0, None], K_crop[:, 1, 1, None]
    x = (g[None, :] - K_crop[:, 0, 2, None]) / fx          # [B, n]
    y = (g[None, :] - K_crop[:, 1, 2, None]) / fy
    return torch.stack([x[:, None, :].expand(-1, n, -1), y[:, :, None].expand(-1, -1, n)], 1)


class PersPoseNet(nn.Module):
    """Crop (BGR, 0-255, ``[B, 3, S, S]``) and ``K_crop`` -> heatmap (u, v), relative depths, scale."""

    def __init__(self, cfg: PersPoseConfig = PersPoseConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(_cbr(3, 24, 3, 2), _cbr(24, w, 3, 2))                # S/4
        if cfg.use_pe:
            self.pe = nn.Sequential(nn.Conv2d(2, 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, w, 1))
        self.stage1 = nn.Sequential(DWBlock(w, 48), DWBlock(48, 48))                     # S/4
        self.stage2 = nn.Sequential(DWBlock(48, 96, 2), DWBlock(96, 96), DWBlock(96, 96))    # S/8
        self.stage3 = nn.Sequential(DWBlock(96, 160, 2), DWBlock(160, 160), DWBlock(160, 160))  # S/16
        self.lat2 = nn.Conv2d(96, 48, 1)
        self.lat3 = nn.Conv2d(160, 48, 1)
        self.heat = nn.Sequential(_cbr(48, 48, 3), nn.Conv2d(48, NUM_JOINTS, 1))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(160 * 4, cfg.hidden), nn.ReLU(inplace=True))
        self.depth = nn.Linear(cfg.hidden, NUM_JOINTS)
        self.scale = nn.Linear(cfg.hidden, 1)
        with torch.no_grad():   # start near the data: relative depths ~0, s ~ 14 mm/px (softplus(1.3) * 10)
            self.depth.weight.mul_(0.1); self.depth.bias.zero_()
            self.scale.weight.mul_(0.1); self.scale.bias.fill_(1.3)
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor([0.25, 0.25, 0.25]).view(1, 3, 1, 1) * 255)

    def forward(self, image: torch.Tensor, K_crop: torch.Tensor):
        S = self.cfg.size
        x = self.stem((image - self.mean) / self.std)
        if self.cfg.use_pe:
            x = x + self.pe(pe_grid(K_crop, S, S // x.shape[-1]))                       # Fig. 4 fusion
        f1 = self.stage1(x)
        f2 = self.stage2(f1)
        f3 = self.stage3(f2)
        n = f1.shape[-1]
        fused = f1 + F.interpolate(self.lat2(f2), size=(n, n), mode="bilinear", align_corners=False) \
            + F.interpolate(self.lat3(f3), size=(n, n), mode="bilinear", align_corners=False)
        hm = self.heat(fused)                                                           # [B, J, n, n]
        B = hm.shape[0]
        p = torch.softmax(hm.reshape(B, NUM_JOINTS, n * n), -1).reshape(B, NUM_JOINTS, n, n)
        g = (torch.arange(n, dtype=hm.dtype, device=hm.device) + 0.5) * (S / n) - 0.5   # cell centres, px
        u = (p.sum(2) * g).sum(-1)
        v = (p.sum(3) * g).sum(-1)
        h = self.fc(F.adaptive_avg_pool2d(f3, 2))
        d = self.depth(h) * DEPTH_UNIT_MM
        d = d - d[:, ROOT:ROOT + 1]                                                     # pelvis depth 0
        s = F.softplus(self.scale(h)[:, 0]) * SCALE_UNIT
        return u, v, d, s


def decode(u, v, d, s, K_crop):
    """Eq. 5: crop-frame joints ``[B, J, 3]`` from (u, v) px, relative depth d (mm), scale s (mm/px)."""
    f = K_crop[:, 0, 0]
    d_abs = d + (s * f)[:, None]
    x = (u - K_crop[:, None, 0, 2]) / K_crop[:, None, 0, 0]
    y = (v - K_crop[:, None, 1, 2]) / K_crop[:, None, 1, 1]
    return torch.stack([x * d_abs, y * d_abs, d_abs], -1)


class AbsoluteFromImage(nn.Module):
    """Exported graph: (crop, K_crop, R) -> original-camera joints ``R^T P'`` (Eq. 5-6)."""

    def __init__(self, net: PersPoseNet):
        super().__init__()
        self.net = net

    def forward(self, image, K_crop, R):
        u, v, d, s = self.net(image, K_crop)
        P = decode(u, v, d, s, K_crop)
        return torch.matmul(P, R)           # row vectors: (R^T p)^T = p^T R


def loss_fn(pred, uvd_gt: torch.Tensor, s_gt: torch.Tensor, size: int) -> tuple[torch.Tensor, dict]:
    """Eq. 18 without the SMPL terms: ``L1(uvd) + 0.5 L1(s)``, each term in normalised units."""
    u, v, d, s = pred
    l_uv = (torch.stack([u, v], -1) - uvd_gt[..., :2]).abs().mean() / size
    l_d = (d - uvd_gt[..., 2]).abs().mean() / DEPTH_UNIT_MM
    l_s = (s - s_gt).abs().mean() / SCALE_UNIT
    total = (l_uv + l_d) + 0.5 * l_s
    return total, {"uv_px": float(l_uv.detach()) * size, "d_mm": float(l_d.detach()) * DEPTH_UNIT_MM,
                   "s": float(l_s.detach()) * SCALE_UNIT}


def config_dict(cfg: PersPoseConfig) -> dict:
    return asdict(cfg)
