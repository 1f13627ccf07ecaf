"""3D scene content and the Open3D renderer (no Qt here: this module runs in the render process).

Units: metres, world frame (X right, Y up, Z towards the camera, floor at y = 0).
"""
from __future__ import annotations

import os
import sys
import time
import types
from dataclasses import dataclass, field

import numpy as np

from engines.skeleton import BONES, JOINT_NAMES

RENDER_W, RENDER_H = 640, 480
BG = (0.11, 0.12, 0.14)
SAMPLES_PER_BONE = 14
TRAIL_LEN = 120
RENDER_NICE = int(os.environ.get("MOCAP_RENDER_NICE", "2"))   # UI first, then 3D view, then pipeline


def import_open3d():
    """``import open3d`` without its optional extras.

    ``open3d/__init__`` always imports ``open3d.ml`` (scikit-learn, pandas...) and
    ``open3d.visualization.draw_plotly`` (dash, plotly): 3-4 s of CPU time for
    modules the legacy Visualizer never uses. Stub them before the import.
    """
    if "open3d" not in sys.modules:
        sys.modules.setdefault("open3d.ml", types.ModuleType("open3d.ml"))
        stub = types.ModuleType("open3d.visualization.draw_plotly")

        def _unavailable(*_a, **_k):
            raise RuntimeError("open3d plotly drawing is not bundled with mocap")
        stub.draw_plotly = stub.draw_plotly_server = stub.get_plotly_fig = _unavailable
        sys.modules.setdefault("open3d.visualization.draw_plotly", stub)
    import open3d
    return open3d


def _side_colour(name: str) -> tuple[float, float, float]:
    if name.startswith("left"):
        return (0.30, 0.65, 1.00)
    if name.startswith("right"):
        return (1.00, 0.55, 0.20)
    return (0.92, 0.92, 0.92)


BONE_COLOURS = np.array([_side_colour(JOINT_NAMES[c]) for _, c in BONES])


@dataclass
class Scene:
    """What the 3D view shows, in metres, world frame (Y up, floor y = 0)."""
    joints_m: np.ndarray | None = None                 # [17, 3]
    trail_m: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))   # [T, 3] pelvis path
    cam_R: np.ndarray = field(default_factory=lambda: np.diag([1.0, -1.0, -1.0]))  # camera -> world
    cam_t_m: np.ndarray = field(default_factory=lambda: np.zeros(3))             # camera centre in world
    K: np.ndarray | None = None                        # 3x3 intrinsics, for the frustum shape
    size_wh: tuple[int, int] = (640, 480)
    frame_index: int = -1
    t_capture: float = 0.0                             # perf_counter of the source frame (latency)


def frustum_lines(scene: Scene, depth_m: float = 0.4) -> tuple[np.ndarray, np.ndarray]:
    """Camera frustum as points [5, 3] (centre + 4 image corners at ``depth_m``) and line indices."""
    w, h = scene.size_wh
    K = scene.K if scene.K is not None else np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1.0]])
    corners = np.array([[0, 0, 1], [w, 0, 1], [w, h, 1], [0, h, 1]], float)
    rays = corners @ np.linalg.inv(K).T * depth_m
    pts = np.vstack([np.zeros(3), rays]) @ scene.cam_R.T + scene.cam_t_m
    lines = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
    return pts, lines


def grid_lines(half_m: float = 2.5, step_m: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    ticks = np.arange(-half_m, half_m + 1e-9, step_m)
    pts, lines = [], []
    for v in ticks:
        pts += [[v, 0, -half_m], [v, 0, half_m], [-half_m, 0, v], [half_m, 0, v]]
        k = len(pts)
        lines += [[k - 4, k - 3], [k - 2, k - 1]]
    return np.array(pts, float), np.array(lines)


def bone_points(joints_m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fat-point samples along every bone plus the joints: points [M, 3] and colours [M, 3]."""
    s = np.linspace(0.0, 1.0, SAMPLES_PER_BONE)[None, :, None]
    a = joints_m[[p for p, _ in BONES]][:, None]
    b = joints_m[[c for _, c in BONES]][:, None]
    pts = (a + (b - a) * s).reshape(-1, 3)
    cols = np.repeat(BONE_COLOURS, SAMPLES_PER_BONE, axis=0)
    return pts, cols


class Open3DBackend:
    """Open3D legacy Visualizer in a hidden window; create and use it on one thread only."""
    name = "Open3D"

    def __init__(self, width: int = RENDER_W, height: int = RENDER_H):
        o3d = import_open3d()
        self.o3d = o3d
        self.vis = o3d.visualization.Visualizer()
        if not self.vis.create_window("mocap 3D", width=width, height=height, visible=False):
            raise RuntimeError("Open3D could not create an OpenGL window (no display or GL driver)")
        opt = self.vis.get_render_option()
        opt.background_color = np.array(BG)
        opt.point_size = 7.0
        opt.line_width = 2.0
        V = o3d.utility.Vector3dVector
        gp, gl = grid_lines()
        self.grid = o3d.geometry.LineSet(V(gp), o3d.utility.Vector2iVector(gl))
        self.grid.paint_uniform_color((0.35, 0.37, 0.40))
        self.skel = o3d.geometry.PointCloud(V(np.zeros((1, 3))))
        self.trail = o3d.geometry.LineSet()
        self.frustum = o3d.geometry.LineSet()
        self.vis.add_geometry(self.grid)
        for g in (self.skel, self.trail, self.frustum):
            self.vis.add_geometry(g, reset_bounding_box=False)
        self.reset_view()

    def reset_view(self, target=(0.0, 0.9, 0.0)) -> None:
        vc = self.vis.get_view_control()
        vc.set_lookat(np.asarray(target, float))
        vc.set_front(np.array([0.35, 0.45, 1.0]) / np.linalg.norm([0.35, 0.45, 1.0]))
        vc.set_up(np.array([0.0, 1.0, 0.0]))
        vc.set_zoom(0.32)

    def rotate(self, dx: float, dy: float) -> None:
        self.vis.get_view_control().rotate(dx, dy)

    def zoom(self, steps: float) -> None:
        self.vis.get_view_control().scale(-steps)

    def pan(self, dx: float, dy: float) -> None:
        self.vis.get_view_control().translate(dx, dy)

    def render(self, scene: Scene) -> np.ndarray:
        o3d = self.o3d
        V = o3d.utility.Vector3dVector
        if scene.joints_m is not None and np.isfinite(scene.joints_m).all():
            pts, cols = bone_points(scene.joints_m)
            self.skel.points, self.skel.colors = V(pts), V(cols)
        else:
            self.skel.points, self.skel.colors = V(np.zeros((0, 3))), V(np.zeros((0, 3)))
        tr = scene.trail_m[np.isfinite(scene.trail_m).all(1)]
        if len(tr) >= 2:
            self.trail.points = V(tr)
            self.trail.lines = o3d.utility.Vector2iVector(np.c_[np.arange(len(tr) - 1), np.arange(1, len(tr))])
            self.trail.paint_uniform_color((1.0, 0.85, 0.2))
        else:
            self.trail.points, self.trail.lines = V(np.zeros((0, 3))), o3d.utility.Vector2iVector(np.zeros((0, 2), int))
        fp, fl = frustum_lines(scene)
        self.frustum.points, self.frustum.lines = V(fp), o3d.utility.Vector2iVector(fl)
        self.frustum.paint_uniform_color((0.3, 0.9, 0.9))
        for g in (self.skel, self.trail, self.frustum):
            self.vis.update_geometry(g)
        self.vis.poll_events()
        self.vis.update_renderer()
        buf = np.asarray(self.vis.capture_screen_float_buffer(do_render=True))
        return (np.clip(buf, 0, 1) * 255).astype(np.uint8)

    def close(self) -> None:
        self.vis.destroy_window()


def _open3d_child(conn, width: int, height: int) -> None:
    """Render process main: an Open3DBackend driven over a pipe (see :class:`RemoteOpen3DBackend`)."""
    try:
        os.nice(RENDER_NICE)       # the UI process first, the 3D view before the pipeline (nice 4)
    except (AttributeError, OSError):
        pass
    try:
        backend = Open3DBackend(width, height)
    except Exception as e:  # noqa: BLE001 - reported to the parent, which falls back
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", backend.name))
    try:
        while True:
            msg = conn.recv()
            if msg[0] == "close":
                break
            if msg[0] == "render":
                t0 = time.perf_counter()
                arr = backend.render(msg[1])
                conn.send(("frame", arr.shape, (time.perf_counter() - t0) * 1e3))
                conn.send_bytes(np.ascontiguousarray(arr).tobytes())
            elif msg[0] == "reset":
                backend.reset_view(*msg[1:])
            else:
                getattr(backend, msg[0])(*msg[1:])
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        backend.close()


