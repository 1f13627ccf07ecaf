"""The Gaussian + uniform error model and its EM fit (AbsPoseLifter Sec. 4.2, Alg. 1)."""
import numpy as np
import pytest

from engines.noise import ErrorModel, fit_mixture_em, person_scale_px


def test_em_recovers_known_mixture():
    rng = np.random.default_rng(0)
    n = 20000
    inlier = rng.random(n) < 0.85
    e = np.where(inlier[:, None], rng.normal([1.5, -2.0], [3.0, 5.0], (n, 2)), rng.uniform(-50, 50, (n, 2)))
    mu, sigma, gamma = fit_mixture_em(e)
    np.testing.assert_allclose(mu, [1.5, -2.0], atol=0.3)
    np.testing.assert_allclose(sigma, [3.0, 5.0], rtol=0.05)
    assert gamma == pytest.approx(0.85, abs=0.02)
    # a single Gaussian is fooled by the outliers: far wider
    assert e.std(0).min() > 2 * sigma.max()


def test_mixture_beats_gaussian_in_likelihood_and_samples_scale_with_person():
    rng = np.random.default_rng(1)
    n = 5000
    inlier = rng.random((n, 17)) < 0.9
    e = np.where(inlier[..., None], rng.normal(0, 4.0, (n, 17, 2)), rng.uniform(-50, 50, (n, 17, 2)))
    mix, gau = ErrorModel.fit(e, "mixture"), ErrorModel.fit(e, "gaussian")
    assert mix.nll(e) < gau.nll(e)
    small = mix.sample(np.random.default_rng(2), np.full(4000, 128.0))
    big = mix.sample(np.random.default_rng(2), np.full(4000, 512.0))
    np.testing.assert_allclose(big, 4 * small, rtol=1e-5)
    assert person_scale_px(np.array([[[0, 0], [3, 4]]], float))[0] == pytest.approx(5.0)
    d = mix.to_dict()
    again = ErrorModel.from_dict(d)
    np.testing.assert_allclose(again.sigma, mix.sigma)


def test_sequences_keep_each_frames_distribution_and_follow_the_correlation():
    model = ErrorModel("mixture", np.full((17, 2), 1.0), np.full((17, 2), 4.0), np.full(17, 0.85),
                       persistent=0.4, ar_per_100ms=0.5)
    times = np.array([-0.2, -0.1, 0.0, 0.1, 0.2])
    seq = model.sample_sequence(np.random.default_rng(0), np.full((8000, len(times)), 256.0), times)
    single = model.sample(np.random.default_rng(1), np.full(40000, 256.0))
    assert seq.shape == (8000, 5, 17, 2)
    # every frame: the same distribution as independent draws (centre, spread, outlier tail)
    for q in (5, 50, 95, 99.5):
        assert np.percentile(seq[:, 2], q) == pytest.approx(np.percentile(single, q), abs=0.6)
    # over time: the Gaussian part follows corr(dt) = 0.4 + 0.6 * 0.5 ** (dt / 0.1 s)
    gauss = ErrorModel("gaussian", np.zeros((17, 2)), np.ones((17, 2)), persistent=0.4, ar_per_100ms=0.5)
    z = gauss.sample_sequence(np.random.default_rng(2), np.full((20000, len(times)), 256.0), times)[..., 0, 0]
    measured = np.corrcoef(z.T)[2]
    np.testing.assert_allclose(measured, [0.55, 0.7, 1.0, 0.7, 0.55], atol=0.03)
    # independent frames by default (the per-frame model as fitted before)
    iid = ErrorModel("gaussian", np.zeros((17, 2)), np.ones((17, 2)))
    z = iid.sample_sequence(np.random.default_rng(3), np.full((20000, 3), 256.0), times[:3])[..., 0, 0]
    assert abs(np.corrcoef(z.T)[0, 1]) < 0.03
    again = ErrorModel.from_dict(model.to_dict())
    assert (again.persistent, again.ar_per_100ms) == (0.4, 0.5)
