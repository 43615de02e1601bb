"""Acquisition variation: placement jitter, lighting and sensor noise.

A part is drawn on a canvas larger than the output image; ``place`` crops the
output from it with a small random shift and rotation (the same transform is
applied to the defect's alpha), ``expose`` applies a lighting gain, a linear
illumination gradient, optional vignetting, a slight colour cast and sensor
noise (read noise plus signal-dependent shot noise).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ._core import Array, grid, uniform


@dataclass(frozen=True)
class Jitter:
    shift: float = 0.03  # max shift as a fraction of the output size
    rotation_deg: float = 4.0
    gain: tuple[float, float] = (0.9, 1.1)
    gradient: float = 0.10  # max relative brightness change across the image
    vignette: float = 0.0
    cast: float = 0.01  # max per-channel gain deviation (RGB only)
    read_noise: tuple[float, float] = (0.004, 0.010)
    shot_noise: tuple[float, float] = (0.006, 0.014)


def canvas_size(size: int) -> int:
    """Side of the canvas a ``size`` x ``size`` image is cropped from."""
    return size + 2 * (int(0.1 * size) + 2)


def _affine(plane: Array, size: int, coeffs: tuple[float, ...]) -> Array:
    im = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"
    out = im.transform((size, size), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
    return np.asarray(out, dtype=np.float32)


def place(
    rng: np.random.Generator, img: Array, alpha: Array | None, size: int, jitter: Jitter
) -> tuple[Array, Array | None]:
    """Crop ``size`` x ``size`` from the canvas with a random shift and rotation."""
    n = img.shape[0]
    th = np.radians(uniform(rng, -jitter.rotation_deg, jitter.rotation_deg))
    dx = uniform(rng, -jitter.shift, jitter.shift) * size
    dy = uniform(rng, -jitter.shift, jitter.shift) * size
    ca, sa = float(np.cos(th)), float(np.sin(th))
    h = size / 2.0
    coeffs = (ca, -sa, n / 2.0 + dx - ca * h + sa * h, sa, ca, n / 2.0 + dy - sa * h - ca * h)
    out = np.stack([_affine(img[..., k], size, coeffs) for k in range(img.shape[2])], axis=2)
    a = _affine(alpha, size, coeffs) if alpha is not None else None
    return out, a


def expose(rng: np.random.Generator, img: Array, jitter: Jitter) -> Array:
    """Lighting gain/gradient/vignetting, colour cast and sensor noise."""
    h, w, ch = img.shape
    y, x = grid(h, w)
    gain = uniform(rng, *jitter.gain)
    ang = uniform(rng, 0.0, 2 * np.pi)
    amp = uniform(rng, 0.0, jitter.gradient)
    proj = ((x / w - 0.5) * np.cos(ang) + (y / h - 0.5) * np.sin(ang))
    light = gain * (1.0 + amp * proj)
    if jitter.vignette > 0:
        r2 = ((x / w - 0.5) ** 2 + (y / h - 0.5) ** 2) * 2.0
        light = light * (1.0 - uniform(rng, 0.3, 1.0) * jitter.vignette * r2)
    out = img * light[..., None]
    if ch == 3 and jitter.cast > 0:
        out = out * (1.0 + rng.uniform(-jitter.cast, jitter.cast, 3)).astype(np.float32)[None, None]
    read = uniform(rng, *jitter.read_noise)
    shot = uniform(rng, *jitter.shot_noise)
    sigma = np.sqrt(read * read + shot * shot * np.clip(out, 0.0, None))
    out = out + sigma * rng.standard_normal(out.shape, dtype=np.float32)
    return np.clip(out, 0.0, 1.0).astype(np.float32)
