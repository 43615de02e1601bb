import json
from pathlib import Path

import pytest
import torch
from test_export import _authors_ckpt

from onenip import convert, export
from onenip.checkpoint import CheckpointError, load_checkpoint, map_authors_key, save_checkpoint
from onenip.config import get_config
from onenip.model import build_model


@pytest.fixture(scope="module")
def authors(tmp_path_factory: pytest.TempPathFactory):
    return _authors_ckpt(tmp_path_factory.mktemp("a") / "ckpt.pkl")


def test_key_mapping() -> None:
    assert map_authors_key("reconstruction.seghead.upconv2.1.running_var") == "refiner.stages.1.bn.running_var"
    assert map_authors_key("reconstruction.seghead.predictor.bias") == "refiner.head.bias"
    assert map_authors_key("reconstruction.transformer.decoder.layers.0.mlp.lin2.weight") == "transformer.decoder.layers.0.mlp.fc2.weight"
    assert map_authors_key("reconstruction.transformer.decoder.final_attn_token_to_image.out_proj.bias") == "transformer.decoder.final_attn.out_proj.bias"
    assert map_authors_key("reconstruction.query_embed.weight") is None


def test_own_checkpoint_round_trip_with_calibration(tmp_path: Path) -> None:
    m = build_model(get_config("onenip-s"))
    calib = {"fuse_k": 3.5, "image_threshold": 2.25, "pixel_threshold": 2.75}
    save_checkpoint(m, tmp_path / "m.pt", calib)
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.calibration == calib and loaded.model.fuse_k == 3.5
    assert all(torch.equal(v, loaded.model.state_dict()[k]) for k, v in m.state_dict().items())
    assert export.main(["--config", "onenip-s", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path / "out")]) == 0
    doc = json.loads((tmp_path / "out" / "model.json").read_text())
    assert doc["calibrated"] is True and doc["fuse_k"] == 3.5 and doc["pixel_threshold"] == 2.75
    assert "calibration_note" not in doc


def test_config_mismatch_own_checkpoint(tmp_path: Path) -> None:
    save_checkpoint(build_model(get_config("onenip-s"), pretrained=False), tmp_path / "m.pt")
    with pytest.raises(CheckpointError, match=r"m\.pt: configuration mismatch: checkpoint is 'onenip-s', requested 'official-b4'"):
        load_checkpoint(tmp_path / "m.pt", "official-b4")


def test_config_mismatch_authors_checkpoint(authors) -> None:
    ckpt, _, _ = authors
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(ckpt, "onenip-s")
    msg = str(e.value)
    assert str(ckpt) in msg and "'onenip-s'" in msg
    assert "unexpected keys" in msg and "_se_reduce" in msg  # B4 has SE blocks, Lite0 none
    assert "shape mismatches" in msg and "_depthwise_conv.weight: checkpoint (48, 1, 3, 3) vs model (32, 1, 3, 3)" in msg


def test_missing_and_unexpected_keys(authors, tmp_path: Path) -> None:
    _, _, state = authors
    bad = dict(state)
    del bad["module.reconstruction.transformer.decoder.norm.weight"]
    bad["module.reconstruction.query_embed.weight"] = torch.zeros(196, 256)
    torch.save({"state_dict": bad}, tmp_path / "bad.pkl")
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(tmp_path / "bad.pkl", "official-b4")
    msg = str(e.value)
    assert "bad.pkl" in msg and "1 missing keys: transformer.decoder.norm.weight" in msg
    assert "1 unexpected keys: module.reconstruction.query_embed.weight" in msg


def test_input_size_mismatch(authors, tmp_path: Path) -> None:
    _, _, state = authors
    bigger = dict(state)
    for k in ("row_embed", "col_embed"):
        bigger[f"module.reconstruction.pos_embed.{k}.weight"] = torch.randn(16, 128)
    torch.save({"state_dict": bigger}, tmp_path / "c256.pkl")
    with pytest.raises(CheckpointError, match=r"trained at input size 256 .* use --input-size 256"):
        load_checkpoint(tmp_path / "c256.pkl", "official-b4", input_size=224)
    loaded = load_checkpoint(tmp_path / "c256.pkl", "official-b4")  # inferred
    assert loaded.model.cfg.input_size == 256 and loaded.model.cfg.neighbor == 8


def test_not_a_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "junk.pkl").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pkl: cannot read"):
        load_checkpoint(tmp_path / "junk.pkl", "official-b4")
    torch.save({"model": {}}, tmp_path / "nodict.pkl")
    with pytest.raises(CheckpointError, match=r"nodict\.pkl: not a OneNIP checkpoint"):
        load_checkpoint(tmp_path / "nodict.pkl", "official-b4")
    torch.save({"state_dict": {"fc.weight": torch.zeros(2)}}, tmp_path / "other.pkl")
    with pytest.raises(CheckpointError, match=r"other\.pkl: unknown checkpoint layout"):
        load_checkpoint(tmp_path / "other.pkl", "official-b4")
    assert convert.main([str(tmp_path / "missing.pkl"), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "onenip-convert: error:" in err and "missing.pkl: no such checkpoint file" in err
    assert not (tmp_path / "o").exists()
