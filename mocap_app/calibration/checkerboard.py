"""Checkerboard / ChArUco calibration with OpenCV, plus guidance on which views are still missing.

Zhang's method (``cv2.calibrateCamera``) needs the board seen at several tilts and
spread over the image: a fronto-parallel board at the centre only constrains the
focal length weakly (it trades off against the board's distance), and corners
never seen near the image borders leave distortion unconstrained. So besides the
RMS reprojection error we report a 3x3 coverage grid, the range of board
tilts and of its apparent size (near and far views), and say in words what to add.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np

from engines.camera import CameraIntrinsics, InvalidIntrinsicsError
from mocap_app.calibration.profile import CalibrationError, CameraProfile

log = logging.getLogger(__name__)

MIN_VIEWS = 3
GOOD_TILT_DEG = 20.0      # want views tilted at least this much about each image axis
GOOD_SIZE_RATIO = 1.5     # want the board's apparent size (near vs far views) to vary at least this much
OUTLIER_FACTOR = 3.0      # a view whose error is > 3x the median (and > 1 px) is dropped and calibration redone


class BoardNotFoundError(CalibrationError):
    """Too few images in which the calibration board was found."""


class UnreadableInputError(CalibrationError):
    """An image or video of the board that cannot be read (missing, corrupt, not an image)."""


@dataclass(frozen=True)
class BoardSpec:
    """A printed calibration target.

    ``cols x rows`` counts *inner corners* for a chessboard (OpenCV's pattern size)
    and *squares* for a ChArUco board (OpenCV's CharucoBoard size).
    """
    cols: int
    rows: int
    square_mm: float
    kind: str = "chessboard"          # or "charuco"
    marker_mm: float | None = None    # ChArUco marker side (default 0.75 x square)
    dictionary: str = "DICT_5X5_100"
    legacy: bool = False              # ChArUco layout of OpenCV < 4.6 (and generators that copied it)

    def __post_init__(self):
        if self.kind not in ("chessboard", "charuco"):
            raise CalibrationError(f"board kind must be 'chessboard' or 'charuco' (got {self.kind!r})")
        if self.cols < 2 or self.rows < 2:
            raise CalibrationError(f"board pattern {self.cols}x{self.rows} is too small (need at least 2x2)")
        if not (math.isfinite(self.square_mm) and 1.0 <= self.square_mm <= 1000.0):
            raise CalibrationError(f"square size {self.square_mm!r} mm is not plausible (1..1000 mm)")
        if self.kind == "charuco" and not hasattr(cv2, "aruco"):
            raise CalibrationError("ChArUco needs OpenCV's aruco module (install opencv-contrib-python)")
        if self.kind == "charuco":
            if self.dictionary not in charuco_dictionaries():
                raise CalibrationError(f"unknown ArUco dictionary {self.dictionary!r}; one of: "
                                       + ", ".join(charuco_dictionaries()))
            if self.marker_mm is not None and not (math.isfinite(self.marker_mm)
                                                   and 0.0 < self.marker_mm < self.square_mm):
                raise CalibrationError(f"marker size {self.marker_mm!r} mm must be positive and smaller than the "
                                       f"{self.square_mm:g} mm square")

    @classmethod
    def parse(cls, pattern: str, square_mm: float, kind: str = "chessboard", **kw) -> "BoardSpec":
        try:
            c, r = (int(v) for v in pattern.lower().split("x"))
        except ValueError:
            raise CalibrationError(f"board pattern {pattern!r} must look like 4x7 (columns x rows)") from None
        return cls(c, r, float(square_mm), kind, **kw)

    def object_points(self) -> np.ndarray:
        """Chessboard inner corners on the board plane (z = 0), mm, in OpenCV's detection order."""
        g = np.zeros((self.cols * self.rows, 3), np.float32)
        g[:, :2] = np.mgrid[0:self.cols, 0:self.rows].T.reshape(-1, 2) * self.square_mm
        return g

    def charuco_board(self):
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        marker = self.marker_mm or 0.75 * self.square_mm
        board = cv2.aruco.CharucoBoard((self.cols, self.rows), self.square_mm, marker, d)
        # boards printed from OpenCV < 4.6 (or generators that copied it) with an even number of rows start with
        # the other square colour: without this their corners are not found
        board.setLegacyPattern(bool(self.legacy))
        return board


def charuco_dictionaries() -> list[str]:
    """The ArUco dictionaries OpenCV knows (``DICT_4X4_50`` ... ``DICT_ARUCO_ORIGINAL``, AprilTag families)."""
    if not hasattr(cv2, "aruco"):
        return []
    names = [d for d in dir(cv2.aruco) if d.startswith("DICT_") and d.upper() == d]
    def key(n: str):
        family, _, size = n.rpartition("_")
        return (not n[5].isdigit(), family if size.isdigit() else n, int(size) if size.isdigit() else 0)
    return sorted(names, key=key)


@dataclass
class ViewDetection:
    name: str
    image_points: np.ndarray   # [K, 1, 2] float32
    object_points: np.ndarray  # [K, 3] float32


@dataclass
class Coverage:
    """Where in the image corners were seen, and how tilted the board was."""
    grid_counts: np.ndarray            # [3, 3] number of views with corners in each cell (row-major, top-left first)
    tilt_x_deg: tuple[float, float]    # min/max board tilt about the image x axis (looking up/down)
    tilt_y_deg: tuple[float, float]    # min/max tilt about the image y axis (turned left/right)
    advice: list[str] = field(default_factory=list)
    size_frac: tuple[float, float] = (0.0, 0.0)   # min/max board size: sqrt(area of its corners' hull / image area)

    @property
    def complete(self) -> bool:
        return not self.advice


@dataclass
class CheckerboardResult:
    intrinsics: CameraIntrinsics
    rms_px: float
    per_view_rms_px: dict[str, float]
    used: list[str]
    rejected: dict[str, str]           # image name -> why
    coverage: Coverage

    def profile(self, name: str) -> CameraProfile:
        spec = f"checkerboard, {len(self.used)} views, RMS {self.rms_px:.2f} px"
        return CameraProfile.from_intrinsics(name, self.intrinsics, spec, reprojection_error_px=float(self.rms_px),
                                             notes="; ".join(self.coverage.advice))


_REGION_NAMES = (("top-left", "top", "top-right"), ("left", "centre", "right"),
                 ("bottom-left", "bottom", "bottom-right"))


def _as_gray(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return image


def detect_board(image: np.ndarray, spec: BoardSpec) -> tuple[np.ndarray, np.ndarray] | None:
    """Sub-pixel corners ``[K,1,2]`` and their board points ``[K,3]``, or None if the board is not found."""
    gray = _as_gray(image)
    if spec.kind == "charuco":
        board = spec.charuco_board()
        det = cv2.aruco.CharucoDetector(board)
        ch_corners, ch_ids, _, _ = det.detectBoard(gray)
        if ch_ids is None or len(ch_ids) < 6:
            return None
        obj, img = board.matchImagePoints(ch_corners, ch_ids)
        return img.astype(np.float32).reshape(-1, 1, 2), obj.astype(np.float32).reshape(-1, 3)
    size = (spec.cols, spec.rows)
    ok, corners = cv2.findChessboardCorners(gray, size, cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE)
    if ok:
        # window ~ a third of the smallest corner spacing, at least 3 px, at most 11
        c = corners.reshape(-1, 2)
        spacing = np.median(np.linalg.norm(np.diff(c.reshape(spec.rows, spec.cols, 2), axis=1), axis=-1))
        win = int(np.clip(spacing / 3, 3, 11))
        corners = cv2.cornerSubPix(gray, corners, (win, win), (-1, -1),
                                   (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-3))
    else:  # the sector-based detector copes with blur and strong perspective; it is already sub-pixel
        ok, corners = cv2.findChessboardCornersSB(gray, size, cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY)
        if not ok:
            return None
    # OpenCV 4 gives [K,1,2], OpenCV 5 [K,2]
    return corners.astype(np.float32).reshape(-1, 1, 2), spec.object_points()


def find_board_preview(image: np.ndarray, spec: BoardSpec, max_side_px: int = 640) -> np.ndarray | None:
    """Rough corners ``[K, 2]`` in ``image`` pixels for a live preview, or None: the board found on a copy at most
    ``max_side_px`` wide / high (fast-check on, no sub-pixel step), so it keeps up with a camera. The saved view is
    detected again in full by ``calibrate``."""
    view = preview_detection(image, spec, max_side_px)
    return None if view is None else view.image_points.reshape(-1, 2)


def preview_detection(image: np.ndarray, spec: BoardSpec, max_side_px: int = 640) -> ViewDetection | None:
    """``find_board_preview`` with the board points of each corner (what ``live_coverage`` needs)."""
    gray = _as_gray(image)
    scale = min(1.0, max_side_px / max(gray.shape[:2]))
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1.0 else gray
    if spec.kind == "charuco":
        found = detect_board(small, spec)
        if found is None:
            return None
        corners, obj = found
    else:
        ok, corners = cv2.findChessboardCorners(small, (spec.cols, spec.rows),
                                                cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
                                                | cv2.CALIB_CB_FAST_CHECK)
        if not ok:
            return None
        obj = spec.object_points()
    return ViewDetection("preview", (corners.reshape(-1, 1, 2) / scale).astype(np.float32), obj)


def live_coverage(views: Sequence[ViewDetection], size_wh: tuple[int, int], focal_px: float | None = None) -> Coverage:
    """The coverage advice for views captured so far, before any calibration.

    The board's tilt in each view comes from its pose (``cv2.solvePnP``, IPPE for a plane) under a guessed camera:
    ``focal_px``, else a 70 deg diagonal field of view. A wrong focal length mostly changes the board's distance, not
    its tilt (a 20 % error moves a 30 deg tilt by a few degrees), which is all the advice needs.
    """
    w, h = size_wh
    K = (CameraIntrinsics.from_focal(focal_px, w, h) if focal_px else
         CameraIntrinsics.from_fov(70.0, w, h, "diagonal")).K
    rvecs = []
    for v in views:
        ok, rvec, _ = cv2.solvePnP(v.object_points.astype(np.float64), v.image_points.astype(np.float64), K, None,
                                   flags=cv2.SOLVEPNP_IPPE)
        if ok:
            rvecs.append(rvec)
    return _coverage(views, rvecs, size_wh)


def _coverage(views: Sequence[ViewDetection], rvecs, size_wh: tuple[int, int]) -> Coverage:
    w, h = size_wh
    grid = np.zeros((3, 3), int)
    for v in views:
        p = v.image_points.reshape(-1, 2)
        cells = set(zip(np.clip((p[:, 1] * 3 // h).astype(int), 0, 2), np.clip((p[:, 0] * 3 // w).astype(int), 0, 2)))
        for r, c in cells:
            grid[r, c] += 1
    tx, ty = [], []
    for rv in rvecs:
        n = cv2.Rodrigues(np.asarray(rv, float))[0][:, 2]          # board normal in the camera frame
        n = n if n[2] < 0 else -n                                   # point it towards the camera
        tx.append(math.degrees(math.atan2(n[1], -n[2])))            # tilt about image x (up/down)
        ty.append(math.degrees(math.atan2(n[0], -n[2])))            # tilt about image y (left/right)
    advice = []
    missing = [_REGION_NAMES[r][c] for r in range(3) for c in range(3) if grid[r, c] == 0]
    if missing:
        advice.append("no corners seen in the " + ", ".join(missing) + " part of the image: hold the board there")
    if tx and max(abs(min(tx)), abs(max(tx))) < GOOD_TILT_DEG or tx and (max(tx) - min(tx)) < GOOD_TILT_DEG:
        advice.append(f"add views with the board tilted forward/back by {GOOD_TILT_DEG:.0f}-45 deg")
    if ty and max(abs(min(ty)), abs(max(ty))) < GOOD_TILT_DEG or ty and (max(ty) - min(ty)) < GOOD_TILT_DEG:
        advice.append(f"add views with the board turned left/right by {GOOD_TILT_DEG:.0f}-45 deg")
    # near and far views: at one distance the focal length trades off against the board's distance more easily
    hulls = [cv2.convexHull(v.image_points.reshape(-1, 1, 2).astype(np.float32)) for v in views]
    sizes = [math.sqrt(cv2.contourArea(hull) / (w * h)) for hull in hulls]
    if len(sizes) >= MIN_VIEWS and max(sizes) < GOOD_SIZE_RATIO * min(sizes):
        advice.append(f"add views with the board nearer and farther: it spans {100 * min(sizes):.0f}-"
                      f"{100 * max(sizes):.0f} % of the image in every view")
    if len(views) < 10:
        advice.append(f"{len(views)} usable views; 10-20 give a more reliable calibration")
    return Coverage(grid, (min(tx, default=0.0), max(tx, default=0.0)), (min(ty, default=0.0), max(ty, default=0.0)),
                    advice, (min(sizes, default=0.0), max(sizes, default=0.0)))


def _load(item) -> tuple[str, np.ndarray]:
    if isinstance(item, (str, os.PathLike)):
        img = cv2.imread(str(item), cv2.IMREAD_GRAYSCALE)
        if img is None:
            raise UnreadableInputError(f"cannot read image {item}")
        return Path(item).name, img
    name, img = item
    return str(name), _as_gray(np.asarray(img))


VIDEO_VIEW_GAP_S = 0.5     # views taken from a video at least this far apart (neighbouring frames add nothing)
VIDEO_MAX_VIEWS = 40       # calibrateCamera gains little beyond this, and the time grows with every view


def views_from_video(path: str | os.PathLike, spec: BoardSpec, *, gap_s: float = VIDEO_VIEW_GAP_S,
                     max_views: int = VIDEO_MAX_VIEWS) -> list[tuple[str, np.ndarray]]:
    """``(name, gray frame)`` views of the board from a video of it being moved in front of the camera: frames
    where ``find_board_preview`` sees the board, at least ``gap_s`` apart, at most ``max_views`` spread evenly over
    them. Frames of the same video share one size, as one camera's views must."""
    from mocap_app.capture import CaptureError, VideoSource
    found: list[tuple[str, np.ndarray]] = []
    t_last = -math.inf
    try:
        with VideoSource(path) as src:
            while (t := src.grab()) is not None:
                if t - t_last < gap_s:
                    continue            # stepped over without making an image of it
                frame = src.retrieve()
                if frame is None:
                    break
                gray = _as_gray(frame.image_bgr)
                if find_board_preview(gray, spec) is not None:
                    found.append((f"{Path(path).name}@{frame.timestamp_s:.2f}s", gray))
                    t_last = frame.timestamp_s
    except CaptureError as e:
        raise UnreadableInputError(str(e)) from None
    if len(found) > max_views:
        found = [found[i] for i in np.linspace(0, len(found) - 1, max_views).round().astype(int)]
    log.info("%s: %d views of the board", path, len(found))
    return found


def _expand_videos(items: Iterable, spec: BoardSpec) -> list:
    from mocap_app.capture import VIDEO_EXTS
    out = []
    for item in items:
        if isinstance(item, (str, os.PathLike)) and Path(item).suffix.lower() in VIDEO_EXTS:
            out.extend(views_from_video(item, spec))
        else:
            out.append(item)
    return out


def calibrate(images: Iterable, spec: BoardSpec, *, fix_aspect: bool = False, fisheye: bool = False,
              progress: Callable[[int, int, str], None] | None = None) -> CheckerboardResult:
    """Calibrate from image paths, videos of the board (``views_from_video``) or ``(name, array)`` pairs of one
    camera at one size.

    Views whose reprojection error is an outlier (blur, a mis-ordered detection)
    are dropped once and the calibration is redone. ``fisheye``: OpenCV's fisheye model (``cv2.fisheye.calibrate``,
    k1..k4) for action cameras, whose wide field the standard model cannot follow to the image corners.
    """
    images = list(images)
    items = _expand_videos(images, spec)
    if not items:
        if images:   # only videos, and the board in none of their frames
            names = ", ".join(Path(str(v)).name for v in images)
            raise BoardNotFoundError(f"the {spec.kind} ({spec.cols}x{spec.rows}) was not found in any frame of "
                                     f"{names}. Check the pattern size and the lighting, and that the video shows the "
                                     "board.")
        raise CalibrationError("no calibration images given")
    views: list[ViewDetection] = []
    rejected: dict[str, str] = {}
    size = None
    for i, item in enumerate(items):
        name, gray = _load(item)
        if progress:
            progress(i, len(items), name)
        if size is None:
            size = gray.shape[::-1]
        elif gray.shape[::-1] != size:
            rejected[name] = f"size {gray.shape[1]}x{gray.shape[0]} differs from the first image's {size[0]}x{size[1]}"
            continue
        det = detect_board(gray, spec)
        if det is None:
            rejected[name] = f"{spec.kind} {spec.cols}x{spec.rows} not found"
            continue
        views.append(ViewDetection(name, det[0], det[1]))
    if progress:
        progress(len(items), len(items), "calibrating")
    if len(views) < MIN_VIEWS:
        raise BoardNotFoundError(
            f"the {spec.kind} ({spec.cols}x{spec.rows}) was found in {len(views)} of {len(items)} images; at least "
            f"{MIN_VIEWS} are needed. " + (
                f"Check the pattern size (squares for ChArUco), the dictionary ({spec.dictionary}), the marker size "
                f"and whether the board is in the legacy layout of OpenCV < 4.6"
                + (" (it is set)" if spec.legacy else "") + ", and the lighting." if spec.kind == "charuco" else
                "Check the pattern size (inner corners for a chessboard) and lighting."))

    # k3 fixed at 0, as OpenCV advises for lenses that are not fisheye: with the few views a user takes it fits the
    # corners the board never reached and extrapolates wildly there (pose2sim: up to 96 px off the Qualisys lens model
    # at the image border with k3 free, 21 px fixed; sub-pixel in the middle either way). The engines now undistort
    # keypoints with this model, so the border matters.
    flags = cv2.CALIB_FIX_K3 | (cv2.CALIB_FIX_ASPECT_RATIO if fix_aspect else 0)

    def run_fisheye(vs):
        obj = [v.object_points.reshape(-1, 1, 3).astype(np.float64) for v in vs]
        img = [v.image_points.reshape(-1, 1, 2).astype(np.float64) for v in vs]
        fl = cv2.fisheye.CALIB_RECOMPUTE_EXTRINSIC | cv2.fisheye.CALIB_FIX_SKEW
        try:
            rms, K, d, rv, tv = cv2.fisheye.calibrate(obj, img, size, np.eye(3), np.zeros(4), flags=fl,
                                                      criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
                                                                200, 1e-10))
        except cv2.error as e:   # ill-conditioned views: OpenCV's assertion is no help to a user
            raise CalibrationError("the fisheye calibration did not converge (" + str(e).strip().splitlines()[-1]
                                   + "): add views with the board nearer and in more parts of the image") from None
        per = {}
        for v, o, r, t in zip(vs, obj, rv, tv):
            proj, _ = cv2.fisheye.projectPoints(o, r, t, K, d)
            res = proj.reshape(-1, 2) - v.image_points.reshape(-1, 2)
            per[v.name] = float(np.sqrt(np.mean(np.sum(res ** 2, axis=-1))))
        return rms, K, d, rv, per

    def run(vs):
        if fisheye:
            return run_fisheye(vs)
        return run_standard(vs)

    def run_standard(vs):
        K0 = np.eye(3)
        if fix_aspect:
            K0[0, 0] = K0[1, 1] = max(size)
        rms, K, d, rv, tv = cv2.calibrateCamera([v.object_points for v in vs], [v.image_points for v in vs],
                                                size, K0 if fix_aspect else None, None, flags=flags)
        per = {}
        for v, r, t in zip(vs, rv, tv):
            proj, _ = cv2.projectPoints(v.object_points, r, t, K, d)
            res = proj.reshape(-1, 2) - v.image_points.reshape(-1, 2)
            per[v.name] = float(np.sqrt(np.mean(np.sum(res ** 2, axis=-1))))
        return rms, K, d, rv, per

    if fisheye:
        # OpenCV's fisheye fit starts every view's pose from a rough lens; a board at the very edge of a wide lens can
        # stop it. Drop such views, the most off-centre first, rather than fail the whole calibration.
        centre = np.array(size, float) / 2
        while True:
            try:
                rms, K, d, rvecs, per = run(views)
                break
            except CalibrationError:
                if len(views) <= MIN_VIEWS:
                    raise
                far = max(views, key=lambda v: float(np.linalg.norm(v.image_points.reshape(-1, 2) - centre,
                                                                    axis=-1).max()))
                rejected[far.name] = "the fisheye fit could not start with it (the board at the image's edge)"
                views = [v for v in views if v is not far]
    else:
        rms, K, d, rvecs, per = run(views)
    med = float(np.median(list(per.values())))
    bad = [v for v in views if per[v.name] > max(OUTLIER_FACTOR * med, 1.0)]
    if bad and len(views) - len(bad) >= MIN_VIEWS:
        for v in bad:
            rejected[v.name] = f"an outlier, {per[v.name]:.2f} px (median {med:.2f} px)"
        views = [v for v in views if v not in bad]
        rms, K, d, rvecs, per = run(views)
    try:
        intr = (CameraIntrinsics.from_matrix(K, size[0], size[1], d.ravel()[:4], "fisheye") if fisheye else
                CameraIntrinsics.from_matrix(K, size[0], size[1], d.ravel()[:5]))
    except InvalidIntrinsicsError as e:
        raise CalibrationError(f"calibration gave implausible intrinsics ({e}); add more, better-spread views") from None
    cov = _coverage(views, rvecs, size)
    log.info("checkerboard calibration: %d views, RMS %.3f px, fx=%.1f fy=%.1f", len(views), rms, K[0, 0], K[1, 1])
    return CheckerboardResult(intr, float(rms), per, [v.name for v in views], rejected, cov)
