"""Auto focal length from a person: synthetic clips from validation mocap with known focal lengths."""
import functools
import itertools

import numpy as np
import pytest

from engines.lifter import FOCAL_FREE_WEIGHTS
from mocap_app.calibration.autofocal import AutoFocalError, estimate_focal
from mocap_app.calibration.synthetic import (OracleLifter, aimed_clip, autofocal_clips, load_segment, make_view,
                                             subject_files)

needs_mocap = pytest.mark.skipif(not subject_files(), reason="CMU mocap not present")
SIZE = (1280, 720)


def cases(seed, step=2, detector_proportions=False):
    """Synthetic clips; ``detector_proportions`` for a real lifter, which expects MediaPipe's skeleton (the oracle
    lifter does not care, and keeps the CMU skeleton its thresholds were chosen on)."""
    return autofocal_clips(seed, step, detector_proportions, SIZE)


@needs_mocap
@pytest.mark.slow
def test_focal_within_10_percent_and_misses_flagged():
    """Oracle lifter = true relative pose + 30 mm noise per joint, canonical depth with 5 % smooth error."""
    rows = []
    for name, f, v, inside, kp, rng in cases(seed=2):
        lifter = OracleLifter(v.joints_cam_mm[inside], f, rng)
        # the oracle's relative depths are unbiased by construction: no lifter depth-scale doubt
        r = estimate_focal(kp, np.ones(kp.shape[:2]), SIZE, lifter, bootstrap=8, depth_uncertainty=0.0)
        rows.append((name, f, r.focal_px / f - 1.0, r.confidence, r.reliable))
    err = np.abs([r[2] for r in rows])
    reliable = np.array([r[4] for r in rows])
    assert len(rows) >= 8
    assert np.median(err) <= 0.10, rows
    assert not np.any((err > 0.10) & reliable), [r for r in rows if abs(r[2]) > 0.10]   # every miss is flagged
    assert reliable.sum() >= len(rows) // 3                                             # and it is not always unsure


@needs_mocap
def test_frozen_centred_pose_is_flagged_as_unreliable():
    rng = np.random.default_rng(0)
    jw = load_segment(subject_files()[0], seconds=1, fps=30)
    frozen = np.repeat(jw[:1], 40, axis=0)
    v = make_view(frozen, focal_px=1500, size=SIZE, distance_mm=6000, height_mm=1000, aim=True, yaw_deg=30)
    kp = v.keypoints_px + rng.normal(0, 2.0, v.keypoints_px.shape)
    lifter = OracleLifter(v.joints_cam_mm, 1500, rng, rel_mm=40)
    r = estimate_focal(kp, np.ones(kp.shape[:2]), SIZE, lifter, bootstrap=6, depth_uncertainty=0.0)
    assert not r.reliable and r.confidence < 0.5, (r.focal_px, r.confidence)
    assert "cannot tell" in r.reason or "edge" in r.reason
    assert "depth estimate" not in r.reason          # the lifter's depth doubt was off: another cue decided


class _NotCanonical:
    """A lifter whose root depth ignores the focal length (what a plain absolute-depth regressor does)."""

    def lift(self, kp, conf, K):
        out = np.zeros(kp.shape[:2] + (3,))
        out[..., 2] = 4000.0
        out[..., :2] = (kp - K[:2, 2]) * 4.0
        return out


def test_input_errors():
    kp = np.random.default_rng(0).uniform(100, 600, (20, 17, 2))
    # random points from a lifter outside the canonical-depth model: answered (by the self-consistent search),
    # and flagged
    r = estimate_focal(kp, np.ones((20, 17)), SIZE, _NotCanonical())
    assert 300 <= r.focal_px <= 4000 and not r.reliable
    with pytest.raises(AutoFocalError, match="only 3 frames"):
        estimate_focal(kp[:3], np.ones((3, 17)), SIZE, _NotCanonical())
    kp2 = kp.copy()
    kp2[5:] = np.nan
    with pytest.raises(AutoFocalError, match="only 5 frames"):
        estimate_focal(kp2, np.ones((20, 17)), SIZE, _NotCanonical())
    with pytest.raises(AutoFocalError, match="expected keypoints"):
        estimate_focal(kp[:, :15], np.ones((20, 15)), SIZE, _NotCanonical())


WEIGHTS = FOCAL_FREE_WEIGHTS


@functools.lru_cache(maxsize=2)
def _real_lifter_rows(seeds=(2,), step=3):
    from mocap_app.calibration.autofocal import load_autofocal_lifter
    lifter = load_autofocal_lifter("torch")
    rows = []
    for seed in seeds:
        for name, f, v, inside, kp, rng in cases(seed=seed, step=step, detector_proportions=True):
            r = estimate_focal(kp, np.ones(kp.shape[:2]), SIZE, lifter, bootstrap=6)
            rows.append((name, f, r.focal_px / f - 1.0, r.confidence, r.reliable, r.bootstrap_spread, r.depth_spread,
                         r.spread))
    return rows


needs_weights = pytest.mark.skipif(not WEIGHTS.exists(), reason="AbsPoseLifter weights not trained yet")


@needs_mocap
@needs_weights
def test_real_lifter_clips_are_in_the_detectors_skeleton():
    """The real-lifter clips must show the skeleton the lifter is trained on (MediaPipe's proportions): fed the
    CMU skeleton's 2D, its relative pose on these clips is about twice as wrong (notes/calibration.md)."""
    from engines.camera import CameraIntrinsics
    from mocap_app.calibration.autofocal import load_autofocal_lifter
    lifter = load_autofocal_lifter("torch")
    median_mm = {}
    for detector in (True, False):
        errs = []
        for _, f, v, inside, kp, _ in itertools.islice(cases(seed=2, step=3, detector_proportions=detector), 4):
            out = lifter.lift(kp, np.ones(kp.shape[:2]), CameraIntrinsics.from_focal(f, *SIZE).K)
            true = v.joints_cam_mm[inside]
            errs.append(np.linalg.norm((out - out[:, :1]) - (true - true[:, :1]), axis=-1).mean())
        median_mm[detector] = float(np.median(errs))
    assert median_mm[True] < 75.0 and median_mm[True] < 0.7 * median_mm[False], median_mm


@needs_mocap
@needs_weights
@pytest.mark.slow
def test_real_lifter_misses_are_flagged():
    """With the trained AbsPoseLifter the estimate must never be wrong *and* marked reliable (its depth-scale
    doubt, LIFTER_DEPTH_UNCERTAINTY, is what guarantees that: without it 1 in ~20 clips was confidently wrong)."""
    rows = _real_lifter_rows()
    err = np.abs([r[2] for r in rows])
    reliable = np.array([r[4] for r in rows])
    assert len(rows) >= 5
    assert not np.any((err > 0.10) & reliable), rows
    boot, depth, spread = (np.array([r[k] for r in rows]) for k in (5, 6, 7))
    np.testing.assert_allclose(spread, np.hypot(boot, depth))
    # what flags them: the answer follows the lifted depths about one to one, not the parts of the clip disagreeing
    assert np.all(depth > boot) and np.all(depth > 0.3), rows


@needs_mocap
@needs_weights
@pytest.mark.slow
def test_real_lifter_median_error_within_10_percent():
    """The target, on the 8 clips of seed 2 (every 3rd file): 5.5 % with the weights of 3 Dec (7 % with those of
    22 Nov 04:40). Eight clips are a small sample: on all 40 clips of seeds 2 + 3 it is 17 % (next test)."""
    rows = _real_lifter_rows()
    assert len(rows) == 8
    assert np.median(np.abs([r[2] for r in rows])) <= 0.10, rows


@needs_mocap
@needs_weights
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="known gap (notes/calibration.md): with the real lifter the median error on "
                                       "the 40 clips of seeds 2 + 3 is 17 % (14.8 % on 400 fresh ones): the search "
                                       "reads back the focal length implied by the lifter's pose, which shrinks "
                                       "towards the middle of its training range; the lifter's error would have to "
                                       "be ~0.7 of today's; the confidence flags every clip")
def test_real_lifter_median_error_within_10_percent_on_40_clips():
    rows = _real_lifter_rows((2, 3), 1)
    assert len(rows) == 40
    assert np.median(np.abs([r[2] for r in rows])) <= 0.10, rows


@needs_mocap
def test_self_consistent_focal_is_the_search_for_a_focal_free_lifter():
    """For a lifter whose relative pose does not depend on f, ``g(f) = search`` is constant, so its fixed point
    is the search's own answer and the pull back towards it is complete (alpha = 1)."""
    from mocap_app.calibration.autofocal import ClipLifts, search_focal, self_consistent_focal
    name, f, v, inside, kp, rng = next(cases(seed=2))
    lifts = ClipLifts(OracleLifter(v.joints_cam_mm[inside], f, rng), kp, np.ones(kp.shape[:2]), SIZE)
    assert lifts.focal_independent
    f_fp, alpha = self_consistent_focal(lifts)
    assert f_fp == pytest.approx(search_focal(lifts, grid=np.geomspace(300, 4000, 24))[0], rel=0.01)
    assert alpha == pytest.approx(1.0, abs=0.05)


@needs_mocap
@needs_weights
def test_auto_focal_runs_the_focal_free_lifter():
    """Auto focal runs the paper's lifter, whose relative pose does not depend on f; the app's pose lifter takes f
    as an input, which ``ClipLifts`` finds out (the estimate then goes through ``self_consistent_focal``)."""
    from engines import load_lifter
    from mocap_app.calibration.autofocal import ClipLifts, load_autofocal_lifter
    _, f, v, inside, kp, _ = next(cases(seed=2, step=3, detector_proportions=True))
    conf = np.ones(kp.shape[:2])
    assert ClipLifts(load_autofocal_lifter("torch"), kp, conf, SIZE).focal_independent
    takes_f = load_lifter("absposelifter", backend="torch")
    lifts = ClipLifts(takes_f, kp, conf, SIZE)
    assert not lifts.focal_independent
    assert np.abs(lifts.at(800.0).rel - lifts.at(1600.0).rel).max() > 5.0
    r = estimate_focal(kp, conf, SIZE, takes_f, bootstrap=4)
    assert 300 <= r.focal_px <= 4000 and 0.0 <= r.confidence <= 1.0


@needs_mocap
def test_search_range_follows_the_image_size():
    """A 4K telephoto (6000 px, 35 deg across) lies beyond the 300-4000 px made for 720p; the range scales with the
    long side, so it is found, and a 720p clip keeps exactly the old range."""
    from mocap_app.calibration.autofocal import F_MAX, F_MIN, focal_range_px
    assert focal_range_px((1280, 720)) == (F_MIN, F_MAX)
    assert focal_range_px((2160, 3840)) == pytest.approx((F_MIN * 3, F_MAX * 3))
    rng = np.random.default_rng(3)
    jw = load_segment(subject_files()[1], seconds=4, fps=15, start_s=0.5)
    v, inside, kp = aimed_clip(jw, 6000, 6000, rng, (3840, 2160))
    assert inside.sum() >= 30
    r = estimate_focal(kp, np.ones(kp.shape[:2]), (3840, 2160), OracleLifter(v.joints_cam_mm[inside], 6000, rng,
                                                                 size=(3840, 2160)),
                       bootstrap=6, depth_uncertainty=0.0)
    assert r.focal_px == pytest.approx(6000, rel=0.15) and "edge of the search range" not in r.reason


@needs_mocap
@needs_weights
def test_small_frames_are_lifted_at_720p_scale():
    """The lifter was trained on focal lengths of 400-2500 px; a 640 x 480 camera's mostly are not. Lifting such clips
    as if enlarged to a 1280 px long side (``ClipLifts.lift_scale``) must cut the search's median error clearly
    (22 % -> 15 % on 400 clips; here the first 40)."""
    from mocap_app.calibration.autofocal import ClipLifts, load_autofocal_lifter, search_focal
    lifter, size = load_autofocal_lifter("torch"), (640, 480)
    errs = {1.0: [], None: []}
    for seed in (10, 11):
        for _, f, _, _, kp, _ in autofocal_clips(seed, 1, detector_proportions=True, size=size):
            for scale in errs:
                lifts = ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size, lift_scale=scale)
                errs[scale].append(abs(search_focal(lifts)[0] / f - 1))
    assert ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size).lift_scale == 2.0
    assert ClipLifts(lifter, kp, np.ones(kp.shape[:2]), (1920, 1080)).lift_scale == 1.0
    assert len(errs[None]) == 40
    assert np.median(errs[None]) <= np.median(errs[1.0]) - 0.03, {k: np.median(v) for k, v in errs.items()}
