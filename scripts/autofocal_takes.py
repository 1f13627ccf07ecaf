"""Auto focal from several takes of one camera, and the search's shrinkage undone by a fitted line (an experiment).

    PYTHONPATH=. python scripts/autofocal_synthetic.py --seeds 50 51 52 --step 1 --sizes 1280x720 \\
        --subjects train                                                    # the line, on the training subjects
    PYTHONPATH=. python scripts/autofocal_takes.py --size 1280x720 --seed 200 --sessions 100 --line 0.670 2.261

Sessions of one camera (focal length log-uniform 400-2500 px per 1280 px of the long side) watching 5 different
validation files, each take with its own distance (2-6 m), height and yaw (``aimed_clip``); the median |error| of 1,
2, 3 and 5 takes combined, as the geometric mean of their answers and as the minimum of their summed log costs, each
also "de-shrunk" by inverting ``--line`` (log(answer) = slope log(true) + intercept, per 1280 px, as the first
command prints it). Numbers: notes/calibration.md.
"""
from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.optimize import minimize_scalar

from engines import load_lifter
from engines.lifter import FOCAL_FREE_WEIGHTS
from mocap_app.calibration import autofocal
from mocap_app.calibration.synthetic import aimed_clip, load_segment, subject_files

TAKES = (1, 2, 3, 5)


def takes(lifter, size, seed, sessions, line) -> None:
    k = 1280.0 / max(size)
    slope, icpt = line
    deshrink = lambda f: math.exp((math.log(f * k) - icpt) / slope) / k            # noqa: E731
    files = subject_files()
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(sessions):
        f = float(np.exp(rng.uniform(np.log(400 / k), np.log(2500 / k))))
        lifts, answers = [], []
        for path in rng.choice(files, max(TAKES), replace=False):
            jw = load_segment(path, seconds=4, fps=15, start_s=0.5, detector_proportions=True)
            _, _, kp = aimed_clip(jw, f, rng.uniform(2000, 6000), rng, size)
            L = autofocal.ClipLifts(lifter, kp, np.ones(kp.shape[:2]), size)
            lifts.append(L)
            answers.append(autofocal.search_focal(L)[0])
        row = [f]
        for n in TAKES:
            geo = float(np.exp(np.mean(np.log(answers[:n]))))
            lo, hi = min(answers[:n]), max(answers[:n])          # the summed cost's minimum lies between the answers
            cost = lambda lf: sum(math.log(autofocal.total_cost(L, math.exp(lf))) for L in lifts[:n])  # noqa: E731
            summed = geo if hi <= lo * 1.0001 else math.exp(minimize_scalar(
                cost, bounds=(math.log(lo), math.log(hi)), method="bounded", options={"xatol": 1e-3}).x)
            row += [geo, summed]
        rows.append(row)
    a = np.array(rows)
    f = a[:, 0]
    err = lambda est: np.median(np.abs(est / f - 1))                                 # noqa: E731
    print(f"{len(a)} sessions at {size[0]}x{size[1]}, line {slope:.3f} / {icpt:.3f}")
    print(f"{'takes':>5} {'geometric mean':>15} {'de-shrunk':>10} {'summed costs':>13} {'de-shrunk':>10}")
    for j, n in enumerate(TAKES):
        geo, summed = a[:, 1 + 2 * j], a[:, 2 + 2 * j]
        print(f"{n:5d} {err(geo):15.3f} {err(np.array([deshrink(x) for x in geo])):10.3f} {err(summed):13.3f} "
              f"{err(np.array([deshrink(x) for x in summed])):10.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--seed", type=int, default=200)
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--line", type=float, nargs=2, default=[0.670, 2.261], metavar=("SLOPE", "INTERCEPT"))
    a = ap.parse_args()
    size = tuple(int(x) for x in a.size.split("x"))
    lifter = load_lifter("absposelifter", backend="torch", weights=FOCAL_FREE_WEIGHTS)
    takes(lifter, size, a.seed, a.sessions, a.line)


if __name__ == "__main__":
    main()
