"""The bundled model ``models/onenip-s`` and the sample media ``pipelines/media``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from onenip.export import GRAPH_FILES, io_spec
from onenip.onnx_model import OnnxModel
from onenip.synth import render_inspection_sequence

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "onenip-s"
MEDIA = REPO / "pipelines" / "media"

pytestmark = pytest.mark.skipif(not (MODEL / "model.json").is_file(), reason="no bundled model")


@pytest.fixture(scope="module")
def meta() -> dict:
    return json.loads((MODEL / "model.json").read_text())


@pytest.fixture(scope="module")
def sample() -> dict:
    return json.loads((MEDIA / "sample.json").read_text())


def test_contract(meta: dict) -> None:
    import onnx
    import onnxruntime as ort

    from onenip.config import get_config
    from onenip.model import OneNIP

    assert meta["contract_version"] == "1"
    assert meta["variant"] == "onenip-s" and meta["input_size"] == 256
    assert meta["calibrated"] is True and "calibration_note" not in meta
    assert meta["parity"]["ok"] is True
    for k in ("fuse_k", "image_threshold", "pixel_threshold"):
        assert meta[k] > 0
    spec = io_spec(OneNIP(get_config("onenip-s"), pretrained=False))
    total = 0
    for graph, fname in GRAPH_FILES.items():
        path = MODEL / fname
        total += path.stat().st_size
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [(i.name, list(i.shape)) for i in s.get_inputs()] == [(n, list(sh)) for n, sh in spec[graph]["inputs"]]
        assert [(o.name, list(o.shape)) for o in s.get_outputs()] == [(n, list(sh)) for n, sh in spec[graph]["outputs"]]
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        assert props["calibrated"] == "true" and props["graph"] == graph
        assert float(props["fuse_k"]) == pytest.approx(meta["fuse_k"])
        assert float(props["image_threshold"]) == pytest.approx(meta["image_threshold"])
        assert float(props["pixel_threshold"]) == pytest.approx(meta["pixel_threshold"])
    assert total < 40e6
    assert (MODEL / "MODEL_CARD.md").is_file()


def test_sample_media_files(sample: dict) -> None:
    video = MEDIA / sample["video"]
    assert video.is_file() and video.stat().st_size < 5e6
    assert (MEDIA / sample["prompt"]).is_file()
    assert 10 <= sample["duration_s"] <= 20
    parts = sample["parts"]
    assert any(p["defective"] for p in parts) and any(not p["defective"] for p in parts)
    prev_end = 0
    for p in parts:
        assert p["start_frame"] >= prev_end and p["end_frame"] > p["start_frame"]
        assert p["start_s"] == pytest.approx(p["start_frame"] / sample["fps"], abs=1e-3)
        assert p["defective"] == (p["label"] != "good")
        prev_end = p["end_frame"]
    assert prev_end == sample["frames"]


def test_bundled_model_separates_sample_parts(meta: dict, sample: dict) -> None:
    """Parts of the sample video (rendered again, deterministically) against the sample prompt."""
    cls = sample["class"]
    seed = int(sample["generator"].split("--seed ")[1].split()[0])
    defective = [p["index"] for p in sample["parts"] if p["defective"]]
    seq = render_inspection_sequence(cls, len(sample["parts"]) + 1, defective, seed)
    m = OnnxModel(MODEL)
    thr = float(meta["calibration"]["per_class"][cls]["image_threshold"])
    assert thr == pytest.approx(sample["model_check"]["image_threshold"])
    tokens = m.encode_prompt(MEDIA / sample["prompt"])

    def score(i: int) -> float:
        img = seq[i].image
        return m.predict(np.repeat(img[..., None], 3, 2) if img.ndim == 2 else img, tokens).score

    good = next(p["index"] for p in sample["parts"] if not p["defective"])
    bad = defective[0]
    assert score(bad) > thr > score(good)
