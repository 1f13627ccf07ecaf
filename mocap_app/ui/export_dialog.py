"""Export dialog: where to write BVH/FBX/GLB and the export options (all validated in place)."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget)

from mocap_app.export import ExportError, ExportOptions
from mocap_app.export.bvh import VALID_ORDERS
from mocap_app.export.rig import NAME_SETS


@dataclass(frozen=True)
class ExportRequest:
    """The dialog's answer: target files and options."""
    bvh: Path | None
    fbx: Path | None
    glb: Path | None
    options: ExportOptions

    def targets(self) -> dict:
        return {k: v for k, v in (("bvh", self.bvh), ("fbx", self.fbx), ("glb", self.glb)) if v is not None}


def _parse_positive(text: str, what: str, allow_empty: bool = False) -> float | None:
    t = text.strip()
    if not t and allow_empty:
        return None
    try:
        v = float(t)
    except ValueError:
        raise ExportError(f"{what} must be a number, not {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ExportError(f"{what} must be a positive number, not {text!r}")
    return v


class ExportDialog(QDialog):
    """Pick the output folder and base name, the formats, and the clean-up options.

    Errors are shown inside the dialog (red line) and the dialog stays open.
    """

    def __init__(self, folder: str = "", base_name: str = "take", settings=None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Export clip")
        self.settings = settings
        self.request: ExportRequest | None = None
        lay = QVBoxLayout(self)
        form = QFormLayout()
        lay.addLayout(form)

        row = QHBoxLayout()
        self.folder_edit = QLineEdit(folder or str(Path.home()))
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        row.addWidget(self.folder_edit, 1)
        row.addWidget(browse)
        w = QWidget()
        w.setLayout(row)
        row.setContentsMargins(0, 0, 0, 0)
        form.addRow("Folder:", w)
        self.name_edit = QLineEdit(base_name)
        form.addRow("File name:", self.name_edit)

        fmt = QHBoxLayout()
        self.bvh_check = QCheckBox("BVH")
        self.fbx_check = QCheckBox("FBX (binary 7.4)")
        self.glb_check = QCheckBox("GLB (glTF 2.0)")
        for c in (self.bvh_check, self.fbx_check, self.glb_check):
            fmt.addWidget(c)
        self.bvh_check.setChecked(True)
        fw = QWidget()
        fw.setLayout(fmt)
        fmt.setContentsMargins(0, 0, 0, 0)
        form.addRow("Formats:", fw)

        self.names_combo = QComboBox()
        self.names_combo.addItems(list(NAME_SETS))
        form.addRow("Bone names:", self.names_combo)
        self.order_combo = QComboBox()
        self.order_combo.addItems(list(VALID_ORDERS))
        self.order_combo.setCurrentText("ZXY")
        form.addRow("BVH rotation order:", self.order_combo)
        self.fps_edit = QLineEdit()
        self.fps_edit.setPlaceholderText("the clip's own rate")
        form.addRow("Frame rate (fps):", self.fps_edit)
        self.smooth_check = QCheckBox("One Euro smoothing")
        self.cutoff_edit = QLineEdit("1.0")
        self.cutoff_edit.setToolTip("Cutoff at rest in Hz: lower is smoother")
        sr = QHBoxLayout()
        sr.setContentsMargins(0, 0, 0, 0)
        sr.addWidget(self.smooth_check)
        sr.addWidget(QLabel("min cutoff (Hz):"))
        sr.addWidget(self.cutoff_edit)
        sw = QWidget()
        sw.setLayout(sr)
        form.addRow("Smoothing:", sw)
        self.foot_check = QCheckBox("Lock feet on the floor while in contact")
        form.addRow("Foot locking:", self.foot_check)

        self.error_label = QLabel()
        self.error_label.setStyleSheet("color:#ff6b6b;")
        self.error_label.setWordWrap(True)
        lay.addWidget(self.error_label)
        self.buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        self.buttons.button(QDialogButtonBox.Ok).setText("Export")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay.addWidget(self.buttons)
        self._load_settings()

    def _browse(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Export to folder", self.folder_edit.text())
        if d:
            self.folder_edit.setText(d)

    # -- settings -------------------------------------------------------------------------
    def _load_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        self.names_combo.setCurrentText(str(s.value("export/names", "standard")))
        self.order_combo.setCurrentText(str(s.value("export/order", "ZXY")))
        self.fps_edit.setText(str(s.value("export/fps", "")))
        for key, box, default in (("bvh", self.bvh_check, True), ("fbx", self.fbx_check, False),
                                  ("glb", self.glb_check, False), ("smoothing", self.smooth_check, False),
                                  ("foot_lock", self.foot_check, False)):
            box.setChecked(str(s.value(f"export/{key}", default)).lower() == "true")
        self.cutoff_edit.setText(str(s.value("export/min_cutoff", "1.0")))

    def _save_settings(self) -> None:
        s = self.settings
        if s is None:
            return
        s.setValue("export/folder", self.folder_edit.text())
        s.setValue("export/names", self.names_combo.currentText())
        s.setValue("export/order", self.order_combo.currentText())
        s.setValue("export/fps", self.fps_edit.text().strip())
        for key, box in (("bvh", self.bvh_check), ("fbx", self.fbx_check), ("glb", self.glb_check),
                         ("smoothing", self.smooth_check), ("foot_lock", self.foot_check)):
            s.setValue(f"export/{key}", box.isChecked())
        s.setValue("export/min_cutoff", self.cutoff_edit.text().strip())

    # -- validation -----------------------------------------------------------------------
    def build_request(self) -> ExportRequest:
        """The request from the current fields; raises ExportError with a sentence for the user."""
        folder = Path(os.path.expanduser(self.folder_edit.text().strip()))
        if not self.folder_edit.text().strip():
            raise ExportError("choose a folder to export to")
        if not folder.is_dir():
            raise ExportError(f"the folder {folder} does not exist")
        if not os.access(folder, os.W_OK):
            raise ExportError(f"the folder {folder} is not writable")
        name = self.name_edit.text().strip()
        if not name:
            raise ExportError("enter a file name")
        if any(c in name for c in '/\\:*?"<>|') or name in (".", ".."):
            raise ExportError(f"the file name {name!r} contains characters a file name cannot have")
        for ext in (".bvh", ".fbx", ".glb"):
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
        picks = {k: box.isChecked() for k, box in (("bvh", self.bvh_check), ("fbx", self.fbx_check),
                                                    ("glb", self.glb_check))}
        if not any(picks.values()):
            raise ExportError("tick at least one format (BVH, FBX or GLB)")
        fps = _parse_positive(self.fps_edit.text(), "the frame rate", allow_empty=True)
        cutoff = _parse_positive(self.cutoff_edit.text(), "the smoothing cutoff")
        opts = ExportOptions(names=self.names_combo.currentText(), rotation_order=self.order_combo.currentText(),
                             fps=fps, smoothing=self.smooth_check.isChecked(), min_cutoff_hz=cutoff,
                             foot_lock=self.foot_check.isChecked())
        opts.validate()
        paths = {k: (folder / f"{name}.{k}") if on else None for k, on in picks.items()}
        return ExportRequest(paths["bvh"], paths["fbx"], paths["glb"], opts)

    def accept(self) -> None:
        try:
            self.request = self.build_request()
        except ExportError as e:
            from mocap_app.ui.widgets import sentence
            self.error_label.setText(sentence(e))
            return
        self.error_label.clear()
        self._save_settings()
        super().accept()
