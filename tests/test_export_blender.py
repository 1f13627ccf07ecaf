"""Our BVH / FBX / GLB imported by Blender itself (bpy 5.0.1 in a cached venv, run as a separate process).

Common frame for comparisons: ours (Y up, +Z forward, cm). Blender's importers
turn Y-up files into Blender's Z-up world, (x, y, z) -> (x, -z, y), in metres
(BVH: global_scale 0.01 because our BVH is in cm; FBX: UnitScaleFactor 1 = cm,
which Blender maps to 0.01 m; glTF is in metres), so a Blender head ``(xb, yb, zb)``
is ``100 * (xb, zb, -yb)`` cm in our frame. Blender starts BVH/FBX animation at
frame 1 and glTF at frame 0.

All files are exported first and imported by one Blender process (``blender_runs``).
The first run builds the venv (~1 min with a fast link, 374 MB download); later runs
reuse it. Tests skip, with the reason, only when the venv cannot be built.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from blender_tools.clips import clip_from_world, cmu_clip
from blender_tools.cmu import CMU_DIR, cmu_joints_mm
from engines.skeleton import J
from blender_tools.runner import BlenderUnavailable, bpy_python, import_and_sample_many
from mocap_app.export import ExportOptions, export_clip, prepare_motion
from mocap_app.export.rig import JOINT_TO_RIG, NAME_SETS
from mocap_app.export.rotations import forward_kinematics

# Blender runs once for all imports (``import bpy`` alone takes 2-6 s here), ~20-40 s in all: "slow"
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

@dataclass
class Case:
    path: Path
    names: str
    expected_cm: np.ndarray      # our FK, 17 joints
    fps: float
    frames: int
    source_cm: np.ndarray | None = None   # the CMU joints the clip came from
    result: dict | None = None


def _variable_rate_clip():
    """200 irregular timestamps out of CMU 02_01 with jitter, and a 6-frame gap without a person."""
    joints, ft = cmu_joints_mm(CMU_DIR / "02_01.bvh")
    rng = np.random.default_rng(4)
    keep = np.sort(rng.choice(np.arange(len(joints)), 200, replace=False))
    times = np.sort(keep * ft + rng.normal(scale=0.0005, size=200))
    person = np.ones(200, bool)
    person[60:66] = False
    return clip_from_world(joints[keep], times, person), times


@pytest.fixture(scope="module")
def blender_runs(walk_clip, tmp_path_factory):
    """Export every case, import them all in one Blender process, return {case name: Case}."""
    out = tmp_path_factory.mktemp("blender")
    clip, cmu = walk_clip
    cases: dict[str, Case] = {}
    for fmt, names in (("bvh", "mixamo"), ("fbx", "mixamorig"), ("glb", "standard")):
        opts = ExportOptions(names=names)
        res = export_clip(clip, **{fmt: out / f"walk.{fmt}"}, options=opts)
        exp, fps = _expected_cm(clip, opts)
        cases[f"walk_{fmt}"] = Case(res.written[fmt], names, exp, fps, res.frames, cmu / 10.0)
    vclip, times = _variable_rate_clip()
    for fmt, fps in (("bvh", 29.97), ("fbx", 25.0)):
        opts = ExportOptions(fps=fps, rotation_order="XYZ", smoothing=True, foot_lock=True)
        res = export_clip(vclip, **{fmt: out / f"var.{fmt}"}, options=opts)
        assert res.resampled and res.frames == int((times[-1] - times[0]) * fps) + 1
        exp, _ = _expected_cm(vclip, opts)
        cases[f"var_{fmt}"] = Case(res.written[fmt], "standard", exp, fps, res.frames)
    jobs = [(c.path, out / f"{k}.json", c.fps if c.path.suffix == ".glb" else None) for k, c in cases.items()]
    for case, result in zip(cases.values(), import_and_sample_many(jobs)):
        case.result = result
    return cases


@pytest.mark.parametrize("case", ["walk_bvh", "walk_fbx", "walk_glb"])
def test_blender_import_matches_every_joint_every_frame(blender_runs, case):
    """CMU 08_01, 277 frames at 120 fps: frame count, fps and every joint in every frame agree."""
    c = blender_runs[case]
    got = c.result
    assert got["frame_end"] - got["frame_start"] + 1 == c.frames == len(c.expected_cm)
    assert got["frame_start"] == (0 if c.path.suffix == ".glb" else 1)
    assert got["fps"] == pytest.approx(c.fps, rel=1e-4)
    joints = _blender_joints_cm(got, NAME_SETS[c.names])
    err = np.linalg.norm(joints - c.expected_cm, axis=-1)
    assert err.max() <= TOL_CM, f"{case}: max {err.max():.3f} cm"
    # round trip from the CMU source skeleton: CMU -> 17 joints -> our file -> Blender -> joints
    err_src = np.linalg.norm(joints - c.source_cm, axis=-1)
    assert err_src.max() <= TOL_CM, f"{case}: max {err_src.max():.3f} cm from the CMU joints"
    # upright in Blender's own frame: the head above the ankles (Z up)
    h = np.asarray(got["heads_m"])
    names = NAME_SETS[c.names]
    head, ankle = names[JOINT_TO_RIG[J["head"]]], names[JOINT_TO_RIG[J["left_ankle"]]]
    assert (h[:, got["bones"].index(head), 2] > h[:, got["bones"].index(ankle), 2] + 1.0).all()


@pytest.mark.parametrize("case", ["var_bvh", "var_fbx"])
def test_blender_variable_rate_clip_with_gaps_and_rotation_order(blender_runs, case):
    """Irregular timestamps + a gap without a person, resampled, XYZ order, clean-ups on: Blender agrees.

    FBX is tested at an integer rate (25 fps), BVH at 29.97: for 29.97 fps Blender's FBX importer
    sets the scene to 30 fps with fps_base 1.001 but converts key times with the integer 30, so
    keys land on fractional frames (a Blender quirk; the file's KTime values are exact seconds).
    """
    c = blender_runs[case]
    got = c.result
    assert got["frame_end"] - got["frame_start"] + 1 == c.frames
    assert got["fps"] == pytest.approx(c.fps, rel=1e-4)
    err = np.linalg.norm(_blender_joints_cm(got, NAME_SETS["standard"]) - c.expected_cm, axis=-1)
    assert err.max() <= TOL_CM, f"{case}: max {err.max():.3f} cm"


def test_blender_rest_pose_is_upright_t_pose(blender_runs):
    got = blender_runs["var_fbx"].result
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
