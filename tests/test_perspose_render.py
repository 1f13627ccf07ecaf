"""PersPose synthetic data: rendering straight into the crop equals rendering the frame and warping it."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from engines.bvh import CMU_UNIT_MM, cmu_to_joints17, forward_kinematics, read_bvh
from engines.camera import project
from engines.data import MOCAP_DIR
from engines.perspose.geometry import CropGeometry, person_crop
from engines.perspose.render import CMU_NODES, random_appearance, render_crop, targets
from engines.skeleton import NUM_JOINTS

BVH = MOCAP_DIR / "06_01.bvh"     # a validation subject


@pytest.fixture(scope="module")
def body_cam():
    if not BVH.exists():
        pytest.skip(f"mocap data not found at {BVH}")
    b = read_bvh(BVH)
    assert tuple(b.names) == CMU_NODES
    pos, rot = forward_kinematics(b, slice(100, 101))
    pts = np.concatenate([cmu_to_joints17(b, pos, rot), pos], 1)[0] * CMU_UNIT_MM
    # world (Y up) -> OpenCV camera: flip Y and Z, put the pelvis 4 m ahead, 1.2 m right, 0.4 m up
    P = pts * [1, -1, -1]
    return P - P[0] + [1200.0, -400.0, 4000.0]


def plain(app, size):
    return dataclasses.replace(app, background=np.zeros((size, size, 3), np.uint8), occluders=[],
                               texture=np.ones((size, size), np.float32), blur=0.0, noise=0.0,
                               gain=np.ones(3))


def test_direct_crop_render_equals_full_frame_render_warped(body_cam):
    K = np.array([[700.0, 0, 399.5], [0, 700.0, 399.5], [0, 0, 1]])
    app = random_appearance(np.random.default_rng(0), 64)
    full = render_crop(body_cam, CropGeometry(np.eye(3), K, np.eye(3), 800), plain(app, 800))
    kp = project(body_cam[:NUM_JOINTS], K)
    for rotate in (False, True):
        g = person_crop(K, kp, 64, rotate)
        warped = g.warp(full)
        direct = render_crop(body_cam, g, plain(app, 64))
        a, b = warped.max(-1) > 0, direct.max(-1) > 0
        iou = (a & b).sum() / (a | b).sum()
        assert iou > 0.85, (rotate, iou)
        assert a.sum() > 0.08 * 64 * 64                                # the body fills a good part of the crop
        t = targets(body_cam[:NUM_JOINTS], g)
        inside = b[np.clip(np.round(t.uv[:, 1]).astype(int), 0, 63), np.clip(np.round(t.uv[:, 0]).astype(int), 0, 63)]
        assert inside.mean() > 0.85                                      # joints land on the rendered body
        assert np.isclose(t.s * g.K_crop[0, 0], g.to_crop_frame(body_cam[:1])[0, 2])   # s = d0 / f_crop
        assert t.d_rel[0] == 0.0


def test_appearance_varies_and_images_are_valid(body_cam):
    K = np.array([[1000.0, 0, 639.5], [0, 1000.0, 359.5], [0, 0, 1]])
    g = person_crop(K, project(body_cam[:NUM_JOINTS], K), 64, True)
    imgs = [render_crop(body_cam, g, random_appearance(np.random.default_rng(s), 64)) for s in range(4)]
    for im in imgs:
        assert im.shape == (64, 64, 3) and im.dtype == np.uint8 and im.std() > 5
    assert np.mean([np.abs(imgs[0].astype(int) - im).mean() for im in imgs[1:]]) > 10
