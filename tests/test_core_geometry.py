"""Skeleton, camera model, metrics: checked against independent computations."""
import math

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

import engines
from engines.camera import CameraIntrinsics, InvalidIntrinsicsError, back_project, crop_intrinsics, project, rays
from engines.metrics import mpjpe, mrpe, pa_mpjpe
from engines.skeleton import BONES, FLIP_PERM, J, JOINT_NAMES, PARENTS, mediapipe_to_joints


def test_joint_set_is_h36m_order():
    assert engines.JOINT_NAMES == JOINT_NAMES
    assert JOINT_NAMES[:4] == ("pelvis", "right_hip", "right_knee", "right_ankle")
    assert JOINT_NAMES[-3:] == ("right_shoulder", "right_elbow", "right_wrist")
    assert len(BONES) == 16 and PARENTS[0] == -1
    # flipping twice is the identity and maps left <-> right names
    assert [FLIP_PERM[i] for i in FLIP_PERM] == list(range(17))
    for i, k in enumerate(FLIP_PERM):
        assert JOINT_NAMES[i].replace("left", "X").replace("right", "left").replace("X", "right") == JOINT_NAMES[k]


def test_mediapipe_mapping_midpoints_and_confidence():
    lm = np.random.default_rng(0).uniform(0, 100, (33, 3))
    out = mediapipe_to_joints(lm)
    np.testing.assert_allclose(out[J["pelvis"]], (lm[23] + lm[24]) / 2)
    np.testing.assert_allclose(out[J["thorax"]], (lm[11] + lm[12]) / 2)
    np.testing.assert_allclose(out[J["spine"]], (out[J["pelvis"]] + out[J["thorax"]]) / 2)
    np.testing.assert_allclose(out[J["head"]], (lm[7] + lm[8]) / 2)
    np.testing.assert_allclose(out[J["left_wrist"]], lm[15])
    np.testing.assert_allclose(out[J["right_ankle"]], lm[28])


def test_intrinsics_constructors():
    k = CameraIntrinsics.from_fov(90.0, 1920, 1080)
    assert k.fx_px == pytest.approx(959.5 + 0.5, rel=1e-9)
    assert k.fov_deg[0] == pytest.approx(90.0)
    # 35 mm-equivalent 26 mm on a 4:3 12 MP sensor, matched on the diagonal
    k35 = CameraIntrinsics.from_35mm(26.0, 4032, 3024)
    assert k35.fx_px == pytest.approx(26.0 * math.hypot(4032, 3024) / math.hypot(36, 24))
    d = k.to_dict()
    assert CameraIntrinsics.from_dict(d) == k


@pytest.mark.parametrize("f", [0.0, -500.0, float("nan"), float("inf"), 1.0, 1e9])
def test_absurd_focal_rejected_with_message(f):
    with pytest.raises(InvalidIntrinsicsError, match="focal length"):
        CameraIntrinsics.from_focal(f, 640, 480)


def test_project_back_project_roundtrip_and_batched_K():
    rng = np.random.default_rng(1)
    P = rng.uniform([-1000, -1000, 1500], [1000, 1000, 8000], (5, 17, 3))
    K = np.stack([CameraIntrinsics.from_focal(f, 1280, 720).K for f in (500, 800, 1000, 1500, 2500)])
    uv = project(P, K)
    # independent: OpenCV's projectPoints
    import cv2
    for i in range(5):
        ref, _ = cv2.projectPoints(P[i], np.zeros(3), np.zeros(3), K[i], None)
        np.testing.assert_allclose(uv[i], ref[:, 0], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(back_project(uv, P[..., 2], K), P, rtol=1e-9)
    np.testing.assert_allclose(rays(uv, K)[..., 2], 1.0)


def test_crop_intrinsics_maps_pixels_into_the_crop():
    K = CameraIntrinsics.from_focal(1000, 1920, 1080).K
    P = np.array([[[120.0, -300.0, 3000.0]]])
    box = (800.0, 200.0, 400.0, 400.0)
    Kc = crop_intrinsics(K, box, (256, 256))
    uv, uvc = project(P, K)[0, 0], project(P, Kc)[0, 0]
    np.testing.assert_allclose(uvc, (uv - box[:2]) * 256 / 400.0)


def test_metrics_invariances():
    rng = np.random.default_rng(2)
    gt = rng.normal(0, 300, (4, 17, 3)) + np.array([0, 0, 4000])
    R = Rotation.random(4, random_state=3).as_matrix()
    moved = 1.3 * np.einsum("nij,nkj->nki", R, gt) + 55.0
    assert pa_mpjpe(moved, gt).max() < 1e-6          # similarity transform removed
    assert mpjpe(gt + 100.0, gt).max() < 1e-9         # root-relative
    np.testing.assert_allclose(mrpe(gt + [30.0, 40.0, 0.0], gt), 50.0)
    noisy = gt + rng.normal(0, 20, gt.shape)
    assert 0 < pa_mpjpe(noisy, gt).mean() <= mpjpe(noisy, gt).mean()
