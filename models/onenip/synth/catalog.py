"""The benchmark's classes, their defect types, and single-image rendering."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

import numpy as np

from . import defects as D
from . import objects, textures
from ._core import Array, make_rng, to_uint8, uniform
from .variation import Jitter, canvas_size, expose, place

REFERENCE_SIZE = 256
MIN_MASK_PIXELS = 12


class Product(Protocol):
    name: str
    channels: int
    defects: tuple[str, ...]

    def render(
        self, rng: np.random.Generator, n: int, scale: float, defect: str | None
    ) -> tuple[Array, Array | None]: ...


TextureFn = Callable[[np.random.Generator, int, int, float], Array]
DefectFn = Callable[[np.random.Generator, Array, Array, float], tuple[Array, Array]]


class TextureProduct:
    """A flat material filling the frame; defects are painted anywhere on it."""

    def __init__(self, name: str, fn: TextureFn, channels: int, defects: dict[str, DefectFn]) -> None:
        self.name = name
        self.fn = fn
        self.channels = channels
        self._defects = defects
        self.defects = tuple(defects)

    def render(
        self, rng: np.random.Generator, n: int, scale: float, defect: str | None
    ) -> tuple[Array, Array | None]:
        img = self.fn(rng, n, n, scale)
        if defect is None:
            return img, None
        region = D.region_box(n, n, int(0.2 * n))
        return self._defects[defect](rng, img, region, scale)


def _choice(rng: np.random.Generator, options: list) -> object:
    return options[int(rng.integers(len(options)))]


def _fabric() -> TextureProduct:
    return TextureProduct("fabric", textures.fabric, 3, {
        "hole": lambda r, i, g, s: D.hole(r, i, g, s, inside=[0.06, 0.05, 0.05], rim=0.35,
                                          radius=(6.0, 10.0)),
        "stain": lambda r, i, g, s: D.stain(r, i, g, s, tint=_choice(r, [[0.45, 0.3, 0.18], [0.3, 0.3, 0.32],
                                                                         [0.6, 0.2, 0.2]]),
                                            strength=(0.6, 0.8), radius=(11, 18)),
        "thread": lambda r, i, g, s: D.fiber(r, i, g, s, color=_choice(r, [[0.1, 0.12, 0.35], [0.5, 0.08, 0.08],
                                                                           [0.08, 0.08, 0.08]]),
                                             width=(1.8, 2.6), length=(55, 95)),
    })


def _metal() -> TextureProduct:
    def scratch(r: np.random.Generator, i: Array, g: Array, s: float) -> tuple[Array, Array]:
        bright = r.random() < 0.6
        return D.scratch(r, i, g, s, color=[0.92] if bright else [0.18], strength=0.7,
                         width=(2.0, 3.2), length=(55, 100), count=int(r.integers(1, 3)),
                         heading=uniform(r, 0.5, 1.2) * float(r.choice([-1.0, 1.0])))

    def contamination(r: np.random.Generator, i: Array, g: Array, s: float) -> tuple[Array, Array]:
        if r.random() < 0.5:
            return D.particles(r, i, g, s, colors=[[0.12], [0.25]], count=(3, 7), radius=(1.5, 3.2))
        return D.stain(r, i, g, s, tint=[0.35], strength=(0.4, 0.6), radius=(9, 15), ring=0.6)

    return TextureProduct("metal", textures.brushed_metal, 1, {
        "scratch": scratch,
        "dent": lambda r, i, g, s: D.dent(r, i, g, s, depth=0.2, radius=(10.0, 16.0)),
        "contamination": contamination,
    })


def _wood() -> TextureProduct:
    def crack(r: np.random.Generator, i: Array, g: Array, s: float) -> tuple[Array, Array]:
        head = uniform(r, -0.25, 0.25) + float(r.choice([0.0, np.pi]))
        return D.crack(r, i, g, s, color=[0.16, 0.09, 0.04], strength=0.9, length=(45, 80),
                       width=3.2, heading=head)

    return TextureProduct("wood", textures.wood, 3, {
        "crack": crack,
        "hole": lambda r, i, g, s: D.hole(r, i, g, s, inside=[0.12, 0.07, 0.03], rim=0.3,
                                          radius=(4.0, 7.5)),
        "scratch": lambda r, i, g, s: D.scratch(r, i, g, s, color=[0.97, 0.9, 0.78], strength=0.9,
                                                width=(2.0, 3.0), length=(50, 90),
                                                count=int(r.integers(1, 3))),
    })


def _leather() -> TextureProduct:
    return TextureProduct("leather", textures.leather, 3, {
        "cut": lambda r, i, g, s: D.scratch(r, i, g, s, color=[0.05, 0.03, 0.02], strength=0.9,
                                            width=(2.2, 3.2), length=(50, 80), halo=0.0),
        "stain": lambda r, i, g, s: D.stain(r, i, g, s, tint=_choice(r, [[0.3, 0.25, 0.22], [1.9, 1.8, 1.6]]),
                                            strength=(0.6, 0.8), radius=(11, 17), ring=0.5),
        "hole": lambda r, i, g, s: D.hole(r, i, g, s, inside=[0.03, 0.02, 0.02], rim=0.3,
                                          radius=(3.5, 6.0)),
    })


@dataclass(frozen=True)
class ClassSpec:
    name: str
    kind: str  # "texture" or "object"
    build: Callable[[np.random.Generator], Product]
    defects: tuple[str, ...]
    channels: int
    jitter: Jitter = field(default_factory=Jitter)
    description: str = ""


_TEXTURE_JITTER = Jitter(shift=0.05, rotation_deg=4.0, gradient=0.12)
_OBJECT_JITTER = Jitter(shift=0.03, rotation_deg=5.0, gradient=0.10, vignette=0.12)

CLASSES: dict[str, ClassSpec] = {
    spec.name: spec
    for spec in (
        ClassSpec("fabric", "texture", lambda d: _fabric(), ("hole", "stain", "thread"), 3,
                  _TEXTURE_JITTER, "beige plain-weave fabric"),
        ClassSpec("metal", "texture", lambda d: _metal(), ("scratch", "dent", "contamination"), 1,
                  _TEXTURE_JITTER, "brushed steel, grayscale"),
        ClassSpec("wood", "texture", lambda d: _wood(), ("crack", "hole", "scratch"), 3,
                  _TEXTURE_JITTER, "flat-sawn light wood"),
        ClassSpec("leather", "texture", lambda d: _leather(), ("cut", "stain", "hole"), 3,
                  _TEXTURE_JITTER, "brown pebble-grain leather"),
        ClassSpec("cap", "object", lambda d: objects.Cap(), ("scratch", "chip", "print_error"), 3,
                  _OBJECT_JITTER, "red bottle cap seen from above, printed logo"),
        ClassSpec("screw", "object", lambda d: objects.Screw(), ("bent_tip", "damaged_thread", "scratch"), 1,
                  Jitter(shift=0.03, rotation_deg=5.0, gradient=0.08), "pan-head screw, side view, grayscale"),
        ClassSpec("pcb", "object", objects.Pcb, ("missing_component", "print_error", "contamination"), 3,
                  Jitter(shift=0.03, rotation_deg=2.0, gradient=0.10, vignette=0.08),
                  "populated circuit board with silkscreen"),
        ClassSpec("pill", "object", lambda d: objects.Pill(), ("crack", "contamination", "print_error"), 3,
                  _OBJECT_JITTER, "white speckled tablet with imprint on black"),
    )
}


@lru_cache(maxsize=64)
def product(name: str, seed: int) -> Product:
    """The class's product design for a data set seed (e.g. the PCB layout)."""
    spec = CLASSES[name]
    return spec.build(make_rng(seed, name, "design"))


def _render(
    name: str, seed: int, split: str, index: int, defect: str | None, size: int, twin: bool
) -> tuple[Array, Array | None, Array | None]:
    spec = CLASSES[name]
    if defect is not None and defect not in spec.defects:
        raise ValueError(f"class {name!r} has no defect type {defect!r} (has {', '.join(spec.defects)})")
    prod = product(name, seed)
    n = canvas_size(size)
    scale = size / REFERENCE_SIZE
    for attempt in range(8):
        key = (seed, name, split, defect or "good", index, attempt)
        # The instance (and its defect) and the acquisition draw from separate streams,
        # so the same part can be re-rendered without its defect under identical conditions.
        img, alpha = prod.render(make_rng(*key), n, scale, defect)
        acq = make_rng(*key, "acquisition")
        img, alpha = place(acq, img, alpha, size, spec.jitter)
        img = expose(acq, img, spec.jitter)
        if alpha is None:
            return to_uint8(img), None, None
        mask = alpha >= D.MASK_LEVEL
        if int(mask.sum()) >= MIN_MASK_PIXELS * scale * scale:
            clean = None
            if twin:
                c_img, _ = prod.render(make_rng(*key), n, scale, None)
                acq = make_rng(*key, "acquisition")
                c_img, _ = place(acq, c_img, alpha, size, spec.jitter)
                clean = to_uint8(expose(acq, c_img, spec.jitter))
            return to_uint8(img), mask.astype(np.uint8) * 255, clean
    raise RuntimeError(f"could not place a {defect} defect on {name} #{index}")


def render_image(
    name: str, seed: int, split: str, index: int, defect: str | None = None, size: int = REFERENCE_SIZE
) -> tuple[Array, Array | None]:
    """One image as uint8 (H, W) or (H, W, 3) and, for a defect, its 0/255 mask.

    The result depends only on (name, seed, split, index, defect, size), so any
    subset of a data set can be regenerated identically.
    """
    img, mask, _ = _render(name, seed, split, index, defect, size, False)
    return img, mask


def render_pair(
    name: str, seed: int, split: str, index: int, defect: str, size: int = REFERENCE_SIZE
) -> tuple[Array, Array, Array]:
    """A defective image, its mask, and the same part without the defect.

    The defect-free twin has the same placement, lighting and sensor noise, so
    the two differ only where the defect is (useful to check masks).
    """
    img, mask, clean = _render(name, seed, split, index, defect, size, True)
    assert mask is not None and clean is not None
    return img, mask, clean
