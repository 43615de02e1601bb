"""onenip-optimize and the passes onenip-export runs: no Pad node left, same outputs."""

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from onenip import export, graph_opt
from onenip.config import get_config
from onenip.model import build_model

BUNDLED = Path(__file__).resolve().parents[1] / "onenip-s"


def _ops(path: Path) -> list[str]:
    return [n.op_type for n in onnx.load(str(path)).graph.node]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


@pytest.fixture(scope="module")
def unoptimized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random onenip-s exported the way onenip-export did before the passes existed."""
    out = tmp_path_factory.mktemp("plain")
    torch.manual_seed(0)
    mp = pytest.MonkeyPatch()
    mp.setattr(export, "optimize_graph", lambda src, dst: None)
    try:
        export.export_model(build_model(get_config("onenip-s"), pretrained=False), out, log=lambda *_: None)
    finally:
        mp.undo()
    return out


def test_plain_export_has_pads(unoptimized: Path) -> None:
    assert _ops(unoptimized / "reconstructor.onnx").count("Pad") == 12  # stem + 11 depthwise convs


def test_optimize_folds_every_pad_and_keeps_outputs(unoptimized: Path, tmp_path: Path) -> None:
    d = tmp_path / "m"
    shutil.copytree(unoptimized, d)
    report = graph_opt.optimize_model_dir(d, log=lambda *_: None)
    assert report["reconstructor"]["pads_folded"] == 12 and report["prompt"]["pads_folded"] == 12
    g = np.random.default_rng(3)
    image = g.standard_normal((1, 3, 256, 256), dtype=np.float32)
    prompt = g.standard_normal((1, 3, 256, 256), dtype=np.float32)
    for f in ("prompt.onnx", "reconstructor.onnx"):
        assert "Pad" not in _ops(d / f)
        convs = [n for n in onnx.load(str(d / f)).graph.node if n.op_type == "Conv"]
        # TF "SAME" of the stride-2 convolutions is asymmetric: (0, 0, 1, 1) at 256
        assert any(list(next(a.ints for a in n.attribute if a.name == "pads")) == [0, 0, 1, 1] for n in convs)
    (tokens,) = _run(unoptimized / "prompt.onnx", {"prompt_image": prompt})
    (tokens2,) = _run(d / "prompt.onnx", {"prompt_image": prompt})
    np.testing.assert_array_equal(tokens, tokens2)
    feeds = {"image": image, "prompt_tokens": tokens}
    for a, b in zip(_run(unoptimized / "reconstructor.onnx", feeds), _run(d / "reconstructor.onnx", feeds)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    doc = json.loads((d / "model.json").read_text())
    assert doc["graph_passes"] == list(graph_opt.PASSES)
    props = {p.key: p.value for p in onnx.load(str(d / "reconstructor.onnx")).metadata_props}
    assert props["graph"] == "reconstructor" and props["contract_version"] == "1"
    again = graph_opt.optimize_model_dir(d, log=lambda *_: None)  # safe to run twice
    assert again["reconstructor"]["pads_folded"] == 0 and again["reconstructor"]["max_abs_diff"] <= 1e-5


def test_export_runs_the_passes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    report = export.export_model(build_model(get_config("onenip-s"), pretrained=False), tmp_path, log=lambda *_: None)
    assert report.ok, report.text()  # still equal to PyTorch
    assert "Pad" not in _ops(tmp_path / "reconstructor.onnx")
    assert json.loads((tmp_path / "model.json").read_text())["graph_passes"] == list(graph_opt.PASSES)


def test_bundled_model_is_optimized() -> None:
    for f in ("prompt.onnx", "reconstructor.onnx"):
        assert "Pad" not in _ops(BUNDLED / f), f


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert graph_opt.main([str(tmp_path)]) == 2
    assert "no model.json" in capsys.readouterr().err
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "prompt.onnx").write_bytes(b"not onnx")
    assert graph_opt.main([str(tmp_path)]) == 1
    assert "prompt.onnx" in capsys.readouterr().err
