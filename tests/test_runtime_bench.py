"""``mocap-app bench``: the per-stage table on a real video and the per-backend lifter table."""
from __future__ import annotations

import re

import pytest

from mocap_app.bench import DEFAULT_VIDEO, Row, format_table, percentiles
from mocap_app.cli import build_parser, main


pytestmark = pytest.mark.usefixtures("engine_cache")

def _rows(out: str) -> dict[str, tuple[float, float, int]]:
    """stage -> (p50, p95, n) for every numeric row of the printed tables."""
    rows = {}
    for line in out.splitlines():
        m = re.match(r"^(.+?)\s+(\d+\.\d{3})\s+(\d+\.\d{3})\s+(\d+)\s", line + " ")
        if m:
            rows[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)), int(m.group(4)))
    return rows


def test_bench_is_a_cli_command():
    a = build_parser().parse_args(["bench", "--engines", "--reps", "10"])
    assert a.engines and a.reps == 10 and a.func.__name__ == "run_bench"


def test_percentiles_and_table():
    assert percentiles([1.0, 2.0, 3.0, 4.0, 100.0]) == (3.0, pytest.approx(80.8))
    text = format_table([Row("lift", 0.5, 0.9, 100, "x"), Row("refine", 0, 0, 0, "off")], "t")
    assert _rows(text) == {"lift": (0.5, 0.9, 100)} and "refine" in text and "off" in text


def test_bench_engines_prints_batch_1_and_64_per_backend(capsys):
    assert main(["bench", "--engines", "--reps", "40"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    assert out.splitlines()[0].startswith("machine:")
    for name in ("onnxruntime, batch 1", "onnxruntime, batch 64", "torch, batch 1", "torch, batch 64"):
        p50, p95, n = rows[name]
        assert 0 < p50 <= p95 and n >= 10
    assert "poses/s" in out


@pytest.mark.skipif(not DEFAULT_VIDEO.exists(), reason=f"demo video not on this machine: {DEFAULT_VIDEO}")
def test_bench_pipeline_times_every_stage_on_a_real_video(capsys):
    assert main(["bench", "--max-frames", "6", "--focal-px", "1680"]) == 0
    out = capsys.readouterr().out
    rows = _rows(out)
    for stage in ("decode (wait for frame)", "2D keypoints (MediaPipe)", "lift, whole clip in one batch",
                  "lift, batch 1 (live capture)", "world alignment", "export (BVH + FBX)"):
        assert stage in rows, f"missing stage {stage!r} in:\n{out}"
        p50, p95, n = rows[stage]
        assert 0 <= p50 <= p95 and n > 0
    assert rows["2D keypoints (MediaPipe)"][2] == 6
    assert rows["2D keypoints (MediaPipe)"][0] > rows["lift, batch 1 (live capture)"][0]
    m = re.search(r"end to end: ([\d.]+) frames/s .* ([\d.]+) frames/s including", out)
    assert m and float(m.group(1)) >= float(m.group(2)) > 0


def test_bench_missing_video_is_a_sentence(capsys, tmp_path):
    assert main(["bench", str(tmp_path / "nope.mp4")]) == 3
    assert "video not found" in capsys.readouterr().err
