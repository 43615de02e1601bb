"""``onenip-optimize``: makes exported graphs cheaper to run without changing what they compute.

The TorchScript exporter writes every TF-"SAME" padding of the backbone as a ``Pad`` node whose
pads come out of a Shape/ConstantOfShape/Concat chain. ONNX Runtime neither folds those pads into
the following convolution nor keeps its blocked (NCHWc) layout across them: each ``Pad`` costs
the pad itself plus a layout reorder on either side, about a quarter of the reconstructor's time
on a CPU. Two passes remove them:

1. constant folding, done by ONNX Runtime's portable "basic" level, offline (its output uses
   only standard ONNX operators, so TensorRT and any other runtime still read it);
2. every zero ``Pad`` of the two spatial axes that feeds one ``Conv`` becomes that convolution's
   own (possibly asymmetric) ``pads`` attribute, which is the same arithmetic.

The outputs are then identical, value for value; :func:`optimize_model_dir` checks that on every
graph before it replaces a file.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PASSES = ("ort-basic-constant-folding", "pad-into-conv")
GRAPH_FILES = {"prompt": "prompt.onnx", "reconstructor": "reconstructor.onnx", "refiner": "refiner.onnx"}


def fold_constants(path: Path, out: Path) -> None:
    """ONNX Runtime's basic (hardware-independent) graph optimisations, written to ``out``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(out)
    opts.log_severity_level = 3  # its notes on unused initialisers are about the input file
    ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _attr(node: Any, name: str) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return None


def fold_pads_into_convs(model: Any) -> int:
    """Replaces each zero, constant-mode ``Pad`` of H and W that feeds exactly one ``Conv``
    by that ``Conv``'s ``pads``; returns how many were folded."""
    from onnx import helper, numpy_helper

    graph = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    graph_outputs = {o.name for o in graph.output}
    folded = []
    for pad in graph.node:
        if pad.op_type != "Pad" or _attr(pad, "mode") not in (None, b"constant"):
            continue
        if len(pad.input) < 2 or pad.input[1] not in consts:
            continue
        if len(pad.input) > 2 and pad.input[2]:
            value = consts.get(pad.input[2])
            if value is None or np.any(value != 0):
                continue
        p = consts[pad.input[1]].astype(np.int64).tolist()
        # [N_begin, C_begin, H_begin, W_begin, N_end, C_end, H_end, W_end]
        if len(p) != 8 or p[0] or p[1] or p[4] or p[5] or min(p) < 0:
            continue
        (conv, *rest) = users.get(pad.output[0], [None])
        if rest or conv is None or conv.op_type != "Conv" or pad.output[0] in graph_outputs:
            continue
        if _attr(conv, "auto_pad") not in (None, b"NOTSET"):
            continue
        old = _attr(conv, "pads") or [0, 0, 0, 0]
        new = [old[0] + p[2], old[1] + p[3], old[2] + p[6], old[3] + p[7]]
        for a in list(conv.attribute):
            if a.name == "pads":
                conv.attribute.remove(a)
        conv.attribute.append(helper.make_attribute("pads", new))
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return len(folded)


def optimize_graph(src: Path, dst: Path) -> dict[str, Any]:
    """Both passes on ``src``, written to ``dst``; metadata_props and producer are kept."""
    import onnx

    original = onnx.load(str(src))
    with tempfile.TemporaryDirectory() as tmp:
        folded_path = Path(tmp) / "folded.onnx"
        fold_constants(src, folded_path)
        model = onnx.load(str(folded_path))
    pads = fold_pads_into_convs(model)
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    model.producer_name = original.producer_name
    model.producer_version = original.producer_version
    onnx.checker.check_model(model)
    onnx.save(model, str(dst))
    return {"nodes_before": len(original.graph.node), "nodes_after": len(model.graph.node), "pads_folded": pads}


def _outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).run(None, feeds)


def _random_feeds(path: Path, seed: int) -> dict[str, np.ndarray]:
    import onnx

    rng = np.random.default_rng(seed)
    feeds = {}
    for inp in onnx.load(str(path), load_external_data=False).graph.input:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        feeds[inp.name] = rng.standard_normal(shape, dtype=np.float32)
    return feeds


def optimize_model_dir(model_dir: Path, log: Any = print) -> dict[str, Any]:
    """Optimises the three graphs of an exported model in place. Each new graph must give the
    same outputs as the old one on random inputs (max abs diff recorded, must be <= 1e-5 of the
    largest value) before it replaces the file; model.json records the passes."""
    doc_path = model_dir / "model.json"
    doc = json.loads(doc_path.read_text())
    files = {g: doc.get("graphs", {}).get(g, {}).get("file", f) for g, f in GRAPH_FILES.items()}
    report: dict[str, Any] = {}
    for graph, name in files.items():
        path = model_dir / name
        tmp = path.with_name(path.name + ".optimized")
        try:
            stats = optimize_graph(path, tmp)
            feeds = _random_feeds(path, seed=len(report))
            before, after = _outputs(path, feeds), _outputs(tmp, feeds)
        except Exception as e:  # onnx, protobuf and ONNX Runtime each raise their own types
            tmp.unlink(missing_ok=True)
            raise ValueError(f"{path}: not an optimisable ONNX graph: {e}") from e
        diff = max(float(np.max(np.abs(a.astype(np.float64) - b))) for a, b in zip(before, after))
        scale = max(float(np.max(np.abs(a))) for a in before)
        if diff > 1e-5 * max(scale, 1.0):
            tmp.unlink()
            raise AssertionError(f"{path}: optimised graph differs by {diff:.3g} (largest value {scale:.3g})")
        tmp.replace(path)
        report[graph] = {**stats, "max_abs_diff": diff}
        log(f"{path}: {stats['nodes_before']} -> {stats['nodes_after']} nodes, "
            f"{stats['pads_folded']} pads folded into convolutions, max abs diff {diff:.3g}")
    doc["graph_passes"] = list(PASSES)
    doc_path.write_text(json.dumps(doc, indent=2) + "\n")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="onenip-optimize",
        description="Fold constants and backbone paddings of an exported model's graphs, in place "
        "(same outputs, faster on ONNX Runtime). onenip-export already does this; use it on "
        "models exported by older versions.",
    )
    ap.add_argument("model", type=Path, help="model folder (model.json + the three ONNX graphs)")
    args = ap.parse_args(argv)
    if not (args.model / "model.json").is_file():
        print(f"onenip-optimize: error: {args.model}: no model.json here", file=sys.stderr)
        return 2
    try:
        optimize_model_dir(args.model, log=lambda s: print(f"onenip-optimize: {s}"))
    except (OSError, AssertionError, ValueError) as e:
        print(f"onenip-optimize: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
