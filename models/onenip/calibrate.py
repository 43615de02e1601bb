"""``onenip-calibrate RUN DATA``: fusion constant and thresholds from held-out GOOD images.

Reads only ``<class>/train/good`` of DATA: the images the run held out of
training (``RUN/split.json``), or, for classes the run did not train on (a new
data set), all of that class's train/good images. Test images, anomalous or
not, are never opened.

- ``fuse_k = (max + min) / 2`` of the reconstruction maps over all of them;
- ``image_threshold = max(score) + margin * std(score)`` over them;
- ``pixel_threshold = max(per-image map maximum) + margin * std(those maxima)``;
- the same per class, recorded in model.json under ``calibration.per_class`` (a
  camera inspects one product: its pipeline can set the class's thresholds);

each image scored against its class's deployed prompt (the first train/good
image) with the deployed preprocessing. The calibrated model is exported (ONNX
graphs + model.json with ``calibrated: true``, parity checked) to ``RUN/model``
or ``--out``, and saved as ``RUN/model_calibrated.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .data import DataError, find_classes, load_resized, train_images
from .fusion import fuse, image_score
from .model import OneNIP
from .preprocess import normalize

SPLIT_FILE = "split.json"


@dataclass
class CalibrationSet:
    prompt: dict[str, Path]
    images: dict[str, list[Path]]
    source: dict[str, str] = field(default_factory=dict)  # class -> "held_out" | "all_train_good"


def calibration_images(run: Path, data: Path, classes: Sequence[str] | None = None) -> CalibrationSet:
    """Held-out good images per class (never anything under test/)."""
    split: dict[str, Any] = {}
    if (run / SPLIT_FILE).is_file():
        split = json.loads((run / SPLIT_FILE).read_text())
    classes = list(classes) if classes else find_classes(data)
    prompt: dict[str, Path] = {}
    images: dict[str, list[Path]] = {}
    source: dict[str, str] = {}
    for cls in classes:
        good = train_images(data, cls)
        if not good:
            continue
        trained = {Path(p).resolve() for p in split.get("train", {}).get(cls, [])}
        held = [p for p in good if p.resolve() not in trained]
        if trained and held:
            source[cls] = "held_out"
        elif trained:
            print(f"onenip-calibrate: warning: {cls}: every train/good image was used in training; "
                  f"calibrating on them (thresholds will be optimistic)", file=sys.stderr)
            held, source[cls] = good, "training_images"
        else:
            source[cls] = "all_train_good"
        prompt[cls] = good[0]
        images[cls] = [p for p in held if p != good[0]] or held
    if not images:
        raise DataError(f"{data}: no train/good images to calibrate on")
    return CalibrationSet(prompt, images, source)


@dataclass
class Raw:
    rec: list[np.ndarray]  # per image rec_map [H, W]
    ref: list[np.ndarray]  # per image sigmoid(refiner) [H, W]
    cls: list[str]


@torch.no_grad()
def raw_maps(model: OneNIP, cal: CalibrationSet, progress: bool = True) -> Raw:
    from tqdm import tqdm

    cfg = model.cfg
    model.eval()

    def prep(p: Path) -> torch.Tensor:
        return torch.from_numpy(normalize(load_resized(p, cfg.input_size), cfg.mean, cfg.std))

    out = Raw([], [], [])
    total = sum(len(v) for v in cal.images.values())
    bar = tqdm(total=total, desc="calibrating", unit="img", disable=not progress, dynamic_ncols=True)
    for cls, paths in cal.images.items():
        tokens = model.encode_prompt(prep(cal.prompt[cls]))
        for p in paths:
            rec_map, residual = model.reconstruct(prep(p), tokens)
            out.rec.append(rec_map[0, 0].numpy())
            out.ref.append(torch.sigmoid(model.refiner(residual))[0, 0].numpy())
            out.cls.append(cls)
            bar.update(1)
    bar.close()
    return out


def compute_calibration(raw: Raw, margin: float = 1.0, pool: int = 16) -> tuple[dict[str, float], dict[str, Any]]:
    rec_max = max(float(r.max()) for r in raw.rec)
    rec_min = min(float(r.min()) for r in raw.rec)
    k = (rec_max + rec_min) / 2
    scores, peaks = [], []
    for rec, ref in zip(raw.rec, raw.ref):
        amap = fuse(torch.from_numpy(rec)[None, None], torch.from_numpy(ref)[None, None], k)
        scores.append(float(image_score(amap, pool)[0]))
        peaks.append(float(amap.max()))
    s, pk = np.array(scores), np.array(peaks)
    calib = {
        "fuse_k": round(k, 6),
        "image_threshold": round(float(s.max() + margin * s.std()), 6),
        "pixel_threshold": round(float(pk.max() + margin * pk.std()), 6),
    }
    # one camera inspects one product: thresholds per class, with the same rule
    # (the model-wide thresholds above are the conservative ones over all classes)
    per_class: dict[str, dict[str, float]] = {}
    for c in sorted(set(raw.cls)):
        idx = [i for i, x in enumerate(raw.cls) if x == c]
        sc, pc = s[idx], pk[idx]
        per_class[c] = {
            "n": len(idx),
            "score_mean": round(float(sc.mean()), 5),
            "score_max": round(float(sc.max()), 5),
            "image_threshold": round(float(sc.max() + margin * sc.std()), 6),
            "pixel_threshold": round(float(pc.max() + margin * pc.std()), 6),
        }
    info = {
        "method": "held-out good images only; fuse_k = (max + min) / 2 of rec_map; "
        "image_threshold = max(score) + margin * std(score); "
        "pixel_threshold = max(map max) + margin * std(map max)",
        "margin": margin,
        "images": len(scores),
        "rec_map_min": round(rec_min, 5),
        "rec_map_max": round(rec_max, 5),
        "score_min": round(float(s.min()), 5),
        "score_max": round(float(s.max()), 5),
        "score_std": round(float(s.std()), 5),
        "map_max_max": round(float(pk.max()), 5),
        "per_class": per_class,
    }
    return calib, info


def calibrate_run(run: Path, data: Path, out: Path | None = None, margin: float = 1.0,
                  classes: Sequence[str] | None = None, progress: bool = True, log: Any = print) -> dict[str, Any]:
    from .export import export_model

    ckpt = run / "model.pt"
    loaded = load_checkpoint(ckpt)
    model = loaded.model
    cal = calibration_images(run, data, classes)
    raw = raw_maps(model, cal, progress)
    calib, info = compute_calibration(raw, margin, model.cfg.score_pool)
    info["sources"] = cal.source
    info["prompts"] = {c: str(p) for c, p in cal.prompt.items()}
    model.fuse_k = calib["fuse_k"]
    save_checkpoint(model, run / "model_calibrated.pt", calib)
    out = out or (run / "model")
    train_info: dict[str, Any] = {}
    if (run / "train.json").is_file():
        train_info = json.loads((run / "train.json").read_text())
    source = {
        "checkpoint": str(ckpt),
        "format": "onenip",
        "trained_on": train_info.get("data"),
        "classes": train_info.get("classes"),
        "train_steps": train_info.get("train_config", {}).get("steps"),
    }
    report = export_model(model, out, calib, source, log=log)
    doc = json.loads((out / "model.json").read_text())
    doc["calibration"] = info
    doc["prompts"] = {c: Path(p).name for c, p in cal.prompt.items()}
    (out / "model.json").write_text(json.dumps(doc, indent=2) + "\n")
    log(f"calibration: fuse_k={calib['fuse_k']:.5g} image_threshold={calib['image_threshold']:.5g} "
        f"pixel_threshold={calib['pixel_threshold']:.5g} from {info['images']} held-out good images")
    return {"calibration": calib, "info": info, "parity_ok": report.ok, "out": str(out)}


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="onenip-calibrate",
        description="Calibrate a trained run on held-out good images (fusion constant, image and pixel "
        "thresholds) and export it (ONNX graphs + model.json, calibrated: true).",
    )
    ap.add_argument("run", type=Path, help="run folder written by onenip-train (holds model.pt, split.json)")
    ap.add_argument("data", type=Path, help="data set root (MVTec AD layout); only <class>/train/good is read")
    ap.add_argument("--out", type=Path, help="export folder (default RUN/model)")
    ap.add_argument("--classes", default="", help="comma-separated subset of classes (default: all in DATA)")
    ap.add_argument("--margin", type=float, default=1.0,
                    help="threshold margin in standard deviations of the good scores (default 1.0)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] or None
    try:
        res = calibrate_run(args.run, args.data, args.out, args.margin, classes, not args.no_progress)
    except (CheckpointError, DataError, FileNotFoundError) as e:
        print(f"onenip-calibrate: error: {e}", file=sys.stderr)
        return 2
    return 0 if res["parity_ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
