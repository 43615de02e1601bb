"""Surface defects painted onto a clean render, each returning its exact alpha map.

Every function takes the instance generator, the clean float image (H, W, C), the
region where the defect may lie (float (H, W), 1 = allowed) and the size ``scale``
(pixels per pixel of a 256-px reference image); it returns the new image and the
defect's alpha (H, W) in [0, 1]. The ground-truth mask is ``alpha >= MASK_LEVEL``
after the geometric jitter, and pixels with alpha below it are changed by at most
a small fraction of the defect's contrast.

These are deliberately unlike the training-time anomaly synthesis (rectangular
CutPaste patches, pasted scar strips, Perlin-masked foreign textures): they are
thin curved strokes, branching cracks, round holes and dents, tinted stains,
fibres and particles, and geometric or print changes of the object itself.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._core import (
    Array,
    blob_points,
    blur,
    composite,
    dilate,
    fbm,
    grid,
    pick_point,
    polygon_alpha,
    polyline_alpha,
    random_walk,
    smoothstep,
    tapered_polyline_alpha,
    uniform,
)

MASK_LEVEL = 0.1
Result = tuple[Array, Array]


def _limit(alpha: Array, region: Array) -> Array:
    return (alpha * np.clip(region, 0.0, 1.0)).astype(np.float32)


def scratch(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    color: Sequence[float],
    strength: float = 0.85,
    width: tuple[float, float] = (2.0, 3.2),
    length: tuple[float, float] = (50.0, 95.0),
    count: int = 1,
    heading: float | None = None,
    halo: float = 0.0,
) -> Result:
    """Thin, slightly curved strokes (one or a few nearly parallel ones)."""
    h, w = region.shape
    alpha = np.zeros((h, w), np.float32)
    x0, y0 = pick_point(rng, region, int(12 * scale))
    head = uniform(rng, 0.0, 2 * np.pi) if heading is None else heading + rng.normal(0, 0.25)
    ln = uniform(rng, *length) * scale
    wd = uniform(rng, *width) * scale
    for k in range(count):
        off = (k - (count - 1) / 2.0) * uniform(rng, 3.0, 6.0) * scale
        sx = x0 - np.cos(head) * ln / 2 - np.sin(head) * off
        sy = y0 - np.sin(head) * ln / 2 + np.cos(head) * off
        pts = random_walk(rng, (sx, sy), head, ln * uniform(rng, 0.7, 1.0), 2.0 * scale, 0.03)
        n = len(pts) - 1
        taper = np.sin(np.linspace(0.15, np.pi - 0.15, n)) ** 0.5
        alpha = np.maximum(alpha, tapered_polyline_alpha(h, w, pts, (wd * taper).tolist()))
    alpha = _limit(alpha, region)
    out = composite(img, color, alpha * strength)
    if halo > 0:
        ring = np.clip(blur(alpha, 1.2 * scale) * 1.6, 0.0, 1.0)
        ring = np.clip(ring - alpha, 0.0, 1.0) * (ring > MASK_LEVEL)
        out = out * (1.0 - halo * ring[..., None])
        alpha = np.maximum(alpha, ring.astype(np.float32))
    return out.astype(np.float32), alpha


def crack(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    color: Sequence[float],
    strength: float = 0.9,
    length: tuple[float, float] = (45.0, 80.0),
    width: float = 3.0,
    start: tuple[float, float] | None = None,
    heading: float | None = None,
) -> Result:
    """A jagged dark line with one or two side branches, widest at its origin."""
    h, w = region.shape
    if start is None:
        start = pick_point(rng, region, int(14 * scale))
    head = uniform(rng, 0.0, 2 * np.pi) if heading is None else heading
    ln = uniform(rng, *length) * scale
    main = random_walk(rng, start, head, ln, 3.0 * scale, 0.35)
    n = len(main) - 1
    widths = (np.linspace(width, 0.9, n) * scale).tolist()
    alpha = tapered_polyline_alpha(h, w, main, widths)
    for _ in range(int(rng.integers(1, 3))):
        k = int(rng.integers(1, max(n - 2, 2)))
        side = float(rng.choice([-1.0, 1.0]))
        bh = head + side * uniform(rng, 0.5, 1.1)
        branch = random_walk(rng, main[k], bh, ln * uniform(rng, 0.25, 0.45), 3.0 * scale, 0.4)
        bw = (np.linspace(max(widths[k] * 0.8, 1.0 * scale), 0.8 * scale, len(branch) - 1)).tolist()
        alpha = np.maximum(alpha, tapered_polyline_alpha(h, w, branch, bw))
    alpha = _limit(alpha, region)
    return composite(img, color, alpha * strength), alpha


def hole(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    inside: Sequence[float],
    rim: float = 0.25,
    radius: tuple[float, float] = (5.5, 10.0),
    aspect: tuple[float, float] = (0.8, 1.25),
) -> Result:
    """An irregular round hole showing a dark backing, with a darkened frayed rim."""
    h, w = region.shape
    r = uniform(rng, *radius) * scale
    cx, cy = pick_point(rng, region, int(r + 8 * scale))
    core = polygon_alpha(h, w, blob_points(rng, cx, cy, r, uniform(rng, *aspect), 0.35))
    rim_a = polygon_alpha(h, w, blob_points(rng, cx, cy, r + 2.2 * scale, 1.0, 0.45))
    rim_a = np.clip(rim_a - core, 0.0, 1.0)
    ch = img.shape[2]
    dark = np.asarray(inside[:ch], np.float32)
    var = 0.04 * rng.normal(size=(h, w, 1)).astype(np.float32)
    out = img * (1.0 - rim * rim_a[..., None])
    out = composite(out, np.clip(dark[None, None, :] + var, 0.0, 1.0), core)
    alpha = _limit(np.maximum(core, rim_a), region)
    return out.astype(np.float32), alpha


def dent(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    depth: float = 0.22,
    radius: tuple[float, float] = (6.0, 11.0),
) -> Result:
    """A shallow round dent in a shiny surface, lit from the top left."""
    h, w = region.shape
    r = uniform(rng, *radius) * scale
    cx, cy = pick_point(rng, region, int(r + 6 * scale))
    ax = uniform(rng, 0.75, 1.3)
    y, x = grid(h, w)
    rot = uniform(rng, 0.0, np.pi)
    dx = x - cx
    dy = y - cy
    u = (dx * np.cos(rot) + dy * np.sin(rot)) / (r * ax)
    v = (-dx * np.sin(rot) + dy * np.cos(rot)) * ax / r
    d2 = u * u + v * v
    bowl = np.clip(1.0 - d2, 0.0, None) ** 2
    gy, gx = np.gradient(bowl)
    light = -(gx + gy) * r * depth  # a depression: the slope facing the top-left light is dark
    inside = smoothstep(1.0, 0.85, np.sqrt(d2))
    out = img + (light * inside)[..., None] - 0.04 * (bowl * inside)[..., None]
    alpha = _limit((d2 <= 1.0).astype(np.float32) * np.maximum(inside, 0.25), region)
    return np.clip(out, 0.0, 1.0).astype(np.float32), alpha


def stain(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    tint: Sequence[float],
    strength: tuple[float, float] = (0.45, 0.7),
    radius: tuple[float, float] = (10.0, 18.0),
    ring: float = 0.35,
) -> Result:
    """A tinted liquid stain with a darker drying ring (multiplicative, keeps texture)."""
    h, w = region.shape
    r = uniform(rng, *radius) * scale
    cx, cy = pick_point(rng, region, int(r + 6 * scale))
    shape = polygon_alpha(h, w, blob_points(rng, cx, cy, r, uniform(rng, 0.7, 1.4), 0.4))
    soft = blur(shape, 1.0 * scale)
    edge = np.clip(shape - np.clip(blur(shape, 2.0 * scale) * 1.3 - 0.3, 0.0, 1.0), 0.0, 1.0)
    body = 0.75 + 0.25 * np.clip(fbm(rng, h, w, 10 * scale, 2), -1.0, 1.0)
    a = np.clip(np.where(shape > 0.5, body, soft) + ring * edge, 0.0, 1.0)
    a = (a * (soft > 0.1)).astype(np.float32)
    a = _limit(a, region)
    k = uniform(rng, *strength)
    ch = img.shape[2]
    t = np.asarray(tint[:ch], np.float32)[None, None, :]
    factor = 1.0 - k * a[..., None] * (1.0 - t)
    alpha = np.where(a * k >= 0.03, np.maximum(a, MASK_LEVEL), 0.0).astype(np.float32)
    return (img * factor).astype(np.float32), alpha


def fiber(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    color: Sequence[float],
    width: tuple[float, float] = (1.6, 2.4),
    length: tuple[float, float] = (55.0, 95.0),
) -> Result:
    """A loose curly fibre or hair lying on the surface."""
    h, w = region.shape
    start = pick_point(rng, region, int(20 * scale))
    pts = random_walk(rng, start, uniform(rng, 0, 2 * np.pi), uniform(rng, *length) * scale,
                      2.0 * scale, 0.16)
    alpha = _limit(polyline_alpha(h, w, pts, uniform(rng, *width) * scale), region)
    ch = img.shape[2]
    shade = 1.0 + 0.15 * rng.normal(size=(h, w, 1)).astype(np.float32)
    col = np.clip(np.asarray(color[:ch], np.float32)[None, None, :] * shade, 0.0, 1.0)
    return composite(img, col, alpha * 0.92), alpha


def particles(
    rng: np.random.Generator,
    img: Array,
    region: Array,
    scale: float,
    *,
    colors: Sequence[Sequence[float]],
    count: tuple[int, int] = (3, 7),
    radius: tuple[float, float] = (2.0, 4.2),
    spread: float = 12.0,
    shiny: float = 0.0,
) -> Result:
    """A small cluster of foreign particles (dust, chips, solder balls)."""
    h, w = region.shape
    cx, cy = pick_point(rng, region, int((spread + 6) * scale))
    ch = img.shape[2]
    out = img
    alpha = np.zeros((h, w), np.float32)
    y, x = grid(h, w)
    for i in range(int(rng.integers(count[0], count[1] + 1))):
        r = uniform(rng, *radius) * scale * (1.4 if i == 0 else 1.0)
        px = cx + (0 if i == 0 else rng.normal(0, spread * 0.5) * scale)
        py = cy + (0 if i == 0 else rng.normal(0, spread * 0.5) * scale)
        a = polygon_alpha(h, w, blob_points(rng, px, py, r, uniform(rng, 0.7, 1.4), 0.3, 24))
        a = _limit(a, region)
        col = np.asarray(colors[int(rng.integers(len(colors)))][:ch], np.float32)
        fill = np.broadcast_to(col[None, None, :], img.shape).astype(np.float32)
        if shiny > 0:
            spec = np.exp(-(((x - px + 0.35 * r) ** 2 + (y - py + 0.35 * r) ** 2) / (0.3 * r * r + 0.3)))
            fill = np.clip(fill + shiny * spec[..., None], 0.0, 1.0)
        out = composite(out, fill, a)
        alpha = np.maximum(alpha, a)
    return out, alpha


def region_box(h: int, w: int, margin: int) -> Array:
    """A float mask that is 1 inside the canvas minus ``margin`` on each side."""
    m = np.zeros((h, w), np.float32)
    m[margin : h - margin, margin : w - margin] = 1.0
    return m


def diff_alpha(a: Array, b: Array, level: float = 0.05, grow: int = 1) -> Array:
    """Mask of pixels where two noise-free renders differ (for geometric defects)."""
    d = np.abs(a - b).max(axis=2) > level
    return dilate(d.astype(np.float32), grow)
