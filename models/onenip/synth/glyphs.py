"""A tiny stroke font for printed marks (cap logos, PCB silkscreen, pill imprints).

Glyphs live in a box 1 wide and 1.4 high (y down); each is a list of polylines.
No font files are needed, so rendering is identical everywhere.
"""

from __future__ import annotations

import numpy as np

from ._core import Point

Stroke = list[Point]


def _arc(cx: float, cy: float, rx: float, ry: float, a0: float, a1: float, n: int = 10) -> Stroke:
    t = np.linspace(np.radians(a0), np.radians(a1), n)
    return list(zip((cx + rx * np.cos(t)).tolist(), (cy + ry * np.sin(t)).tolist()))


GLYPHS: dict[str, list[Stroke]] = {
    "A": [[(0, 1.4), (0.5, 0), (1, 1.4)], [(0.22, 0.85), (0.78, 0.85)]],
    "C": [_arc(0.55, 0.7, 0.5, 0.7, 45, 315, 14)],
    "D": [[(0, 0), (0, 1.4), (0.45, 1.4)] + _arc(0.45, 0.7, 0.55, 0.7, 90, -90, 10) + [(0, 0)]],
    "E": [[(1, 0), (0, 0), (0, 1.4), (1, 1.4)], [(0, 0.7), (0.75, 0.7)]],
    "F": [[(1, 0), (0, 0), (0, 1.4)], [(0, 0.7), (0.75, 0.7)]],
    "I": [[(0.5, 0), (0.5, 1.4)], [(0.2, 0), (0.8, 0)], [(0.2, 1.4), (0.8, 1.4)]],
    "K": [[(0, 0), (0, 1.4)], [(1, 0), (0, 0.8)], [(0.3, 0.55), (1, 1.4)]],
    "L": [[(0, 0), (0, 1.4), (1, 1.4)]],
    "N": [[(0, 1.4), (0, 0), (1, 1.4), (1, 0)]],
    "O": [_arc(0.5, 0.7, 0.5, 0.7, 0, 360, 18)],
    "P": [[(0, 1.4), (0, 0), (0.6, 0)] + _arc(0.6, 0.35, 0.4, 0.35, -90, 90, 8) + [(0, 0.7)]],
    "R": [[(0, 1.4), (0, 0), (0.6, 0)] + _arc(0.6, 0.35, 0.4, 0.35, -90, 90, 8) + [(0, 0.7)],
          [(0.45, 0.7), (1, 1.4)]],
    "S": [_arc(0.5, 0.35, 0.45, 0.35, -20, -270, 10)[::-1] + _arc(0.5, 1.05, 0.45, 0.35, -90, 160, 10)],
    "U": [[(0, 0), (0, 1.0)] + _arc(0.5, 1.0, 0.5, 0.4, 180, 0, 10) + [(1, 0)]],
    "V": [[(0, 0), (0.5, 1.4), (1, 0)]],
    "0": [_arc(0.5, 0.7, 0.5, 0.7, 0, 360, 18), [(0.8, 0.2), (0.2, 1.2)]],
    "1": [[(0.2, 0.3), (0.55, 0), (0.55, 1.4)], [(0.2, 1.4), (0.9, 1.4)]],
    "2": [_arc(0.5, 0.42, 0.45, 0.42, 190, 360, 8) + [(0.95, 0.5), (0, 1.4), (1, 1.4)]],
    "3": [_arc(0.5, 0.35, 0.45, 0.35, 200, 450, 10), _arc(0.5, 1.05, 0.45, 0.35, -90, 160, 10)],
    "4": [[(0.75, 1.4), (0.75, 0), (0, 1.0), (1, 1.0)]],
    "5": [[(0.95, 0), (0.1, 0), (0.05, 0.6)] + _arc(0.5, 0.95, 0.45, 0.45, 230, 490, 12)],
    "7": [[(0, 0), (1, 0), (0.35, 1.4)]],
    "8": [_arc(0.5, 0.35, 0.4, 0.35, 0, 360, 14), _arc(0.5, 1.05, 0.48, 0.35, 0, 360, 14)],
    "-": [[(0.1, 0.7), (0.9, 0.7)]],
    ".": [[(0.45, 1.35), (0.55, 1.35)]],
}


def text_strokes(
    text: str,
    x: float,
    y: float,
    height: float,
    angle: float = 0.0,
    cx: float | None = None,
    cy: float | None = None,
    spacing: float = 0.45,
) -> list[list[Stroke]]:
    """Strokes of ``text`` (one list per character) with its top-left at (x, y).

    The text is rotated by ``angle`` radians about (cx, cy) (its centre by default).
    Unknown characters and spaces leave a gap.
    """
    s = height / 1.4
    adv = (1.0 + spacing) * s
    total = adv * len(text) - spacing * s
    if cx is None:
        cx = x + total / 2
    if cy is None:
        cy = y + height / 2
    ca, sa = float(np.cos(angle)), float(np.sin(angle))
    out: list[list[Stroke]] = []
    for i, ch in enumerate(text):
        strokes = []
        for st in GLYPHS.get(ch, []):
            pts = []
            for gx, gy in st:
                px = x + i * adv + gx * s - cx
                py = y + gy * s - cy
                pts.append((cx + px * ca - py * sa, cy + px * sa + py * ca))
            strokes.append(pts)
        out.append(strokes)
    return out


def text_width(text: str, height: float, spacing: float = 0.45) -> float:
    s = height / 1.4
    return (1.0 + spacing) * s * len(text) - spacing * s
