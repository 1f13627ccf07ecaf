"""Camera ▸ Camera placement: the pitch, roll and height the user knows (a bubble level, a tape measure).

Each value is either ticked and typed, or left to the estimate from the person (``mocap_app.world``). The dialog
shows what the current take's estimate says beside each field, so a user can keep the estimate, or correct it.
*Measure with a board on the floor* fills all three from one image of a calibration board lying flat on the floor
(``mocap_app.calibration.floor``), off the UI thread.
"""
from __future__ import annotations

import threading
from typing import Callable

import numpy as np
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QPushButton, QSpinBox, QVBoxLayout)

from mocap_app.world import MAX_CAMERA_HEIGHT_M, MAX_PITCH_DEG, MAX_ROLL_DEG, CameraPlacement

FIELDS = (  # (attribute, label, unit, min, max, default, decimals)
    ("pitch_deg", "Pitch (tilt; negative = looking down)", " deg", -MAX_PITCH_DEG, MAX_PITCH_DEG, 0.0, 1),
    ("roll_deg", "Roll (positive = turned clockwise)", " deg", -MAX_ROLL_DEG, MAX_ROLL_DEG, 0.0, 1),
    ("camera_height_m", "Height of the lens above the floor", " m", 0.05, MAX_CAMERA_HEIGHT_M - 0.01, 1.5, 2),
)


class PlacementDialog(QDialog):
    """``placement()`` is the result; ``estimate`` (a ``WorldAlignment.to_dict()``) is shown for reference.
    ``camera(w, h) -> (CameraIntrinsics, description)`` gives the app's camera model for a board image (raises
    ``ValueError`` with a sentence when there is none); ``frame`` (BGR) is the app's current frame, offered as the
    board image."""

    boardDone = Signal(object, str)      # FloorBoardResult (or None), an error sentence

    def __init__(self, parent=None, placement: CameraPlacement | None = None, estimate: dict | None = None,
                 camera: Callable | None = None, frame: np.ndarray | None = None):
        super().__init__(parent)
        self._camera, self._frame = camera, frame
        self._board_thread: threading.Thread | None = None
        self.board_measured = False           # a board was measured (its fields are then worth remembering)
        self.boardDone.connect(self._on_board_done)
        self.setWindowTitle("Camera placement")
        placement = placement or CameraPlacement()
        est = dict(estimate or {})
        if "camera_height_mm" in est:
            est["camera_height_m"] = est["camera_height_mm"] / 1000.0
        intro = QLabel("Tick what you know of where the camera stands (a bubble level, a tape measure). Anything "
                       "left unticked is estimated from the person: the upright body and the feet on the floor.")
        intro.setWordWrap(True)
        form = QFormLayout()
        self.checks: dict[str, QCheckBox] = {}
        self.spins: dict[str, QDoubleSpinBox] = {}
        self.estimates: dict[str, QLabel] = {}
        for attr, label, unit, lo, hi, default, dec in FIELDS:
            value = getattr(placement, attr)
            check = QCheckBox(label)
            check.setChecked(value is not None)
            spin = QDoubleSpinBox(decimals=dec, minimum=lo, maximum=hi, suffix=unit)
            seen = est.get(attr)
            spin.setValue(value if value is not None else seen if seen is not None else default)
            spin.setEnabled(value is not None)
            check.toggled.connect(spin.setEnabled)
            note = QLabel(f"this take: {seen:.{dec}f}{unit}" if seen is not None else "")
            note.setStyleSheet("color:#666")
            row = QHBoxLayout()
            row.addWidget(spin)
            row.addWidget(note)
            form.addRow(check, row)
            self.checks[attr], self.spins[attr], self.estimates[attr] = check, spin, note
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel | QDialogButtonBox.Reset)
        buttons.button(QDialogButtonBox.Reset).setText("Estimate all")
        buttons.button(QDialogButtonBox.Reset).clicked.connect(lambda: [c.setChecked(False)
                                                                        for c in self.checks.values()])
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.buttons = buttons
        lay = QVBoxLayout(self)
        lay.addWidget(intro)
        lay.addLayout(form)
        lay.addWidget(self._board_box())
        if estimate:
            src = QLabel(f"The take's world frame came from: {estimate.get('method', '?')}.")
            src.setWordWrap(True)
            src.setStyleSheet("color:#666")
            lay.addWidget(src)
        lay.addWidget(buttons)

    # -- a board on the floor -------------------------------------------------------------------------
    def _board_box(self) -> QGroupBox:
        box = QGroupBox("Measure with a board on the floor")
        self.board_cols = QSpinBox(minimum=2, maximum=40, value=9)
        self.board_rows = QSpinBox(minimum=2, maximum=40, value=6)
        self.board_square = QDoubleSpinBox(decimals=1, minimum=1.0, maximum=1000.0, value=25.0, suffix=" mm")
        self.board_thickness = QDoubleSpinBox(decimals=1, minimum=0.0, maximum=199.0, value=0.0, suffix=" mm")
        self.board_thickness.setToolTip("How far the board's face is above the floor (a board on a plate)")
        self.board_image_button = QPushButton("Image...")
        self.board_image_button.setToolTip("A photo or video from this camera, where it stands, with a chessboard "
                                           "lying flat on the floor in view")
        self.board_image_button.clicked.connect(self._pick_board_image)
        self.board_frame_button = QPushButton("Current frame")
        self.board_frame_button.setEnabled(self._frame is not None)
        self.board_frame_button.clicked.connect(lambda: self.measure_board(self._frame))
        self.board_info = QLabel("Lay a chessboard flat on the floor in view of the camera: pitch, roll and height "
                                 "to a fraction of a degree and a centimetre (the camera must be calibrated).")
        self.board_info.setWordWrap(True)
        pattern = QHBoxLayout()
        for w in (QLabel("inner corners"), self.board_cols, QLabel("x"), self.board_rows, QLabel("square"),
                  self.board_square, QLabel("thickness"), self.board_thickness):
            pattern.addWidget(w)
        go = QHBoxLayout()
        go.addWidget(self.board_image_button)
        go.addWidget(self.board_frame_button)
        go.addStretch(1)
        v = QVBoxLayout(box)
        v.addLayout(pattern)
        v.addLayout(go)
        v.addWidget(self.board_info)
        return box

    def board_fields(self) -> dict:
        """The chessboard fields, as the calibration dialog's ``board_fields`` (to remember them)."""
        return dict(cols=self.board_cols.value(), rows=self.board_rows.value(), square_mm=self.board_square.value(),
                    kind="chessboard")

    def set_board_fields(self, d: dict | None) -> None:
        """Fill the fields from a remembered chessboard (a ChArUco board counts squares, not corners: skipped)."""
        from mocap_app.ui.widgets import set_spin_values
        if (d or {}).get("kind", "chessboard") == "chessboard":
            set_spin_values({"cols": self.board_cols, "rows": self.board_rows, "square_mm": self.board_square}, d)

    def _pick_board_image(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Image of the board on the floor", "",
                                              "Images or videos (*.png *.jpg *.jpeg *.bmp *.mp4 *.mov *.avi *.mkv)")
        if path:
            self.measure_board(path)

    def measure_board(self, image) -> bool:
        """Measure from ``image`` (a path: an image, or a video's first frame; or a BGR array), off the UI thread;
        ``boardDone`` reports. False if it could not start (the reason is in ``board_info``)."""
        from mocap_app.calibration.checkerboard import BoardSpec
        if self._board_thread is not None:
            return False
        try:
            spec = BoardSpec(self.board_cols.value(), self.board_rows.value(), self.board_square.value())
        except ValueError as e:
            self._say(str(e), error=True)
            return False
        thickness = self.board_thickness.value()
        camera = self._camera

        def work():
            from mocap_app.calibration.floor import placement_from_floor_board
            from mocap_app.capture import CaptureError, read_still
            res, err = None, ""
            try:
                img = image if isinstance(image, np.ndarray) else read_still(image)
                if camera is None:
                    raise ValueError("no camera model: calibrate the camera first (Camera ▸ Calibrate camera)")
                intr, _ = camera(img.shape[1], img.shape[0])
                res = placement_from_floor_board(img, spec, intr, thickness)
            except (ValueError, CaptureError) as e:   # CalibrationError, no board, no camera model, no image
                err = str(e)
            except Exception as e:  # noqa: BLE001 - one sentence in the dialog, never a traceback
                err = f"{type(e).__name__}: {e}"
            try:
                self.boardDone.emit(res, err)
            except RuntimeError:              # the dialog was closed meanwhile
                pass

        self.board_measured = True
        self.board_image_button.setEnabled(False)
        self.board_frame_button.setEnabled(False)
        self._say("Looking for the board...")
        self._board_thread = threading.Thread(target=work, name="floor-board", daemon=True)
        self._board_thread.start()
        return True

    def _say(self, text: str, error: bool = False) -> None:
        self.board_info.setText(text[:1].upper() + text[1:] if text else text)
        self.board_info.setStyleSheet("color:#c62828" if error else "")

    def _on_board_done(self, res, err: str) -> None:
        self._board_thread = None
        self.board_image_button.setEnabled(True)
        self.board_frame_button.setEnabled(self._frame is not None)
        if res is None:
            self._say(err if err.endswith(".") else err + ".", error=True)
            return
        for attr, *_ in FIELDS:
            self.checks[attr].setChecked(True)
            self.spins[attr].setValue(getattr(res.placement, attr))
        self._say(f"From the board {res.distance_m:.2f} m away (corners fit to {res.rms_px:.2f} px)."
                  + "".join(f" Warning: {w}." for w in res.warnings), error=bool(res.warnings))

    def wait_for_board(self, timeout_s: float = 30.0) -> None:
        """Block until a board measurement finished (tests)."""
        t = self._board_thread
        if t is not None:
            t.join(timeout_s)

    def placement(self) -> CameraPlacement:
        """The ticked values (the spin boxes' ranges keep them within what ``CameraPlacement`` accepts)."""
        return CameraPlacement(**{a: (self.spins[a].value() if self.checks[a].isChecked() else None)
                                  for a, *_ in FIELDS})

