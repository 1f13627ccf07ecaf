"""The papers' metrics, in millimetres: MPJPE, PA-MPJPE, MRPE."""
from __future__ import annotations

import numpy as np

from engines.skeleton import ROOT


def mpjpe(pred: np.ndarray, gt: np.ndarray, root_relative: bool = True) -> np.ndarray:
    """Mean per-joint position error per pose ``[N]`` (after aligning roots, as the papers report)."""
    if root_relative:
        pred = pred - pred[:, ROOT:ROOT + 1]
        gt = gt - gt[:, ROOT:ROOT + 1]
    return np.linalg.norm(pred - gt, axis=-1).mean(-1)


def procrustes_align(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Similarity transform (rotation, scale, translation) of ``pred [N,J,3]`` onto ``gt`` (Umeyama)."""
    mu_p, mu_g = pred.mean(1, keepdims=True), gt.mean(1, keepdims=True)
    X, Y = pred - mu_p, gt - mu_g
    U, S, Vt = np.linalg.svd(np.einsum("nji,njk->nik", X, Y))
    d = np.sign(np.linalg.det(np.einsum("nij,njk->nik", U, Vt)))
    D = np.ones_like(S); D[:, -1] = d
    R = np.einsum("nij,nj,njk->nik", U, D, Vt)                 # X R ~ Y
    scale = (S * D).sum(-1) / (X ** 2).sum((1, 2))
    return scale[:, None, None] * np.einsum("nji,nik->njk", X, R) + mu_g


def pa_mpjpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """MPJPE after Procrustes alignment, per pose ``[N]``."""
    return np.linalg.norm(procrustes_align(pred, gt) - gt, axis=-1).mean(-1)


def mrpe(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Mean root position error: Euclidean distance between absolute roots, per pose ``[N]``."""
    return np.linalg.norm(pred[:, ROOT] - gt[:, ROOT], axis=-1)
