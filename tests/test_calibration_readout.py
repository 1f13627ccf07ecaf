"""The learned read-out of the auto-focal search curve (``mocap_app.calibration.readout``)."""
import json

import numpy as np
import pytest

from mocap_app.calibration.readout import (READOUT_FILE, FocalReadout, ReadoutMismatchError, load_autofocal_readout,
                                           weights_sha256)
from mocap_app.calibration.synthetic import autofocal_clips, subject_files

needs_mocap = pytest.mark.skipif(not subject_files(), reason="CMU mocap not present")
SIZE = (1280, 720)


def test_shipped_readout_is_fitted_for_the_auto_focal_lifter():
    from engines.lifter import FOCAL_FREE_WEIGHTS
    r = load_autofocal_readout()
    assert r is not None, "assets/autofocal/focal_readout.json is missing or was fitted for other lifter weights"
    assert r.lifter_sha256 == weights_sha256(FOCAL_FREE_WEIGHTS)
    assert len(r.coef) == len(r.mean) == len(r.std) == 25            # the search's answer + 24 points of its curve
    assert r.train_clips > 3000 and r.command.startswith("python -m mocap_app.calibration.readout fit")


def test_readout_refuses_other_lifter_weights(tmp_path):
    from engines.lifter import WEIGHTS
    DEFAULT_WEIGHTS = WEIGHTS["absposelifter"]
    r = FocalReadout.load()
    with pytest.raises(ReadoutMismatchError, match="refit"):
        r.check_lifter(DEFAULT_WEIGHTS)                # the pose lifter takes f as an input: other curves
    stale = json.loads(READOUT_FILE.read_text())
    stale["lifter_sha256"] = weights_sha256(DEFAULT_WEIGHTS)
    (tmp_path / "stale.json").write_text(json.dumps(stale))
    assert load_autofocal_readout(tmp_path / "stale.json") is None          # the app falls back to the plain search
    assert load_autofocal_readout(tmp_path / "missing.json") is None


class _AtHalfResolution:
    """The lifter run on the frames at half their size: the same 3D whatever the video's resolution."""

    def __init__(self, lifter):
        self.lifter = lifter

    def lift(self, keypoints_px, confidence, K):
        S = np.diag([0.5, 0.5, 1.0])
        return self.lifter.lift(np.asarray(keypoints_px) / 2, confidence, S @ np.asarray(K))


@needs_mocap
def test_readout_works_in_units_of_the_image_diagonal():
    """The same 3D seen at twice the resolution (pixels and focal length doubled) must read as twice the focal
    length. (The lifter itself sees the person's size in pixels, Eq. 1-4, so it is not resolution-free.)"""
    from mocap_app.calibration.autofocal import ClipLifts, load_autofocal_lifter
    lifter, r = load_autofocal_lifter("torch"), FocalReadout.load()
    _, f, _, _, kp = next(autofocal_clips(2, 3, detector_proportions=True, size=SIZE))
    conf = np.ones(kp.shape[:2])
    f1, s1 = r.predict_focal_px(ClipLifts(lifter, kp, conf, SIZE))
    f2, s2 = r.predict_focal_px(ClipLifts(_AtHalfResolution(lifter), 2 * kp, conf, (2 * SIZE[0], 2 * SIZE[1])))
    assert s2 / s1 == pytest.approx(2.0, rel=0.01)
    assert f2 / f1 == pytest.approx(2.0, rel=0.01)
    assert abs(f1 / s1 - 1) > 0.02                  # and the read-out is not just the search's minimum


@needs_mocap
def test_readout_beats_the_plain_search_on_validation_clips():
    """On the auto-focal test's 40 clips (validation subjects, never seen in the fit) the read-out must undo most of
    the search's shrinkage towards the middle of the range and lower the median error by 3 points or more."""
    from mocap_app.calibration.autofocal import ClipLifts, load_autofocal_lifter
    lifter, r = load_autofocal_lifter("torch"), FocalReadout.load()
    rows = []
    for seed in (2, 3):
        for _, f, _, _, kp in autofocal_clips(seed, 1, detector_proportions=True, size=SIZE):
            fr, fs = r.predict_focal_px(ClipLifts(lifter, kp, np.ones(kp.shape[:2]), SIZE))
            rows.append((f, fr, fs))
    f, fr, fs = (np.array(c) for c in zip(*rows))
    assert len(f) == 40
    med_r, med_s = np.median(np.abs(fr / f - 1)), np.median(np.abs(fs / f - 1))
    slope_r, slope_s = (np.polyfit(np.log(f), np.log(x), 1)[0] for x in (fr, fs))
    assert med_r <= med_s - 0.03, (med_r, med_s)
    assert abs(1 - slope_r) < 0.5 * abs(1 - slope_s), (slope_r, slope_s)
