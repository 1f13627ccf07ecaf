"""VideoSource / list_cameras on real files, and the errors users can cause."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from mocap_app.capture import CaptureError, VideoSource, list_cameras


def test_reads_pose2sim_video_with_container_timestamps(pose2sim_videos):
    with VideoSource(pose2sim_videos.videos["cam03"]) as src:
        assert src.fps == pytest.approx(60.0)
        assert src.frame_count == 100
        assert src.size_wh == (1088, 1920)
        assert not src.is_camera
        frames = list(src)
    assert len(frames) == 100
    assert [f.index for f in frames] == list(range(100))
    ts = np.array([f.timestamp_s for f in frames])
    np.testing.assert_allclose(ts, np.arange(100) / 60.0, atol=1e-6)
    assert frames[0].image_bgr.shape == (1920, 1088, 3) and frames[0].image_bgr.dtype == np.uint8
    assert frames[0].size_wh == (1088, 1920)
    # decoded pixels are real content, not a constant placeholder
    assert frames[50].image_bgr.std() > 10


def test_letterboxed_view_reports_its_own_size(pose2sim_videos):
    with VideoSource(pose2sim_videos.videos["cam02"]) as src:     # VP9 in mp4
        assert src.size_wh == (1080, 1920)
        f = src.read()
        assert f.index == 0 and f.timestamp_s == 0.0 and f.image_bgr.shape == (1920, 1080, 3)


def test_written_video_timestamps_and_end(tmp_path):
    path = tmp_path / "ten.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    assert w.isOpened()
    for i in range(10):
        w.write(np.full((48, 64, 3), i * 20, np.uint8))
    w.release()
    with VideoSource(path) as src:
        assert src.fps == pytest.approx(25.0)
        frames = list(src)
        assert src.read() is None                      # stays at the end
    assert len(frames) == 10
    ts = np.array([f.timestamp_s for f in frames])
    assert np.all(np.diff(ts) > 0)
    np.testing.assert_allclose(ts, np.arange(10) / 25.0, atol=1e-3)
    assert abs(float(frames[7].image_bgr.mean()) - 140) < 5


def test_grab_and_retrieve_give_the_frames_read_gives(pose2sim_videos):
    """Stepping over frames (``grab``) and making images only of some (``retrieve``) gives the same timestamps and
    pixels as reading every frame, the first frame (decoded at open) included."""
    path = pose2sim_videos.videos["cam03"]
    with VideoSource(path) as src:
        every = list(src)
    with VideoSource(path) as src:
        with pytest.raises(CaptureError, match="grab"):
            src.retrieve()
        times, kept = [], []
        while (t := src.grab()) is not None:
            times.append(t)
            if len(times) % 7 == 1:                   # frames 0, 7, 14, ...
                kept.append(src.retrieve())
        assert src.grab() is None                      # stays at the end
    np.testing.assert_array_equal(times, [f.timestamp_s for f in every])
    assert [f.index for f in kept] == list(range(0, 100, 7))
    for f in kept:
        assert f.timestamp_s == every[f.index].timestamp_s
        np.testing.assert_array_equal(f.image_bgr, every[f.index].image_bgr)


def test_closed_source_refuses_to_read(pose2sim_videos):
    src = VideoSource(pose2sim_videos.videos["cam04"])
    with src:
        assert src.read() is not None
    with pytest.raises(CaptureError, match="closed"):
        src.read()


def test_missing_file(tmp_path):
    with pytest.raises(CaptureError, match="not found"):
        VideoSource(tmp_path / "nope.mp4")


def test_directory_is_not_a_video(tmp_path):
    with pytest.raises(CaptureError, match="not a file"):
        VideoSource(tmp_path)


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(CaptureError, match="could not be opened as a video"):
        VideoSource(path)


def test_truncated_mp4_is_reported(tmp_path, pose2sim_videos):
    data = pose2sim_videos.videos["cam03"].read_bytes()
    path = tmp_path / "truncated.mp4"
    path.write_bytes(data[: len(data) // 3])          # the index (moov atom) is at the end: now missing
    with pytest.raises(CaptureError, match="corrupt|truncated"):
        VideoSource(path)


def test_absent_camera_index():
    with pytest.raises(CaptureError, match="Camera 99 is not available"):
        VideoSource(99)


def test_list_cameras_only_lists_cameras_that_open():
    cams = list_cameras(max_index=4)
    assert isinstance(cams, list) and all(isinstance(i, int) and 0 <= i < 4 for i in cams)
    for i in cams:
        with VideoSource(i) as src:
            assert src.is_camera and src.read() is not None
