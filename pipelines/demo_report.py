#!/usr/bin/env python3
"""demo_report.py SAMPLE_JSON EVENTS ANNOTATED OUT_PNG: what the demo prints and draws.

(`demo_report.py --settings` prints the sample's video, prompt, image and pixel thresholds.)

Matches the anomaly episodes of EVENTS (the JSON lines `inspect-file` writes) with the parts
listed in SAMPLE_JSON (the sample video's ground truth), prints a summary (parts seen, parts
flagged and which, missed and false alarms), and writes a contact sheet of the annotated
video (ANNOTATED): one tile per flagged part, taken mid-episode. Needs Pillow and ffmpeg
(run it with the project venv: .venv/bin/python).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


def load_episodes(events: Path, duration: float) -> list[tuple[float, float, float]]:
    """(start, end, peak score) of each anomalous episode; an episode open at the end of the
    video ends with it."""
    episodes: list[list[float]] = []
    for line in events.read_text().splitlines():
        e = json.loads(line)
        if e.get("type") != "onenip-anomaly":
            continue
        if e["event"] == "start":
            episodes.append([e["pts"], duration, e["peak_score"]])
        elif e["event"] == "end" and episodes:
            if e["pts"] is not None:
                episodes[-1][1] = e["pts"]
            episodes[-1][2] = e["peak_score"]
    return [(s, t, p) for s, t, p in episodes]


def flagged_parts(parts: list[dict[str, Any]], episodes: list[tuple[float, float, float]]) -> dict[int, float]:
    """Part index -> peak score, for each part whose still period (its middle 60 %) overlaps
    an episode."""
    out: dict[int, float] = {}
    for p in parts:
        span = p["end_s"] - p["start_s"]
        lo, hi = p["start_s"] + 0.2 * span, p["end_s"] - 0.2 * span
        for s, t, peak in episodes:
            if s < hi and t > lo:
                out[p["index"]] = max(out.get(p["index"], 0.0), peak)
    return out


def frame_at(video: Path, t: float) -> Image.Image:
    png = subprocess.run(
        ["ffmpeg", "-v", "error", "-ss", f"{t:.3f}", "-i", str(video), "-frames:v", "1", "-f", "image2pipe",
         "-vcodec", "png", "-"],
        check=True, capture_output=True,
    ).stdout
    return Image.open(BytesIO(png)).convert("RGB")


def contact_sheet(video: Path, parts: list[dict[str, Any]], flagged: dict[int, float], out: Path) -> None:
    tiles = []
    for p in parts:
        if p["index"] in flagged:
            img = frame_at(video, (p["start_s"] + p["end_s"]) / 2)
            img.thumbnail((320, 320))
            ImageDraw.Draw(img).text(
                (6, img.height - 16), f"part {p['index']}: {p['label']}", fill=(255, 255, 255)
            )
            tiles.append(img)
    if not tiles:
        tiles = [Image.new("RGB", (320, 320), (40, 40, 40))]
        ImageDraw.Draw(tiles[0]).text((10, 150), "no anomalous part", fill=(255, 255, 255))
    cols = min(4, len(tiles))
    rows = (len(tiles) + cols - 1) // cols
    w, h = tiles[0].size
    sheet = Image.new("RGB", (cols * w + (cols + 1) * 4, rows * h + (rows + 1) * 4), (20, 20, 20))
    for i, tile in enumerate(tiles):
        sheet.paste(tile, (4 + (i % cols) * (w + 4), 4 + (i // cols) * (h + 4)))
    sheet.save(out)


MEDIA = Path(__file__).resolve().parent / "media"
MODEL = Path(__file__).resolve().parent.parent / "models" / "onenip-s"


def sample_settings(media: Path = MEDIA, model: Path = MODEL) -> tuple[Path, Path, float, float]:
    """The sample's video and prompt, and the image and pixel thresholds the bundled model's
    calibration gives for the sample's product class."""
    sample = json.loads((media / "sample.json").read_text())
    per_class = json.loads((model / "model.json").read_text())["calibration"]["per_class"][sample["class"]]
    return (media / sample["video"], media / sample["prompt"], per_class["image_threshold"],
            per_class["pixel_threshold"])


def main(argv: list[str] | None = None) -> int:
    if argv is None and sys.argv[1:] == ["--settings"]:
        print(*sample_settings())
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sample", type=Path)
    ap.add_argument("events", type=Path)
    ap.add_argument("annotated", type=Path)
    ap.add_argument("sheet", type=Path)
    args = ap.parse_args(argv)
    sample = json.loads(args.sample.read_text())
    parts = sample["parts"]
    flagged = flagged_parts(parts, load_episodes(args.events, sample["duration_s"]))
    contact_sheet(args.annotated, parts, flagged, args.sheet)

    defective = {p["index"] for p in parts if p["defective"]}
    print(f"demo: {len(parts)} parts seen, {len(flagged)} flagged as anomalous")
    for p in parts:
        if p["index"] in flagged or p["defective"]:
            verdict = "flagged" if p["index"] in flagged else "MISSED"
            truth = "defective" if p["defective"] else "good (false alarm)"
            score = f", peak score {flagged[p['index']]:.3f}" if p["index"] in flagged else ""
            print(f"  part {p['index']:2d} at {p['start_s']:5.2f} s: {p['label']:<14} {truth:<18} {verdict}{score}")
    caught = len(defective & flagged.keys())
    false_alarms = len(flagged.keys() - defective)
    print(f"demo: {caught}/{len(defective)} defective parts caught, {false_alarms} false alarm(s)")
    print(f"demo: contact sheet {args.sheet}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
