"""The desktop app end to end under Xvfb: open a real clip, process it (live views + Open3D 3D view),
screenshot while it plays, scrub, trim, export BVH through the real dialog, drag & drop a clip,
ask before closing an unsaved take, and restore settings.

Needs Xvfb (for OpenGL: Qt's offscreen platform has none); skipped with the reason otherwise.
The screenshot is kept as a test artifact in ``.cache/test-artifacts/ui_screenshot.png`` (git-ignored;
``notes/ui_screenshot.png`` is a reviewed copy).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")
pytest.importorskip("pyqtgraph")

from mocap_app.ui.xvfb import ensure_display  # noqa: E402
from qt_modal import click_when_modal  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VIDEO = Path("/work/shared/data/video/pose2sim_demo_singleperson/videos/cam03.mp4")
WEIGHTS = REPO / "assets" / "absposelifter" / "absposelifter.pt"
SCREENSHOT = REPO / ".cache" / "test-artifacts" / "ui_screenshot.png"
FRAMES = 24

pytestmark = [
    pytest.mark.skipif(not VIDEO.exists(), reason=f"demo video missing: {VIDEO}"),
    pytest.mark.skipif(not WEIGHTS.exists(), reason=f"lifter weights missing: {WEIGHTS}"),
]


@pytest.fixture(scope="session", autouse=True)
def _display():
    if ensure_display() is None:
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    yield


def _need_x():
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        pytest.skip("Xvfb is not installed (apt install xvfb): the 3D view needs an X display with OpenGL")


def _array(img) -> np.ndarray:
    from PySide6.QtGui import QImage
    img = img.convertToFormat(QImage.Format_RGB888)
    a = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(img.height(), img.bytesPerLine())
    return a[:, : img.width() * 3].reshape(img.height(), img.width(), 3).copy()


def _region(shot: np.ndarray, widget, window) -> np.ndarray:
    tl = widget.mapTo(window, widget.rect().topLeft())
    dpr = shot.shape[1] / window.width()
    x, y = int(tl.x() * dpr), int(tl.y() * dpr)
    return shot[y:y + int(widget.height() * dpr), x:x + int(widget.width() * dpr)]


@pytest.fixture(scope="module")
def app_state(tmp_path_factory):
    return {"tmp": tmp_path_factory.mktemp("ui_app")}


def test_process_screenshot_scrub_trim_export(qtbot, app_state, monkeypatch):
    _need_x()
    from PySide6.QtCore import QSettings
    from mocap_app.export.bvh import read_bvh
    from mocap_app.ui.main_window import MainWindow
    tmp = app_state["tmp"]
    monkeypatch.setenv("MOCAP_DATA_DIR", str(tmp / "data"))
    monkeypatch.setenv("MOCAP_CAMERA_DIR", str(tmp / "cameras"))
    settings = QSettings(str(tmp / "settings.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.max_frames = FRAMES
    w.resize(1280, 860)
    w.show()
    qtbot.waitUntil(lambda: bool(w.renderer.backend_name), timeout=90_000)
    assert w.renderer.backend_name.startswith("Open3D"), w.renderer.backend_name

    # open a real clip: processing starts on the worker thread, the window stays responsive
    assert w.open_path(VIDEO)
    assert w.worker is not None and w.act_start.text() == "Stop"
    qtbot.waitUntil(lambda: w.frames_drawn >= 8 and len(w.trail) >= 4 and w.view3d.shown_index >= 0,
                    timeout=120_000)
    qtbot.wait(300)
    assert w.progress.isVisible() and "/24" in w.progress.format()
    # no focal length set: the focal-free lifter runs, and the status bar says why (mocap_app.pipeline.lifter_weights)
    assert "fps" in w.fps_label.text()
    assert w.backend_label.text().startswith("3D engine: AbsPoseLifter [focal-free] on ")
    assert "Calibrate" in w.backend_label.toolTip()
    assert w.camera_label.text() == "Camera: 1576 px (guessed 70°)"    # 70 deg across the 1088 x 1920 diagonal

    # screenshot while the clip plays: video, 2D overlay and 3D skeleton all visible
    kp = w.video._kp
    shot_img = w.grab().toImage()
    w.video._kp = None
    bare = _array(w.video.grab().toImage())      # the same frame without the overlay
    w.video._kp = kp
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shot_img.save(str(SCREENSHOT))
    shot = _array(shot_img)
    video = _region(shot, w.video, w)
    view = _region(shot, w.view3d, w)
    lit = (video.astype(int).sum(-1) > 60).mean()
    assert lit > 0.2 and video.std() > 20, "video area is blank"
    h, wd = min(video.shape[0], bare.shape[0]), min(video.shape[1], bare.shape[1])
    overlay = np.abs(video[:h, :wd].astype(int) - bare[:h, :wd].astype(int)).sum(-1) > 60
    assert overlay.sum() > 300, f"2D overlay not visible ({overlay.sum()} changed pixels)"
    from mocap_app.ui.scene3d import BG
    bg = np.array(BG) * 255
    nonbg = (np.abs(view.astype(float) - bg).sum(-1) > 40).mean()
    blue = ((view[..., 2] > 200) & (view[..., 0] < 140) & (view[..., 1] > 120)).sum()     # left limbs
    orange = ((view[..., 0] > 200) & (view[..., 1] > 100) & (view[..., 1] < 190) & (view[..., 2] < 110)).sum()
    assert nonbg > 0.01, "3D view is blank"
    assert blue > 80 and orange > 80, f"3D skeleton not visible (blue {blue}, orange {orange} px)"

    # processing finishes -> the take is under review, unsaved
    qtbot.waitUntil(lambda: w.worker is None, timeout=180_000)
    assert w.clip is not None and len(w.clip) == FRAMES
    assert w.clip.person.sum() >= FRAMES - 2
    assert w.has_unsaved() and w.windowTitle().endswith("*")
    assert "Take ready" in w.banner.text()
    assert w.autosave_path is not None and w.autosave_path.exists()

    # orbit the 3D view with the mouse (the review frame is static): a different image comes back
    qtbot.wait(1500)
    from PySide6.QtCore import QEvent, QPointF, Qt
    from PySide6.QtGui import QMouseEvent
    from PySide6.QtWidgets import QApplication
    before = _array(w.view3d.image())
    c = QPointF(w.view3d.width() / 2, w.view3d.height() / 2)
    QApplication.sendEvent(w.view3d, QMouseEvent(QEvent.MouseButtonPress, c, c, Qt.LeftButton, Qt.LeftButton,
                                                 Qt.NoModifier))
    QApplication.sendEvent(w.view3d, QMouseEvent(QEvent.MouseMove, c + QPointF(120, 0), c + QPointF(120, 0),
                                                 Qt.NoButton, Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(w.view3d, QMouseEvent(QEvent.MouseButtonRelease, c + QPointF(120, 0),
                                                 c + QPointF(120, 0), Qt.LeftButton, Qt.NoButton, Qt.NoModifier))

    qtbot.waitUntil(lambda: not np.array_equal(_array(w.view3d.image()), before), timeout=30_000)

    # scrub: the video and overlay follow the timeline
    w.timeline.slider.setValue(10)
    scale = w.video._img.width() / w.clip.intrinsics.width_px
    np.testing.assert_allclose(w.video._kp, w.clip.keypoints_px[10] * scale, rtol=0.02)
    # trim with the in/out buttons
    w.timeline.slider.setValue(4)
    w.timeline.in_btn.click()
    w.timeline.slider.setValue(19)
    w.timeline.out_btn.click()
    assert w.timeline.trim == (4, 19)
    trimmed = w.trimmed_clip()
    assert len(trimmed) == 16 and trimmed.timestamps_s[0] == w.clip.timestamps_s[4]

    # closing with an unsaved take asks first: Cancel keeps the window
    seen = click_when_modal("Cancel")
    w.close()
    assert w.isVisible() and "error" not in seen, seen.get("error")

    # export BVH through the real dialog: first an invalid input (no format), then a valid one
    out = tmp / "exports"
    out.mkdir()
    errors = []

    def fill(dlg):
        dlg.folder_edit.setText(str(out))
        dlg.name_edit.setText("walk")
        for c in (dlg.bvh_check, dlg.fbx_check, dlg.glb_check):
            c.setChecked(False)
        dlg.accept()                               # refused: stays open with a sentence
        errors.append(dlg.error_label.text())
        dlg.bvh_check.setChecked(True)
        dlg.fps_edit.setText("25")
    seen = click_when_modal("Export", fill)
    dlg = w.export_dialog()
    assert "error" not in seen, seen["error"]
    assert dlg is not None and dlg.request is not None
    assert errors and "format" in errors[0]
    qtbot.waitUntil(lambda: w.last_export is not None, timeout=60_000)
    res, err = w.last_export
    assert err == "", err
    bvh = read_bvh(out / "walk.bvh")
    dur = trimmed.timestamps_s[-1] - trimmed.timestamps_s[0]       # 16 frames of a 60 fps video at 25 fps
    assert bvh.frame_count == res.frames and abs(res.frames - (dur * 25 + 1)) <= 1
    assert bvh.frame_time_s == pytest.approx(1 / 25)
    assert "pelvis" in bvh.names[0].lower() or "hips" in bvh.names[0].lower()
    assert not w.has_unsaved() and f"Exported {res.frames} frames" in w.banner.text()

    # save the trimmed take as a clip for the drag & drop test
    clip_path = tmp / "walk.clip.json"
    assert w.save_clip_to(clip_path)
    app_state["clip"] = clip_path
    w.smooth_slider.setValue(73)
    w.close()                                      # saved: no question
    assert not w.isVisible()
    app_state["settings"] = tmp / "settings.ini"


def test_drag_and_drop_clip_and_settings_restored(qtbot, app_state):
    _need_x()
    if "clip" not in app_state:
        pytest.skip("needs the take exported by the previous test")
    from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from mocap_app.ui.main_window import MainWindow
    settings = QSettings(str(app_state["settings"]), QSettings.IniFormat)
    w = MainWindow(settings=settings, prefer_open3d=False, auto_start_files=False)
    qtbot.addWidget(w)
    w.show()
    assert w.smooth_slider.value() == 73                       # QSettings persisted
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(app_state["clip"]))])
    enter = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    w.dragEnterEvent(enter)
    assert enter.isAccepted()
    w.dropEvent(QDropEvent(QPoint(50, 50), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier))
    assert w.clip is not None and len(w.clip) == 16 and not w.has_unsaved()
    assert w.timeline.trim == (0, 15)
    mime2 = QMimeData()
    mime2.setUrls([QUrl.fromLocalFile("/tmp/notes.txt")])
    enter2 = QDragEnterEvent(QPoint(50, 50), Qt.CopyAction, mime2, Qt.LeftButton, Qt.NoModifier)
    enter2.setAccepted(False)
    w.dragEnterEvent(enter2)
    assert not enter2.isAccepted()
    w.close()
