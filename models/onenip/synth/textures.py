"""Procedural surface textures: woven fabric, brushed metal, wood grain, leather.

Each generator takes an instance generator ``rng``, a canvas size and a ``scale``
(canvas pixels per pixel of a 256-px reference image) and returns a float32
(H, W, C) image in [0, 1]. Every call gives a new instance of the same material
(thread gains, grain, pores, cells and colour drift are drawn from ``rng``).
"""

from __future__ import annotations

import numpy as np

from ._core import Array, blur, colorize, fbm, grid, smoothstep, uniform


def _norm(a: Array) -> Array:
    a = a - a.mean()
    sd = float(a.std())
    return a / sd if sd > 1e-8 else a


def fabric(rng: np.random.Generator, h: int, w: int, scale: float) -> Array:
    """Plain-weave fabric: alternating warp/weft threads with slubs and fibre hair."""
    y, x = grid(h, w)
    period = 8.0 * scale * uniform(rng, 0.97, 1.03)
    wave = 1.0 * scale
    wx = x + wave * fbm(rng, h, w, 48 * scale, 2)
    wy = y + wave * fbm(rng, h, w, 48 * scale, 2)
    u = wx / period
    v = wy / period
    i = np.floor(u).astype(np.int64)
    j = np.floor(v).astype(np.int64)
    fu = u - i
    fv = v - j
    # Per-thread thickness/brightness irregularity (slubs).
    gi = 1.0 + 0.07 * rng.normal(size=int(i.max() - i.min()) + 1).astype(np.float32)
    gj = 1.0 + 0.07 * rng.normal(size=int(j.max() - j.min()) + 1).astype(np.float32)
    gain_warp = gi[i - i.min()]
    gain_weft = gj[j - j.min()]
    prof_warp = np.sin(np.pi * fu) ** 0.55
    prof_weft = np.sin(np.pi * fv) ** 0.55
    warp = prof_warp * (0.72 + 0.28 * np.sin(np.pi * fv)) * gain_warp
    weft = prof_weft * (0.72 + 0.28 * np.sin(np.pi * fu)) * gain_weft
    over = ((i + j) % 2) == 0
    val = np.where(over, np.maximum(warp, 0.45 * weft), np.maximum(weft, 0.45 * warp))
    hair_v = _norm(blur(rng.normal(size=(h, w)).astype(np.float32), 2.5 * scale, 0.4))
    hair_h = _norm(blur(rng.normal(size=(h, w)).astype(np.float32), 0.4, 2.5 * scale))
    hair = np.where(over, hair_v, hair_h)
    mottling = fbm(rng, h, w, 90 * scale, 3)
    val = val * (1.0 + 0.035 * mottling) + 0.04 * hair
    warp_col = np.array([0.60, 0.53, 0.42], np.float32) * uniform(rng, 0.96, 1.04)
    weft_col = np.array([0.52, 0.47, 0.38], np.float32) * uniform(rng, 0.96, 1.04)
    col = np.where(over[..., None], warp_col[None, None], weft_col[None, None])
    shade = 0.22 + 0.88 * np.clip(val, 0.0, 1.3)
    return np.clip(col * shade[..., None], 0.0, 1.0).astype(np.float32)


def brushed_metal(rng: np.random.Generator, h: int, w: int, scale: float) -> Array:
    """Brushed steel (grayscale): long horizontal polish lines and a soft sheen."""
    y, x = grid(h, w)
    n1 = _norm(blur(rng.normal(size=(h, w)).astype(np.float32), 0.0, 30 * scale))
    n2 = _norm(blur(rng.normal(size=(h, w)).astype(np.float32), 0.0, 6 * scale))
    # A few deeper, longer polish grooves.
    rows = rng.random(h).astype(np.float32)
    grooves = np.where(rows > 0.93, rng.uniform(-1.0, 1.0, h), 0.0).astype(np.float32)
    groove_map = blur(np.repeat(grooves[:, None], w, axis=1), 0.5, 0.0)
    groove_map *= 0.6 + 0.4 * (fbm(rng, h, w, 60 * scale, 2) > -0.3)
    sheen_phase = uniform(rng, 0.0, 2 * np.pi)
    sheen = 0.05 * np.cos(2 * np.pi * y / (h * uniform(rng, 1.2, 1.8)) + sheen_phase)
    low = 0.025 * fbm(rng, h, w, 120 * scale, 2)
    base = uniform(rng, 0.52, 0.58)
    val = base + 0.05 * n1 + 0.03 * n2 + 0.06 * groove_map + sheen + low
    return np.clip(val, 0.0, 1.0)[..., None].astype(np.float32)


def wood(rng: np.random.Generator, h: int, w: int, scale: float) -> Array:
    """Flat-sawn wood: growth rings running along x, pores, colour drift."""
    y, x = grid(h, w)
    spacing = 15.0 * scale * uniform(rng, 0.9, 1.1)
    warp = 7.0 * scale * fbm(rng, h, w, 170 * scale, 2)
    bend = uniform(rng, -1.0, 1.0) * 30.0 * scale * ((x - w / 2) / w) ** 2
    t = (y + warp + bend) / spacing + uniform(rng, 0.0, 1.0)
    frac = t - np.floor(t)
    ring = frac**2.2 * smoothstep(1.0, 0.93, frac)  # late wood darkens, then sharp edge
    ring_id = np.floor(t).astype(np.int64)
    ring_gain = 1.0 + 0.25 * rng.normal(size=int(ring_id.max() - ring_id.min()) + 1)
    ring = ring * ring_gain[ring_id - ring_id.min()].astype(np.float32)
    pores = blur(rng.normal(size=(h, w)).astype(np.float32), 0.5, 9 * scale)
    pores = np.clip(_norm(pores) - 1.2, 0.0, None)
    fine = _norm(blur(rng.normal(size=(h, w)).astype(np.float32), 0.4, 3 * scale))
    drift = fbm(rng, h, w, 140 * scale, 2)
    val = 1.0 - 0.55 * ring - 0.12 * pores + 0.025 * fine + 0.05 * drift
    light = np.array([0.80, 0.62, 0.42]) * uniform(rng, 0.96, 1.04)
    dark = np.array([0.42, 0.25, 0.13]) * uniform(rng, 0.95, 1.05)
    return np.clip(colorize(np.clip(val, 0.0, 1.1), dark, light), 0.0, 1.0)


def leather(rng: np.random.Generator, h: int, w: int, scale: float) -> Array:
    """Pebble-grain leather: Worley cells separated by grooves, lit from the top left."""
    y, x = grid(h, w)
    cell = 10.0 * scale * uniform(rng, 0.95, 1.05)
    wy = y + 3.0 * scale * fbm(rng, h, w, 30 * scale, 2)
    wx = x + 3.0 * scale * fbm(rng, h, w, 30 * scale, 2)
    cy = np.floor(wy / cell).astype(np.int64) + 2
    cx = np.floor(wx / cell).astype(np.int64) + 2
    gh = int(cy.max()) + 3
    gw = int(cx.max()) + 3
    py = (np.arange(gh)[:, None] + rng.uniform(0.1, 0.9, (gh, gw)) - 2) * cell
    px = (np.arange(gw)[None, :] + rng.uniform(0.1, 0.9, (gh, gw)) - 2) * cell
    f1 = np.full((h, w), np.inf, np.float32)
    f2 = np.full((h, w), np.inf, np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            qy = py[cy + dy, cx + dx]
            qx = px[cy + dy, cx + dx]
            d = np.sqrt((wy - qy) ** 2 + (wx - qx) ** 2).astype(np.float32)
            f2 = np.where(d < f1, f1, np.minimum(f2, d))
            f1 = np.minimum(f1, d)
    border = (f2 - f1) / cell
    height = smoothstep(0.0, 0.35, border) * (1.0 - 0.3 * (f1 / cell) ** 2)
    height = blur(height, 0.7 * scale)
    gy, gx = np.gradient(height)
    shade = -(gx + gy) * 3.0 / max(scale, 0.5)
    mottle = fbm(rng, h, w, 70 * scale, 3)
    val = 0.55 + 0.32 * height + 0.16 * shade + 0.04 * mottle
    val += 0.02 * rng.normal(size=(h, w)).astype(np.float32)
    light = np.array([0.56, 0.36, 0.22]) * uniform(rng, 0.95, 1.05)
    dark = np.array([0.12, 0.07, 0.04])
    return np.clip(colorize(np.clip(val, 0.0, 1.2), dark, light), 0.0, 1.0)
