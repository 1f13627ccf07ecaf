"""The camera's placement from one image of a board lying flat on the floor (``mocap_app.calibration.floor``,
``mocap-app calibrate floor``, Camera ▸ Camera placement ▸ *Measure with a board on the floor*).

No real photo of a board on a floor with a measured camera exists here, so the board is rendered flat on the floor
into a real photo of the pose2sim lab through a camera of known pitch, roll and height, and then seen through a wide
lens (the frame warped with OpenCV's distortion model), as a webcam would see it.
"""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from lens_images import chessboard_image, through_lens  # a tests/ helper

from engines.camera import CameraIntrinsics
from mocap_app.calibration.checkerboard import BoardNotFoundError, BoardSpec
from mocap_app.calibration.floor import placement_from_floor_board
from mocap_app.calibration.profile import CalibrationError
from mocap_app.world import rotation_cam_to_world, up_from_pitch_roll

ROOM = (Path(__file__).resolve().parents[2]
        / "shared/data/video/pose2sim_demo_singleperson/calibration/extrinsics/cam03_ext.png")
SPEC = BoardSpec(4, 7, 60.0)            # the pose2sim board: 4x7 inner corners, 60 mm squares
LENS = CameraIntrinsics(1088, 1920, 1681.0, 1681.0, 543.5, 959.5, (-0.35, 0.12, 0.0015, -0.001, 0.0))
pytestmark = pytest.mark.skipif(not ROOM.exists(), reason="needs the pose2sim demo photos in ../shared")


def render(pitch_deg, roll_deg, height_m, ahead_m, lens=LENS, spec=SPEC, yaw_deg=20.0, side_m=-0.15):
    """The room photo with ``spec`` lying on the floor ``ahead_m`` in front of a camera at ``height_m`` (world Y up,
    camera looking along -Z), seen through ``lens``."""
    room = cv2.imread(str(ROOM))
    sq = 20                                               # board image: px per square
    board = chessboard_image(spec, sq)
    first_corner = np.array([[1, 0, 2 * sq], [0, 1, 2 * sq], [0, 0, 1]], float)     # board (0, 0) mm
    world_to_cam = rotation_cam_to_world(up_from_pitch_roll(pitch_deg, roll_deg)).T
    a = np.radians(yaw_deg)
    x_axis, z_axis = np.array([np.cos(a), 0, np.sin(a)]), np.array([-np.sin(a), 0, np.cos(a)])
    origin = np.array([side_m * 1000, 0.0, -ahead_m * 1000]) - np.array([0.0, height_m * 1000, 0.0])
    H = (lens.pinhole.K @ np.column_stack([world_to_cam @ x_axis, world_to_cam @ z_axis, world_to_cam @ origin])
         @ np.diag([spec.square_mm / sq, spec.square_mm / sq, 1]) @ np.linalg.inv(first_corner))
    size = (lens.width_px, lens.height_px)
    pinhole = room.copy()
    mask = cv2.warpPerspective(np.ones_like(board), H, size, flags=cv2.INTER_NEAREST) > 0
    pinhole[mask] = cv2.warpPerspective(board, H, size, flags=cv2.INTER_AREA)[mask][:, None]
    return through_lens(pinhole, lens)


@pytest.mark.parametrize("pitch, roll, height, ahead", [(-30.0, 4.0, 1.6, 2.2), (-18.0, -7.0, 1.1, 2.0),
                                                         (-45.0, 1.0, 2.4, 1.8)])
def test_placement_from_a_board_on_the_floor(pitch, roll, height, ahead):
    res = placement_from_floor_board(render(pitch, roll, height, ahead), SPEC, LENS)
    p = res.placement
    assert abs(p.pitch_deg - pitch) < 0.3 and abs(p.roll_deg - roll) < 0.3, p
    assert abs(p.camera_height_m - height) < 0.01, p
    assert res.rms_px < 0.5 and not res.warnings
    thick = placement_from_floor_board(render(pitch, roll, height, ahead), SPEC, LENS, board_thickness_mm=12.0)
    assert thick.placement.camera_height_m == pytest.approx(p.camera_height_m + 0.012, abs=1e-6)


def test_what_cannot_be_measured():
    with pytest.raises(BoardNotFoundError, match="not found in the image"):
        placement_from_floor_board(cv2.imread(str(ROOM)), SPEC, LENS)          # the real room, no board
    img = render(-30.0, 4.0, 1.6, 2.2)
    with pytest.raises(CalibrationError, match="is for 1920x1080 but the image is 1088x1920"):
        placement_from_floor_board(img, SPEC, CameraIntrinsics.from_focal(1400.0, 1920, 1080))
    with pytest.raises(CalibrationError, match="board thickness"):
        placement_from_floor_board(img, SPEC, LENS, board_thickness_mm=-5)
    # a camera 0.45 m up looking along the floor sees the board nearly edge-on: refused, not a poor answer
    with pytest.raises(CalibrationError, match="seen too flat"):
        placement_from_floor_board(render(-12.0, 0.0, 0.45, 2.0, yaw_deg=0.0, side_m=-0.15), SPEC, LENS)
    # a wrong camera model (the lens ignored, the focal length 20 % off) fits worse and says so
    wrong = CameraIntrinsics.from_focal(1681.0 * 0.8, 1088, 1920)
    res = placement_from_floor_board(render(-30.0, 4.0, 1.6, 2.2, side_m=0.25), SPEC, wrong)
    assert res.rms_px > placement_from_floor_board(render(-30.0, 4.0, 1.6, 2.2, side_m=0.25), SPEC, LENS).rms_px


def test_calibrate_floor_cli(tmp_path, capsys, monkeypatch):
    from mocap_app.calibration.profile import CameraProfile, save_profile
    from mocap_app.cli import main
    monkeypatch.setenv("MOCAP_CAMERA_DIR", str(tmp_path / "cameras"))
    save_profile(CameraProfile.from_intrinsics("wide", LENS, "checkerboard"))
    img = tmp_path / "floor.png"
    cv2.imwrite(str(img), render(-30.0, 4.0, 1.6, 2.2))
    args = ["calibrate", "floor", str(img), "--pattern", "4x7", "--square-mm", "60"]
    assert main(args + ["--calibration", "wide"]) == 0
    out = capsys.readouterr().out
    assert "pitch -30.0 deg, roll 4.0 deg, lens 1.600 m above the floor" in out
    assert "--pitch -30.0 --roll 4.0 --camera-height 1.600" in out
    assert main(args[:2] + [str(ROOM)] + args[3:] + ["--focal-px", "1681"]) == 3
    assert "was not found in the image" in capsys.readouterr().err
    video = tmp_path / "floor.avi"                          # the board filmed: its first frame is measured
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (1088, 1920))
    out.set(cv2.VIDEOWRITER_PROP_QUALITY, 100)
    for _ in range(3):
        out.write(cv2.imread(str(img)))
    out.release()
    assert main(args[:2] + [str(video)] + args[3:] + ["--calibration", "wide"]) == 0
    assert "pitch -30.0 deg, roll 4.0 deg" in capsys.readouterr().out
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    assert main(args[:2] + [str(notes)] + args[3:] + ["--focal-px", "1681"]) == 3
    assert "could not be read as an image or a video" in capsys.readouterr().err
    with pytest.raises(SystemExit):                      # a camera model is required
        main(args)
    assert "one of the arguments --calibration --focal-px is required" in capsys.readouterr().err


def test_the_placement_dialog_measures_a_board_off_the_ui_thread(qtbot):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    from mocap_app.ui.placement_dialog import PlacementDialog
    frame = render(-18.0, -7.0, 1.1, 2.0)
    dlg = PlacementDialog(camera=lambda w, h: (LENS, "profile"), frame=frame)
    qtbot.addWidget(dlg)
    dlg.board_cols.setValue(4)
    dlg.board_rows.setValue(7)
    dlg.board_square.setValue(60.0)
    assert dlg.board_frame_button.isEnabled() and not any(c.isChecked() for c in dlg.checks.values())
    with qtbot.waitSignal(dlg.boardDone, timeout=30_000):
        assert dlg.measure_board(frame)
        assert not dlg.board_frame_button.isEnabled()          # it returned at once; the work is on a thread
    p = dlg.placement()
    assert p.complete and abs(p.pitch_deg + 18.0) < 0.3 and abs(p.roll_deg + 7.0) < 0.3
    assert abs(p.camera_height_m - 1.1) < 0.01 and "From the board 2." in dlg.board_info.text()
    dlg.resize(620, dlg.sizeHint().height())
    assert dlg.grab().save(str(Path(__file__).resolve().parents[1] / "notes" / "calibration_placement_board.png"))
    # no camera model, or no board: one sentence, the fields as they were
    uncalibrated = PlacementDialog(camera=lambda w, h: (_ for _ in ()).throw(ValueError("the camera is not "
                                                                                        "calibrated: calibrate it")))
    qtbot.addWidget(uncalibrated)
    assert not uncalibrated.board_frame_button.isEnabled()   # no frame from the app
    with qtbot.waitSignal(uncalibrated.boardDone, timeout=30_000):
        uncalibrated.measure_board(frame)
    assert uncalibrated.board_info.text() == "The camera is not calibrated: calibrate it."
    assert not any(c.isChecked() for c in uncalibrated.checks.values())
    with qtbot.waitSignal(dlg.boardDone, timeout=30_000):
        dlg.measure_board(str(ROOM))
    assert "was not found in the image" in dlg.board_info.text() and dlg.placement().complete   # kept


def test_the_app_gives_the_dialog_its_camera(qtbot, tmp_path):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from mocap_app.calibration.profile import CameraProfile
    from mocap_app.ui.main_window import MainWindow
    w = MainWindow(settings=QSettings(str(tmp_path / "app.ini"), QSettings.IniFormat), prefer_open3d=False,
                   auto_start_files=False)
    qtbot.addWidget(w)
    with pytest.raises(ValueError, match="not calibrated"):
        w._placement_camera()(1088, 1920)                    # a guessed focal length is refused
    w.set_camera_profile(CameraProfile.from_intrinsics("wide", LENS, "checkerboard"))
    intr, src = w._placement_camera()(544, 960)              # scaled to a smaller image
    assert src == "profile" and intr.fx_px == pytest.approx(840.5) and intr.dist_coeffs == LENS.dist_coeffs
    w.focal_edit.setText("1500")
    camera = w._placement_camera()
    assert camera(1088, 1920)[0].fx_px == 1500.0
    # the board is measured on a worker thread: the widgets were read when the dialog opened, not then
    w.focal_edit.setText("900")
    assert camera(1088, 1920)[0].fx_px == 1500.0
    w.focal_edit.setText("abc")
    with pytest.raises(ValueError, match="must be a number of pixels"):
        w._placement_camera()(1088, 1920)
    w.clip_saved = True
    w.close()


def test_the_board_is_typed_once(qtbot, tmp_path):
    """The board set in the calibration dialog comes back there and in the placement dialog, also after a restart."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings

    from qt_modal import when_modal

    from mocap_app.ui.main_window import MainWindow
    settings = QSettings(str(tmp_path / "app.ini"), QSettings.IniFormat)

    def window():
        w = MainWindow(settings=settings, prefer_open3d=False, auto_start_files=False)
        qtbot.addWidget(w)
        return w
    w = window()

    def type_board(dlg, seen):
        dlg.cols_spin.setValue(4)
        dlg.rows_spin.setValue(7)
        dlg.square_spin.setValue(60.0)
        dlg.reject()                                  # remembered even when the dialog is cancelled
    seen = when_modal(type_board)
    w.open_calibration()
    assert "error" not in seen, seen

    def look(dlg, seen):
        seen["board"] = (dlg.board_cols.value(), dlg.board_rows.value(), dlg.board_square.value())
        dlg.reject()
    seen = when_modal(look)
    w.open_placement()
    assert seen.get("board") == (4, 7, 60.0), seen
    w.clip_saved = True
    w.close()
    w2 = window()                                     # a restart

    def look_again(dlg, seen):
        seen["board"] = (dlg.cols_spin.value(), dlg.rows_spin.value(), dlg.square_spin.value(),
                         dlg.charuco_check.isChecked())
        dlg.reject()
    seen = when_modal(look_again)
    w2.open_calibration()
    assert seen.get("board") == (4, 7, 60.0, False), seen
    settings.setValue("calibration/board", "{not json")  # a damaged setting: the defaults, no error
    seen = when_modal(look)
    w2.open_placement()
    assert seen.get("board") == (9, 6, 25.0), seen
    w2.clip_saved = True
    w2.close()


def test_current_frame_is_the_reviewed_frame_at_full_size(qtbot, tmp_path):
    """*Current frame* in the placement dialog measures the take's frame on screen at the video's full size (the
    screen shows a copy scaled to 720 px): here the real cam03 frame, which has no board on the floor."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    video = ROOM.parents[2] / "videos" / "cam03.mp4"
    if not video.exists():
        pytest.skip("needs the pose2sim demo video")
    from PySide6.QtCore import QSettings

    from qt_modal import when_modal

    from mocap_app.pipeline import process_video
    from mocap_app.ui.main_window import MainWindow
    w = MainWindow(settings=QSettings(str(tmp_path / "app.ini"), QSettings.IniFormat), prefer_open3d=False,
                   auto_start_files=False)
    qtbot.addWidget(w)
    w.set_review_clip(process_video(video, focal_px=1681.0, max_frames=3), saved=True)   # a calibrated take
    w.show_clip_frame(1)
    assert w._review_full.shape == (1920, 1088, 3) and max(w.video._img.height(), w.video._img.width()) == 720

    def measure(dlg, seen):
        seen["enabled"] = dlg.board_frame_button.isEnabled()
        with qtbot.waitSignal(dlg.boardDone, timeout=30_000):
            dlg.board_frame_button.click()
        seen["info"] = dlg.board_info.text()
        dlg.reject()
    seen = when_modal(measure)
    w.open_placement()
    assert seen.get("enabled") and "was not found in the image" in seen.get("info", ""), seen
    w.clip_saved = True
    w.close()
