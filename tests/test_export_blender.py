"""Our BVH / FBX / GLB imported by Blender itself (bpy 5.0.1 in a cached venv, run as a separate process).

Common frame for comparisons: ours (Y up, +Z forward, cm). Blender's importers
turn Y-up files into Blender's Z-up world, (x, y, z) -> (x, -z, y), in metres
(BVH: global_scale 0.01 because our BVH is in cm; FBX: UnitScaleFactor 1 = cm,
which Blender maps to 0.01 m; glTF is in metres), so a Blender head ``(xb, yb, zb)``
is ``100 * (xb, zb, -yb)`` cm in our frame. Blender starts BVH/FBX animation at
frame 1 and glTF at frame 0.

The first run builds the venv (~1 min with a fast link, 374 MB download); later runs
reuse it. Tests skip, with the reason, only when the venv cannot be built.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from blender_tools.clips import clip_from_world, cmu_clip
from blender_tools.cmu import CMU_DIR, cmu_joints_mm
from blender_tools.runner import BlenderUnavailable, bpy_python, import_and_sample
from mocap_app.export import ExportOptions, export_clip, prepare_motion
from mocap_app.export.rig import JOINT_TO_RIG, NAME_SETS
from mocap_app.export.rotations import forward_kinematics

# every test starts Blender (5-10 s each on the 2-core sandbox), hence "slow"
pytestmark = [pytest.mark.skipif(not CMU_DIR.is_dir(), reason=f"CMU mocap not found at {CMU_DIR}"),
              pytest.mark.slow]
TOL_CM = 1.0


@pytest.fixture(scope="module", autouse=True)
def blender():
    try:
        return bpy_python()
    except BlenderUnavailable as e:
        pytest.skip(f"Blender (bpy) unavailable: {e}")


def _blender_joints_cm(result: dict, names: tuple[str, ...]) -> np.ndarray:
    """Blender heads -> our frame (cm), rig joints in ``names`` order, then our 17 joints."""
    h = np.asarray(result["heads_m"]) * 100.0
    ours = np.stack([h[..., 0], h[..., 2], -h[..., 1]], axis=-1)
    idx = [result["bones"].index(n) for n in names]
    return ours[:, idx][:, list(JOINT_TO_RIG)]


def _expected_cm(clip, options: ExportOptions) -> tuple[np.ndarray, float]:
    """What we exported: FK of our own rig and motion (our 17 joints, cm) and the fps."""
    prep = prepare_motion(clip.joints_world_mm, clip.timestamps_s, clip.person, options,
                          source_fps=clip.source.get("fps"))
    return forward_kinematics(prep.rig, prep.motion)[:, list(JOINT_TO_RIG)], prep.fps


@pytest.fixture(scope="module")
def walk_clip():
    """CMU 08_01 (walk), every frame at 120 fps: 277 frames."""
    return cmu_clip("08_01.bvh", stop=None, step=1)


@pytest.mark.parametrize("fmt,names", [("bvh", "standard"), ("fbx", "mixamo"), ("glb", "standard")])
def test_blender_import_matches_every_joint_every_frame(walk_clip, fmt, names, tmp_path):
    clip, cmu = walk_clip
    opts = ExportOptions(names=names)
    res = export_clip(clip, **{fmt: tmp_path / f"walk.{fmt}"}, options=opts)
    expected, fps = _expected_cm(clip, opts)
    got = import_and_sample(res.written[fmt], tmp_path / "sample.json", fps=fps if fmt == "glb" else None)
    # frame count and frame rate preserved
    assert got["frame_end"] - got["frame_start"] + 1 == len(clip) == len(expected)
    assert got["frame_start"] == (0 if fmt == "glb" else 1)
    assert got["fps"] == pytest.approx(fps, rel=1e-4)
    joints = _blender_joints_cm(got, NAME_SETS[names])
    err = np.linalg.norm(joints - expected, axis=-1)
    assert err.max() <= TOL_CM, f"{fmt}: max {err.max():.3f} cm"
    # round trip from the CMU source skeleton: CMU -> 17 joints -> our file -> Blender -> joints
    err_src = np.linalg.norm(joints - cmu / 10.0, axis=-1)
    assert err_src.max() <= TOL_CM, f"{fmt}: max {err_src.max():.3f} cm from the CMU joints"
    # upright and facing the right way in Blender's own frame: head above the feet (Z up)
    h = np.asarray(got["heads_m"])
    bones = got["bones"]
    head_b = NAME_SETS[names][list(JOINT_TO_RIG)[10]]
    foot_b = NAME_SETS[names][list(JOINT_TO_RIG)[3]]
    assert (h[:, bones.index(head_b), 2] > h[:, bones.index(foot_b), 2] + 1.0).all()


@pytest.mark.parametrize("fmt,fps", [("bvh", 29.97), ("fbx", 25.0)])
def test_blender_variable_rate_clip_with_gaps_and_rotation_order(tmp_path, fmt, fps):
    """Irregular timestamps + a gap without a person, resampled, XYZ order, clean-ups on: Blender agrees.

    FBX is tested at an integer rate: for 29.97 fps Blender's FBX importer sets the scene to
    30 fps with fps_base 1.001 but converts key times with the integer 30, so keys land on
    fractional frames (a Blender quirk; the file's KTime values are exact seconds).
    """
    joints, ft = cmu_joints_mm(CMU_DIR / "02_01.bvh", stop=481)
    rng = np.random.default_rng(4)
    keep = np.sort(rng.choice(np.arange(len(joints)), 200, replace=False))
    times = keep * ft + rng.normal(scale=0.0005, size=200)
    times.sort()
    person = np.ones(200, bool)
    person[60:66] = False
    clip = clip_from_world(joints[keep], times, person)
    opts = ExportOptions(fps=fps, rotation_order="XYZ", smoothing=True, foot_lock=True)
    res = export_clip(clip, **{fmt: tmp_path / f"v.{fmt}"}, options=opts)
    expected, _ = _expected_cm(clip, opts)
    assert res.resampled and res.frames == len(expected)
    assert res.frames == int((times[-1] - times[0]) * fps) + 1
    got = import_and_sample(res.written[fmt], tmp_path / f"{fmt}.json")
    assert got["frame_end"] - got["frame_start"] + 1 == res.frames
    assert got["fps"] == pytest.approx(fps, rel=1e-4)
    err = np.linalg.norm(_blender_joints_cm(got, NAME_SETS["standard"]) - expected, axis=-1)
    assert err.max() <= TOL_CM, f"{fmt}: max {err.max():.3f} cm"


def test_blender_rest_pose_is_upright_t_pose(walk_clip, tmp_path):
    clip, _ = walk_clip
    res = export_clip(clip, fbx=tmp_path / "rest.fbx")
    got = import_and_sample(res.written["fbx"], tmp_path / "rest.json")
    rest = {n: np.asarray(p) for n, p in zip(got["bones"], got["rest_heads_m"])}
    # Blender world: Z up, our +Z forward is Blender -Y, our left (+X) stays +X
    assert rest["head"][2] > rest["thorax"][2] > rest["pelvis"][2] > rest["left_ankle"][2]
    assert rest["left_wrist"][0] > 0.5 > -0.5 > rest["right_wrist"][0]
    assert abs(rest["left_wrist"][2] - rest["left_shoulder"][2]) < 1e-4
    assert rest["nose"][1] < rest["head"][1]          # nose towards Blender -Y = our +Z


def test_blender_renders_exported_clip(walk_clip, tmp_path):
    """Workbench render of frame 100 of our FBX: the figure is drawn (red left / blue right limbs) and upright."""
    from blender_tools.runner import run_script
    clip, _ = walk_clip
    res = export_clip(clip, fbx=tmp_path / "r.fbx")
    png = tmp_path / "r.png"
    run_script("render_frame.py", res.written["fbx"], png, 100, timeout=300)
    import cv2
    img = cv2.imread(str(png))
    assert img is not None and img.shape[:2] == (640, 640)
    b, g, r = (img[..., k].astype(int) for k in range(3))
    red = (r > 150) & (g < 90) & (b < 90)
    blue = (b > 150) & (r < 90)
    assert red.sum() > 200 and blue.sum() > 200
    rows = np.flatnonzero((red | blue).any(axis=1))
    assert rows.max() - rows.min() > 150          # a standing figure spans a good part of the frame height
