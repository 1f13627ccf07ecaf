"""Widgets of the main window: video with 2D overlay, plots, timeline, message banner."""
from __future__ import annotations

import collections
import logging

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import (QComboBox, QHBoxLayout, QLabel, QPushButton, QSizePolicy, QSlider, QSpinBox,
                               QTabWidget, QToolButton, QVBoxLayout, QWidget)

from engines.skeleton import BONES, JOINT_NAMES, NUM_JOINTS

log = logging.getLogger(__name__)


def confidence_colour(c: float) -> QColor:
    """Red (0) -> yellow (0.5) -> green (1)."""
    c = float(np.clip(c if np.isfinite(c) else 0.0, 0.0, 1.0))
    return QColor.fromRgbF(min(1.0, 2 * (1 - c)), min(1.0, 2 * c), 0.15)


def numpy_to_qimage(arr: np.ndarray, fmt: QImage.Format = QImage.Format_RGB888) -> QImage:
    """An HxWx3 uint8 array as a QImage that owns its pixels.

    Copies into ``QImage.bits()`` instead of wrapping the numpy buffer: PySide6's
    buffer constructor has broken reference counting (it crashed the interpreter at
    exit with "none_dealloc" here).
    """
    h, w = arr.shape[:2]
    img = QImage(w, h, fmt)
    bpl = img.bytesPerLine()
    dst = np.frombuffer(img.bits(), np.uint8, count=img.sizeInBytes()).reshape(h, bpl)
    dst[:, : w * 3] = np.ascontiguousarray(arr, dtype=np.uint8).reshape(h, w * 3)
    return img


def bgr_to_qimage(bgr: np.ndarray) -> QImage:
    return numpy_to_qimage(bgr, QImage.Format_BGR888)


def qimage_to_numpy(image: QImage, fmt: QImage.Format = QImage.Format_RGB888) -> np.ndarray:
    """An HxWx3 uint8 copy of any QImage, its channels in ``fmt``'s order (rows padded by Qt are cut)."""
    img = image if image.format() == fmt else image.convertToFormat(fmt)
    h, w = img.height(), img.width()
    buf = np.frombuffer(img.constBits(), np.uint8, count=img.sizeInBytes()).reshape(h, img.bytesPerLine())
    return buf[:, : w * 3].reshape(h, w, 3).copy()


def qimage_to_bgr(image: QImage) -> np.ndarray:
    return qimage_to_numpy(image, QImage.Format_BGR888)


def set_spin_values(spins: dict, values: dict | None) -> None:
    """Set each spin box ``spins[key]`` to ``values[key]`` where given; values a hand-edited settings file made
    unusable are skipped (the box keeps its value)."""
    for key, spin in spins.items():
        v = (values or {}).get(key)
        if v is None:
            continue
        try:
            spin.setValue(type(spin.value())(v))
        except (TypeError, ValueError):
            pass


class VideoWidget(QWidget):
    """The source frame with the 2D skeleton drawn on top (joint colour = confidence)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._img: QImage | None = None
        self._kp: np.ndarray | None = None      # [17, 2] in image pixels of _img
        self._conf: np.ndarray | None = None
        self.placeholder = "Open a video file or choose a camera, then press Start."
        self.setMinimumSize(240, 180)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)

    def set_frame(self, bgr: np.ndarray | None, keypoints_px: np.ndarray | None, confidence: np.ndarray | None,
                  scale: float = 1.0) -> None:
        """``keypoints_px`` are source pixels; ``scale`` maps them onto ``bgr``'s pixel grid."""
        if bgr is not None:
            self._img = bgr_to_qimage(bgr)
        self._kp = None if keypoints_px is None else np.asarray(keypoints_px, float) * scale
        self._conf = confidence
        self.update()

    def clear(self, placeholder: str | None = None) -> None:
        self._img, self._kp = None, None
        if placeholder:
            self.placeholder = placeholder
        self.update()

    def image_rect(self) -> QRectF | None:
        if self._img is None:
            return None
        iw, ih = self._img.width(), self._img.height()
        s = min(self.width() / iw, self.height() / ih)
        return QRectF((self.width() - iw * s) / 2, (self.height() - ih * s) / 2, iw * s, ih * s)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(16, 16, 18))
        r = self.image_rect()
        if r is None:
            p.setPen(QColor(190, 190, 190))
            p.drawText(self.rect().adjusted(20, 20, -20, -20), Qt.AlignCenter | Qt.TextWordWrap, self.placeholder)
            p.end()
            return
        p.drawImage(r, self._img)
        kp = self._kp
        if kp is not None and np.isfinite(kp).all():
            s = r.width() / self._img.width()
            pts = [QPointF(r.x() + x * s, r.y() + y * s) for x, y in kp]
            p.setRenderHint(QPainter.Antialiasing)
            p.setPen(QPen(QColor(255, 255, 255, 200), 3))
            for a, b in BONES:
                p.drawLine(pts[a], pts[b])
            conf = self._conf if self._conf is not None else np.ones(NUM_JOINTS)
            for j, q in enumerate(pts):
                p.setPen(QPen(QColor(0, 0, 0), 1))
                p.setBrush(confidence_colour(conf[j]))
                p.drawEllipse(q, 6, 6)
        p.end()


def sentence(text) -> str:
    """An error's text as a sentence for the banner: capital first letter, full stop."""
    t = str(text)
    return t[:1].upper() + t[1:] + ("" if t.endswith(".") else ".")


class Banner(QWidget):
    """A dismissable message strip at the top of the window (errors never open a traceback box).

    A message may carry one action (a button beside it, e.g. *Re-lift this take* or *Undo*): the next message, or
    closing the strip, takes it away.
    """

    STYLES = {"error": "#7a1f1f", "warning": "#6b5412", "info": "#1f4a6b"}

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextSelectableByMouse)
        self.action_btn = QPushButton()
        self.action_btn.clicked.connect(self._on_action)
        self.action_btn.hide()
        self._action = None
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        lay.addWidget(self.label, 1)
        lay.addWidget(self.action_btn)
        lay.addWidget(close)
        self.level = ""
        self.setAutoFillBackground(True)
        self.hide()

    def show_message(self, text: str, level: str = "error", action: tuple[str, object] | None = None) -> None:
        """Show ``text``; ``action`` = (button label, callable) adds a button that runs it once."""
        self.level = level
        self.label.setText(text)
        self.setStyleSheet(f"background:{self.STYLES.get(level, '#333')}; color:white;")
        self._action = action[1] if action else None
        self.action_btn.setText(action[0] if action else "")
        self.action_btn.setStyleSheet("color:black;")   # the strip's white text would vanish on the button
        self.action_btn.setVisible(action is not None)
        self.show()

    def action_text(self) -> str:
        """The label of the offered action ("" when none is offered)."""
        return self.action_btn.text() if self.isVisible() and self.action_btn.isVisible() else ""

    def _on_action(self) -> None:
        fn, self._action = self._action, None
        self.action_btn.hide()
        if fn is not None:
            fn()

    def hide(self) -> None:   # noqa: D102 - closing the strip withdraws its action too
        self._action = None
        self.action_btn.hide()
        super().hide()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class RefreshingComboBox(QComboBox):
    """A combo box that asks ``before_popup()`` to refill it each time it opens (e.g. camera profiles another
    program, such as ``mocap-app calibrate``, may have added meanwhile)."""

    def __init__(self, before_popup=None, parent=None):
        super().__init__(parent)
        self.before_popup = before_popup

    def showPopup(self) -> None:   # noqa: N802 - Qt's name
        if self.before_popup is not None:
            self.before_popup()
        super().showPopup()


class PlotsPanel(QTabWidget):
    """pyqtgraph plots: fps and per-stage latency over time, per-joint confidence, a joint's trajectory.

    Data is appended per frame (cheap); the curves are redrawn by :meth:`refresh`, which
    the window calls at ~5 Hz, so plotting never costs a frame.
    """

    HISTORY = 300
    STAGES = (("2d", "2D keypoints", "#e377c2"), ("3d", "3D lift", "#2ca02c"), ("world", "world+smooth", "#9467bd"),
              ("queue", "capture queue", "#8c564b"), ("screen", "capture→3D on screen", "#ff7f0e"))

    def __init__(self, parent=None):
        super().__init__(parent)
        import pyqtgraph as pg
        pg.setConfigOptions(antialias=False, background="#1b1d21", foreground="#cfcfcf")
        self.pg = pg
        self.t = collections.deque(maxlen=self.HISTORY)
        self.fps = collections.deque(maxlen=self.HISTORY)
        self.lat = {k: collections.deque(maxlen=self.HISTORY) for k, _, _ in self.STAGES}
        self.traj_t = collections.deque(maxlen=self.HISTORY)
        self.traj = collections.deque(maxlen=self.HISTORY)     # [17, 3] world mm
        self.conf = np.zeros(NUM_JOINTS)
        self._dirty = False

        perf = QWidget()
        pl = QHBoxLayout(perf)
        pl.setContentsMargins(0, 0, 0, 0)
        self.fps_plot = pg.PlotWidget(title="Processing rate")
        self.fps_plot.setLabel("left", "fps")
        self.fps_plot.setLabel("bottom", "time", "s")
        self.fps_curve = self.fps_plot.plot(pen=pg.mkPen("#1f77b4", width=2))
        for plot in (self.fps_plot,):
            plot.getAxis("left").enableAutoSIPrefix(False)     # "fps (x0.001)" at < 1 fps otherwise
        self.lat_plot = pg.PlotWidget(title="Latency per stage")
        self.lat_plot.setLabel("left", "ms")
        self.lat_plot.setLabel("bottom", "time", "s")
        self.lat_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.lat_curves = {k: self.lat_plot.plot(pen=pg.mkPen(c, width=2), name=n) for k, n, c in self.STAGES}
        pl.addWidget(self.fps_plot)
        pl.addWidget(self.lat_plot)
        self.addTab(perf, "Performance")

        self.conf_plot = pg.PlotWidget(title="Per-joint 2D confidence")
        self.conf_plot.setYRange(0, 1.05)
        self.conf_bars = pg.BarGraphItem(x=np.arange(NUM_JOINTS), height=self.conf, width=0.7, brush="#2ca02c")
        self.conf_plot.addItem(self.conf_bars)
        ax = self.conf_plot.getAxis("bottom")
        ax.setTicks([[(i, n.replace("_", " ").replace("left", "L").replace("right", "R"))
                      for i, n in enumerate(JOINT_NAMES)]])
        self.addTab(self.conf_plot, "Confidence")

        traj = QWidget()
        tl = QVBoxLayout(traj)
        tl.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        row.addWidget(QLabel("Joint:"))
        self.joint_combo = QComboBox()
        self.joint_combo.addItems(JOINT_NAMES)
        self.joint_combo.setCurrentText("right_wrist")
        self.joint_combo.currentIndexChanged.connect(lambda _: self._mark())
        row.addWidget(self.joint_combo)
        row.addStretch(1)
        tl.addLayout(row)
        self.traj_plot = pg.PlotWidget(title="Trajectory (world, Y up)")
        self.traj_plot.setLabel("left", "position", "mm")
        self.traj_plot.setLabel("bottom", "time", "s")
        self.traj_plot.addLegend(offset=(-5, 5), labelTextSize="8pt")
        self.traj_curves = [self.traj_plot.plot(pen=pg.mkPen(c, width=2), name=n)
                            for n, c in (("x", "#d62728"), ("y", "#2ca02c"), ("z", "#1f77b4"))]
        tl.addWidget(self.traj_plot)
        self.addTab(traj, "Trajectory")

    def _mark(self) -> None:
        self._dirty = True

    def clear(self) -> None:
        for d in (self.t, self.fps, self.traj_t, self.traj, *self.lat.values()):
            d.clear()
        self._dirty = True

    def add(self, t: float, fps: float, stage_ms: dict, confidence: np.ndarray, joints_world_mm: np.ndarray) -> None:
        self.t.append(t)
        self.fps.append(fps)
        for k in self.lat:
            self.lat[k].append(float(stage_ms.get(k, np.nan)))
        self.conf = np.nan_to_num(np.asarray(confidence, float))
        self.traj_t.append(t)
        self.traj.append(np.asarray(joints_world_mm, float))
        self._dirty = True

    def set_screen_latency(self, ms: float) -> None:
        if self.lat["screen"]:
            self.lat["screen"][-1] = ms

    def set_clip(self, times_s: np.ndarray, joints_world_mm: np.ndarray, confidence: np.ndarray) -> None:
        """Review mode: the whole recorded clip's trajectory."""
        self.traj_t.clear()
        self.traj.clear()
        self.traj_t.extend(np.asarray(times_s, float)[-self.HISTORY:])
        self.traj.extend(np.asarray(joints_world_mm, float)[-self.HISTORY:])
        if len(confidence):
            self.conf = np.nan_to_num(np.asarray(confidence[-1], float))
        self._dirty = True

    def set_confidence(self, confidence: np.ndarray) -> None:
        self.conf = np.nan_to_num(np.asarray(confidence, float))
        self._dirty = True

    def refresh(self) -> None:
        if not self._dirty:
            return
        self._dirty = False
        t = np.asarray(self.t, float)
        if len(t):
            self.fps_curve.setData(t, np.asarray(self.fps, float))
            for k, c in self.lat_curves.items():
                y = np.asarray(self.lat[k], float)
                ok = np.isfinite(y)
                c.setData(t[ok], y[ok])
        else:
            self.fps_curve.setData([], [])
            for c in self.lat_curves.values():
                c.setData([], [])
        brushes = [confidence_colour(c) for c in self.conf]
        self.conf_bars.setOpts(height=self.conf, brushes=brushes)
        j = self.joint_combo.currentIndex()
        if self.traj:
            tt = np.asarray(self.traj_t, float)
            P = np.stack(self.traj)[:, j]
            for k, c in enumerate(self.traj_curves):
                ok = np.isfinite(P[:, k])
                c.setData(tt[ok], P[ok, k])
        else:
            for c in self.traj_curves:
                c.setData([], [])


class FlagStrip(QWidget):
    """A thin bar under the timeline slider: a red tick for every flagged (implausible) frame, and a short
    blue one for every frame whose left/right labels the keypoint stage mirrored back."""

    def __init__(self, slider: QSlider, parent=None):
        super().__init__(parent)
        self.slider = slider
        self.flags = np.zeros(0, bool)
        self.marks = np.zeros(0, bool)
        self.setFixedHeight(7)
        self.setToolTip("Red ticks: frames whose 3D pose looks implausible (bone lengths, joint limits, "
                        "learned pose prior). Check them before exporting.\nShort blue ticks: frames in which "
                        "MediaPipe labelled the skeleton left-for-right and the app mirrored it back.")

    def set_flags(self, flags: np.ndarray) -> None:
        self.flags = np.asarray(flags, bool)
        self.update()

    def set_marks(self, marks: np.ndarray) -> None:
        self.marks = np.asarray(marks, bool)
        self.update()

    def tick_x(self, i: int) -> float:
        """x of frame ``i`` (pixels), lined up with the slider's groove."""
        n = max(len(self.flags) - 1, 1)
        handle = self.slider.style().pixelMetric(self.slider.style().PixelMetric.PM_SliderLength, None, self.slider)
        x0 = self.slider.x() - self.x() + handle / 2
        return x0 + (self.slider.width() - handle) * i / n

    def paintEvent(self, _ev) -> None:
        if not (self.flags.any() or self.marks.any()):
            return
        p = QPainter(self)
        h = float(self.height())
        for ticks, colour, top in ((self.marks, QColor(40, 110, 220), h / 2), (self.flags, QColor(220, 40, 40), 0.0)):
            pen = QPen(colour)
            pen.setWidth(2)
            p.setPen(pen)
            for i in np.flatnonzero(ticks):
                x = self.tick_x(int(i))
                p.drawLine(QPointF(x, top), QPointF(x, h))
        p.end()


class Timeline(QWidget):
    """Scrub the recorded clip and set the trim range (in/out frames, inclusive).

    Frames flagged as implausible (``set_flags``) are marked under the slider, counted in the
    label, and *Next flag* jumps to the next one. Frames whose left/right labels were mirrored back
    (``set_marks``) get a short blue tick and are counted in the label.
    """

    frame_changed = Signal(int)
    trim_changed = Signal(int, int)

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        self.slider = QSlider(Qt.Horizontal)
        self.slider.setToolTip("Scrub the recorded take")
        self.slider.valueChanged.connect(self._on_slider)
        self.pos_label = QLabel("no recording")
        self.pos_label.setMinimumWidth(150)
        self.in_spin = QSpinBox()
        self.in_spin.setPrefix("in ")
        self.out_spin = QSpinBox()
        self.out_spin.setPrefix("out ")
        self.in_btn = QPushButton("Set in")
        self.in_btn.setToolTip("Trim: the take starts at the current frame")
        self.out_btn = QPushButton("Set out")
        self.out_btn.setToolTip("Trim: the take ends at the current frame")
        self.in_btn.clicked.connect(lambda: self.set_trim(self.slider.value(), self.out_spin.value()))
        self.out_btn.clicked.connect(lambda: self.set_trim(self.in_spin.value(), self.slider.value()))
        self.in_spin.valueChanged.connect(lambda v: self._spin_changed())
        self.out_spin.valueChanged.connect(lambda v: self._spin_changed())
        self.flag_strip = FlagStrip(self.slider)
        self.next_flag_btn = QPushButton("Next flag ▸")
        self.next_flag_btn.setToolTip("Jump to the next frame flagged as implausible (F)")
        self.next_flag_btn.clicked.connect(self.next_flag)
        self.next_flag_btn.hide()
        track = QVBoxLayout()
        track.setContentsMargins(0, 0, 0, 0)
        track.setSpacing(0)
        track.addWidget(self.slider)
        track.addWidget(self.flag_strip)
        lay.addLayout(track, 1)
        for w in (self.pos_label, self.next_flag_btn, self.in_btn, self.in_spin, self.out_btn, self.out_spin):
            lay.addWidget(w)
        self.times = np.zeros(0)
        self.flags = np.zeros(0, bool)
        self.marks = np.zeros(0, bool)
        self.set_length(np.zeros(0))

    def _per_frame(self, values: np.ndarray | None, what: str) -> np.ndarray:
        """A bool per frame of the take (None: all False); refuses another length."""
        v = np.zeros(len(self.times), bool) if values is None else np.asarray(values, bool)
        if len(v) != len(self.times):
            raise ValueError(f"{len(v)} {what} for a take of {len(self.times)} frames")
        return v

    def set_flags(self, flags: np.ndarray | None) -> None:
        """Mark frames (a bool per frame of the take; None clears)."""
        f = self._per_frame(flags, "flags")
        self.flags = f
        self.flag_strip.set_flags(f)
        self.next_flag_btn.setVisible(bool(f.any()))
        self._update_label()

    def set_marks(self, marks: np.ndarray | None) -> None:
        """Frames whose left/right labels the keypoint stage mirrored back (a bool per frame; None clears)."""
        m = self._per_frame(marks, "marks")
        self.marks = m
        self.flag_strip.set_marks(m)
        self._update_label()

    def next_flag(self) -> int | None:
        """Move to the next flagged frame after the current one (wrapping); returns it, None if none."""
        idx = np.flatnonzero(self.flags)
        if len(idx) == 0:
            return None
        v = self.slider.value()
        after = idx[idx > v]
        i = int(after[0] if len(after) else idx[0])
        self.slider.setValue(i)
        return i

    def set_length(self, times_s: np.ndarray) -> None:
        self.times = np.asarray(times_s, float)
        n = len(self.times)
        on = n > 0
        for w in (self.slider, self.in_spin, self.out_spin, self.in_btn, self.out_btn):
            w.setEnabled(on)
        for w in (self.slider, self.in_spin, self.out_spin):
            w.blockSignals(True)
            w.setRange(0, max(n - 1, 0))
            w.blockSignals(False)
        self.in_spin.setValue(0)
        self.out_spin.setValue(max(n - 1, 0))
        self.flags = np.zeros(n, bool)
        self.marks = np.zeros(n, bool)
        self.flag_strip.set_flags(self.flags)
        self.flag_strip.set_marks(self.marks)
        self.next_flag_btn.hide()
        self.slider.setValue(0)
        self._update_label()

    @property
    def trim(self) -> tuple[int, int]:
        """(first, last) frame kept, inclusive."""
        return self.in_spin.value(), self.out_spin.value()

    def set_trim(self, first: int, last: int) -> bool:
        """Set the kept range; refuses (and returns False) an empty or reversed range."""
        n = len(self.times)
        if not (0 <= first <= last < n) or first == last:
            return False
        self.in_spin.blockSignals(True)
        self.out_spin.blockSignals(True)
        self.in_spin.setValue(first)
        self.out_spin.setValue(last)
        self.in_spin.blockSignals(False)
        self.out_spin.blockSignals(False)
        self._update_label()
        self.trim_changed.emit(first, last)
        return True

    def _spin_changed(self) -> None:
        a, b = self.in_spin.value(), self.out_spin.value()
        if a >= b:   # keep at least two frames: push the other end
            if self.sender() is self.in_spin:
                a = max(0, b - 1)
                self.in_spin.blockSignals(True)
                self.in_spin.setValue(a)
                self.in_spin.blockSignals(False)
            else:
                b = min(len(self.times) - 1, a + 1)
                self.out_spin.blockSignals(True)
                self.out_spin.setValue(b)
                self.out_spin.blockSignals(False)
        self._update_label()
        self.trim_changed.emit(a, b)

    def _on_slider(self, v: int) -> None:
        self._update_label()
        self.frame_changed.emit(v)

    def _update_label(self) -> None:
        n = len(self.times)
        if n == 0:
            self.pos_label.setText("no recording")
            return
        v = self.slider.value()
        a, b = self.trim
        dur = self.times[b] - self.times[a] if b < n else 0.0
        flags = ""
        if len(self.flags) == n and self.flags.any():
            here = " (this one)" if self.flags[v] else ""
            flags = f" · {int(self.flags.sum())} flagged{here}"
        if len(self.marks) == n and self.marks.any():
            here = " (this one)" if self.marks[v] else ""
            flags += f" · {int(self.marks.sum())} L/R fixed{here}"
        self.pos_label.setText(f"frame {v + 1}/{n} · {self.times[v] - self.times[0]:.2f} s · "
                               f"keep {b - a + 1} ({dur:.2f} s){flags}")
