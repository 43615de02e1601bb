#!/usr/bin/python3
"""Reads onenipdetect's results from Python (PyGObject), the two ways an application can.

- the `OnenipAnomalyMeta` custom meta on each buffer: score, decision, thresholds, roi,
  the 8-bit anomaly map and the regions;
- the standard `GstVideoRegionOfInterestMeta` per anomalous region (type "anomaly", with
  an "onenip" parameter structure holding the region's score).

It reads them from an appsink (`--from appsink`, the default) or from a pad probe on the
detector's src pad (`--from probe`), and prints one JSON line per frame.

    read_meta.py VIDEO PROMPT [--from appsink|probe] [--model DIR] [--max-frames N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onenip_common import init_gstreamer  # noqa: E402

META_NAME = "OnenipAnomalyMeta"


def read_result(buf: Gst.Buffer) -> dict[str, Any] | None:
    """The frame's result as plain Python values, or None without a meta."""
    meta = buf.get_custom_meta(META_NAME)
    if meta is None:
        return None
    s = meta.get_structure()  # a copy: read it, writing through it does not stick
    anomaly_map = s.get_value("map")
    ok, mapped = anomaly_map.map(Gst.MapFlags.READ)
    try:
        peak_byte = max(mapped.data) if ok else 0
    finally:
        if ok:
            anomaly_map.unmap(mapped)
    result: dict[str, Any] = {
        "pts": buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else None,
        "score": s.get_value("score"),
        "anomalous": s.get_value("anomalous"),
        "image_threshold": s.get_value("image-threshold"),
        "pixel_threshold": s.get_value("pixel-threshold"),
        "stale": s.get_value("stale"),
        "frame": [s.get_value("frame-width"), s.get_value("frame-height")],
        "roi": [s.get_value(k) for k in ("roi-x", "roi-y", "roi-width", "roi-height")],
        "map_size": [s.get_value("map-width"), s.get_value("map-height")],
        "map_peak": peak_byte * s.get_value("map-scale"),
        "regions": [
            {k: r.get_value(k) for k in ("x", "y", "width", "height", "peak")}
            for r in s.get_value("regions").array
        ],
        "latency_ms": s.get_value("latency") / 1e6,
        "provider": s.get_value("provider"),
    }
    # The same regions as standard ROI metas; onenipdetect numbers them 0..n-1.
    rois = []
    for i in range(len(result["regions"])):
        roi = GstVideo.buffer_get_video_region_of_interest_meta_id(buf, i)
        if roi is not None:
            param = roi.get_param("onenip")
            rois.append({"rect": [roi.x, roi.y, roi.w, roi.h], "score": param.get_value("score")})
    result["roi_metas"] = rois
    result["region_count"] = len(result["regions"])
    result["prompt"] = s.get_value("prompt")
    return result


def build(video: Path, prompt: Path, model: Path | None, source: str) -> Gst.Pipeline:
    model_prop = f" model={model}" if model else ""
    sink = "appsink name=sink emit-signals=true sync=false" if source == "appsink" else "fakesink"
    return Gst.parse_launch(
        f'filesrc location="{video}" ! decodebin ! videoconvert '
        f'! onenipdetect name=detect prompt-location="{prompt}"{model_prop} ! {sink}'
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video", type=Path)
    ap.add_argument("prompt", type=Path)
    ap.add_argument("--from", dest="source", choices=("appsink", "probe"), default="appsink")
    ap.add_argument("--model", type=Path)
    ap.add_argument("--max-frames", type=int, default=0, help="stop after N frames (0: all)")
    args = ap.parse_args(argv)
    for path in (args.video, args.prompt):
        if not path.is_file():
            print(f"read_meta.py: {path}: no such file", file=sys.stderr)
            return 2

    init_gstreamer()
    pipeline = build(args.video, args.prompt, args.model, args.source)
    loop = GLib.MainLoop()
    seen = 0
    status = 0

    def emit(buf: Gst.Buffer) -> None:
        nonlocal seen
        result = read_result(buf)
        if result is not None:
            seen += 1
            print(json.dumps(result), flush=True)
            if args.max_frames and seen >= args.max_frames:
                GLib.idle_add(loop.quit)

    if args.source == "appsink":

        def on_sample(sink: Any) -> Gst.FlowReturn:
            emit(sink.emit("pull-sample").get_buffer())
            return Gst.FlowReturn.OK

        pipeline.get_by_name("sink").connect("new-sample", on_sample)
    else:

        def on_buffer(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            emit(info.get_buffer())
            return Gst.PadProbeReturn.OK

        pipeline.get_by_name("detect").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)

    def on_message(_bus: Gst.Bus, msg: Gst.Message) -> None:
        nonlocal status
        if msg.type == Gst.MessageType.ERROR:
            err, _ = msg.parse_error()
            print(f"read_meta.py: {err.message}", file=sys.stderr)
            status = 1
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    pipeline.set_state(Gst.State.PLAYING)
    try:
        loop.run()
    finally:
        pipeline.set_state(Gst.State.NULL)
    return status


if __name__ == "__main__":
    sys.exit(main())
