"""Synthetic anomalies for training (spec section 4).

Per sample, 50/50: CutPaste (a colour-jittered rectangle of the image pasted
elsewhere; half of the time as a thin rotated "scar"), or a DRAEM-style Perlin
blend of a texture. Textures need no download: procedural noise, stripes,
other normal images, and scikit-image's bundled brick / grass / gravel.

All functions take and return uint8 RGB arrays at the model's input size and a
float32 mask in {0, 1} of the same height and width. They are deliberately
different from the benchmark's defects (scratches, cracks, holes, stains,
missing parts, print errors are never drawn here).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from PIL import Image, ImageEnhance

Rng = np.random.Generator


# -- Perlin noise ---------------------------------------------------------------------
def perlin(shape: tuple[int, int], res: tuple[int, int], rng: Rng) -> np.ndarray:
    """2-D gradient (Perlin) noise in about [-0.7, 0.7]; ``res`` lattice cells per axis.
    Works for any shape (computed on a grid that ``res`` divides, then cropped)."""
    ry, rx = res
    H = -(-shape[0] // ry) * ry
    W = -(-shape[1] // rx) * rx
    dy, dx = H // ry, W // rx
    angles = rng.uniform(0, 2 * np.pi, (ry + 1, rx + 1))
    grad = np.stack([np.cos(angles), np.sin(angles)], axis=-1)
    yy = (np.arange(H) % dy + 0.5) / dy
    xx = (np.arange(W) % dx + 0.5) / dx
    fy, fx = np.meshgrid(yy, xx, indexing="ij")
    cy = np.arange(H) // dy
    cx = np.arange(W) // dx
    CY, CX = np.meshgrid(cy, cx, indexing="ij")

    def dot(oy: int, ox: int) -> np.ndarray:
        g = grad[CY + oy, CX + ox]
        return g[..., 0] * (fx - ox) + g[..., 1] * (fy - oy)

    def fade(t: np.ndarray) -> np.ndarray:
        return 6 * t**5 - 15 * t**4 + 10 * t**3

    n00, n10, n01, n11 = dot(0, 0), dot(0, 1), dot(1, 0), dot(1, 1)
    u, v = fade(fx), fade(fy)
    top = n00 + u * (n10 - n00)
    bottom = n01 + u * (n11 - n01)
    out = top + v * (bottom - top)
    return out[: shape[0], : shape[1]].astype(np.float32)


def perlin_mask(size: int, rng: Rng, threshold: float = 0.55, min_pixels: int = 48, max_fraction: float = 0.3) -> np.ndarray:
    """A binary Perlin blob mask (scale 2^U{1..4} per axis at 256, threshold on the
    max-normalised noise); retried until it covers ``min_pixels`` to ``max_fraction``."""
    top = 5 if size >= 256 else 4
    for _ in range(20):
        res = (2 ** int(rng.integers(1, top)), 2 ** int(rng.integers(1, top)))
        noise = perlin((size, size), res, rng)
        noise = noise / (np.abs(noise).max() + 1e-8)
        k = int(rng.integers(0, 4))
        mask = (np.rot90(noise, k) > threshold).astype(np.float32)
        if min_pixels <= mask.sum() <= max_fraction * size * size:
            return np.ascontiguousarray(mask)
    # fallback: an ellipse
    yy, xx = np.mgrid[:size, :size]
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    return ((((yy - cy) / (size * 0.08)) ** 2 + ((xx - cx) / (size * 0.05)) ** 2) <= 1).astype(np.float32)


# -- textures ---------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _skimage_textures() -> tuple[np.ndarray, ...]:
    try:
        from skimage import data
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        return ()
    out = []
    for name in ("brick", "grass", "gravel"):
        try:
            out.append(np.asarray(getattr(data, name)(), dtype=np.uint8))
        except Exception:  # a missing bundled file is not fatal
            continue
    return tuple(out)


def _random_crop(img: np.ndarray, size: int, rng: Rng) -> np.ndarray:
    """A random crop (random scale) of img, resized to size x size, RGB uint8."""
    h, w = img.shape[:2]
    side = int(rng.uniform(0.3, 1.0) * min(h, w))
    side = max(8, side)
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(img[y : y + side, x : x + side]).convert("RGB")
    return np.asarray(crop.resize((size, size), Image.Resampling.BILINEAR))


def _tint(gray_rgb: np.ndarray, rng: Rng) -> np.ndarray:
    tint = rng.uniform(0.4, 1.3, 3)
    return np.clip(gray_rgb.astype(np.float32) * tint, 0, 255).astype(np.uint8)


def procedural_texture(size: int, rng: Rng) -> np.ndarray:
    """Coloured multi-octave noise or stripes, uint8 RGB."""
    if rng.random() < 0.5:
        acc = np.zeros((size, size), np.float32)
        amp = 1.0
        for octave in range(int(rng.integers(2, 5))):
            r = 2 ** (octave + int(rng.integers(1, 3)))
            acc += amp * perlin((size, size), (r, r), rng)
            amp *= 0.5
        acc = (acc - acc.min()) / (np.ptp(acc) + 1e-8)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        tex = c0[None, None] * (1 - acc[..., None]) + c1[None, None] * acc[..., None]
    else:
        yy, xx = np.mgrid[:size, :size].astype(np.float32)
        theta = rng.uniform(0, np.pi)
        period = rng.uniform(3, 24)
        wave = 0.5 + 0.5 * np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
        c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        tex = c0[None, None] * (1 - wave[..., None]) + c1[None, None] * wave[..., None]
        tex += rng.normal(0, 8, tex.shape)
    return np.clip(tex, 0, 255).astype(np.uint8)


def random_texture(size: int, rng: Rng, others: Sequence[np.ndarray] = ()) -> np.ndarray:
    """A texture from one of the sources (procedural, another normal image, skimage)."""
    sources = ["procedural"]
    if others:
        sources.append("other")
    if _skimage_textures():
        sources.append("skimage")
    src = sources[int(rng.integers(0, len(sources)))]
    if src == "other":
        return _random_crop(others[int(rng.integers(0, len(others)))], size, rng)
    if src == "skimage":
        tex = _skimage_textures()
        t = _random_crop(tex[int(rng.integers(0, len(tex)))], size, rng)
        return _tint(t, rng)
    return procedural_texture(size, rng)


# -- the anomaly types --------------------------------------------------------------------
def _color_jitter(patch: Image.Image, rng: Rng) -> Image.Image:
    patch = ImageEnhance.Brightness(patch).enhance(float(rng.uniform(0.6, 1.4)))
    patch = ImageEnhance.Contrast(patch).enhance(float(rng.uniform(0.6, 1.4)))
    patch = ImageEnhance.Color(patch).enhance(float(rng.uniform(0.5, 1.5)))
    hsv = np.asarray(patch.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(np.int16) + int(rng.integers(-25, 26))) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def _paste(img: np.ndarray, patch: Image.Image, pmask: Image.Image, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    h, w = img.shape[:2]
    pw, ph = patch.size
    y = int(rng.integers(0, max(1, h - ph + 1)))
    x = int(rng.integers(0, max(1, w - pw + 1)))
    canvas = Image.fromarray(img)
    canvas.paste(patch, (x, y), pmask)
    mask = Image.new("L", (w, h), 0)
    mask.paste(pmask, (x, y), pmask)
    return np.asarray(canvas), (np.asarray(mask) > 127).astype(np.float32)


def cutpaste(img: np.ndarray, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle (2-15 % of the area, aspect 0.3-3.3), colour-jittered, pasted elsewhere."""
    h, w = img.shape[:2]
    area = rng.uniform(0.02, 0.15) * h * w
    aspect = float(np.exp(rng.uniform(np.log(0.3), np.log(3.3))))
    ph = int(min(h - 1, max(4, round(np.sqrt(area * aspect)))))
    pw = int(min(w - 1, max(4, round(np.sqrt(area / aspect)))))
    y = int(rng.integers(0, h - ph + 1))
    x = int(rng.integers(0, w - pw + 1))
    patch = _color_jitter(Image.fromarray(img[y : y + ph, x : x + pw]), rng)
    pmask = Image.new("L", (pw, ph), 255)
    return _paste(img, patch, pmask, rng)


def cutpaste_scar(img: np.ndarray, rng: Rng) -> tuple[np.ndarray, np.ndarray]:
    """A thin strip (2-16 px wide, 10-25 px long at 256, scaled to the image), rotated
    +-45 degrees, colour-jittered, pasted elsewhere."""
    h, w = img.shape[:2]
    s = min(h, w) / 256.0
    sw = max(2, int(round(rng.uniform(2, 16) * s)))
    sl = max(6, int(round(rng.uniform(10, 25) * s)))
    y = int(rng.integers(0, h - sl + 1))
    x = int(rng.integers(0, w - sw + 1))
    patch = _color_jitter(Image.fromarray(img[y : y + sl, x : x + sw]), rng)
    angle = float(rng.uniform(-45, 45))
    patch = patch.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    pmask = Image.new("L", (sw, sl), 255).rotate(angle, resample=Image.Resampling.NEAREST, expand=True)
    return _paste(img, patch, pmask, rng)


def perlin_blend(img: np.ndarray, rng: Rng, others: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
    """DRAEM: I_a = I (1 - m) + (1 - b) T m + b I m, b ~ U(0, 0.8)."""
    size = img.shape[0]
    mask = perlin_mask(size, rng)
    if img.shape[1] != size:
        mask = np.asarray(Image.fromarray(mask).resize((img.shape[1], size), Image.Resampling.NEAREST))
    tex = random_texture(max(img.shape[:2]), rng, others)[: img.shape[0], : img.shape[1]]
    b = float(rng.uniform(0.0, 0.8))
    m = mask[..., None]
    f = img.astype(np.float32)
    out = f * (1 - m) + (1 - b) * tex.astype(np.float32) * m + b * f * m
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), mask.astype(np.float32)


def synthesize(img: np.ndarray, rng: Rng, others: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic anomaly: 25 % CutPaste, 25 % scar, 50 % Perlin blend. The image
    must differ from the input inside the mask; otherwise another draw is taken."""
    for _ in range(10):
        u = rng.random()
        if u < 0.25:
            out, mask = cutpaste(img, rng)
        elif u < 0.5:
            out, mask = cutpaste_scar(img, rng)
        else:
            out, mask = perlin_blend(img, rng, others)
        m = mask > 0.5
        if m.sum() >= 8 and np.abs(out[m].astype(np.int16) - img[m].astype(np.int16)).mean() >= 6:
            return out, mask
    return out, mask
