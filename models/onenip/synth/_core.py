"""Small numeric helpers shared by the synthetic benchmark generator.

Everything here is pure numpy + Pillow and deterministic for a given
``numpy.random.Generator`` state. Images are float32 arrays in [0, 1] with shape
(H, W, C), C being 1 (grayscale) or 3 (RGB); alpha maps are float32 (H, W).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

Array = np.ndarray
Point = tuple[float, float]

SUPERSAMPLE = 4


def stable_id(text: str) -> int:
    """A platform-independent 32-bit id for a name (Python's hash() is salted)."""
    return zlib.crc32(text.encode("utf-8")) & 0xFFFFFFFF


def make_rng(*keys: int | str) -> np.random.Generator:
    """A generator seeded from a tuple of ints/strings, independent of call order."""
    ints = [k if isinstance(k, int) else stable_id(k) for k in keys]
    return np.random.default_rng(np.random.SeedSequence(ints))


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


# --------------------------------------------------------------------------- noise


def _smooth(t: Array) -> Array:
    return t * t * (3.0 - 2.0 * t)


def value_noise(rng: np.random.Generator, h: int, w: int, cell: float) -> Array:
    """Smooth value noise in [0, 1] with feature size ``cell`` pixels."""
    cell = max(float(cell), 1.0)
    gh = int(np.ceil(h / cell)) + 2
    gw = int(np.ceil(w / cell)) + 2
    grid = rng.random((gh, gw), dtype=np.float32)
    oy, ox = rng.random(2)
    y = (np.arange(h, dtype=np.float32) / cell + oy).astype(np.float32)
    x = (np.arange(w, dtype=np.float32) / cell + ox).astype(np.float32)
    iy = y.astype(np.int64)
    ix = x.astype(np.int64)
    fy = _smooth(y - iy)[:, None]
    fx = _smooth(x - ix)[None, :]
    g00 = grid[iy][:, ix]
    g01 = grid[iy][:, ix + 1]
    g10 = grid[iy + 1][:, ix]
    g11 = grid[iy + 1][:, ix + 1]
    top = g00 + (g01 - g00) * fx
    bot = g10 + (g11 - g10) * fx
    return (top + (bot - top) * fy).astype(np.float32)


def fbm(
    rng: np.random.Generator,
    h: int,
    w: int,
    cell: float,
    octaves: int = 4,
    persistence: float = 0.5,
) -> Array:
    """Fractal value noise, normalised to zero mean and unit standard deviation."""
    out = np.zeros((h, w), np.float32)
    amp = 1.0
    for _ in range(octaves):
        out += amp * value_noise(rng, h, w, cell)
        amp *= persistence
        cell = max(cell / 2.0, 1.0)
    out -= out.mean()
    sd = float(out.std())
    return out / sd if sd > 1e-8 else out


def box_blur(a: Array, r: int, axis: int) -> Array:
    """Box filter of width 2r+1 along one axis, edges replicated."""
    if r <= 0:
        return a
    pad = [(0, 0)] * a.ndim
    pad[axis] = (r + 1, r)
    p = np.pad(a, pad, mode="edge").astype(np.float64)
    c = np.cumsum(p, axis=axis)
    n = a.shape[axis]
    hi = np.take(c, np.arange(2 * r + 1, 2 * r + 1 + n), axis=axis)
    lo = np.take(c, np.arange(0, n), axis=axis)
    return ((hi - lo) / (2 * r + 1)).astype(np.float32)


def blur(a: Array, sigma_y: float, sigma_x: float | None = None) -> Array:
    """Approximate Gaussian blur (three box passes per axis) of a 2-D or 3-D array."""
    if sigma_x is None:
        sigma_x = sigma_y
    out = a.astype(np.float32)
    for axis, s in ((0, sigma_y), (1, sigma_x)):
        if s <= 0.3:
            continue
        r = int(round((np.sqrt(4.0 * s * s + 1.0) - 1.0) / 2.0))
        if r < 1:
            continue
        for _ in range(3):
            out = box_blur(out, r, axis)
    return out


def erode(mask: Array, r: int) -> Array:
    """Binary erosion by a (2r+1) square of a float {0,1} mask."""
    if r <= 0:
        return mask
    m = box_blur(box_blur(mask.astype(np.float32), r, 0), r, 1)
    return (m > 0.999).astype(np.float32)


def dilate(mask: Array, r: int) -> Array:
    if r <= 0:
        return mask
    m = box_blur(box_blur(mask.astype(np.float32), r, 0), r, 1)
    return (m > 1e-3).astype(np.float32)


def smoothstep(e0: float, e1: float, x: Array) -> Array:
    t = np.clip((x - e0) / (e1 - e0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def grid(h: int, w: int) -> tuple[Array, Array]:
    """Pixel-centre coordinates (y, x) as float32 arrays of shape (H, W)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return y + 0.5, x + 0.5


# --------------------------------------------------------------------------- drawing


def draw_alpha(h: int, w: int, fn: Callable[[ImageDraw.ImageDraw, float], None]) -> Array:
    """Rasterise shapes anti-aliased: ``fn(draw, scale)`` draws in pixel units * scale."""
    s = SUPERSAMPLE
    im = Image.new("L", (w * s, h * s), 0)
    fn(ImageDraw.Draw(im), float(s))
    return np.asarray(im.reduce(s), dtype=np.float32) / 255.0


def _scaled(pts: Sequence[Point], s: float) -> list[Point]:
    return [(float(x) * s, float(y) * s) for x, y in pts]


def polyline_alpha(h: int, w: int, pts: Sequence[Point], width: float) -> Array:
    def fn(d: ImageDraw.ImageDraw, s: float) -> None:
        sp = _scaled(pts, s)
        lw = max(int(round(width * s)), 1)
        d.line(sp, fill=255, width=lw, joint="curve")
        r = lw / 2.0
        for x, y in (sp[0], sp[-1]):
            d.ellipse((x - r, y - r, x + r, y + r), fill=255)

    return draw_alpha(h, w, fn)


def tapered_polyline_alpha(
    h: int, w: int, pts: Sequence[Point], widths: Sequence[float]
) -> Array:
    """A polyline whose width changes per segment (cracks, scratches)."""

    def fn(d: ImageDraw.ImageDraw, s: float) -> None:
        sp = _scaled(pts, s)
        for i in range(len(sp) - 1):
            lw = max(int(round(widths[i] * s)), 1)
            d.line([sp[i], sp[i + 1]], fill=255, width=lw)
            r = lw / 2.0
            x, y = sp[i + 1]
            d.ellipse((x - r, y - r, x + r, y + r), fill=255)

    return draw_alpha(h, w, fn)


def polygon_alpha(h: int, w: int, pts: Sequence[Point]) -> Array:
    def fn(d: ImageDraw.ImageDraw, s: float) -> None:
        d.polygon(_scaled(pts, s), fill=255)

    return draw_alpha(h, w, fn)


def blob_points(
    rng: np.random.Generator,
    cx: float,
    cy: float,
    radius: float,
    aspect: float = 1.0,
    roughness: float = 0.25,
    n: int = 64,
) -> list[Point]:
    """An irregular closed outline around (cx, cy)."""
    t = np.linspace(0.0, 2.0 * np.pi, n, endpoint=False)
    r = np.ones(n)
    for k in range(2, 7):
        r += roughness / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, 1.8) * radius
    rot = rng.uniform(0, np.pi)
    x = r * np.cos(t) * aspect
    y = r * np.sin(t) / aspect
    xr = cx + x * np.cos(rot) - y * np.sin(rot)
    yr = cy + x * np.sin(rot) + y * np.cos(rot)
    return list(zip(xr.tolist(), yr.tolist()))


def random_walk(
    rng: np.random.Generator,
    start: Point,
    heading: float,
    length: float,
    step: float,
    wiggle: float,
) -> list[Point]:
    """A polyline from ``start`` whose heading drifts by N(0, wiggle) per step."""
    pts = [start]
    x, y = start
    n = max(int(length / step), 2)
    for _ in range(n):
        heading += float(rng.normal(0.0, wiggle))
        x += step * np.cos(heading)
        y += step * np.sin(heading)
        pts.append((float(x), float(y)))
    return pts


def pick_point(rng: np.random.Generator, region: Array, margin: int = 0) -> Point:
    """A random pixel centre inside ``region`` (eroded by ``margin``)."""
    allowed = erode((region > 0.5).astype(np.float32), margin) if margin > 0 else region > 0.5
    ys, xs = np.nonzero(allowed > 0.5)
    if len(ys) == 0:
        ys, xs = np.nonzero(region > 0.5)
    if len(ys) == 0:
        h, w = region.shape
        return (w / 2.0, h / 2.0)
    i = int(rng.integers(len(ys)))
    return (float(xs[i]) + 0.5, float(ys[i]) + 0.5)


# --------------------------------------------------------------------------- colour


def colorize(value: Array, dark: Sequence[float], light: Sequence[float]) -> Array:
    """Map a (H, W) value in [0, 1] onto a colour ramp -> (H, W, C)."""
    d = np.asarray(dark, np.float32)
    li = np.asarray(light, np.float32)
    return (d[None, None, :] + (li - d)[None, None, :] * value[..., None]).astype(np.float32)


def composite(img: Array, color: Array | Sequence[float], alpha: Array) -> Array:
    """Alpha-blend a colour (C,) or image (H, W, C) over ``img``."""
    c = np.asarray(color, np.float32)
    if c.ndim == 1:
        c = c[None, None, :]
    a = alpha[..., None]
    return (img * (1.0 - a) + c * a).astype(np.float32)


def to_uint8(img: Array) -> Array:
    out = np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8)
    if out.ndim == 3 and out.shape[2] == 1:
        out = out[..., 0]
    return out
