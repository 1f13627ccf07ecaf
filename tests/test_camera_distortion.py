"""Lens distortion from a camera profile reaches the engines (``engines.camera.undistort_px`` / ``undistort_image``).

A checkerboard calibration measures the lens's distortion, and a wide webcam's barrel distortion moves joints near
the image edge by tens of pixels; every engine assumes a pinhole camera. The clip keeps the detected pixels (they
match the video) and the engines get the pinhole camera's. Real check: the real pose2sim cam03 video seen through a
strong wide-angle lens (the frames warped with OpenCV's model), processed with that lens's profile, must give the 3D
that the original video gives.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from lens_images import checker_frame, through_lens  # a tests/ helper

from engines.camera import (CameraIntrinsics, InvalidIntrinsicsError, opencv_dist_coeffs, project, undistort_image,
                            undistort_px)
from mocap_app.calibration.profile import CameraProfile

VIDEO = Path(__file__).resolve().parents[2] / "shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4"
FRAMES = 20
LENS = (-0.35, 0.12, 0.0015, -0.001, 0.0)       # a wide webcam's barrel distortion (k1 k2 p1 p2 k3)


def _points_in_view(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return np.c_[rng.uniform(-1.3, 1.3, n), rng.uniform(-0.75, 0.75, n), np.full(n, 2.0)]


def _distort(points_cam, intr):
    px, _ = cv2.projectPoints(points_cam.reshape(-1, 3), np.zeros(3), np.zeros(3), intr.K,
                              opencv_dist_coeffs(intr.dist_coeffs))
    return px.reshape(points_cam.shape[:-1] + (2,))


@pytest.mark.parametrize("dist", [LENS, (-0.3, 0.1), (-0.3, 0.1, 0.003, -0.002, 0.01, 0.01, 0.002, 0.001)])
def test_undistort_px_gives_the_pinhole_pixel_of_the_same_ray(dist):
    intr = CameraIntrinsics(1280, 720, 700.0, 703.0, 645.0, 352.0, dist)
    X = _points_in_view()
    seen = _distort(X, intr)
    moved = np.linalg.norm(seen - project(X, intr.K), axis=-1)
    assert moved.max() > 50           # the lens really moves the edge of the image
    np.testing.assert_allclose(undistort_px(seen, intr), project(X, intr.K), atol=1e-4)
    kp = np.stack([seen[:17], np.full((17, 2), np.nan)]).astype(np.float32)      # a frame without a person
    out = undistort_px(kp, intr)
    assert out.dtype == np.float32 and out.shape == kp.shape and np.isnan(out[1]).all()
    assert undistort_px(kp, intr.pinhole) is kp and not intr.pinhole.has_distortion
    with pytest.raises(InvalidIntrinsicsError, match="at most 14"):
        CameraIntrinsics(1280, 720, 700.0, 703.0, 645.0, 352.0, (0.01,) * 15)


def test_undistort_image_maps_the_lens_image_onto_the_pinhole_one():
    """A checker pattern seen through the lens, undistorted, lands where the pinhole camera sees it."""
    intr = CameraIntrinsics(640, 360, 350.0, 350.0, 320.0, 180.0, LENS)
    pinhole = checker_frame(640, 360)
    seen = through_lens(pinhole, intr, cv2.INTER_NEAREST)
    back = undistort_image(seen, intr)
    inner = (slice(60, 300), slice(100, 540))

    def off(img):                                                 # mean grey-level error, 0..1
        return np.abs(img[inner].astype(float) - pinhole[inner]).mean() / 255
    assert off(back) < 0.03 and off(seen) > 0.15, (off(back), off(seen))
    assert undistort_image(seen, intr.pinhole) is seen


@pytest.mark.parametrize("dist", [LENS, (-0.3, 0.1, 0.003, -0.002, 0.01, 0.01, 0.002, 0.001, 0.002, -0.001, 0.003,
                                         0.0005)])
def test_a_profile_turned_to_the_other_orientation_keeps_its_lens(dist):
    """A phone calibrated on its side and held upright: the same lens, turned (was: distortion dropped)."""
    prof = CameraProfile("phone", 1280, 720, 700.0, 705.0, 645.0, 352.0, dist, "checkerboard")
    upright = prof.intrinsics(720, 1280)
    assert upright.has_distortion and "dropped" not in prof.rotated_90().source
    X = _points_in_view()
    u = _distort(X, prof.intrinsics())
    turned_px = np.c_[720 - 1 - u[:, 1], u[:, 0]]                 # the landscape image turned clockwise
    turned_X = np.c_[-X[:, 1], X[:, 0], X[:, 2]]                 # the camera turned with it
    np.testing.assert_allclose(_distort(turned_X, upright), turned_px, atol=1e-6)
    tilt = dist + (0.0,) * (12 - len(dist)) + (0.01, 0.0)          # coefficients 13-14: a tilted sensor
    tilted = CameraProfile("tilted", 1280, 720, 700.0, 705.0, 645.0, 352.0, tilt, "checkerboard")
    assert tilted.rotated_90().dist_coeffs == () and "dropped" in tilted.rotated_90().source


# -- real video -------------------------------------------------------------------------------------------------
needs_video = pytest.mark.skipif(not VIDEO.exists(), reason="needs the pose2sim demo video in ../shared")


def _pinhole():
    return CameraIntrinsics.from_focal(1681.0, 1088, 1920)          # cam03's focal length (checkerboard / Qualisys)


@pytest.fixture(scope="module")
def pinhole_take():
    from mocap_app.pipeline import process_video
    return process_video(VIDEO, profile=_pinhole(), max_frames=FRAMES)


def _video_through(lens, path):
    """The first ``FRAMES`` of cam03 as ``lens`` would have filmed them (``through_lens``), as an MJPG video."""
    cap = cv2.VideoCapture(str(VIDEO))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 60.0, (1088, 1920))
    out.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for _ in range(FRAMES):
        ok, frame = cap.read()
        assert ok
        out.write(through_lens(frame, lens))
    out.release()
    cap.release()
    return path, lens


@pytest.fixture(scope="module")
def wide_video(tmp_path_factory):
    """cam03 seen through ``LENS``: each lens pixel shows the original frame at the pinhole pixel of its ray."""
    return _video_through(replace(_pinhole(), dist_coeffs=LENS), tmp_path_factory.mktemp("lens") / "cam03_wide.avi")


def _median_mm(a, b, joint=None):
    d = a.joints_cam_mm - b.joints_cam_mm
    return float(np.median(np.linalg.norm(d if joint is None else d[:, joint], axis=-1)))


@pytest.fixture(scope="module")
def wide_take(wide_video):
    from mocap_app.pipeline import process_video
    path, lens = wide_video
    return process_video(path, profile=lens, max_frames=FRAMES)


@needs_video
def test_a_wide_lens_video_with_its_profile_gives_the_original_3d(pinhole_take, wide_video, wide_take):
    from mocap_app.pipeline import relift_clip
    path, lens = wide_video
    wide = wide_take
    assert wide.person.all() and wide.intrinsics.dist_coeffs == LENS       # the clip records the lens
    # the clip keeps what MediaPipe saw; undistorted, that is what it sees in the original video
    raw = np.linalg.norm(wide.keypoints_px - pinhole_take.keypoints_px, axis=-1)
    und = np.linalg.norm(undistort_px(wide.keypoints_px, lens) - pinhole_take.keypoints_px, axis=-1)
    assert np.median(und) < 3.0 and np.median(raw) > np.median(und)
    ignored = relift_clip(wide, _pinhole(), "profile")                      # the same keypoints, lens ignored
    with_lens, without = _median_mm(wide, pinhole_take), _median_mm(ignored, pinhole_take)
    # measured: 9 mm with the lens (MediaPipe on resampled frames), 69 mm without (the body looks smaller)
    assert with_lens < 20 and without > 3 * with_lens, (with_lens, without)


@needs_video
def test_perspose_sees_the_undistorted_frames(pinhole_take, wide_video, wide_take):
    """PersPose crops the image around the person with K: the lens's frames are undistorted first."""
    from mocap_app.pipeline import relift_clip
    path, lens = wide_video
    through_lens = relift_clip(wide_take, lens, "profile", engine="perspose", video=path)
    original = relift_clip(pinhole_take, _pinhole(), "profile", engine="perspose", video=VIDEO)
    assert through_lens.engine["name"] == "perspose"
    # measured: 30 mm; 87 mm with the keypoints undistorted but the frames not
    assert _median_mm(through_lens, original) < 50


@needs_video
def test_relift_and_zedo_undistort_the_stored_keypoints(pinhole_take):
    """The real take's 2D as the lens would have shown it, stored with the lens's profile: re-lifting it gives the
    original 3D (the lifter is deterministic and the undistortion exact), and ZeDO refines along the right rays."""
    from engines.zedo.refine import refine_clip
    from mocap_app.pipeline import relift_clip
    lens = replace(_pinhole(), dist_coeffs=LENS)
    rays = np.concatenate([(pinhole_take.keypoints_px - [lens.cx_px, lens.cy_px]) / lens.fx_px,
                           np.ones(pinhole_take.keypoints_px.shape[:-1] + (1,))], -1)
    seen = replace(pinhole_take, keypoints_px=_distort(rays, lens), intrinsics=lens)
    again = relift_clip(seen, lens, "profile")
    np.testing.assert_array_equal(again.keypoints_px, seen.keypoints_px)
    np.testing.assert_allclose(again.joints_cam_mm, pinhole_take.joints_cam_mm, atol=0.5)
    assert _median_mm(relift_clip(seen, _pinhole(), "profile"), pinhole_take) > 30
    refined = refine_clip(again, iterations=5)
    original = refine_clip(pinhole_take, iterations=5)
    assert _median_mm(refined, original) < 1.0


@needs_video
def test_the_app_worker_lifts_through_the_lens(wide_video, tmp_path):
    """The GUI's worker (live and file runs) lifts the undistorted keypoints and records the detected ones."""
    import multiprocessing as mp

    from mocap_app.pipeline import relift_clip
    from mocap_app.ui.worker import PipelineConfig, PipelineRunner
    path, lens = wide_video
    config = PipelineConfig(source=str(path), record=True, max_frames=6, profile=lens,
                            autosave_path=str(tmp_path / "take.clip.json"))
    events = []
    recording = mp.Event()
    recording.set()
    PipelineRunner(config, lambda kind, payload: events.append((kind, payload)), mp.Event(), recording,
                   mp.Value("d", 0.0)).run()
    assert "failed" not in [k for k, _ in events], events
    take = next(p for k, p in events if k == "take")[0]
    assert len(take) == 6 and take.person.all() and take.intrinsics.dist_coeffs == LENS
    np.testing.assert_allclose(take.joints_cam_mm, relift_clip(take, lens, "profile").joints_cam_mm, atol=0.5)
    assert _median_mm(take, relift_clip(take, _pinhole(), "profile")) > 30


# -- fisheye lenses (action cameras) ----------------------------------------------------------------------------
GOPRO = CameraIntrinsics(1280, 720, 600.0, 600.0, 642.0, 357.0, (0.05, -0.02, 0.005, -0.001), "fisheye")


def _rays(max_deg, n=500, seed=0):
    rng = np.random.default_rng(seed)
    th, ph = rng.uniform(0, np.radians(max_deg), n), rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.sin(th) * np.cos(ph), np.sin(th) * np.sin(ph), np.cos(th)]


def _fisheye_px(X, intr):
    px, _ = cv2.fisheye.projectPoints(X.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), intr.K,
                                      np.asarray(intr.dist_coeffs, float))
    return px.reshape(-1, 2)


def test_a_fisheye_lens_is_undistorted_with_its_own_model():
    X = _rays(75.0)
    seen = _fisheye_px(X, GOPRO)
    assert np.abs(seen - project(X, GOPRO.K)).max() > 500          # rays 75 deg off the axis: far from a pinhole's
    np.testing.assert_allclose(undistort_px(seen, GOPRO), project(X, GOPRO.K), atol=1e-4)
    # a ray 85 deg or more off the axis has no meaningful pinhole pixel: no person, not garbage
    edge = _fisheye_px(np.array([[np.sin(np.radians(88)), 0, np.cos(np.radians(88))]]), GOPRO)
    assert np.isnan(undistort_px(edge, GOPRO)).all()
    # an all-zero fisheye is still equidistant (r = f theta), not a pinhole
    equidistant = CameraIntrinsics(1280, 720, 600.0, 600.0, 642.0, 357.0, (0.0, 0.0, 0.0, 0.0), "fisheye")
    assert equidistant.has_distortion
    np.testing.assert_allclose(undistort_px(_fisheye_px(X, equidistant), equidistant), project(X, GOPRO.K), atol=1e-4)
    assert CameraIntrinsics.from_dict(GOPRO.to_dict()) == GOPRO and "lens_model" not in _pinhole().to_dict()
    # frames (PersPose, the dialog's preview): a checker seen through the lens comes back square
    small = CameraIntrinsics(640, 360, 300.0, 300.0, 320.0, 178.0, GOPRO.dist_coeffs, "fisheye")
    flat = checker_frame(640, 360)
    seen_img = through_lens(flat, small, cv2.INTER_NEAREST)
    inner = (slice(90, 270), slice(160, 480))

    def off(img):                                                 # mean grey-level error, 0..1
        return np.abs(img[inner].astype(float) - flat[inner]).mean() / 255
    assert off(undistort_image(seen_img, small)) < 0.03 and off(seen_img) > 0.1
    with pytest.raises(InvalidIntrinsicsError, match="4 distortion coefficients"):
        CameraIntrinsics(1280, 720, 600.0, 600.0, 642.0, 357.0, LENS, "fisheye")
    with pytest.raises(InvalidIntrinsicsError, match="lens model"):
        CameraIntrinsics(1280, 720, 600.0, 600.0, 642.0, 357.0, (), "spherical")


def test_a_fisheye_profile_keeps_its_lens_turned_saved_and_in_its_field_of_view(tmp_path):
    prof = CameraProfile.from_intrinsics("gopro", GOPRO, "checkerboard")
    assert prof.lens_model == "fisheye" and prof.intrinsics(640, 360).lens_model == "fisheye"
    assert CameraProfile.load(prof.save(tmp_path / "gopro.json")) .intrinsics() == GOPRO
    # the field of view through the lens's own model (118 deg across), not the pinhole formula's 93 deg
    fov = prof.fov_deg
    assert 115 < fov["horizontal"] < 121 and "fisheye lens, 135 deg across the diagonal" in prof.lens_summary()
    upright = prof.intrinsics(720, 1280)                        # held upright: the same (radial) lens, turned
    X = _rays(60.0)
    u = _fisheye_px(X, GOPRO)
    turned = np.c_[-X[:, 1], X[:, 0], X[:, 2]]
    np.testing.assert_allclose(_fisheye_px(turned, upright), np.c_[720 - 1 - u[:, 1], u[:, 0]], atol=1e-6)


@pytest.fixture(scope="module")
def fisheye_video(tmp_path_factory):
    """cam03 seen through an equidistant fisheye of the same focal length (the frame's edges compressed)."""
    lens = CameraIntrinsics(1088, 1920, 1681.0, 1681.0, 543.5, 959.5, (0.02, 0.0, 0.0, 0.0), "fisheye")
    return _video_through(lens, tmp_path_factory.mktemp("fisheye") / "cam03_fisheye.avi")


@needs_video
def test_a_fisheye_video_with_its_profile_gives_the_original_3d(pinhole_take, fisheye_video, tmp_path):
    from mocap_app.clip import Clip
    from mocap_app.pipeline import process_video, relift_clip
    path, lens = fisheye_video
    take = process_video(path, profile=lens, max_frames=FRAMES)
    assert take.person.all() and take.intrinsics.lens_model == "fisheye"
    take.save(tmp_path / "fisheye.clip.json")
    assert Clip.load(tmp_path / "fisheye.clip.json").intrinsics == take.intrinsics     # the lens model is kept
    ignored = relift_clip(take, _pinhole(), "profile")
    with_lens, without = _median_mm(take, pinhole_take), _median_mm(ignored, pinhole_take)
    # measured: 13.6 mm with the lens, 65 mm without
    assert with_lens < 20 and without > 3 * with_lens, (with_lens, without)
