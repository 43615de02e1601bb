"""pipelines/read_meta.py reads the custom meta and the ROI metas from Python."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA, ROOT

SCRIPT = ROOT / "pipelines" / "read_meta.py"


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("source", ["appsink", "probe"])
def test_one_json_line_per_frame_with_meta_and_rois(
    source: str, plugin_env: dict[str, str], short_video: Path
) -> None:
    out = run([str(short_video), str(DATA / "prompt.png"), "--from", source], plugin_env)
    assert out.returncode == 0, out.stderr
    frames = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(frames) == 10
    for f in frames:
        assert f["frame"] == [320, 240]
        assert f["map_size"][0] == f["map_size"][1] > 0
        assert f["anomalous"] == (f["score"] > f["image_threshold"])
        assert f["region_count"] == len(f["roi_metas"]) == len(f["regions"])
        assert f["prompt"] == str(DATA / "prompt.png")
        for roi, region in zip(f["roi_metas"], f["regions"]):
            assert roi["rect"] == [region["x"], region["y"], region["width"], region["height"]]
            assert roi["score"] == pytest.approx(region["peak"])
    assert [f["pts"] for f in frames] == sorted(f["pts"] for f in frames)


def test_missing_file_is_a_clear_error(plugin_env: dict[str, str]) -> None:
    out = run(["/nonexistent/video.mp4", str(DATA / "prompt.png")], plugin_env)
    assert out.returncode == 2
    assert "/nonexistent/video.mp4: no such file" in out.stderr
