"""onenip-train / onenip-calibrate / onenip-eval on a tiny synthetic folder (input size 64)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from onenip import anomalies
from onenip.calibrate import main as calibrate_main
from onenip.checkpoint import load_checkpoint
from onenip.data import find_classes, split_train_good
from onenip.evaluate import main as eval_main
from onenip.onnx_model import OnnxModel, score_pair
from onenip.preprocess import preprocess
from onenip.synth.cli import main as synth_main
from onenip.train.cli import main as train_main

SIZE = 64
TRAIN = ["--config", "onenip-s", "--input-size", str(SIZE), "--variants", "2", "--batch", "2",
         "--checkpoint-every", "2", "--no-progress", "--threads", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tiny") / "data"
    assert synth_main([str(root), "--seed", "1", "--classes", "cap,metal", "--train", "8", "--test-good", "2",
                       "--test-defect", "1", "--size", "64", "--jobs", "1", "--quiet"]) == 0
    # one grayscale, odd-sized class without ground truth, as users' folders may be
    odd = root / "odd"
    for split in ("train/good", "test/good", "test/bad"):
        (odd / split).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(6):
        Image.fromarray(rng.integers(90, 110, (50, 70), dtype=np.uint8)).save(odd / "train/good" / f"{i}.jpg")
    Image.fromarray(rng.integers(90, 110, (50, 70), dtype=np.uint8)).save(odd / "test/good/0.png")
    Image.fromarray(rng.integers(0, 255, (50, 70), dtype=np.uint8)).save(odd / "test/bad/0.png")
    return root


@pytest.fixture(scope="module")
def run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run") / "r"
    assert train_main([str(data), "--out", str(out), "--steps", "4", *TRAIN]) == 0
    return out


def test_layout_and_split(data: Path) -> None:
    assert find_classes(data) == ["cap", "metal", "odd"]
    split = split_train_good(data, ["cap", "metal", "odd"])
    for c in split.train:
        assert split.held_out[c], c
        assert not set(split.train[c]) & set(split.held_out[c])
        assert split.train[c][0].name == sorted(p.name for p in (data / c / "train/good").iterdir())[0]


def test_synthetic_anomalies_have_masks() -> None:
    img = np.full((64, 64, 3), 128, np.uint8)
    img[::4] = 60
    rng = np.random.default_rng(0)
    for _ in range(12):
        out, mask = anomalies.synthesize(img, rng, [np.zeros((64, 64, 3), np.uint8)])
        assert out.shape == img.shape and mask.shape == (64, 64)
        assert mask.sum() > 0
        assert np.abs(out.astype(int) - img.astype(int))[mask > 0].mean() > 0


def test_train_writes_log_and_resumes(run: Path, data: Path) -> None:
    for f in ("model.pt", "train_state.pt", "train_log.jsonl", "loss.png", "split.json", "train.json"):
        assert (run / f).is_file(), f
    st = torch.load(run / "train_state.pt", weights_only=False)
    assert st["step"] == 4
    before = {k: v.clone() for k, v in load_checkpoint(run / "model.pt").model.state_dict().items()}
    # a second run into the same folder without --resume is refused
    assert train_main([str(data), "--out", str(run), "--steps", "6", *TRAIN]) == 2
    assert train_main([str(data), "--out", str(run), "--steps", "6", "--resume", *TRAIN]) == 0
    st = torch.load(run / "train_state.pt", weights_only=False)
    assert st["step"] == 6
    steps = [json.loads(line)["step"] for line in (run / "train_log.jsonl").read_text().splitlines()]
    assert steps == sorted(steps) and steps[-1] == 6
    after = load_checkpoint(run / "model.pt").model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in after if "transformer" in k)
    # backbone frozen
    assert all(torch.equal(before[k], after[k]) for k in after if k.startswith("backbone.") and "num_batches" not in k)


@pytest.fixture(scope="module")
def calibrated(run: Path, data: Path) -> Path:
    # calibration must never open test images (nor ground truth): any attempt fails the test
    real_open = Image.open
    opened: list[str] = []

    def guarded_open(fp, *a, **k):  # type: ignore[no-untyped-def]
        opened.append(str(fp))
        if "/test/" in str(fp) or "/ground_truth/" in str(fp):
            raise AssertionError(f"calibration opened {fp}")
        return real_open(fp, *a, **k)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Image, "open", guarded_open)
        assert calibrate_main([str(run), str(data), "--no-progress", "--threads", "1"]) == 0
    assert any("/train/good/" in p for p in opened)
    return run / "model"


def test_calibration_written(calibrated: Path) -> None:
    import onnx

    doc = json.loads((calibrated / "model.json").read_text())
    assert doc["calibrated"] is True
    assert doc["fuse_k"] > 0 and doc["image_threshold"] > 0 and doc["pixel_threshold"] > 0
    info = doc["calibration"]
    assert info["images"] > 0
    assert set(info["sources"].values()) <= {"held_out"}
    assert info["score_max"] <= doc["image_threshold"]
    props = {p.key: p.value for p in onnx.load(str(calibrated / "refiner.onnx")).metadata_props}
    assert props["calibrated"] == "true"
    assert float(props["fuse_k"]) == pytest.approx(doc["fuse_k"])
    assert float(props["image_threshold"]) == pytest.approx(doc["image_threshold"])


def test_score_pair_matches_torch(calibrated: Path, run: Path, data: Path) -> None:
    img = data / "cap/test/good" / sorted(p.name for p in (data / "cap/test/good").iterdir())[0]
    prompt = sorted((data / "cap/train/good").iterdir())[0]
    score, amap = score_pair(calibrated, img, prompt)
    assert amap.shape == (SIZE, SIZE)
    loaded = load_checkpoint(run / "model_calibrated.pt")
    with torch.no_grad():
        out = loaded.model(torch.from_numpy(preprocess(img, SIZE)), torch.from_numpy(preprocess(prompt, SIZE)))
    assert score == pytest.approx(float(out.score[0]), abs=1e-4)
    assert np.abs(amap - out.anomaly_map[0, 0].numpy()).max() < 1e-4


def test_eval_writes_results(calibrated: Path, data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "eval"
    assert eval_main([str(calibrated), str(data), "--out", str(out), "--prompt-policy", "all",
                      "--max-prompts", "2", "--no-progress", "--threads", "1"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert set(res["classes"]) == {"cap", "metal", "odd"}
    assert res["classes"]["odd"]["pixel_auroc"] is None  # no ground truth there
    assert res["classes"]["cap"]["pixel_auroc"] is not None
    assert "spread" in res["classes"]["cap"]
    for f in ("results.md", "curves.png", "gallery.png"):
        assert (out / f).is_file()
    capsys.readouterr()
    img = next((data / "cap/test/good").iterdir())
    prompt = sorted((data / "cap/train/good").iterdir())[0]
    assert eval_main(["--score-pair", str(calibrated), str(img), str(prompt)]) == 0
    doc = json.loads(capsys.readouterr().out)
    m = OnnxModel(calibrated)
    pred = m.predict(img, m.encode_prompt(prompt))
    assert doc["score"] == pytest.approx(pred.score)
