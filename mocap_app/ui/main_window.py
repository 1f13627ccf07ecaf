"""The desktop app's main window: source -> live 2D/3D views and plots -> record -> review/trim -> export.

Threads: the UI thread only draws and reacts to the user. The pipeline runs on
``mocap_app.ui.worker`` threads, the 3D view renders on its own thread
(``mocap_app.ui.view3d``), exports run on a short-lived thread. Errors are shown in a
banner at the top of the window as one sentence, never as a traceback.
"""
from __future__ import annotations

import collections
import dataclasses
import functools
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import (QApplication, QComboBox, QDockWidget, QFileDialog, QLabel, QLineEdit, QMainWindow,
                               QMessageBox, QProgressBar, QSlider, QSplitter, QToolBar, QVBoxLayout, QWidget)

from engines.skeleton import J
from mocap_app.capture import VIDEO_EXTS, VideoSource
from mocap_app.clip import Clip, ClipFormatError
from mocap_app.ui.view3d import TRAIL_LEN, Scene, SceneRenderer, View3DWidget
from mocap_app.ui.widgets import Banner, PlotsPanel, RefreshingComboBox, Timeline, VideoWidget, sentence
from mocap_app.ui.worker import FrameResult, PipelineConfig, PipelineWorker, camera_axes_to_world
from mocap_app.world import CameraPlacement

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
ICON = REPO / "assets" / "icons" / "mocap.svg"
ENGINES = (("absposelifter", "AbsPoseLifter"), ("perspose", "PersPose (experimental)"))
FILE_ITEM = "file"


def slice_clip(clip: Clip, first: int, last: int) -> Clip:
    """Frames ``first..last`` (inclusive) of a clip; the world frame stays valid."""
    s = slice(first, last + 1)
    return dataclasses.replace(
        clip, timestamps_s=clip.timestamps_s[s], person=clip.person[s], keypoints_px=clip.keypoints_px[s],
        confidence=clip.confidence[s], joints_cam_mm=clip.joints_cam_mm[s],
        joints_world_mm=None if clip.joints_world_mm is None else clip.joints_world_mm[s],
        plausibility=None if clip.plausibility is None else clip.plausibility[s],
        left_right_fixed=None if clip.left_right_fixed is None else clip.left_right_fixed[s])


def clip_world(clip: Clip) -> np.ndarray:
    """World joints for display (the camera-axis guess when the clip has no world frame)."""
    if clip.joints_world_mm is not None:
        return np.asarray(clip.joints_world_mm, float)
    w = camera_axes_to_world(clip.joints_cam_mm)
    ok = np.isfinite(w).all((1, 2))
    if ok.any():
        w[..., 1] -= np.nanpercentile(np.minimum(w[ok, J["left_ankle"], 1], w[ok, J["right_ankle"], 1]), 5) - 80
    return w


def _cam_pose(world: dict | None) -> tuple[np.ndarray, np.ndarray]:
    if world:
        return np.asarray(world["R_cam_to_world"], float), np.asarray(world["t_cam_to_world_mm"], float) / 1000
    return np.diag([1.0, -1.0, -1.0]), np.zeros(3)


class MainWindow(QMainWindow):
    """The whole app in one window."""

    export_done = Signal(object, str)      # ExportResult or None, error message ("" when fine)
    plausibility_done = Signal(object, object)   # the clip scored, its per-frame plausibility (or an error text)
    relift_done = Signal(object, object, str)    # the take re-lifted, the new clip (or None), an error ("" when fine)

    def __init__(self, weights: str | Path | None = None, settings: QSettings | None = None,
                 prefer_open3d: bool = True, ask_file_if_no_camera: bool = False, autosave: bool = True,
                 auto_start_files: bool = True):
        super().__init__()
        self.setWindowTitle("mocap")
        if ICON.exists():
            self.setWindowIcon(QIcon(str(ICON)))
        self.settings = settings or QSettings("mocap", "mocap")
        self.weights = Path(weights) if weights else (Path(os.environ["MOCAP_LIFTER_WEIGHTS"])
                                                      if os.environ.get("MOCAP_LIFTER_WEIGHTS") else None)
        self.autosave = autosave
        self.auto_start_files = auto_start_files
        self.worker: PipelineWorker | None = None
        self.source: str | int | None = None
        self.clip: Clip | None = None           # the take under review
        self.clip_saved = True
        self.autosave_path: Path | None = None
        self.camera_profile = None              # CameraProfile from the calibration dialog
        self.placement = CameraPlacement()      # known pitch / roll / height (Camera ▸ Camera placement)
        self._review_full: np.ndarray | None = None   # the reviewed frame at full size (to measure a floor board)
        self.intrinsics = None
        self.world: dict | None = None
        self.trail: collections.deque = collections.deque(maxlen=TRAIL_LEN)
        self.screen_latency_ms: list[float] = []
        self.frames_drawn = 0
        self._review_cap = None
        self._t0 = time.perf_counter()
        self._export_thread: threading.Thread | None = None
        self._relift_thread: threading.Thread | None = None
        self.last_export = None
        self.max_frames: int | None = None      # limit per run (tests, benchmarks)
        self.worker_class = PipelineWorker
        self.source_factory = None              # picklable callable -> source (benchmarks: a paced "camera")
        self.ui_ms: list[float] = []            # UI-thread wall time spent per pipeline result
        self.ui_cpu_ms: list[float] = []        # ... and its CPU time (wall minus being preempted)
        self._last_dropped = 0

        self._startup_warning = ""
        self.renderer = SceneRenderer(prefer_open3d=prefer_open3d)
        self._build_ui()
        self._load_settings()
        self.renderer.backend_ready.connect(self._show_view_backend)
        if self.renderer.backend_name:   # ready before the connection was made
            self._show_view_backend(self.renderer.backend_name)
        self.view3d.frame_shown.connect(self._on_frame_shown)
        self.export_done.connect(self._on_export_done)
        self.plausibility_done.connect(self._on_plausibility)
        self.relift_done.connect(self._on_relift_done)
        self._status_result = None
        self._plot_timer = QTimer(self)
        self._plot_timer.timeout.connect(self.plots.refresh)
        self._plot_timer.timeout.connect(self._refresh_status)
        self._plot_timer.start(200)
        self.setAcceptDrops(True)
        self.refresh_sources()
        if isinstance(self.source, int):
            self.apply_remembered_profile()
        if self._startup_warning:
            self.banner.show_message(self._startup_warning, "warning")
        self._update_state()
        self.renderer.submit(Scene())
        if ask_file_if_no_camera and not self._cameras:
            QTimer.singleShot(300, self.open_video_dialog)

    # ----------------------------------------------------------------------------------- UI
    def _build_ui(self) -> None:
        st = self.style()
        # actions
        self.act_open = QAction("&Open video...", self, shortcut=QKeySequence.Open, triggered=self.open_video_dialog)
        self.act_open_clip = QAction("Open &clip...", self, triggered=self.open_clip_dialog)
        self.act_save = QAction("&Save clip...", self, shortcut=QKeySequence.Save, triggered=self.save_clip_dialog)
        self.act_export = QAction("&Export BVH/FBX/GLB...", self, shortcut="Ctrl+E", triggered=self.export_dialog)
        self.act_quit = QAction("&Quit", self, shortcut=QKeySequence.Quit, triggered=self.close)
        self.act_start = QAction(st.standardIcon(st.StandardPixmap.SP_MediaPlay), "Start", self,
                                 shortcut="Space", triggered=self.toggle_run)
        self.act_start.setToolTip("Start/stop the pipeline on the chosen source (Space)")
        self.act_record = QAction("● Record", self, checkable=True, shortcut="R", triggered=self.set_recording)
        self.act_record.setToolTip("Record the live pose (R). Files are always recorded whole.")
        self.act_reset = QAction("Reset 3D view", self, shortcut="Home", triggered=lambda: self.view3d.reset_view())
        self.act_calib = QAction("&Calibrate camera...", self, triggered=self.open_calibration)
        self.act_placement = QAction("Camera &placement...", self, triggered=self.open_placement)
        self.act_forget = QAction("&Forget this camera profile...", self, triggered=lambda: self.forget_profile())
        self.act_forget.setToolTip("Delete the camera profile in use from the profile folder (takes already made keep "
                                   "their camera)")
        self.act_relift = QAction("&Re-lift take with this camera", self, triggered=lambda: self.relift_take())
        self.act_relift.setToolTip("Lift the take under review again from its 2D keypoints with the focal length in "
                                   "the toolbar or the calibrated camera (no second 2D pass)")
        self.act_refresh = QAction("Refresh camera list", self, triggered=self.refresh_sources)
        from engines.lifter import engine_available
        self.act_zedo = QAction("ZeDO refine", self, checkable=True)
        self._zedo_installed = engine_available("zedo")
        if self._zedo_installed:
            self.act_zedo.setToolTip("Refine every 3D pose with the ZeDO diffusion pose prior "
                                     "(20 iterations, a few ms per frame; experimental)")
        else:
            self.act_zedo.setEnabled(False)
            self.act_zedo.setToolTip("ZeDO's pose prior is not part of this installation")
        self.act_lr_fix = QAction("Fix &mirrored skeletons", self, checkable=True, checked=True)
        self.act_lr_fix.setToolTip("Mirror back frames in which MediaPipe suddenly labels the skeleton left-for-right "
                                   "(off: keep MediaPipe's labels, e.g. for very fast spins)")
        self.act_weights = QAction("Lifter &weights...", self, triggered=self.choose_weights_dialog)
        self.act_weights.setToolTip("Use other AbsPoseLifter weights, e.g. adapted to your footage by "
                                    "`mocap-app adapt`")
        self.act_bundled = QAction("Use &bundled weights", self, triggered=lambda: self.set_lifter_weights(None))
        self.act_next_flag = QAction("Next &flagged frame", self, shortcut="F",
                                     triggered=lambda: self.timeline.next_flag())

        mb = self.menuBar()
        m = mb.addMenu("&File")
        for a in (self.act_open, self.act_open_clip, None, self.act_save, self.act_export, None, self.act_quit):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Capture")
        for a in (self.act_start, self.act_record, None, self.act_refresh):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("&Engine")
        for a in (self.act_lr_fix, self.act_zedo, None, self.act_weights, self.act_bundled):
            m.addSeparator() if a is None else m.addAction(a)
        m = mb.addMenu("C&amera")
        m.addAction(self.act_calib)
        m.addAction(self.act_placement)
        m.addSeparator()
        m.addAction(self.act_relift)
        m.addAction(self.act_forget)
        m = mb.addMenu("&View")
        m.addAction(self.act_reset)
        m.addAction(self.act_next_flag)

        tb = QToolBar("Main")
        tb.setObjectName("main_toolbar")
        tb.setMovable(False)
        self.addToolBar(tb)
        tb.addWidget(QLabel(" Source: "))
        self.source_combo = QComboBox()
        self.source_combo.setMinimumWidth(180)
        self.source_combo.activated.connect(self._on_source_picked)
        tb.addWidget(self.source_combo)
        tb.addAction(self.act_open)
        tb.addSeparator()
        tb.addAction(self.act_start)
        tb.addAction(self.act_record)
        tb.addSeparator()
        tb.addWidget(QLabel(" Engine: "))
        self.engine_combo = QComboBox()
        for key, label in ENGINES:
            avail = engine_available(key)
            self.engine_combo.addItem(label if avail else f"{label} (not available yet)", key)
            if not avail:
                item = self.engine_combo.model().item(self.engine_combo.count() - 1)
                item.setEnabled(False)
                item.setToolTip(f"{label} is not part of this build yet")
        tb.addWidget(self.engine_combo)
        tb.addAction(self.act_zedo)
        self.engine_combo.currentIndexChanged.connect(lambda _i: self._update_weights_label())
        self.act_zedo.toggled.connect(lambda _on: self._update_weights_label())
        tb.addWidget(QLabel(" Focal (px): "))
        self.focal_edit = QLineEdit()
        self.focal_edit.setPlaceholderText("auto")
        self.focal_edit.setMaximumWidth(80)
        self.focal_edit.setToolTip("Camera focal length in pixels; empty = calibration profile or a 70° diagonal "
                                   "field of view")
        self.focal_edit.editingFinished.connect(self._on_focal_typed)
        tb.addWidget(self.focal_edit)
        tb.addWidget(QLabel(" Camera: "))
        self.profile_combo = RefreshingComboBox(before_popup=self.refresh_profiles)   # sees profiles made meanwhile
        self.profile_combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.profile_combo.setMinimumContentsLength(12)   # the toolbar must still fit a 1280 px window
        self.profile_combo.setToolTip("The camera profile the next runs use (one per camera, kept in the profile "
                                      "folder; Camera ▸ Calibrate camera adds one). A focal length typed beside it "
                                      "overrides it.")
        self.profile_combo.activated.connect(self._on_profile_picked)
        tb.addWidget(self.profile_combo)
        tb.addWidget(QLabel(" Smoothing: "))
        self.smooth_slider = QSlider(Qt.Horizontal)
        self.smooth_slider.setRange(0, 100)
        self.smooth_slider.setMaximumWidth(120)
        self.smooth_slider.setToolTip("Live display smoothing (One Euro filter): 0 = raw, 100 = smoothest")
        self.smooth_slider.valueChanged.connect(self._on_smoothing)
        tb.addWidget(self.smooth_slider)
        # Reset 3D view lives in the View menu (Home, or a double-click in the view): the toolbar must fit 1280 px

        central = QWidget()
        v = QVBoxLayout(central)
        v.setContentsMargins(0, 0, 0, 0)
        v.setSpacing(0)
        self.banner = Banner()
        v.addWidget(self.banner)
        self.splitter = QSplitter(Qt.Horizontal)
        self.video = VideoWidget()
        self.view3d = View3DWidget(self.renderer)
        self.splitter.addWidget(self.video)
        self.splitter.addWidget(self.view3d)
        self.splitter.setSizes([500, 600])
        v.addWidget(self.splitter, 1)
        self.timeline = Timeline()
        self.timeline.frame_changed.connect(self.show_clip_frame)
        v.addWidget(self.timeline)
        self.setCentralWidget(central)

        self.plots = PlotsPanel()
        dock = QDockWidget("Plots", self)
        dock.setObjectName("plots_dock")
        dock.setWidget(self.plots)
        dock.setFeatures(QDockWidget.DockWidgetMovable | QDockWidget.DockWidgetFloatable)
        self.addDockWidget(Qt.BottomDockWidgetArea, dock)
        self.plots_dock = dock
        self.resizeDocks([dock], [230], Qt.Vertical)

        sb = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMinimumWidth(170)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.setToolTip("Frames processed / frames in the file, and the time left")
        self.progress.hide()
        self.state_label = QLabel("Ready")
        self.fps_label = QLabel("")
        self.backend_label = QLabel("3D engine: -")
        self.camera_label = QLabel("")       # the camera model of the run / take on screen
        self.view_label = QLabel("3D view: starting")
        sb.addWidget(self.state_label, 1)
        sb.addPermanentWidget(self.progress)
        sb.addPermanentWidget(self.fps_label)
        sb.addPermanentWidget(self.camera_label)
        sb.addPermanentWidget(self.backend_label)
        sb.addPermanentWidget(self.view_label)
        self.resize(1280, 860)

    # ------------------------------------------------------------------------- settings
    def _load_settings(self) -> None:
        s = self.settings
        geo = s.value("window/geometry")
        if geo is not None:
            self.restoreGeometry(geo)
        self.smooth_slider.setValue(int(s.value("pipeline/smoothing", 50)))
        self.focal_edit.setText(str(s.value("pipeline/focal_px", "")))
        prof = str(s.value("camera/profile", "") or "")
        if prof:
            try:
                from mocap_app.calibration.profile import CameraProfile
                self.camera_profile = CameraProfile.from_dict(json.loads(prof))
                self.focal_edit.setPlaceholderText("profile")
            except Exception as e:  # noqa: BLE001 - a stale setting must not stop the app
                log.warning("ignoring the saved camera profile: %s", e)
        self.refresh_profiles()
        placement = str(s.value("camera/placement", "") or "")
        if placement:
            try:
                self.placement = CameraPlacement.from_dict(json.loads(placement))
            except Exception as e:  # noqa: BLE001 - a stale setting must not stop the app
                log.warning("ignoring the saved camera placement: %s", e)
        i = self.engine_combo.findData(str(s.value("pipeline/engine", "absposelifter")))
        if i >= 0 and self.engine_combo.model().item(i).isEnabled():
            self.engine_combo.setCurrentIndex(i)
        self.act_zedo.setChecked(self._zedo_installed and str(s.value("pipeline/refine", "")) == "zedo")
        self.act_lr_fix.setChecked(str(s.value("pipeline/fix_left_right", "true")).lower() != "false")
        w = str(s.value("pipeline/lifter_weights", "") or "")
        if w and self.weights is None:   # an explicit argument or MOCAP_LIFTER_WEIGHTS wins
            try:
                self.set_lifter_weights(w, save=False)
            except (OSError, ValueError) as e:   # shown once the window is up (after the camera message)
                self._startup_warning = f"The saved lifter weights are not usable ({e}); using the bundled ones."
        self._update_weights_label()

    def _save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("pipeline/smoothing", self.smooth_slider.value())
        s.setValue("pipeline/focal_px", self.focal_edit.text().strip())
        s.setValue("pipeline/engine", self.engine_combo.currentData())
        s.setValue("pipeline/refine", "zedo" if self.act_zedo.isChecked() else "")
        s.setValue("pipeline/fix_left_right", "true" if self.act_lr_fix.isChecked() else "false")
        s.sync()

    def _last_dir(self) -> str:
        return str(self.settings.value("paths/last_dir", str(Path.home())))

    # -------------------------------------------------------------------------- sources
    def refresh_sources(self) -> None:
        from mocap_app.capture import camera_name, list_cameras
        try:
            self._cameras = list_cameras()
        except Exception as e:  # noqa: BLE001 - a broken camera stack must not stop the app
            log.warning("listing cameras failed: %s", e)
            self._cameras = []
        self._camera_names = {i: camera_name(i) for i in self._cameras}
        cur = self.source
        self.source_combo.clear()
        for i in self._cameras:
            name = self._camera_names.get(i)
            self.source_combo.addItem(f"Camera {i}: {name} (live)" if name else f"Camera {i} (live)", i)
        if not self._cameras:
            self.source_combo.addItem("No camera found", None)
            self.source_combo.model().item(0).setEnabled(False)
        if isinstance(cur, str):
            self.source_combo.addItem(f"File: {Path(cur).name}", cur)
        self.source_combo.addItem("Open video file...", FILE_ITEM)
        if cur is None and self._cameras:
            self.source = self._cameras[0]
        self._select_source_item()
        if not self._cameras and cur is None:
            self.banner.show_message("No camera found. Open a video file (File ▸ Open video, or drop one on the "
                                     "window) to capture from a recording.", "info")

    def _select_source_item(self) -> None:
        i = self.source_combo.findData(self.source)
        if i >= 0:
            self.source_combo.setCurrentIndex(i)

    def _on_source_picked(self, index: int) -> None:
        data = self.source_combo.itemData(index)
        if data == FILE_ITEM:
            self._select_source_item()
            self.open_video_dialog()
        elif data is not None:
            self.source = data
            if isinstance(data, int):
                self.apply_remembered_profile()
            self._update_state()

    # ------------------------------------------------------------------ profile per camera
    def _camera_key(self) -> str | None:
        """What a live camera's profile is remembered under: its name where the system gives one (survives
        re-plugging in another port), else its index."""
        if not isinstance(self.source, int):
            return None
        from mocap_app.calibration.profile import slug
        name = getattr(self, "_camera_names", {}).get(self.source)
        return slug(name) if name else f"index_{self.source}"

    def _remember_profile(self, prof) -> None:
        key = self._camera_key()
        if key is not None:
            self.settings.setValue(f"camera/profile_for/{key}", prof.name if prof is not None else "")

    def apply_remembered_profile(self) -> bool:
        """A camera picked as the source gets the profile last used with it (from the profile folder); True if
        that changed the profile in use."""
        key = self._camera_key()
        name = str(self.settings.value(f"camera/profile_for/{key}", "") or "") if key else ""
        if not name or (self.camera_profile is not None and self.camera_profile.name == name):
            return False
        from mocap_app.calibration.profile import list_profiles
        prof = next((p for p in list_profiles() if p.name == name), None)
        if prof is None:
            return False
        self.set_camera_profile(prof)
        cam = getattr(self, "_camera_names", {}).get(self.source)
        self.banner.show_message(f"Camera profile '{prof.name}' (focal {prof.fx_px:.0f} px), the one last used with "
                                 f"camera {self.source}" + (f" ({cam})." if cam else "."), "info")
        return True

    def open_video_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open video", self._last_dir(),
            "Videos (" + " ".join(f"*{e}" for e in sorted(VIDEO_EXTS)) + ");;Clips (*.json);;All files (*)")
        if path:
            self.open_path(path)

    def open_clip_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open clip", self._last_dir(), "Clips (*.json)")
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path) -> bool:
        """Open a video (becomes the source and, by default, starts processing) or a clip JSON (review)."""
        p = Path(path)
        if not p.exists():
            self.banner.show_message(f"File not found: {p}")
            return False
        if not self._confirm_discard():
            return False
        self.settings.setValue("paths/last_dir", str(p.parent))
        if p.suffix.lower() == ".json":
            try:
                clip = Clip.load(p)
            except (ClipFormatError, OSError, KeyError, ValueError) as e:
                self.banner.show_message(f"Cannot open {p.name}: {e}")
                return False
            if clip.world is None:     # shown as the export will write it (export aligns such clips too)
                clip = self._align(clip)
            self.set_review_clip(clip, saved=True)
            n = int(clip.person.sum())
            self.banner.show_message(f"Opened clip {p.name}: {len(clip)} frames, {n} with a person"
                                     + ("." if n else ": there is nothing to export."), "info" if n else "warning")
            return True
        from mocap_app.capture import CaptureError
        try:
            with VideoSource(p) as src:
                desc = f"{src.size_wh[0]}x{src.size_wh[1]}, {src.fps:g} fps"
        except CaptureError as e:
            self.banner.show_message(str(e))
            return False
        self.stop_pipeline(wait=True)
        self.source = str(p)
        self.refresh_sources() if self.source_combo.findData(self.source) < 0 else None
        self._select_source_item()
        self.banner.show_message(f"Opened {p.name} ({desc}).", "info")
        self._update_state()
        if self.auto_start_files:
            self.start_pipeline()
        return True

    # --------------------------------------------------------------------------- pipeline
    def _focal(self) -> float | None:
        t = self.focal_edit.text().strip()
        if not t:
            return None
        try:
            f = float(t)
        except ValueError:
            raise ValueError(f"the focal length must be a number of pixels, not {t!r}") from None
        from engines.camera import MAX_FOCAL_PX, MIN_FOCAL_PX
        if not MIN_FOCAL_PX <= f <= MAX_FOCAL_PX:
            raise ValueError(f"the focal length {t} px is outside the plausible range "
                             f"{MIN_FOCAL_PX:.0f}-{MAX_FOCAL_PX:.0f} px")
        return f

    def toggle_run(self) -> None:
        if self.worker is not None:
            self.stop_pipeline()
        else:
            self.start_pipeline()

    def start_pipeline(self) -> bool:
        if self.worker is not None:
            return False
        if self.source is None:
            self.banner.show_message("Choose a source first: a camera, or open a video file.", "warning")
            return False
        try:
            focal = self._focal()
        except ValueError as e:
            self.banner.show_message(sentence(e))
            return False
        if not self._confirm_discard():
            return False
        live = isinstance(self.source, int)
        cfg = PipelineConfig(source=self.source, live=live, engine=self.engine_combo.currentData(),
                             weights=self.weights, refine="zedo" if self.act_zedo.isChecked() else None,
                             fix_left_right=self.act_lr_fix.isChecked(),
                             focal_px=focal, camera_profile=self.camera_profile,
                             smoothing=self.smooth_slider.value() / 100.0,
                             record=not live or self.act_record.isChecked(), autosave=self.autosave,
                             max_frames=self.max_frames, source_factory=self.source_factory,
                             placement=self.placement if self.placement.known else None)
        self.worker = self.worker_class(cfg)
        self.worker.started.connect(self._on_started)
        self.worker.result_ready.connect(self._on_result)
        self.worker.status.connect(self.state_label.setText)
        self.worker.failed.connect(self._on_failed)
        self.worker.finished.connect(self._on_finished)
        self.set_review_clip(None)
        self.world = None
        self.plots.clear()
        self.trail.clear()
        self.screen_latency_ms.clear()
        self._t0 = time.perf_counter()
        self.banner.hide()
        self.worker.start()
        self._update_state()
        return True

    def stop_pipeline(self, wait: bool = False) -> None:
        """Ask the worker to stop; ``_on_finished`` turns a recording into the take under review."""
        w = self.worker
        if w is None:
            return
        w.stop(wait_s=20.0 if wait else 0.0)
        if wait:
            QApplication.processEvents()
            if self.worker is w:   # finished signal not yet delivered
                self._on_finished(False)

    def set_recording(self, on: bool) -> None:
        w = self.worker
        if w is None:
            if on:
                self.act_record.setChecked(True)   # armed: recording starts with the next Start
                self.state_label.setText("Recording armed: press Start")
            return
        if w.config.live:
            if on:
                w.set_recording(True)
            else:
                w.set_recording(False)
                self.stop_pipeline()    # the take goes to review
        self._update_state()

    def _on_started(self, info: dict) -> None:
        self.intrinsics = info["intrinsics"]
        self._show_camera(info["intrinsics"], info.get("intrinsics_source", ""))
        prof = self.camera_profile
        if info.get("intrinsics_source") == "profile" and prof is not None and tuple(info["size"]) != tuple(prof.size):
            turned = (info["size"][0] > info["size"][1]) != (prof.size[0] > prof.size[1])
            self.banner.show_message(
                f"Camera profile '{prof.name}' was measured at {prof.size[0]}x{prof.size[1]}; this source is "
                f"{info['size'][0]}x{info['size'][1]}, so it was " + ("turned to the other orientation and " if turned
                                                                       else "")
                + f"scaled (focal {info['intrinsics'].fx_px:.0f} px). If this is another camera, or another zoom or "
                "crop mode, calibrate it (Camera ▸ Calibrate camera).", "warning")
        self._update_weights_label(info["backend"], focal_free=bool(info.get("focal_free")))
        total = info.get("frames_total") or 0
        if not info["live"] and total:
            self.progress.setRange(0, total)
            self.progress.setValue(0)
            self.progress.show()
        else:
            self.progress.hide()

    def _on_result(self) -> None:
        w = self.worker
        if w is None:
            return
        r: FrameResult | None = w.take_latest()
        if r is None:
            return
        t_ui, c_ui = time.perf_counter(), time.thread_time()
        self.frames_drawn += 1
        self.video.set_frame(r.image_bgr, r.keypoints_px, r.confidence, r.display_scale)
        t = time.perf_counter() - self._t0
        self.plots.add(t, r.fps, r.stage_ms, r.confidence, r.joints_world_mm)
        if r.world is not None and self.world is None:
            self.trail.clear()        # the frame changed from the level-camera guess to the estimate
        self.world = r.world
        if np.isfinite(r.joints_world_mm).all():
            self.trail.append(r.joints_world_mm[J["pelvis"]] / 1000.0)
        R, tc = r.cam_R, r.cam_t_mm / 1000.0
        self.renderer.submit(Scene(joints_m=r.joints_world_mm / 1000.0, trail_m=np.array(self.trail).reshape(-1, 3),
                                   cam_R=R, cam_t_m=tc, K=self.intrinsics.K if self.intrinsics else None,
                                   size_wh=(self.intrinsics.width_px, self.intrinsics.height_px)
                                   if self.intrinsics else (640, 480),
                                   frame_index=r.index, t_capture=r.t_capture))
        self._status_result = r          # labels and progress: refreshed at 5 Hz by _refresh_status
        self.ui_ms.append((time.perf_counter() - t_ui) * 1e3)
        self.ui_cpu_ms.append((time.thread_time() - c_ui) * 1e3)

    def _refresh_status(self) -> None:
        """Status bar and progress from the newest result (5 Hz: text relayouts cost ~2 ms each)."""
        r, self._status_result = self._status_result, None
        w = self.worker
        if r is None or w is None:
            return
        self._last_dropped = r.dropped
        rec = f" · ● REC {r.recorded}" if r.recording else ""
        drop = f" · {r.dropped} dropped" if r.dropped else ""
        self.fps_label.setText(f"{r.fps:.1f} fps{drop}{rec}")
        if r.frames_total:
            self.progress.setValue(r.frames_done)
            left = (r.frames_total - r.frames_done) / r.fps if r.fps > 0 else float("nan")
            self.progress.setFormat(f"{r.frames_done}/{r.frames_total} · {left:.0f} s left"   # frames: in the tooltip
                                    if np.isfinite(left) else f"{r.frames_done}/{r.frames_total}")
        who = "person" if r.person else "no person"
        # a file's frame count is in the progress bar; the status bar is narrow at 1280 px, so the full text is
        # also the tooltip
        where = "Live · frame {}".format(r.index) if w.config.live else "Processing"
        text = f"{where} · {who} · world: {r.world_method}"
        self.state_label.setText(text)
        self.state_label.setToolTip(text)

    def _on_frame_shown(self, _idx: int, ms: float) -> None:
        if self.worker is not None:
            self.screen_latency_ms.append(ms)
            self.plots.set_screen_latency(ms)

    def _on_failed(self, msg: str) -> None:
        self.banner.show_message(msg, "error")

    def _on_finished(self, ok: bool) -> None:
        w = self.worker
        if w is None:
            return
        self.worker = None
        self.progress.hide()
        self.act_record.setChecked(False)
        rec = w.recorder
        if rec is not None and len(rec) > 0:
            self.autosave_path = rec.autosave_path
            try:
                clip = rec.to_clip()
            except Exception as e:  # noqa: BLE001
                self.banner.show_message(f"The recording could not be read back: {e}")
                clip = None
            if clip is not None:
                clip = self._align(clip)
                self.set_review_clip(clip, saved=False)
                where = f" (autosaved to {self.autosave_path})" if self.autosave_path else ""
                if w.error is None:
                    self.banner.show_message(
                        f"Take ready: {len(clip)} frames, {int(clip.person.sum())} with a person{where}. Scrub and "
                        f"trim it on the timeline, then File ▸ Export.", "info")
        self.state_label.setText("Finished" if ok else "Stopped")
        self._update_state()

    def _align(self, clip: Clip) -> Clip:
        from mocap_app.world import WorldAlignmentError, align_clip
        try:
            return align_clip(clip, **self.placement.overrides())
        except WorldAlignmentError as e:
            log.info("take has no world frame: %s", e)
            return clip

    # ---------------------------------------------------------------------------- review
    def set_review_clip(self, clip: Clip | None, saved: bool = True) -> None:
        self.clip = clip
        self.clip_saved = saved
        if self._review_cap is not None:
            self._review_cap.release()
            self._review_cap = None
        self._review_full = None
        if clip is None:
            self.timeline.set_length(np.zeros(0))
            self._update_state()
            return
        self._review_world = clip_world(clip)
        self.world = clip.world
        path = clip.source.get("path") if isinstance(clip.source, dict) else None
        if path and Path(str(path)).is_file():
            import cv2
            cap = cv2.VideoCapture(str(path))
            self._review_cap = cap if cap.isOpened() else None
        self.intrinsics = clip.intrinsics
        self._show_camera(clip.intrinsics, clip.intrinsics_source)
        self.timeline.set_length(clip.timestamps_s)
        if clip.left_right_fixed is not None and len(clip.left_right_fixed) == len(clip):
            self.timeline.set_marks(clip.left_right_fixed)
        if clip.plausibility is not None and len(clip.plausibility) == len(clip):
            self._show_flags(clip)
        else:
            self._score_plausibility(clip)
        self.plots.set_clip(clip.timestamps_s - clip.timestamps_s[0], self._review_world, clip.confidence)
        self.show_clip_frame(0)
        self._update_state()

    # ---------------------------------------------------------------------- plausibility
    def _score_plausibility(self, clip: Clip) -> None:
        """Score the take's frames on a background thread; the flags appear on the timeline when done."""
        def work():
            try:
                from engines.plausibility.score import calibrated_scores
                self.plausibility_done.emit(clip, calibrated_scores(clip.joints_cam_mm))
            except Exception as e:  # noqa: BLE001 - a missing asset must not cost the take
                log.warning("plausibility not scored: %s", e)
                self.plausibility_done.emit(clip, f"{type(e).__name__}: {e}")
        threading.Thread(target=work, name="plausibility", daemon=True).start()

    def _on_plausibility(self, clip: Clip, scores) -> None:
        if clip is not self.clip:   # another take replaced it meanwhile
            return
        if isinstance(scores, str):
            self.state_label.setText(f"Plausibility not checked ({scores})")
            return
        clip.plausibility = np.asarray(scores, np.float64)
        self._show_flags(clip)

    def _show_flags(self, clip: Clip) -> None:
        from engines.plausibility.score import implausible
        flags = implausible(clip.plausibility)
        self.timeline.set_flags(flags)
        self.act_next_flag.setEnabled(bool(flags.any()) and self.worker is None)
        if flags.any():
            self.state_label.setText(f"{int(flags.sum())} of {len(flags)} frames look implausible: red ticks on "
                                     "the timeline, F jumps to the next")

    # ------------------------------------------------------------------------- weights
    def choose_weights_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "AbsPoseLifter weights", self._last_dir(),
                                              "Lifter weights (*.pt);;All files (*)")
        if not path:
            return
        try:
            self.set_lifter_weights(path)
        except (OSError, ValueError) as e:
            self.banner.show_message(sentence(e), "error")
            return
        self.banner.show_message(f"The AbsPoseLifter now uses {Path(path).name} (from the next Start).", "info")

    def set_lifter_weights(self, path: str | Path | None, save: bool = True) -> None:
        """Use these AbsPoseLifter weights from the next run (None: the bundled ones); refused with a sentence."""
        if path is None:
            self.weights = None
        else:
            from engines.lifter import check_lifter_weights
            self.weights = check_lifter_weights(path)
        if save:
            self.settings.setValue("pipeline/lifter_weights", str(self.weights) if self.weights else "")
        self._update_weights_label()
        self._update_state()

    def _update_weights_label(self, backend: str | None = None, focal_free: bool = False) -> None:
        """``focal_free``: the worker lifts with the focal-free weights because the focal length is only a guess."""
        name = self.engine_combo.currentText()
        if self.weights is not None and self.engine_combo.currentData() == "absposelifter":
            name += f" [{self.weights.name}]"
        elif focal_free:
            name += " [focal-free]"
        if self.act_zedo.isChecked():
            name += " + ZeDO"
        self.backend_label.setText(f"3D engine: {name}" + (f" on {backend}" if backend else ""))
        tip = f"lifter weights: {self.weights or 'bundled'}"
        if focal_free and self.weights is None:
            tip = ("The focal length is a guess (no calibration, focal length or field of view set), so the lifter "
                   "that does not use it runs. Calibrate the camera (Camera > Calibrate camera...) or enter its focal "
                   "length for the lifter that does: about 3 mm better on held-out motion.")
        self.backend_label.setToolTip(tip)

    def show_clip_frame(self, i: int) -> None:
        clip = self.clip
        if clip is None or self.worker is not None or not 0 <= i < len(clip):
            return
        img, scale = None, 1.0
        if self._review_cap is not None:
            import cv2
            self._review_cap.set(cv2.CAP_PROP_POS_MSEC, float(clip.timestamps_s[i]) * 1000.0)
            ok, frame = self._review_cap.read()
            if ok:
                self._review_full = frame           # full size: Camera placement measures a floor board on it
                scale = min(1.0, 720 / max(frame.shape[:2]))
                img = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
        if img is None:
            w, h = clip.intrinsics.width_px, clip.intrinsics.height_px
            scale = min(1.0, 720 / max(w, h))
            img = np.full((int(h * scale), int(w * scale), 3), 24, np.uint8)
        self.video.set_frame(img, clip.keypoints_px[i], clip.confidence[i], scale)
        self.plots.set_confidence(clip.confidence[i])
        a, _ = self.timeline.trim
        wj = self._review_world
        trail = wj[max(a, i - TRAIL_LEN):i + 1, J["pelvis"]] / 1000.0
        R, tc = _cam_pose(clip.world)
        self.renderer.submit(Scene(joints_m=wj[i] / 1000.0, trail_m=trail, cam_R=R, cam_t_m=tc, K=clip.intrinsics.K,
                                   size_wh=(clip.intrinsics.width_px, clip.intrinsics.height_px), frame_index=i))

    def trimmed_clip(self) -> Clip | None:
        if self.clip is None:
            return None
        a, b = self.timeline.trim
        return slice_clip(self.clip, a, b)

    def save_clip_dialog(self) -> None:
        if self.clip is None:
            self.banner.show_message("Nothing to save yet: record a take or process a video first.", "warning")
            return
        path, _ = QFileDialog.getSaveFileName(self, "Save clip", str(Path(self._last_dir()) / "take.clip.json"),
                                              "Clips (*.json)")
        if path:
            self.save_clip_to(path)

    def save_clip_to(self, path: str | Path) -> bool:
        clip = self.trimmed_clip()
        if clip is None:
            self.banner.show_message("Nothing to save yet: record a take or process a video first.", "warning")
            return False
        try:
            clip.save(path)
        except OSError as e:
            self.banner.show_message(f"Cannot save the clip: {e.strerror or e}")
            return False
        self.clip_saved = True
        self.banner.show_message(f"Saved {len(clip)} frames to {path}.", "info")
        return True

    def export_dialog(self):
        """Open the export dialog; returns it (already closed) for tests."""
        from mocap_app.ui.export_dialog import ExportDialog
        if self.clip is None:
            self.banner.show_message("Nothing to export yet: record a take or process a video first.", "warning")
            return None
        src = self.clip.source.get("path") if isinstance(self.clip.source, dict) else None
        base = Path(str(src)).stem if src and not str(src).isdigit() else "take"
        dlg = ExportDialog(str(self.settings.value("export/folder", self._last_dir())), base, self.settings, self)
        if dlg.exec() and dlg.request is not None:
            self.start_export(dlg.request)
        return dlg

    def start_export(self, request) -> None:
        """Export the trimmed take on a background thread; ``export_done`` reports."""
        from mocap_app.export import ExportError, export_clip
        clip = self.trimmed_clip()
        if clip is None:
            self.banner.show_message("Nothing to export yet.", "warning")
            return
        self.state_label.setText("Exporting...")

        def work():
            try:
                res = export_clip(clip, **request.targets(), options=request.options)
            except (ExportError, OSError) as e:
                self.export_done.emit(None, str(e))
                return
            except Exception as e:  # noqa: BLE001 - reported, never a traceback box
                log.exception("export failed")
                self.export_done.emit(None, f"export failed unexpectedly ({type(e).__name__}: {e})")
                return
            self.export_done.emit(res, "")

        self._export_thread = threading.Thread(target=work, name="export", daemon=True)
        self._export_thread.start()

    def _on_export_done(self, res, err: str) -> None:
        self.last_export = (res, err)
        if err:
            self.banner.show_message(f"Export failed: {err}.")
            self.state_label.setText("Export failed")
            return
        self.clip_saved = True
        files = ", ".join(str(p) for p in res.written.values())
        warn = (" " + " ".join(res.warnings)) if res.warnings else ""
        self.banner.show_message(f"Exported {res.frames} frames at {res.fps:g} fps: {files}.{warn}", "info")
        self.state_label.setText("Exported")

    # ----------------------------------------------------------------------- calibration
    def open_calibration(self):
        """The calibration dialog (manual / checkerboard / auto focal); its profile is used for the next runs."""
        try:
            from mocap_app.calibration.dialog import CalibrationDialog
        except ImportError as e:
            self.banner.show_message(f"The calibration dialog is not available in this build ({e}).", "warning")
            return None
        size = self._source_size() or (1920, 1080)
        # auto focal runs the dialog's own lifter, the focal-free one the CLI runs, not the app's pose lifter: one that
        # takes f as an input bends its pose to whatever f it is tried with (notes/calibration.md: +62 / +70 % on
        # two pose2sim views against +13 / -1 %)
        dlg = CalibrationDialog(self, size_wh=size, profile=self.camera_profile)
        take = self.clip if self.clip is not None and self.worker is None else None
        dlg.set_auto_input(take if take is not None else self.source if isinstance(self.source, str) else None)
        video = take.source.get("path") if take is not None and isinstance(take.source, dict) else self.source
        if self.camera_profile is None and isinstance(video, str):
            dlg.name_edit.setText(Path(video).stem)       # as `calibrate auto` names it
        if isinstance(self.source, int) or self.source_factory is not None:
            # the checkerboard tab can film the board with the app's camera (the same source the pipeline opens)
            opener = self.source_factory or functools.partial(VideoSource, self.source)
            dlg.set_camera(opener, busy="Stop the capture first: the app is using the camera."
                           if self.worker is not None else "")
        img = self.video._img
        if img is not None:
            dlg.set_frame(img)
        dlg.set_board_fields(self._remembered_board())
        accepted = dlg.exec()
        self._remember_board(dlg.board_fields())
        if accepted:
            prof = dlg.profile()
            placement = dlg.placement_to_use()     # a scene calibration's pitch / roll / height, if kept ticked
            told = self.set_camera_placement(placement, show=False) if placement is not None else ""
            if prof is not None:
                self.set_camera_profile(prof, offer_relift=True, note=self._keep_profile(prof), info=told)
            elif told:
                self.banner.show_message(told, "info")
        return dlg

    def _keep_profile(self, prof) -> str:
        """Save an accepted profile into the profile folder under its camera's name (what the CLI's
        ``--calibration NAME`` and the toolbar's camera list read), so each camera keeps its own. Returns a sentence
        when it could not be saved ("" when it was)."""
        from mocap_app.calibration.profile import ProfileError, save_profile
        try:
            save_profile(prof)
        except (OSError, ProfileError) as e:
            return (f"It could not be saved to the profile folder ({getattr(e, 'strerror', None) or e}), so it is "
                    "kept for this app only.")
        return ""

    def open_placement(self):
        """Camera ▸ Camera placement: known pitch / roll / height for the take under review and the next ones."""
        from mocap_app.ui.placement_dialog import PlacementDialog
        frame = self._review_full if self.clip is not None and self.worker is None else None
        dlg = PlacementDialog(self, self.placement, self.clip.world if self.clip is not None else None,
                              camera=self._placement_camera(), frame=frame)
        dlg.set_board_fields(self._remembered_board())
        accepted = dlg.exec()
        if dlg.board_measured:
            self._remember_board(dlg.board_fields())
        if accepted:
            self.set_camera_placement(dlg.placement())
        return dlg

    def _remembered_board(self) -> dict:
        """The calibration board last used in either dialog (one board per user, typed once)."""
        try:
            d = json.loads(str(self.settings.value("calibration/board", "") or "{}"))
        except ValueError:
            return {}
        return d if isinstance(d, dict) else {}

    def _remember_board(self, fields: dict) -> None:
        self.settings.setValue("calibration/board", json.dumps(fields))

    def set_camera_placement(self, placement, show: bool = True) -> str:
        """Use ``placement`` (a ``CameraPlacement``) from now on, remember it, and re-align the take under review.
        Returns the sentence it shows in the banner (``show=False``: for the caller's banner)."""
        self.placement = placement
        self.settings.setValue("camera/placement", json.dumps(placement.to_dict()))
        again = self.clip is not None and self.worker is None and np.isfinite(self.clip.joints_cam_mm).any()
        if again:
            self.set_review_clip(self._align(self.clip), saved=False)
        told = (f"Camera placement: {placement.describe()}. Used for "
                + ("this take and the next ones." if again else "the next takes."))
        if show:
            self.banner.show_message(told, "info")
        return told

    def _source_size(self) -> tuple[int, int] | None:
        if self.intrinsics is not None:
            return self.intrinsics.width_px, self.intrinsics.height_px
        if isinstance(self.source, str):
            from mocap_app.capture import CaptureError
            try:
                with VideoSource(self.source) as src:
                    return tuple(src.size_wh)
            except CaptureError:
                return None
        return None

    def set_camera_profile(self, prof, offer_relift: bool = False, note: str = "", info: str = "") -> None:
        """Use ``prof`` (a CameraProfile) for the following runs and remember it (QSettings). ``offer_relift``: the
        banner offers to lift the take under review again with it (a take is not re-lifted unasked: that would
        replace what the user is looking at). ``note``: a warning added to the banner; ``info``: a sentence added
        to it that is not one."""
        self.camera_profile = prof
        self.settings.setValue("camera/profile", json.dumps(prof.to_dict()) if prof is not None else "")
        self._remember_profile(prof)      # a live camera keeps its own profile
        self.focal_edit.setPlaceholderText("profile" if prof is not None else "auto")
        self.refresh_profiles()
        if prof is not None:
            from mocap_app.calibration.autofocal import RELIABLE_CONFIDENCE, TYPICAL_ERROR
            doubt = prof.confidence is not None and prof.confidence < RELIABLE_CONFIDENCE
            typed = bool(self.focal_edit.text().strip())
            offer = offer_relift and self._can_relift() and not typed and self._changes_take(prof)
            turned = ""
            if offer:
                take = self.clip.intrinsics
                if (prof.size[0] > prof.size[1]) != (take.width_px > take.height_px):
                    turned = " (the profile fits it turned to the other orientation)"
            self.banner.show_message(f"Camera profile '{prof.name}' will be used (focal {prof.fx_px:.0f} px at "
                                     f"{prof.size[0]}x{prof.size[1]}"
                                     + (f"; an auto estimate the footage could not confirm, typically "
                                        f"~{TYPICAL_ERROR:.0%} off: a checkerboard gives ~1 %" if doubt else "")
                                     + "). A focal length typed in the toolbar overrides it."
                                     + (f" The take under review was lifted with the old camera{turned}." if offer
                                        else "")
                                     + (f" {note}" if note else "") + (f" {info}" if info else ""),
                                     "warning" if doubt or note else "info",
                                     action=("Re-lift this take", self.relift_take) if offer else None)
        self._update_state()

    def _show_view_backend(self, name: str) -> None:
        self.view_label.setText(f"3D view: {name.split(' (')[0]}")   # the status bar is crowded: details in the tip
        self.view_label.setToolTip(f"3D renderer: {name}")

    # ------------------------------------------------------------------------ profiles
    def refresh_profiles(self) -> None:
        """Fill the toolbar's camera list: no profile, every profile in the profile folder, and the profile in use
        if it is not (yet) one of them."""
        from mocap_app.calibration.profile import list_profiles
        try:
            saved = list_profiles()
        except OSError as e:   # an unreadable folder must not stop the app
            log.warning("camera profiles not listed: %s", e)
            saved = []
        cur = self.camera_profile
        c = self.profile_combo
        c.clear()
        c.addItem("none (70° guess)", None)
        c.setItemData(0, "No calibration: a 70° diagonal field of view is assumed, and the lifter that does not use "
                         "the focal length runs", Qt.ToolTipRole)
        profiles = list(saved)
        if cur is not None and not any(p.to_dict() == cur.to_dict() for p in saved):
            profiles.append(cur)
        for p in profiles:
            c.addItem(f"{p.name} · {p.fx_px:.0f} px", p)
            c.setItemData(c.count() - 1, f"{p.size[0]}x{p.size[1]}, {p.source}; measured {p.created}" + (
                f"; reprojection error {p.reprojection_error_px:.2f} px" if p.reprojection_error_px else ""),
                Qt.ToolTipRole)
            if cur is not None and p.to_dict() == cur.to_dict():
                c.setCurrentIndex(c.count() - 1)
        if cur is None:
            c.setCurrentIndex(0)

    def forget_profile(self, confirm: bool = True) -> bool:
        """Camera ▸ Forget this camera profile: delete the profile in use from the profile folder, after asking."""
        prof = self.camera_profile
        if prof is None:
            self.banner.show_message("No camera profile is in use.", "warning")
            return False
        from mocap_app.calibration.profile import profile_path, remove_profile
        if confirm and QMessageBox.question(
                self, "Forget camera profile",
                f"Forget the camera profile '{prof.name}' (focal {prof.fx_px:.0f} px)?\n\nIts file "
                f"{profile_path(prof.name)} is deleted. Takes already made keep the camera they were lifted with.",
                QMessageBox.Yes | QMessageBox.Cancel, QMessageBox.Cancel) != QMessageBox.Yes:
            return False
        try:
            gone = remove_profile(prof.name)
        except OSError as e:
            self.banner.show_message(f"Cannot delete the profile '{prof.name}': {e.strerror or e}.")
            return False
        self.set_camera_profile(None)
        self.banner.show_message(f"Forgot camera profile '{prof.name}'" + (f" (deleted {gone})." if gone else ".")
                                 + " The next runs assume a 70° field of view until a camera is chosen or calibrated.",
                                 "info")
        return True

    def _on_profile_picked(self, index: int) -> None:
        prof = self.profile_combo.itemData(index)
        if prof is None:
            self.set_camera_profile(None)
            self.banner.show_message("No camera profile: the next runs assume a 70° diagonal field of view unless a "
                                     "focal length is typed.", "info")
        else:
            self.set_camera_profile(prof, offer_relift=True)

    def _show_camera(self, intr, source: str) -> None:
        """Status bar: which camera model the run or the take on screen uses."""
        if intr is None:
            self.camera_label.setText("")
            return
        what = {"profile": "profile", "cli focal": "focal given", "cli horizontal fov": "FOV given",
                "default fov": "guessed 70°"}.get(source, source)
        if source == "profile" and self.camera_profile is not None and self.worker is not None:
            what = f"profile '{self.camera_profile.name}'"
        self.camera_label.setText(f"Camera: {intr.fx_px:.0f} px ({what})")
        self.camera_label.setToolTip(f"{intr.width_px}x{intr.height_px}, fx {intr.fx_px:.1f} fy {intr.fy_px:.1f}, "
                                     f"principal point {intr.cx_px:.1f}, {intr.cy_px:.1f} px; from: {source}")

    # --------------------------------------------------------------------------- re-lift
    def _on_focal_typed(self) -> None:
        """A focal length typed with a take under review that was lifted with another one: offer to re-lift it."""
        try:
            f = self._focal()
        except ValueError as e:
            self.banner.show_message(sentence(e))
            return
        if f is None or not self._can_relift() or abs(f / self.clip.intrinsics.fx_px - 1) < 1e-3:
            return
        self.banner.show_message(f"Focal length {f:g} px will be used for the next runs. The take under review was "
                                 f"lifted with {self.clip.intrinsics.fx_px:.0f} px.", "info",
                                 action=("Re-lift this take", self.relift_take))

    def _can_relift(self) -> bool:
        return (self.clip is not None and self.worker is None and self._relift_thread is None
                and bool(self.clip.person.any()))

    def _changes_take(self, prof) -> bool:
        """Whether ``prof`` applies to the take under review (its aspect ratio) and gives it another focal length."""
        try:
            intr = prof.intrinsics(self.clip.intrinsics.width_px, self.clip.intrinsics.height_px)
        except ValueError:   # another aspect ratio: another camera, nothing to offer
            return False
        return abs(intr.fx_px / self.clip.intrinsics.fx_px - 1) > 1e-3

    def _camera_chooser(self, take_camera: bool = False):
        """``(w, h) -> (CameraIntrinsics, source)`` or None: the typed focal length, else the camera profile (else,
        with ``take_camera``, the calibrated camera the take under review was made with, at its own size). The
        widgets are read now, on the UI thread, so the function may run on a worker thread. Raises ValueError for a
        focal length typed wrong."""
        from engines.camera import CameraIntrinsics
        focal, profile = self._focal(), self.camera_profile
        clip = self.clip
        take = clip if take_camera and clip is not None and clip.intrinsics_source != "default fov" else None

        def choose(w: int, h: int):
            if focal is not None:
                return CameraIntrinsics.from_focal(focal, w, h), "cli focal"
            if profile is not None:
                return profile.intrinsics(w, h), "profile"
            if take is not None and (take.intrinsics.width_px, take.intrinsics.height_px) == (w, h):
                return take.intrinsics, take.intrinsics_source
            return None
        return choose

    def _placement_camera(self):
        """The camera model for Camera placement's board image (``_camera_chooser`` with the take's camera), raising
        ValueError (a sentence) without one: a guessed focal length would give a wrong tilt and height."""
        try:
            choose, why = self._camera_chooser(take_camera=True), ""
        except ValueError as e:
            choose, why = (lambda w, h: None), str(e)

        def camera(w: int, h: int):
            cam = choose(w, h)
            if cam is None:
                raise ValueError(why or "the camera is not calibrated: calibrate it (Camera ▸ Calibrate camera) or "
                                 "type its focal length in the toolbar first; a guessed focal length gives a wrong "
                                 "tilt and height")
            return cam
        return camera

    def _relift_camera(self, clip: Clip):
        """The camera the next run would use, at the take's size: typed focal > profile. Raises ValueError."""
        cam = self._camera_chooser()(clip.intrinsics.width_px, clip.intrinsics.height_px)
        if cam is None:
            raise ValueError("there is no camera to re-lift with: type the focal length in the toolbar or calibrate "
                             "the camera (Camera ▸ Calibrate camera) first")
        return cam

    def relift_take(self) -> bool:
        """Lift the take under review again from its 2D keypoints with the current camera, off the UI thread.

        The same engine that made the take; AbsPoseLifter with the app's weights; ZeDO again if the take was refined.
        The old take is kept for *Undo* until another take replaces it.
        """
        if not self._can_relift():
            why = ("The take is already being re-lifted." if self._relift_thread is not None else
                   "Stop the capture first." if self.worker is not None else
                   "Nothing to re-lift: open or record a take first." if self.clip is None else
                   "The take has no frame with a person to re-lift.")
            self.banner.show_message(why, "warning")
            return False
        old = self.clip
        try:
            intr, src = self._relift_camera(old)
        except ValueError as e:
            self.banner.show_message(sentence(e), "warning")
            return False
        engine = (old.engine or {}).get("name") or "absposelifter"
        refine = str((old.engine or {}).get("refine") or "")
        weights = self.weights if engine == "absposelifter" else None

        def work():
            new, err = None, ""
            try:
                from mocap_app.pipeline import relift_clip
                new = relift_clip(old, intr, src, engine=engine, weights=weights)
                if refine.startswith("zedo"):
                    from engines.zedo.refine import refine_clip
                    new = refine_clip(new)
            except Exception as e:  # noqa: BLE001 - one sentence in the banner; the take under review stays
                log.warning("re-lift failed", exc_info=True)
                new, err = None, str(e) or type(e).__name__
            try:
                self.relift_done.emit(old, new, err)
            except RuntimeError:     # the window was closed meanwhile: nothing left to show it in
                pass

        self._relift_thread = threading.Thread(target=work, name="relift", daemon=True)
        self._relift_thread.start()
        self.state_label.setText(f"Re-lifting {int(old.person.sum())} frames with focal {intr.fx_px:.0f} px...")
        self._update_state()
        return True

    def _on_relift_done(self, old: Clip, new: Clip | None, err: str) -> None:
        self._relift_thread = None
        if old is not self.clip:   # another take replaced it meanwhile: drop the result
            self._update_state()
            return
        if new is None:
            self.banner.show_message(f"The take could not be re-lifted ({err}); it is unchanged.")
            self.state_label.setText("Re-lift failed")
            self._update_state()
            return
        trim = self.timeline.trim
        was_saved = self.clip_saved
        shown = self._align(new)
        self.set_review_clip(shown, saved=False)
        self.timeline.set_trim(*trim)
        z0, z1 = (np.nanmedian(np.linalg.norm(c.joints_cam_mm[:, J["pelvis"]], axis=-1)) / 1000 for c in (old, new))

        def undo():
            if self.clip is shown:   # not once another take replaced it
                self.set_review_clip(old, saved=was_saved)
                self.timeline.set_trim(*trim)
                self.banner.show_message("Re-lift undone: the take is as it was.", "info")

        self.banner.show_message(
            f"Re-lifted {int(new.person.sum())} frames with focal {new.intrinsics.fx_px:.0f} px (was "
            f"{old.intrinsics.fx_px:.0f} px): the person is now {z1:.2f} m from the camera (was {z0:.2f} m). "
            "Save or export to keep it.", "info", action=("Undo", undo))
        self.state_label.setText("Re-lifted")
        self._update_state()

    # ------------------------------------------------------------------------- state/close
    def _update_state(self) -> None:
        running = self.worker is not None
        st = self.style()
        self.act_start.setText("Stop" if running else "Start")
        self.act_start.setIcon(st.standardIcon(st.StandardPixmap.SP_MediaStop if running
                                               else st.StandardPixmap.SP_MediaPlay))
        self.act_start.setEnabled(running or self.source is not None)
        live = running and self.worker.config.live
        self.act_record.setEnabled(not running or live)
        if running and not live:
            self.act_record.setChecked(True)
        has_clip = self.clip is not None and not running
        self.act_save.setEnabled(has_clip)
        self.act_export.setEnabled(has_clip)
        self.timeline.setEnabled(has_clip)
        self.source_combo.setEnabled(not running)
        self.engine_combo.setEnabled(not running)
        self.act_zedo.setEnabled(not running and self._zedo_installed)
        self.act_lr_fix.setEnabled(not running)
        self.act_weights.setEnabled(not running)
        self.act_bundled.setEnabled(not running and self.weights is not None)
        self.act_next_flag.setEnabled(has_clip and bool(self.timeline.flags.any()))
        self.act_relift.setEnabled(self._can_relift())
        self.act_forget.setEnabled(self.camera_profile is not None and not running)
        self.focal_edit.setEnabled(not running)
        self.profile_combo.setEnabled(not running)
        title = "mocap"
        if isinstance(self.source, str):
            title += f" - {Path(self.source).name}"
        if self.clip is not None and not self.clip_saved:
            title += " *"
        self.setWindowTitle(title)

    def has_unsaved(self) -> bool:
        w = self.worker
        return (self.clip is not None and not self.clip_saved) or (
            w is not None and w.recording and w.recorded > 0)

    def _confirm_discard(self) -> bool:
        """Ask before dropping an unsaved take: Save (clip JSON), Discard, Cancel."""
        if not self.has_unsaved():
            return True
        box = QMessageBox(QMessageBox.Warning, "Unsaved take",
                          "The recorded take has not been saved or exported. Save it first?",
                          QMessageBox.Save | QMessageBox.Discard | QMessageBox.Cancel, self)
        box.setInformativeText(f"An autosave is kept in {self.autosave_path.parent}." if self.autosave_path else "")
        ans = box.exec()
        if ans == QMessageBox.Cancel:
            return False
        if ans == QMessageBox.Save:
            if self.worker is not None:
                self.stop_pipeline(wait=True)
            self.save_clip_dialog()
            return self.clip_saved
        self.clip_saved = True
        return True

    def closeEvent(self, ev) -> None:
        if not self._confirm_discard():
            ev.ignore()
            return
        self._save_settings()
        if self.worker is not None:
            w = self.worker
            self.worker = None
            w.stop(5.0)
        self.renderer.close()
        if self._review_cap is not None:
            self._review_cap.release()
        ev.accept()

    # --------------------------------------------------------------------------- drag & drop
    def dragEnterEvent(self, ev) -> None:
        urls = ev.mimeData().urls() if ev.mimeData().hasUrls() else []
        if urls and Path(urls[0].toLocalFile()).suffix.lower() in VIDEO_EXTS | {".json"}:
            ev.acceptProposedAction()
        else:
            ev.ignore()

    def dropEvent(self, ev) -> None:
        urls = ev.mimeData().urls()
        if urls:
            ev.acceptProposedAction()
            self.open_path(urls[0].toLocalFile())

    def _on_smoothing(self, v: int) -> None:
        if self.worker is not None:
            self.worker.set_smoothing(v / 100.0)


def _install_excepthook(win_ref: list) -> None:
    """Unexpected errors on the UI thread go to the log and the banner, never to a traceback box."""
    def hook(tp, val, tb):
        log.error("unexpected error", exc_info=(tp, val, tb))
        if win_ref and win_ref[0] is not None:
            win_ref[0].banner.show_message(f"Unexpected error ({tp.__name__}: {val}). Details are in the log.")
    sys.excepthook = hook


BROKEN_PYSIDE = {"6.12.0"}   # drops references to None/True/False on void calls and signal emits -> crashes


def pyside_problem() -> str | None:
    """A sentence when the installed PySide6 is known to crash long sessions, else None."""
    import PySide6
    if PySide6.__version__ in BROKEN_PYSIDE:
        return (f"PySide6 {PySide6.__version__} has a reference-counting bug that crashes the app after a few "
                "minutes; install PySide6-Essentials 6.11.3 (pip install 'PySide6-Essentials==6.11.3').")
    return None


def run_app(argv: list[str] | None = None) -> int:
    """Start the desktop app (``mocap-app`` without arguments)."""
    app = QApplication.instance() or QApplication(sys.argv if argv is None else argv)
    app.setApplicationName("mocap")
    app.setOrganizationName("mocap")
    app.setApplicationDisplayName("mocap")
    if ICON.exists():
        app.setWindowIcon(QIcon(str(ICON)))
    ref: list = [None]
    _install_excepthook(ref)
    args = [a for a in (sys.argv[1:] if argv is None else argv[1:]) if not a.startswith("-")]
    win = MainWindow(ask_file_if_no_camera=not args)   # a file to open: no file dialog
    ref[0] = win
    win.show()
    problem = pyside_problem()
    if problem:
        log.error(problem)
        win.banner.show_message(problem, "error")
    if args:
        QTimer.singleShot(0, lambda: win.open_path(args[0]))
    return app.exec()


if __name__ == "__main__":
    sys.exit(run_app())
