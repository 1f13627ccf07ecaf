"""Ablation like the AbsPoseLifter paper's Tables 1-2, on held-out subjects.

    python -m engines.absposelifter.ablation [--steps 1500] [--runs-dir runs/ablation]

Variants (same network, schedule and seed; only the studied factor changes):

* Table 1: without vs with location & scale in the normalisation layer (mixture-noise training);
* Table 2: trained on clean 2D vs single Gaussian vs Gaussian + uniform mixture.

Each is evaluated on validation subjects with (a) synthetic realistic 2D (errors drawn
from the mixture fitted to real MediaPipe errors, the paper's protocol) and (b) real
MediaPipe 2D on the 4-camera pose2sim video against the 3D triangulated from the
other three cameras (no model of the noise involved at all).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engines.absposelifter.evaluate import evaluate, evaluate_real
from engines.absposelifter.train import RAW_LABELS_ERROR_MODEL, train

REPO = Path(__file__).resolve().parents[2]

VARIANTS = {
    "w/o location & scale, mixture": dict(noise="mixture", use_location_scale=False),
    "with location & scale, mixture": dict(noise="mixture", use_location_scale=True),
    "with location & scale, clean 2D": dict(noise="none", use_location_scale=True),
    "with location & scale, single Gaussian": dict(noise="gaussian", use_location_scale=True),
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "ablation")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--error-model", type=Path, default=RAW_LABELS_ERROR_MODEL,
                    help="mixture to train and evaluate on (default: MediaPipe's own labels, as the table in "
                         "BENCHMARKS.md was made; the single-Gaussian variant takes its _gaussian sibling)")
    a = ap.parse_args(argv)
    a.runs_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, kw in VARIANTS.items():
        w = a.runs_dir / (name.replace(" ", "_").replace("/", "").replace(",", "").replace("&", "and") + ".pt")
        if not w.exists():  # reuse finished runs: the ablation can be resumed
            train(w, a.steps, a.batch, noise=kw["noise"], use_location_scale=kw["use_location_scale"],
                  threads=a.threads, error_model_path=a.error_model)
        syn = evaluate(w, max_poses=None, flip_test=False, error_model=a.error_model)   # as in BENCHMARKS.md
        real = evaluate_real(w, flip_test=False)
        rows.append((name, syn["ground-truth 2D"], syn["realistic-noise 2D"], real))
        print(f"done: {name}", flush=True)
    print(f"\nsteps={a.steps} batch={a.batch} (each variant), validation subjects 06/08/90/104 + real pose2sim video\n")
    print("| variant | GT 2D MPJPE | GT 2D MRPE | noisy 2D MPJPE | noisy 2D PA-MPJPE | noisy 2D MRPE "
          "| real MediaPipe MPJPE | real PA-MPJPE | real MRPE |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, gt, noisy, real in rows:
        print(f"| {name} | {gt['MPJPE']:.1f} | {gt['MRPE']:.1f} | {noisy['MPJPE']:.1f} | {noisy['PA-MPJPE']:.1f} "
              f"| {noisy['MRPE']:.1f} | {real['MPJPE']:.1f} | {real['PA-MPJPE']:.1f} | {real['MRPE']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
