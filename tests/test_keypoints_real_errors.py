"""The geometry behind engines.real_errors (exact synthetic views) and the shipped error file."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.real_errors import (OUT, find_swapped_views, leave_one_out, load_pose2sim_cameras, triangulate_dlt,
                                 undistorted_views)
from engines.skeleton import FLIP_PERM, JOINT_NAMES, NUM_JOINTS


@pytest.fixture(scope="module")
def cams(pose2sim_videos):
    return load_pose2sim_cameras(pose2sim_videos.root)


def skeleton_track(F: int = 30) -> np.ndarray:
    """A person-sized, moving 17-joint point set in the pose2sim world (metres, Z up) ``[F, 17, 3]``."""
    rng = np.random.default_rng(0)
    base = rng.uniform([-0.25, -0.2, 0.1], [0.25, 0.2, 1.75], (NUM_JOINTS, 3)) + [-1.0, 0.0, 0.0]
    t = np.arange(F)[:, None, None] / 60.0
    return base + 0.2 * np.sin(2 * np.pi * 0.5 * t) * np.array([1.0, 0.5, 0.0])


def to_video_pixels(cam, X: np.ndarray) -> np.ndarray:
    """World points -> distorted calibration pixels (cv2.projectPoints) -> video pixels (inverse letterbox)."""
    rvec = cv2.Rodrigues(cam.R)[0]
    uv, _ = cv2.projectPoints(X.reshape(-1, 3), rvec, cam.t, cam.K, cam.dist)
    uv = uv.reshape(X.shape[:-1] + (2,))
    if cam.letterboxed:
        s = cam.video_size_wh[0] / cam.calib_size_wh[0]
        uv = np.stack([uv[..., 0] * s, uv[..., 1] * s + 7], -1)
    return uv


def test_dlt_recovers_exact_points_and_needs_two_views(cams):
    X = skeleton_track(5)
    P = np.stack([c.P for c in cams.values()])
    uv = np.stack([c.project(X) for c in cams.values()], axis=-2)            # [F, 17, C, 2]
    w = np.ones(uv.shape[:-1])
    np.testing.assert_allclose(triangulate_dlt(uv, P, w), X, atol=1e-6)
    w[..., 0] = 0.0                                                          # drop a view: still exact
    np.testing.assert_allclose(triangulate_dlt(uv, P, w), X, atol=1e-6)
    w[..., 1:3] = 0.0                                                        # one view left: undetermined
    assert np.isnan(triangulate_dlt(uv, P, w)).all()


def test_letterbox_and_undistortion_chain_is_exact(cams):
    X = skeleton_track(3)
    for i, cam in enumerate(cams.values()):
        und = undistorted_views({cam.name: cam}, to_video_pixels(cam, X)[None])[0]
        np.testing.assert_allclose(und, cam.project(X), atol=0.02, err_msg=cam.name)


def test_leave_one_out_is_zero_on_exact_views_and_charges_a_swap_to_its_own_view(cams):
    F = 30
    X = skeleton_track(F)
    xy = np.stack([to_video_pixels(c, X) for c in cams.values()])            # [4, F, 17, 2]
    conf = np.ones(xy.shape[:-1], np.float32)
    r = leave_one_out(cams, xy, conf)
    assert len(r.errors_px) == 4 * F
    assert np.abs(r.errors_px).max() < 0.05 and not r.mirrored.any()
    assert (r.n_views == 3).all()
    # mirror cam02's labels in frames 10..19: those views are flagged, the others' references stay clean
    xy2 = xy.copy()
    xy2[1, 10:20] = xy[1, 10:20][:, list(FLIP_PERM)]
    swapped = find_swapped_views(undistorted_views(cams, xy2), np.stack([c.P for c in cams.values()]),
                                 np.ones(xy2.shape[:-1]))
    assert swapped[10:20, 1].all() and swapped.sum() == 10
    r2 = leave_one_out(cams, xy2, conf)
    held = (r2.camera == 1) & (r2.frame >= 10) & (r2.frame < 20)
    assert r2.mirrored[held].all() and r2.mirrored.sum() == 10
    assert np.abs(r2.errors_px[~held]).max() < 0.05                          # clean views unaffected
    assert np.linalg.norm(r2.errors_px[held], axis=-1).max() > 50            # the swap is recorded as error
    assert (r2.n_views[(r2.camera != 1) & (r2.frame >= 10) & (r2.frame < 20)] == 2).all()


def test_shipped_error_file_is_complete_and_plausible():
    assert OUT.is_file(), f"{OUT} missing: run `python -m engines.real_errors`"
    d = np.load(OUT)
    M = len(d["errors_px"])
    assert d["errors_px"].shape == (M, NUM_JOINTS, 2) and M >= 300
    for k, shape in (("scale_px", (M,)), ("confidence", (M, NUM_JOINTS)), ("camera", (M,)), ("frame", (M,)),
                     ("mirrored", (M,))):
        assert d[k].shape == shape, k
    assert tuple(d["joint_names"]) == JOINT_NAMES
    assert "leave-one-camera-out" in str(d["README"])
    assert np.isfinite(d["errors_px"]).all() and (d["scale_px"] > 100).all()
    assert set(np.unique(d["camera"])) == {0, 1, 2, 3} and d["frame"].max() < 100
    mag = np.linalg.norm(d["errors_px"][~d["mirrored"]], axis=-1)
    med = dict(zip(JOINT_NAMES, np.median(mag, axis=0)))
    assert 2 < med["pelvis"] < 20 and 2 < med["left_shoulder"] < 25 and 2 < med["right_hip"] < 25
    assert med["right_wrist"] > med["spine"]


@pytest.mark.parametrize("name, fixed", [("mediapipe_error_model", True), ("mediapipe_error_model_raw_labels", False)])
def test_shipped_time_constants_reproduce_the_real_errors_over_time(pose2sim_videos, name, fixed):
    """The error models' time constants (fitted by ``python -m engines.fit_error_model [--raw-labels]``) make
    sampled sequences whose autocorrelation, measured as on the real detections, matches the real one: the
    keypoint stage's errors (the default model) and MediaPipe's own labels."""
    from engines.fit_error_model import error_autocorrelation, load_error_sequences
    from engines.real_errors import POSE2SIM_FPS
    from engines.noise import CROP_PX, ErrorModel

    model = ErrorModel.load(Path(__file__).resolve().parents[1] / "assets" / "noise" / f"{name}.json")
    assert 0.1 < model.persistent < 0.8 and 0.3 < model.ar_per_100ms < 0.9
    lags = (3, 6, 12, 24)
    real = error_autocorrelation(load_error_sequences(fix_left_right=fixed), lags)
    times = np.r_[0, lags] / POSE2SIM_FPS
    x = model.sample_sequence(np.random.default_rng(5), np.full((3000, len(times)), CROP_PX), times)
    sim = [error_autocorrelation(x[:, [0, k]], [1])[0] for k in range(1, len(times))]
    np.testing.assert_allclose(sim, real, atol=0.04)
    # real errors persist: a joint that is off stays off for a while (longer with the mirrorings in)
    assert real[0] > real[-1] > (0.15 if fixed else 0.3)


def standing_track(F: int = 30) -> np.ndarray:
    """A standing person (Human3.6M joints, metres, pose2sim world: Z up), swaying: ``[F, 17, 3]``."""
    y = {"r": -1.0, "l": 1.0}
    pose = [(0, 0, 0.95)]
    pose += [(0, y["r"] * 0.1, 0.95), (0.02, y["r"] * 0.11, 0.5), (0, y["r"] * 0.12, 0.08)]
    pose += [(0, y["l"] * 0.1, 0.95), (0.02, y["l"] * 0.11, 0.5), (0, y["l"] * 0.12, 0.08)]
    pose += [(0, 0, 1.2), (0, 0, 1.45), (0.1, 0, 1.6), (0, 0, 1.62)]
    pose += [(0, 0.19, 1.45), (0.05, 0.22, 1.18), (0.12, 0.2, 0.95)]
    pose += [(0, -0.19, 1.45), (0.05, -0.22, 1.18), (0.12, -0.2, 0.95)]
    base = np.asarray(pose) + [-1.0, 0.0, 0.0]
    t = np.arange(F)[:, None, None] / 60.0
    return base + 0.05 * np.sin(2 * np.pi * 0.5 * t) * np.array([1.0, 0.5, 0.0])


def test_real_video_reference_leaves_out_a_mirrored_view(cams):
    """The real-video benchmark's reference (evaluate.pose2sim_truth) must not triangulate through a view whose
    skeleton MediaPipe mirrored: with cam02 mirrored in 10 frames, the other cameras' references stay exact."""
    from engines.absposelifter.evaluate import pose2sim_truth

    F = 30
    X = standing_track(F)
    xy = np.stack([to_video_pixels(c, X) for c in cams.values()])
    xy[1, 10:20] = xy[1, 10:20][:, list(FLIP_PERM)]
    names = list(cams)
    und = undistorted_views(cams, xy)
    views = (cams, names, und, np.ones(xy.shape[:-1], np.float32), np.stack([c.P for c in cams.values()]))
    for name, cam, kp, _, gt, ok in pose2sim_truth(views, fix_left_right=False):
        assert ok.all()
        truth_mm = (X @ cam.R.T + cam.t) * 1000.0
        err = np.linalg.norm(gt - truth_mm, axis=-1).max()
        if name == names[1]:
            assert err < 1.0, name                                 # its own reference comes from clean views
            np.testing.assert_allclose(kp[10:20], und[1, 10:20])   # and its detections keep the swap
        else:
            assert err < 1.0, f"{name}: reference off by {err:.0f} mm"
    # as the app's keypoint stage gives them (the default), the mirrored frames come back unmirrored
    kp = next(k for n, _, k, *_ in pose2sim_truth(views) if n == names[1])
    np.testing.assert_allclose(kp, undistorted_views(cams, np.stack([to_video_pixels(c, X) for c in cams.values()]))[1],
                               atol=1e-3)
