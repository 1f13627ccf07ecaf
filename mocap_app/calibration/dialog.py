"""Camera calibration dialog (PySide6): manual entry / checkerboard / auto focal, with a live preview.

The dialog edits one ``CameraProfile``. Every change re-validates it (through
``CameraProfile``/``CameraIntrinsics``, the same checks the CLI uses): an absurd value
shows an inline message and disables OK. Checkerboard calibration and auto focal run
on a ``QThreadPool`` worker so the preview keeps updating; their results land in the
manual tab's fields (as a focal length in px) so the user can still adjust them.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import threading
import time
import traceback
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QObject, QRunnable, Qt, QThread, QThreadPool, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog,
                               QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget, QListWidgetItem,
                               QProgressBar, QPushButton, QSpinBox, QTabWidget, QVBoxLayout, QWidget)

from mocap_app.calibration.manual import FOV_AXES, PRESETS, intrinsics_from_manual
from mocap_app.calibration.profile import CalibrationError, CameraProfile, default_profile_dir

log = logging.getLogger(__name__)

MODES = ("focal length (px)", "field of view (deg)", "35 mm equivalent (mm)", "preset")


class _Signals(QObject):
    finished = Signal(object)
    failed = Signal(str)
    progress = Signal(float)


class Job(QRunnable):
    """Runs ``fn(progress)`` on the thread pool; reports through ``signals`` (delivered on the UI thread)."""

    def __init__(self, fn: Callable[[Callable[[float], None]], object]):
        super().__init__()
        self.fn = fn
        self.signals = _Signals()

    def run(self) -> None:
        try:
            out = self.fn(lambda x: self.signals.progress.emit(float(x)))
        except CalibrationError as e:
            self.signals.failed.emit(str(e))
        except Exception as e:  # keep the UI alive, but say what happened
            log.error("calibration job failed:\n%s", traceback.format_exc())
            self.signals.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.signals.finished.emit(out)


PREVIEW_MAX_PX = 640       # the live board search runs on a copy this large: it keeps up with the camera


class BoardCamera(QThread):
    """Frames from a camera (or any ``VideoSource``) for the checkerboard tab, off the UI thread.

    Each frame is shrunk once to at most ``PREVIEW_MAX_PX`` and searched for the board there
    (``find_board_preview``); ``frameReady`` carries that preview with the corners drawn and whether the board was
    found. ``latest()`` is the last full-size frame and the board's rough corners in it, which *Capture view* saves.
    ``spec`` is the board to look for (None while the dialog's fields do not make one) and ``covered`` the 3 x 3 grid of
    image regions the captured views already cover (tinted green in the preview, so the empty ones stand out); the
    dialog sets both from the UI thread, so this thread never reads widgets. File sources are paced at their frame
    rate, as a camera would be.
    """
    frameReady = Signal(QImage, bool, int)   # preview, board found, frame index
    stopped = Signal(str)                    # why ("" when asked to stop)

    def __init__(self, open_source: Callable[[], object], spec, parent=None):
        super().__init__(parent)
        self._open = open_source
        self.spec = spec
        self.covered: np.ndarray | None = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._latest = None

    def latest(self):
        """``(frame_bgr, board, index)`` of the newest frame (``board``: a ``ViewDetection`` in the frame's pixels, or
        None), or None."""
        with self._lock:
            return self._latest

    def stop(self) -> None:
        self._halt.set()
        self.wait(5000)

    def run(self) -> None:
        import cv2

        from mocap_app.calibration.checkerboard import ViewDetection, preview_detection
        from mocap_app.ui.widgets import bgr_to_qimage
        why = ""
        try:
            src = self._open()
        except Exception as e:  # noqa: BLE001 - a missing / busy camera is a sentence, not a crash
            self.stopped.emit(f"the camera could not be opened ({e})")
            return
        try:
            period = 0.0 if getattr(src, "is_camera", False) else 1.0 / max(float(getattr(src, "fps", 30) or 30), 1)
            t_next = time.perf_counter()
            while not self._halt.is_set():
                frame = src.read()
                if frame is None:
                    why = "the video ended" if not getattr(src, "is_camera", False) else "the camera stopped"
                    break
                img = frame.image_bgr
                scale = min(1.0, PREVIEW_MAX_PX / max(img.shape[:2]))
                small = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else img
                spec = self.spec
                view = None if spec is None else preview_detection(small, spec, PREVIEW_MAX_PX)
                corners = None if view is None else view.image_points.reshape(-1, 2)
                with self._lock:
                    self._latest = (img, None if view is None else ViewDetection(
                        f"frame {frame.index}", view.image_points / scale, view.object_points), frame.index)
                small = _tint_covered(small, self.covered)
                if corners is not None:
                    for x, y in corners:
                        cv2.circle(small, (int(round(x)), int(round(y))), 4, (0, 220, 0), -1, cv2.LINE_AA)
                self.frameReady.emit(bgr_to_qimage(small), corners is not None, int(frame.index))
                t_next += period
                time.sleep(max(0.0, t_next - time.perf_counter()))
        except Exception as e:  # noqa: BLE001
            log.error("board camera failed:\n%s", traceback.format_exc())
            why = f"the camera failed ({type(e).__name__}: {e})"
        finally:
            src.close()
        self.stopped.emit(why)


def _tint_covered(img: np.ndarray, covered: np.ndarray | None) -> np.ndarray:
    """A copy of ``img`` with the image regions (3 x 3) that captured views already cover tinted green, and those
    still empty outlined in amber (where to hold the board next)."""
    import cv2
    out = img.copy()     # always a copy: at 640 px or less ``img`` is the frame *Capture view* saves
    if covered is None or not np.any(covered):
        return out
    h, w = out.shape[:2]
    for r in range(3):
        for c in range(3):
            y0, y1, x0, x1 = r * h // 3, (r + 1) * h // 3, c * w // 3, (c + 1) * w // 3
            if covered[r, c]:
                cell = out[y0:y1, x0:x1]
                cv2.addWeighted(cell, 0.75, np.full_like(cell, (60, 180, 60)), 0.25, 0.0, dst=cell)
            else:
                cv2.rectangle(out, (x0 + 2, y0 + 2), (x1 - 3, y1 - 3), (0, 170, 255), 2, cv2.LINE_AA)
    return out


def board_capture_dir() -> Path:
    """Where views captured from the live camera are kept (a new folder per dialog), so none is lost."""
    from mocap_app.recorder import default_data_dir
    return default_data_dir() / "boards" / _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


class CalibrationDialog(QDialog):
    """Edit / create a camera profile. ``profile()`` is the result when accepted."""

    profileChanged = Signal(object)      # CameraProfile or None
    runFinished = Signal(object)         # CheckerboardResult / AutoFocalResult, on the UI thread
    runFailed = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, size_wh: tuple[int, int] = (1920, 1080),
                 profile: CameraProfile | None = None, lifter_factory: Callable[[], object] | None = None):
        super().__init__(parent)
        self.setWindowTitle("Camera calibration")
        self.pool = QThreadPool.globalInstance()
        self._lifter_factory = lifter_factory
        self._profile: CameraProfile | None = None
        self._override: CameraProfile | None = None   # a loaded / calibrated profile, kept exactly until edited
        self._jobs: list[Job] = []
        self._take = None                  # (label, Clip): a take the app holds, used while auto_path shows label
        self._open_camera: Callable[[], object] | None = None   # the app's camera, for the checkerboard tab
        self.board_camera: BoardCamera | None = None
        self._capture_dir: Path | None = None
        self._captured = 0
        self._live_views: list = []        # ViewDetection of each captured view (rough corners), for live coverage

        # preview
        self.preview = QLabel("no camera image")
        self.preview.setAlignment(Qt.AlignCenter)
        self.preview.setMinimumSize(320, 240)
        self.preview.setStyleSheet("background:#202020;color:#aaa;border:1px solid #444")
        self.imported_placement = None     # CameraPlacement from a loaded scene calibration
        self._frame: QImage | None = None          # the last frame given to the preview, as it came
        self._shown: QImage | None = None          # what the preview shows (undistorted when asked)
        self.undistort_check = QCheckBox("Show without lens distortion")
        self.undistort_check.setEnabled(False)
        self.undistort_check.setToolTip("The preview through the camera model's lens correction, as the 3D engines "
                                        "see the camera: straight edges in the room should look straight. Needs a "
                                        "model with lens distortion (from a checkerboard or a loaded profile).")
        self.undistort_check.toggled.connect(lambda _on: self._render_preview())

        # common fields
        self.name_edit = QLineEdit("camera")
        self.width_spin = QSpinBox(maximum=20000, minimum=0, value=size_wh[0])
        self.height_spin = QSpinBox(maximum=20000, minimum=0, value=size_wh[1])
        self.width_spin.setSuffix(" px")
        self.height_spin.setSuffix(" px")

        self.tabs = QTabWidget()
        self.tabs.addTab(self._manual_tab(), "By hand")
        self.tabs.addTab(self._checker_tab(), "Checkerboard")
        self.tabs.addTab(self._auto_tab(), "From a person")

        # result
        self.result_label = QLabel()
        self.result_label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setStyleSheet("color:#c62828")
        res = QGroupBox("Result")
        rl = QVBoxLayout(res)
        rl.addWidget(self.result_label)
        rl.addWidget(self.message)
        self.placement_check = QCheckBox()     # shown for a scene calibration that says where the camera stands
        self.placement_check.setChecked(True)
        self.placement_check.setToolTip("Pitch, roll and lens height from the file's scene calibration (Z up, floor "
                                        "at 0), used for world alignment instead of estimating them from the "
                                        "person. Untick if the camera has moved since.")
        self.placement_check.hide()
        rl.addWidget(self.placement_check)

        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.save_button = self.buttons.addButton("Save profile...", QDialogButtonBox.ActionRole)
        self.load_button = self.buttons.addButton("Load profile...", QDialogButtonBox.ActionRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        self.save_button.clicked.connect(lambda: self._ask_path(save=True))
        self.load_button.clicked.connect(lambda: self._ask_path(save=False))

        top = QFormLayout()
        top.addRow("Camera name", self.name_edit)
        sz = QHBoxLayout()
        sz.addWidget(self.width_spin)
        sz.addWidget(QLabel("x"))
        sz.addWidget(self.height_spin)
        top.addRow("Image size", sz)
        right = QVBoxLayout()
        right.addLayout(top)
        right.addWidget(self.tabs)
        right.addWidget(res)
        left = QVBoxLayout()
        left.addWidget(self.preview, 1)
        left.addWidget(self.undistort_check)
        body = QHBoxLayout()
        body.addLayout(left, 3)
        body.addLayout(right, 2)
        outer = QVBoxLayout(self)
        outer.addLayout(body)
        outer.addWidget(self.buttons)

        for w in (self.width_spin, self.height_spin, self.value_spin):
            w.valueChanged.connect(self._on_edit)
        for w in (self.mode_combo, self.axis_combo, self.preset_combo):
            w.currentIndexChanged.connect(self._on_edit)
        self.name_edit.textChanged.connect(self._revalidate)
        if profile is not None:
            self.set_profile(profile)
        else:
            self._revalidate()

    # -- tabs ---------------------------------------------------------------------------------
    def _manual_tab(self) -> QWidget:
        w = QWidget()
        f = QFormLayout(w)
        self.mode_combo = QComboBox()
        self.mode_combo.addItems(MODES)
        self.value_spin = QDoubleSpinBox(decimals=2, minimum=-1e6, maximum=1e6, value=1000.0)
        self.axis_combo = QComboBox()
        self.axis_combo.addItems(FOV_AXES)
        self.preset_combo = QComboBox()
        for p in PRESETS:
            self.preset_combo.addItem(p.label, p.key)
        self.preset_source = QLabel()
        self.preset_source.setWordWrap(True)
        self.preset_source.setStyleSheet("color:#666")
        f.addRow("Enter", self.mode_combo)
        f.addRow("Value", self.value_spin)
        f.addRow("FOV across", self.axis_combo)
        f.addRow("Preset", self.preset_combo)
        f.addRow(self.preset_source)
        return w

    def _checker_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        self.image_list = QListWidget()
        self.image_list.currentItemChanged.connect(lambda item, _prev: self._show_listed_image(item))
        add = QPushButton("Add images / videos...")
        add.clicked.connect(self._add_images)
        clear = QPushButton("Clear")
        clear.clicked.connect(self.clear_images)
        hb = QHBoxLayout()
        hb.addWidget(add)
        hb.addWidget(clear)
        f = QFormLayout()
        self.cols_spin = QSpinBox(minimum=2, maximum=40, value=9)
        self.rows_spin = QSpinBox(minimum=2, maximum=40, value=6)
        self.square_spin = QDoubleSpinBox(decimals=1, minimum=1.0, maximum=1000.0, value=25.0, suffix=" mm")
        self.charuco_check = QCheckBox("ChArUco board (counts are squares)")
        # a ChArUco board is found only with its own dictionary, marker size and layout (as printed on it or in
        # the generator's settings)
        from mocap_app.calibration.checkerboard import charuco_dictionaries
        self.dict_combo = QComboBox()
        self.dict_combo.addItems(charuco_dictionaries())
        self.dict_combo.setCurrentText("DICT_5X5_100")
        self.marker_spin = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=999.0, value=0.0, suffix=" mm")
        self.marker_spin.setSpecialValueText("0.75 x square")
        self.marker_spin.setToolTip("Side of one ArUco marker; 0 = three quarters of the square")
        self.legacy_check = QCheckBox("legacy layout")
        self.legacy_check.setToolTip("OpenCV's ChArUco layout before 4.6: boards with an even number of rows printed "
                                     "by older generators start with the other square colour. Tick this if such a "
                                     "board is not found.")
        for field_ in (self.cols_spin, self.rows_spin, self.square_spin, self.marker_spin):
            field_.valueChanged.connect(self._on_board_fields)
        self.dict_combo.currentTextChanged.connect(self._on_board_fields)
        for box in (self.charuco_check, self.legacy_check):
            box.toggled.connect(self._on_board_fields)
        self.charuco_check.toggled.connect(self._show_charuco_fields)
        pat = QHBoxLayout()
        pat.addWidget(self.cols_spin)
        pat.addWidget(QLabel("x"))
        pat.addWidget(self.rows_spin)
        self.pattern_label = QLabel("Inner corners")
        f.addRow(self.pattern_label, pat)
        f.addRow("Square", self.square_spin)
        f.addRow(self.charuco_check)
        self.fisheye_check = QCheckBox("Fisheye lens (action cameras, 120 deg and wider)")
        self.fisheye_check.setToolTip("Fit OpenCV's fisheye lens model instead of the standard one: for GoPro-like "
                                      "cameras whose wide field the standard model cannot follow to the corners")
        f.addRow(self.fisheye_check)
        aruco = QHBoxLayout()
        aruco.addWidget(self.dict_combo)
        aruco.addWidget(QLabel("marker"))
        aruco.addWidget(self.marker_spin)
        aruco.addWidget(self.legacy_check)
        self.charuco_row = QWidget()
        self.charuco_row.setLayout(aruco)
        aruco.setContentsMargins(0, 0, 0, 0)
        f.addRow(self.charuco_row)
        self.charuco_row.setVisible(False)
        self.camera_button = QPushButton("Start camera")
        self.camera_button.setEnabled(False)
        self.camera_button.setToolTip("Show the board to the camera: near and far, in every part of the image, "
                                      "tilted left/right and up/down")
        self.camera_button.clicked.connect(self.toggle_camera)
        self.capture_button = QPushButton("Capture view")
        self.capture_button.setEnabled(False)
        self.capture_button.clicked.connect(self.capture_view)
        self.camera_info = QLabel("No camera selected in the app: add images of the board instead.")
        self.camera_info.setWordWrap(True)
        self.coverage_info = QLabel()      # what the captured views still lack, updated at every capture
        self.coverage_info.setWordWrap(True)
        self.coverage_info.hide()
        cam = QHBoxLayout()
        cam.addWidget(self.camera_button)
        cam.addWidget(self.capture_button)
        self.calib_button = QPushButton("Calibrate")
        self.calib_button.clicked.connect(self.start_checkerboard)
        self.checker_progress = QProgressBar()
        self.checker_info = QLabel()
        self.checker_info.setWordWrap(True)
        v.addLayout(f)
        v.addLayout(cam)
        v.addWidget(self.camera_info)
        v.addWidget(self.coverage_info)
        v.addWidget(self.image_list)
        v.addLayout(hb)
        v.addWidget(self.calib_button)
        v.addWidget(self.checker_progress)
        v.addWidget(self.checker_info)
        return w

    def _auto_tab(self) -> QWidget:
        w = QWidget()
        v = QVBoxLayout(w)
        v.addWidget(QLabel("A video (or processed clip) in which one person walks around, whole body visible,\n"
                           "towards / away from the camera and across the image."))
        self.auto_path = QLineEdit()
        self.auto_path.setPlaceholderText("video or clip.json")
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse_auto)
        self.auto_path.textEdited.connect(lambda _t: setattr(self, "_take", None))
        hb = QHBoxLayout()
        hb.addWidget(self.auto_path)
        hb.addWidget(browse)
        # more takes of the same camera: each is estimated, the answer is their geometric mean (combine_takes)
        self._more_takes: list[Path] = []
        self.more_takes_label = QLabel("One take. More takes of this camera help a little.")
        self.more_takes_label.setWordWrap(True)
        more = QPushButton("Add takes...")
        more.setToolTip("Other videos or clips from the same camera at the same image size")
        more.clicked.connect(self._browse_more_takes)
        self.clear_takes_button = QPushButton("Remove them")
        self.clear_takes_button.clicked.connect(lambda: self.set_more_takes([]))
        self.clear_takes_button.setEnabled(False)
        hb2 = QHBoxLayout()
        hb2.addWidget(self.more_takes_label, 1)
        hb2.addWidget(more)
        hb2.addWidget(self.clear_takes_button)
        self.auto_button = QPushButton("Estimate focal length")
        self.auto_button.clicked.connect(self.start_auto)
        self.auto_progress = QProgressBar()
        self.auto_info = QLabel()
        self.auto_info.setWordWrap(True)
        v.addLayout(hb)
        v.addLayout(hb2)
        v.addWidget(self.auto_button)
        v.addWidget(self.auto_progress)
        v.addWidget(self.auto_info)
        v.addStretch(1)
        return w

    # -- preview --------------------------------------------------------------------------------
    @Slot(QImage)
    def set_frame(self, image: QImage) -> None:
        """Show a camera frame (connect a capture worker's frame signal here)."""
        if image.isNull():
            return
        self._frame = image
        self._render_preview()

    def preview_image(self) -> QImage | None:
        """The image the preview shows (before it is scaled to the widget)."""
        return self._shown

    def _render_preview(self) -> None:
        image = self._frame
        if image is None:
            return
        prof = self._profile
        if self.undistort_check.isChecked() and prof is not None and prof.has_distortion:
            from engines.camera import undistort_image
            from mocap_app.ui.widgets import bgr_to_qimage, qimage_to_bgr
            try:   # the model scaled to the preview's size (the live preview is a smaller copy of the frame)
                intr = prof.intrinsics(image.width(), image.height())
            except CalibrationError as e:
                self.undistort_check.setToolTip(f"Not for this image: {e}")
            else:
                image = bgr_to_qimage(undistort_image(qimage_to_bgr(image), intr))
        self._shown = image
        self.preview.setPixmap(QPixmap.fromImage(image).scaled(self.preview.size(), Qt.KeepAspectRatio,
                                                               Qt.SmoothTransformation))

    # -- validation -----------------------------------------------------------------------------
    def _on_edit(self) -> None:
        self._override = None              # a hand edit replaces whatever was loaded or calibrated
        self._revalidate()

    def _manual_kwargs(self) -> dict:
        mode = self.mode_combo.currentIndex()
        v = self.value_spin.value()
        self.value_spin.setEnabled(mode != 3)
        self.axis_combo.setEnabled(mode == 1)
        self.preset_combo.setEnabled(mode == 3)
        self.preset_source.setText(PRESETS[self.preset_combo.currentIndex()].source if mode == 3 else "")
        return [dict(focal_px=v), dict(fov_deg=v, fov_axis=self.axis_combo.currentText()),
                dict(focal_35mm=v), dict(preset=self.preset_combo.currentData())][mode]

    def _revalidate(self) -> None:
        try:
            w, h = self.width_spin.value(), self.height_spin.value()
            kwargs = self._manual_kwargs()
            if self._override is not None:
                prof = dataclasses.replace(self._override, name=self.name_edit.text())
            else:
                intr, source = intrinsics_from_manual(w, h, **kwargs)
                prof = CameraProfile.from_intrinsics(self.name_edit.text(), intr, source)
        except (CalibrationError, ValueError) as e:
            self._profile = None
            self.message.setText(str(e))
            self.result_label.setText("-")
        else:
            self._profile = prof
            self.message.setText("")
            fov = prof.fov_deg
            lens = prof.lens_summary()
            self.result_label.setText(f"focal length {prof.fx_px:.1f} px\nFOV {fov['horizontal']:.1f} (h) x "
                                      f"{fov['vertical']:.1f} (v) deg, {fov['diagonal']:.1f} diagonal\n"
                                      f"source: {prof.source}" + (f"\n{lens}" if lens else ""))
        self.buttons.button(QDialogButtonBox.Ok).setEnabled(self._profile is not None)
        self.save_button.setEnabled(self._profile is not None)
        lens = self._profile is not None and self._profile.has_distortion
        self.undistort_check.setEnabled(lens)
        if not lens:
            self.undistort_check.setChecked(False)
        self._render_preview()
        self.profileChanged.emit(self._profile)

    # -- profile I/O ------------------------------------------------------------------------------
    def profile(self) -> CameraProfile | None:
        return self._profile

    def set_profile(self, prof: CameraProfile) -> None:
        """Show ``prof``; it is kept exactly (fy, principal point, distortion too) until a field is edited."""
        for w in (self.width_spin, self.height_spin, self.value_spin, self.mode_combo):
            w.blockSignals(True)
        self.name_edit.blockSignals(True)
        self.name_edit.setText(prof.name)
        self.width_spin.setValue(prof.width_px)
        self.height_spin.setValue(prof.height_px)
        self.mode_combo.setCurrentIndex(0)
        self.value_spin.setValue(prof.fx_px)
        for w in (self.width_spin, self.height_spin, self.value_spin, self.mode_combo, self.name_edit):
            w.blockSignals(False)
        self._override = prof
        self._revalidate()

    def save_profile(self, path: str | Path) -> Path:
        if self._profile is None:
            raise CalibrationError(self.message.text() or "nothing valid to save")
        return self._profile.save(path)

    def load_profile(self, path: str | Path, camera: str | None = None) -> CameraProfile | None:
        """A profile, or a camera from another tool's calibration file (``importers``): with several cameras in the
        file and no ``camera``, the user picks one. A scene calibration's placement is kept in
        ``imported_placement`` (the main window offers it). None if the user cancels the choice."""
        from PySide6.QtWidgets import QInputDialog

        from mocap_app.calibration.importers import import_camera, read_cameras
        cams = read_cameras(path)
        if camera is None and len(cams) > 1:
            names = [c.profile.name for c in cams]
            camera, ok = QInputDialog.getItem(self, "Which camera?", f"{Path(path).name} holds {len(cams)} cameras:",
                                              names, 0, False)
            if not ok:
                return None
        cam = import_camera(path, camera)
        self.imported_placement = cam.placement
        if cam.placement is not None:
            pl = cam.placement
            self.placement_check.setText(f"Also use where it stands: pitch {pl.pitch_deg:+.1f} deg, roll "
                                         f"{pl.roll_deg:+.1f} deg, lens {pl.camera_height_m:.2f} m up")
        self.placement_check.setVisible(cam.placement is not None)
        self.set_profile(cam.profile)
        return cam.profile

    def placement_to_use(self):
        """The loaded scene calibration's ``CameraPlacement`` if the user keeps it ticked, else None."""
        return self.imported_placement if self.placement_check.isChecked() else None

    def _ask_path(self, save: bool) -> None:
        folder = str(default_profile_dir())
        try:
            if save:
                path, _ = QFileDialog.getSaveFileName(self, "Save camera profile",
                                                      str(Path(folder) / f"{self.name_edit.text()}.json"),
                                                      "Camera profile (*.json)")
                if path:
                    Path(path).parent.mkdir(parents=True, exist_ok=True)
                    self.save_profile(path)
            else:
                path, _ = QFileDialog.getOpenFileName(
                    self, "Load camera profile", folder,
                    "Camera profile or calibration (*.json *.toml *.yml *.yaml *.xml);;All files (*)")
                if path:
                    self.load_profile(path)
        except (CalibrationError, OSError) as e:
            self.message.setText(str(e))

    # -- background runs ------------------------------------------------------------------------
    def _add_images(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Checkerboard images or videos", "",
                                                "Images or videos (*.png *.jpg *.jpeg *.bmp *.mp4 *.mov *.avi *.mkv)")
        self.add_images(files)

    def _show_listed_image(self, item) -> None:
        """A board photo picked in the list goes to the preview (unless the camera is feeding it): to see which
        view a number belongs to, and it without the lens distortion."""
        if item is None or self.board_camera is not None:
            return
        import cv2

        from mocap_app.ui.widgets import bgr_to_qimage
        img = cv2.imread(str(item.data(Qt.UserRole)))        # None for a video or an unreadable file
        if img is None:
            return
        scale = min(1.0, 2 * PREVIEW_MAX_PX / max(img.shape[:2]))
        if scale < 1.0:
            img = cv2.resize(img, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        self.set_frame(bgr_to_qimage(img))

    def add_images(self, files) -> None:
        for f in files:
            item = QListWidgetItem(Path(f).name)
            item.setToolTip(str(f))
            item.setData(Qt.UserRole, str(f))
            self.image_list.addItem(item)

    def _mark_views(self, res) -> None:
        """Beside each image, its reprojection error or why it was not used (a video: how many of its views were);
        what a user needs to retake or drop a bad view."""
        for i in range(self.image_list.count()):
            item = self.image_list.item(i)
            name = Path(item.data(Qt.UserRole)).name
            if name in res.per_view_rms_px:
                text, bad = f"{res.per_view_rms_px[name]:.2f} px", False
            elif name in res.rejected:
                text, bad = f"not used: {res.rejected[name]}", True
            else:   # a video: its views are named "<file>@<time>s"
                used = sum(k.startswith(name + "@") for k in res.per_view_rms_px)
                dropped = sum(k.startswith(name + "@") for k in res.rejected)
                text, bad = f"{used} views used" + (f", {dropped} not" if dropped else ""), used == 0
            item.setText(f"{name}  ·  {text}")
            item.setToolTip(f"{item.data(Qt.UserRole)}\n{text}")
            item.setForeground(QColor("#c62828") if bad else self.image_list.palette().text().color())

    def set_auto_input(self, source) -> None:
        """Preset the "From a person" input: a video / clip path, or a ``Clip`` in memory (a take the app just
        recorded or opened, used as it is, without running the 2D detector again)."""
        if source is None:
            return
        if isinstance(source, (str, Path)):
            self._take = None
            self.auto_path.setText(str(source))
            return
        name = source.source.get("path") if isinstance(source.source, dict) else None
        label = f"the current take ({len(source)} frames{', ' + Path(str(name)).name if name else ''})"
        self._take = (label, source)
        self.auto_path.setText(label)

    # -- live camera for the checkerboard ---------------------------------------------------------
    def set_camera(self, open_source: Callable[[], object] | None, busy: str = "") -> None:
        """Offer the app's camera in the checkerboard tab: ``open_source()`` returns a ``VideoSource``. ``busy``: why
        it cannot be used now (e.g. the pipeline holds it)."""
        self._open_camera = open_source
        self.camera_button.setEnabled(open_source is not None and not busy)
        self.camera_info.setText(busy or ("Start the camera and show it the board; capture 10-20 views, near and "
                                          "far, across the whole image and tilted, then Calibrate."
                                          if open_source is not None else self.camera_info.text()))

    def _spec_args(self) -> dict:
        """The board as the fields describe it: ``BoardSpec(**args)`` (which may reject it)."""
        args = dict(cols=self.cols_spin.value(), rows=self.rows_spin.value(), square_mm=self.square_spin.value(),
                    kind="charuco" if self.charuco_check.isChecked() else "chessboard")
        if args["kind"] == "charuco":
            args.update(dictionary=self.dict_combo.currentText(), marker_mm=self.marker_spin.value() or None,
                        legacy=self.legacy_check.isChecked())
        return args

    def board_fields(self) -> dict:
        """The board fields, to remember between sessions (``set_board_fields`` takes them back)."""
        return self._spec_args()

    def set_board_fields(self, d: dict | None) -> None:
        """Fill the board fields from ``board_fields()``'s dict; missing or unusable values are left as they are."""
        from mocap_app.ui.widgets import set_spin_values
        d = d or {}
        if "kind" in d:
            self.charuco_check.setChecked(d["kind"] == "charuco")
        set_spin_values({"cols": self.cols_spin, "rows": self.rows_spin, "square_mm": self.square_spin,
                         "marker_mm": self.marker_spin}, d)
        if d.get("dictionary") and self.dict_combo.findText(str(d["dictionary"])) >= 0:
            self.dict_combo.setCurrentText(str(d["dictionary"]))
        if "legacy" in d:
            self.legacy_check.setChecked(bool(d["legacy"]))

    def _show_charuco_fields(self, on: bool) -> None:
        self.charuco_row.setVisible(on)
        self.pattern_label.setText("Squares" if on else "Inner corners")   # what OpenCV counts for each board

    def _live_spec(self):
        """The board for the live preview, or None while the fields do not make one."""
        from mocap_app.calibration.checkerboard import BoardSpec
        try:
            return BoardSpec(**self._spec_args())
        except (CalibrationError, ValueError):
            return None

    def _on_board_fields(self) -> None:
        if self.board_camera is not None:
            self.board_camera.spec = self._live_spec()

    def toggle_camera(self) -> None:
        if self.board_camera is not None:
            self.stop_camera()
            return
        if self._open_camera is None:
            return
        self.board_camera = BoardCamera(self._open_camera, self._live_spec(), self)
        self.board_camera.frameReady.connect(self._on_board_frame)
        self.board_camera.stopped.connect(self._on_camera_stopped)
        self.camera_button.setText("Stop camera")
        self.camera_info.setStyleSheet("")
        self.camera_info.setText("Looking for the board...")
        self.board_camera.start()

    def stop_camera(self) -> None:
        cam, self.board_camera = self.board_camera, None
        if cam is not None:
            cam.frameReady.disconnect(self._on_board_frame)
            cam.stop()
        self.camera_button.setText("Start camera")
        self.capture_button.setEnabled(False)

    @Slot(QImage, bool, int)
    def _on_board_frame(self, image: QImage, found: bool, _index: int) -> None:
        self.set_frame(image)
        self.capture_button.setEnabled(found)
        self.camera_info.setText(f"{'Board found' if found else 'No board in view'}; {self._captured} views "
                                 "captured (10-20 from different places and tilts work best).")

    @Slot(str)
    def _on_camera_stopped(self, why: str) -> None:
        if self.sender() is not self.board_camera:
            return
        self.stop_camera()
        if why:
            self.camera_info.setStyleSheet("color:#c62828")
            self.camera_info.setText(why[:1].upper() + why[1:] + f"; {self._captured} views captured.")

    def capture_view(self) -> Path | None:
        """Save the newest frame (full size) to the capture folder and add it to the images; None if no board."""
        import cv2
        latest = self.board_camera.latest() if self.board_camera is not None else None
        if latest is None or latest[1] is None:
            return None
        if self._capture_dir is None:
            self._capture_dir = board_capture_dir()
        path = self._capture_dir / f"view_{self._captured + 1:02d}.png"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if not cv2.imwrite(str(path), latest[0]):
                raise OSError("the image could not be written")
        except OSError as e:
            self.camera_info.setStyleSheet("color:#c62828")
            self.camera_info.setText(f"Cannot save the view to {path.parent} ({e}).")
            return None
        self._captured += 1
        self.add_images([path])
        self._live_views.append(latest[1])
        self._update_coverage(latest[0].shape[1::-1])
        return path

    def _update_coverage(self, size_wh: tuple[int, int]) -> None:
        """Say what the captured views still lack (regions, tilts, count) and tint the covered regions live."""
        from mocap_app.calibration.checkerboard import live_coverage
        if not self._live_views:
            self.coverage_info.hide()
            if self.board_camera is not None:
                self.board_camera.covered = None
            return
        cov = live_coverage(self._live_views, size_wh)
        if self.board_camera is not None:
            self.board_camera.covered = cov.grid_counts.copy()
        n = len(self._live_views)
        self.coverage_info.setStyleSheet("" if cov.complete else "color:#8a6d00")
        self.coverage_info.setText(
            f"{n} views cover the image and the tilts well: Calibrate." if cov.complete else
            f"{n} views so far (in the preview: green = covered, amber = hold the board there next). Still to do:\n"
            + "\n".join(f"- {a}" for a in cov.advice))
        self.coverage_info.show()

    def clear_images(self) -> None:
        self.image_list.clear()
        self._live_views.clear()
        self._update_coverage((0, 0))

    def done(self, result: int) -> None:   # OK, Cancel and closing all end here: release the camera
        self.stop_camera()
        super().done(result)

    def _browse_auto(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Video or clip", "", "Video or clip (*.mp4 *.mov *.avi *.mkv *.json)")
        if path:
            self.set_auto_input(path)

    def _start(self, job: Job, button: QPushButton, bar: QProgressBar, info: QLabel, done) -> Job:
        button.setEnabled(False)
        bar.setValue(0)
        info.setText("working...")
        job.signals.progress.connect(lambda x: bar.setValue(int(100 * x)))

        def finished(res):
            button.setEnabled(True)
            bar.setValue(100)
            done(res)
            self.runFinished.emit(res)

        def failed(msg):
            button.setEnabled(True)
            info.setText(msg)
            info.setStyleSheet("color:#c62828")
            self.runFailed.emit(msg)

        job.signals.finished.connect(finished)
        job.signals.failed.connect(failed)
        job.setAutoDelete(False)
        self._jobs.append(job)
        self.pool.start(job)
        return job

    def start_checkerboard(self) -> Job:
        from mocap_app.calibration.checkerboard import BoardSpec, calibrate
        files = [self.image_list.item(i).data(Qt.UserRole) for i in range(self.image_list.count())]
        spec_args = self._spec_args()
        fisheye = self.fisheye_check.isChecked()

        def work(progress):
            if not files:
                raise CalibrationError("add some images of the board first")
            spec = BoardSpec(**spec_args)
            return calibrate(files, spec, fisheye=fisheye, progress=lambda i, n, name: progress(0.9 * i / max(n, 1)))

        def done(res):
            self.checker_info.setStyleSheet("")
            tips = "\n".join(f"- {t}" for t in res.coverage.advice)
            self.checker_info.setText(f"{len(res.used)} images used, RMS reprojection error {res.rms_px:.2f} px"
                                      + (f"\n{tips}" if tips else ""))
            self._mark_views(res)
            self.set_profile(res.profile(self.name_edit.text()))

        return self._start(Job(work), self.calib_button, self.checker_progress, self.checker_info, done)

    def set_more_takes(self, paths) -> None:
        """Other takes of the same camera, estimated with the main input and combined (``combine_takes``)."""
        self._more_takes = [Path(p) for p in paths]
        n = len(self._more_takes)
        self.more_takes_label.setText("One take. More takes of this camera help a little." if not n else
                                      f"and {n} more take{'s' if n > 1 else ''}: "
                                      + ", ".join(p.name for p in self._more_takes))
        self.clear_takes_button.setEnabled(bool(n))

    def _browse_more_takes(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "More takes of this camera", "",
                                                "Video or clip (*.mp4 *.mov *.avi *.mkv *.json)")
        if paths:
            self.set_more_takes([*self._more_takes, *paths])

    def start_auto(self) -> Job:
        from mocap_app.calibration.autofocal import combine_takes, estimate_focal
        from mocap_app.calibration.cli import _keypoints_from_input, keypoints_from_clip
        text = self.auto_path.text().strip()
        take = self._take[1] if self._take is not None and text == self._take[0] else None
        path = Path(text)
        more = list(self._more_takes)
        factory = self._lifter_factory

        def work(progress):
            if take is None and not text:
                raise CalibrationError("choose a video or a processed clip of a person first")
            for p in ([] if take is not None else [path]) + more:
                if not p.exists():
                    raise CalibrationError(f"file not found: {p}")
            if factory is not None:
                lifter = factory()
            else:
                from mocap_app.calibration.autofocal import load_autofocal_lifter
                try:
                    lifter = load_autofocal_lifter("auto")
                except FileNotFoundError as e:
                    raise CalibrationError(f"cannot load the 3D lifter: {e}") from None
            inputs = [take if take is not None else path, *more]
            results, n = [], len(inputs)
            for k, item in enumerate(inputs):
                kp, conf, size = (keypoints_from_clip(item) if not isinstance(item, Path)
                                  else _keypoints_from_input(item, 600, 2))
                progress((k + 0.3) / n)
                results.append(estimate_focal(kp, conf, size, lifter,
                                              progress=lambda x, k=k: progress((k + 0.3 + 0.7 * x) / n)))
            return combine_takes(results)

        def done(res):
            ok = res.reliable
            self.auto_info.setStyleSheet("" if ok else "color:#c62828")
            self.auto_info.setText(f"{res.focal_px:.0f} px, confidence {res.confidence:.2f}: {res.reason}")
            p = res.profile(self.name_edit.text())
            self.set_profile(p)

        return self._start(Job(work), self.auto_button, self.auto_progress, self.auto_info, done)


def _demo() -> int:   # pragma: no cover - manual check: python -m mocap_app.calibration.dialog
    import sys
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv)
    d = CalibrationDialog()
    d.show()
    return app.exec()


if __name__ == "__main__":   # pragma: no cover
    raise SystemExit(_demo())
