"""Calibrations made by other tools become camera profiles (``mocap_app.calibration.importers``,
``mocap-app calibrate import``, the dialog's *Load profile...*): Pose2Sim / Sports2D TOML (real files: the pose2sim
demo's scene calibration in ../shared, the Sports2D wheel's demo calibration) and OpenCV FileStorage YAML / XML."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from mocap_app.calibration.importers import CalibrationImportError, import_camera, read_cameras

POSE2SIM = Path(__file__).resolve().parents[2] / "shared/data/video/pose2sim_demo_singleperson/calibration"
SCENE = POSE2SIM / "Calib_scene.toml"
needs_scene = pytest.mark.skipif(not SCENE.exists(), reason="needs the pose2sim demo in ../shared")


@needs_scene
def test_a_pose2sim_scene_calibration_gives_each_camera_and_where_it_stands():
    import tomllib

    from mocap_app.world import pitch_roll_from_up
    cams = read_cameras(SCENE)
    assert [c.profile.name for c in cams] == [f"int_cam0{i}_img" for i in range(1, 5)]
    raw = tomllib.loads(SCENE.read_text())["int_cam03_img"]
    p = cams[2].profile
    assert (p.width_px, p.height_px) == (1088, 1920) and p.source == "imported from Calib_scene.toml"
    assert (p.fx_px, p.fy_px, p.cx_px, p.cy_px) == (raw["matrix"][0][0], raw["matrix"][1][1], raw["matrix"][0][2],
                                                     raw["matrix"][1][2])
    assert p.dist_coeffs == tuple(raw["distortions"])
    # the placement from the file's extrinsics (Pose2Sim's own calibration of the scene) against the Qualisys
    # system's (calib_opencv_from_qca.json): the same cameras, measured by two systems
    truth = json.loads((POSE2SIM / "calib_opencv_from_qca.json").read_text())["cameras"]
    for i, cam in enumerate(cams, 1):
        t = truth[f"cam0{i}"]
        pitch, roll = pitch_roll_from_up(np.asarray(t["R_world_to_cam"]) @ [0.0, 0.0, 1.0])
        pl = cam.placement
        assert abs(pl.pitch_deg - pitch) < 3 and abs(pl.roll_deg - roll) < 3, (i, pl, pitch, roll)
        assert abs(pl.camera_height_m - t["camera_center_world_m"][2]) < 0.1, (i, pl)
        assert f"lens {pl.camera_height_m:.2f} m above the floor" in cam.profile.notes
    assert import_camera(SCENE, "3").profile == p                     # by number from 1
    assert import_camera(SCENE, "int_cam03_img", name="cam03").profile.name == "cam03"
    with pytest.raises(CalibrationImportError, match="holds 4 cameras .*int_cam01_img.*pick one with --camera"):
        import_camera(SCENE)
    with pytest.raises(CalibrationImportError, match="no camera 'cam9'"):
        import_camera(SCENE, "cam9")


def test_the_sports2d_demo_calibration(sports2d_calibration):
    cam = import_camera(sports2d_calibration)
    p = cam.profile
    assert (p.name, p.width_px, p.height_px) == ("demo", 1768, 994)
    assert p.fx_px == pytest.approx(2520.0897058227038) and (p.cx_px, p.cy_px) == (884.0, 497.0)
    assert not any(p.dist_coeffs) and p.lens_summary() == ""


def test_opencv_yaml_and_xml(tmp_path):
    """As OpenCV's calibration sample writes them (image_width / image_height, camera_matrix,
    distortion_coefficients), and the other common key names with image_size."""
    import cv2
    y = tmp_path / "desk_cam.yml"
    fs = cv2.FileStorage(str(y), cv2.FILE_STORAGE_WRITE)
    fs.write("image_width", 1280)
    fs.write("image_height", 720)
    fs.write("camera_matrix", np.array([[900.0, 0, 641.5], [0, 902.0, 359.0], [0, 0, 1]]))
    fs.write("distortion_coefficients", np.array([[-0.21, 0.05, 0.001, -0.002, 0.0]]))
    fs.release()
    p = import_camera(y).profile
    assert (p.name, p.width_px, p.height_px, p.fx_px, p.fy_px, p.cx_px, p.cy_px) == ("desk_cam", 1280, 720, 900.0,
                                                                                      902.0, 641.5, 359.0)
    assert p.dist_coeffs == pytest.approx((-0.21, 0.05, 0.001, -0.002, 0.0))
    x = tmp_path / "phone.xml"
    fs = cv2.FileStorage(str(x), cv2.FILE_STORAGE_WRITE)
    fs.write("image_size", (1920, 1080))
    fs.write("cameraMatrix", np.array([[1400.0, 0, 960], [0, 1400.0, 540], [0, 0, 1]]))
    fs.write("distCoeffs", np.zeros(5))
    fs.release()
    p = import_camera(x).profile
    assert (p.width_px, p.height_px, p.fx_px) == (1920, 1080, 1400.0) and import_camera(x).placement is None
    nosize = tmp_path / "nosize.yml"
    fs = cv2.FileStorage(str(nosize), cv2.FILE_STORAGE_WRITE)
    fs.write("K", np.eye(3) * 800)
    fs.release()
    with pytest.raises(CalibrationImportError, match="no image size"):
        import_camera(nosize)


def test_files_that_are_not_a_camera(tmp_path):
    fisheye = tmp_path / "gopro.toml"                     # a fisheye camera keeps its lens model
    fisheye.write_text('[gopro]\nsize = [1920.0, 1080.0]\nmatrix = [[900.0, 0.0, 960.0], [0.0, 900.0, 540.0], '
                       '[0.0, 0.0, 1.0]]\ndistortions = [0.1, 0.0, 0.0, 0.0]\nfisheye = true\n')
    p = import_camera(fisheye).profile
    assert p.lens_model == "fisheye" and p.dist_coeffs == (0.1, 0.0, 0.0, 0.0)
    assert p.intrinsics().lens_model == "fisheye" and "fisheye lens" in p.lens_summary()
    fisheye.write_text(fisheye.read_text().replace("[0.1, 0.0, 0.0, 0.0]", "[0.1, 0.0, 0.0, 0.0, 0.0]"))
    with pytest.raises(Exception, match="fisheye lens has 4 distortion coefficients"):
        import_camera(fisheye)
    absurd = tmp_path / "absurd.toml"
    absurd.write_text('[c]\nsize = [1920.0, 1080.0]\nmatrix = [[5.0, 0.0, 960.0], [0.0, 5.0, 540.0], '
                      '[0.0, 0.0, 1.0]]\ndistortions = [0.0, 0.0, 0.0, 0.0]\n')
    with pytest.raises(Exception, match="plausible range"):       # the profile's own validation
        import_camera(absurd)
    broken = tmp_path / "broken.toml"
    broken.write_text("[c\nsize = ")
    with pytest.raises(CalibrationImportError, match="not valid TOML"):
        import_camera(broken)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(CalibrationImportError, match="not a calibration file this app reads"):
        import_camera(tmp_path / "notes.txt")
    with pytest.raises(CalibrationImportError, match="not found"):
        import_camera(tmp_path / "missing.toml")
    meta = tmp_path / "meta.toml"
    meta.write_text("[metadata]\nadjusted = false\n")
    with pytest.raises(CalibrationImportError, match="holds no camera"):
        import_camera(meta)


@needs_scene
def test_calibrate_import_cli(tmp_path, capsys, monkeypatch):
    from mocap_app.cli import main
    from mocap_app.calibration.profile import resolve_profile
    monkeypatch.setenv("MOCAP_CAMERA_DIR", str(tmp_path / "cameras"))
    assert main(["calibrate", "import", str(SCENE), "--camera", "int_cam03_img", "--name", "cam03"]) == 0
    out = capsys.readouterr().out
    assert "'cam03' 1088x1920, fx=1678.8" in out and "lens distortion: up to" in out
    assert "--pitch -22.8 --roll 1.9 --camera-height 2.02" in out          # ready for `process`
    assert resolve_profile("cam03").fx_px == pytest.approx(1678.7524092974595)
    assert main(["calibrate", "import", str(SCENE)]) == 3
    assert "holds 4 cameras" in capsys.readouterr().err
    assert main(["calibrate", "import", str(tmp_path / "nothing.toml")]) == 3
    assert "not found" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "cameras" / "int_cam01_img.json")


@needs_scene
def test_the_dialog_loads_a_scene_calibration_and_the_app_uses_its_placement(qtbot, tmp_path, monkeypatch):
    """*Load profile...* with a file of several cameras asks which; the scene's placement is offered (ticked); the
    app then uses both the camera and its placement."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    pytest.importorskip("pytestqt")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QDialogButtonBox, QInputDialog

    from qt_modal import when_modal

    from mocap_app.calibration.dialog import CalibrationDialog
    from mocap_app.ui.main_window import MainWindow
    monkeypatch.setenv("MOCAP_CAMERA_DIR", str(tmp_path / "cameras"))

    def pick(dlg, seen):
        assert isinstance(dlg, QInputDialog)
        seen["items"] = dlg.comboBoxItems()
        dlg.setTextValue("int_cam02_img")
        dlg.accept()
    seen = when_modal(pick)
    d = CalibrationDialog(size_wh=(1088, 1920))
    qtbot.addWidget(d)
    assert d.load_profile(SCENE).name == "int_cam02_img" and "error" not in seen, seen
    assert seen["items"] == [f"int_cam0{i}_img" for i in range(1, 5)]
    assert not d.placement_check.isHidden() and d.placement_check.isChecked()
    assert "pitch -18.2 deg" in d.placement_check.text() and "lens 1.76 m up" in d.placement_check.text()
    assert d.placement_to_use().camera_height_m == pytest.approx(1.76, abs=0.005)
    from PySide6.QtGui import QImage
    photo = sorted((POSE2SIM / "intrinsics" / "int_cam02_img").glob("*.jpg"))
    if photo:
        d.set_frame(QImage(str(photo[0])))
    d.resize(1100, 700)
    assert d.grab().save(str(Path(__file__).resolve().parents[1] / "notes" / "calibration_dialog_import.png"))
    d.placement_check.setChecked(False)
    assert d.placement_to_use() is None
    seen = when_modal(lambda dlg, s: dlg.reject())                       # cancelling the choice changes nothing
    assert d.load_profile(SCENE) is None and d.profile().name == "int_cam02_img"

    settings = QSettings(str(tmp_path / "app.ini"), QSettings.IniFormat)
    w = MainWindow(settings=settings, prefer_open3d=False, auto_start_files=False)
    qtbot.addWidget(w)
    w.show()

    def load(dlg, seen):
        dlg.load_profile(SCENE, camera="int_cam04_img")
        dlg.buttons.button(QDialogButtonBox.Ok).click()
    seen = when_modal(load)
    w.open_calibration()
    assert "error" not in seen, seen
    assert w.camera_profile.name == "int_cam04_img" and w.placement.complete
    assert w.placement.roll_deg == pytest.approx(25.36, abs=0.01)
    assert "Camera placement: pitch -21.8 deg" in w.banner.text() and "'int_cam04_img' will be used" in w.banner.text()
    assert json.loads(settings.value("camera/placement"))["camera_height_m"] == pytest.approx(1.934, abs=0.001)
    w.clip_saved = True
    w.close()
