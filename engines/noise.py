"""Realistic 2D input errors: the AbsPoseLifter paper's Gaussian + uniform mixture (Sec. 4.2).

Per joint, the 2D error ``e = (e_x, e_y)`` follows (Eq. 8)

    p(e) = gamma * N(e; mu, diag(sigma_x^2, sigma_y^2)) + (1 - gamma) / v

with ``v = 100 x 100``: outliers uniform over [-50, 50]^2 pixels of a 256-pixel crop.
The paper's errors are in a 256 x 256 crop around the person; ours come from
full-resolution video of any size, so errors are expressed in *crop pixels*:
``e_crop = e_px * 256 / scale_px`` where ``scale_px`` is the diagonal of the
person's 2D bounding box. Sampling converts back with the target pose's own scale.

Parameters are fitted by EM (Alg. 1). Note that Alg. 1 as printed has
``eta_0 = gamma p_0 / (...)``; the posterior of the uniform component is
``(1 - gamma) p_0 / (...)``, which is what we use.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CROP_PX = 256.0
UNIFORM_HALF_WIDTH = 50.0
UNIFORM_DENSITY = 1.0 / (2 * UNIFORM_HALF_WIDTH) ** 2


def person_scale_px(keypoints_px: np.ndarray) -> np.ndarray:
    """Diagonal of the 2D bounding box of the joints ``[..., J, 2]`` -> ``[...]``."""
    return np.linalg.norm(np.nanmax(keypoints_px, -2) - np.nanmin(keypoints_px, -2), axis=-1)


def fit_mixture_em(e: np.ndarray, iters: int = 100, tol: float = 1e-7) -> tuple[np.ndarray, np.ndarray, float]:
    """EM for one joint's errors ``e [M, 2]`` (Alg. 1). Returns ``(mu [2], sigma [2], gamma)``.

    Initialised from a single Gaussian fit and gamma = 0.9, as in the paper.
    """
    e = np.asarray(e, dtype=np.float64)
    mu, var, gamma = e.mean(0), e.var(0) + 1e-9, 0.9
    prev = -np.inf
    for _ in range(iters):
        # E-step
        p1 = np.exp(-0.5 * (((e - mu) ** 2) / var).sum(-1)) / (2 * np.pi * np.sqrt(var.prod()))
        p0 = UNIFORM_DENSITY
        den = (1 - gamma) * p0 + gamma * p1
        eta1 = gamma * p1 / den
        # M-step
        w = eta1.sum()
        mu = (eta1[:, None] * e).sum(0) / w
        var = (eta1[:, None] * (e - mu) ** 2).sum(0) / w + 1e-9
        gamma = w / len(e)
        ll = np.log(den).sum()
        if abs(ll - prev) < tol * abs(ll):
            break
        prev = ll
    return mu, np.sqrt(var), float(gamma)


@dataclass
class ErrorModel:
    """Per-joint 2D error model in crop pixels. ``kind``: 'none', 'gaussian' or 'mixture'."""
    kind: str
    mu: np.ndarray = field(default_factory=lambda: np.zeros((17, 2)))      # [J, 2]
    sigma: np.ndarray = field(default_factory=lambda: np.zeros((17, 2)))   # [J, 2]
    gamma: np.ndarray = field(default_factory=lambda: np.ones(17))         # [J]
    source: str = ""
    # over time (``sample_sequence``): corr(dt) = persistent + (1 - persistent) * ar_per_100ms ** (dt / 0.1 s);
    # 0 / 0 is independent frames. Fitted to the real errors' autocorrelation (``fit_error_model.fit_temporal``).
    persistent: float = 0.0
    ar_per_100ms: float = 0.0

    @classmethod
    def fit(cls, errors_crop: np.ndarray, kind: str = "mixture", source: str = "") -> "ErrorModel":
        """Fit to errors ``[M, J, 2]`` (crop px; NaN rows ignored per joint)."""
        J = errors_crop.shape[1]
        mu, sig, gam = np.zeros((J, 2)), np.zeros((J, 2)), np.ones(J)
        for j in range(J):
            e = errors_crop[:, j]
            e = e[np.isfinite(e).all(-1)]
            if kind == "mixture":
                mu[j], sig[j], gam[j] = fit_mixture_em(e)
            elif kind == "gaussian":
                mu[j], sig[j] = e.mean(0), e.std(0)
            else:
                raise ValueError(f"unknown error model kind {kind!r}")
        return cls(kind, mu, sig, gam, source)

    def sample(self, rng: np.random.Generator, scale_px: np.ndarray, num_joints: int = 17) -> np.ndarray:
        """Errors in pixels ``[N, J, 2]`` for poses whose 2D scale is ``scale_px [N]``."""
        return self.sample_with_outliers(rng, scale_px, num_joints)[0]

    def sample_with_outliers(self, rng: np.random.Generator, scale_px: np.ndarray,
                             num_joints: int = 17) -> tuple[np.ndarray, np.ndarray]:
        """``sample``'s errors (the same draws) and which joints got the uniform component, ``[N, J]`` bool."""
        N = len(scale_px)
        outlier = np.zeros((N, num_joints), bool)
        if self.kind == "none":
            return np.zeros((N, num_joints, 2), np.float32), outlier
        e = self.mu + self.sigma * rng.standard_normal((N, num_joints, 2))
        if self.kind == "mixture":
            outlier = rng.random((N, num_joints)) >= self.gamma
            e[outlier] = rng.uniform(-UNIFORM_HALF_WIDTH, UNIFORM_HALF_WIDTH, (int(outlier.sum()), 2))
        return (e * (np.asarray(scale_px)[:, None, None] / CROP_PX)).astype(np.float32), outlier

    def correlation(self, times_s: np.ndarray) -> np.ndarray:
        """``[T, T]`` correlation of one joint coordinate's error between frames at ``times_s``."""
        dt = np.abs(np.subtract.outer(times_s, times_s))
        return self.persistent + (1 - self.persistent) * self.ar_per_100ms ** (dt / 0.1)

    def sample_sequence(self, rng: np.random.Generator, scale_px: np.ndarray, times_s: np.ndarray) -> np.ndarray:
        """Errors ``[N, T, J, 2]`` px for N sequences of frames at ``times_s [T]`` (scales ``scale_px [N, T]``).

        Each frame's error has exactly ``sample``'s distribution; over time the errors follow
        ``correlation`` (a Gaussian copula: correlated normals drive the Gaussian part, the outlier
        choice and the outlier's value), as real detections do: a joint that is off stays off for a while.
        """
        from scipy.stats import norm

        N, T = scale_px.shape
        J = len(self.mu)
        L = np.linalg.cholesky(self.correlation(np.asarray(times_s, float)) + 1e-9 * np.eye(T))

        def normals():   # [N, T, J, 2] standard normals, correlated along T
            return np.einsum("ts,nsjk->ntjk", L, rng.standard_normal((N, T, J, 2)))

        if self.kind == "none":
            return np.zeros((N, T, J, 2), np.float32)
        e = self.mu + self.sigma * normals()
        if self.kind == "mixture":
            outlier = norm.cdf(normals()[..., 0]) >= self.gamma
            value = (2 * norm.cdf(normals()) - 1) * UNIFORM_HALF_WIDTH
            e = np.where(outlier[..., None], value, e)
        return (e * (np.asarray(scale_px)[..., None, None] / CROP_PX)).astype(np.float32)

    def nll(self, errors_crop: np.ndarray) -> float:
        """Mean negative log-likelihood per joint sample (Eq. 9 / M)."""
        e = errors_crop
        p1 = np.exp(-0.5 * (((e - self.mu) / self.sigma) ** 2).sum(-1)) / (2 * np.pi * self.sigma.prod(-1))
        p = self.gamma * p1 + (1 - self.gamma) * UNIFORM_DENSITY if self.kind == "mixture" else p1
        p = p[np.isfinite(p)]
        return float(-np.log(np.maximum(p, 1e-300)).mean())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mu": self.mu.tolist(), "sigma": self.sigma.tolist(),
                "gamma": self.gamma.tolist(), "units": "crop px (error * 256 / person bbox diagonal px)",
                "uniform_half_width": UNIFORM_HALF_WIDTH, "source": self.source,
                "persistent": self.persistent, "ar_per_100ms": self.ar_per_100ms}

    @classmethod
    def from_dict(cls, d: dict) -> "ErrorModel":
        return cls(d["kind"], np.array(d["mu"]), np.array(d["sigma"]), np.array(d["gamma"]), d.get("source", ""),
                   d.get("persistent", 0.0), d.get("ar_per_100ms", 0.0))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "ErrorModel":
        return cls.from_dict(json.loads(Path(path).read_text()))
