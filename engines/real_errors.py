"""Real MediaPipe 2D errors, measured on the 4 calibrated pose2sim views (no 3D ground truth needed).

    python -m engines.real_errors            # writes assets/noise/mediapipe_errors_pose2sim.npz

For every frame, joint and camera *c* (leave-one-camera-out):

1. MediaPipe (VIDEO mode, our shipped model) gives 17 joints in each video;
2. cam01/cam02 video pixels are mapped to calibration pixels (they are the
   1088x1920 image scaled by 1080/1088 and letterboxed by 7 rows), and all
   points are undistorted with the calibration (``cv2.undistortPoints``, P=K);
3. the joint is triangulated from the *other three* cameras (linear DLT, each
   camera's two equations weighted by the detection confidence);
4. it is projected into camera *c*; the error is ``detection - projection`` in
   pixels of the undistorted 1088x1920 calibration image.

Two data-driven choices (evidence in notes/keypoints.md):

* calibration: Pose2Sim's ``Calib_scene.toml`` by default. With the converted
  Qualisys calibration (``--calibration qca``) the four views disagree by a
  constant 20-30 px in cam01 and cam03 (their principal points differ from the
  checkerboard ones by 30-40 px); the TOML calibration removes those biases and
  lowers the median leave-one-out error from ~25 px to ~15 px;
* left/right swaps: in ~25 frames MediaPipe mirrors the whole skeleton in cam02.
  Such a view is kept as a held-out sample (a real error) but dropped from the
  *reference* triangulation for the other cameras.

The person's 2D scale in view *c* is the diagonal of the bounding box of the
17 projected joints (as ``engines.noise.person_scale_px`` defines it). The
calibration, triangulation and projection helpers are also used by the tests.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engines.skeleton import FLIP_PERM, JOINT_NAMES, NUM_JOINTS

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[1]
POSE2SIM_ROOT = REPO.parent / "shared" / "data" / "video" / "pose2sim_demo_singleperson"
CALIB_JSON = "calibration/calib_opencv_from_qca.json"
CALIB_TOML = "calibration/Calib_scene.toml"
CALIB_NAMES = {"toml": "calibration/Calib_scene.toml (Pose2Sim checkerboard + scene points)",
               "qca": "calibration/calib_opencv_from_qca.json (converted Qualisys export)"}
OUT = REPO / "assets" / "noise" / "mediapipe_errors_pose2sim.npz"
CAMERAS = ("cam01", "cam02", "cam03", "cam04")


class Pose2SimDataError(RuntimeError):
    """The pose2sim demo data is missing or not as described in its README."""


@dataclass(frozen=True)
class CalibratedCamera:
    """One pose2sim camera in OpenCV convention (world in metres, Z up)."""
    name: str
    K: np.ndarray              # [3, 3]
    dist: np.ndarray           # [4] k1, k2, p1, p2
    R: np.ndarray              # [3, 3] world -> camera
    t: np.ndarray              # [3] metres
    calib_size_wh: tuple[int, int]
    video_size_wh: tuple[int, int]
    video: Path

    @property
    def letterboxed(self) -> bool:
        return tuple(self.video_size_wh) != tuple(self.calib_size_wh)

    def video_to_calib(self, uv: np.ndarray) -> np.ndarray:
        """Video pixels ``[..., 2]`` -> calibration-image pixels (README mapping for cam01/cam02)."""
        uv = np.asarray(uv, dtype=np.float64)
        if not self.letterboxed:
            return uv.copy()
        s = self.calib_size_wh[0] / self.video_size_wh[0]            # 1088 / 1080
        pad = (self.video_size_wh[1] - self.calib_size_wh[1] * self.video_size_wh[0] / self.calib_size_wh[0]) / 2
        # README: u_cal = u * 1088/1080, v_cal = (v - 7) * 1088/1080 (pad = (1920 - 1920*1080/1088)/2 = 7.06)
        return np.stack([uv[..., 0] * s, (uv[..., 1] - round(pad)) * s], axis=-1)

    def undistort(self, uv_calib: np.ndarray) -> np.ndarray:
        """Distorted calibration pixels ``[..., 2]`` -> undistorted pixels (same K); NaN stays NaN."""
        uv = np.asarray(uv_calib, dtype=np.float64)
        flat = uv.reshape(-1, 1, 2)
        out = np.full_like(flat, np.nan)
        ok = np.isfinite(flat).all(-1)[:, 0]
        if ok.any():
            out[ok] = cv2.undistortPoints(flat[ok], self.K, self.dist, P=self.K)
        return out.reshape(uv.shape)

    @property
    def P(self) -> np.ndarray:
        """3x4 projection to undistorted pixels."""
        return self.K @ np.hstack([self.R, self.t[:, None]])

    def project(self, X: np.ndarray) -> np.ndarray:
        """World points ``[..., 3]`` (m) -> undistorted pixels ``[..., 2]``."""
        xc = X @ self.R.T + self.t
        return (xc @ self.K.T)[..., :2] / xc[..., 2:3]


def load_pose2sim_cameras(root: Path = POSE2SIM_ROOT, calibration: str = "toml") -> dict[str, CalibratedCamera]:
    """The 4 cameras; ``calibration`` "toml" (Pose2Sim's ``Calib_scene.toml``, default: more consistent with
    the videos, see notes/keypoints.md) or "qca" (``calib_opencv_from_qca.json``, from the Qualisys export)."""
    path = Path(root) / CALIB_JSON
    if not path.is_file():
        raise Pose2SimDataError(f"pose2sim calibration not found at {path} (is ../shared/data/video present?)")
    d = json.loads(path.read_text())["cameras"]
    cams = {}
    for name in CAMERAS:
        c = d[name]
        cams[name] = CalibratedCamera(
            name=name, K=np.asarray(c["K"], float), dist=np.asarray(c["dist_k1_k2_p1_p2"], float),
            R=np.asarray(c["R_world_to_cam"], float), t=np.asarray(c["t_world_to_cam_m"], float),
            calib_size_wh=tuple(c["calib_image_size_wh"]), video_size_wh=tuple(c["video_size_wh"]),
            video=Path(root) / c["video_file"])
    if calibration == "toml":
        cams = {n: _with_toml(c, Path(root) / CALIB_TOML) for n, c in cams.items()}
    elif calibration != "qca":
        raise Pose2SimDataError(f"calibration must be 'toml' or 'qca', not {calibration!r}")
    return cams


def _with_toml(cam: CalibratedCamera, path: Path) -> CalibratedCamera:
    """The same camera with Pose2Sim's own checkerboard + scene-point calibration (``Calib_scene.toml``)."""
    import tomllib

    if not path.is_file():
        raise Pose2SimDataError(f"pose2sim calibration not found at {path}")
    t = tomllib.loads(path.read_text())[f"int_{cam.name}_img"]
    if tuple(int(v) for v in t["size"]) != tuple(cam.calib_size_wh):
        raise Pose2SimDataError(f"{path}: {cam.name} size {t['size']} differs from {cam.calib_size_wh}")
    return dataclasses.replace(cam, K=np.asarray(t["matrix"], float), dist=np.asarray(t["distortions"], float),
                               R=cv2.Rodrigues(np.asarray(t["rotation"], float))[0],
                               t=np.asarray(t["translation"], float))


def triangulate_dlt(uv: np.ndarray, P: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Weighted linear (DLT) triangulation, batched.

    ``uv [..., C, 2]`` undistorted pixels in C cameras, ``P [C, 3, 4]``, weights
    ``w [..., C]`` (0 drops a camera). Returns world points ``[..., 3]``; NaN
    where fewer than two cameras have a positive weight. Each camera's rows are
    normalised to unit norm before weighting, so that the weights (not the
    cameras' depths or pixel scales) set how much each view counts.
    """
    uv = np.asarray(uv, float)
    w = np.where(np.isfinite(uv).all(-1), np.asarray(w, float), 0.0)
    uvz = np.nan_to_num(uv)
    # rows: u * P3 - P1, v * P3 - P2   -> A [..., C, 2, 4]
    A = uvz[..., :, :, None] * P[:, 2:3, :] - P[:, :2, :]
    A = A / np.linalg.norm(A, axis=-1, keepdims=True).clip(1e-12)
    A = (A * w[..., None, None]).reshape(uv.shape[:-2] + (-1, 4))
    _, _, vt = np.linalg.svd(A)
    Xh = vt[..., -1, :]
    with np.errstate(divide="ignore", invalid="ignore"):     # undetermined points are set to NaN below
        X = Xh[..., :3] / Xh[..., 3:4]
    X[(w > 0).sum(-1) < 2] = np.nan
    return X


POSE2SIM_FPS = 60.0   # the pose2sim demo's frame rate (its 4 views are synchronised 60 fps video)


def pose2sim_keypoints(kp: np.ndarray, conf: np.ndarray, fix_left_right: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One view's cached (raw) detections ``[F, 17, 2]``, ``[F, 17]`` as the app's keypoint stage gives them: with
    ``fix_left_right`` the stream goes through ``LeftRightTracker`` (which the detector runs in video mode), at the
    clip's 60 fps. Its thresholds are in torso lengths, so video or undistorted pixels give the same decisions."""
    if not fix_left_right:
        return kp, conf
    from mocap_app.keypoints import fix_left_right_swaps

    xy, cf, _ = fix_left_right_swaps(kp, conf, np.arange(len(kp)) / POSE2SIM_FPS)
    return xy, cf


def detect_videos(cams: dict[str, CalibratedCamera], max_frames: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """MediaPipe on every view (VIDEO mode): video pixels ``[C, F, 17, 2]`` and confidences ``[C, F, 17]``.

    These are MediaPipe's own labels: the app's left/right fix (``LeftRightTracker``) is off here, so the
    mirrored frames stay visible to ``find_swapped_views`` and to the error model."""
    from mocap_app.capture import VideoSource
    from mocap_app.keypoints import MediaPipePoseDetector

    xy_all, conf_all = [], []
    for name, cam in cams.items():
        xy = np.full((max_frames, NUM_JOINTS, 2), np.nan, np.float32)
        conf = np.zeros((max_frames, NUM_JOINTS), np.float32)
        with VideoSource(cam.video) as src, MediaPipePoseDetector(running_mode="video", fix_left_right=False) as det:
            for frame in src:
                if frame.index >= max_frames:
                    break
                k = det.detect(frame)
                xy[frame.index], conf[frame.index] = k.xy_px, k.confidence
        log.info("%s: person in %d / %d frames", name, int(np.isfinite(xy[:, 0, 0]).sum()), max_frames)
        xy_all.append(xy)
        conf_all.append(conf)
    return np.stack(xy_all), np.stack(conf_all)


@dataclass
class LeaveOneOutErrors:
    errors_px: np.ndarray      # [M, 17, 2] detection - projection (undistorted calibration pixels)
    scale_px: np.ndarray       # [M] bbox diagonal of the projected joints
    height_px: np.ndarray      # [M] bbox height of the projected joints
    confidence: np.ndarray     # [M, 17] held-out detection's confidence
    camera: np.ndarray         # [M] camera index 0..3 (CAMERAS)
    frame: np.ndarray          # [M]
    n_views: np.ndarray        # [M, 17] number of other views in the reference triangulation (2 or 3)
    mirrored: np.ndarray       # [M] the held-out view's skeleton is left/right mirrored (a MediaPipe swap)


def undistorted_views(cams: dict[str, CalibratedCamera], xy_video: np.ndarray) -> np.ndarray:
    """Video pixels ``[C, ..., 2]`` -> undistorted calibration pixels, camera by camera."""
    return np.stack([cam.undistort(cam.video_to_calib(xy_video[i])) for i, cam in enumerate(cams.values())])


def find_swapped_views(und: np.ndarray, P: np.ndarray, w: np.ndarray, ratio: float = 0.5,
                       min_px: float = 20.0) -> np.ndarray:
    """Frames where one view labels left and right the other way round from the others: ``[F, C]`` bool.

    MediaPipe sometimes mirrors a whole skeleton (seen here in cam02 over ~20
    frames). For each frame, every labelling that mirrors a single view is tried;
    a view is flagged when mirroring it makes the 4-view triangulation reproject
    better than ``ratio`` times the unmirrored residual (and that residual is
    above ``min_px``). ``und [C, F, 17, 2]``, ``P [C, 3, 4]``, ``w [C, F, 17]``.
    """
    C, F = und.shape[:2]
    flip = list(FLIP_PERM)

    def residual(u):  # mean reprojection error over views and joints, per frame
        uv, ww = np.moveaxis(u, 0, 2), np.moveaxis(w, 0, 2)
        X = triangulate_dlt(uv, P, ww)                                  # [F, 17, 3]
        Xh = np.concatenate([X, np.ones(X.shape[:-1] + (1,))], -1)
        pr = np.einsum("cij,fkj->cfki", P, Xh)
        pr = pr[..., :2] / pr[..., 2:3]
        r = np.linalg.norm(pr - u, axis=-1)                             # [C, F, 17]
        return np.nanmean(np.where(w > 0, r, np.nan), axis=(0, 2))

    base = residual(und)
    swapped = np.zeros((F, C), bool)
    best = base.copy()
    for c in range(C):
        u = und.copy()
        u[c] = und[c][:, flip]
        r = residual(u)
        better = (r < ratio * base) & (base > min_px) & (r < best)
        swapped[better] = False
        swapped[better, c] = True
        best = np.where(better, r, best)
    return swapped


def reference_weights(und: np.ndarray, P: np.ndarray, conf: np.ndarray,
                      drop_swapped: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Triangulation weights ``[C, F, 17]`` (confidence; 0 where a view has no detection or, with
    ``drop_swapped``, where its whole skeleton is mirrored in that frame) and the mirrored flags ``[F, C]``."""
    C, F = und.shape[:2]
    w_c = np.where(np.isfinite(und).all(-1), conf.astype(float), 0.0)
    swapped = find_swapped_views(und, P, w_c) if drop_swapped else np.zeros((F, C), bool)
    return w_c * ~swapped.T[:, :, None], swapped


def leave_one_out(cams: dict[str, CalibratedCamera], xy_video: np.ndarray, conf: np.ndarray,
                  drop_swapped_references: bool = True) -> LeaveOneOutErrors:
    """Errors of each camera's detections against the triangulation from the other cameras.

    With ``drop_swapped_references``, a view whose whole skeleton is mirrored in a
    frame (``find_swapped_views``) is left out of the *reference* triangulation
    for the other cameras, but its own held-out error (the swap) is kept: it is a
    real MediaPipe failure, while letting it corrupt the reference would charge
    it to the other three cameras.
    """
    names = list(cams)
    C, F = xy_video.shape[:2]
    und = undistorted_views(cams, xy_video)
    P = np.stack([cams[n].P for n in names])
    w_ref, swapped = reference_weights(und, P, conf, drop_swapped_references)
    uv = np.moveaxis(und, 0, 2)                        # [F, 17, C, 2]
    w = np.moveaxis(w_ref, 0, 2)                       # [F, 17, C]
    rows = []
    for c, n in enumerate(names):
        others = [o for o in range(C) if o != c]
        X = triangulate_dlt(uv[:, :, others], P[others], w[:, :, others])       # [F, 17, 3]
        proj = cams[n].project(X)                                               # [F, 17, 2]
        err = und[c] - proj
        found = np.isfinite(und[c]).all(-1).all(-1) & np.isfinite(proj).all(-1).all(-1)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)          # all-NaN frames are skipped below
            lo, hi = np.nanmin(proj, axis=1), np.nanmax(proj, axis=1)
        for f in np.flatnonzero(found):
            rows.append((err[f], np.linalg.norm(hi[f] - lo[f]), hi[f, 1] - lo[f, 1], conf[c, f], c, f,
                         (w[f, :, others] > 0).sum(0), swapped[f, c]))
    if not rows:
        raise Pose2SimDataError("no frame had a person in a held-out view and at least two other views")
    e, s, h, cf, cam, fr, nv, sw = zip(*rows)
    return LeaveOneOutErrors(np.asarray(e, np.float32), np.asarray(s, np.float32), np.asarray(h, np.float32),
                             np.asarray(cf, np.float32), np.asarray(cam, np.int16), np.asarray(fr, np.int16),
                             np.asarray(nv, np.int8), np.asarray(sw, bool))


README = """MediaPipe 2D keypoint errors on real video, leave-one-camera-out.
Made by `python -m engines.real_errors` (mocap repo) from the pose2sim Demo_SinglePerson clip
(4 synchronised calibrated 60 fps views, 100 frames each, BSD-3-Clause, (c) 2022 perfanalytics).
Calibration: {calibration}. Detector: mocap_app.keypoints.MediaPipePoseDetector, VIDEO mode,
assets/mediapipe/pose_landmarker_full.task (BlazePose full, from the mediapipe 0.10.14 wheel), mediapipe {mp_version}.
cam01/cam02 video pixels mapped to calibration pixels (u*1088/1080, (v-7)*1088/1080); all points
undistorted (cv2.undistortPoints, P=K). For each frame f, camera c and joint j: X = DLT triangulation
from the other 3 cameras (rows weighted by detection confidence); errors_px = detection - K[R|t]X in
camera c (undistorted 1088x1920 calibration pixels). A view whose whole skeleton is left/right mirrored
in a frame (found by 4-view consistency) is excluded from the other cameras' reference triangulation
(n_views then 2) but its own error is kept (mirrored = True; a real MediaPipe swap).
scale_px = diagonal of the 2D bounding box of the 17 projected joints in camera c; height_px its height.
confidence = held-out detection's confidence (visibility*presence). camera = index into camera_names;
frame = frame index. Joint order: joint_names (Human3.6M 17). detections_video_px/_confidence: raw
detections [camera, frame, 17, ...] in video pixels.
Caveats: residuals include the 2-3-view triangulation error and residual calibration error; MediaPipe's
'hips' are not the anatomical hip joint centres, and a landmark's semantic point can differ between
views (e.g. hip seen from the side vs the front), which shows up here as error."""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=POSE2SIM_ROOT, help="pose2sim_demo_singleperson folder")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--frames", type=int, default=100)
    ap.add_argument("--calibration", choices=["toml", "qca"], default="toml",
                    help="toml: Calib_scene.toml (default, more consistent); qca: calib_opencv_from_qca.json")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cams = load_pose2sim_cameras(a.root, a.calibration)
    except Pose2SimDataError as e:
        print(f"real_errors: {e}", file=sys.stderr)
        return 2
    import mediapipe

    xy, conf = detect_videos(cams, a.frames)
    r = leave_one_out(cams, xy, conf)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        a.out, errors_px=r.errors_px, scale_px=r.scale_px, height_px=r.height_px, confidence=r.confidence,
        camera=r.camera, frame=r.frame, n_views=r.n_views, mirrored=r.mirrored,
        camera_names=np.array(list(cams)), joint_names=np.array(JOINT_NAMES),
        detections_video_px=xy, detections_confidence=conf,
        README=np.array(README.format(mp_version=mediapipe.__version__, calibration=CALIB_NAMES[a.calibration])))
    print(f"wrote {a.out}: M = {len(r.errors_px)} (frame, camera) samples ({a.calibration} calibration), "
          f"{int(r.mirrored.sum())} with a mirrored skeleton; scale_px median {np.median(r.scale_px):.0f} px")
    print(summary_table(r))
    return 0


def summary_table(r: LeaveOneOutErrors) -> str:
    """Per-joint median / 90th percentile of |error| (px), overall and per camera."""
    mag = np.linalg.norm(r.errors_px, axis=-1)          # [M, 17]
    head = f"{'joint':<15}{'median':>8}{'p90':>8}" + "".join(f"{c:>8}" for c in CAMERAS) + f"{'conf':>7}"
    lines = [head, "-" * len(head)]
    for j, name in enumerate(JOINT_NAMES):
        per_cam = [np.median(mag[r.camera == c, j]) if (r.camera == c).any() else np.nan for c in range(len(CAMERAS))]
        lines.append(f"{name:<15}{np.median(mag[:, j]):8.1f}{np.percentile(mag[:, j], 90):8.1f}"
                     + "".join(f"{v:8.1f}" for v in per_cam) + f"{np.median(r.confidence[:, j]):7.2f}")
    lines.append(f"{'all joints':<15}{np.median(mag):8.1f}{np.percentile(mag, 90):8.1f}"
                 + "".join(f"{np.median(mag[r.camera == c]):8.1f}" for c in range(len(CAMERAS))))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
