"""A virtual X display for tests and benchmarks on headless machines.

Qt's ``offscreen`` platform has no OpenGL (``grabFramebuffer`` crashes there) and
Open3D needs a GL window, so everything that draws 3D runs under Xvfb.
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import time

log = logging.getLogger(__name__)
_proc: subprocess.Popen | None = None


def xvfb_available() -> bool:
    return shutil.which("Xvfb") is not None


def ensure_display(size: str = "1600x1000x24") -> str | None:
    """Return a usable ``DISPLAY`` (starting a private Xvfb when none is set), or None.

    Also selects Qt's ``xcb`` platform when a display is available. Idempotent.
    """
    global _proc
    if os.environ.get("DISPLAY") and _proc is None and not os.environ.get("MOCAP_FORCE_XVFB"):
        os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
        return os.environ["DISPLAY"]
    if _proc is not None and _proc.poll() is None:
        return os.environ["DISPLAY"]
    if not xvfb_available():
        return None
    for n in range(90, 140):
        if os.path.exists(f"/tmp/.X11-unix/X{n}") or os.path.exists(f"/tmp/.X{n}-lock"):
            continue
        proc = subprocess.Popen(["Xvfb", f":{n}", "-screen", "0", size, "-nolisten", "tcp"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            if os.path.exists(f"/tmp/.X11-unix/X{n}"):
                break
            if proc.poll() is not None:
                break
            time.sleep(0.05)
        if proc.poll() is None and os.path.exists(f"/tmp/.X11-unix/X{n}"):
            _proc = proc
            os.environ["DISPLAY"] = f":{n}"
            os.environ["QT_QPA_PLATFORM"] = "xcb"
            os.environ.setdefault("XDG_RUNTIME_DIR", _runtime_dir())
            atexit.register(stop_display)
            log.info("started Xvfb on :%d", n)
            return os.environ["DISPLAY"]
        proc.kill()
    return None


def _runtime_dir() -> str:
    d = f"/tmp/mocap-runtime-{os.getuid()}"
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def stop_display() -> None:
    global _proc
    if _proc is not None and _proc.poll() is None:
        _proc.terminate()
        try:
            _proc.wait(3)
        except subprocess.TimeoutExpired:
            _proc.kill()
    _proc = None
