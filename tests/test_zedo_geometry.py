"""ZeDO's geometry: closed-form translation (vs scipy), projection onto rays, initial pose optimiser, SDE."""
import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.spatial.transform import Rotation

from engines.camera import project
from engines.skeleton import NUM_JOINTS, ROOT
from engines.zedo.prior import SubVPSDE
from engines.zedo.refine import (ZedoConfig, initial_pose_optimizer, project_to_rays, reprojection_error_px,
                                 solve_translation, unit_rays)


def random_case(rng, n=8, noise_px=0.0):
    P = rng.normal(0, 300, (n, NUM_JOINTS, 3))
    P -= P[:, ROOT:ROOT + 1]
    T = np.stack([rng.uniform(-800, 800, n), rng.uniform(-500, 500, n), rng.uniform(2000, 7000, n)], -1)
    K = np.zeros((n, 3, 3))
    K[:, 0, 0] = rng.uniform(500, 2000, n); K[:, 1, 1] = K[:, 0, 0] * rng.uniform(0.98, 1.02, n)
    K[:, 0, 2] = rng.uniform(300, 900, n); K[:, 1, 2] = rng.uniform(200, 600, n); K[:, 2, 2] = 1
    kp = project(P + T[:, None], K) + rng.normal(0, noise_px, (n, NUM_JOINTS, 2))
    conf = rng.uniform(0.2, 1.0, (n, NUM_JOINTS))
    return P, T, K, kp, conf


def test_translation_exact_without_noise():
    P, T, K, kp, conf = random_case(np.random.default_rng(0))
    np.testing.assert_allclose(solve_translation(P, kp, K, conf), T, atol=1e-6 * 1e3)


@pytest.mark.parametrize("seed", range(5))
def test_translation_matches_scipy_on_noisy_cases(seed):
    """Closed form + 2 Gauss-Newton steps = the minimiser of Eq. 6's confidence-weighted pixel error."""
    rng = np.random.default_rng(seed)
    P, T, K, kp, conf = random_case(rng, n=6, noise_px=8.0)
    T_cf = solve_translation(P, kp, K, conf)
    for b in range(len(P)):
        def resid(t):
            return (conf[b, :, None] * (project(P[b] + t, K[b]) - kp[b])).ravel()
        sol = least_squares(resid, T[b] + rng.normal(0, 200, 3), xtol=1e-12, ftol=1e-12, gtol=1e-12)
        cost_cf, cost_opt = (resid(T_cf[b]) ** 2).sum(), (resid(sol.x) ** 2).sum()
        assert cost_cf <= cost_opt * (1 + 1e-6) + 1e-9
        np.testing.assert_allclose(T_cf[b], sol.x, atol=0.5)   # mm at 2-7 m (the cost is flat along depth)


def test_translation_algebraic_solution_is_least_squares():
    """Without Gauss-Newton it is the weighted linear least-squares solution of the derivation (lstsq)."""
    rng = np.random.default_rng(3)
    P, T, K, kp, conf = random_case(rng, n=3, noise_px=5.0)
    T0 = solve_translation(P, kp, K, conf, gauss_newton=0)
    q = np.einsum("bij,bkj->bki", np.linalg.inv(K), np.concatenate([kp, np.ones(kp.shape[:2] + (1,))], -1))
    a, bb = q[..., 0] / q[..., 2], q[..., 1] / q[..., 2]
    for b in range(3):
        rows, rhs = [], []
        for j in range(NUM_JOINTS):
            rows += [conf[b, j] * K[b, 0, 0] * np.array([1, 0, -a[b, j]]), conf[b, j] * K[b, 1, 1] * np.array([0, 1, -bb[b, j]])]
            rhs += [conf[b, j] * K[b, 0, 0] * (a[b, j] * P[b, j, 2] - P[b, j, 0]),
                    conf[b, j] * K[b, 1, 1] * (bb[b, j] * P[b, j, 2] - P[b, j, 1])]
        np.testing.assert_allclose(T0[b], np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0], atol=1e-6)


def test_projection_onto_rays_is_on_ray_and_closest():
    rng = np.random.default_rng(1)
    P, T, K, kp, conf = random_case(rng, n=4)
    Pn = P + rng.normal(0, 80, P.shape)
    rhat = unit_rays(kp, K)
    Pt = project_to_rays(Pn, T, rhat)
    X = Pt + T[:, None]
    assert np.abs(np.cross(X, rhat)).max() < 1e-6                  # on the ray
    assert np.abs(((Pn - Pt) * rhat).sum(-1)).max() < 1e-6           # the move is perpendicular to the ray
    np.testing.assert_allclose(project(X, K), kp, atol=1e-6)         # zero reprojection error
    assert reprojection_error_px(Pt, T, kp, K, conf).max() < 1e-6


def test_initial_pose_optimizer_recovers_heading_and_distance():
    rng = np.random.default_rng(2)
    from engines.zedo.hypotheses import canonical_camera_poses
    from engines.data import load_split
    poses = canonical_camera_poses(load_split("val")["joints_mm"][rng.choice(6000, 6)].astype(float))
    yaw = rng.uniform(0, 2 * np.pi, 6)
    R = Rotation.from_rotvec(yaw[:, None] * np.array([0.0, -1.0, 0.0])).as_matrix()
    Pt = np.einsum("bij,bkj->bki", R, poses)
    T = np.stack([rng.uniform(-500, 500, 6), rng.uniform(-300, 300, 6), rng.uniform(2500, 6000, 6)], -1)
    K = np.broadcast_to(np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]]), (6, 3, 3)).copy()
    kp = project(Pt + T[:, None], K)
    P0, T0 = initial_pose_optimizer(poses, kp, K, np.ones((6, NUM_JOINTS)), ZedoConfig())
    assert np.linalg.norm(P0 - Pt, axis=-1).mean() < 15.0     # heading found to ~1 deg
    np.testing.assert_allclose(T0, T, rtol=0.02, atol=30)
    # without rotation the pose keeps its heading; the distance is still bounded and found
    P1, T1 = initial_pose_optimizer(poses, kp, K, np.ones((6, NUM_JOINTS)), ZedoConfig(depth_max_mm=2000.0),
                                    rotate=False)
    np.testing.assert_allclose(P1, poses, atol=1e-9)
    assert (np.linalg.norm(T1, axis=-1) <= 2000.0 + 1e-6).all()


def test_initial_pose_optimizer_turns_about_a_tilted_vertical_per_frame():
    """A pitched, rolled camera: given each frame's up direction, the heading is still recovered."""
    rng = np.random.default_rng(5)
    from engines.zedo.hypotheses import canonical_camera_poses
    from engines.data import load_split
    from engines.zedo.refine import UP_CAM, up_alignment
    poses = canonical_camera_poses(load_split("val")["joints_mm"][rng.choice(6000, 6)].astype(float))
    tilt = Rotation.from_euler("xz", np.stack([rng.uniform(-30, 20, 6), rng.uniform(-10, 10, 6)], -1),
                               degrees=True).as_matrix()
    up = np.einsum("bij,j->bi", tilt, UP_CAM)
    np.testing.assert_allclose(np.einsum("bij,j->bi", up_alignment(up), UP_CAM), up, atol=1e-12)
    yaw = rng.uniform(0, 2 * np.pi, 6)
    Ryaw = Rotation.from_rotvec(yaw[:, None] * up).as_matrix()
    Pt = np.einsum("bij,bjk,bmk->bmi", Ryaw, up_alignment(up), poses)      # level pose, tilted, then turned
    T = np.stack([rng.uniform(-500, 500, 6), rng.uniform(-300, 300, 6), rng.uniform(2500, 6000, 6)], -1)
    K = np.broadcast_to(np.array([[1000.0, 0, 640], [0, 1000.0, 360], [0, 0, 1]]), (6, 3, 3)).copy()
    kp = project(Pt + T[:, None], K)
    P0, T0 = initial_pose_optimizer(poses, kp, K, np.ones((6, NUM_JOINTS)), ZedoConfig(), up_cam=up)
    assert np.linalg.norm(P0 - Pt, axis=-1).mean() < 15.0
    np.testing.assert_allclose(T0, T, rtol=0.02, atol=30)
    # assuming a level camera instead leaves the tilt in the pose
    P1, _ = initial_pose_optimizer(poses, kp, K, np.ones((6, NUM_JOINTS)), ZedoConfig())
    assert np.linalg.norm(P1 - Pt, axis=-1).mean() > np.linalg.norm(P0 - Pt, axis=-1).mean() + 10.0


def test_flatten_along_ray_removes_only_the_depth_along_the_pelvis_ray():
    from engines.zedo.refine import flatten_along_ray
    rng = np.random.default_rng(7)
    P = rng.normal(0, 300, (4, NUM_JOINTS, 3)); P[:, 0] = 0
    r = rng.normal(size=(4, 3)); r /= np.linalg.norm(r, axis=-1, keepdims=True)
    F = flatten_along_ray(P, r, 0.0)
    np.testing.assert_allclose((F * r[:, None]).sum(-1), 0, atol=1e-9)           # no offset along the ray
    perp = P - (P * r[:, None]).sum(-1, keepdims=True) * r[:, None]
    np.testing.assert_allclose(F, perp, atol=1e-9)                                 # the rest untouched
    np.testing.assert_allclose(flatten_along_ray(P, r, 1.0), P)                    # s = 1: the paper's start
    H = flatten_along_ray(P, r, 0.5)
    np.testing.assert_allclose((H * r[:, None]).sum(-1), 0.5 * (P * r[:, None]).sum(-1), atol=1e-9)


def test_subvp_closed_forms_solve_the_sde_moment_equations():
    """Eq. 1's mean and std must satisfy dm/dt = -beta m / 2 and dVar/dt = -beta Var + g^2."""
    sde = SubVPSDE()
    t = np.linspace(0.01, 0.9, 50)
    h = 1e-6
    m = lambda s: sde.alpha(s)
    var = lambda s: sde.sigma(s) ** 2
    np.testing.assert_allclose((m(t + h) - m(t - h)) / (2 * h), -0.5 * sde.beta(t) * m(t), rtol=1e-5)
    np.testing.assert_allclose((var(t + h) - var(t - h)) / (2 * h), -sde.beta(t) * var(t) + sde.g2(t), rtol=1e-4)
    assert abs(sde.sigma(1.0) - 1.0) < 1e-3 and sde.alpha(1.0) < 0.01
