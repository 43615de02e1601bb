"""Reliability cases that need their own process: no ONNX Runtime library, a file that is not
a library, and a leak check of a whole pipeline under valgrind."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import DATA, ROOT

TINY = DATA / "tiny-onenip"


def launch(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["gst-launch-1.0", "videotestsrc", "num-buffers=3", "!", "video/x-raw,width=64,height=48", "!",
         "onenipdetect", f"model={TINY}", f"prompt-location={DATA / 'prompt.png'}", "execution-provider=cpu",
         *extra, "!", "fakesink"],
        env=env, capture_output=True, text=True, timeout=120,
    )


def test_missing_onnx_runtime_fails_the_start_with_the_places_looked_at(plugin_env: dict[str, str]) -> None:
    env = {**plugin_env, "ORT_DYLIB_PATH": "/nonexistent/libonnxruntime.so.1.32.0"}
    out = launch(env)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "ONNX Runtime library not found" in text
    assert "/nonexistent/libonnxruntime.so.1.32.0 (ORT_DYLIB_PATH): no such file" in text


def test_a_file_that_is_not_a_library_is_named(plugin_env: dict[str, str]) -> None:
    env = {**plugin_env, "ORT_DYLIB_PATH": str(DATA / "tiny-add.onnx")}
    out = launch(env)
    assert out.returncode != 0
    text = out.stdout + out.stderr
    assert "tiny-add.onnx (ORT_DYLIB_PATH): failed to load" in text


def test_the_plugin_registers_without_onnx_runtime(plugin_env: dict[str, str], tmp_path: Path) -> None:
    env = {**plugin_env, "ORT_DYLIB_PATH": "/nonexistent/lib.so", "GST_REGISTRY": str(tmp_path / "reg.bin")}
    out = subprocess.run(["gst-inspect-1.0", "onenipdetect"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "prompt-location" in out.stdout


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is installed by scripts/setup")
def test_no_memory_definitely_lost_in_a_pipeline(plugin_env: dict[str, str], tmp_path: Path) -> None:
    env = {**plugin_env, "GST_REGISTRY": str(tmp_path / "reg.bin")}
    subprocess.run(["gst-inspect-1.0", "onenip"], env=env, capture_output=True, check=True)
    log = tmp_path / "valgrind.log"
    out = subprocess.run(
        ["valgrind", "--leak-check=full", "--show-leak-kinds=definite", "--errors-for-leak-kinds=definite",
         f"--suppressions={ROOT / 'tests' / 'valgrind.supp'}", "--error-exitcode=42", f"--log-file={log}",
         "gst-launch-1.0", "-q", "videotestsrc", "num-buffers=20", "!", "video/x-raw,width=64,height=48", "!",
         "onenipdetect", f"model={TINY}", f"prompt-location={DATA / 'prompt.png'}", "execution-provider=cpu",
         "!", "onenipoverlay", "!", "fakesink"],
        env=env, capture_output=True, text=True, timeout=900,
    )
    text = log.read_text()
    lost = re.search(r"definitely lost: ([\d,]+) bytes", text)
    assert lost is not None, text[-2000:]
    assert lost.group(1) == "0", text[-4000:]
    assert out.returncode == 0, text[-4000:]
