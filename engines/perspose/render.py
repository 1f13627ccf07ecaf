"""Synthetic training images: real CMU mocap bodies rendered as shaded capsules, straight into
the network crop.

Why render into the crop: PR and cropping are a homography of the image (Eq. 17 and Eq. 3),
i.e. a different virtual camera with the same centre. Projecting the 3D body with ``K_crop``
(after ``R`` for PR) gives the same picture as rendering the full frame and warping it, at
1/50th of the cost (tested in ``tests/test_perspose_render.py`` against cv2.warpPerspective).

The generator, per sample:

* pose: a training-subject frame of the CMU mocap, all 38 BVH nodes by forward kinematics
  (capsules follow the real bones), 17 ground-truth joints from ``engines.bvh.cmu_to_joints17``;
  mirrored with p = 0.5;
* camera: ``engines.data.view_poses`` (1.5-8 m, pitch -30..20 deg, f 400-2500 px, 640x480 ..
  1920x1080 incl. portrait, pelvis anywhere in 5-95 % of the frame) -> subjects off-centre;
* box: the 17 projected joints' box, x1.25, with centre/size jitter (as a 2D detector would give);
* body: 19 tapered capsules + a head ellipsoid, radii scaled per sample (slim .. broad),
  colours per part (skin tone, shirt with short/long sleeves, trousers/shorts, shoes, hair),
  multiplicative cloth texture, Lambert-like two-tone shading from a random light direction;
* scene: random background (gradients, blurred multi-scale colour noise, rectangles/lines),
  0-2 occluders (p = 0.35), global blur, colour jitter and sensor noise;
* painter's algorithm: capsules drawn far-to-near by mean depth, anti-aliased with sub-pixel
  precision (cv2 ``shift``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.bvh import CMU_UNIT_MM, cmu_to_joints17, forward_kinematics, read_bvh
from engines.data import CACHE_DIR, MOCAP_DIR, CameraSampler, mocap_index, view_poses
from engines.perspose.geometry import CropGeometry, person_crop
from engines.skeleton import FLIP_PERM, NUM_JOINTS

log = logging.getLogger(__name__)

CMU_NODES = ("Hips", "LHipJoint", "LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftToeBase_End",
             "RHipJoint", "RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightToeBase_End",
             "LowerBack", "Spine", "Spine1", "Neck", "Neck1", "Head", "Head_End", "LeftShoulder", "LeftArm",
             "LeftForeArm", "LeftHand", "LeftFingerBase", "LeftHandIndex1", "LeftHandIndex1_End", "LThumb",
             "LThumb_End", "RightShoulder", "RightArm", "RightForeArm", "RightHand", "RightFingerBase",
             "RightHandIndex1", "RightHandIndex1_End", "RThumb", "RThumb_End")
_N = {n: i for i, n in enumerate(CMU_NODES)}


def _mirror_name(n: str) -> str:
    for a, b in (("Left", "Right"), ("LHip", "RHip"), ("LThumb", "RThumb")):
        if a in n:
            return n.replace(a, b)
        if b in n:
            return n.replace(b, a)
    return n


CMU_FLIP = tuple(_N[_mirror_name(n)] for n in CMU_NODES)
# all points one sample carries: our 17 joints first (index 0 = pelvis = ROOT), then the 38 CMU nodes
ALL_FLIP = tuple(FLIP_PERM) + tuple(NUM_JOINTS + i for i in CMU_FLIP)

# (from node, to node, radius at from, radius at to [mm], part)
CAPSULES = (
    ("LeftUpLeg", "RightUpLeg", 95, 95, "pants"),
    ("Hips", "Spine1", 125, 135, "shirt"),
    ("Spine1", "Neck", 120, 95, "shirt"),
    ("LeftArm", "RightArm", 65, 65, "shirt"),
    ("Neck", "Head", 45, 45, "skin"),
    ("LeftUpLeg", "LeftLeg", 80, 55, "pants"), ("RightUpLeg", "RightLeg", 80, 55, "pants"),
    ("LeftLeg", "LeftFoot", 52, 40, "shin"), ("RightLeg", "RightFoot", 52, 40, "shin"),
    ("LeftFoot", "LeftToeBase", 42, 38, "shoe"), ("RightFoot", "RightToeBase", 42, 38, "shoe"),
    ("LeftToeBase", "LeftToeBase_End", 36, 30, "shoe"), ("RightToeBase", "RightToeBase_End", 36, 30, "shoe"),
    ("LeftArm", "LeftForeArm", 48, 40, "sleeve"), ("RightArm", "RightForeArm", 48, 40, "sleeve"),
    ("LeftForeArm", "LeftHand", 38, 28, "forearm"), ("RightForeArm", "RightHand", 38, 28, "forearm"),
    ("LeftHand", "LeftHandIndex1_End", 30, 22, "skin"), ("RightHand", "RightHandIndex1_End", 30, 22, "skin"),
)
_CAP_IDX = np.array([[NUM_JOINTS + _N[a], NUM_JOINTS + _N[b]] for a, b, *_ in CAPSULES])
_CAP_R = np.array([[r0, r1] for _, _, r0, r1, _ in CAPSULES], dtype=np.float64)
_CAP_PART = [p for *_, p in CAPSULES]
SKIN_TONES = np.array([[60, 80, 120], [80, 110, 160], [110, 150, 200], [140, 175, 225], [40, 55, 85],
                       [100, 140, 190]], dtype=np.float64)   # BGR


class RenderError(RuntimeError):
    """The mocap for rendering could not be loaded."""


def load_bodies(split: str, step: int = 8, cache: bool = True) -> dict:
    """Every ``step``-th frame of a split: ``points_mm [N, 17 + 38, 3]`` (world, Y up) and ``subject``."""
    path = CACHE_DIR / f"perspose_bodies_{split}_step{step}.npz"
    if cache and path.exists():
        d = np.load(path)
        return {k: d[k] for k in d.files}
    rows = [r for r in mocap_index(MOCAP_DIR) if r["split"] == split]
    if not rows:
        raise RenderError(f"no mocap files in split {split!r}")
    pts, subj = [], []
    for r in rows:
        b = read_bvh(MOCAP_DIR / r["file"])
        if tuple(b.names) != CMU_NODES:
            raise RenderError(f"{r['file']}: unexpected skeleton (not the CMU 31-joint hierarchy)")
        pos, rot = forward_kinematics(b, slice(1, None, step))        # frame 0 is the T-pose
        j17 = cmu_to_joints17(b, pos, rot)
        pts.append((np.concatenate([j17, pos], 1) * CMU_UNIT_MM).astype(np.float32))
        subj += [r["subject"]] * len(pos)
    out = {"points_mm": np.concatenate(pts), "subject": np.array(subj)}
    if cache:
        CACHE_DIR.mkdir(exist_ok=True)
        np.savez(path, **out)
    return out


@dataclass
class Appearance:
    """Everything random about how one sample looks (shared by the PR and non-PR renders)."""
    colors: dict
    radius_scale: np.ndarray   # [n_capsules]
    light2d: np.ndarray        # unit 2D direction the light comes from (image axes)
    ambient: float
    background: np.ndarray     # [S, S, 3] uint8
    occluders: list
    texture: np.ndarray        # [S, S] multiplicative cloth texture
    blur: float
    noise: float
    gain: np.ndarray           # [3] colour jitter
    head_scale: float


def _rand_color(rng) -> np.ndarray:
    hsv = np.uint8([[[rng.integers(0, 180), rng.integers(0, 256), rng.integers(30, 256)]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float64)


def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    kind = rng.integers(0, 3)
    if kind == 0:   # gradient + low-frequency noise
        a, b = _rand_color(rng), _rand_color(rng)
        t = np.linspace(0, 1, size)
        ang = rng.uniform(0, 2 * np.pi)
        g = (np.cos(ang) * t[None, :] + np.sin(ang) * t[:, None])
        g = (g - g.min()) / (np.ptp(g) + 1e-9)
        img = a * (1 - g[..., None]) + b * g[..., None]
    else:           # multi-scale blurred colour noise
        img = np.zeros((size, size, 3))
        for s in (4, 8, 16, 32):
            n = rng.uniform(0, 255, (s, s, 3))
            img += cv2.resize(n, (size, size), interpolation=cv2.INTER_CUBIC) * rng.uniform(0.1, 0.5)
        img = img / img.max() * rng.uniform(120, 255)
    img = img.astype(np.float32)
    if kind == 2 or rng.random() < 0.3:   # indoor-ish structure: rectangles and lines
        for _ in range(rng.integers(2, 8)):
            c = tuple(float(x) for x in _rand_color(rng))
            p0 = rng.integers(-size // 2, size, 2); p1 = p0 + rng.integers(5, size, 2)
            if rng.random() < 0.6:
                cv2.rectangle(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), c, -1)
            else:
                cv2.line(img, tuple(int(v) for v in p0), tuple(int(v) for v in p1), c, int(rng.integers(1, 6)))
    return np.clip(img, 0, 255).astype(np.uint8)


def random_appearance(rng: np.random.Generator, size: int) -> Appearance:
    skin = SKIN_TONES[rng.integers(len(SKIN_TONES))] * rng.uniform(0.85, 1.15)
    shirt, pants, shoe = _rand_color(rng), _rand_color(rng), _rand_color(rng) * 0.6
    hair = np.array([20, 25, 35.0]) * rng.uniform(0.5, 3.0) if rng.random() < 0.85 else _rand_color(rng)
    long_sleeves, long_pants = rng.random() < 0.6, rng.random() < 0.75
    colors = {"skin": skin, "shirt": shirt, "pants": pants, "shoe": shoe, "hair": hair,
              "sleeve": shirt, "forearm": shirt if long_sleeves else skin,
              "shin": pants if long_pants else skin}
    build = rng.uniform(0.8, 1.25)
    occ = []
    if rng.random() < 0.35:
        for _ in range(rng.integers(1, 3)):
            occ.append((rng.integers(0, 2), rng.uniform(0, size, 2), rng.uniform(0.08, 0.35, 2) * size,
                        _rand_color(rng)))
    tex = np.ones((size, size), np.float32)
    if rng.random() < 0.7:
        s = int(rng.choice([4, 8, 16, 32]))
        tex = cv2.resize(rng.uniform(0.75, 1.25, (s, s)).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_NEAREST if rng.random() < 0.4 else cv2.INTER_LINEAR)
    ang = rng.uniform(0, 2 * np.pi)
    return Appearance(colors=colors, radius_scale=build * rng.uniform(0.9, 1.1, len(CAPSULES)),
                      light2d=np.array([np.cos(ang), np.sin(ang)]), ambient=rng.uniform(0.45, 0.8),
                      background=random_background(rng, size), occluders=occ, texture=tex,
                      blur=float(rng.choice([0, 0, 0.6, 1.0, 1.5])), noise=float(rng.uniform(0, 8)),
                      gain=rng.uniform(0.8, 1.2, 3), head_scale=rng.uniform(0.9, 1.1))


_SHIFT = 4
_ONE = 1 << _SHIFT


def _fill_capsule(img, p0, p1, r0, r1, color):
    """Filled tapered capsule (two discs and the quad of their outer tangents), anti-aliased."""
    d = p1 - p0
    L = np.hypot(*d)
    c = tuple(float(x) for x in color)
    if L > 1e-6:
        n = np.array([-d[1], d[0]]) / L
        quad = np.array([p0 + n * r0, p1 + n * r1, p1 - n * r1, p0 - n * r0])
        cv2.fillConvexPoly(img, np.round(quad * _ONE).astype(np.int32), c, cv2.LINE_AA, _SHIFT)
    for p, r in ((p0, r0), (p1, r1)):
        cv2.circle(img, tuple(int(v) for v in np.round(p * _ONE)), max(int(round(r * _ONE)), 1), c, -1,
                   cv2.LINE_AA, _SHIFT)


def render_crop(points_cam_mm: np.ndarray, geom: CropGeometry, app: Appearance) -> np.ndarray:
    """BGR uint8 ``[S, S, 3]`` image of a body (``points_cam_mm [17 + 38, 3]``, original camera frame)
    seen through the crop camera ``geom`` (PR rotation + ``K_crop``)."""
    S = geom.size
    P = geom.to_crop_frame(points_cam_mm)
    z = np.maximum(P[:, 2], 50.0)
    f = geom.K_crop[0, 0]
    uv = P[:, :2] / z[:, None] * f + geom.K_crop[:2, 2]
    body = np.zeros((S, S, 3), np.float32)
    mask = np.zeros((S, S, 3), np.float32)
    items = []
    for k, (a, b) in enumerate(_CAP_IDX):
        r = _CAP_R[k] * app.radius_scale[k]
        items.append((0.5 * (z[a] + z[b]), "cap", k, uv[a], uv[b], r[0] * f / z[a], r[1] * f / z[b],
                      app.colors[_CAP_PART[k]]))
    hb, he = NUM_JOINTS + _N["Head"], NUM_JOINTS + _N["Head_End"]
    hc = 0.45 * P[hb] + 0.55 * P[he]
    hz = max(hc[2], 50.0)
    huv = hc[:2] / hz * f + geom.K_crop[:2, 2]
    rh = 105.0 * app.head_scale * f / hz
    items.append((hz, "head", -1, huv, huv, rh, rh, app.colors["skin"]))
    for zz, kind, k, p0, p1, r0, r1, col in sorted(items, key=lambda t: -t[0]):
        if zz <= 60.0:
            continue
        dark = col * app.ambient
        _fill_capsule(body, p0, p1, r0, r1, dark)
        _fill_capsule(mask, p0, p1, r0, r1, (1.0, 1.0, 1.0))
        off = app.light2d * 0.3
        _fill_capsule(body, p0 + off * r0, p1 + off * r1, 0.6 * r0, 0.6 * r1, col)
        if kind == "head":   # hair on the back/top half: a darker cap shifted towards the head's top
            up = (uv[he] - uv[hb]); up = up / (np.hypot(*up) + 1e-9)
            _fill_capsule(body, p0 + up * 0.35 * r0, p1 + up * 0.35 * r1, 0.75 * r0, 0.75 * r1,
                          app.colors["hair"])
    body *= app.texture[..., None]
    m = mask[..., :1]
    img = app.background.astype(np.float32) * (1 - m) + body * m
    for kind, c, ax, col in app.occluders:
        c = tuple(int(v) for v in c); ax = tuple(int(v) for v in ax)
        if kind == 0:
            cv2.rectangle(img, (c[0] - ax[0], c[1] - ax[1]), (c[0] + ax[0], c[1] + ax[1]), col.tolist(), -1)
        else:
            cv2.ellipse(img, c, ax, 0, 0, 360, col.tolist(), -1)
    if app.blur > 0:
        img = cv2.GaussianBlur(img, (0, 0), app.blur)
    img = img * app.gain
    if app.noise > 0:
        img = img + np.random.default_rng(int(app.gain[0] * 1e6)).normal(0, app.noise, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


@dataclass
class Sample:
    """Targets of one crop, in the crop's own (possibly PR-rotated) camera frame."""
    uv: np.ndarray        # [17, 2] crop pixels
    d_rel: np.ndarray     # [17] z_i - z_pelvis (mm)
    s: float              # d0_abs / f_crop (mm / px)


def targets(joints_cam_mm: np.ndarray, geom: CropGeometry) -> Sample:
    P = geom.to_crop_frame(joints_cam_mm)
    uv = P[:, :2] / P[:, 2:3] * np.diag(geom.K_crop)[:2] + geom.K_crop[:2, 2]
    return Sample(uv=uv, d_rel=P[:, 2] - P[0, 2], s=float(P[0, 2] / geom.K_crop[0, 0]))


def jittered_crop(K, kp_px, size, rotate, rng_state: dict) -> CropGeometry:
    """Person crop with the same box jitter (drawn once per sample) for the PR and non-PR renders."""
    kp = np.asarray(kp_px, np.float64)
    lo, hi = kp.min(0), kp.max(0)
    side = (hi - lo).max()
    shifted = kp + rng_state["shift"] * side
    scale = 1.25 * rng_state["scale"]
    return person_crop(K, shifted, size, rotate, scale)


def make_dataset(split: str, n: int, size: int, seed: int, out: Path, step: int = 8) -> dict:
    """Render ``n`` samples twice (no-PR box crop and PR crop) into ``out`` (``.npy`` files).

    Files: ``img_box.npy`` / ``img_pr.npy`` uint8 ``[n, S, S, 3]``; ``joints_cam.npy`` ``[n, 17, 3]``
    (original camera), ``K_box.npy`` / ``K_pr.npy`` ``[n, 3, 3]``, ``R_pr.npy`` ``[n, 3, 3]``,
    ``uvd_box.npy`` / ``uvd_pr.npy`` ``[n, 17, 3]`` (u, v px; d mm), ``s_box.npy`` / ``s_pr.npy`` ``[n]``,
    ``phi_deg.npy`` (PR angle, Fig. 7).
    """
    rng = np.random.default_rng(seed)
    bodies = load_bodies(split, step)
    pts = bodies["points_mm"][rng.integers(0, len(bodies["points_mm"]), n)].astype(np.float64)
    m = rng.random(n) < 0.5
    pts[m] = pts[m][:, list(ALL_FLIP)] * np.array([-1.0, 1.0, 1.0])
    cfg = CameraSampler(min_joints_in_image=13 + 30)   # of 17 + 38 points: a body mostly in view
    v = view_poses(pts.astype(np.float32), rng, cfg, mirror=False)
    out.mkdir(parents=True, exist_ok=True)
    arrs = {k: np.lib.format.open_memmap(out / f"img_{k}.npy", "w+", np.uint8, (n, size, size, 3))
            for k in ("box", "pr")}
    meta = {f"{k}_{v_}": [] for k in ("K", "uvd", "s") for v_ in ("box", "pr")}
    meta["R_pr"] = []; meta["phi_deg"] = []
    for i in range(n):
        st = {"shift": rng.normal(0, 0.04, 2), "scale": rng.uniform(0.95, 1.15)}
        app = random_appearance(rng, size)
        P = v.joints_cam_mm[i].astype(np.float64)
        K = v.K[i].astype(np.float64)
        kp17 = v.keypoints_px[i, :NUM_JOINTS]
        for name, rot in (("box", False), ("pr", True)):
            g = jittered_crop(K, kp17, size, rot, st)
            arrs[name][i] = render_crop(P, g, app)
            t = targets(P[:NUM_JOINTS], g)
            meta[f"K_{name}"].append(g.K_crop); meta[f"s_{name}"].append(t.s)
            meta[f"uvd_{name}"].append(np.concatenate([t.uv, t.d_rel[:, None]], 1))
            if rot:
                meta["R_pr"].append(g.R)
                meta["phi_deg"].append(np.degrees(np.arccos(np.clip(g.R[2, 2], -1, 1))))
        if i % 2000 == 0:
            log.info("%s: rendered %d / %d", out.name, i, n)
    for k in arrs.values():
        k.flush()
    np.save(out / "joints_cam.npy", v.joints_cam_mm[:, :NUM_JOINTS].astype(np.float32))
    for k, val in meta.items():
        np.save(out / f"{k}.npy", np.asarray(val, np.float32))
    return {"n": n, "dir": str(out)}


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(description="Pre-render the PersPose synthetic datasets into .cache/")
    ap.add_argument("--train", type=int, default=24000)
    ap.add_argument("--val", type=int, default=2000)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--out", type=Path, default=CACHE_DIR / "perspose")
    ap.add_argument("--only", choices=["train", "val"], default=None)
    ap.add_argument("--seed", type=int, default=1, help="train seed; other seeds render extra shards")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.only in (None, "val"):
        make_dataset("val", a.val, a.size, 2, a.out / f"val{a.size}")
    if a.only in (None, "train"):
        shard = "" if a.seed == 1 else f"_s{a.seed}"
        make_dataset("train", a.train, a.size, a.seed, a.out / f"train{a.size}{shard}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
