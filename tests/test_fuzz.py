"""Bounded fuzz runs (cargo fuzz, libFuzzer) of model.json parsing and prompt decoding,
seeded with the committed corpus in fuzz/corpus. A crash, a panic, a timeout or running out
of memory fails the test, and libFuzzer's output names the input (fuzz/artifacts)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

SECONDS = 25


def have_cargo_fuzz() -> bool:
    lists = subprocess.run(["rustup", "toolchain", "list"], capture_output=True, text=True).stdout
    return "nightly" in lists and shutil.which("cargo-fuzz") is not None


@pytest.mark.skipif(not have_cargo_fuzz(), reason="needs the nightly toolchain and cargo-fuzz (scripts/setup)")
@pytest.mark.parametrize("target", ["model_json", "prompt_image"])
def test_bounded_fuzz_run_finds_no_crash(target: str, tmp_path: Path) -> None:
    work = tmp_path / "corpus"
    work.mkdir()
    out = subprocess.run(
        ["cargo", "+nightly", "fuzz", "run", "-O", target, str(work), str(ROOT / "fuzz" / "corpus" / target),
         "--", f"-max_total_time={SECONDS}", "-rss_limit_mb=2048", "-timeout=10", "-max_len=65536"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert out.returncode == 0, out.stderr[-4000:]
    assert "Done" in out.stderr, out.stderr[-2000:]
