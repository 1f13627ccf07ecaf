"""The Blender runner's child processes must reach PyPI even after MediaPipe has blocked its usage logging."""
from blender_tools.runner import _child_env

from mocap_app.keypoints import USAGE_LOG_BLOCK_PROXY


def test_pip_and_blender_do_not_inherit_the_usage_log_proxy(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", USAGE_LOG_BLOCK_PROXY)      # what block_mediapipe_usage_logging() sets
    monkeypatch.setenv("https_proxy", USAGE_LOG_BLOCK_PROXY)
    monkeypatch.setenv("NO_PROXY", "localhost")
    env = _child_env()
    assert "HTTPS_PROXY" not in env and "https_proxy" not in env
    assert env["NO_PROXY"] == "localhost"                          # everything else is passed on
