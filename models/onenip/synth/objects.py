"""Procedural inspected objects: a round cap seen from above, a screw, a PCB, a pill.

Each object class draws one instance on a square canvas: ``render(rng, n, scale,
defect)`` returns a float32 (n, n, C) image and, for a defect, its alpha map. The
instance parameters (including their noise fields) are drawn first, so the same
instance can be drawn twice, as made and with a geometric or print defect, and
the mask of such a defect is exactly where the two drawings differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from . import defects as D
from ._core import (
    SUPERSAMPLE,
    Array,
    blob_points,
    blur,
    draw_alpha,
    erode,
    fbm,
    grid,
    polygon_alpha,
    smoothstep,
    uniform,
)
from .glyphs import Stroke, text_strokes, text_width

Render = tuple[Array, Array | None]

PRINT_ERRORS = ("missing_char", "dropout", "double")


def strokes_alpha(h: int, w: int, strokes: list[Stroke], width: float) -> Array:
    def fn(d: ImageDraw.ImageDraw, s: float) -> None:
        lw = max(int(round(width * s)), 1)
        r = lw / 2.0
        for st in strokes:
            sp = [(x * s, y * s) for x, y in st]
            if len(sp) > 1:
                d.line(sp, fill=255, width=lw, joint="curve")
            for x, y in sp:
                d.ellipse((x - r, y - r, x + r, y + r), fill=255)

    return draw_alpha(h, w, fn)


def _shift(a: Array, dx: int, dy: int) -> Array:
    out = np.zeros_like(a)
    h, w = a.shape
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[yd, xd] = a[ys, xs]
    return out


def print_alpha(
    rng: np.random.Generator,
    h: int,
    w: int,
    chars: list[list[Stroke]],
    width: float,
    scale: float,
    error: str | None,
) -> Array:
    """Ink coverage of a printed text; ``error`` makes a plausible misprint of it."""
    if error == "missing_char":
        k = int(rng.integers(len(chars)))
        return strokes_alpha(h, w, [s for i, c in enumerate(chars) if i != k for s in c], width)
    clean = strokes_alpha(h, w, [s for c in chars for s in c], width)
    if error is None:
        return clean
    if error == "dropout":
        ys, xs = np.nonzero(clean > 0.5)
        i = int(rng.integers(len(ys)))
        r = uniform(rng, 5.0, 8.0) * scale
        hole = polygon_alpha(h, w, blob_points(rng, xs[i] + 0.5, ys[i] + 0.5, r, 1.3, 0.3))
        return (clean * (1.0 - hole)).astype(np.float32)
    # "double": a second, fainter and offset impression (print head bounce).
    ang = uniform(rng, 0, 2 * np.pi)
    dist = uniform(rng, 3.0, 5.0) * scale
    ghost = _shift(clean, int(round(dist * np.cos(ang))), int(round(dist * np.sin(ang))))
    return np.maximum(clean, uniform(rng, 0.6, 0.8) * ghost).astype(np.float32)


def _shadow(fg: Array, dx: float, dy: float, sigma: float) -> Array:
    return blur(_shift(fg, int(round(dx)), int(round(dy))), sigma)


def _center_region(n: int, scale: float) -> Array:
    return D.region_box(n, n, int(0.14 * n))


# --------------------------------------------------------------------------- cap


@dataclass
class Cap:
    """A red plastic bottle cap seen from above on a dark conveyor belt."""

    name: str = "cap"
    channels: int = 3
    defects: tuple[str, ...] = ("scratch", "chip", "print_error")
    text: str = "ONIP"

    def _params(self, rng: np.random.Generator, n: int, scale: float) -> dict[str, Any]:
        return {
            "R": 92.0 * scale * uniform(rng, 0.985, 1.015),
            "angle": uniform(rng, -0.2, 0.2),
            "color": np.array([0.74, 0.13, 0.10]) * uniform(rng, 0.95, 1.05),
            "phase": uniform(rng, 0, 2 * np.pi),
            "bg": fbm(rng, n, n, 40 * scale, 3),
            "grain": fbm(rng, n, n, 3 * scale, 2),
        }

    def _draw(self, p: dict[str, Any], n: int, scale: float, ink: Array, cut: Array | None) -> tuple[Array, Array]:
        y, x = grid(n, n)
        c = n / 2.0
        dx, dy = x - c, y - c
        r = np.sqrt(dx * dx + dy * dy) + 1e-6
        R = p["R"]
        disk = np.clip(R - r + 0.5, 0.0, 1.0)
        if cut is not None:
            disk = disk * (1.0 - cut)
        bg = np.array([0.23, 0.24, 0.25])[None, None] * (1.0 + 0.035 * p["bg"])[..., None]
        bg = bg * (1.0 - 0.55 * _shadow(disk, 3 * scale, 4 * scale, 4 * scale))[..., None]
        ndot = (-dx - dy) / (r * 1.414)
        t = smoothstep(0.86 * R, R, r)
        shade = 0.93 + 0.05 * (-dx - dy) / (R * 1.4) + 0.4 * t * ndot - 0.25 * t * t
        knurl = smoothstep(0.93 * R, 0.97 * R, r) * np.cos(96 * np.arctan2(dy, dx) + p["phase"])
        shade = shade + 0.08 * knurl
        ring = np.exp(-(((r - 0.68 * R) / (1.3 * scale)) ** 2))
        ring2 = np.exp(-(((r - 0.68 * R - 2.2 * scale) / (1.3 * scale)) ** 2))
        shade = shade + 0.16 * (ring - ring2) * ndot * 2.0 + 0.015 * p["grain"]
        body = p["color"][None, None] * shade[..., None]
        body = body * (1.0 - ink[..., None] * 0.92) + np.array([0.94, 0.93, 0.90]) * ink[..., None] * 0.92
        img = bg * (1.0 - disk[..., None]) + body * disk[..., None]
        return np.clip(img, 0.0, 1.0).astype(np.float32), disk.astype(np.float32)

    def _chars(self, p: dict[str, Any], n: int, scale: float) -> list[list[Stroke]]:
        hgt = 0.2 * p["R"]
        tw = text_width(self.text, hgt)
        c = n / 2.0
        return text_strokes(self.text, c - tw / 2, c - hgt / 2 - 0.05 * p["R"], hgt, p["angle"], c, c)

    def render(self, rng: np.random.Generator, n: int, scale: float, defect: str | None) -> Render:
        p = self._params(rng, n, scale)
        chars = self._chars(p, n, scale)
        c = n / 2.0
        ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
        bar = [(c + ox * ca - 0.2 * p["R"] * sa, c + ox * sa + 0.2 * p["R"] * ca)
               for ox in (-0.3 * p["R"], 0.3 * p["R"])]
        chars = chars + [[bar]]
        width = 2.4 * scale
        ink = print_alpha(rng, n, n, chars, width, scale, None)
        clean, disk = self._draw(p, n, scale, ink, None)
        if defect is None:
            return clean, None
        if defect == "print_error":
            bad = print_alpha(rng, n, n, chars, width, scale, str(rng.choice(PRINT_ERRORS)))
            img, _ = self._draw(p, n, scale, bad, None)
            return img, D.diff_alpha(clean, img)
        if defect == "chip":
            phi = uniform(rng, 0, 2 * np.pi)
            rad = uniform(rng, 9.0, 13.0) * scale
            cx = c + (p["R"] + 0.2 * rad) * np.cos(phi)
            cy = c + (p["R"] + 0.2 * rad) * np.sin(phi)
            cut = polygon_alpha(n, n, blob_points(rng, cx, cy, rad, uniform(rng, 0.8, 1.3), 0.5))
            img, _ = self._draw(p, n, scale, ink, cut)
            alpha = np.clip(disk * cut * 1.25, 0.0, 1.0)
            alpha = np.maximum(alpha, D.diff_alpha(clean, img, 0.035, 0))  # incl. the moved shadow
            return img, alpha.astype(np.float32)
        if defect == "scratch":
            y, x = grid(n, n)
            inner = (np.hypot(x - c, y - c) < 0.8 * p["R"]).astype(np.float32)
            col = 0.45 * p["color"] + 0.55 * np.array([0.95, 0.9, 0.88])
            return D.scratch(rng, clean, inner, scale, color=col, strength=0.8,
                             width=(2.0, 3.0), length=(55, 90), count=int(rng.integers(1, 3)))
        raise ValueError(f"cap has no defect {defect!r}")


# --------------------------------------------------------------------------- screw


@dataclass
class Screw:
    """A slotted pan-head machine screw seen from the side on a light backdrop (grayscale)."""

    name: str = "screw"
    channels: int = 1
    defects: tuple[str, ...] = ("bent_tip", "damaged_thread", "scratch")

    def _params(self, rng: np.random.Generator, n: int, scale: float) -> dict[str, Any]:
        return {
            "L": 190.0 * scale * uniform(rng, 0.99, 1.01),
            "Lh": 34.0 * scale,
            "Rh": 23.0 * scale,
            "Rs": 11.0 * scale * uniform(rng, 0.98, 1.02),
            "pitch": 7.6 * scale,
            "depth": 2.2 * scale,
            "angle": uniform(rng, -0.12, 0.12),
            "phase": uniform(rng, 0.0, 1.0),
            "albedo": uniform(rng, 0.9, 1.1),
            "bg": fbm(rng, n, n, 60 * scale, 2),
            "grain": fbm(rng, n, n, 2 * scale, 1),
        }

    def _draw(
        self,
        p: dict[str, Any],
        n: int,
        scale: float,
        bend: float = 0.0,
        flat: tuple[float, float] | None = None,
    ) -> tuple[Array, Array, Array]:
        y, x = grid(n, n)
        c = n / 2.0
        L, Lh, Rh, Rs = p["L"], p["Lh"], p["Rh"], p["Rs"]
        ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
        u = (x - c) * ca + (y - c) * sa + L / 2  # along the axis, 0 at the head's crown
        v = -(x - c) * sa + (y - c) * ca
        ub = L - 0.3 * L
        if bend:
            t = np.clip(u - ub, 0.0, None)
            v = v - bend * (t / (L - ub)) ** 2
        Lt = 0.12 * L
        neck = Lh + 0.16 * L
        # Thread phase: slanted crests.
        ph = (u + 0.35 * v) / p["pitch"] + p["phase"]
        crest = 0.5 + 0.5 * np.cos(2 * np.pi * ph)
        threaded = smoothstep(neck, neck + 3 * scale, u)
        if flat is not None:
            threaded = threaded * (1.0 - smoothstep(flat[0] - 1, flat[0] + 1, u)
                                   * smoothstep(flat[1] + 1, flat[1] - 1, u))
        r_shaft = Rs + p["depth"] * (crest - 0.5) * threaded
        if flat is not None:
            inflat = smoothstep(flat[0] - 1, flat[0] + 1, u) * smoothstep(flat[1] + 1, flat[1] - 1, u)
            r_shaft = r_shaft - 0.9 * p["depth"] * inflat
        taper = np.clip((u - (L - Lt)) / Lt, 0.0, 1.0)
        r_shaft = r_shaft * (1.0 - 0.75 * taper)
        hu = np.clip((Lh - u) / Lh, 0.0, 1.0)
        r_head = Rh * np.clip(1.0 - hu**2.2, 0.0, 1.0) ** 0.4
        r = np.where(u < Lh, r_head, r_shaft)
        inside = np.clip(r - np.abs(v) + 0.5, 0.0, 1.0) * np.clip(u + 0.5, 0, 1) * np.clip(L - u + 0.5, 0, 1)
        nv = np.clip(v / np.maximum(r, 1e-3), -1.0, 1.0)
        diffuse = np.sqrt(1.0 - nv * nv)
        spec = np.exp(-(((nv + 0.4) / 0.16) ** 2))
        metal = 0.16 + 0.32 * diffuse * p["albedo"] + 0.45 * spec
        metal = metal * np.where(u < Lh, 1.0, 0.62 + 0.38 * (threaded * crest + (1 - threaded)))
        slot = (u < 0.4 * Lh) & (np.abs(v) < 0.14 * Rh)
        metal = np.where(slot, metal * 0.35, metal)
        metal = metal + 0.02 * p["grain"]
        bg = 0.80 + 0.012 * p["bg"] + 0.04 * (y - c) / n
        bg = bg * (1.0 - 0.3 * _shadow(inside, 4 * scale, 5 * scale, 5 * scale))
        img = bg * (1.0 - inside) + metal * inside
        return np.clip(img, 0.0, 1.0)[..., None].astype(np.float32), inside.astype(np.float32), u

    def render(self, rng: np.random.Generator, n: int, scale: float, defect: str | None) -> Render:
        p = self._params(rng, n, scale)
        clean, fg, u = self._draw(p, n, scale)
        if defect is None:
            return clean, None
        L = p["L"]
        if defect == "bent_tip":
            bend = float(rng.choice([-1.0, 1.0])) * uniform(rng, 12.0, 20.0) * scale
            img, fg2, _ = self._draw(p, n, scale, bend=bend)
            alpha = np.maximum(fg, fg2) * (u >= L * 0.7 + 2 * scale)
            alpha = np.maximum(alpha, D.diff_alpha(clean, img, 0.035, 0))  # incl. the moved shadow
            return img, alpha.astype(np.float32)
        if defect == "damaged_thread":
            a = uniform(rng, p["Lh"] + 0.22 * L, L - 0.25 * L)
            b = a + uniform(rng, 16.0, 26.0) * scale
            img, fg2, _ = self._draw(p, n, scale, flat=(a, b))
            band = (u >= a - 1.5) & (u <= b + 1.5)
            alpha = (np.maximum(fg, fg2) > 0.2) * band
            # Scuffs on the flattened crests.
            scuff = 0.12 * fbm(rng, n, n, 3 * scale, 2)[..., None] * alpha[..., None]
            return np.clip(img + scuff, 0, 1).astype(np.float32), alpha.astype(np.float32)
        if defect == "scratch":
            region = erode((fg > 0.5).astype(np.float32), max(int(3 * scale), 1))
            return D.scratch(rng, clean, region, scale, color=[0.97], strength=0.85,
                             width=(2.2, 3.0), length=(45, 70), heading=p["angle"] + uniform(rng, -0.12, 0.12))
        raise ValueError(f"screw has no defect {defect!r}")


# --------------------------------------------------------------------------- PCB


@dataclass
class Part:
    kind: str  # "R" or "C"
    x: float
    y: float
    vertical: bool
    label: str


class Pcb:
    """A populated circuit board: an SOIC chip, passives, traces, vias and silkscreen."""

    name = "pcb"
    channels = 3
    defects: tuple[str, ...] = ("missing_component", "print_error", "contamination")

    def __init__(self, design: np.random.Generator) -> None:
        # Layout in reference pixels relative to the canvas centre (fixed for the class).
        self.ic = (float(design.uniform(-12, 12)), float(design.uniform(-10, 10)))
        slots = [(-78, -62), (0, -72), (78, -62), (-80, 58), (0, 70), (80, 58), (-92, 0), (92, 0)]
        order = design.permutation(len(slots))[:6]
        parts: list[Part] = []
        nr = nc = 0
        for k in order:
            sx, sy = slots[int(k)]
            kind = "R" if design.random() < 0.55 else "C"
            if kind == "R":
                nr += 1
                label = f"R{nr}"
            else:
                nc += 1
                label = f"C{nc}"
            parts.append(Part(kind, sx + float(design.uniform(-6, 6)), sy + float(design.uniform(-5, 5)),
                              bool(abs(sx) > 85), label))
        self.parts = parts
        self.vias = [(float(design.uniform(-110, 110)), float(design.uniform(-110, 110))) for _ in range(7)]
        self.hole = (float(design.choice([-1, 1])) * 112, float(design.choice([-1, 1])) * 112)
        self.traces = []
        for i, pt in enumerate(parts):
            pin_x = self.ic[0] + (-27 + 9 * (i % 7))
            pin_y = self.ic[1] + (-30 if pt.y < self.ic[1] else 30)
            px = pt.x + (0 if pt.vertical else (-11 if pt.x > pin_x else 11))
            py = pt.y + ((-11 if pt.y > pin_y else 11) if pt.vertical else 0)
            self.traces.append([(px, py), (px, (py + pin_y) / 2), (pin_x, (py + pin_y) / 2), (pin_x, pin_y)])
        for vx, vy in self.vias[:4]:
            ex = 150.0 if vx > 0 else -150.0
            self.traces.append([(vx, vy), (ex, vy)])

    def _params(self, rng: np.random.Generator, n: int, scale: float) -> dict[str, Any]:
        return {
            "mask": np.array([0.10, 0.36, 0.19]) * uniform(rng, 0.94, 1.06),
            "solder": uniform(rng, 0.72, 0.85),
            "jit": rng.normal(0.0, 0.5, (len(self.parts), 2)),
            "tex": fbm(rng, n, n, 30 * scale, 3),
            "grain": fbm(rng, n, n, 2 * scale, 1),
        }

    def _silk(self, n: int, scale: float, p: dict[str, Any]) -> tuple[list[list[Stroke]], list[Stroke]]:
        """Silkscreen: labels (one entry per character) and outlines."""
        c = n / 2.0
        chars: list[list[Stroke]] = []
        outlines: list[Stroke] = []

        def P(xr: float, yr: float) -> tuple[float, float]:
            return (c + xr * scale, c + yr * scale)

        for i, pt in enumerate(self.parts):
            jx, jy = p["jit"][i]
            hw, hh = (9, 17) if pt.vertical else (17, 9)
            x0, y0 = pt.x + jx * 0.3, pt.y + jy * 0.3
            outlines.append([P(x0 - hw, y0 - hh), P(x0 + hw, y0 - hh), P(x0 + hw, y0 + hh),
                             P(x0 - hw, y0 + hh), P(x0 - hw, y0 - hh)])
            th = 9.0 * scale
            lx, ly = P(x0 - text_width(pt.label, 9) / 2, y0 - hh - 12)
            chars += text_strokes(pt.label, lx, ly, th)
        ix, iy = self.ic
        outlines.append([P(ix - 38, iy - 24), P(ix + 38, iy - 24), P(ix + 38, iy + 24),
                         P(ix - 38, iy + 24), P(ix - 38, iy - 24)])
        lx, ly = P(ix - 38 - 22, iy - 5)
        chars += text_strokes("U1", lx, ly, 10 * scale)
        hx, hy = self.hole
        tx = -60 if hx > 0 else 10
        ty = -112 if hy > 0 else 102
        lx, ly = P(tx, ty)
        chars += text_strokes("ONIP-2", lx, ly, 10 * scale)
        return chars, outlines

    def _draw(self, p: dict[str, Any], n: int, scale: float, silk: Array, omit: int | None) -> Array:
        s = SUPERSAMPLE
        c = n / 2.0
        k = scale * s

        def P(xr: float, yr: float) -> tuple[float, float]:
            return ((c + xr * scale) * s, (c + yr * scale) * s)

        def rect(d: ImageDraw.ImageDraw, x: float, y: float, hw: float, hh: float, fill: tuple) -> None:
            x0, y0 = P(x - hw, y - hh)
            x1, y1 = P(x + hw, y + hh)
            d.rectangle((x0, y0, x1, y1), fill=fill)

        def col(v: Any) -> tuple[int, int, int]:
            a = np.clip(np.asarray(v, np.float64), 0, 1)
            return (int(a[0] * 255 + 0.5), int(a[1] * 255 + 0.5), int(a[2] * 255 + 0.5))

        maskc = p["mask"]
        im = Image.new("RGB", (n * s, n * s), col(maskc))
        d = ImageDraw.Draw(im)
        trace_c = col(maskc * 1.45 + np.array([0.03, 0.02, 0.0]))
        for tr in self.traces:
            d.line([P(x, y) for x, y in tr], fill=trace_c, width=int(round(3.2 * k)), joint="curve")
        gold = col([0.80, 0.63, 0.30])
        for vx, vy in self.vias:
            x, y = P(vx, vy)
            d.ellipse((x - 3.4 * k, y - 3.4 * k, x + 3.4 * k, y + 3.4 * k), fill=gold)
            d.ellipse((x - 1.6 * k, y - 1.6 * k, x + 1.6 * k, y + 1.6 * k), fill=(25, 25, 22))
        hx, hy = self.hole
        x, y = P(hx, hy)
        d.ellipse((x - 13 * k, y - 13 * k, x + 13 * k, y + 13 * k), fill=gold)
        d.ellipse((x - 8.5 * k, y - 8.5 * k, x + 8.5 * k, y + 8.5 * k), fill=(12, 12, 12))
        sol = p["solder"]
        solder = col([sol, sol, sol * 0.97])
        # IC: pins, body, marking, pin-1 dot.
        ix, iy = self.ic
        for side in (-1, 1):
            for j in range(7):
                px = ix - 27 + 9 * j
                rect(d, px, iy + side * 26.5, 2.3, 5.5, solder)
        rect(d, ix, iy, 34, 21, (28, 28, 30))
        x, y = P(ix - 27, iy + 13)
        d.ellipse((x - 2.2 * k, y - 2.2 * k, x + 2.2 * k, y + 2.2 * k), fill=(60, 60, 62))
        # Passives: pads with solder, then the body.
        for i, pt in enumerate(self.parts):
            jx, jy = p["jit"][i]
            x0, y0 = pt.x + jx, pt.y + jy
            for e in (-1, 1):
                ex, ey = (0.0, e * 10.5) if pt.vertical else (e * 10.5, 0.0)
                rect(d, x0 + ex, y0 + ey, 5.0 if not pt.vertical else 5.5, 5.5 if not pt.vertical else 5.0,
                     gold if i == omit else solder)
            if i == omit:
                continue
            hw, hh = (5.0, 11.0) if pt.vertical else (11.0, 5.0)
            body = (35, 33, 32) if pt.kind == "R" else (176, 140, 92)
            rect(d, x0, y0, hw, hh, solder)
            if pt.vertical:
                rect(d, x0, y0, hw, hh - 3.0, body)
            else:
                rect(d, x0, y0, hw - 3.0, hh, body)
        img = np.asarray(im.reduce(s), dtype=np.float32) / 255.0
        img = img * (1.0 + 0.05 * p["tex"][..., None]) + 0.012 * p["grain"][..., None]
        white = np.array([0.93, 0.93, 0.88], np.float32)
        img = img * (1.0 - 0.9 * silk[..., None]) + white * 0.9 * silk[..., None]
        return np.clip(img, 0.0, 1.0).astype(np.float32)

    def render(self, rng: np.random.Generator, n: int, scale: float, defect: str | None) -> Render:
        p = self._params(rng, n, scale)
        chars, outlines = self._silk(n, scale, p)
        out_a = strokes_alpha(n, n, outlines, 1.3 * scale)
        width = 1.3 * scale
        silk = np.maximum(out_a, print_alpha(rng, n, n, chars, width, scale, None))
        clean = self._draw(p, n, scale, silk, None)
        if defect is None:
            return clean, None
        if defect == "missing_component":
            img = self._draw(p, n, scale, silk, int(rng.integers(len(self.parts))))
            return img, D.diff_alpha(clean, img)
        if defect == "print_error":
            err = str(rng.choice(PRINT_ERRORS))
            bad = np.maximum(out_a, print_alpha(rng, n, n, chars, width, scale, err))
            img = self._draw(p, n, scale, bad, None)
            return img, D.diff_alpha(clean, img)
        if defect == "contamination":
            region = _center_region(n, scale)
            if rng.random() < 0.5:
                return D.particles(rng, clean, region, scale, colors=[[0.78, 0.78, 0.76]],
                                   count=(2, 5), radius=(2.2, 3.4), spread=10, shiny=0.25)
            return D.stain(rng, clean, region, scale, tint=[0.55, 0.35, 0.1], strength=(0.5, 0.7),
                           radius=(7, 12), ring=0.5)
        raise ValueError(f"pcb has no defect {defect!r}")


# --------------------------------------------------------------------------- pill


@dataclass
class Pill:
    """A white oblong tablet with red speckles and an engraved imprint, on black."""

    name: str = "pill"
    channels: int = 3
    defects: tuple[str, ...] = ("crack", "contamination", "print_error")
    text: str = "NP"

    def _params(self, rng: np.random.Generator, n: int, scale: float) -> dict[str, Any]:
        a = 88.0 * scale * uniform(rng, 0.985, 1.015)
        b = 40.0 * scale * uniform(rng, 0.985, 1.015)
        ang = uniform(rng, -0.08, 0.08)
        m = int(rng.integers(25, 45))
        t = rng.uniform(0, 2 * np.pi, m)
        rr = np.sqrt(rng.uniform(0, 0.85, m))
        sx = rr * np.cos(t) * a
        sy = rr * np.sin(t) * b
        specks = [(float(x), float(y), float(rng.uniform(0.5, 1.3) * scale), float(rng.uniform(0.35, 0.9)))
                  for x, y in zip(sx, sy)]
        return {"a": a, "b": b, "angle": ang, "specks": specks,
                "tone": uniform(rng, 0.96, 1.02), "bg": fbm(rng, n, n, 30 * scale, 2),
                "grain": fbm(rng, n, n, 2.5 * scale, 2)}

    def _geom(self, p: dict[str, Any], n: int) -> tuple[Array, Array, Array]:
        y, x = grid(n, n)
        c = n / 2.0
        ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
        u = (x - c) * ca + (y - c) * sa
        v = -(x - c) * sa + (y - c) * ca
        return u, v, (np.abs(u / p["a"]) ** 2.6 + np.abs(v / p["b"]) ** 2.0)

    def _draw(self, p: dict[str, Any], n: int, scale: float, ink: Array) -> tuple[Array, Array]:
        u, v, e = self._geom(p, n)
        fg = np.clip((1.0 - e) * p["b"] * 0.5 + 0.5, 0.0, 1.0)
        nz = np.sqrt(np.clip(1.0 - e, 0.0, 1.0))
        hl = np.exp(-(((u + 0.3 * p["a"]) / (0.35 * p["a"])) ** 2 + ((v + 0.45 * p["b"]) / (0.3 * p["b"])) ** 2))
        shade = (0.66 + 0.3 * nz**0.6 + 0.06 * hl) * p["tone"] + 0.012 * p["grain"]
        base = np.array([0.93, 0.91, 0.87])[None, None] * shade[..., None]
        c = n / 2.0
        ca, sa = np.cos(p["angle"]), np.sin(p["angle"])

        def sp(d: ImageDraw.ImageDraw, s: float) -> None:
            for sx, sy, r, o in p["specks"]:
                X = (c + sx * ca - sy * sa) * s
                Y = (c + sx * sa + sy * ca) * s
                d.ellipse((X - r * s, Y - r * s, X + r * s, Y + r * s), fill=int(o * 255))

        speck = draw_alpha(n, n, sp)
        red = np.array([0.72, 0.30, 0.26])
        body = base * (1.0 - speck[..., None]) + red * shade[..., None] * speck[..., None]
        body = body * (1.0 - 0.5 * ink[..., None])
        bg = (0.07 + 0.012 * p["bg"])[..., None] * np.array([1.0, 1.0, 1.05])
        img = bg * (1.0 - fg[..., None]) + body * fg[..., None]
        return np.clip(img, 0.0, 1.0).astype(np.float32), fg.astype(np.float32)

    def render(self, rng: np.random.Generator, n: int, scale: float, defect: str | None) -> Render:
        p = self._params(rng, n, scale)
        c = n / 2.0
        hgt = 0.6 * p["b"]
        tw = text_width(self.text, hgt, 0.6)
        chars = text_strokes(self.text, c - tw / 2, c - hgt / 2, hgt, p["angle"], c, c, 0.6)
        width = 2.6 * scale
        ink = print_alpha(rng, n, n, chars, width, scale, None)
        clean, fg = self._draw(p, n, scale, ink)
        if defect is None:
            return clean, None
        region = (fg > 0.99).astype(np.float32) * _center_region(n, scale)
        if defect == "print_error":
            bad = print_alpha(rng, n, n, chars, width, scale, str(rng.choice(PRINT_ERRORS)))
            img, _ = self._draw(p, n, scale, bad)
            return img, D.diff_alpha(clean, img)
        if defect == "crack":
            # Tablets crack across their short axis: start at the rim, run inwards.
            u0 = uniform(rng, -0.55, 0.55) * p["a"]
            side = float(rng.choice([-1.0, 1.0]))
            v0 = side * (p["b"] * (1.0 - abs(u0 / p["a"]) ** 2.6) ** 0.5 - 2.0 * scale)
            ca, sa = np.cos(p["angle"]), np.sin(p["angle"])
            start = (c + u0 * ca - v0 * sa, c + u0 * sa + v0 * ca)
            head = float(np.arctan2(-side * ca, side * sa)) + float(rng.normal(0.0, 0.3))
            return D.crack(rng, clean, region, scale, color=[0.33, 0.31, 0.30], strength=0.85,
                           length=(45, 70), width=2.8, start=start, heading=head)
        if defect == "contamination":
            if rng.random() < 0.5:
                return D.particles(rng, clean, region, scale, colors=[[0.12, 0.09, 0.07], [0.3, 0.2, 0.1]],
                                   count=(1, 3), radius=(3.0, 5.0), spread=6)
            return D.stain(rng, clean, region, scale, tint=[0.75, 0.55, 0.15], strength=(0.55, 0.75),
                           radius=(8, 12), ring=0.3)
        raise ValueError(f"pill has no defect {defect!r}")
