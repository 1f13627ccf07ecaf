"""MediaPipePoseDetector on real video (Sports2D demo, pose2sim views) and on frames without a person."""
from __future__ import annotations

import os

import numpy as np
import pytest

from engines.skeleton import J, NUM_JOINTS
from mocap_app.capture import VideoSource
from mocap_app.keypoints import (DEFAULT_MODEL_PATH, USAGE_LOG_BLOCK_PROXY, KeypointsError, MediaPipePoseDetector,
                                 block_mediapipe_usage_logging)
from mocap_app.types import Frame


def run_video(path, n_frames: int, detector: MediaPipePoseDetector):
    out = []
    with VideoSource(path) as src:
        size = src.size_wh
        for frame in src:
            if frame.index >= n_frames:
                break
            out.append(detector.detect(frame))
    return out, size


def check_found_inside(kps, size_wh, min_found=0.9):
    found = [k for k in kps if k.person_found]
    assert len(found) >= min_found * len(kps), f"person in {len(found)} / {len(kps)} frames"
    w, h = size_wh
    for k in found:
        assert k.xy_px.shape == (NUM_JOINTS, 2) and k.xy_px.dtype == np.float32
        assert np.isfinite(k.xy_px).all() and np.isfinite(k.confidence).all()
        assert ((k.confidence >= 0) & (k.confidence <= 1)).all()
        assert (k.xy_px[:, 0] > -0.5).all() and (k.xy_px[:, 0] < w - 0.5).all()
        assert (k.xy_px[:, 1] > -0.5).all() and (k.xy_px[:, 1] < h - 0.5).all()
    return found


def test_sports2d_person_found_and_facing_camera_not_mirrored(sports2d_video):
    # The clip opens with a man standing on a box, facing the camera: his left side is on the image's right.
    # He is small (~1/4 of the frame height) against a sun flare: the person detector needs a few frames
    # before tracking takes over (VIDEO mode), hence 60 frames for the >= 90 % criterion.
    with MediaPipePoseDetector(running_mode="video") as det:
        kps, size = run_video(sports2d_video, 60, det)
    assert size == (1768, 994)
    found = check_found_inside(kps, size)
    # MediaPipe itself mirrors the very first acquisition (frame 3) before tracking settles, so the
    # criterion is a clear majority, which a systematic swap (e.g. a flipped image) would fail.
    early = [k for k in kps[:40] if k.person_found]
    for a, b in (("left_shoulder", "right_shoulder"), ("left_hip", "right_hip")):
        right_of = np.array([k.xy_px[J[a], 0] > k.xy_px[J[b], 0] for k in early])
        assert right_of.mean() >= 0.9, f"{a} to the image-right of {b} in only {right_of.sum()} / {len(early)} frames"
    # a standing person: head above pelvis above ankles (image y grows downwards)
    k = found[0]
    assert k.xy_px[J["head"], 1] < k.xy_px[J["pelvis"], 1] < k.xy_px[J["left_ankle"], 1]
    assert np.median([kk.confidence[J["thorax"]] for kk in found]) > 0.8


@pytest.fixture(scope="module")
def pose2sim_cam03_cam04(pose2sim_videos):
    """Detections on the first 20 frames of cam03 and cam04 (VIDEO mode)."""
    out = {}
    for cam in ("cam03", "cam04"):
        with MediaPipePoseDetector(running_mode="video") as det:
            out[cam] = run_video(pose2sim_videos.videos[cam], 20, det)
    return out


def test_pose2sim_person_found_inside_image(pose2sim_cam03_cam04):
    for cam, (kps, size) in pose2sim_cam03_cam04.items():
        assert size == (1088, 1920)
        check_found_inside(kps, size)


def test_pose2sim_left_right_consistent_in_3d(pose2sim_videos, pose2sim_cam03_cam04):
    """Triangulate from two calibrated views: the nose must point where 'left x up' says the front is.

    For a body with up vector u and left-right vector l = L - R, the front is l x u.
    A mirrored (left/right-swapped) labelling in both views would flip l and fail this.
    """
    from engines.real_errors import load_pose2sim_cameras, triangulate_dlt, undistorted_views

    cams = load_pose2sim_cameras(pose2sim_videos.root)
    sel = {n: cams[n] for n in ("cam03", "cam04")}
    xy = np.stack([np.stack([k.xy_px for k in pose2sim_cam03_cam04[n][0]]) for n in sel])     # [2, F, 17, 2]
    conf = np.stack([np.stack([k.confidence for k in pose2sim_cam03_cam04[n][0]]) for n in sel])
    und = undistorted_views(sel, xy)
    X = triangulate_dlt(np.moveaxis(und, 0, 2), np.stack([c.P for c in sel.values()]), np.moveaxis(conf, 0, 2))
    up = np.array([0.0, 0.0, 1.0])                                   # calibration world: Z up, metres
    for side in ("shoulder", "hip"):
        lr = X[:, J[f"left_{side}"]] - X[:, J[f"right_{side}"]]
        front = np.cross(lr, up)
        face = X[:, J["nose"]] - X[:, J["head"]]
        cos = np.sum(front * face, -1) / np.linalg.norm(front, axis=-1) / np.linalg.norm(face, axis=-1)
        assert np.median(cos) > 0.5, f"{side}s look mirrored: median cos {np.median(cos):.2f}"
    # and the reconstruction is a plausible adult: shoulder width 0.25-0.5 m, standing height span > 1.2 m
    sw = np.linalg.norm(X[:, J["left_shoulder"]] - X[:, J["right_shoulder"]], axis=-1)
    assert 0.25 < np.median(sw) < 0.5
    assert np.median(X[:, J["head"], 2] - np.minimum(X[:, J["left_ankle"], 2], X[:, J["right_ankle"], 2])) > 1.2


@pytest.fixture(scope="module")
def image_detector():
    with MediaPipePoseDetector(running_mode="image") as det:
        yield det


@pytest.mark.parametrize("kind", ["black", "gray", "noise"])
def test_no_person(image_detector, kind):
    rng = np.random.default_rng(1)
    img = {"black": np.zeros((480, 640, 3), np.uint8),
           "gray": np.full((720, 1280, 3), 128, np.uint8),
           "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)}[kind]
    k = image_detector.detect(Frame(0, 0.0, img))
    assert not k.person_found
    assert np.isnan(k.xy_px).all() and (k.confidence == 0).all()


def test_no_person_in_background_crop(image_detector, pose2sim_videos):
    # the upper-left corner of cam03 is lab wall and equipment, nobody there
    with VideoSource(pose2sim_videos.videos["cam03"]) as src:
        img = src.read().image_bgr
    crop = np.ascontiguousarray(img[:500, :400])
    assert not image_detector.detect(Frame(0, 0.0, crop)).person_found


def test_video_mode_loses_the_person_and_survives_repeated_timestamps(pose2sim_videos):
    with VideoSource(pose2sim_videos.videos["cam04"]) as src:
        frames = [src.read() for _ in range(3)]
    blank = Frame(3, frames[-1].timestamp_s, np.zeros_like(frames[0].image_bgr))   # same timestamp again
    with MediaPipePoseDetector(running_mode="video") as det:
        assert all(det.detect(f).person_found for f in frames)
        assert not det.detect(blank).person_found
        assert det.detect(frames[0]).person_found            # older timestamp: bumped, not rejected
        late = Frame(4, 5.0, frames[1].image_bgr)
        assert det.detect(late).person_found
        det.reset()                                           # a new stream may start again at t = 0
        assert det._last_ts_ms == -1 and det.detect(frames[0]).person_found


def test_video_mode_warns_when_time_jumps_back(pose2sim_videos, caplog):
    with VideoSource(pose2sim_videos.videos["cam04"]) as src:
        f = src.read()
    with MediaPipePoseDetector(running_mode="video") as det:
        det.detect(Frame(0, 10.0, f.image_bgr))
        with caplog.at_level("WARNING", logger="mocap_app.keypoints"):
            assert det.detect(Frame(1, 0.0, f.image_bgr)).person_found
    assert "call reset()" in caplog.text


def test_bad_inputs_raise_clear_errors(tmp_path, image_detector):
    with pytest.raises(KeypointsError, match="HxWx3 uint8"):
        image_detector.detect(Frame(0, 0.0, np.zeros((48, 64), np.uint8)))
    with pytest.raises(KeypointsError, match="not found"):
        MediaPipePoseDetector(tmp_path / "missing.task")
    with pytest.raises(KeypointsError, match="running_mode"):
        MediaPipePoseDetector(running_mode="stream")
    bad = tmp_path / "bad.task"
    bad.write_bytes(b"not a model bundle")
    with pytest.raises(KeypointsError, match="could not load"):
        MediaPipePoseDetector(bad)
    det = MediaPipePoseDetector(running_mode="image")
    det.close()
    with pytest.raises(KeypointsError, match="closed"):
        det.detect(Frame(0, 0.0, np.zeros((48, 64, 3), np.uint8)))


def test_shipped_model_is_the_bundle_the_landmarker_expects():
    import zipfile
    with zipfile.ZipFile(DEFAULT_MODEL_PATH) as zf:
        names = {i.filename: i for i in zf.infolist()}
    assert set(names) == {"pose_detector.tflite", "pose_landmarks_detector.tflite"}
    assert all(i.compress_type == zipfile.ZIP_STORED for i in names.values())


def test_usage_logging_block_respects_user_proxy(monkeypatch):
    for k in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(k, raising=False)
    assert block_mediapipe_usage_logging()
    assert os.environ["https_proxy"] == os.environ["HTTPS_PROXY"] == USAGE_LOG_BLOCK_PROXY
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.delenv("https_proxy")
    assert not block_mediapipe_usage_logging()
    assert os.environ["HTTPS_PROXY"] == "http://proxy.example:3128" and "https_proxy" not in os.environ
