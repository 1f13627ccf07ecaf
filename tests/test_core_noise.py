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
