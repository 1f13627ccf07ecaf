"""Plausibility score: validation-subject corruption test (ROC AUC), invariances, clip field."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from engines.data import load_split
from engines.plausibility.corruptions import ALL_FAMILIES, HELD_OUT_FAMILIES, corrupt_one
from engines.plausibility.evaluate import corruption_test, roc_auc
from engines.plausibility.score import (PlausibilityInputError, add_plausibility, plausibility_parts,
                                        plausibility_scores)
from engines.skeleton import J


@pytest.fixture(scope="module")
def val_clip() -> np.ndarray:
    val = load_split("val")
    clips, counts = np.unique(val["clip"], return_counts=True)
    name = clips[np.argsort(counts)[len(counts) // 2]]           # a mid-length validation clip
    return val["joints_mm"][val["clip"] == name].astype(np.float64)


def test_roc_auc_helper():
    assert roc_auc([3, 4], [1, 2]) == 1.0
    assert roc_auc([1, 2], [3, 4]) == 0.0
    assert roc_auc([1, 1], [1, 1]) == 0.5


@pytest.mark.slow
def test_corruption_auc_on_validation_subjects():
    res = corruption_test(fraction=0.25, seed=3)
    assert res["corrupted_frames"] > 1000
    assert res["auc"]["combined"] >= 0.95, res["auc"]
    assert res["auc"]["calibrated"] >= 0.95, res["auc"]   # the score the clip JSON and the GUI show
    for fam in HELD_OUT_FAMILIES:   # never shown to the discriminator
        assert res["per_family"][fam]["combined"] >= 0.9, res["per_family"][fam]


def test_real_clip_scores_high_and_each_corruption_lower(val_clip):
    rng = np.random.default_rng(0)
    X = val_clip[:120].copy()
    real = plausibility_scores(X)
    assert real.shape == (120,) and np.all((real >= 0) & (real <= 1))
    assert np.median(real) > 0.5
    bad = X.copy()
    idx = np.arange(0, 120, 4)
    fam = [ALL_FAMILIES[i % len(ALL_FAMILIES)] for i in range(len(idx))]
    for i, f in zip(idx, fam):
        bad[i] = corrupt_one(X[i], f, rng)
    s = plausibility_scores(bad)
    ok = np.setdiff1d(np.arange(120), idx)
    assert roc_auc(s[ok], s[idx]) > 0.95


def test_knee_bent_backwards_is_flagged(val_clip):
    X = val_clip.copy()
    # the frame with the most bent right knee
    th = X[:, J["right_knee"]] - X[:, J["right_hip"]]
    sh = X[:, J["right_ankle"]] - X[:, J["right_knee"]]
    cos = (th * sh).sum(-1) / np.linalg.norm(th, axis=-1) / np.linalg.norm(sh, axis=-1)
    i = int(np.argmin(cos))
    assert cos[i] < np.cos(np.radians(25)), "clip has no bent knee to reverse"
    axis = th[i] / np.linalg.norm(th[i])
    R = Rotation.from_rotvec(axis * np.pi).as_matrix()
    Y = X.copy()
    Y[i, J["right_ankle"]] = (X[i, J["right_ankle"]] - X[i, J["right_knee"]]) @ R.T + X[i, J["right_knee"]]
    p0, p1 = plausibility_parts(X), plausibility_parts(Y)
    assert p1.angle_deg[i] > p0.angle_deg[i] + 8
    assert p1.score[i] < 0.5 * p0.score[i]
    assert np.allclose(np.delete(p1.score, i), np.delete(p0.score, i), atol=0.02)   # others barely move


def test_score_ignores_camera_placement(val_clip):
    X = val_clip[:40]
    R = Rotation.from_euler("xyz", [130, -20, 75], degrees=True).as_matrix()
    Y = X @ R.T + np.array([300.0, -2000.0, 5000.0])
    np.testing.assert_allclose(plausibility_scores(Y), plausibility_scores(X), atol=1e-4)


def test_short_clips_use_population_proportions(val_clip):
    one = plausibility_scores(val_clip[:1])
    assert one.shape == (1,) and 0 <= one[0] <= 1
    stretched = val_clip[:1].copy()
    stretched[0, J["left_wrist"]] += 1.6 * (stretched[0, J["left_wrist"]] - stretched[0, J["left_elbow"]])
    assert plausibility_parts(stretched).bone[0] < 0.5 * plausibility_parts(val_clip[:1]).bone[0]


def test_nan_frames_and_bad_input(val_clip):
    X = val_clip[:20].copy()
    X[5] = np.nan
    s = plausibility_scores(X)
    assert np.isnan(s[5]) and np.isfinite(np.delete(s, 5)).all()
    X[6, 3] = np.nan
    with pytest.raises(PlausibilityInputError, match="frame 6"):
        plausibility_scores(X)
    with pytest.raises(PlausibilityInputError, match=r"\[N, 17, 3\]"):
        plausibility_scores(np.zeros((4, 17, 2)))


def test_add_plausibility_round_trips_in_clip_json(tmp_path, val_clip):
    from engines.camera import CameraIntrinsics
    from mocap_app.clip import Clip

    n = 12
    person = np.ones(n, bool)
    person[3] = False
    cam = val_clip[:n] + np.array([0, 0, 4000.0])
    cam[3] = np.nan
    kp = np.zeros((n, 17, 2))
    kp[3] = np.nan
    clip = Clip(timestamps_s=np.arange(n) / 30, person=person, keypoints_px=kp, confidence=np.ones((n, 17)),
                joints_cam_mm=cam, intrinsics=CameraIntrinsics.from_focal(1000.0, 1280, 720))
    old = Clip.from_dict(clip.to_dict())
    assert old.plausibility is None and "plausibility" not in clip.to_dict()["frames"][0]   # unchanged format
    add_plausibility(clip)
    back = Clip.load(clip.save(tmp_path / "c.json"))
    assert np.isnan(back.plausibility[3])
    np.testing.assert_allclose(back.plausibility[person], clip.plausibility[person], atol=1e-4)
    assert ((back.plausibility[person] >= 0) & (back.plausibility[person] <= 1)).all()


# -- calibration: the score users see, and which frames the GUI flags ---------------------------------
def test_calibration_belongs_to_the_shipped_lifter():
    from engines.plausibility.evaluate import BASE_WEIGHTS
    from engines.plausibility.score import load_calibration
    from engines.runtime import file_sha256
    c = load_calibration()
    assert c["lifter_sha256"] == file_sha256(BASE_WEIGHTS), (
        "the lifter changed: rerun `python -m engines.plausibility.evaluate calibrate`")
    rep = c["report"]
    assert rep["flagged"]["real mocap, validation subjects"] <= 0.01
    assert rep["flagged"]["lifted poses with one corruption, all families"] >= 0.3
    assert all(v <= 0.1 for k, v in rep["flagged"].items() if k.startswith("real video"))


def test_calibrated_scores_flag_corrupted_frames_not_real_ones(val_clip):
    from engines.plausibility.score import FLAG_BELOW, calibrated_scores, implausible
    rng = np.random.default_rng(5)
    X = val_clip.copy()
    bad = np.arange(10, len(X), 25)
    for i in bad:
        X[i] = corrupt_one(X[i], "jitter", rng)
    X[5] = np.nan
    p = calibrated_scores(X)
    assert np.isnan(p[5]) and not implausible(p)[5]
    ok = np.setdiff1d(np.arange(len(X)), np.r_[bad, 5])
    assert ((p[ok] >= 0) & (p[ok] <= 1)).all()
    flags = implausible(p)
    assert flags[bad].mean() >= 0.9, p[bad]
    assert flags[ok].mean() <= 0.02, np.sort(p[ok])[:10]
    assert np.median(p[ok]) > 10 * FLAG_BELOW
