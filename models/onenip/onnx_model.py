"""An exported model (model.json + the three ONNX graphs) run with ONNX Runtime,
exactly as the deployed element runs it:

RGB (grey expanded) -> PIL BILINEAR resize straight to input_size -> /255 ->
ImageNet normalisation -> prompt.onnx once per prompt -> reconstructor.onnx and
refiner.onnx per image; the image score is the refiner's ``score`` output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .preprocess import load_rgb, normalize, resize


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder (holding model.json), or a run folder holding ``model/model.json``."""
    p = Path(path)
    for cand in (p, p / "model"):
        if (cand / "model.json").is_file():
            return cand
    raise FileNotFoundError(f"{p}: no model.json here or in {p / 'model'} (run onenip-calibrate first)")


@dataclass
class Prediction:
    score: float
    anomaly_map: np.ndarray  # [H, W] float32
    rec_map: np.ndarray  # [H, W] float32


class OnnxModel:
    def __init__(self, model_dir: str | Path, threads: int = 2) -> None:
        import onnxruntime as ort

        self.dir = resolve_model_dir(model_dir)
        self.meta: dict[str, Any] = json.loads((self.dir / "model.json").read_text())
        self.size = int(self.meta["input_size"])
        self.mean = tuple(self.meta["mean"])
        self.std = tuple(self.meta["std"])
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # As the element: workers spin within a run and stop when it returns, so that one
        # graph's pool does not take the cores from the next graph.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1")
        opts.add_session_config_entry("session.force_spinning_stop", "1")
        files = {g: self.meta.get("graphs", {}).get(g, {}).get("file", f"{g}.onnx")
                 for g in ("prompt", "reconstructor", "refiner")}
        self.sess = {
            g: ort.InferenceSession(str(self.dir / f), opts, providers=["CPUExecutionProvider"])
            for g, f in files.items()
        }

    @property
    def image_threshold(self) -> float:
        return float(self.meta["image_threshold"])

    @property
    def pixel_threshold(self) -> float:
        return float(self.meta["pixel_threshold"])

    def prepare(self, image: str | Path | Image.Image | np.ndarray) -> np.ndarray:
        """Any image -> [1, 3, H, W] float32, the deployed transform."""
        if isinstance(image, np.ndarray):
            image = Image.fromarray(image)
        elif not isinstance(image, Image.Image):
            image = load_rgb(image)
        return normalize(np.asarray(resize(image.convert("RGB"), self.size)), self.mean, self.std)

    def encode_prompt(self, prompt: str | Path | Image.Image | np.ndarray) -> np.ndarray:
        (tokens,) = self.sess["prompt"].run(None, {"prompt_image": self.prepare(prompt)})
        return tokens

    def predict(self, image: str | Path | Image.Image | np.ndarray, prompt_tokens: np.ndarray) -> Prediction:
        x = self.prepare(image)
        rec_map, residual = self.sess["reconstructor"].run(None, {"image": x, "prompt_tokens": prompt_tokens})
        amap, score = self.sess["refiner"].run(None, {"residual": residual, "rec_map": rec_map})
        return Prediction(float(score.reshape(-1)[0]), amap[0, 0], rec_map[0, 0])


def score_pair(model_dir: str | Path, image_path: str | Path, prompt_path: str | Path) -> tuple[float, np.ndarray]:
    """(score, anomaly_map [H, W]) of one image against one prompt image, as deployed."""
    m = OnnxModel(model_dir)
    p = m.predict(image_path, m.encode_prompt(prompt_path))
    return p.score, p.anomaly_map
