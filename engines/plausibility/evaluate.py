"""Validation of the plausibility score and the Table 5-style adaptation ablation.

    python -m engines.plausibility.evaluate auc [--out runs/plausibility/auc.json]
    python -m engines.plausibility.evaluate adapt --variant syn-wkcs [--steps 300] [--out ...json]
    python -m engines.plausibility.evaluate table runs/plausibility/ablation/*.json

**Corruption test** (``auc``): every validation clip (subjects 06, 08, 90, 104, never used
for fitting) gets 25 % of its frames replaced by corrupted copies (all families, including
two never shown to the discriminator); ``plausibility_scores`` runs on each whole clip and
the ROC AUC of real vs corrupted frames is reported, overall, per family and per check.

**Adaptation ablation** (``adapt``): a *shifted* camera setting outside the training
distribution (camera 2.5-3.5 m high, looking down 35-50 deg, focal 2500-4000 px). The
adaptation gets only the 2D (with realistic MediaPipe-like noise) of validation subject 06
in that setting; MPJPE / PA-MPJPE are measured on the *other* validation subjects (08, 90,
104), whose 2D the adaptation never saw, in the shifted setting and in the original
(training-distribution) setting, both with realistic noise.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata

from engines.absposelifter.model import AbsolutePose
from engines.absposelifter.train import DEFAULT_ERROR_MODEL
from engines.data import CameraSampler, Views, load_split, view_poses
from engines.metrics import mpjpe, pa_mpjpe
from engines.noise import ErrorModel, person_scale_px
from engines.plausibility.corruptions import ALL_FAMILIES, corrupt_one
from engines.runtime import file_sha256

log = logging.getLogger(__name__)
REPO = Path(__file__).resolve().parents[2]
BASE_WEIGHTS = REPO / "assets" / "absposelifter" / "absposelifter.pt"
ADAPT_SUBJECTS = ("06",)
EVAL_SUBJECTS = ("08", "90", "104")

SHIFTED = CameraSampler(distance_m=(1.5, 6.0), height_m=(2.5, 3.5), pitch_deg=(-50.0, -35.0),
                        focal_px=(2500.0, 4000.0))
ORIGINAL = CameraSampler()


def roc_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a positive > score of a negative), ties counted half (Mann-Whitney U)."""
    pos, neg = np.asarray(pos, float), np.asarray(neg, float)
    r = rankdata(np.concatenate([pos, neg]))
    return float((r[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def corrupt_some(X: np.ndarray, rng: np.random.Generator, fraction: float,
                 families=ALL_FAMILIES) -> tuple[np.ndarray, np.ndarray]:
    """A copy of clip ``X [N, 17, 3]`` with each frame corrupted with probability ``fraction`` by a random
    family; also ``family [N]``, the index into ``families`` per frame (-1: left as it was)."""
    X = np.array(X, dtype=np.float64)
    bad = rng.random(len(X)) < fraction
    fam = np.full(len(X), -1)
    for i in np.flatnonzero(bad):
        fam[i] = rng.integers(len(families))
        X[i] = corrupt_one(X[i], families[fam[i]], rng)
    return X, fam


def corruption_test(fraction: float = 0.25, seed: int = 0, families=ALL_FAMILIES) -> dict:
    """Corrupt ``fraction`` of each validation clip's frames, score whole clips, return AUCs."""
    from engines.plausibility.score import plausibility_parts, to_percentile

    rng = np.random.default_rng(seed)
    val = load_split("val")
    parts_all, labels, fams = [], [], []
    for clip in np.unique(val["clip"]):
        X, fam = corrupt_some(val["joints_mm"][val["clip"] == clip], rng, fraction, families)
        parts_all.append(plausibility_parts(X))
        labels.append(fam < 0)
        fams.append(fam)
    lab = np.concatenate(labels)
    fam = np.concatenate(fams)
    comp = {k: np.concatenate([getattr(p, k) for p in parts_all]) for k in ("bone", "angle", "learned")}
    comp["combined"] = comp["bone"] * comp["angle"] * comp["learned"]
    comp["calibrated"] = np.concatenate([to_percentile(p) for p in parts_all])   # what the clip JSON holds
    res = {"real_frames": int(lab.sum()), "corrupted_frames": int((~lab).sum()), "fraction": fraction,
           "auc": {k: roc_auc(v[lab], v[~lab]) for k, v in comp.items()}, "per_family": {}}
    for f, name in enumerate(families):
        m = fam == f
        res["per_family"][name] = {"frames": int(m.sum()),
                                   **{k: roc_auc(v[lab], v[m]) for k, v in comp.items()}}
    res["score_quantiles_real"] = np.quantile(comp["combined"][lab], [0.05, 0.5]).round(3).tolist()
    res["score_quantiles_corrupted"] = np.quantile(comp["combined"][~lab], [0.5, 0.95]).round(3).tolist()
    return res


# -- adaptation experiment --------------------------------------------------------------------

RAW = {"raw": False}   # True: the CMU skeleton's own proportions (``load_split(raw=True)``)


def views_with_noise(subjects, cfg: CameraSampler, seed: int):
    """Virtual views of the validation ``subjects`` through ``cfg`` cameras, with realistic 2D noise."""
    val = load_split("val", **RAW)
    return place_with_noise(val["joints_mm"][np.isin(val["subject"], list(subjects))], cfg, seed)


def place_with_noise(poses: np.ndarray, cfg: CameraSampler, seed: int):
    """``(views, noisy keypoints)`` of world ``poses`` seen by ``cfg`` cameras, with realistic 2D noise."""
    rng = np.random.default_rng(seed)
    try:
        v = view_poses(poses, rng, cfg)
    except RuntimeError:   # a few poses fit no camera of this setting: place in chunks, drop those
        parts = []
        for i in range(0, len(poses), 256):
            try:
                parts.append(view_poses(poses[i:i + 256], rng, cfg))
            except RuntimeError:
                parts += [vv for vv in (_place_one(p, rng, cfg) for p in poses[i:i + 256]) if vv is not None]
        v = Views(*(np.concatenate([getattr(pp, f.name) for pp in parts]) for f in fields(Views)))
        log.warning("%d of %d poses fit no camera of this setting and were left out", len(poses) - len(v.K), len(poses))
    noise = ErrorModel.load(DEFAULT_ERROR_MODEL).sample(np.random.default_rng(seed + 1), person_scale_px(v.keypoints_px))
    return v, (v.keypoints_px + noise).astype(np.float32)


def _place_one(pose, rng, cfg):
    try:
        return view_poses(pose[None], rng, cfg)
    except RuntimeError:
        return None


def lifted_poses(lifter, kp: np.ndarray, K: np.ndarray, batch: int = 2048) -> np.ndarray:
    """A PyTorch lifter's camera-frame poses ``[N, 17, 3]`` for keypoints ``kp [N, 17, 2]`` and ``K`` (``[3, 3]``
    or ``[N, 3, 3]``), in batches."""
    net = AbsolutePose(lifter).eval()
    K = np.array(np.broadcast_to(np.asarray(K, np.float32), (len(kp), 3, 3)))   # a writable copy for torch
    with torch.no_grad():
        return np.concatenate([net(torch.from_numpy(np.ascontiguousarray(kp[i:i + batch], np.float32)),
                                   torch.from_numpy(np.ascontiguousarray(K[i:i + batch]))).numpy()
                               for i in range(0, len(kp), batch)])


def evaluate_model(lifter, v, kp: np.ndarray, batch: int = 2048) -> dict:
    pred = lifted_poses(lifter, kp, v.K, batch)
    return {"MPJPE": float(mpjpe(pred, v.joints_cam_mm).mean()), "PA-MPJPE": float(pa_mpjpe(pred, v.joints_cam_mm).mean()),
            "poses": len(kp)}


def evaluate_plausibility(lifter, kp: np.ndarray, K: np.ndarray, batch: int = 2048) -> float:
    """Mean plausibility score of a lifter's poses on keypoints ``kp [N,17,2]`` (no 3D needed)."""
    from engines.plausibility.score import plausibility_scores

    return float(np.nanmean(plausibility_scores(lifted_poses(lifter, kp, K, batch))))


def calibrate(weights: Path = BASE_WEIGHTS, seed: int = 0, fraction: float = 0.25,
              out: Path | None = None) -> dict:
    """Calibrate the plausibility score on what the pipeline really produces.

    The raw score (a product of three checks) is tiny and unevenly spread, and the lifter's
    poses are never as clean as mocap. So the shipped score is a *percentile*: the fraction
    of the lifter's poses for the validation subjects (every validation clip seen by the
    training camera distribution, with realistic MediaPipe-like 2D noise, scored clip by
    clip) that score lower. A frame is flagged when it is below ``score.FLAG_BELOW``.
    Reported: how often real mocap and the real pose2sim video are flagged, and how often
    lifted poses with one corruption are (the detection rate), per corruption family.
    """
    from engines.absposelifter.evaluate import pose2sim_views
    from engines.real_errors import pose2sim_keypoints
    from engines.plausibility.adapt import load_generator
    from engines.plausibility.score import (CALIBRATED_PARTS, FLAG_BELOW, PlausibilityParts, badness, combine,
                                            plausibility_parts, to_percentile)

    def cat(parts, masks=None):
        masks = masks or [slice(None)] * len(parts)
        return PlausibilityParts(*(np.concatenate([getattr(p, f.name)[m] for p, m in zip(parts, masks)])
                                   for f in fields(PlausibilityParts)))

    lifter = load_generator(weights)
    val = load_split("val")
    rng = np.random.default_rng(seed)
    lifted, mocap, corrupted, bads, fams = [], [], [], [], []
    for k, clip in enumerate(np.unique(val["clip"])):
        poses = val["joints_mm"][val["clip"] == clip]
        v, kp = place_with_noise(poses, CameraSampler(), seed + 10 * k)
        pred = lifted_poses(lifter, kp, v.K).astype(np.float64)
        lifted.append(plausibility_parts(pred))
        mocap.append(plausibility_parts(poses))
        X, fam = corrupt_some(pred, rng, fraction)
        corrupted.append(plausibility_parts(X))   # scored as a clip: the corrupted frames among real ones
        bads.append(fam >= 0)
        fams.append(fam[fam >= 0])
    lifted, mocap, corrupted, fams = cat(lifted), cat(mocap), cat(corrupted, bads), np.concatenate(fams)
    levels = np.linspace(0.0, 1.0, 1001)
    bl = badness(lifted)
    calib = {"levels": levels.round(4).tolist(),
             "part_quantiles": {k: np.quantile(bl[k], levels).round(6).tolist() for k in CALIBRATED_PARTS}}
    m = combine(bl, calib)
    calib["combined_quantiles"] = np.quantile(m, levels).round(8).tolist()
    calib.update({"lifter_sha256": file_sha256(Path(weights)),
                  "frames": int(len(m)), "seed": seed, "command": "python -m engines.plausibility.evaluate calibrate"})
    pct = lambda p: to_percentile(p, calib)   # noqa: E731
    cams, names, und, conf, P = pose2sim_views()
    real_video = {}
    for c, n in enumerate(names):
        ok = np.isfinite(und[c]).all((-1, -2))
        kp = pose2sim_keypoints(und[c], conf[c])[0][ok].astype(np.float32)      # as the app's keypoint stage
        pred = lifted_poses(lifter, kp, cams[n].K)
        real_video[n] = float(np.mean(pct(plausibility_parts(pred)) < FLAG_BELOW))
    pl, cp = pct(lifted), pct(corrupted)
    report = {"flag_below": FLAG_BELOW,
              "flagged": {"lifted validation poses (calibration set)": float(np.mean(pl < FLAG_BELOW)),
                          "real mocap, validation subjects": float(np.mean(pct(mocap) < FLAG_BELOW)),
                          **{f"real video pose2sim {n}": f for n, f in real_video.items()},
                          "lifted poses with one corruption, all families": float(np.mean(cp < FLAG_BELOW))},
              "flagged_corrupted_per_family": {name: float(np.mean(cp[fams == f] < FLAG_BELOW))
                                               for f, name in enumerate(ALL_FAMILIES)},
              "auc_lifted_vs_corrupted": {"calibrated": roc_auc(pl, cp),
                                          "raw product": roc_auc(lifted.score, corrupted.score)}}
    calib["report"] = report
    if out is not None:
        out.write_text(json.dumps(calib))
    return report


VARIANTS = {
    "pretrained": None,
    "sup-only": dict(training="sup-only", w_proj=0.0),
    "proj-only": dict(training="sup-only"),
    "sep-kcs": dict(training="sep", kcs="kcs"),
    "sep-wkcs": dict(training="sep", kcs="wkcs"),
    "syn-kcs": dict(training="syn", kcs="kcs"),
    "syn-wkcs": dict(training="syn", kcs="wkcs"),
}


def run_variant(name: str, steps: int, weights: Path = BASE_WEIGHTS, seed: int = 0, **overrides) -> dict:
    from engines.plausibility.adapt import AdaptConfig, adapt, load_generator

    model = load_generator(weights)
    t_kp_v, t_kp = views_with_noise(ADAPT_SUBJECTS, SHIFTED, seed=100)
    meta = {"variant": name, "weights": str(weights), "raw_proportions": RAW["raw"], "weights_meta": torch.load(
        weights, map_location="cpu", weights_only=False).get("meta", {}).get("date")}
    if VARIANTS[name] is not None:
        train = load_split("train", **RAW)["joints_mm"]
        cfg = AdaptConfig(steps=steps, seed=seed, **{**VARIANTS[name], **overrides})
        model, info = adapt(model, t_kp, t_kp_v.K, train, train, cfg)
        meta["adapt"] = {k: v for k, v in info.items() if k != "history"}
        meta["last"] = info["history"][-1]
    for setting, cam in (("shifted", SHIFTED), ("original", ORIGINAL)):
        v, kp = views_with_noise(EVAL_SUBJECTS, cam, seed=200)
        meta[setting] = evaluate_model(model, v, kp)
    return meta


def format_table(rows: list[dict]) -> str:
    lines = ["| variant | shifted MPJPE | shifted PA-MPJPE | original MPJPE | original PA-MPJPE | adapt s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['shifted']['MPJPE']:.1f} | {r['shifted']['PA-MPJPE']:.1f} | "
                     f"{r['original']['MPJPE']:.1f} | {r['original']['PA-MPJPE']:.1f} | "
                     f"{r.get('adapt', {}).get('seconds', 0):.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a1 = sub.add_parser("auc")
    a1.add_argument("--out", type=Path)
    a2 = sub.add_parser("adapt")
    a2.add_argument("--variant", choices=list(VARIANTS), required=True)
    a2.add_argument("--steps", type=int, default=300)
    a2.add_argument("--warmup", type=int, default=None)
    a2.add_argument("--w-adv", type=float, default=None)
    a2.add_argument("--w-angle", type=float, default=None)
    a2.add_argument("--lr-gen", type=float, default=None)
    a2.add_argument("--w-proj", type=float, default=None)
    a2.add_argument("--tag", default="", help="label for the table row")
    a2.add_argument("--max-seconds", type=float, default=None)
    a2.add_argument("--seed", type=int, default=None, help="adaptation seed (evaluation views are fixed)")
    a2.add_argument("--raw-proportions", action="store_true",
                    help="mocap with the CMU skeleton's proportions (for lifters trained before the retargeting)")
    a2.add_argument("--weights", type=Path, default=BASE_WEIGHTS)
    a2.add_argument("--out", type=Path)
    a4 = sub.add_parser("calibrate", help="rebuild assets/plausibility/calibration.json for the shipped lifter")
    a4.add_argument("--weights", type=Path, default=BASE_WEIGHTS)
    a4.add_argument("--calibration-out", type=Path, default=None,
                    help="where to write it (default: assets/plausibility/calibration.json)")
    a3 = sub.add_parser("table")
    a3.add_argument("files", nargs="+", type=Path)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    t0 = time.time()
    if a.cmd == "auc":
        res = corruption_test()
    elif a.cmd == "calibrate":
        from engines.plausibility.score import CALIBRATION_FILE
        res = calibrate(a.weights, out=a.calibration_out or CALIBRATION_FILE)
    elif a.cmd == "adapt":
        ov = {k: v for k, v in (("warmup", a.warmup), ("w_adv", a.w_adv), ("w_angle", a.w_angle),
                                ("lr_gen", a.lr_gen), ("w_proj", a.w_proj),
                                ("max_seconds", a.max_seconds)) if v is not None}
        RAW["raw"] = a.raw_proportions
        res = run_variant(a.variant, a.steps, a.weights, seed=a.seed or 0, **ov)
        res["seed"] = a.seed or 0
        res["overrides"] = ov
        if a.tag:
            res["variant"] = f"{a.variant}, {a.tag}"
    else:
        rows = [json.loads(f.read_text()) for f in a.files]
        print(format_table(rows))
        return 0
    res["seconds_total"] = round(time.time() - t0, 1)
    res["command"] = "python -m engines.plausibility.evaluate " + " ".join(sys.argv[1:] if argv is None else argv)
    text = json.dumps(res, indent=1)
    print(text)
    if getattr(a, "out", None):
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
