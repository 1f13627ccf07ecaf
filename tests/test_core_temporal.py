"""Temporal refinement of AbsPoseLifter: windows over clips and time, one camera per window, the refiner."""
import numpy as np
import pytest
import torch

from engines.absposelifter.model import absolute_pose
from engines.absposelifter.temporal import (CENTRE, OFFSETS, TemporalRefiner, lifter_features, view_windows,
                                            window_by_time, window_index)
from engines.data import MOCAP_DIR, load_split, view_poses
from engines.skeleton import FLIP_PERM, NUM_JOINTS


def test_windows_stay_inside_their_clip():
    clip = np.array(["a"] * 10 + ["b"] * 30)
    w = window_index(clip)
    assert w.shape == (40, len(OFFSETS)) and (w[:, CENTRE] == np.arange(40)).all()
    assert (w[:10] < 10).all() and (w[10:] >= 10).all()
    assert list(w[25]) == list(25 + OFFSETS)                  # inside a clip: the plain offsets
    assert list(w[10]) == [10] * 4 + [10, 13, 16, 19, 22]     # at a clip's start: the first frame repeats


def test_windows_by_time_follow_the_frame_rate_and_stop_at_gaps():
    t60 = np.arange(120) / 60.0
    w = window_by_time(t60, np.ones(120, bool))
    assert list(w[60]) == list(60 + 2 * OFFSETS)              # 60 fps: twice the frames of the 30 Hz window
    valid = np.ones(40, bool)
    valid[15:30] = False                                      # 0.5 s without a person
    t30 = np.arange(40) / 30.0
    w = window_by_time(t30, valid)
    assert w.shape == (25, len(OFFSETS))
    assert (w[:15] < 15).all() and (w[15:] >= 30).all()       # never across the gap
    assert valid[w].all()
    assert (w[:, CENTRE] == np.flatnonzero(valid)).all()


@pytest.mark.skipif(not MOCAP_DIR.exists(), reason="../shared/data/mocap not present")
def test_each_window_is_one_camera_and_its_centre_matches_the_single_frame_views():
    d = load_split("val")
    sel = np.arange(0, 600, 7)
    poses, win = d["joints_mm"], window_index(d["clip"])[sel]
    kp, K, cam = view_windows(poses, win, np.random.default_rng(3))
    v = view_poses(poses[sel], np.random.default_rng(3))
    np.testing.assert_allclose(cam[:, CENTRE], v.joints_cam_mm, atol=0.05)
    np.testing.assert_allclose(kp[:, CENTRE], v.keypoints_px, atol=0.05)
    # the neighbours are the clip's own frames moved rigidly into the same camera (bone lengths kept, same K)
    W = poses[win].astype(float)
    W[v.mirrored] = W[v.mirrored][:, :, FLIP_PERM] * np.array([-1.0, 1.0, 1.0])
    d_world = np.linalg.norm(W[:, :, 0] - W[:, :, 3], axis=-1)
    d_cam = np.linalg.norm(cam[:, :, 0] - cam[:, :, 3], axis=-1)
    np.testing.assert_allclose(d_cam, d_world, rtol=1e-4)
    f = K[:, 0, 0]
    uv = cam[..., :2] / cam[..., 2:] * f[:, None, None, None] + K[:, None, None, :2, 2]
    np.testing.assert_allclose(uv, kp, atol=0.05)


def test_untrained_refiner_returns_the_lifters_own_centre_frame():
    from engines.absposelifter.model import AbsolutePose
    from engines.lifter import WEIGHTS, example_inputs, load_torch_lifter

    lifter = load_torch_lifter(WEIGHTS["absposelifter"])
    kp1, K1 = example_inputs(1)
    kp = kp1.expand(3, len(OFFSETS), NUM_JOINTS, 2) + torch.randn(3, len(OFFSETS), NUM_JOINTS, 2) * 20
    K = K1.repeat(3, 1, 1)
    depth, rel = TemporalRefiner().eval()(lifter_features(lifter, kp, K))
    with torch.no_grad():
        expected = AbsolutePose(lifter, flip_test=False)(kp[:, CENTRE], K)   # the refiner sees one pass
    np.testing.assert_allclose(absolute_pose(depth, rel, kp[:, CENTRE], K).detach().numpy(), expected.numpy(),
                               atol=0.05)
