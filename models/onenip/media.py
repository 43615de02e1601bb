"""``onenip-media OUT``: the sample inspection video, its prompt image and ground truth.

A triggered inspection camera: each part of one benchmark class is held still
for ``--hold`` seconds, then slides out while the next one slides in
(``--transition`` seconds). Parts are rendered by
:func:`onenip.synth.render_inspection_sequence` at the benchmark's 256 x 256
(the part fills the frame exactly as in the training images) and upscaled to
the video size, so the element's view (full frame resized to 256) matches the
training distribution. Deterministic: same arguments, same frames (the H.264
encoder is run single-threaded with fixed settings).

Writes ``<class>.mp4`` (H.264, yuv420p), ``<class>-prompt.png`` (one more good
part, not in the video) and ``sample.json`` (each part's time span in seconds
and frames, label, defective; and the transitions to ignore). ``--check MODEL``
scores the middle frame of every part, decoded from the MP4, with the exported
model and records the scores in ``sample.json`` under ``model_check``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .synth import render_inspection_sequence

BENCH_SIZE = 256


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, axis=2) if img.ndim == 2 else img


def _upscale(img: np.ndarray, size: int) -> np.ndarray:
    im = Image.fromarray(_rgb(img))
    return np.asarray(im.resize((size, size), Image.Resampling.BICUBIC)) if size != im.width else np.asarray(im)


def _ease(t: float) -> float:
    return 0.5 - 0.5 * np.cos(np.pi * t)


def timeline(n_parts: int, fps: int, hold: float, transition: float) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Frame spans [start, end) of each part's still period and of each transition."""
    hold_f, trans_f = int(round(hold * fps)), int(round(transition * fps))
    parts, trans = [], []
    f = 0
    for i in range(n_parts):
        parts.append((f, f + hold_f))
        f += hold_f
        if i < n_parts - 1:
            trans.append((f, f + trans_f))
            f += trans_f
    return parts, trans


def frames(parts: list[np.ndarray], fps: int, hold: float, transition: float) -> Iterator[np.ndarray]:
    size = parts[0].shape[0]
    p_spans, t_spans = timeline(len(parts), fps, hold, transition)
    for i, img in enumerate(parts):
        s, e = p_spans[i]
        for _ in range(s, e):
            yield img
        if i < len(t_spans):
            s, e = t_spans[i]
            n = e - s
            for k in range(n):
                off = int(round(_ease((k + 1) / (n + 1)) * size))
                out = np.empty_like(img)
                out[:, : size - off] = img[:, off:]
                out[:, size - off :] = parts[i + 1][:, : off]
                yield out


def encode(frame_iter: Iterator[np.ndarray], size: int, fps: int, path: Path, crf: int = 20) -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg not found on PATH")
    cmd = [ffmpeg, "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{size}x{size}",
           "-r", str(fps), "-i", "-", "-an", "-c:v", "libx264", "-preset", "medium", "-crf", str(crf),
           "-pix_fmt", "yuv420p", "-threads", "1", "-g", str(fps), "-movflags", "+faststart",
           "-map_metadata", "-1", "-fflags", "+bitexact", "-flags:v", "+bitexact", str(path)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for fr in frame_iter:
        proc.stdin.write(np.ascontiguousarray(fr, dtype=np.uint8).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise RuntimeError(f"ffmpeg failed: {' '.join(cmd)}")


def decode_frames(path: Path, indices: Sequence[int], size: int) -> dict[int, np.ndarray]:
    """Selected frames of a video as RGB uint8 arrays (ffmpeg's YUV -> RGB)."""
    sel = "+".join(f"eq(n\\,{i})" for i in indices)
    cmd = ["ffmpeg", "-loglevel", "error", "-i", str(path), "-vf", f"select={sel}", "-vsync", "0",
           "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    n = size * size * 3
    arr = np.frombuffer(raw, np.uint8)
    got = [arr[k * n : (k + 1) * n].reshape(size, size, 3) for k in range(len(arr) // n)]
    return dict(zip(sorted(indices), got))


def make_media(out: Path, cls: str, seed: int, n_parts: int, defective: Sequence[int], fps: int, hold: float,
               transition: float, size: int) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    seq = render_inspection_sequence(cls, n_parts + 1, defective, seed, size=BENCH_SIZE)
    prompt, shown = seq[-1], seq[:-1]
    assert prompt.label == "good"
    Image.fromarray(_rgb(prompt.image)).save(out / f"{cls}-prompt.png", optimize=True)
    parts = [_upscale(f.image, size) for f in shown]
    video = out / f"{cls}.mp4"
    encode(frames(parts, fps, hold, transition), size, fps, video)
    p_spans, t_spans = timeline(n_parts, fps, hold, transition)
    total = p_spans[-1][1]
    doc: dict[str, Any] = {
        "description": f"triggered inspection camera: {n_parts} '{cls}' parts of the onenip-synth benchmark "
        f"family (seed {seed}, sequence split: none of them is a benchmark image), each held still for "
        f"{hold} s, with {transition} s slide transitions",
        "class": cls,
        "video": video.name,
        "prompt": f"{cls}-prompt.png",
        "width": size,
        "height": size,
        "fps": fps,
        "frames": total,
        "duration_s": round(total / fps, 3),
        "generator": f"onenip-media {out} --class {cls} --seed {seed} --parts {n_parts} "
        f"--defective {','.join(str(d) for d in defective)} --fps {fps} --hold {hold} "
        f"--transition {transition} --size {size}",
        "parts": [
            {
                "index": i,
                "label": f.label,
                "defective": f.label != "good",
                "start_s": round(s / fps, 4),
                "end_s": round(e / fps, 4),
                "start_frame": s,
                "end_frame": e,  # exclusive
                "defect_area_fraction": round(float((f.mask > 0).mean()), 5) if f.mask is not None else 0.0,
            }
            for i, (f, (s, e)) in enumerate(zip(shown, p_spans))
        ],
        "transitions": [
            {"start_s": round(s / fps, 4), "end_s": round(e / fps, 4), "start_frame": s, "end_frame": e}
            for s, e in t_spans
        ],
    }
    (out / "sample.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def check_media(out: Path, model_dir: Path) -> dict[str, Any]:
    """Score the middle frame of every part (decoded from the video) with the exported model."""
    from .onnx_model import OnnxModel

    doc = json.loads((out / "sample.json").read_text())
    m = OnnxModel(model_dir)
    tokens = m.encode_prompt(out / doc["prompt"])
    mids = [(p["start_frame"] + p["end_frame"]) // 2 for p in doc["parts"]]
    dec = decode_frames(out / doc["video"], mids, doc["width"])
    cal = m.meta.get("calibration", {}).get("per_class", {}).get(doc["class"], {})
    thr = float(cal.get("image_threshold", m.image_threshold))
    rows, correct = [], 0
    for p, f in zip(doc["parts"], mids):
        pred = m.predict(dec[f], tokens)
        flagged = pred.score > thr
        correct += int(flagged == p["defective"])
        rows.append({"index": p["index"], "frame": f, "score": round(pred.score, 5), "flagged": bool(flagged)})
    doc["model_check"] = {
        "model": str(model_dir),
        "model_image_threshold": m.image_threshold,
        "image_threshold": thr,
        "threshold_source": "calibration.per_class" if cal else "model-wide image_threshold",
        "parts_correct": correct,
        "parts": rows,
        "note": "middle frame of each part decoded from the MP4 with ffmpeg, scored with the ONNX graphs",
    }
    (out / "sample.json").write_text(json.dumps(doc, indent=1) + "\n")
    return doc["model_check"]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="onenip-media", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="output folder (e.g. pipelines/media)")
    ap.add_argument("--class", dest="cls", default="cap", help="benchmark class (default cap)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--parts", type=int, default=12)
    ap.add_argument("--defective", default="2,6,9", help="indices of defective parts (default 2,6,9)")
    ap.add_argument("--fps", type=int, default=25)
    ap.add_argument("--hold", type=float, default=1.2, help="seconds each part is held still")
    ap.add_argument("--transition", type=float, default=0.32, help="seconds of slide between parts")
    ap.add_argument("--size", type=int, default=512, help="video width = height (default 512)")
    ap.add_argument("--check", type=Path, metavar="MODEL", help="score the parts with this exported model")
    args = ap.parse_args(argv)
    defective = [int(x) for x in args.defective.split(",") if x.strip()]
    doc = make_media(args.out, args.cls, args.seed, args.parts, defective, args.fps, args.hold,
                     args.transition, args.size)
    print(f"onenip-media: wrote {doc['video']} ({doc['frames']} frames, {doc['duration_s']} s), {doc['prompt']}, "
          f"sample.json to {args.out}", file=sys.stderr)
    if args.check:
        chk = check_media(args.out, args.check)
        for r in chk["parts"]:
            p = doc["parts"][r["index"]]
            print(f"  part {r['index']:2d} {p['label']:<12} score {r['score']:.4g} "
                  f"{'FLAGGED' if r['flagged'] else 'ok'}", file=sys.stderr)
        print(f"onenip-media: {chk['parts_correct']}/{len(chk['parts'])} parts classified correctly at "
              f"image_threshold {chk['image_threshold']:.4g}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
