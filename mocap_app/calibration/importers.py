"""Camera calibrations made by other tools, read into camera profiles (``mocap-app calibrate import``, the dialog's
*Load profile...*).

* **Pose2Sim / Sports2D / anipose TOML**: one table per camera with ``size = [w, h]``, ``matrix`` (3x3),
  ``distortions`` (OpenCV order; k1..k4 of OpenCV's fisheye model when ``fisheye = true``), ``rotation`` (Rodrigues)
  and ``translation`` (world to camera, metres). Their world frame is Z up with the floor at z = 0, so a scene
  calibration also says where each camera stands: pitch, roll and lens height (``ImportedCamera.placement``), what
  world alignment otherwise estimates from the person.
* **OpenCV FileStorage** (``.yml`` / ``.yaml`` / ``.xml``, as OpenCV's calibration sample and most C++ tools write
  them): ``camera_matrix`` (or ``cameraMatrix`` / ``K``), ``distortion_coefficients`` (or ``dist_coeffs`` /
  ``distCoeffs`` / ``D``), ``image_width`` + ``image_height`` (or ``image_size``).
* Our own profile JSON.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mocap_app.calibration.profile import CalibrationError, CameraProfile
from mocap_app.world import CameraPlacement


class CalibrationImportError(CalibrationError):
    """A calibration file that cannot be read as a camera (its sentence says why)."""


@dataclass(frozen=True)
class ImportedCamera:
    profile: CameraProfile
    placement: CameraPlacement | None = None     # where it stands (scene calibrations, Z-up world)


def read_cameras(path: str | os.PathLike) -> list[ImportedCamera]:
    """Every camera in a calibration file, in file order."""
    p = Path(path)
    if not p.is_file():
        raise CalibrationImportError(f"calibration file not found: {p}")
    suffix = p.suffix.lower()
    if suffix == ".toml":
        return _read_toml(p)
    if suffix == ".json":
        try:
            return [ImportedCamera(CameraProfile.load(p))]
        except CalibrationError as ours:
            try:
                return _read_filestorage(p)
            except CalibrationImportError:
                raise ours from None
    if suffix in (".yml", ".yaml", ".xml"):
        return _read_filestorage(p)
    raise CalibrationImportError(f"{p.name}: not a calibration file this app reads (a mocap profile .json, a "
                                 "Pose2Sim / anipose .toml, or an OpenCV .yml / .yaml / .xml)")


def import_camera(path: str | os.PathLike, camera: str | None = None, name: str | None = None) -> ImportedCamera:
    """One camera of a calibration file: the only one, or the one named ``camera`` (its table name or its index
    from 1). ``name`` renames the profile."""
    cams = read_cameras(path)
    if camera is None:
        if len(cams) > 1:
            names = ", ".join(c.profile.name for c in cams)
            raise CalibrationImportError(f"{Path(path).name} holds {len(cams)} cameras ({names}): pick one with "
                                         "--camera")
        cam = cams[0]
    else:
        by_name = [c for c in cams if c.profile.name == camera]
        if by_name:
            cam = by_name[0]
        elif camera.isdigit() and 1 <= int(camera) <= len(cams):
            cam = cams[int(camera) - 1]
        else:
            raise CalibrationImportError(f"{Path(path).name} has no camera {camera!r}; it holds "
                                         + ", ".join(c.profile.name for c in cams))
    if name:
        from dataclasses import replace
        cam = replace(cam, profile=replace(cam.profile, name=name))
    return cam


def placement_from_extrinsics(rvec_world_to_cam, t_world_to_cam_m) -> CameraPlacement:
    """Pitch, roll (deg, ``mocap_app.world``'s conventions) and lens height (m) of a camera whose world frame has Z
    up and the floor at z = 0: up in the camera is ``R (0, 0, 1)``, the lens centre ``-R^T t``."""
    import cv2

    from mocap_app.world import pitch_roll_from_up
    R = cv2.Rodrigues(np.asarray(rvec_world_to_cam, float).reshape(3))[0]
    pitch, roll = pitch_roll_from_up(R @ np.array([0.0, 0.0, 1.0]))
    centre = -R.T @ np.asarray(t_world_to_cam_m, float).reshape(3)
    return CameraPlacement(float(pitch), float(roll), float(centre[2]))


def _profile(name: str, size, K, dist, source: str, notes: str = "", lens_model: str = "standard") -> CameraProfile:
    try:
        w, h = (int(round(float(v))) for v in size)
        K = np.asarray(K, float).reshape(3, 3)
        d = tuple(float(v) for v in np.asarray(dist if dist is not None else (), float).ravel())
        return CameraProfile(name, w, h, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]), d, source,
                             notes=notes, lens_model=lens_model)
    except CalibrationError:
        raise
    except (TypeError, ValueError) as e:
        raise CalibrationImportError(f"camera {name!r}: {e}") from None


def _read_toml(p: Path) -> list[ImportedCamera]:
    import tomllib
    try:
        doc = tomllib.loads(p.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CalibrationImportError(f"{p.name} is not valid TOML ({e})") from None
    out = []
    for key, cam in doc.items():
        if not isinstance(cam, dict) or "matrix" not in cam:
            continue                                   # e.g. [metadata]
        name = str(cam.get("name") or key)
        if "size" not in cam:
            raise CalibrationImportError(f"camera {name!r} in {p.name} has no image size")
        placement, notes = None, ""
        if "rotation" in cam and "translation" in cam:
            placement = placement_from_extrinsics(cam["rotation"], cam["translation"])
            notes = (f"placement in the scene calibration (Z up, floor at 0): pitch {placement.pitch_deg:.1f} deg, "
                     f"roll {placement.roll_deg:.1f} deg, lens {placement.camera_height_m:.2f} m above the floor")
        out.append(ImportedCamera(_profile(name, cam["size"], cam["matrix"], cam.get("distortions"),
                                           f"imported from {p.name}", notes,
                                           "fisheye" if cam.get("fisheye") else "standard"), placement))
    if not out:
        raise CalibrationImportError(f"{p.name} holds no camera (tables with size, matrix and distortions, as "
                                     "Pose2Sim writes)")
    return out


_K_KEYS = ("camera_matrix", "cameraMatrix", "K", "intrinsic_matrix", "M")
_D_KEYS = ("distortion_coefficients", "dist_coeffs", "distCoeffs", "D", "distortion")


def _read_filestorage(p: Path) -> list[ImportedCamera]:
    import cv2
    try:
        fs = cv2.FileStorage(str(p), cv2.FILE_STORAGE_READ)
    except cv2.error as e:
        why = str(e).strip().splitlines()[-1]
        raise CalibrationImportError(f"{p.name} is not an OpenCV calibration file ({why})") from None
    try:
        if not fs.isOpened():
            raise CalibrationImportError(f"{p.name} could not be read as an OpenCV calibration file")

        def node(keys):
            for k in keys:
                n = fs.getNode(k)
                if not n.empty():
                    return n
            return None
        K = node(_K_KEYS)
        if K is None or K.mat() is None:
            raise CalibrationImportError(f"{p.name} has no camera matrix (looked for {', '.join(_K_KEYS)})")
        D = node(_D_KEYS)
        size = None
        w, h = fs.getNode("image_width"), fs.getNode("image_height")
        if not w.empty() and not h.empty():
            size = (w.real(), h.real())
        else:
            s = node(("image_size", "imageSize", "size"))
            if s is not None and s.isSeq() and s.size() >= 2:
                size = (s.at(0).real(), s.at(1).real())
            elif s is not None and s.mat() is not None:
                size = tuple(np.ravel(s.mat())[:2])
        if size is None or not all(math.isfinite(float(v)) and float(v) > 0 for v in size):
            raise CalibrationImportError(f"{p.name} has no image size (image_width / image_height or image_size): "
                                         "the focal length means nothing without it")
        return [ImportedCamera(_profile(p.stem, size, K.mat(), None if D is None else D.mat(),
                                        f"imported from {p.name}"))]
    finally:
        fs.release()
