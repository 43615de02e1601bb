"""Writes `tests/data/tiny-onenip/`: a model that honours the OneNIP ONNX contract (names,
shapes, metadata, model.json) at input size 32 with a handful of weights.

The reliability tests run tens of thousands of frames and many pipelines; with this model a
frame costs well under a millisecond, so they test the element, not the CPU. Its scores do
depend on the image and on the prompt (the residual is the difference of pooled features),
so prompt swaps and thresholds behave as with a real model.

Run from the repo root: .venv/bin/python tests/data/make_tiny_onenip.py
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

SIZE, STRIDE, C, D = 32, 16, 4, 8
H = SIZE // STRIDE
N = H * H
OUT = Path(__file__).parent / "tiny-onenip"
META = {
    "contract_version": "1",
    "variant": "tiny-test",
    "backbone": "avgpool",
    "input_size": SIZE,
    "mean": [0.485, 0.456, 0.406],
    "std": [0.229, 0.224, 0.225],
    "feature_stride": STRIDE,
    "feature_size": H,
    "channels": C,
    "hidden_dim": D,
    "num_tokens": N,
    "fuse_k": 1.0,
    "image_threshold": 0.5,
    "pixel_threshold": 0.5,
    "calibrated": True,
}


class Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, C, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.avg_pool2d(x, STRIDE))  # [1, C, H, H]


class Prompt(nn.Module):
    def __init__(self, feats: Features) -> None:
        super().__init__()
        self.feats, self.lin = feats, nn.Linear(C, D)

    def forward(self, prompt_image: Tensor) -> Tensor:
        return self.lin(self.feats(prompt_image).flatten(2).transpose(1, 2))  # [1, N, D]


class Reconstructor(nn.Module):
    def __init__(self, feats: Features) -> None:
        super().__init__()
        self.feats, self.back = feats, nn.Linear(D, C)

    def forward(self, image: Tensor, prompt_tokens: Tensor) -> tuple[Tensor, Tensor]:
        f = self.feats(image)
        rec = self.back(prompt_tokens).transpose(1, 2).reshape(1, C, H, H)
        residual = (rec - f).abs()
        rec_map = F.interpolate(residual.norm(dim=1, keepdim=True), size=(SIZE, SIZE), mode="bilinear", align_corners=True)
        return rec_map, residual


class Refiner(nn.Module):
    def forward(self, residual: Tensor, rec_map: Tensor) -> tuple[Tensor, Tensor]:
        anomaly_map = 0.5 * rec_map + 0.5 * torch.sigmoid(residual.mean(dim=1, keepdim=True)).mean()
        score = F.avg_pool2d(anomaly_map, 16, stride=1).amax().reshape(1)
        return anomaly_map, score


def export(module: nn.Module, args: tuple[Tensor, ...], names: tuple[list[str], list[str]], graph: str) -> None:
    path = OUT / f"{graph}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, opset_version=17,
                          input_names=names[0], output_names=names[1])
    proto = onnx.load(str(path))
    props = {k: v if isinstance(v, str) else json.dumps(v) for k, v in {**META, "graph": graph}.items()}
    onnx.helper.set_model_props(proto, props)
    onnx.save(proto, str(path))


def main() -> None:
    torch.manual_seed(0)
    OUT.mkdir(exist_ok=True)
    feats = Features()
    img = torch.zeros(1, 3, SIZE, SIZE)
    tokens = torch.zeros(1, N, D)
    residual, rec_map = torch.zeros(1, C, H, H), torch.zeros(1, 1, SIZE, SIZE)
    export(Prompt(feats), (img,), (["prompt_image"], ["prompt_tokens"]), "prompt")
    export(Reconstructor(feats), (img, tokens), (["image", "prompt_tokens"], ["rec_map", "residual"]), "reconstructor")
    export(Refiner(), (residual, rec_map), (["residual", "rec_map"], ["anomaly_map", "score"]), "refiner")
    graphs = {g: {"file": f"{g}.onnx"} for g in ("prompt", "reconstructor", "refiner")}
    (OUT / "model.json").write_text(json.dumps({**META, "graphs": graphs}, indent=2) + "\n")
    print(OUT)


if __name__ == "__main__":
    main()
