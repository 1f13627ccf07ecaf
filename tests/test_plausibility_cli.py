"""``mocap-app adapt``: argument errors and one short end-to-end run on a real video."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

from mocap_app.adapt_cli import EXIT_INPUT, EXIT_OUTPUT, add_adapt_parser, run_adapt


def _parse(argv):
    ap = argparse.ArgumentParser(prog="mocap-app")
    add_adapt_parser(ap.add_subparsers(dest="command"))
    return ap.parse_args(["adapt", *argv])


def test_missing_video_fails_clearly(tmp_path, capsys):
    a = _parse([str(tmp_path / "nope.mp4"), "--out", str(tmp_path / "a.pt")])
    assert run_adapt(a) == EXIT_INPUT
    assert "video not found" in capsys.readouterr().err


def test_unwritable_output_folder_fails_before_work(tmp_path, capsys):
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")
    a = _parse([str(video), "--out", str(tmp_path / "missing" / "a.pt")])
    assert run_adapt(a) == EXIT_OUTPUT
    assert "does not exist" in capsys.readouterr().err


def test_bad_focal_is_rejected_by_argparse(tmp_path):
    with pytest.raises(SystemExit):
        _parse([str(tmp_path / "v.mp4"), "--out", "a.pt", "--focal-px", "-3"])


@pytest.mark.slow
def test_adapt_end_to_end_on_real_video(tmp_path, pose2sim_videos, capsys):
    from engines.lifter import load_lifter

    out = tmp_path / "adapted.pt"
    a = _parse([str(pose2sim_videos.videos["cam03"]), "--out", str(out), "--max-frames", "40",
                "--steps", "2", "--warmup", "1", "--focal-px", "1600"])
    assert run_adapt(a) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "wrote" in text and "plausibility" in text
    lf = load_lifter("absposelifter", backend="torch", weights=out)
    kp = np.tile(np.linspace(500, 900, 17)[:, None], (1, 2))[None].astype(np.float32)
    kp[0, :, 0] += np.arange(17) * 3
    joints = lf.lift(kp, None, np.array([[1600.0, 0, 960], [0, 1600.0, 540], [0, 0, 1]]))
    assert joints.shape == (1, 17, 3) and np.isfinite(joints).all()
