"""Procedural, deterministic anomaly-detection benchmark in the MVTec AD layout.

Classes: textures (fabric, metal [grayscale], wood, leather) and objects (cap,
screw [grayscale], pcb, pill), each with three defect types and exact masks.
Entry points: ``onenip-synth`` (:func:`onenip.synth.cli.main`),
:func:`generate`, :func:`render_image` and :func:`render_inspection_sequence`.
"""

from .catalog import CLASSES, ClassSpec, render_image, render_pair
from .layout import Counts, contact_sheet, generate
from .sequence import InspectionFrame, render_inspection_sequence

__all__ = [
    "CLASSES",
    "ClassSpec",
    "Counts",
    "InspectionFrame",
    "contact_sheet",
    "generate",
    "render_image",
    "render_inspection_sequence",
    "render_pair",
]
