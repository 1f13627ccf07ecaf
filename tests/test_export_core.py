"""Export without Blender: rest rig, rotations, BVH/FBX/GLB encoders read back, filters, API/CLI safety."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from blender_tools.clips import clip_from_world, cmu_clip
from blender_tools.cmu import CMU_DIR, cmu_joints_mm
from engines.skeleton import J
from mocap_app.clip import Clip
from mocap_app.export import (ExportError, ExportOptions, add_convert_parser, camera_to_world_fallback,
                              export_clip, prepare_motion, run_convert)
from mocap_app.export.bvh import VALID_ORDERS, BvhFormatError, bvh_text, parse_bvh, read_bvh
from mocap_app.export.fbx import KTIME_PER_SECOND, fbx_bytes, parse_fbx
from mocap_app.export.filters import fill_gaps, foot_lock, is_constant_rate, one_euro, resample
from mocap_app.export.rig import JOINT_TO_RIG, NAME_SETS, RigError, build_rig
from mocap_app.export.rotations import forward_kinematics, positions_to_motion

pytestmark = pytest.mark.skipif(not CMU_DIR.is_dir(), reason=f"CMU mocap not found at {CMU_DIR}")


@pytest.fixture(scope="module")
def walk():
    """08_01 (walk, val subject) at 120 fps, T-pose frame dropped: joints [N,17,3] mm, frame time."""
    return cmu_joints_mm(CMU_DIR / "08_01.bvh")


def _rig_joints_mm(rig, motion):
    return forward_kinematics(rig, motion)[:, list(JOINT_TO_RIG)] * 10.0


# ------------------------------------------------------------------------------------ rig
def test_rest_pose_is_t_pose_facing_plus_z_in_cm(walk):
    joints, _ = walk
    rig = build_rig(joints, np.ones(len(joints), bool))
    rest = rig.rest_positions_cm()[list(JOINT_TO_RIG)]
    assert rest[J["left_wrist"], 0] > 50 and rest[J["right_wrist"], 0] < -50        # arms out, left = +X
    assert abs(rest[J["left_wrist"], 1] - rest[J["thorax"], 1]) < 1e-9               # arms level
    assert rest[J["head"], 1] > rest[J["thorax"], 1] > rest[J["pelvis"], 1] > rest[J["left_ankle"], 1]
    assert rest[J["nose"], 2] > rest[J["head"], 2]                                     # nose forward = +Z
    # centimetres: a CMU thigh is ~40 cm
    thigh_l = np.median(np.linalg.norm(joints[:, J["left_knee"]] - joints[:, J["left_hip"]], axis=-1)) / 10
    thigh_r = np.median(np.linalg.norm(joints[:, J["right_knee"]] - joints[:, J["right_hip"]], axis=-1)) / 10
    assert rig.bone_lengths_cm["left_knee"] == pytest.approx(thigh_l, rel=1e-9)
    assert rig.bone_lengths_cm["right_knee"] == pytest.approx(thigh_r, rel=1e-9)
    assert 30 < rig.bone_lengths_cm["left_knee"] < 50
    sym = build_rig(joints, np.ones(len(joints), bool), symmetric=True)
    assert sym.bone_lengths_cm["left_knee"] == pytest.approx((thigh_l + thigh_r) / 2, rel=1e-9)
    assert sym.bone_lengths_cm["right_knee"] == sym.bone_lengths_cm["left_knee"]


def test_midpoint_definitions_give_a_symmetric_pelvis(walk):
    """A lifter whose pelvis sits off the hip midpoint still gets hips at +-half the hip width."""
    joints, _ = walk
    off = joints.copy()
    off[:, J["pelvis"]] += np.array([30.0, 10.0, 0.0])       # 3 cm to the left, 1 cm up
    prep = prepare_motion(off, np.arange(len(off)) / 120.0, np.ones(len(off), bool))
    rig = prep.rig
    assert rig.offsets_cm[rig.names.index("left_hip")] == pytest.approx(-rig.offsets_cm[rig.names.index("right_hip")])
    assert np.abs(prep.joints_mm[:, J["pelvis"]] - joints[:, J["pelvis"]]).max() < 1e-9
    assert prep.fk_error_mm.max() < 5.0


def test_bone_lengths_ignore_outlier_and_invalid_frames(walk):
    joints, _ = walk
    noisy = joints.copy()
    noisy[:5, J["left_wrist"]] += 800.0           # 5 wildly wrong frames
    valid = np.ones(len(joints), bool)
    noisy[10:20] = np.nan
    valid[10:20] = False
    a = build_rig(joints, np.ones(len(joints), bool)).bone_lengths_cm["left_wrist"]
    b = build_rig(noisy, valid).bone_lengths_cm["left_wrist"]
    assert b == pytest.approx(a, abs=0.2)
    with pytest.raises(RigError, match="no frame with a person"):
        build_rig(joints, np.zeros(len(joints), bool))


def test_mixamo_names():
    names = NAME_SETS["mixamo"]
    for n in ("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head", "LeftUpLeg", "LeftLeg", "LeftFoot",
              "RightUpLeg", "LeftArm", "LeftForeArm", "LeftHand", "RightHand"):
        assert n in names
        assert "mixamorig:" + n in NAME_SETS["mixamorig"]
    assert len(set(names)) == len(names) == len(NAME_SETS["standard"])


# ------------------------------------------------------------------------------------ rotations
def test_rotations_reproduce_cmu_joints(walk):
    """Rotations + constant bone lengths land every joint within 5 mm of the CMU-derived joints."""
    joints, _ = walk
    rig = build_rig(joints, np.ones(len(joints), bool))
    motion = positions_to_motion(rig, joints)
    err = np.linalg.norm(_rig_joints_mm(rig, motion) - joints, axis=-1)
    assert err.max() < 5.0, err.max(axis=0)
    # the rigid hip line and the legs are exact
    legs = [J[n] for n in ("pelvis", "left_hip", "left_knee", "left_ankle", "right_hip", "right_knee",
                           "right_ankle")]
    assert err[:, legs].max() < 0.01


def test_rigid_skeleton_is_exact_for_random_poses():
    """Joints generated by FK of random rotations on a rig are recovered to numerical precision."""
    rng = np.random.default_rng(0)
    base, _ = cmu_joints_mm(CMU_DIR / "08_01.bvh", stop=3)
    rig = build_rig(base, np.ones(len(base), bool))
    from mocap_app.export.rotations import Motion
    n = 50
    q = Rotation.from_rotvec(rng.normal(scale=0.8, size=(n * len(rig.names), 3))).as_quat()
    m = Motion(root_cm=rng.normal(size=(n, 3)) * 50, local_quat=q.reshape(n, len(rig.names), 4))
    target = _rig_joints_mm(rig, m)
    solved = positions_to_motion(rig, target)
    assert np.abs(_rig_joints_mm(rig, solved) - target).max() < 1e-6


def test_twist_is_stable_between_frames(walk):
    """Smooth input -> smooth local rotations: no joint turns more than 20 degrees between 120 fps frames."""
    joints, _ = walk
    rig = build_rig(joints, np.ones(len(joints), bool))
    q = positions_to_motion(rig, joints).local_quat
    n, r = q.shape[:2]
    a = Rotation.from_quat(q[1:].reshape(-1, 4))
    b = Rotation.from_quat(q[:-1].reshape(-1, 4))
    step = np.degrees((a * b.inv()).magnitude()).reshape(n - 1, r)
    assert step.max() < 20.0, (rig.names[int(step.max(0).argmax())], step.max())


# ------------------------------------------------------------------------------------ BVH
@pytest.mark.parametrize("order", VALID_ORDERS)
def test_bvh_round_trip_every_rotation_order(walk, order):
    joints, ft = walk
    joints = joints[:60]
    rig = build_rig(joints, np.ones(len(joints), bool))
    m = positions_to_motion(rig, joints)
    text = bvh_text(rig, m, ft, order)
    assert f"CHANNELS 3 {' '.join(a + 'rotation' for a in order)}" in text
    bvh = parse_bvh(text)
    assert bvh.frame_count == 60 and bvh.frame_time_s == pytest.approx(ft, rel=1e-9)
    assert bvh.names == list(rig.names)
    pos = bvh.world_positions()[:, list(JOINT_TO_RIG)] * 10.0
    assert np.abs(pos - _rig_joints_mm(rig, m)).max() < 0.05       # 4-decimal text rounding only
    # Euler channels are continuous: no 360-degree wraps or 180-degree solution flips between frames.
    # Near gimbal lock (middle angle ~90 deg, e.g. a hanging arm in XZY) angles may still move fast.
    jump = np.abs(np.diff(bvh.motion[:, 3:], axis=0)).max()
    assert jump < (30.0 if order == "ZXY" else 180.0)


def test_bvh_reader_agrees_with_bvhio_on_cmu():
    bvhio = pytest.importorskip("bvhio")
    path = CMU_DIR / "08_01.bvh"
    ours = read_bvh(path)
    pos = ours.world_positions()
    root = bvhio.readAsHierarchy(str(path))
    for frame in (1, 100, 250):
        root.loadPose(frame)
        for name in ("LeftHand", "RightFoot", "Head", "Hips"):
            theirs = np.array(root.filter(name)[0].PositionWorld)
            assert np.abs(pos[frame, ours.names.index(name)] - theirs).max() < 1e-3


def test_bvh_reader_rejects_garbage():
    with pytest.raises(BvhFormatError):
        parse_bvh("HIERARCHY\nROOT a\n{\nOFFSET 0 0\n")
    with pytest.raises(BvhFormatError, match="holds"):
        parse_bvh("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 3 Xposition Yposition Zposition } "
                  "MOTION Frames: 2 Frame Time: 0.1 1 2 3")


# ------------------------------------------------------------------------------------ FBX
def _find(nodes, name):
    return [n for n in nodes if n.name == name]


def test_fbx_structure_read_back(walk):
    joints, _ = walk
    joints = joints[:90]
    rig = build_rig(joints, np.ones(len(joints), bool))
    m = positions_to_motion(rig, joints)
    data = fbx_bytes(rig, m, fps=30.0)
    assert data[:23] == b"Kaydara FBX Binary  \x00\x1a\x00"
    assert int.from_bytes(data[23:27], "little") == 7400
    assert data.endswith(bytes.fromhex("f85a8c6adef5d97eece90ce3758f290b"))
    top = parse_fbx(data)
    gs = _find(top, "GlobalSettings")[0].children[1]
    props = {p.props[0]: p.props[4:] for p in gs.children}
    assert props["UpAxis"] == [1] and props["FrontAxis"] == [2] and props["CoordAxis"] == [0]
    assert props["UnitScaleFactor"] == [1.0] and props["TimeMode"] == [6]
    objects = _find(top, "Objects")[0].children
    models = [o for o in objects if o.name == "Model"]
    assert all(o.props[2] == "LimbNode" for o in models)
    assert len(models) == len(rig.names) + len(rig.end_sites_cm)
    assert len(_find(objects, "Pose")) == 1 and _find(objects, "Pose")[0].props[2] == "BindPose"
    assert len(_find(objects, "AnimationStack")) == 1 and len(_find(objects, "AnimationLayer")) == 1
    assert len(_find(objects, "AnimationCurveNode")) == 3 * len(models)
    curves = _find(objects, "AnimationCurve")
    times = max((c.children[2].props[0] for c in curves), key=len)
    assert len(times) == 90
    assert times[-1] == round(89 * KTIME_PER_SECOND / 30.0)
    # rotation curves hold the solved rotations: check one joint's Euler XYZ against the motion
    conns = _find(top, "Connections")[0].children
    knee_id = next(o.props[0] for o in models if o.props[1].startswith("left_knee\x00"))
    r_node = next(c.props[1] for c in conns if c.props[0] == "OP" and c.props[2] == knee_id
                  and c.props[3] == "Lcl Rotation")
    xyz = {}
    for c in conns:
        if c.props[0] == "OP" and c.props[2] == r_node:
            curve = next(cv for cv in curves if cv.props[0] == c.props[1])
            xyz[c.props[3]] = curve.children[3].props[0]
    eul = np.stack([xyz["d|X"], xyz["d|Y"], xyz["d|Z"]], axis=-1)
    got = Rotation.from_euler("xyz", eul, degrees=True)
    want = Rotation.from_quat(m.local_quat[:, rig.names.index("left_knee")])
    assert np.degrees((got * want.inv()).magnitude()).max() < 0.01


def test_fbx_read_by_assimp(walk, tmp_path):
    """A second, independent FBX reader (the Open Asset Import Library's command-line tool, Debian
    package ``assimp-utils``): its node tree + animation channels give the same joints as our FK."""
    import json
    import shutil
    import subprocess
    exe = shutil.which("assimp")
    if exe is None:
        pytest.skip("assimp command not installed (apt-get install assimp-utils)")
    joints, _ = walk
    joints = joints[:120]
    rig = build_rig(joints, np.ones(len(joints), bool))
    m = positions_to_motion(rig, joints)
    (tmp_path / "a.fbx").write_bytes(fbx_bytes(rig, m, fps=120.0))
    r = subprocess.run([exe, "export", str(tmp_path / "a.fbx"), str(tmp_path / "a.json"), "-fjson"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    d = json.loads((tmp_path / "a.json").read_text())
    assert len(d["animations"]) == 1
    anim = d["animations"][0]
    assert anim["tickspersecond"] == 120 and anim["duration"] == pytest.approx(119)
    channels = {c["name"]: c for c in anim["channels"]}
    nodes = []

    def walk_nodes(n, parent):
        nodes.append((n["name"], parent, np.array(n["transformation"]).reshape(4, 4)))
        k = len(nodes) - 1
        for c in n.get("children", []):
            walk_nodes(c, k)
    walk_nodes(d["rootnode"], -1)
    n = len(joints)
    pos, glob = {}, {}
    for i, (name, parent, mat) in enumerate(nodes):
        if name in channels:      # animated: assimp keys, quaternions as (w, x, y, z)
            t = np.array([k[1] for k in channels[name]["positionkeys"]])
            rot = Rotation.from_quat(np.array([k[1] for k in channels[name]["rotationkeys"]])[:, [1, 2, 3, 0]])
            assert len(t) == n
        else:                     # constant: the node's own transform
            t = np.tile(mat[:3, 3], (n, 1))
            rot = Rotation.from_matrix(np.tile(mat[:3, :3], (n, 1, 1)))
        pos[i], glob[i] = (t, rot) if parent < 0 else (pos[parent] + glob[parent].apply(t), glob[parent] * rot)
    names = [nd[0] for nd in nodes]
    got = np.stack([pos[names.index(nm)] for nm in rig.names], axis=1)
    assert np.abs(got - forward_kinematics(rig, m)).max() < 0.01       # cm


# ------------------------------------------------------------------------------------ GLB
def test_glb_read_back_with_pygltflib(walk, tmp_path):
    g = pytest.importorskip("pygltflib")
    joints, _ = walk
    joints = joints[:60]
    clip = clip_from_world(joints, np.arange(60) / 120.0, fps=120.0)
    res = export_clip(clip, glb=tmp_path / "w.glb")
    gl = g.GLTF2().load(str(res.written["glb"]))
    blob = gl.binary_blob()

    def acc(i):
        a = gl.accessors[i]
        v = gl.bufferViews[a.bufferView]
        width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[a.type]
        return np.frombuffer(blob, np.float32, a.count * width, v.byteOffset).reshape(a.count, width)

    anim = gl.animations[0]
    t = acc(anim.samplers[0].input)[:, 0]
    assert len(t) == 60 and t[-1] == pytest.approx(59 / 120.0, abs=1e-6)
    # forward kinematics from the file's own data (metres) reproduces the exported joints
    n_nodes = len(gl.nodes)
    parents = [-1] * n_nodes
    for i, nd in enumerate(gl.nodes):
        for c in nd.children or []:
            parents[c] = i
    trans = {i: np.tile(nd.translation, (60, 1)) for i, nd in enumerate(gl.nodes)}
    rots = {i: Rotation.identity(60) for i in range(n_nodes)}
    for ch in anim.channels:
        out = acc(anim.samplers[ch.sampler].output).astype(float)
        if ch.target.path == "translation":
            trans[ch.target.node] = out
        else:
            rots[ch.target.node] = Rotation.from_quat(out)
    pos, glob = {}, {}
    for i in range(n_nodes):      # nodes are written parents-first
        p = parents[i]
        if p < 0:
            pos[i], glob[i] = trans[i], rots[i]
        else:
            pos[i] = pos[p] + glob[p].apply(trans[i])
            glob[i] = glob[p] * rots[i]
    names = [nd.name for nd in gl.nodes]
    got = np.stack([pos[names.index(n)] for n in NAME_SETS["standard"]], axis=1)[:, list(JOINT_TO_RIG)] * 1000
    assert np.abs(got - joints).max() < 5.0


# ------------------------------------------------------------------------------------ filters
def test_fill_gaps_interpolates_short_and_reports_long(walk, caplog):
    joints, _ = walk
    joints = joints[:240]
    t = np.arange(240) / 120.0
    valid = np.ones(240, bool)
    valid[50:60] = False           # 0.1 s: interpolated
    valid[100:200] = False         # 0.85 s: held
    broken = joints.copy()
    broken[~valid] = np.nan
    with caplog.at_level(logging.WARNING):
        filled, rep = fill_gaps(broken, t, valid, max_gap_s=0.5)
    assert rep.interpolated == [(50, 60)] and rep.held and rep.held[0][:2] == (100, 200)
    assert "hold the nearest pose" in caplog.text
    assert np.isfinite(filled).all()
    assert np.abs(filled[50:60] - joints[50:60]).max() < 30.0     # a walk is near-linear over 0.1 s
    assert np.array_equal(filled[120], joints[99])                 # held: nearest valid frame


def test_resample_variable_rate():
    rng = np.random.default_rng(1)
    t = np.cumsum(rng.uniform(0.02, 0.05, 100))
    assert not is_constant_rate(t)
    x = np.sin(t)[:, None, None] * np.ones((1, 17, 3))
    y, grid = resample(x, t, 30.0)
    assert is_constant_rate(grid) and np.allclose(np.diff(grid), 1 / 30.0)
    assert np.abs(y[:, 0, 0] - np.sin(grid)).max() < 2e-3


def test_one_euro_reduces_jitter_and_follows_motion():
    rng = np.random.default_rng(2)
    t = np.arange(300) / 30.0
    clean = (300 * np.sin(t))[:, None]
    noisy = clean + rng.normal(scale=10.0, size=clean.shape)
    out = one_euro(noisy, t, min_cutoff_hz=1.0, beta=0.02)
    # jitter (frame-to-frame acceleration) drops; the signal itself is followed
    jitter = np.std(np.diff(noisy[30:, 0], 2))
    assert np.std(np.diff(out[30:, 0], 2)) < 0.6 * jitter
    assert np.abs(out[30:] - clean[30:]).mean() < np.abs(noisy - clean).mean()
    # a lower beta smooths more
    assert np.std(np.diff(one_euro(noisy, t, 1.0, 0.002)[30:, 0], 2)) < 0.3 * jitter


def test_foot_lock_pins_contacts_and_keeps_bone_lengths(walk):
    joints, _ = walk
    t = np.arange(len(joints)) / 120.0
    out, rep = foot_lock(joints, t, height_mm=100.0, speed_mm_s=250.0)
    assert rep.contact_frames["left"] > 20 and rep.contact_frames["right"] > 20
    from mocap_app.export.filters import _runs
    slides_before, slides_after = [], []
    for side in ("left", "right"):
        ank = J[f"{side}_ankle"]
        speed = np.linalg.norm(np.gradient(joints[:, ank], t, axis=0), axis=-1)
        contact = (joints[:, ank, 1] < 100.0) & (speed < 250.0)
        for a, b in _runs(contact):
            if b - a > 10:
                slides_before.append(np.abs(joints[a:b, ank, [0, 2]] - joints[a, ank, [0, 2]]).max())
                slides_after.append(np.abs(out[a:b, ank, [0, 2]] - out[a, ank, [0, 2]]).max())
    # CMU's stance feet slide by 2+ cm; locked ones do not move
    assert len(slides_before) >= 3 and max(slides_before) > 20.0
    assert max(slides_after) < 1.0
    ank = J["left_ankle"]
    thigh = np.linalg.norm(out[:, J["left_knee"]] - out[:, J["left_hip"]], axis=-1)
    assert np.ptp(thigh) < 15.0


# ------------------------------------------------------------------------------------ API / CLI
def test_export_clip_does_not_touch_the_clip_and_reports(tmp_path):
    clip, _ = cmu_clip(stop=121, step=2)
    clip.person[10:12] = False
    clip.joints_world_mm[10:12] = np.nan
    before = {k: np.copy(v) for k, v in clip.__dict__.items() if isinstance(v, np.ndarray)}
    res = export_clip(clip, bvh=tmp_path / "a.bvh", fbx=tmp_path / "a.fbx",
                      options=ExportOptions(smoothing=True, foot_lock=True, names="mixamo"))
    for k, v in before.items():
        assert np.array_equal(getattr(clip, k), v, equal_nan=True), k
    assert set(res.written) == {"bvh", "fbx"} and res.frames == len(clip) and res.fps == pytest.approx(60.0, rel=1e-4)
    assert res.gaps.interpolated == [(10, 12)] and not res.warnings
    assert read_bvh(res.written["bvh"]).names[0] == "Hips"


def test_camera_fallback_formula():
    clip, joints = cmu_clip(stop=121, step=4)
    w = camera_to_world_fallback(clip.joints_cam_mm, clip.person)
    # same skeleton up to a vertical shift: floor at the low ankle
    assert np.allclose(w - w[:, :1], joints - joints[:, :1], atol=1e-6)
    assert np.percentile(np.minimum(w[:, J["left_ankle"], 1], w[:, J["right_ankle"], 1]), 5) == pytest.approx(0)


def test_clip_without_world_is_aligned_or_falls_back(tmp_path):
    """No world joints: world alignment (or the fallback, with a warning) gives an upright export."""
    clip, joints = cmu_clip("08_01.bvh", stop=None, step=4)
    clip.joints_world_mm = None
    clip.world = None
    res = export_clip(clip, bvh=tmp_path / "f.bvh")
    assert res.frames == len(clip) and [p.name for p in res] == ["f.bvh"]
    pos = read_bvh(tmp_path / "f.bvh").world_positions()[:, list(JOINT_TO_RIG)]
    up = pos[:, J["head"], 1] - pos[:, J["pelvis"], 1]
    assert (up > 40).all()                                          # head 40+ cm above the pelvis: upright
    assert abs(np.median(np.minimum(pos[:, J["left_ankle"], 1], pos[:, J["right_ankle"], 1]))) < 15  # near the floor
    assert clip.joints_world_mm is None                              # the clip is left alone


def test_variable_rate_clip_is_resampled():
    joints, _ = cmu_joints_mm(CMU_DIR / "08_01.bvh", stop=241)
    rng = np.random.default_rng(3)
    idx = np.sort(rng.choice(np.arange(240), 90, replace=False))
    prep = prepare_motion(joints[idx], idx / 120.0, np.ones(90, bool), ExportOptions(fps=25.0))
    assert prep.resampled and prep.fps == 25.0
    assert len(prep.motion) == int(np.floor((idx[-1] - idx[0]) / 120.0 * 25 + 1e-6)) + 1


def test_prepare_motion_rejects_bad_shapes():
    with pytest.raises(ExportError, match=r"expected joints \[N, 17, 3\]"):
        prepare_motion(np.zeros((5, 16, 3)), np.arange(5.0), np.ones(5, bool))
    with pytest.raises(ExportError, match="N timestamps"):
        prepare_motion(np.zeros((5, 17, 3)), np.arange(4.0), np.ones(5, bool))


def test_bad_options_and_paths_raise_export_error(tmp_path):
    clip, _ = cmu_clip(stop=41, step=4)
    with pytest.raises(ExportError, match="rotation order"):
        export_clip(clip, bvh=tmp_path / "x.bvh", options=ExportOptions(rotation_order="ABC"))
    with pytest.raises(ExportError, match="does not exist"):
        export_clip(clip, bvh=tmp_path / "no" / "x.bvh")
    with pytest.raises(ExportError, match="is a folder"):
        export_clip(clip, fbx=tmp_path)
    with pytest.raises(ExportError, match="nothing to do"):
        export_clip(clip)
    with pytest.raises(ExportError, match="foot locking"):
        export_clip(clip, bvh=tmp_path / "x.bvh", options=ExportOptions(foot_lock=True, foot_speed_mm_s=0))
    bad_t = Clip(**{**clip.__dict__, "timestamps_s": np.full(len(clip), np.nan)})
    with pytest.raises(ExportError, match="finite"):
        export_clip(bad_t, bvh=tmp_path / "x.bvh")
    empty = Clip(**{**clip.__dict__, "person": np.zeros(len(clip), bool)})
    with pytest.raises(ExportError, match="no frame of the clip has a person"):
        export_clip(empty, bvh=tmp_path / "x.bvh")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    """ENOSPC while writing: ExportError, the previous file intact, no temporary file left behind."""
    clip, _ = cmu_clip(stop=41, step=4)
    target = tmp_path / "take.fbx"
    target.write_bytes(b"previous")

    def full(fd):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ExportError, match="No space left"):
        export_clip(clip, fbx=target)
    assert target.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.fbx"]


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_convert_parser(parser.add_subparsers(dest="cmd"))
    return parser.parse_args(argv)


def test_cli_convert_and_errors(tmp_path, capsys):
    clip, _ = cmu_clip(stop=61, step=2)
    path = clip.save(tmp_path / "c.json")
    args = _parse(["convert", str(path), "--bvh", str(tmp_path / "o.bvh"), "--fbx", str(tmp_path / "o.fbx"),
                   "--names", "mixamorig", "--rotation-order", "xyz", "--smooth", "--foot-lock", "--fps", "30"])
    assert args.func is run_convert and run_convert(args) == 0
    bvh = read_bvh(tmp_path / "o.bvh")
    assert bvh.frame_time_s == pytest.approx(1 / 30.0) and bvh.joints[1].channels == [
        "Xrotation", "Yrotation", "Zrotation"]
    assert bvh.names[0] == "mixamorig:Hips"
    assert "wrote BVH" in capsys.readouterr().out

    # every problem is one line with the exit code `mocap-app` documents: 2 usage, 3 input, 4 no person, 5 output
    assert run_convert(_parse(["convert", str(tmp_path / "missing.json"), "--bvh", "x.bvh"])) == 3
    assert "clip file not found" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert run_convert(_parse(["convert", str(tmp_path / "bad.json"), "--bvh", "x.bvh"])) == 3
    assert "not a readable clip" in capsys.readouterr().err
    assert run_convert(_parse(["convert", str(path), "--fbx", str(tmp_path / "nodir" / "o.fbx")])) == 5
    err = capsys.readouterr().err
    assert err.startswith("mocap-app: error: cannot write the FBX file") and "Traceback" not in err
    assert run_convert(_parse(["convert", str(path)])) == 2
    assert run_convert(_parse(["convert", str(path), "--bvh", str(tmp_path / "o.bvh"), "--fps", "-5"])) == 2
    assert "fps must be in" in capsys.readouterr().err
    # two outputs on one path: refused before either is written (the second used to replace the first)
    same = tmp_path / "same.glb"
    assert run_convert(_parse(["convert", str(path), "--fbx", str(same), "--glb", str(same)])) == 5
    assert "FBX and GLB files would both be written to" in capsys.readouterr().err and not same.exists()
    nobody = dataclasses.replace(clip, person=np.zeros(len(clip), bool))
    assert run_convert(_parse(["convert", str(nobody.save(tmp_path / "n.json")), "--bvh", "x.bvh"])) == 4
    assert "no frame of the clip has a person" in capsys.readouterr().err


def test_mocap_app_convert_command(tmp_path, capsys):
    """`mocap-app convert` (the lead's CLI) reaches run_convert."""
    cli = pytest.importorskip("mocap_app.cli")
    clip, _ = cmu_clip(stop=61, step=2)
    path = clip.save(tmp_path / "c.json")
    assert cli.main(["convert", str(path), "--fbx", str(tmp_path / "o.fbx"), "--names", "mixamo"]) == 0
    assert (tmp_path / "o.fbx").read_bytes().startswith(b"Kaydara FBX Binary")
    assert cli.main(["convert", str(tmp_path / "nope.json"), "--bvh", str(tmp_path / "o.bvh")]) != 0
    assert "clip file not found" in capsys.readouterr().err


def test_twist_stays_continuous_through_the_singular_pose():
    """A bone sweeping past the opposite of its rest direction (3 degrees off it), then holding still:
    the shortest arc flips about the bone by ~180 degrees within a frame or two; the carried twist
    keeps every frame step small (unwinding slowly afterwards), and the bone direction exact."""
    from mocap_app.export.rotations import _continuous_swing, shortest_arc
    d0 = np.array([0.0, -1.0, 0.0])
    n_move, n_hold = 20, 60
    s = np.concatenate([np.linspace(-0.5, 0.5, n_move), np.full(n_hold, 0.5)])   # path parameter
    off = np.radians(3.0)
    d = np.stack([np.full_like(s, np.sin(off)), np.cos(off) * np.cos(s), np.cos(off) * np.sin(s)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)          # passes 3 degrees from -d0 = +Y
    n = len(d)
    swing = shortest_arc(np.tile(d0, (n, 1)), d)
    steady = _continuous_swing(swing, d0, fps=30.0, settle_s=2.0)

    def steps(r):
        return np.degrees((r[1:] * r[:-1].inv()).magnitude())
    assert steps(swing).max() > 90.0                   # the raw shortest arc flips
    assert steps(steady).max() < 10.0                  # carried twist: small steps
    assert np.allclose(steady.apply(np.tile(d0, (n, 1))), d, atol=1e-9)   # same bone direction
    assert steps(steady)[n_move:].max() < 4.0          # the extra twist unwinds slowly while holding


def test_foot_lock_holds_in_the_exported_rig_with_noisy_bone_lengths(walk):
    """Lifter-like input (hip width +-10 % and knees off by ~1 cm, so thigh and shin lengths jitter
    per frame; ankles as captured): the *exported* ankle, not just the cleaned target, stays still
    during a contact (second IK pass on the rig's own legs)."""
    from mocap_app.export.filters import _runs
    joints, _ = walk
    t = np.arange(len(joints)) / 120.0
    rng = np.random.default_rng(5)
    noisy = joints.copy()
    pelvis = joints[:, J["pelvis"]]
    width = rng.uniform(0.9, 1.1, (len(joints), 1))        # both hips: the midpoint stays the pelvis
    for side in ("left", "right"):
        noisy[:, J[f"{side}_hip"]] = pelvis + (joints[:, J[f"{side}_hip"]] - pelvis) * width
        noisy[:, J[f"{side}_knee"]] += rng.normal(scale=6.0, size=(len(joints), 3))
    prep = prepare_motion(noisy, t, np.ones(len(t), bool), ExportOptions(foot_lock=True))
    fk = forward_kinematics(prep.rig, prep.motion)[:, list(JOINT_TO_RIG)] * 10.0
    checked = 0
    for side in ("left", "right"):
        a = J[f"{side}_ankle"]
        still = np.concatenate([[False], np.abs(np.diff(prep.joints_mm[:, a, [0, 2]], axis=0)).max(-1) < 1e-6])
        for s, e in _runs(still):
            if e - s > 5:
                checked += 1
                assert np.abs(fk[s - 1:e, a, [0, 2]] - fk[s - 1, a, [0, 2]]).max() < 0.05
    assert checked >= 2
