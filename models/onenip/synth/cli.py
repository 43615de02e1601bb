"""``onenip-synth``: write the procedural benchmark in the MVTec AD layout."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from .catalog import CLASSES
from .layout import Counts, contact_sheet, generate


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="onenip-synth",
        description="Generate a deterministic synthetic anomaly-detection benchmark "
        "(MVTec AD layout: <class>/train/good, <class>/test/<type>, <class>/ground_truth/<type>).",
    )
    ap.add_argument("out", help="output folder (created; the generated classes' train/test/ground_truth folders are replaced)")
    ap.add_argument("--seed", type=int, required=True, help="data set seed (same seed, same bytes)")
    ap.add_argument("--classes", default="",
                    help=f"comma-separated subset of: {','.join(CLASSES)} (default: all)")
    ap.add_argument("--train", type=int, default=60, help="good training images per class (default 60)")
    ap.add_argument("--test-good", type=int, default=15, help="good test images per class (default 15)")
    ap.add_argument("--test-defect", type=int, default=8, help="test images per defect type (default 8)")
    ap.add_argument("--size", type=int, default=256, help="image side in pixels (default 256)")
    ap.add_argument("--jobs", type=int, default=0,
                    help="worker processes, one class each (default 0: up to 4, one per CPU); "
                    "the output does not depend on it")
    ap.add_argument("--preview", metavar="PNG", default=None,
                    help="also write a contact sheet (good images and outlined defect masks)")
    ap.add_argument("--quiet", action="store_true", help="no progress output")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    ap = _parser()
    args = ap.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()]
    unknown = [c for c in classes if c not in CLASSES]
    if unknown:
        ap.error(f"unknown class(es) {', '.join(unknown)}; known: {', '.join(CLASSES)}")
    if min(args.train, args.test_good, args.test_defect) < 0:
        ap.error("counts must be >= 0")
    if args.size < 64:
        ap.error("--size must be at least 64")
    t0 = time.perf_counter()

    def progress(name: str) -> None:
        if not args.quiet:
            print(f"onenip-synth: {name} done ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)

    manifest = generate(
        args.out,
        args.seed,
        classes or None,
        Counts(args.train, args.test_good, args.test_defect),
        args.size,
        args.jobs if args.jobs > 0 else max(1, min(4, os.cpu_count() or 1)),
        progress,
    )
    if args.preview:
        contact_sheet(args.out, args.preview)
    if not args.quiet:
        tot = manifest["totals"]
        print(
            f"onenip-synth: wrote {len(manifest['classes'])} classes to {args.out} "
            f"({tot['train_good']} train, {tot['test_good']} test good, {tot['test_defect']} test defect) "
            f"in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
