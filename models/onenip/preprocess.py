"""Image preprocessing shared by training, calibration, export and the element.

The GStreamer element must reproduce this exactly:

1. decode to 8-bit RGB (drop alpha, expand grey);
2. resize straight to ``size x size`` (no crop, aspect ratio ignored) with
   Pillow's ``Image.resize(..., Image.Resampling.BILINEAR)`` and no
   ``reducing_gap``. When shrinking, Pillow widens the triangle filter by the
   scale factor (support = scale), i.e. it is an antialiased bilinear
   (convolution) resize, not a 4-tap lookup. Pillow resamples 8-bit images in
   two separable passes (horizontal, then vertical) with fixed-point weights
   and rounds to uint8 after each pass;
3. ``x / 255`` in float32, then ``(x - mean) / std`` per channel with the
   ImageNet mean ``[0.485, 0.456, 0.406]`` and std ``[0.229, 0.224, 0.225]``;
4. NCHW float32, batch 1: ``[1, 3, size, size]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .config import IMAGENET_MEAN, IMAGENET_STD


def load_rgb(path: str | Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def resize(img: Image.Image, size: int) -> Image.Image:
    """Antialiased bilinear resize straight to size x size (RGB, uint8)."""
    return img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)


def normalize(rgb: np.ndarray, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """uint8 HxWx3 -> float32 [1, 3, H, W], (x / 255 - mean) / std."""
    x = rgb.astype(np.float32) / np.float32(255.0)
    x = (x - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def preprocess(
    img: Image.Image | str | Path,
    size: int,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> np.ndarray:
    """PIL image (or a path) -> model input [1, 3, size, size] float32."""
    if not isinstance(img, Image.Image):
        img = load_rgb(img)
    return normalize(np.asarray(resize(img, size)), mean, std)
