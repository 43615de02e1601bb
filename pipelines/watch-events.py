#!/usr/bin/python3
"""watch-events.py SOURCE PROMPT: prints onenipdetect's anomaly events as JSON lines.

SOURCE is a video file, or a V4L2 device such as /dev/video0. One JSON line per anomaly
event (episode start and end, from the onenip-anomaly bus messages); with --frames, also
one line per frame with its score, decision and regions, read from the OnenipAnomalyMeta on
the buffer. Stops at the end of the file, or with Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from onenip_common import (  # noqa: E402
    ANOMALY,
    Gst,
    add_detector_options,
    detector_properties,
    fail,
    init_gstreamer,
    print_json,
    quote,
    require_file,
    run,
    seconds,
    structure_event,
)


def frame_line(buf: Gst.Buffer) -> dict[str, Any] | None:
    meta = buf.get_custom_meta("OnenipAnomalyMeta")
    if meta is None:
        return None
    s = meta.get_structure()
    return {
        "type": "frame",
        "pts": seconds(buf.pts),
        "score": round(s.get_value("score"), 5),
        "anomalous": s.get_value("anomalous"),
        "stale": s.get_value("stale"),
        "regions": [
            {k: r.get_value(k) for k in ("x", "y", "width", "height", "peak")}
            for r in s.get_value("regions").array
        ],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="watch-events.py", description=__doc__.splitlines()[0])
    ap.add_argument("source", help="video file or V4L2 device (/dev/videoN)")
    ap.add_argument("prompt", type=Path, help="image of a good part")
    ap.add_argument("--frames", action="store_true", help="also print every frame's score")
    add_detector_options(ap)
    args = ap.parse_args(argv)
    prompt = require_file(args.prompt, "prompt")
    is_device = args.source.startswith("/dev/video")
    source = Path(args.source) if is_device else require_file(Path(args.source), "source")
    if is_device and not source.exists():
        fail(f"camera {source}: no such device")
    init_gstreamer()

    src = f"v4l2src device={quote(source)}" if is_device else f"filesrc location={quote(source)} ! decodebin"
    pipeline = Gst.parse_launch(
        f"{src} ! videoconvert ! onenipdetect name=detect {detector_properties(args, prompt)} ! fakesink"
    )
    if args.frames:

        def on_buffer(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            line = frame_line(info.get_buffer())
            if line is not None:
                print_json(line)
            return Gst.PadProbeReturn.OK

        pipeline.get_by_name("detect").get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, on_buffer)

    def on_element(s: Gst.Structure) -> None:
        if s.get_name() == ANOMALY and s.get_value("event") != "frame":
            print_json(structure_event(s))

    run(pipeline, on_element, on_warning=lambda m: print(f"warning: {m}", file=sys.stderr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
