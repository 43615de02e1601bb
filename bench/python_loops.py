"""The Python baselines of ``scripts/bench``: one measurement per call, printed as one JSON line.

- ``ort``: the plain ONNX Runtime loop over the per-frame graphs (reconstructor, then refiner)
  on a pre-made input tensor, prompt tokens encoded once: the floor any wrapper can reach.
  ``--preprocess`` adds the deployed transform (PIL antialiased bilinear resize of a
  1920x1080 RGB frame held in memory, then normalisation), what a Python user would write.
- ``torch``: the PyTorch model run per frame the way the authors' code does: the prompt image
  goes through the backbone and encoder with every frame (``OneNIP.forward(image, prompt)``),
  eval mode, ``torch.no_grad()``, ``torch.set_num_threads(N)``.

Usage: ``python bench/python_loops.py ort|torch --model DIR --threads N --frames N --warmup N``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def rss_mb() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields: dict[str, float] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = float(value.split()[0]) / 1024.0
    return fields.get("VmRSS", float("nan")), fields.get("VmHWM", float("nan"))


def frame_1080p(seed: int) -> np.ndarray:
    """A 1080p RGB frame with a deterministic pattern (uint8, HxWx3)."""
    y, x = np.mgrid[0:1080, 0:1920]
    base = (x // 7 + y // 5 + seed * 17) % 200 + 28
    return np.stack([base, (base + 40) % 256, (base + 80) % 256], axis=-1).astype(np.uint8)


def timed(step: Callable[[int], None], frames: int, warmup: int) -> float:
    """Seconds for ``frames`` calls of ``step`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        step(i)
    start = time.perf_counter()
    for i in range(frames):
        step(i)
    return time.perf_counter() - start


def run_ort(args: argparse.Namespace) -> dict[str, Any]:
    """Plain onnxruntime + numpy + PIL, as a user would write it (no import of the ``onenip``
    package, which pulls in PyTorch): sessions as ``onenip.onnx_model.OnnxModel`` makes them."""
    import onnxruntime as ort
    from PIL import Image

    model_dir = Path(args.model)
    meta = json.loads((model_dir / "model.json").read_text())
    size = int(meta["input_size"])
    mean = np.asarray(meta["mean"], dtype=np.float32)
    std = np.asarray(meta["std"], dtype=np.float32)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    if not args.spinning:
        # The element's session settings: workers spin within a run and stop when it returns
        # (see src/provider.rs).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
    sess = {
        g: ort.InferenceSession(
            str(model_dir / meta.get("graphs", {}).get(g, {}).get("file", f"{g}.onnx")),
            opts,
            providers=["CPUExecutionProvider"],
        )
        for g in ("prompt", "reconstructor", "refiner")
    }

    def transform(img: Image.Image) -> np.ndarray:
        """The deployed transform: PIL antialiased bilinear resize, /255, normalise, NCHW."""
        x = np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), dtype=np.float32) / np.float32(255.0)
        return np.ascontiguousarray(((x - mean) / std).transpose(2, 0, 1)[None])

    (prompt,) = sess["prompt"].run(None, {"prompt_image": transform(Image.fromarray(frame_1080p(0)))})
    rec, ref = sess["reconstructor"], sess["refiner"]
    tensor = transform(Image.fromarray(frame_1080p(2)))
    frames = [Image.fromarray(frame_1080p(i)) for i in range(4)] if args.preprocess else []

    def step(i: int) -> None:
        x = transform(frames[i % 4]) if frames else tensor
        rec_map, residual = rec.run(None, {"image": x, "prompt_tokens": prompt})
        amap, score = ref.run(None, {"residual": residual, "rec_map": rec_map})
        float(score.reshape(-1)[0])

    seconds = timed(step, args.frames, args.warmup)
    rss, hwm = rss_mb()
    return {
        "kind": "python-ort-preprocess" if args.preprocess else "python-ort",
        "spinning": args.spinning,
        "onnxruntime": ort.__version__,
        "threads": args.threads,
        "frames": args.frames,
        "fps": args.frames / seconds,
        "ms_per_frame": seconds * 1e3 / args.frames,
        "rss_mb": rss,
        "peak_rss_mb": hwm,
    }


def torch_model(model_dir: Path, checkpoint: str | None) -> tuple[Any, str]:
    """The PyTorch model of ``model_dir``: from its checkpoint when one is found (``--checkpoint``,
    else model.json's ``source.checkpoint``), else a random init of its configuration."""
    from onenip.checkpoint import load_checkpoint
    from onenip.config import get_config
    from onenip.model import build_model

    meta = json.loads((model_dir / "model.json").read_text())
    candidates = [checkpoint] if checkpoint else []
    recorded = meta.get("source", {}).get("checkpoint")
    if recorded:
        candidates.append(str(recorded))
    for cand in candidates:
        if cand and Path(cand).is_file():
            return load_checkpoint(cand).model.eval(), f"checkpoint {cand}"
    cfg = get_config(str(meta["variant"]), int(meta["input_size"]))
    missing = f" ({', '.join(c for c in candidates if c)} not found)" if candidates else ""
    return build_model(cfg, pretrained=False).eval(), f"random init of {cfg.name} (same architecture and cost){missing}"


def run_torch(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    torch.set_num_threads(args.threads)
    model, weights = torch_model(Path(args.model), args.checkpoint)
    size = int(model.cfg.input_size)
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 3, size, size, generator=gen)
    prompt = torch.randn(1, 3, size, size, generator=gen)

    def step(i: int) -> None:
        out = model(image, prompt)
        float(out.score[0])

    with torch.no_grad():
        seconds = timed(step, args.frames, args.warmup)
    rss, hwm = rss_mb()
    return {
        "kind": "pytorch",
        "torch": torch.__version__,
        "weights": weights,
        "threads": args.threads,
        "frames": args.frames,
        "fps": args.frames / seconds,
        "ms_per_frame": seconds * 1e3 / args.frames,
        "rss_mb": rss,
        "peak_rss_mb": hwm,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("loop", choices=["ort", "torch"])
    p.add_argument("--model", default="models/onenip-s")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--preprocess", action="store_true", help="ort: include the PIL transform from 1080p RGB")
    p.add_argument("--spinning", action="store_true",
                   help="ort: ONNX Runtime's default spinning thread pools instead of the element's settings")
    p.add_argument("--checkpoint", default=None, help="torch: PyTorch checkpoint to load")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    result = run_ort(args) if args.loop == "ort" else run_torch(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
