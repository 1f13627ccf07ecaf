"""Weighted kinematic chain space (paper 004, Sec. 3.3, Eq. 1-6) and the Sec. 3.6 normalisation.

* bone ``b_k = Y c_k`` (Eq. 1-2): ``c_k`` has +1 at the bone's child joint and -1 at its
  parent, so every bone points away from the pelvis; ``B = Y C`` (Eq. 3) with
  ``C [J, b]`` the incidence matrix of ``engines.skeleton.BONES``;
* ``KCS = B^T B`` (Eq. 4): bone lengths squared on the diagonal, dot products (joint
  angles times lengths) off it;
* bone distance ``d_ij``: the number of steps between bones i and j when two bones
  that share a joint are one step apart (Fig. 5: from the right hip bone, three bones
  are at distance 1 and the two forearms at distance 5);
* ``W`` (Eq. 5): 1 on the diagonal and for adjacent bones, ``tanh(1 / (d_ij - 1))``
  further away; ``wKCS = W * KCS`` (Eq. 6, element-wise).

Functions take numpy arrays or torch tensors ``[..., J, 3]`` and return the same kind,
so the plausibility score (numpy) and adversarial training (torch) share one definition.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import shortest_path

from engines.skeleton import BONES, NUM_JOINTS, ROOT

NUM_BONES = len(BONES)
_PARENT_IDX = np.array([p for p, _ in BONES])
_CHILD_IDX = np.array([c for _, c in BONES])


class PoseShapeError(ValueError):
    """A pose array without the expected trailing ``[J, 3]`` shape."""


def incidence_matrix(bones=BONES, num_joints: int = NUM_JOINTS) -> np.ndarray:
    """``C [J, b]`` of Eq. 2-3: column k is +1 at bone k's child joint and -1 at its parent."""
    C = np.zeros((num_joints, len(bones)))
    for k, (p, c) in enumerate(bones):
        C[c, k] = 1.0
        C[p, k] = -1.0
    return C


def bone_distances(bones=BONES) -> np.ndarray:
    """``d [b, b]``: steps between bones in the skeleton's line graph (bones sharing a joint are 1 apart)."""
    b = len(bones)
    adj = np.zeros((b, b))
    for i in range(b):
        for j in range(b):
            if i != j and set(bones[i]) & set(bones[j]):
                adj[i, j] = 1.0
    d = shortest_path(csr_matrix(adj), unweighted=True, directed=False)
    if not np.isfinite(d).all():
        raise ValueError("the bones do not form one connected skeleton")
    return d.astype(int)


def kcs_weights(d: np.ndarray) -> np.ndarray:
    """Eq. 5: ``w = 1`` for ``d <= 1`` (the diagonal keeps raw bone lengths), ``tanh(1 / (d - 1))`` beyond."""
    d = np.asarray(d, dtype=float)
    w = np.ones_like(d)
    far = d > 1
    w[far] = np.tanh(1.0 / (d[far] - 1.0))
    return w


@lru_cache(maxsize=None)
def default_weights() -> np.ndarray:
    """``W`` for the 17-joint skeleton (cached; read-only)."""
    w = kcs_weights(bone_distances(BONES))
    w.setflags(write=False)
    return w


def _check(joints) -> None:
    if joints.ndim < 2 or tuple(joints.shape[-2:]) != (NUM_JOINTS, 3):
        raise PoseShapeError(f"poses must have shape [..., {NUM_JOINTS}, 3], got {tuple(joints.shape)}")


def bone_vectors(joints):
    """``B^T``: bone vectors ``[..., b, 3]`` (child minus parent), i.e. the rows of ``(Y C)^T``."""
    _check(joints)
    return joints[..., _CHILD_IDX, :] - joints[..., _PARENT_IDX, :]


def kcs(joints):
    """Eq. 4: ``KCS = B^T B`` ``[..., b, b]``."""
    B = bone_vectors(joints)
    return B @ B.swapaxes(-1, -2)


def wkcs(joints, weights: np.ndarray | None = None):
    """Eq. 6: ``W * KCS`` ``[..., b, b]`` (``weights`` defaults to Eq. 5 on this skeleton)."""
    K = kcs(joints)
    W = default_weights() if weights is None else weights
    if _is_torch(K):
        import torch
        W = torch.tensor(np.array(W), dtype=K.dtype, device=K.device)
    return K * W


def upper_triangle(m):
    """The ``b (b + 1) / 2`` entries on and above the diagonal of symmetric ``[..., b, b]`` (flattened)."""
    b = m.shape[-1]
    iu = np.triu_indices(b)
    return m[..., iu[0], iu[1]]


def normalize_pose(joints, eps: float = 1e-6):
    """Sec. 3.6: root-relative joints divided by the mean joint-to-root distance.

    Returns ``(normalised [..., J, 3], scale [...])``; works for 2D ``[..., J, 2]`` too.
    """
    rel = joints - joints[..., ROOT:ROOT + 1, :]
    keep = [j for j in range(joints.shape[-2]) if j != ROOT]
    dist = (rel[..., keep, :] ** 2).sum(-1) ** 0.5
    scale = dist.mean(-1)
    if _is_torch(scale):
        scale = scale.clamp_min(eps)
    else:
        scale = np.maximum(scale, eps)
    return rel / scale[..., None, None], scale


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")
