"""Camera ▸ Camera placement: the pitch, roll and height the user knows (a bubble level, a tape measure).

Each value is either ticked and typed, or left to the estimate from the person (``mocap_app.world``). The dialog
shows what the current take's estimate says beside each field, so a user can keep the estimate, or correct it.
"""
from __future__ import annotations

from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QDoubleSpinBox, QFormLayout, QHBoxLayout,
                               QLabel, QVBoxLayout)

from mocap_app.world import MAX_CAMERA_HEIGHT_M, MAX_PITCH_DEG, MAX_ROLL_DEG, CameraPlacement

FIELDS = (  # (attribute, label, unit, min, max, default, decimals)
    ("pitch_deg", "Pitch (tilt; negative = looking down)", " deg", -MAX_PITCH_DEG, MAX_PITCH_DEG, 0.0, 1),
    ("roll_deg", "Roll (positive = turned clockwise)", " deg", -MAX_ROLL_DEG, MAX_ROLL_DEG, 0.0, 1),
    ("camera_height_m", "Height of the lens above the floor", " m", 0.05, MAX_CAMERA_HEIGHT_M - 0.01, 1.5, 2),
)


class PlacementDialog(QDialog):
    """``placement()`` is the result; ``estimate`` (a ``WorldAlignment.to_dict()``) is shown for reference."""

    def __init__(self, parent=None, placement: CameraPlacement | None = None, estimate: dict | None = None):
        super().__init__(parent)
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
        if estimate:
            src = QLabel(f"The take's world frame came from: {estimate.get('method', '?')}.")
            src.setWordWrap(True)
            src.setStyleSheet("color:#666")
            lay.addWidget(src)
        lay.addWidget(buttons)

    def placement(self) -> CameraPlacement:
        """The ticked values (the spin boxes' ranges keep them within what ``CameraPlacement`` accepts)."""
        return CameraPlacement(**{a: (self.spins[a].value() if self.checks[a].isChecked() else None)
                                  for a, *_ in FIELDS})
