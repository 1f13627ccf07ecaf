"""Run scripts inside Blender (the ``bpy`` wheel, Blender as a Python module) in a separate, cached venv.

Blender runs as its own process: its GPL code never loads into ours, and its
numpy/Python pins cannot clash with the project's. The venv is built once
(``bpy==5.0.1`` is a ~374 MB wheel for Python 3.11) under
``$MOCAP_TEST_CACHE`` (default ``~/.cache/mocap-tests``) and reused afterwards.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

BPY_REQUIREMENTS = ("bpy==5.0.1", "numpy<2")
CACHE_DIR = Path(os.environ.get("MOCAP_TEST_CACHE", Path.home() / ".cache" / "mocap-tests"))
VENV_DIR = CACHE_DIR / "bpy-venv"
SCRIPTS_DIR = Path(__file__).resolve().parent


class BlenderUnavailable(RuntimeError):
    """The Blender venv cannot be built here (PyPI unreachable, or no Python 3.11); tests skip with this."""


# pip's messages when the package index cannot be reached (anything else is a real failure)
_OFFLINE_HINTS = ("NewConnectionError", "Temporary failure in name resolution", "Name or service not known",
                  "Max retries exceeded", "Network is unreachable", "Connection refused", "ConnectTimeout",
                  "ProxyError", "Failed to establish a new connection", "Read timed out",
                  "No matching distribution found")


def _child_env() -> dict[str, str]:
    """Our environment without the proxy that ``mocap_app.keypoints`` sets to block mediapipe's usage logging: once a
    test has loaded MediaPipe, pip (and Blender) would inherit it and could not reach PyPI."""
    from mocap_app.keypoints import USAGE_LOG_BLOCK_PROXY
    return {k: v for k, v in os.environ.items() if v != USAGE_LOG_BLOCK_PROXY}


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _works(python: Path) -> bool:
    if not python.exists():
        return False
    r = subprocess.run([str(python), "-c", "import bpy"], capture_output=True, timeout=120)
    return r.returncode == 0


def bpy_python() -> Path:
    """Path of a Python that can ``import bpy``; builds the cached venv on first use."""
    py = _venv_python(VENV_DIR)
    if _works(py):
        return py
    if sys.version_info[:2] != (3, 11):
        raise BlenderUnavailable(f"bpy 5.0.1 needs Python 3.11 to build its venv, this is {sys.version.split()[0]}")
    partial = VENV_DIR.with_name(VENV_DIR.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(partial)], check=True, capture_output=True)
    r = subprocess.run([str(_venv_python(partial)), "-m", "pip", "install", "-q", *BPY_REQUIREMENTS],
                       capture_output=True, text=True, timeout=1800, env=_child_env())
    if r.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        msg = "could not install " + " ".join(BPY_REQUIREMENTS) + ": " + r.stderr.strip()[-500:]
        if any(h in r.stderr for h in _OFFLINE_HINTS):
            raise BlenderUnavailable("PyPI unreachable, " + msg)
        raise RuntimeError(msg)
    shutil.rmtree(VENV_DIR, ignore_errors=True)
    partial.rename(VENV_DIR)   # venv scripts keep the old path in their shebang; we only use `python -m`
    if not _works(py):
        raise BlenderUnavailable(f"the venv at {VENV_DIR} cannot import bpy")
    return py


def run_script(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``tests/blender_tools/<script>`` with the bpy Python; raises with Blender's output on failure."""
    py = bpy_python()
    r = subprocess.run([str(py), str(SCRIPTS_DIR / script), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=_child_env())
    if r.returncode != 0:
        raise RuntimeError(f"Blender script {script} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def import_and_sample(path: Path, out_json: Path, fps: float | None = None, timeout: float = 600) -> dict:
    """Import a BVH/FBX/GLB into an empty Blender scene; return every bone's world head per frame.

    Result: ``{"bones": [names], "fps": float, "frame_start": int, "frame_end": int,
    "heads_m": [[[x, y, z] per bone] per frame]}`` in Blender's world frame (Z up, metres).
    """
    run_script("import_anim.py", path, out_json, *([str(fps)] if fps else []), timeout=timeout)
    return json.loads(Path(out_json).read_text())


def import_and_sample_many(jobs: list[tuple[Path, Path, float | None]], timeout: float = 900) -> list[dict]:
    """:func:`import_and_sample` for several files in one Blender process (``import bpy`` costs
    seconds; each file still starts from an empty scene)."""
    spec = [{"src": str(src), "out": str(out), "fps": fps} for src, out, fps in jobs]
    job_file = Path(jobs[0][1]).with_suffix(".jobs.json")
    job_file.write_text(json.dumps(spec))
    run_script("import_anim.py", "--jobs", job_file, timeout=timeout)
    return [json.loads(Path(out).read_text()) for _, out, _ in jobs]
