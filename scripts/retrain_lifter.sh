#!/usr/bin/env bash
# Retrain the shipped AbsPoseLifter weights from ../shared/data (the twelve stages of BENCHMARKS.md, about 7 h on a
# 2-core CPU), recalibrate the plausibility score on the new lifter and evaluate it.
# Stages 1-9 trained on the error model of MediaPipe's own labels and give the focal-free lifter auto focal runs;
# stages 10-12 add the focal-length input and train on the keypoint stage's errors (the default error model).
#     bash scripts/retrain_lifter.sh [RUNS_DIR]      # default runs/retrain; the result replaces the shipped weights
set -euo pipefail
cd "$(dirname "$0")/.."
R=${1:-runs/retrain}
mkdir -p "$R"
T="python -m engines.absposelifter.train --error-model assets/noise/mediapipe_error_model_raw_labels.json"
$T --out "$R/s1.pt"
$T --init "$R/s1.pt" --steps 8000 --lr 5e-4 --seed 1 --out "$R/s2.pt"
$T --init "$R/s2.pt" --steps 8000 --lr 3e-4 --seed 2 --out "$R/s3.pt"
$T --init "$R/s3.pt" --steps 24000 --lr 3e-4 --seed 7 --dropout 0 --mix 0.3 --out "$R/s4.pt"
$T --init "$R/s4.pt" --steps 12000 --lr 2e-4 --seed 8 --dropout 0 --mix 0.3 --clean 0.5 --graded --out "$R/s5.pt"
$T --init "$R/s5.pt" --steps 20000 --lr 2e-4 --seed 9 --dropout 0 --mix 0.3 --clean 0.5 --graded --out "$R/s6.pt"
$T --init "$R/s6.pt" --steps 30000 --lr 2e-4 --seed 10 --dropout 0 --mix 0.3 --clean 0.5 --graded \
   --arms 0.5 --tilt 0.1 --out "$R/s7.pt"
$T --init "$R/s7.pt" --steps 24000 --lr 2e-4 --seed 12 --dropout 0 --mix 0.3 --clean 0.7 --graded \
   --arms 0.5 --tilt 0.1 --out "$R/s8.pt"
$T --init "$R/s8.pt" --steps 12000 --lr 2e-4 --seed 13 --dropout 0 --mix 0.3 --clean 0.7 --graded \
   --graded-power 2 --arms 0.5 --tilt 0.1 --out "$R/s9.pt"
cp "$R/s9.pt" assets/absposelifter/absposelifter_focal_free.pt
T="python -m engines.absposelifter.train"
$T --init "$R/s9.pt" --steps 12000 --lr 2e-4 --seed 14 --dropout 0 --mix 0.3 --clean 0.7 --graded \
   --graded-power 2 --arms 0.5 --tilt 0.1 --use-focal --out "$R/s10.pt"
$T --init "$R/s10.pt" --steps 12000 --lr 2e-4 --seed 15 --dropout 0 --mix 0.3 --clean 0.7 --graded \
   --graded-power 2 --arms 0.5 --tilt 0.1 --use-focal --out "$R/s11.pt"
$T --init "$R/s11.pt" --steps 12000 --lr 2e-4 --seed 16 --dropout 0 --mix 0.3 --clean 0.4 --graded \
   --graded-power 2 --arms 0.5 --tilt 0.1 --use-focal --out "$R/s12.pt"
cp "$R/s12.pt" assets/absposelifter/absposelifter.pt
python -m engines.plausibility.evaluate calibrate     # the plausibility score is calibrated on the lifter's output
python -m engines.absposelifter.evaluate
