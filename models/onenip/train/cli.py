"""``onenip-train DATA --config onenip-s --out RUN``.

Writes into RUN:

- ``split.json``: the training images and the held-out good images of each class
  (``onenip-calibrate`` reads the held-out ones) and the default prompt;
- ``features.pt``: the feature cache (delete it to save space after training);
- ``train_state.pt``: everything ``--resume`` needs; ``model.pt``: the model
  (this project's checkpoint format, for ``onenip-calibrate`` / ``onenip-export``);
- ``train_log.jsonl`` and ``loss.png``; ``train.json``: settings and timings.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import torch

from ..config import CONFIGS, get_config
from ..data import DataError, find_classes, split_train_good
from ..model import build_model
from .cache import FeatureCache, build_cache, cache_key
from .loop import STATE_FILE, TrainConfig, train

SPLIT_FILE = "split.json"
CACHE_FILE = "features.pt"
INFO_FILE = "train.json"


def _parser() -> argparse.ArgumentParser:
    d = TrainConfig()
    ap = argparse.ArgumentParser(
        prog="onenip-train",
        description="Train one OneNIP model for all classes of a folder in the MVTec AD layout "
        "(<class>/train/good/*) on a CPU, with cached backbone features and synthetic anomalies.",
    )
    ap.add_argument("data", type=Path, help="data set root holding <class>/train/good")
    ap.add_argument("--config", default="onenip-s", choices=sorted(CONFIGS))
    ap.add_argument("--out", type=Path, required=True, help="run folder (created)")
    ap.add_argument("--classes", default="", help="comma-separated subset of classes (default: all)")
    ap.add_argument("--input-size", type=int, help="override the configuration's input size")
    ap.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    ap.add_argument("--batch", type=int, default=d.batch, help=f"normal images per step (default {d.batch})")
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 4%% of the steps, at most 200)")
    ap.add_argument("--variants", type=int, default=4, help="cached anomalous variants per image (default 4)")
    ap.add_argument("--max-per-class", type=int, default=0,
                    help="use at most this many training images per class (default 0: all)")
    ap.add_argument("--holdout", type=float, default=0.12,
                    help="fraction of train/good held out for calibration (2..12 images per class)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    ap.add_argument("--resume", action="store_true", help="continue from RUN/train_state.pt")
    ap.add_argument("--no-progress", action="store_true", help="no progress bars")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    if args.steps < 1 or args.batch < 1 or args.variants < 1:
        ap.error("--steps, --batch and --variants must be positive")
    run: Path = args.out
    if run.exists() and (run / STATE_FILE).exists() and not args.resume:
        print(f"onenip-train: {run} already holds a run; pass --resume to continue it or choose another --out",
              file=sys.stderr)
        return 2
    try:
        classes = find_classes(args.data)
        wanted = [c.strip() for c in args.classes.split(",") if c.strip()]
        if wanted:
            unknown = sorted(set(wanted) - set(classes))
            if unknown:
                raise DataError(f"{args.data}: unknown classes {', '.join(unknown)}; found {', '.join(classes)}")
            classes = wanted
        split = split_train_good(args.data, classes, holdout_fraction=args.holdout)
        cfg = get_config(args.config, args.input_size)
    except (DataError, ValueError) as e:
        print(f"onenip-train: error: {e}", file=sys.stderr)
        return 2
    train_paths = {c: (v[: args.max_per_class] if args.max_per_class > 0 else v) for c, v in split.train.items()}
    few = [c for c, v in train_paths.items() if len(v) < 2]
    if few:
        print(f"onenip-train: warning: classes with fewer than 2 training images: {', '.join(few)}", file=sys.stderr)
    run.mkdir(parents=True, exist_ok=True)
    (run / SPLIT_FILE).write_text(json.dumps({
        "data": str(Path(args.data).resolve()),
        "classes": sorted(train_paths),
        "prompt": {c: str(v[0]) for c, v in train_paths.items()},
        "train": {c: [str(p) for p in v] for c, v in train_paths.items()},
        "held_out": {c: [str(p) for p in split.held_out.get(c, [])] for c in train_paths},
    }, indent=1) + "\n")
    n_img = sum(len(v) for v in train_paths.values())
    print(f"onenip-train: {len(train_paths)} classes, {n_img} training images, "
          f"{sum(len(v) for v in split.held_out.values())} held out for calibration; config {cfg.name} @ {cfg.input_size}",
          file=sys.stderr)

    torch.manual_seed(args.seed)
    model = build_model(cfg, pretrained=True)
    t0 = time.perf_counter()
    key = cache_key(train_paths, cfg.name, cfg.input_size, args.variants, args.seed)
    cache = FeatureCache.load(run / CACHE_FILE, key) if args.resume else None
    if cache is None:
        cache = build_cache(model, train_paths, args.variants, args.seed, progress=not args.no_progress)
        cache.save(run / CACHE_FILE)
    t_cache = time.perf_counter() - t0
    tcfg = TrainConfig(
        steps=args.steps,
        batch=args.batch,
        lr=args.lr,
        warmup=args.warmup if args.warmup is not None else min(200, max(1, args.steps // 25)),
        seed=args.seed,
        checkpoint_every=args.checkpoint_every,
    )
    info = {
        "command": "onenip-train " + " ".join(sys.argv[1:] if argv is None else list(argv)),
        "data": str(Path(args.data).resolve()),
        "config": cfg.name,
        "input_size": cfg.input_size,
        "classes": sorted(train_paths),
        "train_images": n_img,
        "variants": args.variants,
        "train_config": asdict(tcfg),
        "cache_seconds": round(t_cache, 1),
        "torch_threads": torch.get_num_threads(),
    }
    result = train(model, cache, run, tcfg, resume=args.resume, progress=not args.no_progress, extra=info)
    info["train_seconds"] = round(result.seconds, 1)
    if result.history:
        info["final"] = result.history[-1]
    (run / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
    print(f"onenip-train: done: {result.steps} steps, training {result.seconds / 60:.1f} min "
          f"(+ {t_cache / 60:.1f} min feature cache); model in {run / 'model.pt'}; next: onenip-calibrate {run} {args.data}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
