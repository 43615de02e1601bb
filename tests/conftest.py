"""Shared fixtures of the end-to-end Python tests: the built plugin, the bundled model."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="session")
def plugin_env() -> dict[str, str]:
    """Environment in which gst-launch-1.0 and PyGObject find the debug build of the plugin."""
    subprocess.run(
        ["cargo", "build", "--locked", "-p", "gst-plugin-onenip"], cwd=ROOT, check=True, capture_output=True
    )
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = str(ROOT / "target" / "debug")
    return env


@pytest.fixture(scope="session")
def short_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Ten frames of H.264 in MP4."""
    out = tmp_path_factory.mktemp("video") / "ten.mp4"
    subprocess.run(
        [
            "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=10", "pattern=ball", "!",
            "video/x-raw,width=320,height=240,framerate=10/1", "!", "x264enc", "!", "mp4mux", "!",
            "filesink", f"location={out}",
        ],
        check=True,
    )
    return out
