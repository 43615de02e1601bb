"""``onenip-convert``: an authors' ``ckpt.pkl`` (gaobb/OneNIP) to the ONNX contract."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from .checkpoint import CheckpointError, load_checkpoint
from .config import CONFIGS
from .export import export_model


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="onenip-convert",
        description="Convert the authors' OneNIP checkpoint (ckpt.pkl) and export the three ONNX graphs.",
    )
    ap.add_argument("checkpoint", type=Path, help="ckpt.pkl from gaobb/OneNIP training")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--config", default="official-b4", choices=sorted(CONFIGS))
    ap.add_argument(
        "--input-size", type=int, help="input size the checkpoint was trained at (default: inferred from it)"
    )
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    try:
        loaded = load_checkpoint(args.checkpoint, args.config, args.input_size)
    except CheckpointError as e:
        print(f"onenip-convert: error: {e}", file=sys.stderr)
        return 2
    for note in loaded.notes:
        print(f"onenip-convert: {args.checkpoint}: {note}")
    cfg = loaded.model.cfg
    print(f"onenip-convert: loaded {args.checkpoint} into {cfg.name} at input size {cfg.input_size}")
    source = {"checkpoint": str(args.checkpoint), "format": loaded.source_format}
    report = export_model(loaded.model, args.out, None, source)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
