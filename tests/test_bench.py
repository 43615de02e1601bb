"""`scripts/bench --quick` runs end to end and writes results with every row and finite numbers.

Quick mode measures a few frames only (and a 30-frame soak instead of 10,000): the numbers are
not meaningful, the shape of the results is what is checked. Set ONENIP_SKIP_BENCH=1 to skip.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import report  # noqa: E402

STAGES = set(report.STAGE_LABELS)
LOOPS = set(report.LOOPS)
RATIOS = set(report.RATIOS)
TARGET_KEYS = {key for _, key, _, _, _ in report.TARGETS}


def numbers(value: Any, path: str = "") -> list[tuple[str, float]]:
    """Every number in a JSON document, with its path."""
    if isinstance(value, bool):
        return []
    if isinstance(value, (int, float)):
        return [(path, float(value))]
    if isinstance(value, dict):
        return [n for k, v in value.items() for n in numbers(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [n for i, v in enumerate(value) for n in numbers(v, f"{path}[{i}]")]
    return []


@pytest.mark.skipif(os.environ.get("ONENIP_SKIP_BENCH") == "1", reason="ONENIP_SKIP_BENCH=1")
def test_quick_bench_writes_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    run = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    res = json.loads((out / "results.json").read_text())

    assert set(res["stages"]["rows"]) >= STAGES
    assert set(res["loops"]) == LOOPS
    assert set(res["ratios"]) == RATIOS
    assert {t["key"] for t in res["targets"]} == TARGET_KEYS
    assert res["memory"]["soak"]["frames"] == 30, "quick mode runs a short soak"
    for name in ("detect", "overlay", "overlay-queue"):
        assert res["loops"][name]["active_provider"] == "cpu"
        assert res["loops"][name]["inferred"] > 0, "frames went through uninspected"
    assert res["info"]["machine"]["cores"] >= 1
    assert res["info"]["versions"]["rustc"] != "n/a"
    bad = [(p, v) for p, v in numbers(res) if not math.isfinite(v)]
    assert not bad, f"non-finite numbers: {bad}"
    assert all(v > 0 for k, v in res["ratios"].items() for v in [v["median"]])
    floor = res["loops"]["ort"]
    assert len(floor["fps_runs"]) == res["rounds"], "one floor run per round, before and after joined"

    md = (out / "RESULTS.md").read_text()
    for heading in ("## Targets", "## End to end", "## Stages", "## Memory", "# GPU"):
        assert heading in md
    assert "scripts/bench --quick" in md

    # Rewriting the report from results.json alone gives the same report.
    before = md
    rewrite = subprocess.run([sys.executable, str(ROOT / "bench" / "report.py"), "--rewrite", str(out)],
                             capture_output=True, text=True, timeout=60)
    assert rewrite.returncode == 0, rewrite.stderr
    assert (out / "RESULTS.md").read_text() == before
    assert "Ceilings, from this run" in before


def test_floor_runs_before_and_after_count_as_one() -> None:
    """A round's two floor runs (before and after the pipelines) join as frames over time."""
    before = {"frames": 100, "fps": 50.0, "ms_per_frame": 20.0, "peak_rss_mb": 240.0, "kind": "python-ort"}
    after = {"frames": 100, "fps": 100.0, "ms_per_frame": 10.0, "peak_rss_mb": 241.0, "kind": "python-ort"}
    both = report.bracket(before, after)
    assert both["frames"] == 200
    assert both["fps"] == pytest.approx(200 / 3.0), "200 frames in 2 s + 1 s"
    assert both["ms_per_frame"] == pytest.approx(15.0)
    assert (both["fps_before"], both["fps_after"]) == (50.0, 100.0)
    assert both["peak_rss_mb"] == 241.0
    assert both["kind"] == "python-ort"
