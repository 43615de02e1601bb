"""Turns the raw measurements of one ``scripts/bench`` run into ``results.json`` and
``RESULTS.md``: medians over rounds, ratios per round (each measured side by side in the same
round) and their medians, checked against the targets of issue 7.

Usage: ``python bench/report.py RAW_DIR OUT_DIR``; RAW_DIR holds ``info.json`` and one JSON
file per measurement, named ``<measurement>-<round>.json`` (or ``<measurement>.json``).
``python bench/report.py --rewrite OUT_DIR`` rewrites OUT_DIR's report from its results.json.
"""

from __future__ import annotations

import json
import math
import re
import statistics
import sys
from pathlib import Path
from typing import Any

Json = dict[str, Any]

# name -> (what the target compares, the value's key, "<=" or ">=", limit, unit)
TARGETS: list[tuple[str, str, str, float, str]] = [
    ("pipeline detect / python ORT", "ratio_detect_vs_ort", ">=", 0.90, "x"),
    # The overlay as the README and the ready pipelines run it, after a queue; without one the
    # drawing adds to every frame's inference time on the same thread (see the ceilings).
    ("pipeline detect ! queue ! overlay / python ORT", "ratio_overlay_queue_vs_ort", ">=", 0.90, "x"),
    ("pipeline detect / PyTorch per-frame loop", "ratio_detect_vs_torch", ">=", 2.5, "x"),
    ("convert+resize 1920x1080 RGB", "preprocess_RGB_1920x1080", "<=", 2.0, "ms"),
    ("convert+resize 1920x1080 I420", "preprocess_I420_1920x1080", "<=", 2.0, "ms"),
    ("post-processing and meta", "postprocess_meta", "<=", 1.0, "ms"),
    ("overlay 1920x1080 RGB", "overlay_RGB_1920x1080", "<=", 4.0, "ms"),
    ("overlay 1920x1080 I420", "overlay_I420_1920x1080", "<=", 4.0, "ms"),
    ("RSS growth over the soak", "rss_growth_mb", "<", 2.0, "MB"),
    ("second instance sharing the model", "second_instance_mb", "<=", 30.0, "MB"),
]

STAGE_LABELS: dict[str, str] = {
    "preprocess_RGB_640x480": "convert+resize 640x480 RGB -> model input",
    "preprocess_I420_640x480": "convert+resize 640x480 I420 -> model input",
    "preprocess_RGB_1920x1080": "convert+resize 1920x1080 RGB -> model input",
    "preprocess_I420_1920x1080": "convert+resize 1920x1080 I420 -> model input",
    "preprocess_RGB_3840x2160": "convert+resize 3840x2160 RGB -> model input",
    "preprocess_I420_3840x2160": "convert+resize 3840x2160 I420 -> model input",
    "reconstructor": "reconstructor (own session)",
    "refiner": "refiner (own session)",
    "infer": "reconstructor + refiner (Models::infer)",
    "postprocess_meta": "post-processing and meta (regions, 8-bit map, attach)",
    "overlay_RGB_1920x1080": "onenipoverlay 1920x1080 RGB (all modes)",
    "overlay_I420_1920x1080": "onenipoverlay 1920x1080 I420 (all modes)",
}

LOOPS = ["detect", "overlay", "overlay-queue", "ort", "ort-spin", "ort-pre", "torch"]
LOOP_LABELS = {
    "detect": "appsrc ! onenipdetect ! fakesink",
    "overlay": "appsrc ! onenipdetect ! onenipoverlay ! fakesink",
    "overlay-queue": "appsrc ! onenipdetect ! queue ! onenipoverlay ! fakesink (overlay on its own thread)",
    "ort": "Python ONNX Runtime loop, same two graphs and session settings (floor)",
    "ort-spin": "Python ONNX Runtime loop, same two graphs, ONNX Runtime's default pools (workers spin on after a run)",
    "ort-pre": "Python ONNX Runtime loop + PIL transform from 1080p RGB",
    "torch": "PyTorch per-frame loop (prompt through the backbone every frame)",
}
RATIOS = {
    "ratio_detect_vs_ort": ("detect", "ort"),
    "ratio_overlay_vs_ort": ("overlay", "ort"),
    "ratio_overlay_queue_vs_ort": ("overlay-queue", "ort"),
    "ratio_detect_vs_ort_spinning": ("detect", "ort-spin"),
    "ratio_detect_vs_ort_preprocess": ("detect", "ort-pre"),
    "ratio_detect_vs_torch": ("detect", "torch"),
    "ratio_overlay_vs_torch": ("overlay", "torch"),
    # The floor against PyTorch: the most any wrapper of these graphs can reach.
    "ratio_ort_vs_torch": ("ort", "torch"),
}


GPU_PENDING = """# GPU

Not measured yet: no GPU machine was available. `scripts/gpu-check` is ready (see its header:
`scripts/gpu-check --fetch` here, then `bash scripts/gpu-check` on the GPU machine); it writes
`bench/gpu-results.json` and replaces this section.
"""


def load(raw: Path, name: str) -> list[Json]:
    pattern = re.compile(rf"{re.escape(name)}-(\d+)\.json")
    numbered = [(int(m[1]), p) for p in raw.iterdir() if (m := pattern.fullmatch(p.name))]
    files = [p for _, p in sorted(numbered)]
    single = raw / f"{name}.json"
    return [json.loads(p.read_text()) for p in ([single] if single.exists() else files)]


def med(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else float("nan")


def bracket(before: Json, after: Json) -> Json:
    """The floor's two runs of one round (before and after the pipelines) as one: frames over
    time, which halves a drift of the machine's speed within the round."""
    frames = before["frames"] + after["frames"]
    seconds = before["frames"] / before["fps"] + after["frames"] / after["fps"]
    return {**before, "frames": frames, "fps": frames / seconds, "ms_per_frame": seconds * 1e3 / frames,
            "fps_before": before["fps"], "fps_after": after["fps"],
            "peak_rss_mb": max(before["peak_rss_mb"], after["peak_rss_mb"])}


def summarise(raw: Path) -> Json:
    info = json.loads((raw / "info.json").read_text())
    stages = load(raw, "stages")[0]
    rounds = {name: runs for name in LOOPS if (runs := load(raw, name))}
    if "ort" in rounds and (after := load(raw, "ort-after")):
        rounds["ort"] = [bracket(before, later) for before, later in zip(rounds["ort"], after)]
    n = min(len(v) for v in rounds.values())
    loops: Json = {}
    for name, runs in rounds.items():
        loops[name] = {
            "what": LOOP_LABELS[name],
            "fps": med([r["fps"] for r in runs]),
            "ms_per_frame": med([r["ms_per_frame"] for r in runs]),
            "fps_runs": [r["fps"] for r in runs],
            "frames_per_run": runs[0]["frames"],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
        }
        for key in ("latency_ms_median", "first_result_s", "active_provider", "weights", "inferred"):
            if key in runs[0]:
                loops[name][key] = runs[0][key] if isinstance(runs[0][key], str) else med([r[key] for r in runs])
    ratios: Json = {}
    for key, (a, b) in RATIOS.items():
        if a in rounds and b in rounds:
            per_round = [rounds[a][i]["fps"] / rounds[b][i]["fps"] for i in range(n)]
            ratios[key] = {"median": med(per_round), "rounds": per_round, "of": f"{a} fps / {b} fps"}
    soak = load(raw, "soak")[0]
    second = load(raw, "second-instance")[0]
    memory = {
        "peak_rss_mb_pipeline_detect": loops["detect"]["peak_rss_mb"],
        "peak_rss_mb_pipeline_overlay": loops["overlay"]["peak_rss_mb"],
        "peak_rss_mb_python_ort": loops["ort"]["peak_rss_mb"],
        "peak_rss_mb_pytorch": loops["torch"]["peak_rss_mb"],
        "soak": soak,
        "rss_growth_mb": soak["rss_growth_mb"],
        "second_instance": second,
        "second_instance_mb": second["second_instance_mb"],
    }
    values: dict[str, float] = {k: v["median"] for k, v in ratios.items()}
    values.update({k: v["ms"] for k, v in stages["rows"].items()})
    values["rss_growth_mb"] = soak["rss_growth_mb"]
    values["second_instance_mb"] = second["second_instance_mb"]
    targets = []
    for label, key, op, limit, unit in TARGETS:
        v = values[key]
        ok = v >= limit if op == ">=" else (v <= limit if op == "<=" else v < limit)
        targets.append({"target": label, "key": key, "value": v, "op": op, "limit": limit, "unit": unit,
                        "met": bool(ok), "margin": v / limit})
    return {"info": info, "rounds": n, "stages": stages, "loops": loops, "ratios": ratios,
            "memory": memory, "targets": targets}


def fmt(v: float, digits: int = 2) -> str:
    return f"{v:.{digits}f}" if math.isfinite(v) else "n/a"


def ceilings(res: Json) -> list[str]:
    """What the pipeline ratios can reach at most, from this run's own numbers."""
    ratios, loops, rows = res["ratios"], res["loops"], res["stages"]["rows"]
    if "ratio_ort_vs_torch" not in ratios or "overlay_I420_1920x1080" not in rows:
        return []
    floor_ms = loops["ort"]["ms_per_frame"]
    overlay_ms = rows["overlay_I420_1920x1080"]["ms"]
    pre_ms = rows["preprocess_I420_1920x1080"]["ms"]
    post_ms = rows["postprocess_meta"]["ms"]
    return [
        "",
        "Ceilings, from this run: the Python ONNX Runtime floor itself runs at "
        f"{fmt(ratios['ratio_ort_vs_torch']['median'])} x the PyTorch loop, the most any wrapper of these "
        f"graphs can reach against it. The floor's frame takes {fmt(floor_ms)} ms; converting and resizing "
        f"({fmt(pre_ms)} ms), post-processing ({fmt(post_ms)} ms) and the 1080p overlay ({fmt(overlay_ms)} ms) "
        "are work the floor does not do, so on one streaming thread detect+overlay / floor is at most "
        f"{fmt(floor_ms / (floor_ms + pre_ms + post_ms + overlay_ms))} x. A `queue` before the overlay "
        "moves the drawing to a thread of its own, where it overlaps the next frame's inference "
        "(the ready pipelines in `pipelines/` do this).",
    ]


def markdown(res: Json) -> str:
    info, loops, ratios, mem = res["info"], res["loops"], res["ratios"], res["memory"]
    m = info["machine"]
    out = [
        "# Benchmark results (CPU)",
        "",
        f"Measured {info['date']} by `{info['command']}` at commit `{info['commit']}`"
        + (" (with uncommitted changes)" if info.get("dirty") else "") + ".",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores, {fmt(m['memory_gb'], 1)} GB memory"
        + (f"; {m['note']}" if m.get("note") else ""),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        f"- Model: `{info['model']['dir']}` ({info['model']['variant']}, input {info['model']['input_size']}, "
        f"{info['model']['source']})",
        f"- Threads: {info['threads']} ONNX Runtime intra-op threads for every model loop "
        "(`threads` property, `intra_op_num_threads`, `torch.set_num_threads`); ONNX Runtime sessions "
        "whose workers spin within a run and stop when it returns (`session.force_spinning_stop`), as the "
        "element builds them, except in the row that says otherwise; "
        "pre-processing and "
        "post-processing run on the streaming thread.",
        f"- PyTorch weights: {loops['torch'].get('weights', 'n/a')}",
        f"- {res['rounds']} rounds; in each round every loop below runs once, one after the other, each in "
        "its own process (model loading not timed), except the Python ONNX Runtime floor, which runs "
        "before and after the three pipelines and counts as one run of both (frames over time); ratios "
        "are taken within a round, then the median over rounds. Stage times: median over rounds of the "
        "mean over the iterations.",
        *([f"- Note: {info['note']}"] if info.get("note") else []),
        "",
        "## Targets",
        "",
        "| target | measured | limit | met |",
        "|---|---|---|---|",
    ]
    for t in res["targets"]:
        out.append(f"| {t['target']} | {fmt(t['value'])} {t['unit']} | {t['op']} {fmt(t['limit'])} {t['unit']} | "
                   f"{'yes' if t['met'] else '**no**'} |")
    out += ceilings(res)
    out += ["", "## End to end (1920x1080 I420 frames held in memory, pushed through appsrc)", "",
            "The frames come from a pool of ten writable buffers, filled once and handed over as a "
            "decoder's pool hands over its buffers: decoding is not measured and nothing is copied per frame "
            "(the overlay draws over its earlier drawing).", "",
            "| loop | fps (median) | ms/frame | peak RSS MB | fps per round |", "|---|---|---|---|---|"]
    for name in (n for n in LOOPS if n in loops):
        lp = loops[name]
        out.append(f"| {lp['what']} | {fmt(lp['fps'])} | {fmt(lp['ms_per_frame'])} | {fmt(lp['peak_rss_mb'], 0)} | "
                   + ", ".join(fmt(v) for v in lp["fps_runs"]) + " |")
    out += ["", "| ratio | median | per round |", "|---|---|---|"]
    for key, r in ratios.items():
        out.append(f"| {r['of']} | {fmt(r['median'])} | " + ", ".join(fmt(v) for v in r["rounds"]) + " |")
    out += ["", f"## Stages (median of {res['stages']['runs']} runs)", "", "| stage | ms | iterations per run |",
            "|---|---|---|"]
    for key, label in STAGE_LABELS.items():
        row = res["stages"]["rows"][key]
        extra = f" ({row['regions']} regions)" if "regions" in row else ""
        out.append(f"| {label}{extra} | {fmt(row['ms'], 3)} | {row['iters']} |")
    soak, second = mem["soak"], mem["second_instance"]
    out += [
        "",
        "## Memory",
        "",
        f"- Peak RSS (VmHWM): pipeline detect {fmt(mem['peak_rss_mb_pipeline_detect'], 0)} MB, detect+overlay "
        f"{fmt(mem['peak_rss_mb_pipeline_overlay'], 0)} MB; Python ORT loop {fmt(mem['peak_rss_mb_python_ort'], 0)} MB; "
        f"PyTorch loop {fmt(mem['peak_rss_mb_pytorch'], 0)} MB.",
        f"- Soak: {soak['frames']} frames ({soak['input']}, `{soak['graph']}`, after {soak['warmup']} warm-up "
        f"frames, every frame inferred: {soak['inferred']} inferred): RSS {fmt(soak['rss_start_mb'], 1)} -> "
        f"{fmt(soak['rss_end_mb'], 1)} MB, growth **{fmt(soak['rss_growth_mb'], 2)} MB**; "
        f"{fmt(soak['fps'], 1)} fps.",
        f"- Instances in one process ({second['input']} frames): one pipeline {fmt(second['rss_one_mb'], 1)} MB, "
        f"two sharing the model {fmt(second['rss_two_mb'], 1)} MB (**+{fmt(second['second_instance_mb'], 1)} MB**), "
        f"a third that cannot share (another thread count) {fmt(second['rss_three_mb'], 1)} MB "
        f"(+{fmt(second['unshared_instance_mb'], 1)} MB).",
        "",
        "Raw numbers: `results.json` beside this file.",
        "",
    ]
    return "\n".join(out)


def rewrite(res: Json) -> Json:
    """``res`` (a results.json) with its ratios recomputed from the loops' per-round fps, for
    reports written before a ratio was added."""
    runs = {name: lp["fps_runs"] for name, lp in res["loops"].items()}
    for key, (a, b) in RATIOS.items():
        if a in runs and b in runs:
            per_round = [x / y for x, y in zip(runs[a], runs[b])]
            res["ratios"][key] = {"median": med(per_round), "rounds": per_round, "of": f"{a} fps / {b} fps"}
    return res


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "--rewrite":
        out = Path(argv[1])
        res = rewrite(json.loads((out / "results.json").read_text()))
    elif len(argv) == 2:
        res = summarise(Path(argv[0]))
        out = Path(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    gpu = out / "gpu-section.md"
    (out / "RESULTS.md").write_text(md + "\n" + (gpu.read_text() if gpu.exists() else GPU_PENDING))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
