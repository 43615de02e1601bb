"""Part sequences for sample inspection videos (one part per trigger)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np

from .catalog import CLASSES, REFERENCE_SIZE, render_image


class InspectionFrame(NamedTuple):
    """One inspected part: ``image`` uint8 (H, W) or (H, W, 3); ``mask`` 0/255 uint8 or None;
    ``label`` "good" or the defect type."""

    image: np.ndarray
    mask: np.ndarray | None
    label: str


def render_inspection_sequence(
    class_name: str,
    n_parts: int,
    defective_indices: Iterable[int],
    seed: int,
    size: int = REFERENCE_SIZE,
) -> list[InspectionFrame]:
    """Render ``n_parts`` parts of one class as a triggered camera sees them.

    Parts at ``defective_indices`` carry a defect; the class's defect types are used
    in turn (first defective part gets the first type, and so on). Every part is a
    new instance (its own placement, lighting and noise), and none of them is an
    image of the benchmark written by ``onenip-synth`` with the same seed.
    """
    spec = CLASSES[class_name]
    bad = sorted({int(i) for i in defective_indices})
    if any(i < 0 or i >= n_parts for i in bad):
        raise ValueError(f"defective indices must lie in [0, {n_parts})")
    kinds = {i: spec.defects[k % len(spec.defects)] for k, i in enumerate(bad)}
    frames: list[InspectionFrame] = []
    for i in range(n_parts):
        defect = kinds.get(i)
        img, mask = render_image(class_name, seed, "sequence", i, defect, size)
        frames.append(InspectionFrame(img, mask, defect or "good"))
    return frames
