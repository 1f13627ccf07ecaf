"""Adversarial 2D-3D consistency adaptation: losses, networks, a short real run, weights I/O."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from engines.absposelifter.model import AbsPoseLifter, LifterConfig
from engines.data import load_split, view_poses
from engines.plausibility.adapt import (AdaptConfig, AdaptInputError, adapt, angle_loss, project_norm,
                                        random_rotations, save_adapted)
from engines.plausibility.critic import Critic, CriticConfig, ReprojectionNet
from engines.plausibility.evaluate import SHIFTED
from engines.plausibility.wkcs import normalize_pose


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread: on a loaded 2-core machine two threads spin against each other."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def train_poses() -> np.ndarray:
    return load_split("train")["joints_mm"][::20]


def test_random_rotations_are_proper():
    R = random_rotations(64, torch.Generator().manual_seed(0))
    I = R @ R.transpose(1, 2)
    assert torch.allclose(I, torch.eye(3).expand(64, 3, 3), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(64), atol=1e-5)


def test_angle_loss_zero_on_real_poses_positive_on_reversed_depth(train_poses):
    Y = torch.from_numpy(train_poses.astype(np.float32))
    assert angle_loss(Y) < 0.01
    flipped = Y * torch.tensor([1.0, 1.0, -1.0])      # depth reversed: the face points backwards
    assert angle_loss(flipped) > 0.2
    # camera frame (Y down) gives the same as world (Y up): the up axis is the body's own
    cam = Y * torch.tensor([-1.0, -1.0, 1.0])           # 180 deg about z
    assert torch.isclose(angle_loss(cam), angle_loss(Y), atol=1e-6)


def test_critic_inputs_and_projection_shapes(train_poses):
    y = torch.from_numpy(normalize_pose(train_poses[:8].astype(np.float32))[0])
    x = project_norm(y)
    assert x.shape == (8, 17, 2)
    assert torch.allclose(x.flatten(1).norm(dim=1) > 0, torch.ones(8, dtype=torch.bool))
    for kind in ("wkcs", "kcs"):
        assert Critic(CriticConfig(width=32, kcs=kind))(y, x).shape == (8,)
    assert ReprojectionNet(32)(y).shape == (8, 17, 2)
    with pytest.raises(ValueError, match="2D input"):
        Critic(CriticConfig(width=32))(y)


def _target(n=64, seed=0):
    val = load_split("val")["joints_mm"][:n]
    v = view_poses(val, np.random.default_rng(seed), SHIFTED)
    return v.keypoints_px, v.K


@pytest.mark.parametrize("training", ["syn", "sep"])
def test_short_adaptation_moves_generator_and_stays_finite(training, train_poses):
    torch.manual_seed(0)
    lifter = AbsPoseLifter(LifterConfig(width=64)).eval()
    before = {k: v.clone() for k, v in lifter.state_dict().items()}
    kp, K = _target()
    cfg = AdaptConfig(steps=3, warmup=2, batch=16, critic_width=32, training=training)
    out, info = adapt(lifter, kp, K, train_poses, train_poses, cfg)
    assert info["iterations"] == 5 and not out.training
    assert "w_dist" in info["history"][-1] and np.isfinite(info["history"][-1]["l_sup"])
    if training == "sep":
        assert "l_rep_mse" in info["history"][-1]
    changed = [k for k, v in out.state_dict().items() if v.dtype.is_floating_point and not torch.equal(v, before[k])]
    assert any(k.startswith("out.") for k in changed)
    with torch.no_grad():
        _, rel = out(torch.from_numpy(kp), torch.from_numpy(K[:, :2, 2]))
    assert torch.isfinite(rel).all()


def test_too_few_target_frames_is_a_clear_error(train_poses):
    kp, K = _target(8)
    with pytest.raises(AdaptInputError, match="at least 32"):
        adapt(AbsPoseLifter(LifterConfig(width=32)), kp, K, train_poses, train_poses, AdaptConfig(steps=1))
    with pytest.raises(AdaptInputError, match=r"\[N, 17, 2\]"):
        adapt(AbsPoseLifter(LifterConfig(width=32)), kp[:, :5], K, train_poses, train_poses)


def test_saved_weights_load_with_load_lifter(tmp_path, train_poses):
    from engines.lifter import load_lifter

    lifter = AbsPoseLifter(LifterConfig(width=64)).eval()
    base = tmp_path / "base.pt"
    torch.save({"config": lifter.cfg.to_dict(), "state_dict": lifter.state_dict(), "meta": {"steps": 1}}, base)
    kp, K = _target()
    out, info = adapt(lifter, kp, K, train_poses, train_poses,
                      AdaptConfig(steps=1, warmup=1, batch=16, critic_width=32))
    path = save_adapted(out, base, tmp_path / "adapted.pt", {"iterations": info["iterations"]})
    lf = load_lifter("absposelifter", backend="torch", weights=path, flip_test=False)   # one pass, as `out` below
    joints = lf.lift(kp[:4], None, K[:4])
    assert joints.shape == (4, 17, 3) and np.isfinite(joints).all()
    with torch.no_grad():
        ref = out(torch.from_numpy(kp[:4]), torch.from_numpy(K[:4, :2, 2]))[1].numpy()
    np.testing.assert_allclose(joints - joints[:, :1], ref, atol=1e-3)
    meta = torch.load(path, weights_only=False)["meta"]
    assert meta["adapted"]["iterations"] == 2 and meta["steps"] == 1


def test_reprojection_loss_zero_for_consistent_pose_positive_otherwise():
    from engines.plausibility.adapt import reprojection_loss
    from engines.skeleton import ROOT

    val = load_split("val")["joints_mm"][:32]
    v = view_poses(val, np.random.default_rng(0), SHIFTED)
    P = torch.from_numpy(v.joints_cam_mm)
    K = torch.from_numpy(v.K)
    kp = torch.from_numpy(v.keypoints_px)
    canon = P[:, ROOT, 2] / K[:, 0, 0]
    rel = P - P[:, ROOT:ROOT + 1]
    exact = reprojection_loss(canon, rel, kp, K)
    assert exact < 1e-4
    moved = rel.clone()
    moved[:, :, 0] += 100.0                       # 10 cm sideways: no longer projects onto the 2D
    moved[:, ROOT] = 0
    # ~2-5 % of the person's 2D size on x (half the coordinates): Huber / delta ~ 0.01-0.03
    assert reprojection_loss(canon, moved, kp, K) > max(0.008, 100 * exact)
