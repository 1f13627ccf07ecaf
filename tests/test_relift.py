"""Re-lifting a take (``mocap_app.pipeline.relift_clip``, ``mocap-app relift``): a take recorded before the camera
was calibrated is lifted again from its stored 2D, and must come out as if the video had been processed with the
right camera from the start. Real MediaPipe on the real pose2sim cam03 video (40 frames)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engines.camera import CameraIntrinsics
from engines.skeleton import J

VIDEO = Path(__file__).resolve().parents[2] / "shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4"
WEIGHTS = Path(__file__).resolve().parents[1] / "assets" / "absposelifter" / "absposelifter.pt"
TRUE_FOCAL_PX = 1681.0     # cam03's checkerboard / Qualisys focal length in the video's pixels
FRAMES = 40

pytestmark = pytest.mark.skipif(not VIDEO.exists() or not WEIGHTS.exists(),
                                reason="needs the pose2sim demo video and the shipped lifter weights")


@pytest.fixture(scope="module")
def guessed_take():
    """What a user gets before calibrating: no focal length, so the 70 deg default and the focal-free lifter."""
    from mocap_app.pipeline import process_video
    return process_video(VIDEO, max_frames=FRAMES)


@pytest.fixture(scope="module")
def calibrated_take():
    """The same video processed with the right focal length from the start (the shipped lifter, which takes f)."""
    from mocap_app.pipeline import process_video
    return process_video(VIDEO, focal_px=TRUE_FOCAL_PX, max_frames=FRAMES)


def _true_camera(clip):
    return CameraIntrinsics.from_focal(TRUE_FOCAL_PX, clip.intrinsics.width_px, clip.intrinsics.height_px)


def test_relift_equals_processing_with_the_right_camera(guessed_take, calibrated_take):
    from mocap_app.pipeline import relift_clip
    assert guessed_take.intrinsics_source == "default fov"
    assert guessed_take.engine.get("weights") == "absposelifter_focal_free.pt"
    again = relift_clip(guessed_take, _true_camera(guessed_take), "profile")
    assert again.intrinsics.fx_px == TRUE_FOCAL_PX and again.intrinsics_source == "profile"
    assert "weights" not in again.engine        # the shipped lifter that takes f, not the focal-free one
    np.testing.assert_array_equal(again.keypoints_px, guessed_take.keypoints_px)   # the 2D is kept as it was
    np.testing.assert_array_equal(again.timestamps_s, guessed_take.timestamps_s)
    np.testing.assert_allclose(again.joints_cam_mm, calibrated_take.joints_cam_mm, atol=0.5)
    assert again.world is None and again.joints_world_mm is None and again.plausibility is None
    # the guess was a different camera: the re-lift moved the person, not just relabelled the clip
    moved = np.linalg.norm(again.joints_cam_mm - guessed_take.joints_cam_mm, axis=-1)
    assert np.nanmedian(moved) > 50, np.nanmedian(moved)


def test_relift_perspose_matches_frames_by_time_in_a_trimmed_take(guessed_take, tmp_path):
    """PersPose needs the images: a trimmed, saved take is matched to its video frames by timestamp."""
    from mocap_app.clip import Clip
    from mocap_app.pipeline import ReliftError, relift_clip
    from engines.lifter import load_lifter
    from mocap_app.ui.main_window import slice_clip
    part = Clip.load(slice_clip(guessed_take, 10, 29).save(tmp_path / "part.clip.json"))
    cam = _true_camera(part)
    lifter = load_lifter("perspose", backend="onnxruntime")
    again = relift_clip(part, cam, "profile", engine="perspose", lifter=lifter)
    assert again.engine["name"] == "perspose"
    # the reference: PersPose on frames 10..29 of the video, read directly
    from mocap_app.capture import VideoSource
    with VideoSource(VIDEO) as src:
        images = []
        for f in src:
            if f.index > 29:
                break
            if f.index >= 10:
                images.append(f.image_bgr)
    ref = lifter.lift(part.keypoints_px, part.confidence, cam.K, images=images)
    np.testing.assert_allclose(again.joints_cam_mm, ref, atol=0.5)
    # a take without its video (a live recording) says why it cannot run
    live = Clip.load(tmp_path / "part.clip.json")
    live.source = {"path": "0"}
    with pytest.raises(ReliftError, match="recorded live"):
        relift_clip(live, cam, "profile", engine="perspose", lifter=lifter)
    with pytest.raises(ReliftError, match="is 1080x1920, not the take's 1088x1920"):
        relift_clip(part, cam, "profile", engine="perspose", lifter=lifter, video=VIDEO.with_name("cam01.mp4"))


def test_relift_refuses_a_camera_for_another_image_size(guessed_take):
    from mocap_app.pipeline import ReliftError, relift_clip
    with pytest.raises(ReliftError, match="1920x1080 but the take is 1088x1920"):
        relift_clip(guessed_take, CameraIntrinsics.from_focal(1681, 1920, 1080), "cli focal")


def test_relift_cli(guessed_take, calibrated_take, tmp_path, capsys):
    """``mocap-app relift take.json --calibration profile.json --world --bvh``: the clip and BVH of the right camera."""
    from mocap_app.calibration.profile import CameraProfile
    from mocap_app.cli import main
    from mocap_app.clip import Clip
    take = guessed_take.save(tmp_path / "take.clip.json")
    w, h = guessed_take.intrinsics.width_px, guessed_take.intrinsics.height_px
    prof = CameraProfile.from_intrinsics("cam03", _true_camera(guessed_take), source="checkerboard")
    prof.save(tmp_path / "cam03.json")
    rc = main(["relift", str(take), "--calibration", str(tmp_path / "cam03.json"), "--world",
               "--bvh", str(tmp_path / "take.bvh")])
    assert rc == 0, capsys.readouterr().err
    out = tmp_path / "take.relift.clip.json"
    assert f"wrote {out}" in capsys.readouterr().out
    again = Clip.load(out)
    assert (again.intrinsics.fx_px, again.intrinsics_source) == (TRUE_FOCAL_PX, "profile")
    assert (again.intrinsics.width_px, again.intrinsics.height_px) == (w, h)
    np.testing.assert_allclose(again.joints_cam_mm, calibrated_take.joints_cam_mm, atol=0.5)
    assert again.world is not None and again.plausibility is not None
    bvh = (tmp_path / "take.bvh").read_text()
    assert bvh.startswith("HIERARCHY") and f"Frames: {FRAMES}" in bvh
    assert json.loads(take.read_text())["intrinsics"]["source"] == "default fov"     # the input is untouched
    # bad input: one sentence, the input's own exit code
    assert main(["process", str(take), "--focal-px", "1681"]) == 3          # a clip given to `process` points here
    assert "is a clip, not a video: `mocap-app relift" in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("{not json")
    assert main(["relift", str(tmp_path / "junk.json"), "--focal-px", "1681"]) == 3
    assert "not a readable clip" in capsys.readouterr().err
    assert main(["relift", str(take), "--focal-px", "1681", "--out", str(tmp_path / "no" / "x.json")]) == 5
    err = capsys.readouterr().err
    assert "cannot write" in err and err.count("cannot write") == 1 and "does not exist" in err
    # the pelvis moved to where the calibrated camera puts it
    z = np.nanmedian(again.joints_cam_mm[:, J["pelvis"], 2])
    assert z == pytest.approx(np.nanmedian(calibrated_take.joints_cam_mm[:, J["pelvis"], 2]), rel=1e-3)


def test_a_clip_finds_its_video_beside_it(guessed_take, tmp_path, monkeypatch):
    """Clips store the video's absolute path; an older clip with a path relative to its own folder (or one moved
    together with its video) still finds it from any working directory: the review shows the frames, and PersPose can
    be re-lifted."""
    import dataclasses
    from mocap_app.clip import Clip
    assert Path(guessed_take.source["path"]).is_absolute() and Path(guessed_take.source["path"]).is_file()
    (tmp_path / "shoot").mkdir()
    (tmp_path / "shoot" / "take.mp4").symlink_to(VIDEO)
    old = dataclasses.replace(guessed_take, source={**guessed_take.source, "path": "take.mp4"})
    old.save(tmp_path / "shoot" / "take.clip.json")
    monkeypatch.chdir(tmp_path)                      # "take.mp4" does not lead anywhere from here
    back = Clip.load(tmp_path / "shoot" / "take.clip.json")
    assert back.source["path"] == str((tmp_path / "shoot" / "take.mp4").resolve())
    monkeypatch.chdir(tmp_path / "shoot")            # from the clip's own folder the relative path is kept as it is
    assert Clip.load("take.clip.json").source["path"] == "take.mp4"
