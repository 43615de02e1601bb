"""``onenip-export``: the three ONNX graphs of the contract, model.json, parity checks.

Contract (spec section 8), opset 17, batch 1, fixed shapes, float32:

- ``prompt.onnx``: ``prompt_image`` [1,3,H,W] -> ``prompt_tokens`` [1,N,D]
- ``reconstructor.onnx``: ``image`` [1,3,H,W], ``prompt_tokens`` [1,N,D]
  -> ``rec_map`` [1,1,H,W], ``residual`` [1,C,h,w]
- ``refiner.onnx``: ``residual`` [1,C,h,w], ``rec_map`` [1,1,H,W]
  -> ``anomaly_map`` [1,1,H,W], ``score`` [1]  (fuse_k baked in)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .checkpoint import CheckpointError, load_checkpoint
from .config import CONFIGS, get_config
from .graph_opt import PASSES as GRAPH_PASSES
from .graph_opt import optimize_graph
from .model import OneNIP, build_model
from .preprocess import normalize, resize
from .transformer import EXPORT_MASK_VALUE

CONTRACT_VERSION = "1"
OPSET = 17
TOLERANCE = 1e-4
REL_TOLERANCE = 4e-6  # about 32 float32 ulps of the largest value, added to TOLERANCE
GRAPH_FILES = {"prompt": "prompt.onnx", "reconstructor": "reconstructor.onnx", "refiner": "refiner.onnx"}
# placeholders until onenip-calibrate runs (see estimate_placeholders)
PLACEHOLDER_NOTE = (
    "placeholder, not calibrated: fuse_k = 1 and thresholds = the largest score / map value of the "
    "model reconstructing scikit-image sample photos from themselves; run onenip-calibrate"
)


def io_spec(model: OneNIP) -> dict[str, dict[str, list[tuple[str, list[int]]]]]:
    """Names and shapes of every graph's inputs and outputs."""
    cfg = model.cfg
    H, h, N, D, C = cfg.input_size, cfg.feature_size, cfg.num_tokens, cfg.hidden_dim, cfg.channels
    return {
        "prompt": {
            "inputs": [("prompt_image", [1, 3, H, H])],
            "outputs": [("prompt_tokens", [1, N, D])],
        },
        "reconstructor": {
            "inputs": [("image", [1, 3, H, H]), ("prompt_tokens", [1, N, D])],
            "outputs": [("rec_map", [1, 1, H, H]), ("residual", [1, C, h, h])],
        },
        "refiner": {
            "inputs": [("residual", [1, C, h, h]), ("rec_map", [1, 1, H, H])],
            "outputs": [("anomaly_map", [1, 1, H, H]), ("score", [1])],
        },
    }


class _PromptGraph(nn.Module):
    def __init__(self, m: OneNIP) -> None:
        super().__init__()
        self.m = m

    def forward(self, prompt_image: Tensor) -> Tensor:
        return self.m.encode_prompt(prompt_image)


class _ReconstructorGraph(_PromptGraph):
    def forward(self, image: Tensor, prompt_tokens: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self.m.reconstruct(image, prompt_tokens)


class _RefinerGraph(_PromptGraph):
    def forward(self, residual: Tensor, rec_map: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        return self.m.refine(residual, rec_map)


GRAPH_MODULES: dict[str, type[_PromptGraph]] = {
    "prompt": _PromptGraph,
    "reconstructor": _ReconstructorGraph,
    "refiner": _RefinerGraph,
}


@contextlib.contextmanager
def export_mode(model: OneNIP) -> Iterator[None]:
    """eval mode and the finite (-1e4) neighbour mask while exporting."""
    was_training, old = model.training, model.transformer.mask_value
    model.eval()
    model.transformer.mask_value = EXPORT_MASK_VALUE
    try:
        yield
    finally:
        model.transformer.mask_value = old
        model.train(was_training)


def metadata(model: OneNIP, calibration: dict[str, float], calibrated: bool) -> dict[str, Any]:
    cfg = model.cfg
    return {
        "contract_version": CONTRACT_VERSION,
        "variant": cfg.name,
        "backbone": cfg.backbone,
        "backbone_weights": model.backbone_weights,
        "input_size": cfg.input_size,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "feature_stride": cfg.feature_stride,
        "feature_size": cfg.feature_size,
        "channels": cfg.channels,
        "hidden_dim": cfg.hidden_dim,
        "num_tokens": cfg.num_tokens,
        "score_pool": cfg.score_pool,
        "fuse_k": calibration["fuse_k"],
        "image_threshold": calibration["image_threshold"],
        "pixel_threshold": calibration["pixel_threshold"],
        "calibrated": calibrated,
    }


def _prop(value: Any) -> str:
    """metadata_props values are strings: plain text for str, JSON for the rest."""
    return value if isinstance(value, str) else json.dumps(value)


def export_graphs(model: OneNIP, out: Path, meta: dict[str, Any]) -> None:
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    spec = io_spec(model)
    with export_mode(model), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        for graph, wrapper in GRAPH_MODULES.items():
            args = tuple(torch.zeros(shape) for _, shape in spec[graph]["inputs"])
            path = out / GRAPH_FILES[graph]
            torch.onnx.export(
                wrapper(model).eval(),
                args,
                str(path),
                dynamo=False,
                opset_version=OPSET,
                input_names=[n for n, _ in spec[graph]["inputs"]],
                output_names=[n for n, _ in spec[graph]["outputs"]],
                do_constant_folding=True,
            )
            optimize_graph(path, path)
            proto = onnx.load(str(path))
            onnx.helper.set_model_props(proto, {k: _prop(v) for k, v in {**meta, "graph": graph}.items()})
            proto.producer_name = "onenip-export"
            onnx.checker.check_model(proto)
            onnx.save(proto, str(path))
    doc = {
        **meta,
        "opset": OPSET,
        "graph_passes": list(GRAPH_PASSES),
        "preprocessing": {
            "color": "RGB",
            "resize": "straight to input_size x input_size, aspect ignored, PIL BILINEAR (antialiased)",
            "scale": "x / 255",
            "normalize": "(x - mean) / std per channel",
            "layout": "NCHW float32, batch 1",
        },
        "graphs": {
            g: {
                "file": GRAPH_FILES[g],
                "inputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in spec[g]["inputs"]],
                "outputs": [{"name": n, "shape": s, "dtype": "float32"} for n, s in spec[g]["outputs"]],
            }
            for g in GRAPH_FILES
        },
    }
    (out / "model.json").write_text(json.dumps(doc, indent=2) + "\n")


# -- inputs for the checks ------------------------------------------------------
def _sample_photos() -> dict[str, np.ndarray]:
    from skimage import data

    return {n: getattr(data, n)() for n in ("astronaut", "coffee", "chelsea")}


def _with_defect(rgb: np.ndarray) -> np.ndarray:
    """A scratch and a foreign patch on a copy of the photo."""
    out = rgb.copy()
    h, w = out.shape[:2]
    out[h // 3 : h // 3 + h // 8, w // 2 : w // 2 + w // 7] = (20, 200, 40)
    for i in range(w // 3):
        y = h // 2 + i // 3
        out[y : y + 3, w // 5 + i] = 250
    return out


def real_inputs(size: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image, prompt) pairs made from scikit-image's bundled photos."""
    from PIL import Image

    def prep(rgb: np.ndarray) -> np.ndarray:
        return normalize(np.asarray(resize(Image.fromarray(rgb), size)))

    p = _sample_photos()
    return [
        ("astronaut+defect vs astronaut", prep(_with_defect(p["astronaut"])), prep(p["astronaut"])),
        ("chelsea vs coffee", prep(p["chelsea"]), prep(p["coffee"])),
    ]


def random_inputs(size: int, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    g = np.random.default_rng(seed)
    shape = (1, 3, size, size)
    return [("random", g.standard_normal(shape, dtype=np.float32), g.standard_normal(shape, dtype=np.float32))]


PLACEHOLDER_FUSE_K = 1.0


def estimate_placeholders(model: OneNIP) -> dict[str, float]:
    """Uncalibrated stand-ins: fuse_k = 1 (neutral; the calibrated k = (max + min) / 2
    of rec_map on good images comes from onenip-calibrate), thresholds of the right
    scale from each sample photo reconstructed with itself as the prompt."""
    size = model.cfg.input_size
    old, model.fuse_k = model.fuse_k, PLACEHOLDER_FUSE_K
    with torch.no_grad():
        outs = [model(x, x) for x in (torch.from_numpy(p) for _, _, p in real_inputs(size))]
    model.fuse_k = old
    return {
        "fuse_k": PLACEHOLDER_FUSE_K,
        "image_threshold": round(max(float(o.score.max()) for o in outs), 6),
        "pixel_threshold": round(max(float(o.anomaly_map.max()) for o in outs), 6),
    }


# -- parity -----------------------------------------------------------------------
@dataclass
class ParityReport:
    rows: list[dict[str, Any]] = field(default_factory=list)
    tolerance: float = TOLERANCE

    @property
    def ok(self) -> bool:
        return all(r["ok"] for r in self.rows)

    @property
    def worst(self) -> dict[str, float]:
        worst: dict[str, float] = {}
        for r in self.rows:
            for k, v in r["diffs"].items():
                worst[k] = max(worst.get(k, 0.0), v)
        return worst

    def text(self) -> str:
        lines = []
        for r in self.rows:
            figs = "  ".join(f"{k}={v:.2e}" for k, v in r["diffs"].items())
            lines.append(f"  {'ok  ' if r['ok'] else 'FAIL'} {r['check']:<34} {r['input']:<32} {figs}")
        return "\n".join(lines)


CHECKED = ("rec_map", "anomaly_map", "score")  # must be <= tolerance


def _maxdiff(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float:
    a = a.detach().numpy() if isinstance(a, Tensor) else a
    b = b.detach().numpy() if isinstance(b, Tensor) else b
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def check_parity(model: OneNIP, out: Path, seed: int = 0, tolerance: float = TOLERANCE) -> ParityReport:
    """ONNX Runtime against PyTorch, graph by graph and chained, on random and real inputs.

    - ``graphs == split torch``: each ONNX graph against the same PyTorch method,
      fed identical inputs;
    - ``chained graphs == forward``: prompt -> reconstructor -> refiner in ONNX
      Runtime against the single PyTorch ``forward(image, prompt_image)`` that
      encodes the prompt every time (with the -inf mask of training).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = {
        g: ort.InferenceSession(str(out / f), opts, providers=["CPUExecutionProvider"])
        for g, f in GRAPH_FILES.items()
    }
    spec = io_spec(model)
    for g, s in sess.items():  # names and shapes as the contract says
        got_in = [(i.name, list(i.shape)) for i in s.get_inputs()]
        got_out = [(o.name, list(o.shape)) for o in s.get_outputs()]
        want_in = [(n, list(sh)) for n, sh in spec[g]["inputs"]]
        want_out = [(n, list(sh)) for n, sh in spec[g]["outputs"]]
        if got_in != want_in or got_out != want_out:
            raise AssertionError(f"{g}: graph I/O {got_in} -> {got_out}, contract {want_in} -> {want_out}")

    report = ParityReport(tolerance=tolerance)
    model.eval()
    size = model.cfg.input_size
    for name, image, prompt in random_inputs(size, seed) + real_inputs(size):
        (tokens,) = sess["prompt"].run(None, {"prompt_image": prompt})
        rec_map, residual = sess["reconstructor"].run(None, {"image": image, "prompt_tokens": tokens})
        amap, score = sess["refiner"].run(None, {"residual": residual, "rec_map": rec_map})
        with torch.no_grad():
            ti, tp = torch.from_numpy(image), torch.from_numpy(prompt)
            ref = model(ti, tp)  # reference: prompt through backbone + encoder every time
            t_tokens = model.encode_prompt(tp)
            t_rec_map, t_residual = model.reconstruct(ti, torch.from_numpy(tokens))
            t_amap, t_score = model.refine(torch.from_numpy(residual), torch.from_numpy(rec_map))
        rows = [
            (
                "graphs == split torch",
                {
                    "prompt_tokens": _maxdiff(tokens, t_tokens),
                    "rec_map": _maxdiff(rec_map, t_rec_map),
                    "residual": _maxdiff(residual, t_residual),
                    "anomaly_map": _maxdiff(amap, t_amap),
                    "score": _maxdiff(score, t_score),
                },
            ),
            (
                "chained graphs == forward(img,prm)",
                {
                    "rec_map": _maxdiff(rec_map, ref.rec_map),
                    "residual": _maxdiff(residual, ref.residual),
                    "anomaly_map": _maxdiff(amap, ref.anomaly_map),
                    "score": _maxdiff(score, ref.score),
                },
            ),
        ]
        # absolute tolerance plus a float32 rounding allowance relative to the values
        # (a trained model's maps reach ~100-200, where float32 alone differs by ~1e-5
        # per operation)
        allow = {
            "rec_map": tolerance + REL_TOLERANCE * float(ref.rec_map.abs().max()),
            "anomaly_map": tolerance + REL_TOLERANCE * float(ref.anomaly_map.abs().max()),
            "score": tolerance + REL_TOLERANCE * float(ref.score.abs().max()),
        }
        for check, diffs in rows:
            ok = all(diffs[k] <= allow[k] for k in CHECKED)
            report.rows.append({"check": check, "input": name, "diffs": diffs, "allow": allow, "ok": ok})
    return report


# -- top level ------------------------------------------------------------------------
def export_model(
    model: OneNIP,
    out: str | Path,
    calibration: dict[str, float] | None = None,
    source: dict[str, Any] | None = None,
    seed: int = 0,
    log: Any = print,
) -> ParityReport:
    """Export, then check parity; model.json records the figures."""
    out = Path(out)
    model.eval()
    calibrated = calibration is not None
    if calibration is None:
        calibration = estimate_placeholders(model)
    model.fuse_k = calibration["fuse_k"]
    meta = metadata(model, calibration, calibrated)
    export_graphs(model, out, meta)
    report = check_parity(model, out, seed=seed)
    doc = json.loads((out / "model.json").read_text())
    if not calibrated:
        doc["calibration_note"] = PLACEHOLDER_NOTE
    doc["source"] = source or {}
    doc["parity"] = {
        "tolerance": report.tolerance,
        "tolerance_rule": f"tolerance + {REL_TOLERANCE:g} * max |value|",
        "ok": report.ok,
        "max_abs_diff": {k: float(f"{v:.3e}") for k, v in report.worst.items()},
    }
    (out / "model.json").write_text(json.dumps(doc, indent=2) + "\n")
    log(f"wrote {', '.join(GRAPH_FILES.values())}, model.json to {out}")
    log(f"parity (max abs diff, tolerance {report.tolerance:g} + {REL_TOLERANCE:g} x max |value| on {', '.join(CHECKED)}):")
    log(report.text())
    log("parity: OK" if report.ok else "parity: FAILED")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="onenip-export",
        description="Export a OneNIP model to the three-graph ONNX contract and check parity.",
    )
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--checkpoint", type=Path, help="this project's checkpoint, or an authors' ckpt.pkl")
    ap.add_argument("--random-init", action="store_true", help="export an untrained model (smoke tests)")
    ap.add_argument("--input-size", type=int, help="override the configuration's input size")
    ap.add_argument("--out", type=Path, required=True, help="output directory")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if (args.checkpoint is None) == (not args.random_init):
        ap.error("give exactly one of --checkpoint PATH or --random-init")
    torch.manual_seed(args.seed)
    try:
        if args.checkpoint is not None:
            loaded = load_checkpoint(args.checkpoint, args.config, args.input_size)
            for note in loaded.notes:
                print(f"onenip-export: {args.checkpoint}: {note}")
            model, calibration = loaded.model, loaded.calibration
            source = {"checkpoint": str(args.checkpoint), "format": loaded.source_format}
        else:
            cfg = get_config(args.config, args.input_size)
            model, calibration = build_model(cfg), None
            source = {"random_init": True, "seed": args.seed}
    except (CheckpointError, ValueError, RuntimeError) as e:
        print(f"onenip-export: error: {e}", file=sys.stderr)
        return 2
    report = export_model(model, args.out, calibration, source, seed=args.seed)
    return 0 if report.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
