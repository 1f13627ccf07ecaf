"""PersPose geometry: Perspective Rotation (Eq. 12-17) and Perspective Encoding (Eq. 7-9)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engines.camera import project
from engines.perspose.geometry import (PerspectiveError, apply_homography, crop_geometry, pe_map, person_crop,
                                       pr_homography, pr_rotation)
from engines.perspose.model import pe_grid

K = np.array([[900.0, 0, 640.0], [0, 900.0, 360.0], [0, 0, 1]])


@pytest.fixture
def pose():
    rng = np.random.default_rng(3)
    return rng.normal(size=(17, 3)) * [250, 450, 150] + [1400, -300, 3500]   # off-centre, right/up


def test_pr_rotation_brings_box_centre_onto_the_optical_axis():
    for c in ([1200.0, 100.0], [30.0, 700.0], [640.0, 360.0], [900.0, 360.0]):
        R = pr_rotation(K, c)
        assert np.allclose(R @ R.T, np.eye(3), atol=1e-12) and np.isclose(np.linalg.det(R), 1.0)
        xc = np.linalg.solve(K, [c[0], c[1], 1.0])                       # Eq. 12
        r = R @ xc
        assert np.allclose(r[:2], 0, atol=1e-9) and r[2] > 0
        assert np.isclose(r[2], np.linalg.norm(xc))                     # lands on (0, 0, d), d = |x_c|
        phi = np.degrees(np.arccos(xc[2] / np.linalg.norm(xc)))        # Eq. 14
        assert np.isclose(np.degrees(np.arccos(np.clip(R[2, 2], -1, 1))), phi, atol=1e-6)
        axis = np.cross(xc, [0, 0, 1])                                  # Eq. 13: axis is in the x-y plane
        rv = cv2.Rodrigues(R)[0].ravel()
        if np.linalg.norm(axis) > 0:
            assert np.allclose(rv / np.linalg.norm(rv), axis / np.linalg.norm(axis), atol=1e-9)


def test_warp_moves_projections_where_the_rotated_pose_projects(pose):
    kp = project(pose, K)
    g = person_crop(K, kp, 128, rotate=True)
    # Eq. 16-17: projecting R P equals warping the projection of P with K R K^-1
    assert np.allclose(project(pose @ g.R.T, K), apply_homography(pr_homography(K, g.R), kp), atol=1e-6)
    # the crop camera sees the rotated pose where M sends the original pixels
    assert np.allclose(project(g.to_crop_frame(pose), g.K_crop), apply_homography(g.M, kp), atol=1e-6)
    # the principal point of the PR crop is the crop centre, and the box centre goes there
    assert np.allclose(g.K_crop[:2, 2], 63.5)
    c = (kp.min(0) + kp.max(0)) / 2
    assert np.allclose(apply_homography(g.M, c[None])[0], 63.5, atol=1e-6)
    # PR followed by R^T (Eq. 6) returns the original pose
    assert np.allclose(g.to_original(g.to_crop_frame(pose)), pose, atol=1e-9)
    # the person fills the crop (box x 1.25): all joints inside, spanning most of it
    uv = apply_homography(g.M, kp)
    assert (uv > 0).all() and (uv < 127).all() and np.ptp(uv, 0).max() > 80


def assert_dot_lands_where_projected(pose, K_img, image_wh, size, radius_px, j=13):
    """Draw a dot at joint ``j``'s projection in a full frame, warp it with cv2: it must land at K_crop R P."""
    img = np.zeros((image_wh[1], image_wh[0], 3), np.uint8)
    kp = project(pose, K_img)
    cv2.circle(img, tuple(int(round(v * 16)) for v in kp[j]), radius_px * 16, (255, 255, 255), -1, cv2.LINE_AA, 4)
    for rotate in (False, True):
        g = person_crop(K_img, kp, size, rotate=rotate)
        crop = g.warp(img)[..., 0].astype(float)
        ys, xs = np.mgrid[:size, :size]
        centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
        expected = project(g.to_crop_frame(pose[j:j + 1]), g.K_crop)[0]
        assert np.linalg.norm(centroid - expected) < 0.3, (rotate, centroid, expected)


def test_cv2_warp_of_a_real_image_matches_the_equations(pose):
    assert_dot_lands_where_projected(pose, K, (1280, 720), 128, radius_px=6)


def test_warp_of_a_large_person_is_antialiased_and_keeps_its_geometry(pose):
    """A 1-px checkerboard seen through a crop ~10x smaller than the box must come out as flat grey (like the
    anti-aliased training renders), not as aliasing noise; a dot still lands at K_crop R P."""
    K2 = np.array([[2000.0, 0, 960.0], [0, 2000.0, 540.0], [0, 0, 1]])      # long focal: a big person in px
    pose = pose + [-1200.0, 300.0, 1000.0]                                  # in the frame, 4.5 m away
    kp = project(pose, K2)
    yy, xx = np.mgrid[:1080, :1920]
    board = (((xx + yy) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    for rotate in (False, True):
        g = person_crop(K2, kp, 64, rotate=rotate)
        assert g.source_px_per_crop_px() > 8
        crop = g.warp(board)[16:48, 16:48, 0].astype(float)
        assert abs(crop.mean() - 127.5) < 10 and crop.std() < 10, (crop.mean(), crop.std())
    assert_dot_lands_where_projected(pose, K2, (1920, 1080), 64, radius_px=40)


def test_box_crop_without_pr_is_eq_3_4(pose):
    kp = project(pose, K)
    g = person_crop(K, kp, 64, rotate=False, scale=1.0)
    side = np.ptp(kp, 0).max()
    assert np.allclose(g.R, np.eye(3))
    assert np.isclose(g.K_crop[0, 0], K[0, 0] * 64 / side)               # f_crop = s f
    c = (kp.min(0) + kp.max(0)) / 2
    assert np.allclose(apply_homography(g.M, c[None])[0], 31.5)
    assert not np.allclose(g.K_crop[:2, 2], 31.5, atol=5)                  # off-centre principal point


def test_pe_map_is_each_pixels_ray_on_z1():
    Kc = crop_geometry(K, [1100.0, 200.0], 300.0, 64, rotate=False).K_crop
    m = pe_map(Kc, 64)
    for u, v in ((0, 0), (63, 10), (31, 45)):
        r = np.linalg.solve(Kc, [u, v, 1.0])                               # Eq. 7
        assert np.allclose(m[:, v, u], r[:2], atol=1e-6)
    # strided map = the map at cell centres = the average of the full map over each cell
    m4 = pe_map(Kc, 64, stride=4)
    assert np.allclose(m4, m.reshape(2, 16, 4, 16, 4).mean((2, 4)), atol=1e-6)
    t = pe_grid(torch.tensor(Kc[None], dtype=torch.float64), 64, 4)[0].numpy()
    assert np.allclose(t, m4, atol=1e-6)
    # PE distinguishes an off-axis crop from a centred one of the same focal length
    Kc2 = Kc.copy(); Kc2[:2, 2] = 31.5
    assert np.abs(pe_map(Kc2, 64) - m).max() > 0.1


def test_bad_input_raises_a_clear_error():
    with pytest.raises(PerspectiveError, match="finite"):
        pr_rotation(K, [np.nan, 3.0])
    with pytest.raises(PerspectiveError, match="two finite keypoints"):
        person_crop(K, np.full((17, 2), np.nan), 64, True)
    with pytest.raises(PerspectiveError, match="too small"):
        person_crop(K, np.zeros((17, 2)), 64, True)
