"""Self-adaptation of AbsPoseLifter to unlabeled 2D (paper 004, Fig. 2, Sec. 3.2-3.7).

The shipped lifter is the generator. On a batch of *target* 2D keypoints (a user's videos,
no 3D) it predicts root-relative 3D poses; these are normalised (Sec. 3.6), turned by a
random rotation, reprojected to 2D by the reprojection network and judged, together
with their (w)KCS, by the discriminator (Fig. 4) against *real* 3D poses of the mocap
training subjects under the same random rotations and their true 2D projections.

Losses (Sec. 3.5): Wasserstein ``L_dis = p_fake - p_real`` (+ gradient penalty, WGAN-GP),
``L_gen = L_rep = -p_fake`` and ``L_angle`` (Eq. 12); the generator additionally keeps
the supervised Eq. 7 loss on freshly rendered mocap training views *every step*, so it
cannot drift from the supervised solution. Adam, lr 8e-5, betas (0, 0.9) for the
discriminator and reprojection network (Sec. 3.7); a smaller lr for the pretrained lifter.

``training="syn"``: the generator, reprojection network and discriminator are updated in
every iteration and the reprojection network learns from the discriminator (Sec. 3.4);
``"sep"``: the reprojection network is instead fitted separately with an MSE to the input
2D (Fig. 6a), the conventional scheme the paper compares against (Table 5).

Deviations from the paper, and why:

* the random rotation is uniform over all of SO(3), not only about the camera's y axis:
  user cameras look down at various angles, so the camera y axis is not the body's
  vertical and a y-rotation would leave the critic a tilt cue that has nothing to do with
  the pose; under SO(3) rotations the real and fake orientation distributions match;
* ``L_angle`` measures ``sin beta`` about the body's own up axis (pelvis -> thorax) rather
  than the camera's y axis, for the same reason (with a level camera the two agree);
* 2D-3D consistency with the *input*: the paper's generator predicts only depth, so its
  x, y are the input 2D by construction; AbsPoseLifter predicts all three coordinates, so
  that consistency becomes a loss (``reprojection_loss``, Huber, weight ``w_proj``): the
  perspective projection of the lifted pose must land on the input keypoints. Together
  with the discriminator's bone-length/angle prior this pins down the depths, i.e. how
  the body is tilted towards an unusual camera, which the rotation-invariant critic
  alone cannot see (``w_proj=0`` reproduces the paper's loss set; see notes/plausibility.md);
* the lifter's batch-norm statistics stay frozen (its layers run in eval mode; dropout is
  on): the target 2D is out of the training distribution by design, and letting it into
  the batch statistics shifts every output at once (a first try did: the supervised loss
  jumped 6x), which is drift, not adaptation.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engines.absposelifter.model import AbsPoseLifter
from engines.absposelifter.train import DEFAULT_ERROR_MODEL, make_batch
from engines.lifter import load_torch_lifter
from engines.noise import ErrorModel
from engines.plausibility.critic import Critic, CriticConfig, ReprojectionNet
from engines.plausibility.wkcs import normalize_pose
from engines.skeleton import J, NUM_JOINTS, ROOT

log = logging.getLogger(__name__)


class AdaptInputError(ValueError):
    """Unusable target keypoints or intrinsics for adaptation."""


@dataclass
class AdaptConfig:
    steps: int = 300
    warmup: int = 100              # discriminator/reprojection-only iterations before the generator moves
    batch: int = 64                # per part: supervised source, target 2D, real 3D
    lr_gen: float = 2e-5
    lr: float = 8e-5               # discriminator and reprojection network (Sec. 3.7)
    betas: tuple[float, float] = (0.0, 0.9)
    training: str = "syn"          # "syn" | "sep" | "sup-only"
    kcs: str = "wkcs"              # "wkcs" | "kcs"
    w_adv: float = 3.0             # weight of -p_fake against Eq. 7 (mm)
    w_angle: float = 3.0           # lambda of Eq. 13 (paper: 1 with L_gen unweighted), times w_adv/3 units
    gp: float = 10.0
    w_proj: float = 1000.0         # 2D consistency: perspective reprojection of the lifted pose vs the input 2D
    proj_delta: float = 0.02       # Huber knee, in units of the person's 2D size (bounding-box diagonal)
    critic_width: int = 256
    seed: int = 0
    max_seconds: float | None = None   # stop early (logged) when a wall-clock budget runs out

    def to_dict(self) -> dict:
        return asdict(self)


def random_rotations(n: int, gen: torch.Generator) -> torch.Tensor:
    """Uniform random rotations ``[n, 3, 3]`` (QR of Gaussian matrices, sign-fixed, det +1)."""
    A = torch.randn(n, 3, 3, generator=gen)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))[:, None, :]
    det = torch.linalg.det(Q)
    Q[:, :, 0] = Q[:, :, 0] * det[:, None]
    return Q


def project_norm(pose_norm: torch.Tensor) -> torch.Tensor:
    """Orthographic 2D of a normalised 3D pose, normalised again in 2D (Sec. 3.6)."""
    return normalize_pose(pose_norm[..., :2])[0]


def angle_loss(pose: torch.Tensor) -> torch.Tensor:
    """Eq. 12 with the body's up axis: ``max(0, -sin beta)``, ``sin beta = (v x w) . up / (|v| |w|)``.

    v = nose - neck (thorax), w = left - right shoulder; positive when the face is in front.
    """
    v = pose[:, J["nose"]] - pose[:, J["thorax"]]
    w = pose[:, J["left_shoulder"]] - pose[:, J["right_shoulder"]]
    up = pose[:, J["thorax"]] - pose[:, ROOT]
    up = up / up.norm(dim=-1, keepdim=True).clamp_min(1e-6)
    s = (torch.cross(v, w, dim=-1) * up).sum(-1) / (v.norm(dim=-1) * w.norm(dim=-1)).clamp_min(1e-6)
    return torch.relu(-s).mean()


def reprojection_loss(canon: torch.Tensor, rel: torch.Tensor, kp: torch.Tensor, K: torch.Tensor,
                      delta: float = 0.02) -> torch.Tensor:
    """Huber distance between the input 2D and the perspective projection of the lifted pose.

    The generator of paper 004 predicts only depth, so its x, y equal the input by
    construction; AbsPoseLifter predicts all three coordinates, so the same 2D-3D
    consistency is a loss here. Errors are in units of the person's 2D size.
    """
    f, c = K[:, [0, 1], [0, 1]], K[:, :2, 2]
    Rz = f[:, 0] * canon
    root_xy = (kp[:, ROOT] - c) * Rz[:, None] / f
    root = torch.cat([root_xy, Rz[:, None]], -1)
    P = root[:, None] + rel
    uv = P[..., :2] / P[..., 2:3].clamp_min(100.0) * f[:, None] + c[:, None]
    size = (kp.amax(1) - kp.amin(1)).norm(dim=-1).clamp_min(1.0)
    return torch.nn.functional.huber_loss((uv - kp) / size[:, None, None], torch.zeros_like(uv), delta=delta) / delta


def _train_mode(model: torch.nn.Module) -> None:
    """Dropout on, batch-norm statistics frozen (see the module docstring)."""
    model.train()
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()


def _check_target(kp: np.ndarray, K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    kp = np.asarray(kp, np.float32)
    K = np.asarray(K, np.float32)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2):
        raise AdaptInputError(f"target keypoints must have shape [N, {NUM_JOINTS}, 2], got {kp.shape}")
    if K.shape == (3, 3):
        K = np.broadcast_to(K, (len(kp), 3, 3)).copy()
    if K.shape != (len(kp), 3, 3):
        raise AdaptInputError(f"K must be [3, 3] or [N, 3, 3] matching {len(kp)} frames, got {K.shape}")
    ok = np.isfinite(kp).all((1, 2))
    if ok.sum() < 32:
        raise AdaptInputError(f"only {int(ok.sum())} frames with a complete person; adaptation needs at least 32")
    return kp[ok], K[ok]


def adapt(lifter: AbsPoseLifter, target_kp: np.ndarray, target_K: np.ndarray, real_poses_mm: np.ndarray,
          source_poses_mm: np.ndarray, cfg: AdaptConfig = AdaptConfig(),
          error_model: ErrorModel | None = None, progress=None) -> tuple[AbsPoseLifter, dict]:
    """Fine-tune ``lifter`` (in place) on target 2D; returns it (eval mode) and a training log.

    ``real_poses_mm`` are the discriminator's real 3D poses and ``source_poses_mm`` the
    supervised Eq. 7 poses (both: the mocap training subjects, any right-handed frame).
    """
    kp_t, K_t = _check_target(target_kp, target_K)
    if cfg.training not in ("syn", "sep", "sup-only"):
        raise ValueError(f"training must be syn, sep or sup-only, not {cfg.training!r}")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    em = error_model or ErrorModel.load(DEFAULT_ERROR_MODEL)
    kp_t, K_t = torch.from_numpy(kp_t), torch.from_numpy(K_t)
    real = torch.from_numpy(normalize_pose(np.asarray(real_poses_mm, np.float64))[0].astype(np.float32))
    adversarial = cfg.training != "sup-only"
    critic = Critic(CriticConfig(width=cfg.critic_width, use_2d=True, kcs=cfg.kcs))
    rep = ReprojectionNet(cfg.critic_width)
    opt_d = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_r = torch.optim.Adam(rep.parameters(), lr=cfg.lr, betas=cfg.betas)
    opt_g = torch.optim.Adam(lifter.parameters(), lr=cfg.lr_gen, betas=(0.9, 0.999))
    B = cfg.batch
    hist: list[dict] = []
    chunk, src = 16, None
    t0 = time.time()
    total = cfg.steps + (cfg.warmup if adversarial else 0)
    for it in range(total):
        warm = it < cfg.warmup and adversarial
        if not warm and (src is None or (it % chunk) == 0):
            idx = rng.integers(0, len(source_poses_mm), B * chunk)
            src = make_batch(source_poses_mm[idx], rng, em)
        ti = torch.randint(len(kp_t), (B,), generator=gen)
        kt, Kt = kp_t[ti], K_t[ti]
        # -- generator forward: source (supervised) and target in one batch-norm batch
        if warm:
            lifter.eval()
            with torch.no_grad():
                _, rel_t = lifter(kt, Kt[:, :2, 2], Kt[:, 0, 0])
        else:
            _train_mode(lifter)
            s = slice((it % chunk) * B, (it % chunk + 1) * B)
            kp_s, K_s, j_s = src[0][s], src[1][s], src[2][s]
            canon, rel = lifter(torch.cat([kp_s, kt]), torch.cat([K_s[:, :2, 2], Kt[:, :2, 2]]),
                                torch.cat([K_s[:, 0, 0], Kt[:, 0, 0]]))
            rel_t, canon_t = rel[B:], canon[B:]
            target_canon = j_s[:, ROOT, 2] / K_s[:, 0, 0]
            target_rel = j_s - j_s[:, ROOT:ROOT + 1]
            l_sup = (canon[:B] - target_canon).abs().mean() * 1000.0 + \
                (rel[:B] - target_rel).abs().mean() * (NUM_JOINTS / (NUM_JOINTS - 1))
        rec = {"it": it}
        if adversarial:
            y_fake = normalize_pose(rel_t)[0]
            R_f = random_rotations(B, gen)
            y_rot = y_fake @ R_f.transpose(1, 2)
            y_real = real[torch.randint(len(real), (B,), generator=gen)] @ random_rotations(B, gen).transpose(1, 2)
            x_real = project_norm(y_real)
            # -- discriminator step (Eq. 9 + gradient penalty)
            yf, xf = y_rot.detach(), rep(y_rot.detach()).detach()
            p_real, p_fake = critic(y_real, x_real), critic(yf, xf)
            a = torch.rand(B, 1, 1, generator=gen)
            yi = (a * y_real + (1 - a) * yf).requires_grad_(True)
            xi = (a * x_real + (1 - a) * xf).requires_grad_(True)
            g = torch.autograd.grad(critic(yi, xi).sum(), [yi, xi], create_graph=True)
            gnorm = torch.sqrt(sum((gg.flatten(1) ** 2).sum(1) for gg in g) + 1e-12)
            l_dis = p_fake.mean() - p_real.mean() + cfg.gp * ((gnorm - 1) ** 2).mean()
            opt_d.zero_grad(set_to_none=True)
            l_dis.backward()
            opt_d.step()
            rec["w_dist"] = float((p_real.mean() - p_fake.mean()).detach())
            # -- reprojection network and generator (Eq. 10, 13)
            x_rep = rep(y_rot if not warm else y_rot.detach())
            p = critic(y_rot, x_rep).mean()
            opt_r.zero_grad(set_to_none=True)
            opt_g.zero_grad(set_to_none=True)
            if warm:
                l_rep = -p
                l_rep.backward()
            else:
                l_ang = angle_loss(rel_t)
                l_gen = l_sup + cfg.w_adv * (-p) + cfg.w_angle * l_ang
                if cfg.w_proj:
                    l_proj = reprojection_loss(canon_t, rel_t, kt, Kt, cfg.proj_delta)
                    l_gen = l_gen + cfg.w_proj * l_proj
                    rec["l_proj"] = float(l_proj.detach())
                l_gen.backward()
                opt_g.step()
                rec.update(l_sup=float(l_sup.detach()), l_angle=float(l_ang.detach()))
            if cfg.training == "sep":   # Fig. 6a: the reprojection net fits the input 2D instead
                opt_r.zero_grad(set_to_none=True)
                x_in = normalize_pose(kt)[0]
                l_mse = ((rep(y_fake.detach()) - x_in) ** 2).mean()
                l_mse.backward()
                rec["l_rep_mse"] = float(l_mse.detach())
            opt_r.step()
        else:
            opt_g.zero_grad(set_to_none=True)
            loss = l_sup
            if cfg.w_proj:   # the "proj-only" control: reprojection consistency without the GAN
                l_proj = reprojection_loss(canon_t, rel_t, kt, Kt, cfg.proj_delta)
                loss = loss + cfg.w_proj * l_proj
                rec["l_proj"] = float(l_proj.detach())
            loss.backward()
            opt_g.step()
            rec["l_sup"] = float(l_sup.detach())
        hist.append(rec)
        if it % 50 == 0 or it == total - 1:
            log.info("adapt %s it %d/%d %s %.0fs", cfg.training, it, total,
                     " ".join(f"{k}={v:.3f}" for k, v in rec.items() if k != "it"), time.time() - t0)
        if progress:
            progress(it + 1, total)
        if cfg.max_seconds is not None and time.time() - t0 > cfg.max_seconds and it + 1 < total:
            log.warning("adaptation stopped after %d of %d iterations: the %.0f s budget ran out",
                        it + 1, total, cfg.max_seconds)
            break
    lifter.eval()
    return lifter, {"config": cfg.to_dict(), "seconds": round(time.time() - t0, 1), "history": hist[-20:],
                    "iterations": len(hist), "target_frames": len(kp_t)}


def save_adapted(lifter: AbsPoseLifter, base_weights: Path, out: Path, meta: dict) -> Path:
    """Write weights in the shipped format, loadable by ``engines.lifter.load_lifter(weights=out)``."""
    from mocap_app.clip import atomic_write_bytes
    import io

    base = torch.load(base_weights, map_location="cpu", weights_only=False)
    ckpt = {"config": base["config"], "state_dict": lifter.state_dict(),
            "meta": {**base.get("meta", {}), "adapted": meta, "adapted_from": str(base_weights)}}
    buf = io.BytesIO()
    torch.save(ckpt, buf)
    return atomic_write_bytes(out, buf.getvalue())


def load_generator(weights: Path) -> AbsPoseLifter:
    """A fresh trainable copy of shipped lifter weights."""
    return load_torch_lifter(weights)
