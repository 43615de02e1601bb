"""`meson install` into a fresh prefix gives a plugin that GStreamer loads and that finds
ONNX Runtime through the recorded path, with no environment variable but GST_PLUGIN_PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("meson")
    prefix, build = tmp / "prefix", tmp / "build"
    run(["meson", "setup", str(build), f"--prefix={prefix}"], cwd=ROOT)
    run(["meson", "compile", "-C", str(build)], cwd=ROOT)
    run(["meson", "install", "-C", str(build)], cwd=ROOT)
    return prefix


def clean_env(plugin_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ORT_DYLIB_PATH", "GST_PLUGIN_PATH")}
    env["GST_PLUGIN_PATH"] = str(plugin_dir)
    env["GST_REGISTRY"] = str(plugin_dir / "registry.bin")
    return env


def test_installed_plugin_loads_and_runs(installed: Path) -> None:
    plugins = list(installed.rglob("gstreamer-1.0/libgstonenip.so"))
    assert len(plugins) == 1, plugins
    plugin_dir = plugins[0].parent
    assert (installed / "share/gst-onenip/ort-path").read_text().strip().endswith(
        tuple(f"libonnxruntime.so.{v}" for v in ("1.32.0",))
    )

    env = clean_env(plugin_dir)
    inspect = run(["gst-inspect-1.0", "onenip"], env=env)
    assert str(plugins[0]) in inspect.stdout
    assert "onenipdetect" in inspect.stdout

    # Run from another folder so that the source tree's .ort-path is not what is found.
    launch = subprocess.run(
        ["gst-launch-1.0", "videotestsrc", "num-buffers=3", "!", "onenipdetect", "!", "fakesink"],
        env={**env, "GST_DEBUG": "onenipdetect:4"},
        cwd=installed,
        capture_output=True,
        text=True,
    )
    assert launch.returncode == 0, launch.stdout + launch.stderr
    assert "ONNX Runtime 1.32.0" in launch.stderr
    assert "recorded by meson install" in launch.stderr
