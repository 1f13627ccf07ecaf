"""World alignment on validation mocap watched by virtual cameras with known pitch, roll and height."""
import argparse

import numpy as np
import pytest

from engines.skeleton import J
from mocap_app.calibration.synthetic import (camera_rotation, lifter_like_noise, load_segment, make_view,
                                             subject_files)
from mocap_app.world import (CameraPlacement, WorldAlignment, WorldAlignmentError, add_world_args, align_clip,
                             apply, estimate_world_alignment, pitch_roll_from_up, rotation_cam_to_world,
                             up_from_pitch_roll, world_overrides_from_args)

needs_mocap = pytest.mark.skipif(not subject_files(), reason="CMU mocap not present")


def test_angle_conventions_match_an_independently_built_camera():
    for p, r in [(0, 0), (-30, 0), (20, 0), (0, 10), (-15, -8), (12, 7)]:
        R = camera_rotation(40.0, p, r)              # world (Y up) -> camera
        up_cam = R @ np.array([0.0, 1.0, 0.0])
        assert pitch_roll_from_up(up_cam) == pytest.approx((p, r), abs=1e-9)
        assert np.allclose(up_from_pitch_roll(p, r), up_cam)
    # a camera looking down sees the floor below the image centre: a floor point ahead has y > 0 (down)
    R = camera_rotation(0.0, -20.0, 0.0)
    assert (R @ np.array([0.0, -1000.0, -2000.0]))[1] > 0     # 26.6 deg below the horizon
    # level camera: world X = camera right, Y = up, Z towards the camera; a proper rotation
    Rw = rotation_cam_to_world(np.array([0.0, -1.0, 0.0]))
    assert np.allclose(Rw, np.diag([1.0, -1.0, -1.0]))
    assert np.linalg.det(rotation_cam_to_world(up_from_pitch_roll(-25, 7))) == pytest.approx(1.0)


def _cases(n_per_clip=1, seed=7):
    rng = np.random.default_rng(seed)
    for f in subject_files():
        jw = load_segment(f, seconds=5, fps=30, start_s=0.5)
        if len(jw) < 60:
            continue
        for _ in range(n_per_clip):
            v = make_view(jw, focal_px=1000, distance_mm=rng.uniform(3000, 6000), height_mm=rng.uniform(500, 2500),
                          pitch_deg=rng.uniform(-30, 20), roll_deg=rng.uniform(-10, 10), rng=rng)
            yield f.stem, jw, v, lifter_like_noise(v.joints_cam_mm, rng)


@needs_mocap
def test_recovers_pitch_roll_floor_on_validation_mocap():
    errs = []
    for name, jw, v, noisy in _cases():
        al = estimate_world_alignment(noisy)
        # floor error where the person is: the true floor point below the mean pelvis, in the estimated world
        below = jw[:, J["pelvis"]].mean(0) * np.array([1, 0, 1])
        floor_at_person = apply(al, v.R_world_to_cam @ (below - v.camera_center_mm))[1]
        errs.append((al.pitch_deg - v.pitch_deg, al.roll_deg - v.roll_deg, floor_at_person,
                     al.camera_height_mm - v.camera_height_mm))
    e = np.abs(np.array(errs))
    med = np.median(e, axis=0)
    assert len(e) >= 25
    assert med[0] <= 3.0 and med[1] <= 3.0, med
    assert med[2] <= 50.0, med                       # floor under the person within 5 cm
    assert med[3] <= 150.0, med                      # camera height: the angle error times ~4.5 m adds up


@needs_mocap
def test_world_output_stands_on_floor_and_keeps_heading():
    name, jw, v, noisy = next(_cases(seed=3))
    al = estimate_world_alignment(noisy)
    w = apply(al, v.joints_cam_mm)
    low = np.minimum(w[:, J["left_ankle"], 1], w[:, J["right_ankle"], 1])
    assert 0.0 < np.median(low) < 160.0               # ankles just above y = 0
    assert np.median(w[:, J["head"], 1]) > 1200.0    # head well above
    # heading: the camera's forward direction projected on the floor is world -Z
    fwd = al.R_cam_to_world @ np.array([0.0, 0.0, 1.0])
    assert fwd[0] == pytest.approx(0.0, abs=1e-9) and fwd[2] < 0
    # origin under the first pelvis
    w0 = apply(al, noisy[0, J["pelvis"]])
    assert w0[0] == pytest.approx(0.0, abs=1e-6) and w0[2] == pytest.approx(0.0, abs=1e-6)
    d = al.to_dict()
    back = WorldAlignment.from_dict(d)
    assert np.allclose(apply(back, v.joints_cam_mm), w, atol=0.05)   # JSON rounding


@needs_mocap
def test_estimate_changes_smoothly_as_the_person_walks_further():
    """The walking-line cue is weighted by how far the foot contacts spread: a clip just under or over a limit
    must not jump between two answers (with the old on/off limit at 400 mm this clip jumped 1.6 deg in pitch
    and 1.9 deg in roll between two neighbouring walk lengths)."""
    f = next(f for f in subject_files() if f.stem == "08_01")      # walking
    jw = load_segment(f, seconds=5, fps=30, start_s=0.5)
    rng = np.random.default_rng(0)
    v = make_view(jw, focal_px=1000, distance_mm=4000, height_mm=1500, pitch_deg=-15, roll_deg=5, rng=rng)
    noisy = lifter_like_noise(v.joints_cam_mm, rng)
    up = up_from_pitch_roll(v.pitch_deg, v.roll_deg)
    d = noisy[:, J["pelvis"]] - noisy[:1, J["pelvis"]]
    walk = d - np.outer(d @ up, up)                  # the horizontal path of the pelvis
    res = []
    for s in np.linspace(0.0, 0.5, 26):              # the same steps, on a path shortened to s of its length
        al = estimate_world_alignment(noisy - (1 - s) * walk[:, None])
        res.append((al.pitch_deg, al.roll_deg, al.details.get("walking_line_weight", 0.0)))
    res = np.array(res)
    assert res[:, 2].min() < 0.5 and res[:, 2].max() == 1.0       # the grid crosses the ramp
    assert np.abs(np.diff(res[:, :2], axis=0)).max() < 0.6, res
    assert np.abs(res[:, 0] - v.pitch_deg).max() < 3.0 and np.abs(res[:, 1] - v.roll_deg).max() < 3.0


@needs_mocap
def test_user_overrides_and_clip():
    from mocap_app.clip import Clip
    from engines.camera import CameraIntrinsics
    name, jw, v, noisy = next(_cases(seed=5))
    al = estimate_world_alignment(noisy, pitch_deg=v.pitch_deg, roll_deg=v.roll_deg,
                                  camera_height_mm=v.camera_height_mm, origin="camera")
    assert al.method == "user pitch and roll" and al.confidence == 1.0
    w = apply(al, v.joints_cam_mm)
    assert np.allclose(w.reshape(-1, 3) @ np.eye(3)[1], (jw.reshape(-1, 3))[:, 1], atol=1e-6)   # exact heights
    n = len(noisy)
    person = np.ones(n, bool)
    person[3] = False
    cam = noisy.copy()
    cam[3] = np.nan
    clip = Clip(np.arange(n) / 30.0, person, np.zeros((n, 17, 2)), np.ones((n, 17)), cam,
                CameraIntrinsics.from_focal(1000, 1280, 720))
    out = align_clip(clip)
    assert clip.world is None and clip.joints_world_mm is None      # input untouched
    assert out.world["axes"].startswith("X right, Y up") and np.isnan(out.joints_world_mm[3]).all()
    assert np.isfinite(out.joints_world_mm[4]).all()
    assert Clip.from_dict(out.to_dict()).world["pitch_deg"] == pytest.approx(out.world["pitch_deg"])


def test_errors_and_cli_args():
    with pytest.raises(WorldAlignmentError, match="shape"):
        estimate_world_alignment(np.zeros((10, 15, 3)))
    with pytest.raises(WorldAlignmentError, match="only 2 frames"):
        estimate_world_alignment(np.ones((2, 17, 3)))
    with pytest.raises(WorldAlignmentError, match="only 0 frames"):
        estimate_world_alignment(np.full((9, 17, 3), np.nan))
    p = argparse.ArgumentParser()
    add_world_args(p)
    assert world_overrides_from_args(p.parse_args([])) is None
    assert world_overrides_from_args(p.parse_args(["--world"])) == {"pitch_deg": None, "roll_deg": None,
                                                                      "camera_height_mm": None}
    o = world_overrides_from_args(p.parse_args(["--pitch", "-12", "--camera-height", "1.6"]))
    assert o["pitch_deg"] == -12 and o["camera_height_mm"] == pytest.approx(1600)
    with pytest.raises(WorldAlignmentError, match="pitch"):
        world_overrides_from_args(p.parse_args(["--pitch", "120"]))
    with pytest.raises(WorldAlignmentError, match="camera-height"):
        world_overrides_from_args(p.parse_args(["--camera-height", "-1"]))


@needs_mocap
def test_camera_placement_known_to_the_user():
    """The GUI's Camera placement: validated like the CLI's flags, saved as a dict, and its values are what the
    alignment uses (all three known: the world frame holds from a single frame)."""
    assert not CameraPlacement().known and CameraPlacement().overrides() == {
        "pitch_deg": None, "roll_deg": None, "camera_height_mm": None}
    p = CameraPlacement(pitch_deg=-12.5, camera_height_m=1.6)
    assert p.known and not p.complete
    assert p.overrides()["camera_height_mm"] == pytest.approx(1600)
    assert CameraPlacement.from_dict(p.to_dict()) == p and CameraPlacement.from_dict(None) == CameraPlacement()
    assert p.describe() == "pitch -12.5 deg, roll from the person, height 1.60 m"
    for kw, msg in ((dict(pitch_deg=95), "camera pitch 95 deg is outside"), (dict(roll_deg=float("nan")), "roll"),
                    (dict(camera_height_m=0.0), "camera height 0.0 m must be between 0 and 50 m")):
        with pytest.raises(WorldAlignmentError, match=msg):
            CameraPlacement(**kw)
    name, jw, v, noisy = next(_cases(seed=5))
    known = CameraPlacement(v.pitch_deg, v.roll_deg, v.camera_height_mm / 1000.0)
    assert known.complete
    al = estimate_world_alignment(noisy[:1], **known.overrides())
    assert al.pitch_deg == pytest.approx(v.pitch_deg) and al.roll_deg == pytest.approx(v.roll_deg)
    assert al.camera_height_mm == pytest.approx(v.camera_height_mm)
    with pytest.raises(WorldAlignmentError, match="only 1 frames"):     # half known: the person must say the rest
        estimate_world_alignment(noisy[:1], **CameraPlacement(pitch_deg=v.pitch_deg).overrides())
