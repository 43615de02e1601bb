"""What the pipeline scripts share: finding the plugin, running a pipeline to its end, and
turning onenipdetect's bus messages into JSON-ready events.

The scripts run with Debian's python3 (PyGObject comes from python3-gi).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ANOMALY = "onenip-anomaly"
PROMPT = "onenip-prompt"
PROVIDER = "onenip-provider"


def init_gstreamer() -> None:
    """Initialises GStreamer; a plugin built in this checkout is found without any setup."""
    builds = [REPO / "target" / p / "libgstonenip.so" for p in ("release", "debug")]
    built = sorted((b for b in builds if b.exists()), key=lambda b: b.stat().st_mtime)
    if built and "GST_PLUGIN_PATH" not in os.environ:
        os.environ["GST_PLUGIN_PATH"] = str(built[-1].parent)  # the newest build
    Gst.init(None)
    if Gst.ElementFactory.find("onenipdetect") is None:
        fail(
            "the onenip plugin is not installed: build it (cargo build --release -p gst-plugin-onenip) "
            "or set GST_PLUGIN_PATH to the folder holding libgstonenip.so"
        )


def add_detector_options(ap: argparse.ArgumentParser) -> None:
    """The onenipdetect settings every script offers."""
    ap.add_argument("--model", type=Path, help="model directory (default: the bundled model)")
    ap.add_argument("--provider", default="auto", choices=("auto", "tensorrt", "cuda", "cpu"),
                    help="execution provider (default: auto)")
    ap.add_argument("--image-threshold", type=float,
                    help="a frame scoring above this is anomalous (default: the model's calibration)")
    ap.add_argument("--pixel-threshold", type=float,
                    help="anomaly-map values above this form regions (default: the model's calibration)")


def detector_properties(args: argparse.Namespace, prompt: Path) -> str:
    """onenipdetect's properties for gst-launch syntax, from `add_detector_options`'s args."""
    props = [f"prompt-location={quote(prompt)}", f"execution-provider={args.provider}"]
    if args.model is not None:
        if not args.model.is_dir():
            fail(f"model {args.model}: no such directory")
        props.append(f"model={quote(args.model.resolve())}")
    if args.image_threshold is not None:
        props.append(f"image-threshold={args.image_threshold}")
    if args.pixel_threshold is not None:
        props.append(f"pixel-threshold={args.pixel_threshold}")
    return " ".join(props)


_print_lock = threading.Lock()


def print_json(obj: Any) -> None:
    """One JSON line, whole: bus messages and pad probes print from different threads."""
    line = json.dumps(obj) + "\n"
    with _print_lock:
        sys.stdout.write(line)
        sys.stdout.flush()


def fail(message: str, code: int = 2) -> None:
    print(f"{Path(sys.argv[0]).name}: {message}", file=sys.stderr)
    sys.exit(code)


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        fail(f"{what} {path}: no such file")
    return path.resolve()


def quote(path: Path | str) -> str:
    """A path as a gst-launch property value."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'


def seconds(t: int | None) -> float | None:
    return None if t is None or t == Gst.CLOCK_TIME_NONE else round(t / Gst.SECOND, 3)


def structure_event(s: Gst.Structure) -> dict[str, Any]:
    """An element message of onenipdetect as a plain dict."""
    out: dict[str, Any] = {"type": s.get_name()}
    for i in range(s.n_fields()):
        name = s.nth_field_name(i)
        value = s.get_value(name)
        if name in ("pts", "running-time"):
            out[name.replace("-", "_")] = seconds(value)
        elif name == "regions":
            out["regions"] = [
                {k: r.get_value(k) for k in ("x", "y", "width", "height", "peak")} for r in value.array
            ]
        elif isinstance(value, Gst.ValueArray):
            out[name] = list(value.array)
        else:
            out[name.replace("-", "_")] = value
    return out


def run(
    pipeline: Gst.Pipeline,
    on_element: Callable[[Gst.Structure], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> None:
    """Plays `pipeline` to EOS (or Ctrl-C: EOS is sent so that files are finalised);
    exits with a message on error."""
    loop = GLib.MainLoop()
    error: list[str] = []

    def on_message(_bus: Gst.Bus, msg: Gst.Message) -> None:
        if msg.type == Gst.MessageType.ELEMENT and on_element is not None:
            s = msg.get_structure()
            if s is not None and s.get_name().startswith("onenip-"):
                on_element(s)
        elif msg.type == Gst.MessageType.WARNING:
            err, _ = msg.parse_warning()
            (on_warning or (lambda m: print(f"warning: {m}", file=sys.stderr)))(err.message)
        elif msg.type == Gst.MessageType.ERROR:
            err, debug = msg.parse_error()
            error.append(err.message)
            loop.quit()
        elif msg.type == Gst.MessageType.EOS:
            loop.quit()

    bus = pipeline.get_bus()
    bus.add_signal_watch()
    bus.connect("message", on_message)
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        # The error message on the bus says why.
        pass
    try:
        loop.run()
    except KeyboardInterrupt:
        pipeline.send_event(Gst.Event.new_eos())
        bus.timed_pop_filtered(10 * Gst.SECOND, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    finally:
        pipeline.set_state(Gst.State.NULL)
        bus.remove_signal_watch()
    if error:
        fail(error[0], code=1)
