"""wKCS (paper 004, Eq. 1-6) on hand-computed cases and on the 17-joint skeleton."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engines.plausibility import wkcs as W
from engines.skeleton import BONES, J, NUM_JOINTS, bone_lengths

# a 5-joint chain 0-1-2-3-4 with bones (0,1), (1,2), (2,3), (3,4)
CHAIN = ((0, 1), (1, 2), (2, 3), (3, 4))
P = np.array([[0, 0, 0], [1, 0, 0], [2, 2, 0], [3, 2, 1], [3, 2, 4]], float)


def test_incidence_matrix_gives_bones_as_YC():
    C = W.incidence_matrix(CHAIN, 5)
    B = P.T @ C                                 # Eq. 3: B = Y C, Y is [3, J]
    np.testing.assert_allclose(B.T, [[1, 0, 0], [1, 2, 0], [1, 0, 1], [0, 0, 3]])


def test_chain_distances_and_weights_by_hand():
    d = W.bone_distances(CHAIN)
    np.testing.assert_array_equal(d, [[0, 1, 2, 3], [1, 0, 1, 2], [2, 1, 0, 1], [3, 2, 1, 0]])
    w = W.kcs_weights(d)
    t1, t2 = math.tanh(1.0), math.tanh(0.5)     # d = 2 -> tanh(1/1), d = 3 -> tanh(1/2)
    np.testing.assert_allclose(w, [[1, 1, t1, t2], [1, 1, 1, t1], [t1, 1, 1, 1], [t2, t1, 1, 1]])


def test_chain_kcs_and_wkcs_by_hand():
    B = np.array([[1, 0, 0], [1, 2, 0], [1, 0, 1], [0, 0, 3]], float)
    kcs = B @ B.T
    # dot products computed by hand
    np.testing.assert_allclose(kcs, [[1, 1, 1, 0], [1, 5, 1, 0], [1, 1, 2, 3], [0, 0, 3, 9]])
    w = W.kcs_weights(W.bone_distances(CHAIN))
    expected = np.array([[1, 1, math.tanh(1), 0], [1, 5, 1, 0], [math.tanh(1), 1, 2, 3], [0, 0, 3, 9]])
    np.testing.assert_allclose(w * kcs, expected)


def test_fig5_distances_from_right_hip_bone():
    d = W.bone_distances()
    k = BONES.index((J["pelvis"], J["right_hip"]))
    assert d[k, k] == 0
    assert (d[k] == 1).sum() == 3                      # right thigh, left hip, lower spine
    far = [BONES[i][1] for i in np.flatnonzero(d[k] == 5)]
    assert sorted(far) == sorted([J["left_wrist"], J["right_wrist"]])   # the two forearms


def _random_poses(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(0, 300, (n, NUM_JOINTS, 3))


def test_17_joint_wkcs_symmetric_psd_and_bone_lengths_on_diagonal():
    Y = _random_poses()
    K = W.kcs(Y)
    Kw = W.wkcs(Y)
    assert K.shape == Kw.shape == (8, len(BONES), len(BONES))
    np.testing.assert_allclose(K, np.swapaxes(K, -1, -2))
    np.testing.assert_allclose(Kw, np.swapaxes(Kw, -1, -2))
    assert np.linalg.eigvalsh(K).min() > -1e-6 * np.abs(K).max()          # a Gram matrix
    np.testing.assert_allclose(np.diagonal(Kw, axis1=-2, axis2=-1), bone_lengths(Y) ** 2, rtol=1e-10)
    # the weights shrink off-diagonal terms of distant bones only
    w = W.default_weights()
    assert (np.diag(w) == 1).all() and (w > 0).all() and (w <= 1).all()
    assert not np.allclose(K, Kw)


def test_wkcs_rotation_invariant_and_torch_matches_numpy():
    from scipy.spatial.transform import Rotation
    Y = _random_poses()
    R = Rotation.random(random_state=1).as_matrix()
    np.testing.assert_allclose(W.wkcs(Y @ R.T), W.wkcs(Y), atol=1e-6)
    t = W.wkcs(torch.from_numpy(Y))
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), W.wkcs(Y), rtol=1e-10)
    assert W.upper_triangle(t).shape == (8, len(BONES) * (len(BONES) + 1) // 2)


def test_normalize_pose_sec_3_6():
    Y = _random_poses() + 1000.0
    n, s = W.normalize_pose(Y)
    assert np.allclose(n[:, 0], 0)
    dist = np.linalg.norm(n[:, 1:], axis=-1).mean(-1)
    np.testing.assert_allclose(dist, 1.0)
    np.testing.assert_allclose(n * s[:, None, None], Y - Y[:, :1])


def test_bad_shape_raises_clear_error():
    with pytest.raises(W.PoseShapeError, match=r"\[\.\.\., 17, 3\]"):
        W.kcs(np.zeros((4, 16, 3)))
