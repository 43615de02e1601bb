"""Every script in pipelines/ on the bundled sample video, prompt and model: outputs exist,
ffprobe reads them with the expected frame count, and the anomalies found are the sample's
defective parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA, ROOT

MEDIA = ROOT / "pipelines" / "media"
sys.path.insert(0, str(ROOT / "pipelines"))
from demo_report import flagged_parts, load_episodes, sample_settings  # noqa: E402

_, _, IMAGE_THRESHOLD, PIXEL_THRESHOLD = sample_settings()
THRESHOLDS = ["--image-threshold", str(IMAGE_THRESHOLD), "--pixel-threshold", str(PIXEL_THRESHOLD)]

SCRIPTS = ["inspect-file", "inspect-camera", "record-anomalies", "watch-events.py"]


@pytest.fixture(scope="module")
def sample() -> dict[str, Any]:
    return json.loads((MEDIA / "sample.json").read_text())


def script(name: str, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # The scripts run with Debian's python3, which has PyGObject.
    return subprocess.run(
        ["/usr/bin/python3", str(ROOT / "pipelines" / name), *args],
        env=env, capture_output=True, text=True, timeout=900,
    )


def frame_count(path: Path) -> int:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )
    return int(out.stdout.strip())


def duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        check=True, capture_output=True, text=True,
    )
    return float(out.stdout.strip())


def defective(sample: dict[str, Any]) -> set[int]:
    return {p["index"] for p in sample["parts"] if p["defective"]}


@pytest.mark.parametrize("name", SCRIPTS)
def test_usage_on_wrong_arguments_and_clear_error_for_a_missing_file(name: str, plugin_env: dict[str, str]) -> None:
    out = script(name, env=plugin_env)
    assert out.returncode == 2 and "usage:" in out.stderr
    args = {
        "inspect-file": ["/nonexistent/in.mp4", str(DATA / "prompt.png"), "/tmp/x.mp4"],
        "inspect-camera": ["test", "/nonexistent/good.png", "--record", "/tmp/x.mp4"],
        "record-anomalies": ["/nonexistent/in.mp4", str(DATA / "prompt.png"), "/tmp/clips"],
        "watch-events.py": ["/nonexistent/in.mp4", str(DATA / "prompt.png")],
    }[name]
    out = script(name, *args, env=plugin_env)
    assert out.returncode == 2
    assert "/nonexistent/" in out.stderr and "no such file" in out.stderr


def test_inspect_file_annotates_every_frame_and_finds_the_defective_parts(
    sample: dict[str, Any], plugin_env: dict[str, str], tmp_path: Path
) -> None:
    out_mp4 = tmp_path / "annotated.mp4"
    out = script("inspect-file", str(MEDIA / sample["video"]), str(MEDIA / sample["prompt"]), str(out_mp4),
                 *THRESHOLDS, env=plugin_env)
    assert out.returncode == 0, out.stderr
    assert frame_count(out_mp4) == sample["frames"]
    events = out_mp4.with_suffix(".events.jsonl")
    flagged = flagged_parts(sample["parts"], load_episodes(events, sample["duration_s"]))
    assert set(flagged) == defective(sample), out.stdout
    assert f"{len(flagged)} anomalous episode(s)" in out.stdout


def test_record_anomalies_writes_one_clip_per_defective_part_with_margins(
    sample: dict[str, Any], plugin_env: dict[str, str], tmp_path: Path
) -> None:
    clips_dir = tmp_path / "clips"
    out = script("record-anomalies", str(MEDIA / sample["video"]), str(MEDIA / sample["prompt"]), str(clips_dir),
                 "--before", "0.5", "--after", "0.75", *THRESHOLDS, env=plugin_env)
    assert out.returncode == 0, out.stderr
    clips = json.loads((clips_dir / "clips.json").read_text())["clips"]
    assert len(clips) == len(defective(sample)), out.stdout
    parts = {p["index"]: p for p in sample["parts"]}
    for clip, index in zip(clips, sorted(defective(sample))):
        part = parts[index]
        assert clip["start"] < part["end_s"] and (clip["end"] or sample["duration_s"]) > part["start_s"]
        assert clip["clip_start"] == pytest.approx(max(0.0, clip["start"] - 0.5), abs=1e-3)
        end = clip["end"] if clip["end"] is not None else sample["duration_s"]
        assert clip["clip_end"] == pytest.approx(min(sample["duration_s"], end + 0.75), abs=1e-3)
        path = clips_dir / clip["file"]
        assert duration(path) == pytest.approx(clip["clip_end"] - clip["clip_start"], abs=0.25)
        assert frame_count(path) > 0


def test_watch_events_prints_episodes_and_frames(
    sample: dict[str, Any], plugin_env: dict[str, str]
) -> None:
    out = script("watch-events.py", str(MEDIA / sample["video"]), str(MEDIA / sample["prompt"]), "--frames",
                 *THRESHOLDS, env=plugin_env)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    frames = [x for x in lines if x["type"] == "frame"]
    episodes = [x for x in lines if x["type"] == "onenip-anomaly"]
    assert len(frames) == sample["frames"]
    assert all({"pts", "score", "anomalous", "regions"} <= f.keys() for f in frames)
    starts = [e for e in episodes if e["event"] == "start"]
    assert len(starts) == len(defective(sample))
    assert len([e for e in episodes if e["event"] == "end"]) == len(starts)


def test_inspect_camera_records_a_live_source(plugin_env: dict[str, str], tmp_path: Path) -> None:
    out_mp4 = tmp_path / "camera.mp4"
    out = script("inspect-camera", "test", str(MEDIA / json.loads((MEDIA / "sample.json").read_text())["prompt"]),
                 "--record", str(out_mp4), "--no-display", "--num-buffers", "30", env=plugin_env)
    assert out.returncode == 0, out.stderr
    assert frame_count(out_mp4) == 30
