"""BVH reading/FK on real CMU files (checked against bvhio), and the virtual-camera dataset."""
import numpy as np
import pytest

from engines.bvh import CMU_UNIT_MM, cmu_to_joints17, forward_kinematics, load_joints17, read_bvh
from engines.data import CameraSampler, MOCAP_DIR, load_split, mocap_index, view_poses
from engines.skeleton import J, ROOT, bone_lengths

pytestmark = pytest.mark.skipif(not MOCAP_DIR.exists(), reason="../shared/data/mocap not present")


@pytest.mark.parametrize("name", ["08_01.bvh", "124_07.bvh"])  # LF file and a mixed CRLF/LF file
def test_fk_matches_bvhio(name):
    bvhio = pytest.importorskip("bvhio")
    bvh = read_bvh(MOCAP_DIR / name)
    pos, _ = forward_kinematics(bvh)
    root = bvhio.readAsHierarchy(str(MOCAP_DIR / name))
    for f in (0, 1, bvh.num_frames // 2, bvh.num_frames - 1):
        root.loadPose(f)
        for joint, _, _ in root.layout():
            np.testing.assert_allclose(pos[f, bvh.index(joint.Name)], np.array(joint.PositionWorld), atol=1e-4)


def test_joints17_units_and_semantics():
    j, dt = load_joints17(MOCAP_DIR / "08_01.bvh")
    assert dt == pytest.approx(1 / 120, rel=1e-3)
    # standing adult: pelvis ~0.8-1.1 m high, ankles near the floor, head above thorax
    assert 750 < np.median(j[:, ROOT, 1]) < 1150
    assert np.median(j[:, J["left_ankle"], 1]) < 200
    assert (j[:, J["head"], 1] > j[:, J["thorax"], 1]).mean() > 0.99
    thigh = np.linalg.norm(j[:, J["left_knee"]] - j[:, J["left_hip"]], axis=-1)
    assert 350 < thigh.mean() < 500 and thigh.std() < 1e-3   # rigid bone, metric units
    # the first frame is the added T-pose, which is dropped by default
    bvh = read_bvh(MOCAP_DIR / "08_01.bvh")
    pos, rot = forward_kinematics(bvh, slice(0, 1))
    tpose = cmu_to_joints17(bvh, pos, rot)[0] * CMU_UNIT_MM
    assert abs(tpose[J["left_wrist"], 1] - tpose[J["left_shoulder"], 1]) < 100   # arms ~horizontal (hanging: ~500)
    assert tpose[J["nose"], 2] > tpose[J["head"], 2]    # T-pose faces +Z: nose in front of the head


def test_split_is_by_subject():
    rows = mocap_index()
    train = {r["subject"] for r in rows if r["split"] == "train"}
    val = {r["subject"] for r in rows if r["split"] == "val"}
    assert val == {"06", "08", "90", "104"} and not train & val
    d = load_split("val")
    assert set(np.unique(d["subject"])) == val


def test_virtual_cameras_are_plausible():
    poses = load_split("val")["joints_mm"][::7]
    cfg = CameraSampler()
    v = view_poses(poses, np.random.default_rng(0), cfg)
    n = len(poses)
    # camera height above the floor and horizontal distance, from the world->camera transform
    assert (v.cam_center_mm[:, 1] >= 300 - 1e-3).all() and (v.cam_center_mm[:, 1] <= 2200 + 1e-3).all()
    f = v.K[:, 0, 0]
    assert f.min() >= 400 and f.max() <= 2500
    assert np.allclose(np.linalg.det(v.R_world_to_cam), 1.0, atol=1e-5)
    # pitch from the optical axis in world coordinates (Y up)
    axis_w = v.R_world_to_cam[:, 2, :]
    pitch = np.degrees(np.arcsin(axis_w[:, 1]))
    assert pitch.min() >= -30.5 and pitch.max() <= 20.5 and pitch.std() > 8
    # re-projection is consistent, subjects appear anywhere incl. near borders, portrait sizes exist
    uv = v.joints_cam_mm[..., :2] / v.joints_cam_mm[..., 2:] * f[:, None, None] + v.K[:, None, :2, 2]
    np.testing.assert_allclose(uv, v.keypoints_px, atol=1e-2)
    rel = v.keypoints_px[:, ROOT] / v.image_wh
    assert (rel < 0.15).any(0).all() and (rel > 0.85).any(0).all()
    assert (v.image_wh[:, 1] > v.image_wh[:, 0]).mean() > 0.15
    inside = ((v.keypoints_px >= 0) & (v.keypoints_px <= v.image_wh[:, None] - 1)).all(-1).sum(-1)
    assert (inside >= cfg.min_joints_in_image).all()
    # upright people appear upright: head above the pelvis in the image for almost all
    assert (v.keypoints_px[:, J["head"], 1] < v.keypoints_px[:, ROOT, 1]).mean() > 0.9
    assert n == len(v.joints_cam_mm)


def test_retarget_bones_scales_lengths_keeps_directions():
    from engines.skeleton import BONES, DETECTOR_BONE_SCALE, retarget_bones
    j = load_split("val", raw=True)["joints_mm"][:50]
    scale = np.random.default_rng(0).uniform(0.7, 1.4, len(BONES))
    r = retarget_bones(j, scale)
    np.testing.assert_allclose(bone_lengths(r), bone_lengths(j) * scale, rtol=1e-4)
    np.testing.assert_allclose(r[:, ROOT], j[:, ROOT])
    for b, (p, c) in enumerate(BONES):
        d0 = (j[:, c] - j[:, p]) / np.linalg.norm(j[:, c] - j[:, p], axis=-1, keepdims=True)
        d1 = (r[:, c] - r[:, p]) / np.linalg.norm(r[:, c] - r[:, p], axis=-1, keepdims=True)
        np.testing.assert_allclose(d0, d1, atol=1e-4)
    # the dataset speaks the detector's proportions by default: e.g. a longer torso than CMU's
    default = load_split("val")["joints_mm"][:50]
    np.testing.assert_allclose(bone_lengths(default), bone_lengths(j) * np.array(DETECTOR_BONE_SCALE), rtol=1e-4)
    torso = np.linalg.norm(default[:, J["thorax"]] - default[:, ROOT], axis=-1)
    assert 450 < np.median(torso) < 600


def test_mix_bodies_keeps_legs_and_moves_the_upper_body_rigidly():
    from scipy.spatial.transform import Rotation

    from engines.absposelifter.train import LOWER_BODY, mix_bodies
    poses = load_split("train")["joints_mm"][::500].astype(np.float64)
    mixed = mix_bodies(poses, np.random.default_rng(0), 1.0)
    upper = [j for j in range(17) if j not in LOWER_BODY]
    np.testing.assert_allclose(mixed[:, LOWER_BODY], poses[:, LOWER_BODY])       # the legs are the receiver's
    assert np.abs(mixed[:, upper] - poses[:, upper]).max() > 100                  # the rest is someone else's

    def shape(P):   # distances among the upper-body joints and to the pelvis: unchanged by a rigid move
        return np.linalg.norm(P[:, upper, None] - P[:, None, [ROOT] + upper], axis=-1).reshape(len(P), -1)
    # every recombined upper body is one of the inputs' upper bodies, whole
    gap = np.abs(shape(mixed)[:, None] - shape(poses)[None]).max(-1).min(-1)
    assert gap.max() < 1e-6
    # turned about the vertical to face the receiver's way: when the only donors are the receiver itself
    # and the receiver turned by 70 deg about its pelvis, every mix gives back the receiver
    p = poses[:1]
    turn = Rotation.from_euler("y", 70, degrees=True).as_matrix()
    both = np.concatenate([p, (p - p[:, ROOT:ROOT + 1]) @ turn.T + p[:, ROOT:ROOT + 1]])
    for seed in range(4):
        out = mix_bodies(both, np.random.default_rng(seed), 1.0)
        np.testing.assert_allclose(out, both, atol=1e-6)


def test_swap_arms_moves_only_the_forearms_and_upper_arms_keeping_their_lengths():
    from engines.absposelifter.train import ARMS, _torso_frames, swap_arms
    poses = load_split("train")["joints_mm"][::500].astype(np.float64)
    out = swap_arms(poses, np.random.default_rng(0), 1.0)
    moved = sorted(j for arm in ARMS for j in arm[1:])
    kept = [j for j in range(17) if j not in moved]
    np.testing.assert_allclose(out[:, kept], poses[:, kept])
    assert np.abs(out[:, moved] - poses[:, moved]).max() > 100
    np.testing.assert_allclose(bone_lengths(out), bone_lengths(poses), rtol=1e-6)
    # each new arm's bone directions, seen from its torso, are some input pose's seen from that pose's torso
    def local(P, arm):
        d = P[:, list(arm[1:])] - P[:, list(arm[:2])]
        d = d / np.linalg.norm(d, axis=-1, keepdims=True)
        return np.einsum("nji,nkj->nki", _torso_frames(P), d).reshape(len(P), -1)
    for arm in ARMS:
        gap = np.abs(local(out, arm)[:, None] - local(poses, arm)[None]).max(-1).min(-1)
        assert gap.max() < 1e-6


def test_tilt_bodies_turns_poses_rigidly_about_a_horizontal_axis_through_the_pelvis():
    from engines.absposelifter.train import tilt_bodies
    poses = load_split("train")["joints_mm"][::500].astype(np.float64)
    out = tilt_bodies(poses, np.random.default_rng(0), 1.0)
    np.testing.assert_allclose(out[:, ROOT], poses[:, ROOT])
    d = lambda P: np.linalg.norm(P[:, :, None] - P[:, None], axis=-1)   # noqa: E731
    np.testing.assert_allclose(d(out), d(poses), atol=1e-6)
    def up(P):   # the trunk's direction
        v = P[:, J["thorax"]] - P[:, ROOT]
        return v / np.linalg.norm(v, axis=-1, keepdims=True)
    # many bodies end up far from upright, which the captured ones hardly ever are
    assert np.mean(up(out)[:, 1] < 0.5) > 0.4 and np.mean(up(poses)[:, 1] < 0.5) < 0.1
    half = tilt_bodies(poses, np.random.default_rng(1), 0.5)
    assert np.sum(np.abs(half - poses).max(axis=(1, 2)) > 1e-6) == round(len(poses) * 0.5)


def test_make_batch_clean_fraction_gives_exact_or_smaller_2d_errors():
    from engines.absposelifter.train import DEFAULT_ERROR_MODEL, make_batch
    from engines.noise import ErrorModel

    poses = load_split("train")["joints_mm"][::50][:400].astype(np.float64)
    em = ErrorModel.load(DEFAULT_ERROR_MODEL)

    def errors(**kw):
        kp, K, joints = (t.numpy() for t in make_batch(poses, np.random.default_rng(3), em, **kw))
        proj = np.einsum("nij,nkj->nki", K, joints)
        return np.linalg.norm(kp - proj[..., :2] / proj[..., 2:], axis=-1).max(-1)   # worst joint per pose, px

    full, none_, graded = errors(), errors(clean=0.5), errors(clean=0.5, graded=True)
    assert (full > 1e-3).all()                                    # the error model touches every pose
    exact = none_ < 1e-2                                          # float32 keypoints
    assert 0.4 < exact.mean() < 0.6                               # about half are left exact
    # the same draws: the other half keeps its full error, graded poses keep a fraction of theirs
    np.testing.assert_allclose(none_[~exact], full[~exact], rtol=1e-4)
    assert (graded <= full + 1e-2).all() and (graded[exact] < full[exact]).all()
    np.testing.assert_allclose(graded[~exact], full[~exact], rtol=1e-4)
