"""The 3D view: world skeleton on a floor grid, camera frustum, trajectory trail, orbit/zoom/pan.

Design (measured in notes/ui.md): Open3D's legacy ``Visualizer`` renders into a
hidden GLFW window and ``capture_screen_float_buffer`` reads the frame back. That GL
context lives on a dedicated **render thread** (GL contexts are thread-bound, and a
frame costs ~4-14 ms on this 2-core CPU with Mesa llvmpipe, too much to spend on the
UI thread at 30 fps). The thread renders only the newest scene (older ones are
dropped), turns the pixels into a ``QImage`` and hands it to :class:`View3DWidget`,
which just paints the image; mouse drags and the wheel are forwarded as orbit
commands to Open3D's ``ViewControl`` on the render thread.

When Open3D cannot open a GL context (no display, no GL driver) the same thread runs
:class:`PainterBackend`, a numpy + QPainter perspective renderer with the same
controls, so the view never disappears.

Bones are drawn as densely sampled fat points: legacy GL lines are 1 px wide in a
core profile, points honour ``point_size``, and it costs no mesh rebuild per frame.
"""
from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from engines.skeleton import BONES
from mocap_app.ui.scene3d import TRAIL_LEN  # noqa: F401  (re-exported)
from mocap_app.ui.scene3d import (BG, BONE_COLOURS, RENDER_H, RENDER_W, Open3DBackend, Scene, _open3d_child,
                                  frustum_lines, grid_lines)
from mocap_app.ui.widgets import numpy_to_qimage, qimage_to_numpy

log = logging.getLogger(__name__)


class PainterBackend:
    """Fallback without OpenGL: perspective projection in numpy, drawn with QPainter."""
    name = "software (QPainter)"

    def __init__(self, width: int = RENDER_W, height: int = RENDER_H):
        self.w, self.h = width, height
        self.reset_view()

    def reset_view(self, target=(0.0, 0.9, 0.0)) -> None:
        self.yaw, self.pitch, self.dist = math.radians(20), math.radians(20), 5.0
        self.target = np.asarray(target, float)

    def rotate(self, dx: float, dy: float) -> None:
        self.yaw -= dx * 0.006
        self.pitch = float(np.clip(self.pitch + dy * 0.006, -1.45, 1.45))

    def zoom(self, steps: float) -> None:
        self.dist = float(np.clip(self.dist * (0.9 ** steps), 0.5, 50.0))

    def pan(self, dx: float, dy: float) -> None:
        R = self._view_R()
        self.target = self.target - R[0] * dx * self.dist / 800 + R[1] * dy * self.dist / 800

    def _view_R(self) -> np.ndarray:
        cy, sy, cp, sp = math.cos(self.yaw), math.sin(self.yaw), math.cos(self.pitch), math.sin(self.pitch)
        back = np.array([sy * cp, sp, cy * cp])          # from target to eye
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        return np.stack([right, up, back])

    def _project(self, p: np.ndarray) -> np.ndarray:
        R = self._view_R()
        eye = self.target + R[2] * self.dist
        q = (np.asarray(p, float) - eye) @ R.T
        z = np.maximum(-q[:, 2], 1e-3)
        f = 0.9 * self.h
        return np.c_[self.w / 2 + f * q[:, 0] / z, self.h / 2 - f * q[:, 1] / z, -q[:, 2]]

    def render(self, scene: Scene) -> np.ndarray:
        img = QImage(self.w, self.h, QImage.Format_RGB888)
        img.fill(QColor.fromRgbF(*BG))
        p = QPainter(img)
        p.setRenderHint(QPainter.Antialiasing)

        def segs(pts, lines, colour, width):
            uv = self._project(pts)
            p.setPen(QPen(QColor.fromRgbF(*colour), width))
            for a, b in lines:
                if uv[a, 2] > 0.05 and uv[b, 2] > 0.05:
                    p.drawLine(QPointF(uv[a, 0], uv[a, 1]), QPointF(uv[b, 0], uv[b, 1]))

        segs(*grid_lines(), (0.35, 0.37, 0.40), 1)
        segs(*frustum_lines(scene), (0.3, 0.9, 0.9), 1.5)
        tr = scene.trail_m[np.isfinite(scene.trail_m).all(1)]
        if len(tr) >= 2:
            segs(tr, np.c_[np.arange(len(tr) - 1), np.arange(1, len(tr))], (1.0, 0.85, 0.2), 1.5)
        if scene.joints_m is not None and np.isfinite(scene.joints_m).all():
            uv = self._project(scene.joints_m)
            for k, (a, b) in enumerate(BONES):
                p.setPen(QPen(QColor.fromRgbF(*BONE_COLOURS[k]), 5, Qt.SolidLine, Qt.RoundCap))
                p.drawLine(QPointF(uv[a, 0], uv[a, 1]), QPointF(uv[b, 0], uv[b, 1]))
        p.end()
        return qimage_to_numpy(img)

    def close(self) -> None:
        pass


class RemoteOpen3DBackend:
    """Open3D in a child process.

    Open3D's Python bindings keep the GIL while they render (measured: a 1 ms sleep
    loop on another thread stretched to 10 ms p50 / 25 ms p95 while a thread
    rendered), so an in-process render thread would stall the UI and the pipeline.
    A child process has its own interpreter; the 640x480 RGB frame (0.9 MB) comes
    back through a pipe in ~1 ms.
    """
    name = "Open3D (render process)"

    def __init__(self, width: int = RENDER_W, height: int = RENDER_H, start_timeout_s: float = 60.0):
        import multiprocessing as mp
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_open3d_child, args=(child, width, height), name="mocap-render3d",
                                daemon=True)
        self.proc.start()
        child.close()
        if not self.conn.poll(start_timeout_s):
            self.close()
            raise RuntimeError("the Open3D render process did not start")
        try:
            kind, info = self.conn.recv()
        except EOFError:
            kind, info = "error", f"the render process exited (code {self.proc.exitcode})"
        if kind != "ready":
            self.close()
            raise RuntimeError(info)

    def reset_view(self, target=(0.0, 0.9, 0.0)) -> None:
        self.conn.send(("reset", target))

    def rotate(self, dx: float, dy: float) -> None:
        self.conn.send(("rotate", dx, dy))

    def zoom(self, steps: float) -> None:
        self.conn.send(("zoom", steps))

    def pan(self, dx: float, dy: float) -> None:
        self.conn.send(("pan", dx, dy))

    def render(self, scene: Scene) -> np.ndarray:
        self.conn.send(("render", scene))
        _, shape, _ms = self.conn.recv()
        return np.frombuffer(self.conn.recv_bytes(), np.uint8).reshape(shape)

    def close(self) -> None:
        try:
            self.conn.send(("close",))
        except (OSError, BrokenPipeError):
            pass
        self.proc.join(3.0)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(1.0)


class SceneRenderer(QObject):
    """Owns the render thread; ``submit`` the newest scene, get ``image_ready`` back (queued to the UI)."""

    image_ready = Signal(QImage, int, float, float)   # image, frame index, t_capture, render ms
    backend_ready = Signal(str)

    def __init__(self, prefer_open3d: bool = True, in_process: bool = False, parent=None):
        super().__init__(parent)
        self.prefer_open3d = prefer_open3d
        self.in_process = in_process
        self._cv = threading.Condition()
        self._scene: Scene | None = None
        self._cmds: list[tuple] = []
        self._last_scene = Scene()
        self._stop = False
        self.backend_name = ""
        self.render_ms: list[float] = []
        self._thread = threading.Thread(target=self._run, name="render3d", daemon=True)
        self._thread.start()

    def submit(self, scene: Scene) -> None:
        with self._cv:
            self._scene = scene
            self._cv.notify()

    def command(self, *cmd) -> None:
        """("rotate", dx, dy) | ("zoom", steps) | ("pan", dx, dy) | ("reset", target)"""
        with self._cv:
            self._cmds.append(cmd)
            self._cv.notify()

    def close(self) -> None:
        with self._cv:
            self._stop = True
            self._cv.notify()
        self._thread.join(3.0)

    def _make_backend(self):
        if self.prefer_open3d:
            try:
                return Open3DBackend() if self.in_process else RemoteOpen3DBackend()
            except Exception as e:  # noqa: BLE001 - any GL failure -> software view
                log.warning("Open3D 3D view unavailable (%s); using the software renderer", e)
        return PainterBackend()

    def _run(self) -> None:
        backend = self._make_backend()
        self.backend_name = backend.name
        self.backend_ready.emit(backend.name)
        try:
            while True:
                with self._cv:
                    while not self._stop and self._scene is None and not self._cmds:
                        self._cv.wait(0.5)
                    if self._stop:
                        return
                    scene, self._scene = self._scene, None
                    cmds, self._cmds = self._cmds, []
                for c in cmds:
                    if c[0] == "reset":
                        backend.reset_view(*c[1:])
                    else:
                        getattr(backend, c[0])(*c[1:])
                if scene is not None:
                    self._last_scene = scene
                t0 = time.perf_counter()
                try:
                    arr = backend.render(self._last_scene)
                except (EOFError, OSError, ValueError) as e:   # the render process died: keep a view
                    log.error("3D renderer %s failed (%s); switching to the software renderer", backend.name, e)
                    backend.close()
                    backend = PainterBackend()
                    self.backend_name = backend.name
                    self.backend_ready.emit(backend.name)
                    arr = backend.render(self._last_scene)
                ms = (time.perf_counter() - t0) * 1e3
                self.render_ms.append(ms)
                img = numpy_to_qimage(arr)
                self.image_ready.emit(img, self._last_scene.frame_index, self._last_scene.t_capture, ms)
        finally:
            backend.close()


class View3DWidget(QWidget):
    """Paints the renderer's latest image; mouse: left drag orbit, right/middle drag pan, wheel zoom,
    double-click reset."""

    frame_shown = Signal(int, float)   # frame index, capture -> on-screen latency (ms)

    def __init__(self, renderer: SceneRenderer, parent=None):
        super().__init__(parent)
        self.renderer = renderer
        self._img: QImage | None = None
        self._pending: tuple[int, float] | None = None
        self._image_index = -1
        self.shown_index = -1          # source frame index of the 3D image last painted (-1: none yet)
        self._last_pos = None
        self._target = (0.0, 0.9, 0.0)
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.setToolTip("3D view: drag to orbit, right-drag to pan, wheel to zoom, double-click to reset")
        renderer.image_ready.connect(self._on_image)

    def _on_image(self, img: QImage, frame_index: int, t_capture: float, _ms: float) -> None:
        self._img = img
        self._image_index = frame_index
        self._pending = (frame_index, t_capture)
        self.update()

    def image(self) -> QImage | None:
        return self._img

    def set_target(self, target) -> None:
        self._target = tuple(float(v) for v in target)

    def reset_view(self) -> None:
        self.renderer.command("reset", self._target)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor.fromRgbF(*BG))
        if self._img is not None:
            iw, ih = self._img.width(), self._img.height()
            s = min(self.width() / iw, self.height() / ih)
            r = QRectF((self.width() - iw * s) / 2, (self.height() - ih * s) / 2, iw * s, ih * s)
            p.drawImage(r, self._img)
            self.shown_index = self._image_index
        else:
            p.setPen(QColor(200, 200, 200))
            p.drawText(self.rect(), Qt.AlignCenter, "3D view starting...")
        p.end()
        if self._pending is not None:
            idx, t_cap = self._pending
            self._pending = None
            if t_cap > 0:
                self.frame_shown.emit(idx, (time.perf_counter() - t_cap) * 1e3)

    def mousePressEvent(self, ev) -> None:
        self._last_pos = ev.position()

    def mouseMoveEvent(self, ev) -> None:
        if self._last_pos is None:
            return
        d = ev.position() - self._last_pos
        self._last_pos = ev.position()
        if ev.buttons() & Qt.LeftButton:
            self.renderer.command("rotate", d.x() * 2.0, d.y() * 2.0)
        elif ev.buttons() & (Qt.RightButton | Qt.MiddleButton):
            self.renderer.command("pan", d.x(), d.y())

    def mouseReleaseEvent(self, _ev) -> None:
        self._last_pos = None

    def wheelEvent(self, ev) -> None:
        self.renderer.command("zoom", ev.angleDelta().y() / 120.0)

    def mouseDoubleClickEvent(self, _ev) -> None:
        self.reset_view()
