"""A learned read-out of the auto-focal search: the focal length from the whole cost curve, not its minimum.

``autofocal.search_focal`` scores candidate focal lengths by how well the focal-free AbsPoseLifter's pose reprojects
and takes the minimum. With a trained lifter that minimum shrinks towards the middle of the range (long focal
lengths come out short, short ones long: log(estimate) = 0.69 log(true) + 2.18 on the validation clips), and the
shape of the curve around it carries more than its minimum does. W-HMR (Sec. 3.2) learns the focal length from the
body; here a ridge regression learns it from what the search already computes, per clip: the search's answer
``log(f_search / d)`` (``d`` the image diagonal in px) and the cost curve ``log C(r d) - min log C`` on ``GRID_REL``
(24 focal lengths ``r d``, r = 0.2 .. 2.7). Target: ``log(f / d)``. Everything is in units of the image diagonal, so
the read-out does not depend on the video's resolution (the lifter and the cost are unchanged by a uniform scaling
of pixels and focal length).

Nothing else about the clip goes in. The person's 2D size and place in the image made the synthetic numbers better
(median 10.0 % instead of 12 % on 160 validation clips) but the real ones worse (+24 % instead of +15 % on one
pose2sim view): they teach the read-out the protocol's prior of a person 2-6 m away, not something the footage shows
(notes/calibration.md).

Training clips (``fit``): the auto-focal protocol (``synthetic.aimed_clip``: 4 s at 15 fps, a camera aimed at the
person 2-6 m away, focal length log-uniform 400-2500 px at 1280 x 720, 2 px noise) on random windows of the CMU
*training* subjects only; the ridge penalty is chosen by 5-fold cross-validation grouped by file. The coefficients
ship in ``assets/autofocal/focal_readout.json`` with the lifter weights they were fitted for (SHA-256): another
lifter makes other curves, and the read-out refuses it.

    python -m mocap_app.calibration.readout fit                 # writes assets/autofocal/focal_readout.json
    python -m mocap_app.calibration.readout evaluate --seeds 2 3 4 5 6 7 8 9
"""
from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mocap_app.calibration.autofocal import ClipLifts, search_focal

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
READOUT_FILE = REPO / "assets" / "autofocal" / "focal_readout.json"
GRID_REL = np.geomspace(0.2, 2.7, 24)          # focal length / image diagonal
LAMBDAS = (3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)
TRAIN_SEEDS = (0, 1, 2, 3, 4, 5)
CV_TOLERANCE = 0.01             # median relative error
WINDOWS_PER_FILE = 12


class ReadoutMismatchError(ValueError):
    """The read-out was fitted for another lifter's cost curves."""


def diagonal_px(size: tuple[int, int]) -> float:
    return float(math.hypot(*size))


def clip_features(lifts: ClipLifts, frames: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """``(features, f_search_px)`` for one clip (``frames``: a subset, e.g. a bootstrap resample)."""
    d = diagonal_px(lifts.size)
    f_s, grid, score = search_focal(lifts, frames, grid=GRID_REL * d)
    curve = np.log(np.maximum(score, 1e-12))
    return np.concatenate([[math.log(f_s / d)], curve - curve.min()]), f_s


def weights_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class FocalReadout:
    mean: list[float]
    std: list[float]
    coef: list[float]
    bias: float
    ridge_lambda: float
    lifter_sha256: str
    cv_median_rel_error: float          # out-of-fold, training subjects
    train_clips: int
    command: str

    def predict_focal_px(self, lifts: ClipLifts, frames: np.ndarray | None = None) -> tuple[float, float]:
        """``(focal_px, f_search_px)``: the read-out's focal length and the plain search's."""
        x, f_s = clip_features(lifts, frames)
        z = (x - np.asarray(self.mean)) / np.asarray(self.std)
        return float(math.exp(z @ np.asarray(self.coef) + self.bias) * diagonal_px(lifts.size)), f_s

    def check_lifter(self, weights: Path) -> None:
        if weights_sha256(weights) != self.lifter_sha256:
            raise ReadoutMismatchError(f"the focal read-out was fitted for other lifter weights than {weights}; "
                                       "refit it: python -m mocap_app.calibration.readout fit")

    def save(self, path: Path = READOUT_FILE) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"schema": "mocap-focal-readout", "version": 1, **asdict(self)}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path = READOUT_FILE) -> "FocalReadout":
        data = json.loads(Path(path).read_text())
        data.pop("schema", None), data.pop("version", None)
        return cls(**data)


def load_autofocal_readout(path: Path = READOUT_FILE) -> FocalReadout | None:
    """The shipped read-out for the auto-focal lifter, or None when it is missing or fitted for other weights."""
    from engines.lifter import FOCAL_FREE_WEIGHTS
    if not Path(path).exists():
        log.warning("no focal read-out at %s: auto focal uses the plain search", path)
        return None
    r = FocalReadout.load(path)
    try:
        r.check_lifter(FOCAL_FREE_WEIGHTS)
    except ReadoutMismatchError as e:
        log.warning("%s; auto focal uses the plain search", e)
        return None
    return r


# ----------------------------------------------------------------------------------------------- fitting
def training_clips(seed: int, windows_per_file: int = WINDOWS_PER_FILE, size=(1280, 720)):
    """Random 4 s windows of the training subjects under the auto-focal protocol: ``(file, focal_px, 2D joints)``."""
    from mocap_app.calibration.synthetic import TRAIN_SUBJECTS, aimed_clip, load_segment, subject_files
    rng = np.random.default_rng(1000 + seed)
    for path in subject_files(TRAIN_SUBJECTS):
        full = load_segment(path, seconds=1e4, fps=15, detector_proportions=True)
        if len(full) < 45:
            continue
        for _ in range(windows_per_file):
            a = int(rng.integers(0, max(1, len(full) - 60)))
            f = float(np.exp(rng.uniform(np.log(400), np.log(2500))))
            d = rng.uniform(2000, 6000)
            _, _, kp = aimed_clip(full[a:a + 60], f, d, rng, size)
            if len(kp) >= 20:
                yield path.stem, f, kp


def _ridge(A: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, float]:
    Ab = np.c_[A, np.ones(len(A))]
    reg = lam * np.diag([1.0] * A.shape[1] + [0.0])          # the intercept is not penalised
    w = np.linalg.solve(Ab.T @ Ab + reg, Ab.T @ y)
    return w[:-1], float(w[-1])


def fit(seeds=TRAIN_SEEDS, out: Path = READOUT_FILE, backend: str = "torch") -> FocalReadout:
    from mocap_app.calibration.autofocal import load_autofocal_lifter
    from engines.lifter import FOCAL_FREE_WEIGHTS
    size = (1280, 720)
    lifter = load_autofocal_lifter(backend)
    X, y, files = [], [], []
    t0 = time.time()
    for seed in seeds:
        for name, f, kp in training_clips(seed, size=size):
            x, _ = clip_features(ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size))
            X.append(x), y.append(math.log(f / diagonal_px(size))), files.append(name)
        log.info("seed %d: %d clips, %.0f s", seed, len(y), time.time() - t0)
    X, y, files = np.array(X), np.array(y), np.array(files)
    mean, std = X.mean(0), X.std(0) + 1e-9
    Z = (X - mean) / std
    order = np.random.default_rng(0).permutation(np.unique(files))
    fold = np.array([{f: i % 5 for i, f in enumerate(order)}[f] for f in files])
    cv = {}
    for lam in LAMBDAS:
        pred = np.zeros_like(y)
        for k in range(5):
            w, b = _ridge(Z[fold != k], y[fold != k], lam)
            pred[fold == k] = Z[fold == k] @ w + b
        cv[lam] = float(np.median(np.abs(np.exp(pred - y) - 1)))
        log.info("lambda %g: out-of-fold median |error| %.4f", lam, cv[lam])
    # the most regularised penalty within one point of the best: the synthetic clips are not the real footage the
    # read-out will see, and a smoother read-out of the curve carries over better (notes/calibration.md)
    lam = max(k for k, v in cv.items() if v <= min(cv.values()) + CV_TOLERANCE)
    w, b = _ridge(Z, y, lam)
    r = FocalReadout(mean.tolist(), std.tolist(), w.tolist(), b, lam, weights_sha256(FOCAL_FREE_WEIGHTS), cv[lam],
                     len(y), "python -m mocap_app.calibration.readout fit --seeds " + " ".join(map(str, seeds)))
    r.save(out)
    log.info("wrote %s (lambda %g, %d clips, out-of-fold median |error| %.3f)", out, lam, len(y), cv[lam])
    return r


def evaluate(seeds=(2, 3), readout_path: Path = READOUT_FILE, step: int = 1) -> dict:
    """The read-out and the plain search on the validation clips (the auto-focal test's protocol)."""
    from mocap_app.calibration.autofocal import load_autofocal_lifter
    from mocap_app.calibration.synthetic import autofocal_clips
    size = (1280, 720)
    lifter = load_autofocal_lifter("torch")
    r = FocalReadout.load(readout_path)
    rows = []
    for seed in seeds:
        for name, f, _, _, kp in autofocal_clips(seed, step, detector_proportions=True, size=size):
            fr, fs = r.predict_focal_px(ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size))
            rows.append((seed, name, f, fr / f - 1, fs / f - 1))
            print(f"{seed:4d} {name:8} {f:6.0f} px  read-out {fr / f - 1:+.3f}  search {fs / f - 1:+.3f}", flush=True)
    e = np.array([[row[3], row[4]] for row in rows])
    lt = np.log([row[2] for row in rows])
    res = {"clips": len(rows), "readout_median": float(np.median(np.abs(e[:, 0]))),
           "search_median": float(np.median(np.abs(e[:, 1]))),
           "readout_within_10": float(np.mean(np.abs(e[:, 0]) <= 0.1)),
           "readout_slope": float(np.polyfit(lt, lt + np.log1p(e[:, 0]), 1)[0]),
           "search_slope": float(np.polyfit(lt, lt + np.log1p(e[:, 1]), 1)[0])}
    for i in range(0, len(rows), 40):
        res[f"readout_median_clips_{i}_{i + 39}"] = float(np.median(np.abs(e[i:i + 40, 0])))
    print(json.dumps(res, indent=1))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit the read-out on training-subject clips")
    f.add_argument("--seeds", type=int, nargs="+", default=list(TRAIN_SEEDS))
    f.add_argument("--out", type=Path, default=READOUT_FILE)
    e = sub.add_parser("evaluate", help="median error on validation clips, beside the plain search")
    e.add_argument("--seeds", type=int, nargs="+", default=[2, 3])
    e.add_argument("--step", type=int, default=1)
    e.add_argument("--readout", type=Path, default=READOUT_FILE)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if a.cmd == "fit":
        fit(a.seeds, a.out)
    else:
        evaluate(a.seeds, a.readout, a.step)
    return 0


if __name__ == "__main__":
    sys.exit(main())
