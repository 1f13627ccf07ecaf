"""The public lifter API with the shipped weights: accuracy on held-out subjects, backends, bad input."""
import numpy as np
import pytest

import engines
from engines.camera import CameraIntrinsics, InvalidIntrinsicsError
from engines.data import MOCAP_DIR, load_split, view_poses
from engines.lifter import WEIGHTS, InvalidKeypointsError, UnknownEngineError
from engines.metrics import mpjpe, mrpe, pa_mpjpe


@pytest.fixture(scope="module")
def lifter():
    assert WEIGHTS["absposelifter"].exists(), "shipped weights missing: assets/absposelifter/absposelifter.pt"
    return engines.load_lifter("absposelifter", backend="onnxruntime")


@pytest.fixture(scope="module")
def val_views():
    if not MOCAP_DIR.exists():
        pytest.skip("../shared/data/mocap not present")
    poses = load_split("val")["joints_mm"][::12]
    return view_poses(poses, np.random.default_rng(7))


def test_shipped_weights_are_small_and_documented():
    import torch
    w = WEIGHTS["absposelifter"]
    assert w.stat().st_size < 40e6
    meta = torch.load(w, map_location="cpu", weights_only=False)["meta"]
    for stage in [*meta.get("history", []), meta]:   # fine-tuned weights: every stage that led to them
        assert stage["command"].startswith("python -m engines.absposelifter.train")
        assert not set(stage["train_subjects"]) & {"06", "08", "90", "104"}


def test_shipped_lifter_was_trained_on_the_shipped_error_model():
    """The shipped lifter's last stage trained with the focal input on the realistic-noise model the evaluation uses
    (the keypoint stage's errors); its checkpoint records the mixture it sampled."""
    import torch
    from engines.absposelifter.train import DEFAULT_ERROR_MODEL
    from engines.noise import ErrorModel
    ckpt = torch.load(WEIGHTS["absposelifter"], map_location="cpu", weights_only=False)
    assert ckpt["config"]["use_focal"] and ckpt["meta"]["use_focal"]
    trained, shipped = ckpt["meta"]["error_model"], ErrorModel.load(DEFAULT_ERROR_MODEL)
    for k in ("mu", "sigma", "gamma"):
        np.testing.assert_allclose(np.asarray(trained[k]), getattr(shipped, k), rtol=1e-9)
    assert np.mean(1 - shipped.gamma) < 0.06    # the mirrored skeletons (11 % outliers) are not in it


def test_accuracy_on_validation_subjects_ground_truth_2d(lifter, val_views):
    v = val_views
    pred = lifter.lift(v.keypoints_px, np.ones(v.keypoints_px.shape[:2]), v.K)
    assert pred.shape == v.joints_cam_mm.shape
    # loose bounds above what the shipped weights measure on all validation poses (57 / 39 / 182 mm, BENCHMARKS.md):
    # a broken or mis-wired model (an untrained one measures 460 / 408 / 2148 mm) fails them by far
    assert mpjpe(pred, v.joints_cam_mm).mean() < 90
    assert pa_mpjpe(pred, v.joints_cam_mm).mean() < 65
    assert mrpe(pred, v.joints_cam_mm).mean() < 300


def test_per_subject_evaluation_splits_the_validation_set_and_sees_training_subjects_apart():
    from engines.absposelifter.evaluate import evaluate, evaluate_by_subject
    res = evaluate_by_subject(train_poses=300)
    subjects = [k for k in res if "subject " in k]
    assert len(subjects) == 4 and sum(res[k]["poses"] for k in subjects) == len(load_split("val")["joints_mm"])
    overall = evaluate(max_poses=None)["ground-truth 2D"]
    mean = sum(res[k]["MPJPE"] * res[k]["poses"] for k in subjects) / overall["poses"]
    assert mean == pytest.approx(overall["MPJPE"], abs=1e-3)            # the same views, split by subject
    train = res["ground-truth 2D, training subjects"]
    assert train["poses"] == 300 and train["MPJPE"] < res["realistic-noise 2D, training subjects"]["MPJPE"]


def test_default_lifter_treats_a_mirror_image_as_the_mirrored_pose(lifter, val_views):
    """Test-time flip (on by default) averages a pose with the lift of its mirror image, so the lift of the mirror
    image is exactly the mirrored lift; a single pass is not (the network is not symmetric by construction)."""
    from engines.skeleton import FLIP_PERM
    v = val_views
    kp, K = v.keypoints_px[:64], v.K[:64]
    mirrored = kp[:, FLIP_PERM].copy()
    mirrored[..., 0] = 2 * K[:, None, 0, 2] - mirrored[..., 0]
    unmirror = np.array([-1.0, 1.0, 1.0])
    a, b = lifter.lift(kp, None, K), lifter.lift(mirrored, None, K)[:, FLIP_PERM] * unmirror
    np.testing.assert_allclose(a, b, atol=0.05)
    plain = engines.load_lifter("absposelifter", backend="onnxruntime", flip_test=False)
    c, d = plain.lift(kp, None, K), plain.lift(mirrored, None, K)[:, FLIP_PERM] * unmirror
    assert np.abs(c - d).max() > 5.0
    np.testing.assert_allclose(a, (c + d) / 2, atol=0.05)


def test_lifter_uses_the_focal_length(lifter, val_views):
    """The shipped lifter takes the focal length as an input (``LifterConfig.use_focal``): lifted with each view's
    own K its relative poses are clearly better than lifted with one typical focal length for every view, while the
    root still lies at ``f * canonical depth`` on its pixel's ray (Eq. 5-6)."""
    v = val_views
    kp, K, true = v.keypoints_px, v.K, v.joints_cam_mm
    K1000 = K.copy()
    K1000[:, 0, 0] = K1000[:, 1, 1] = 1000.0
    own, typical = lifter.lift(kp, None, K), lifter.lift(kp, None, K1000)
    assert mpjpe(own, true).mean() < mpjpe(typical, true).mean() - 3.0
    root_px = own[:, 0, :2] / own[:, 0, 2:] * K[:, [0, 1], [0, 1]] + K[:, :2, 2]
    np.testing.assert_allclose(root_px, kp[:, 0], atol=1e-2)


def test_lifter_says_whether_it_takes_the_focal_length(lifter, val_views):
    """``Lifter.uses_focal`` (what the status bar shows as "[focal-free]") agrees with what the weights do: the
    focal-free lifter's relative pose is the same at any focal length, the shipped one's is not."""
    from engines.lifter import FOCAL_FREE_WEIGHTS
    free = engines.load_lifter("absposelifter", backend="onnxruntime", weights=FOCAL_FREE_WEIGHTS)
    assert lifter.uses_focal and not free.uses_focal
    kp, K = val_views.keypoints_px[:20], val_views.K[:20]
    K2 = K.copy()
    K2[:, 0, 0] *= 2
    K2[:, 1, 1] *= 2
    for lf, same in ((free, True), (lifter, False)):
        a, b = lf.lift(kp, None, K), lf.lift(kp, None, K2)
        moved = np.abs((a - a[:, :1]) - (b - b[:, :1])).max()
        assert (moved < 1.0) == same, (lf.weights.name, moved)


def test_focal_inputs_start_from_the_earlier_model():
    """Fine-tuning with ``--use-focal`` from weights without it starts from exactly the earlier model."""
    import torch
    from engines.absposelifter.model import AbsPoseLifter, LifterConfig
    from engines.absposelifter.train import with_focal_inputs
    torch.manual_seed(0)
    old = AbsPoseLifter(LifterConfig(width=64)).eval()
    new = AbsPoseLifter(LifterConfig(width=64, use_focal=True)).eval()
    new.load_state_dict(with_focal_inputs(old.state_dict()))
    kp, c = torch.rand(5, 17, 2) * 500 + 100, torch.full((5, 2), 320.0)
    for f in (400.0, 2500.0):
        a, b = old(kp, c), new(kp, c, torch.full((5,), f))
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="focal"):
        new(kp, c)


def test_backends_agree(lifter, val_views):
    torch_lifter = engines.load_lifter("absposelifter", backend="torch")
    kp, K = val_views.keypoints_px[:64], val_views.K[:64]
    a, b = lifter.lift(kp, None, K), torch_lifter.lift(kp, None, K)
    assert np.abs(a - b).max() / np.abs(b).max() < 1e-4


def test_no_person_frames_are_nan_and_bad_input_is_explained(lifter):
    K = CameraIntrinsics.from_focal(1000, 1280, 720).K
    kp = np.full((3, 17, 2), np.nan, np.float32)
    kp[1] = np.random.default_rng(0).uniform(300, 700, (17, 2))
    out = lifter.lift(kp, None, K)
    assert np.isnan(out[0]).all() and np.isnan(out[2]).all() and np.isfinite(out[1]).all()
    kp[1, 5] = np.nan
    with pytest.raises(InvalidKeypointsError, match="joints \\[5\\]"):
        lifter.lift(kp, None, K)
    with pytest.raises(InvalidKeypointsError, match="shape"):
        lifter.lift(np.zeros((2, 16, 2)), None, K)
    good = np.random.default_rng(0).uniform(300, 700, (1, 17, 2))
    for f in (0.0, -800.0, np.nan):
        bad = K.copy(); bad[0, 0] = bad[1, 1] = f
        with pytest.raises(InvalidIntrinsicsError, match="focal length"):
            lifter.lift(good, None, bad)
    with pytest.raises(UnknownEngineError):
        engines.load_lifter("nope")
