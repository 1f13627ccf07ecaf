"""Focal length from footage of a person (W-HMR-style weak supervision, done by search instead of a network).

The AbsPoseLifter predicts a *canonical* root depth ``Rz / f`` and a root-relative
pose that do not depend on the focal length ``f`` (AbsPoseLifter Eq. 5-7), so for a
candidate ``f`` the absolute pose is known in closed form from one lifter pass::

    root(f) = c_depth * (u_root - cx, v_root - cy, f),   joints(f) = root(f) + rel

Only perspective effects tell focal lengths apart: a joint ``dz`` in front of the
root at distance ``Z`` and ``du`` pixels off the principal point moves by about
``du * dz / Z`` pixels, and ``Z = f * c_depth``. We score each candidate ``f`` on a
log grid (300..4000 px per 1280 px of the image's long side, ``focal_range_px``) by
how well ``joints(f)`` reprojects onto the 2D joints (W-HMR's "project the 3D joints
with the predicted focal length onto the 2D joints", Sec. 3.2), with the per-frame
translation re-fitted so that errors of
the canonical depth do not masquerade as focal length. An optional second term
(``bone_weight``, off by default: it biased the estimate on noisy poses) asks the
skeleton back-projected through ``K(f)`` at the lifted depths to keep constant bone
lengths over the clip. The minimum is refined with a bounded scalar search.

A lifter that also takes ``f`` as an input (``LifterConfig.use_focal``, the shipped one since 3 Dec) bends
its pose to fit whatever ``f`` it is given, so scoring each ``f`` with the pose lifted at that ``f`` prefers
long focal lengths. For it the answer is the self-consistent ``f*``: the pose lifted with ``f*`` reprojects
best with ``f*`` itself (``self_consistent_focal``); the search above then runs on that pose.

Confidence: the search on time-block bootstrap resamples of the clip must agree,
the frames must prefer ``f`` clearly over ``f * 1.15`` and ``f / 1.15`` (t-statistic
over time blocks), and - because the answer scales one to one with the lifter's
relative depths - the doubt about those depths (``depth_uncertainty``) is added to the
spread. Clips that cannot tell - a person far away, centred, barely moving in depth -
get a flat curve, spread-out answers and a low confidence. With the current
AbsPoseLifter (depth offsets right in scale but not in shape, from clip to clip) every
estimate on the synthetic validation clips is flagged unreliable; see notes/calibration.md.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np
from scipy.optimize import brentq, minimize_scalar

from engines.camera import CameraIntrinsics
from engines.skeleton import BONES, NUM_JOINTS, ROOT
from mocap_app.calibration.profile import CalibrationError, CameraProfile

log = logging.getLogger(__name__)

F_MIN, F_MAX = 300.0, 4000.0      # the search range for a 1280 px long side; it scales with the image (focal_range_px)
REFERENCE_LONG_SIDE_PX = 1280.0
# Relative uncertainty of the trained AbsPoseLifter's root-relative depths. The focal estimate scales with
# those depths, so this doubt enters the confidence; an unbiased lifter (the test oracle) passes 0. On 40
# synthetic validation clips in the detector's proportions the depth scale (true / lifted) is 1.05 median
# with a clip-to-clip spread of 0.20 in log units; 0.5 (set when the clips were in the CMU skeleton, spread
# 0.49) flags the same clips as any value from 0.15 up, while 0 let 10 of 15 "reliable" clips miss by > 10 %
# (notes/calibration.md).
LIFTER_DEPTH_UNCERTAINTY = 0.5
MIN_FRAMES = 10
# Median |error| of the search with the shipped focal-free lifter on 400 fresh synthetic validation clips at four image
# sizes (14.6-16.9 %; scripts/autofocal_synthetic.py --sizes, notes/calibration.md): what the user is told to expect.
TYPICAL_ERROR = 0.15
RELIABLE_CONFIDENCE = 0.5


class AutoFocalError(CalibrationError):
    """Footage from which no focal length can be estimated at all (no person, too few frames)."""


class LifterLike(Protocol):
    def lift(self, keypoints_px: np.ndarray, confidence: np.ndarray, K: np.ndarray) -> np.ndarray: ...


@dataclass
class AutoFocalResult:
    focal_px: float
    confidence: float                 # 0..1; below RELIABLE_CONFIDENCE the clip could not tell
    reliable: bool
    interval_px: tuple[float, float]  # ~68 % bootstrap interval
    width_px: int
    height_px: int
    frames_used: int
    reason: str                       # a sentence for the user
    spread: float = 0.0               # relative uncertainty (log units) the confidence uses: the two below combined
    bootstrap_spread: float = 0.0     # std of log(f) over time-block resamples
    depth_spread: float = 0.0         # half the log change of f with the lifted depths x (1 -+ depth_uncertainty)
    curve_rise: float = 0.0           # t-statistic: how clearly the frames prefer f over f*1.15 and f/1.15
    residual: float = 0.0             # mean reprojection residual at f, in units of the person's 2D size
    grid_px: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))
    score: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0))

    def intrinsics(self) -> CameraIntrinsics:
        return CameraIntrinsics.from_focal(self.focal_px, self.width_px, self.height_px)

    def profile(self, name: str) -> CameraProfile:
        return CameraProfile.from_intrinsics(
            name, self.intrinsics(), f"auto focal from {self.frames_used} frames of a person",
            confidence=float(self.confidence), notes=self.reason)


@dataclass
class LiftedClip:
    """One lifter pass over a clip, split into what does and does not depend on the focal length."""
    kp: np.ndarray        # [N, J, 2] px
    w: np.ndarray         # [N, J] weights
    cdepth: np.ndarray    # [N] canonical root depth (mm per px of focal)
    rel: np.ndarray       # [N, J, 3] mm
    c: np.ndarray         # [2] principal point, or [N, 2] one per frame


def focal_range_px(size: tuple[int, int]) -> tuple[float, float]:
    """The focal lengths searched for an image of ``size``: ``F_MIN..F_MAX`` per 1280 px of its long side, i.e. the
    same fields of view (130-18 deg across the long side) at any resolution, so that a 4K telephoto or a
    640 x 480 wide angle is not cut off by a range made for 720p."""
    k = max(size) / REFERENCE_LONG_SIDE_PX
    return F_MIN * k, F_MAX * k


class ClipLifts:
    """The lifter's output for one clip at any candidate focal length ``f``, as ``at(f) -> LiftedClip``.

    A lifter that follows the canonical-depth model (root depth proportional to ``f``, relative pose independent
    of it; the paper's AbsPoseLifter) needs one pass, at ``f_ref``. One that also takes ``f`` as an input
    (``LifterConfig.use_focal``) is found out by a probe at ``2 f_ref`` and run again for every focal length asked
    for (memoised; a pass over a few hundred frames takes milliseconds). ``depth_scale`` multiplies the lifted
    root-relative depths (the search's sensitivity to them enters the confidence).

    Frames whose long side is under ``REFERENCE_LONG_SIDE_PX`` are lifted as if enlarged to it (``lift_scale``: 2D
    joints, principal point and focal length multiplied by it; a perfect lifter returns the same 3D). The lifter sees
    the person's size in pixels (AbsPoseLifter Eq. 1-4) and was trained on focal lengths of 400-2500 px, which a
    small frame's lens mostly is not: on 640 x 480 clips auto focal's median error drops from 22 % to 15 %.
    Larger frames are lifted as they are: shrinking the 1920 px pose2sim views made their answers 8-19 points worse
    (notes/calibration.md).
    """

    def __init__(self, lifter: LifterLike, kp: np.ndarray, conf: np.ndarray, size: tuple[int, int],
                 f_ref: float = 1000.0, lift_scale: float | None = None):
        self.lifter, self.kp, self.w, self.size = lifter, kp, conf, size
        self.f_range = focal_range_px(size)
        self.lift_scale = max(1.0, REFERENCE_LONG_SIDE_PX / max(size)) if lift_scale is None else float(lift_scale)
        self.depth_scale = 1.0
        self._cache: dict[float, LiftedClip] = {}
        base = self._lift(f_ref)
        probe = slice(0, min(len(kp), 8))
        f2 = 2 * f_ref
        out2 = self._run(kp[probe], conf[probe], f2)
        rel2 = out2 - out2[:, ROOT][:, None]
        self.focal_independent = bool(np.allclose(rel2, base.rel[probe], atol=1.0) and np.allclose(
            out2[:, ROOT, 2] / f2, base.cdepth[probe], rtol=1e-3))
        self._fixed = base if self.focal_independent else None

    def _K(self, f: float) -> np.ndarray:
        return CameraIntrinsics.from_focal(f, *self.size).K

    def _run(self, kp: np.ndarray, conf: np.ndarray, f: float) -> np.ndarray:
        """The lifter on ``kp`` with focal length ``f`` (px of this clip), run at ``lift_scale``: camera-frame mm."""
        k = self.lift_scale
        K = np.diag([k, k, 1.0]) @ self._K(f)
        return np.asarray(self.lifter.lift(kp * k, conf, K), float)

    def _lift(self, f: float) -> LiftedClip:
        if f not in self._cache:
            out = self._run(self.kp, self.w, f)
            if not np.isfinite(out).all():
                raise AutoFocalError(f"the lifter returned non-finite joints at a focal length of {f:.0f} px")
            root = out[:, ROOT]
            self._cache[f] = LiftedClip(self.kp, self.w, root[:, 2] / f, out - root[:, None], self._K(f)[:2, 2])
        return self._cache[f]

    def at(self, f: float) -> LiftedClip:
        L = self._fixed if self._fixed is not None else self._lift(float(f))
        if self.depth_scale == 1.0:
            return L
        return LiftedClip(L.kp, L.w, L.cdepth, L.rel * np.array([1.0, 1.0, self.depth_scale]), L.c)

    def frozen(self, f: float) -> "ClipLifts":
        """The lifts at ``f`` used for every focal length (what the search scores; ``self`` if that is already so)."""
        if self.focal_independent:
            return self
        other = copy.copy(self)      # shares the memo
        other._fixed = self._lift(float(f))
        return other

    def with_lifted(self, L: LiftedClip) -> "ClipLifts":
        """These lifts with ``L`` standing in for the lifter's output at every focal length: the search on a relative
        pose from elsewhere (a true pose plus part of the lifter's error, a post-processed pose; experiments)."""
        other = copy.copy(self)
        other._fixed = L
        return other

    def with_depth_scale(self, k: float) -> "ClipLifts":
        """The same lifts (sharing the memo) with the root-relative depths multiplied by ``k``."""
        other = copy.copy(self)
        other.depth_scale = self.depth_scale * k
        return other


def reprojection_cost(L: LiftedClip, f: float, frames: np.ndarray | None = None) -> np.ndarray:
    """Per-frame RMS reprojection error of ``rel`` placed at its best translation for focal ``f``.

    Residuals are in units of the person's 2D size and divided by ``sqrt(1 + x^2)`` per image axis
    (``x`` = normalised image coordinate): an error ``d`` of the lifted relative pose moves a joint by
    ``(d_xy - x d_z) / Z``, so without this a noisy lifter makes long focal lengths (small ``x``) look
    better. Translation: from the canonical-depth root, refined by Gauss-Newton (3 unknowns per frame)
    so that canonical-depth errors do not masquerade as focal length.
    """
    idx = np.arange(len(L.kp)) if frames is None else frames
    kp, w, rel, cd = L.kp[idx], L.w[idx], L.rel[idx], L.cdepth[idx]
    c = L.c if L.c.ndim == 1 else L.c[idx]
    x = (kp - c[..., None, :]) / f                                      # normalised image coordinates [n, J, 2]
    sw = np.sqrt(w)[..., None] / np.sqrt(1.0 + x ** 2)                  # [n, J, 2] per-axis weights
    r0 = (kp[:, ROOT] - c) * cd[:, None]
    T = np.concatenate([r0, (f * cd)[:, None]], axis=1)                 # [n, 3]
    for _ in range(3):
        P = rel + T[:, None]
        z = np.maximum(P[..., 2], 1.0)                                  # a joint behind the camera: no division by ~0
        pr = P[..., :2] / z[..., None]
        res = (pr - x) * sw                                             # [n, J, 2]
        # d pr / d T = [[1/z, 0, -X/z^2], [0, 1/z, -Y/z^2]]
        Jx = np.stack([1 / z, np.zeros_like(z), -P[..., 0] / z ** 2], -1) * sw[..., 0:1]
        Jy = np.stack([np.zeros_like(z), 1 / z, -P[..., 1] / z ** 2], -1) * sw[..., 1:2]
        Jm = np.concatenate([Jx, Jy], axis=1)                           # [n, 2J, 3]
        rv = np.concatenate([res[..., 0], res[..., 1]], axis=1)         # [n, 2J]
        A = np.einsum("nki,nkj->nij", Jm, Jm) + 1e-12 * np.eye(3)
        b = np.einsum("nki,nk->ni", Jm, rv)
        T = T - np.linalg.solve(A, b[..., None])[..., 0]
        T[:, 2] = np.maximum(T[:, 2], 1.0)
    P = rel + T[:, None]
    pr = P[..., :2] / np.maximum(P[..., 2:3], 1.0)
    err2 = np.sum(((pr - x) * sw) ** 2, axis=-1)                        # [n, J]
    scale = np.sqrt(np.mean(np.sum((x - x.mean(1, keepdims=True)) ** 2, -1), -1)) + 1e-12   # 2D size, same units
    return np.sqrt(np.sum(err2, -1) / np.maximum(w.sum(-1), 1e-9)) / scale


def _bone_cost(L: LiftedClip, f: float, frames: np.ndarray | None = None) -> np.ndarray:
    """Per-bone coefficient of variation (over the frames) of the skeleton back-projected through ``K(f)`` at
    the lifted depths ``f * c_depth + rel_z``; returned per frame as squared deviation from the bone medians."""
    idx = np.arange(len(L.kp)) if frames is None else frames
    kp, rel, cd = L.kp[idx], L.rel[idx], L.cdepth[idx]
    Z = f * cd[:, None] + rel[..., 2]
    X = np.concatenate([(kp - L.c) / f * Z[..., None], Z[..., None]], -1)
    p, c = np.array([b[0] for b in BONES]), np.array([b[1] for b in BONES])
    bl = np.linalg.norm(X[:, c] - X[:, p], axis=-1)                     # [n, B]
    med = np.median(bl, axis=0)
    return np.sqrt(np.mean(((bl - med) / med) ** 2, axis=-1))


def total_cost(lifts: ClipLifts, f: float, frames=None, bone_weight: float = 0.0) -> float:
    """What the search minimises over ``f``: the mean over ``frames`` of the per-frame reprojection cost."""
    L = lifts.at(f)
    c = reprojection_cost(L, f, frames)
    if bone_weight:
        c = c + bone_weight * _bone_cost(L, f, frames)
    return float(np.mean(c))


def _frame_costs(lifts: ClipLifts, f: float, bone_weight: float = 0.0) -> np.ndarray:
    L = lifts.at(f)
    c = reprojection_cost(L, f)
    if bone_weight:
        c = c + bone_weight * _bone_cost(L, f)
    return c


def _preference_t(lifts: ClipLifts, f_best: float, factor: float, bone_weight: float, n_blocks: int) -> float:
    """t-statistic (over time blocks) of how much worse focal ``f_best * factor`` fits than ``f_best``."""
    f_alt = float(np.clip(f_best * factor, 50.0, 50000.0))
    d = _frame_costs(lifts, f_alt, bone_weight) - _frame_costs(lifts, f_best, bone_weight)
    m = np.array([b.mean() for b in np.array_split(d, n_blocks) if len(b)])
    if len(m) < 2:
        return 0.0
    return float(m.mean() / (m.std(ddof=1) / math.sqrt(len(m)) + 1e-12))


def search_focal(lifts: ClipLifts, frames=None, grid=None,
                 bone_weight: float = 0.0) -> tuple[float, np.ndarray, np.ndarray]:
    """Best focal length (px) for ``lifts``: the minimum of the mean cost on a log grid (``lifts.f_range``),
    refined by a bounded scalar search between its neighbours. Returns ``(f_best, grid, cost on the grid)``."""
    grid = np.geomspace(*lifts.f_range, 36) if grid is None else grid
    score = np.array([total_cost(lifts, f, frames, bone_weight) for f in grid])
    i = int(np.argmin(score))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    if hi > lo:
        r = minimize_scalar(lambda lf: total_cost(lifts, math.exp(lf), frames, bone_weight),
                            bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 1e-3})
        f_best = float(math.exp(r.x))
    else:
        f_best = float(grid[i])
    return f_best, grid, score


def load_autofocal_lifter(backend: str = "auto"):
    """The lifter auto focal runs: the paper's, whose relative pose does not depend on ``f`` (``FOCAL_FREE_WEIGHTS``;
    the app's pose lifter takes ``f`` as an input, and the fixed point below does worse with it on real video)."""
    from engines import load_lifter
    from engines.lifter import FOCAL_FREE_WEIGHTS
    return load_lifter("absposelifter", backend=backend, weights=FOCAL_FREE_WEIGHTS)


def self_consistent_focal(lifts: ClipLifts, bone_weight: float = 0.0, n_coarse: int = 12) -> tuple[float, float]:
    """For a lifter that takes the focal length as an input: ``(f*, alpha)``.

    Scoring each ``f`` with the pose lifted *at that* ``f`` prefers long focal lengths (the lifter bends its pose to
    fit whatever ``f`` it is given). Instead ``f*`` is a fixed point of ``g(f) = search_focal(lifts at f)``: the
    focal length at which the pose lifted with ``f*`` reprojects best with ``f*`` itself. ``h(log f) = log g(f) -
    log f`` is sampled on a coarse log grid; its first downward zero crossing is refined with Brent's method.
    ``alpha = -dh / d log f`` there says how strongly ``g`` pulls back towards ``f*``: an error ``d`` of the search
    moves ``f*`` by ``d / alpha``, so the confidence divides spreads by it. No crossing: the best edge, alpha 0.
    """
    f_min, f_max = lifts.f_range
    fine = np.geomspace(f_min, f_max, 24)

    def h(lf: float) -> float:
        return math.log(search_focal(lifts.frozen(math.exp(lf)), grid=fine, bone_weight=bone_weight)[0]) - lf

    lg = np.linspace(math.log(f_min * 1.05), math.log(f_max / 1.05), n_coarse)
    hs = np.array([h(x) for x in lg])
    down = np.flatnonzero((hs[:-1] > 0) & (hs[1:] <= 0))
    if len(down) == 0:
        return (f_min if hs[0] <= 0 else f_max), 0.0
    i = int(down[0])
    root = brentq(h, lg[i], lg[i + 1], xtol=2e-3) if hs[i + 1] < 0 else lg[i + 1]
    alpha = float(-(hs[i + 1] - hs[i]) / (lg[i + 1] - lg[i]))
    return float(math.exp(root)), alpha


def estimate_focal(keypoints_px: np.ndarray, confidence: np.ndarray, size: tuple[int, int], lifter: LifterLike,
                   *, min_confidence: float = 0.3, bootstrap: int = 12, bone_weight: float = 0.0,
                   depth_uncertainty: float = LIFTER_DEPTH_UNCERTAINTY,
                   seed: int = 0, progress: Callable[[float], None] | None = None) -> AutoFocalResult:
    """Focal length (px, square pixels, principal point at the image centre) from a clip's 2D joints.

    ``keypoints_px [N,17,2]`` (NaN where no person), ``confidence [N,17]``, ``size=(width, height)``.
    ``depth_uncertainty``: relative doubt about the lifter's root-relative depths; the search is
    repeated with those depths scaled by ``1 -+ depth_uncertainty`` and the change of the answer
    counts against the confidence (0 for a lifter whose depths are unbiased, like the test oracle).
    """
    kp = np.asarray(keypoints_px, float)
    conf = np.asarray(confidence, float)
    if kp.ndim != 3 or kp.shape[1:] != (NUM_JOINTS, 2) or conf.shape != kp.shape[:2]:
        raise AutoFocalError(f"expected keypoints [N, 17, 2] and confidence [N, 17], got {kp.shape} and {conf.shape}")
    w_img, h_img = int(size[0]), int(size[1])
    ok = np.isfinite(kp).all(axis=(1, 2)) & (np.mean(conf, axis=1) >= min_confidence)
    if ok.sum() < MIN_FRAMES:
        raise AutoFocalError(f"a person was seen clearly in only {int(ok.sum())} frames; auto focal needs at least "
                             f"{MIN_FRAMES} (a clip where the whole body is visible and moves around)")
    kp, conf = kp[ok], np.clip(conf[ok], 0.0, 1.0)
    L = ClipLifts(lifter, kp, conf, (w_img, h_img))
    if progress:
        progress(0.1)
    alpha = 1.0            # how the spreads of the search below carry over to the answer
    if L.focal_independent:
        f_best, grid, score = search_focal(L, bone_weight=bone_weight)
        f_search = f_best
    else:
        f_best, alpha = self_consistent_focal(L, bone_weight)
        L = L.frozen(f_best)
        f_search, grid, score = search_focal(L, bone_weight=bone_weight)
        alpha = float(np.clip(alpha, 0.05, 1.0))
    if progress:
        progress(0.4)

    # bootstrap over contiguous time blocks: does the answer hold on other parts of the clip?
    rng = np.random.default_rng(seed)
    n = len(kp)
    n_blocks = min(10, max(2, n // 5))
    blocks = np.array_split(np.arange(n), n_blocks)
    boots = []
    for b in range(bootstrap):
        pick = rng.integers(0, n_blocks, n_blocks)
        frames = np.concatenate([blocks[i] for i in pick])
        fb, _, _ = search_focal(L, frames, grid=np.geomspace(*L.f_range, 24), bone_weight=bone_weight)
        boots.append(fb)
        if progress:
            progress(0.4 + 0.6 * (b + 1) / bootstrap)
    lb = math.log(f_best) + (np.log(np.array(boots)) - math.log(f_search)) / alpha
    boot_spread = float(np.std(lb))                              # log-units ~ relative error
    f_dep = [search_focal(L.with_depth_scale(k), grid=np.geomspace(*L.f_range, 24), bone_weight=bone_weight)[0]
             for k in (1.0 - depth_uncertainty, 1.0 + depth_uncertainty)] if depth_uncertainty > 0 else []
    depth_sens = abs(math.log(f_dep[1] / f_dep[0])) / 2 / alpha if f_dep else 0.0
    spread = math.hypot(boot_spread, depth_sens)
    lo, hi = float(np.exp(np.percentile(lb, 16))), float(np.exp(np.percentile(lb, 84)))
    s_best = total_cost(L, f_search, None, bone_weight)
    # significance: do the frames (in time blocks) clearly prefer f_best over 15 % shorter and longer focals?
    # (a lifter that takes f: f* moves by 15 % when the search's curve does by 15 % * alpha)
    t_lo = _preference_t(L, f_search, 1.15 ** -alpha, bone_weight, n_blocks)
    t_hi = _preference_t(L, f_search, 1.15 ** alpha, bone_weight, n_blocks)
    rise = min(t_lo, t_hi)
    f_min, f_max = L.f_range
    at_edge = f_best < f_min * 1.05 or f_best > f_max / 1.05
    # 0.5 at t = 1.3 and a bootstrap spread of 6 % (a little stricter than the boundary, t ~ 1.1 and 8 %,
    # that separated <= 10 % errors from larger ones on synthetic validation clips, notes/calibration.md);
    # the weaker of the two cues decides
    c_t = float(np.clip(0.5 + (rise - 1.3) / 1.2, 0.0, 1.0))
    c_s = float(np.clip(0.5 + (0.06 - spread) / 0.1, 0.0, 1.0))
    confidence = min(c_t, c_s) * (0.2 if at_edge else 1.0)
    reliable = confidence >= RELIABLE_CONFIDENCE
    if at_edge:
        reason = (f"the best focal length lies at the edge of the search range ({f_min:.0f}-{f_max:.0f} px); "
                  "the clip does not determine it")
    elif not reliable:
        # name the cue that decided (the weakest), so that a tight range of answers is not shown as the doubt
        if c_t <= c_s:
            why = (f"its frames hardly prefer {f_best:.0f} px to focal lengths 15 % shorter or longer (the person "
                   f"moves too little in depth or across the image); use footage where the person walks "
                   f"towards/away from the camera and across the image")
        elif f_dep and depth_sens >= boot_spread:
            a, b = sorted(f_dep)
            why = (f"its parts agree ({lo:.0f}-{hi:.0f} px), but the answer follows the 3D lifter's depth estimate "
                   f"({a:.0f}-{b:.0f} px with the lifted body {1 - depth_uncertainty:g}-{1 + depth_uncertainty:g} "
                   f"times as deep), and such estimates are off by ~{TYPICAL_ERROR:.0%} (median, validation clips; "
                   f"long lenses come out short, wide ones long)")
        else:
            why = f"different parts of it give {lo:.0f}-{hi:.0f} px"
        reason = (f"the clip cannot tell the focal length well: {why}; for a calibration use a checkerboard or "
                  "enter the camera's field of view")
    else:
        reason = f"consistent over the clip: {lo:.0f}-{hi:.0f} px (68 % of resamples)"
    log.info("auto focal: %.0f px (confidence %.2f, bootstrap %.0f-%.0f px, rise %.3f)", f_best, confidence, lo, hi,
             rise)
    return AutoFocalResult(f_best, float(confidence), reliable, (lo, hi), w_img, h_img, int(len(kp)), reason,
                           spread, boot_spread, depth_sens, float(rise), float(s_best), grid, score)


def combine_takes(results: list[AutoFocalResult]) -> AutoFocalResult:
    """One estimate from several takes of one camera: the geometric mean of their focal lengths.

    The takes' errors are partly independent (other motion, distance and direction), so averaging gains a little:
    on validation clips the median error went from 13.9-17.4 % for one take to 10.5-14.8 % for five
    (``scripts/autofocal_takes.py``, notes/calibration.md). The lifter's shrinkage towards ~1000 px is shared by every
    take, so the confidence is the lowest of the takes', and the interval is the range of their answers.
    """
    if not results:
        raise AutoFocalError("no takes to combine")
    sizes = {(r.width_px, r.height_px) for r in results}
    if len(sizes) > 1:
        raise AutoFocalError("the takes are " + ", ".join(f"{w}x{h}" for w, h in sorted(sizes)) + ": combine takes "
                             "of one camera at one image size")
    if len(results) == 1:
        return results[0]
    f = np.array([r.focal_px for r in results])
    f_mean = float(np.exp(np.mean(np.log(f))))
    conf = min(r.confidence for r in results)
    reliable = all(r.reliable for r in results)
    spread = float(np.std(np.log(f)))
    reason = (f"geometric mean of {len(results)} takes ({', '.join(f'{v:.0f}' for v in f)} px, spread "
              f"{100 * spread:.0f} %). " + ("Each take could tell the focal length." if reliable else
                                            f"{sum(not r.reliable for r in results)} of them could not tell it well: "
                                            "more takes average out part of the error, not the lifter's shared bias "
                                            f"(~{100 * TYPICAL_ERROR:.0f} % for one take, ~12 % for five on validation "
                                            "clips); "
                                            "for a calibration use a checkerboard."))
    first = results[0]
    return dataclasses.replace(first, focal_px=f_mean, confidence=float(conf), reliable=reliable,
                               interval_px=(float(f.min()), float(f.max())), reason=reason,
                               frames_used=int(sum(r.frames_used for r in results)), spread=spread,
                               grid_px=np.zeros(0), score=np.zeros(0))
