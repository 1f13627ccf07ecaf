"""Camera profiles and manual intrinsics: JSON round trip, scaling, validation, presets."""
import json
import math

import pytest

from mocap_app.calibration.manual import PRESETS, PRESETS_BY_KEY, intrinsics_from_manual, profile_from_manual
from mocap_app.calibration.profile import (AspectRatioMismatchError, CameraProfile, ProfileError,
                                           default_profile_dir, intrinsics_for_video, list_profiles,
                                           resolve_profile, save_profile)


def make(**kw):
    d = dict(name="cam", width_px=1920, height_px=1080, fx_px=1400.0, fy_px=1402.0, cx_px=955.0, cy_px=540.5,
             dist_coeffs=(0.01, -0.02, 0.0, 0.0), source="test")
    d.update(kw)
    return CameraProfile(**d)


def test_roundtrip_json(tmp_path):
    p = make(reprojection_error_px=0.31)
    path = p.save(tmp_path / "sub" / "cam.json")
    q = CameraProfile.load(path)
    assert q == p
    d = json.loads(path.read_text())
    assert d["schema"] == "mocap-camera" and d["version"] == 1
    assert d["fov_deg"]["horizontal"] == pytest.approx(2 * math.degrees(math.atan(960 / 1400)), abs=1e-3)


def test_scaled_to_smaller_video():
    intr = make().intrinsics(1280, 720)
    s = 1280 / 1920
    assert intr.fx_px == pytest.approx(1400 * s)
    assert intr.fy_px == pytest.approx(1402 * s)
    assert intr.cx_px == pytest.approx((955.5) * s - 0.5)
    assert (intr.width_px, intr.height_px) == (1280, 720)
    # FOV is preserved by the scaling
    assert intr.fov_deg[0] == pytest.approx(make().fov_deg["horizontal"], rel=1e-6)


def test_aspect_mismatch_is_a_clear_error():
    with pytest.raises(AspectRatioMismatchError, match="aspect"):
        make().intrinsics(640, 480)
    # pose2sim cam01: the 1088x1920 calibration image scaled by 1080/1088 and letterboxed by ~7 rows
    # (data README: u_cal = u * 1088/1080, v_cal = (v - 7) * 1088/1080)
    p = make(width_px=1088, height_px=1920, fx_px=1681.2, fy_px=1681.1, cx_px=533.0, cy_px=948.1)
    v = p.intrinsics(1080, 1920)
    s = 1080 / 1088
    assert v.fx_px == pytest.approx(1681.2 * s) and v.fy_px == pytest.approx(1681.1 * s)
    assert v.cx_px == pytest.approx(533.0 * s, abs=0.5)
    assert v.cy_px == pytest.approx(948.1 * s + 7, abs=0.5)
    # 1920x1088 encoded as 1920x1080: 4 rows cropped top and bottom, focal unchanged
    q = make(width_px=1920, height_px=1088, cy_px=543.5).intrinsics(1920, 1080)
    assert q.fx_px == 1400.0 and q.cy_px == pytest.approx(539.5)


@pytest.mark.parametrize("kw, msg", [
    (dict(fx_px=-3.0), "positive"),
    (dict(fx_px=10.0, fy_px=10.0), "plausible"),
    (dict(fx_px=1e6, fy_px=1e6), "plausible"),
    (dict(fx_px=1000.0, fy_px=2000.0), "square"),
    (dict(cx_px=5000.0), "outside"),
    (dict(width_px=0), "size"),
    (dict(name="  "), "name"),
    (dict(dist_coeffs=(float("nan"),)), "distortion"),
])
def test_absurd_values_rejected(kw, msg):
    with pytest.raises(ProfileError, match=msg):
        make(**kw)


def test_load_errors(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        CameraProfile.load(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ProfileError, match="not valid JSON"):
        CameraProfile.load(bad)
    bad.write_text(json.dumps({"schema": "mocap-clip"}))
    with pytest.raises(ProfileError, match="not a mocap camera profile"):
        CameraProfile.load(bad)
    d = make().to_dict()
    del d["fx_px"]
    bad.write_text(json.dumps(d))
    with pytest.raises(ProfileError, match="fx_px"):
        CameraProfile.load(bad)


def test_profile_folder_and_resolve(tmp_path, monkeypatch):
    monkeypatch.setenv("MOCAP_CAMERA_DIR", str(tmp_path / "cams"))
    assert default_profile_dir() == tmp_path / "cams"
    path = save_profile(make(name="Desk C920"))
    assert path.parent == tmp_path / "cams" and path.name == "Desk_C920.json"
    assert [p.name for p in list_profiles()] == ["Desk C920"]
    assert resolve_profile("Desk C920").fx_px == 1400.0
    assert resolve_profile(str(path)).fx_px == 1400.0
    intr, src = intrinsics_for_video(str(path), 960, 540)
    assert intr.fx_px == pytest.approx(700.0) and "Desk C920" in src
    with pytest.raises(ProfileError, match="Desk C920"):
        resolve_profile("other cam")


def test_rotated_profile_is_portrait():
    p = make().rotated_90()
    assert p.size == (1080, 1920)
    assert p.fov_deg["vertical"] == pytest.approx(make().fov_deg["horizontal"], rel=1e-6)
    # a portrait video from a camera calibrated in landscape (a phone turned upright) gets the turned profile at once
    v = make().intrinsics(720, 1280)
    assert (v.width_px, v.height_px) == (720, 1280)
    assert v.fx_px == pytest.approx(1402 * 720 / 1080) and v.fy_px == pytest.approx(1400 * 720 / 1080)
    assert v.fov_deg[1] == pytest.approx(make().fov_deg["horizontal"], rel=1e-6)
    assert make().intrinsics(1080, 1920).fx_px == pytest.approx(1402)


def test_manual_modes():
    intr, src = intrinsics_from_manual(1920, 1080, focal_px=1000)
    assert intr.fx_px == 1000 and "focal" in src
    intr, _ = intrinsics_from_manual(1920, 1080, fov_deg=90, fov_axis="horizontal")
    assert intr.fx_px == pytest.approx(960.0)
    intr, _ = intrinsics_from_manual(1920, 1080, fov_deg=90, fov_axis="diagonal")
    assert intr.fx_px == pytest.approx(math.hypot(1920, 1080) / 2)
    intr, _ = intrinsics_from_manual(1920, 1080, focal_35mm=43.27)
    assert intr.fx_px == pytest.approx(math.hypot(1920, 1080), rel=1e-3)
    with pytest.raises(ProfileError, match="exactly one"):
        intrinsics_from_manual(1920, 1080, focal_px=1000, fov_deg=60)
    with pytest.raises(ProfileError, match="exactly one"):
        intrinsics_from_manual(1920, 1080)
    with pytest.raises(ProfileError, match="180"):
        intrinsics_from_manual(1920, 1080, fov_deg=200)
    with pytest.raises(ProfileError, match="plausible"):
        intrinsics_from_manual(1920, 1080, focal_px=5)
    with pytest.raises(ProfileError, match="axis"):
        intrinsics_from_manual(1920, 1080, fov_deg=60, fov_axis="sideways")
    with pytest.raises(ProfileError, match="unknown preset"):
        intrinsics_from_manual(1920, 1080, preset="nokia-3310")


def test_presets_match_spec_sheets():
    # Logitech publishes 78 deg diagonal = 70.42 x 43.3 deg for the C920 at 16:9
    c920 = PRESETS_BY_KEY["logitech-c920"].intrinsics(1920, 1080)
    h, v = c920.fov_deg
    assert h == pytest.approx(70.42, abs=0.3) and v == pytest.approx(43.3, abs=0.3)
    # iPhone 26 mm-eq main camera: the 4:3 frame's long side is 0.8 x 43.27 mm in full-frame terms,
    # so 2 atan(17.31 / 26) = 67.3 deg across the long side (not 69.4 deg, the 36 mm-wide 3:2 figure)
    ip = PRESETS_BY_KEY["iphone-main"].intrinsics(1080, 1920)     # portrait video
    assert 2 * math.degrees(math.atan(960 / ip.fy_px)) == pytest.approx(67.3, abs=0.2)
    ultra = PRESETS_BY_KEY["iphone-ultrawide"].intrinsics(1920, 1080)
    assert ultra.fx_px < ip.fy_px / 1.8       # 13 mm vs 26 mm
    for p in PRESETS:
        assert p.source and p.intrinsics(1280, 720).fx_px > 0
        assert profile_from_manual("x", 1280, 720, preset=p.key).source.startswith("preset")
