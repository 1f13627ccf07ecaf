"""`mocap-app process` end to end on real video, and its error messages."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engines.skeleton import J

REPO = Path(__file__).resolve().parents[1]
VIDEO_DIR = REPO.parent / "shared" / "data" / "video" / "pose2sim_demo_singleperson"


def run_cli(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "mocap_app.cli", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
def test_process_pose2sim_video_with_calibrated_focal(tmp_path):
    calib = json.loads((VIDEO_DIR / "calibration" / "calib_opencv_from_qca.json").read_text())["cameras"]["cam03"]
    out = tmp_path / "cam03.json"
    r = run_cli("process", VIDEO_DIR / "videos" / "cam03.mp4", "--out", out, "--focal-px", calib["K"][0][0],
                "--max-frames", 40)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["schema"] == "mocap-clip" and d["version"] == 1 and len(d["frames"]) == 40
    assert d["intrinsics"]["fx_px"] == pytest.approx(calib["K"][0][0])
    assert "weights" not in d["engine"]           # a known focal: the bundled lifter, the one that takes it
    scores = [f["plausibility"] for f in d["frames"] if f["person"]]   # per-frame plausibility is written
    assert all(0.0 <= s <= 1.0 for s in scores) and len(set(scores)) > 1
    from engines.plausibility.score import FLAG_BELOW   # calibrated: a real take is mostly not flagged
    assert np.mean(np.asarray(scores) < FLAG_BELOW) <= 0.1, scores
    ts = [f["timestamp_s"] for f in d["frames"]]
    assert np.all(np.diff(ts) > 0)
    frames = [f for f in d["frames"] if f["person"]]
    assert len(frames) >= 36
    joints = np.array([f["joints_cam_mm"] for f in frames])
    # the camera is 3.1-4.4 m from the treadmill origin: the person stands a few metres away
    assert 1500 < np.median(joints[:, J["pelvis"], 2]) < 6500
    # upright: head above pelvis (camera Y points down), plausible body height
    assert (joints[:, J["head"], 1] < joints[:, J["pelvis"], 1]).all()
    height = np.linalg.norm(joints[:, J["head"]] - (joints[:, J["left_ankle"]] + joints[:, J["right_ankle"]]) / 2, axis=-1)
    assert 1200 < np.median(height) < 2000
    # projection of the 3D joints lands near the 2D keypoints (the lifter is consistent with its input)
    kp = np.array([f["keypoints_px"] for f in frames])
    K = np.array(calib["K"])
    uv = joints[..., :2] / joints[..., 2:] * K[0, 0] + np.array([d["intrinsics"]["cx_px"], d["intrinsics"]["cy_px"]])
    assert np.median(np.linalg.norm(uv - kp, axis=-1)) < 40


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
def test_a_guessed_focal_length_lifts_with_the_focal_free_lifter(tmp_path):
    """Without a focal length the default field of view is a guess, which can be far enough off to cost the lifter
    that takes the focal length as an input more than it gains (mocap_app.pipeline.lifter_weights)."""
    out = tmp_path / "cam03.json"
    r = run_cli("process", VIDEO_DIR / "videos" / "cam03.mp4", "--out", out, "--max-frames", 10)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["intrinsics"]["source"] == "default fov"
    assert d["engine"]["weights"] == "absposelifter_focal_free.pt"


def test_missing_file_gives_message_and_nonzero_exit(tmp_path):
    r = run_cli("process", tmp_path / "nope.mp4", "--out", tmp_path / "x.json")
    assert r.returncode != 0 and "not found" in r.stderr and "Traceback" not in r.stderr


def test_unreadable_video_gives_message(tmp_path):
    bad = tmp_path / "corrupt.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(20000))
    r = run_cli("process", bad, "--out", tmp_path / "x.json")
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.strip()


def test_video_without_person(tmp_path):
    import cv2
    path = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    rng = np.random.default_rng(0)
    for _ in range(8):
        w.write(np.full((240, 320, 3), 90, np.uint8) + rng.integers(0, 20, (240, 320, 3), dtype=np.uint8))
    w.release()
    r = run_cli("process", path, "--out", tmp_path / "x.json")
    assert r.returncode == 4 and "no person" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("focal", ["0", "-100", "nan", "abc"])
def test_absurd_focal_gives_message(tmp_path, focal):
    r = run_cli("process", tmp_path / "nope.mp4", "--focal-px", focal)
    assert r.returncode == 2 and "--focal-px" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
def test_process_to_bvh_and_fbx_in_one_command(tmp_path):
    """The README's main job: video -> clip with a world frame -> BVH + FBX, in one command."""
    from mocap_app.export.bvh import read_bvh as read_our_bvh

    out, bvh, fbx = tmp_path / "c.json", tmp_path / "c.bvh", tmp_path / "c.fbx"
    r = run_cli("process", VIDEO_DIR / "videos" / "cam03.mp4", "--out", out, "--focal-px", 1681,
                "--max-frames", 30, "--bvh", bvh, "--fbx", fbx)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["world"] is not None
    world = np.array([f["joints_world_mm"] for f in d["frames"] if f["person"]])
    # world frame: Y up, the person stands on the floor (ankles near y = 0, head well above)
    assert np.median(world[:, J["head"], 1]) > 1200
    assert abs(np.median(np.minimum(world[:, J["left_ankle"], 1], world[:, J["right_ankle"], 1]))) < 150
    assert bvh.stat().st_size > 1000 and fbx.read_bytes()[:18] == b"Kaydara FBX Binary"
    assert "wrote BVH" in r.stdout and "wrote FBX" in r.stdout
    parsed = read_our_bvh(bvh)
    assert parsed.frame_count == 30 and parsed.frame_time_s == pytest.approx(1 / 60, rel=1e-3)


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
@pytest.mark.parametrize("extra,engine,refine", [(("--refine", "zedo"), "absposelifter", "zedo"),
                                                 (("--engine", "perspose"), "perspose", None)])
def test_process_with_refinement_or_image_engine(tmp_path, extra, engine, refine):
    out = tmp_path / "c.json"
    r = run_cli("process", VIDEO_DIR / "videos" / "cam03.mp4", "--out", out, "--focal-px", 1681,
                "--max-frames", 8, *extra)
    assert r.returncode == 0, r.stderr
    d = json.loads(out.read_text())
    assert d["engine"]["name"] == engine
    assert (d["engine"]["refine"] or "").startswith(refine) if refine else d["engine"]["refine"] is None
    joints = np.array([f["joints_cam_mm"] for f in d["frames"] if f["person"]])
    assert len(joints) >= 7 and np.isfinite(joints).all()
    assert 1000 < np.median(joints[:, J["pelvis"], 2]) < 8000          # metres away, in front of the camera


def test_a_lone_video_or_clip_argument_opens_the_desktop_app():
    """The .desktop entry runs ``mocap-app %f``: a lone video/clip path goes to the GUI, not to argparse."""
    from mocap_app.cli import gui_file_argument
    assert gui_file_argument(["/videos/My Take.MP4"]) == "/videos/My Take.MP4"
    assert gui_file_argument(["take.clip.json"]) == "take.clip.json"
    for argv in ([], ["process", "a.mp4"], ["--help"], ["notes.txt"], ["a.mp4", "b.mp4"]):
        assert gui_file_argument(argv) is None, argv


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
def test_wrong_weights_and_counts_are_one_sentence(tmp_path, capsys):
    """A file that is not lifter weights (process, relift, adapt) and impossible frame or iteration counts: one
    sentence and the input / usage exit code, never a traceback (in-process: an exception would fail the test)."""
    from mocap_app.cli import main
    video = VIDEO_DIR / "videos" / "cam03.mp4"
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    for argv in (["process", video, "--weights", junk, "--max-frames", 3, "--out", tmp_path / "x.json"],
                 ["process", video, "--engine", "perspose", "--weights", junk, "--max-frames", 3,
                  "--out", tmp_path / "x.json"],
                 ["adapt", video, "--weights", junk, "--out", tmp_path / "a.pt"]):
        assert main([str(v) for v in argv]) == 3, argv
        assert "junk.pt is not" in capsys.readouterr().err
    assert not (tmp_path / "x.json").exists()
    for argv in (["process", str(video), "--max-frames", "0"], ["process", str(video), "--refine-iterations", "-1"]):
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2 and "must be at least" in capsys.readouterr().err


@pytest.mark.skipif(not VIDEO_DIR.exists(), reason="../shared/data/video not present")
def test_unwritable_outputs_are_refused_before_processing(tmp_path, capsys):
    """An output whose folder is missing is refused at once, before the video is processed (the clip JSON, which
    could have been written, is not: the check comes first), with the output exit code."""
    from mocap_app.cli import main
    video = VIDEO_DIR / "videos" / "cam03.mp4"
    out = tmp_path / "x.json"
    assert main(["process", str(video), "--out", str(out), "--bvh", str(tmp_path / "no" / "x.bvh")]) == 5
    err = capsys.readouterr().err
    assert f"cannot write the BVH file {tmp_path / 'no' / 'x.bvh'}: folder" in err and "does not exist" in err
    assert not out.exists()
    assert main(["process", str(video), "--out", str(out), "--bvh", str(out)]) == 5     # the BVH would replace it
    assert "the clip and BVH files would both be written to" in capsys.readouterr().err and not out.exists()
    assert main(["process", str(video), "--out", str(tmp_path)]) == 5
    assert "it is a folder" in capsys.readouterr().err
