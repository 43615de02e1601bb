"""OneNIP (ECCV 2024) for gst-onenip: model, preprocessing, ONNX export, checkpoint conversion."""

from .config import CONFIGS, ModelConfig, get_config
from .model import OneNIP, OneNIPOutput, build_model
from .preprocess import preprocess

__all__ = ["CONFIGS", "ModelConfig", "OneNIP", "OneNIPOutput", "build_model", "get_config", "preprocess"]
