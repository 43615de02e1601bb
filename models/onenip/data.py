"""Folders in the MVTec AD layout.

::

    DATA/<class>/train/good/*.png|jpg|...
    DATA/<class>/test/good/*
    DATA/<class>/test/<defect>/*
    DATA/<class>/ground_truth/<defect>/<stem>_mask.png   (optional)

Images may have any size, be grayscale or RGB; every consumer resizes them
straight to the model's input size with :func:`onenip.preprocess.resize`, as
the deployed element does. Classes without ``ground_truth`` are fine (pixel
metrics are then skipped).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .preprocess import load_rgb, resize

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(Exception):
    """A folder that is not in the MVTec AD layout, with the reason."""


@dataclass(frozen=True)
class TestItem:
    path: Path
    label: str  # "good" or the defect type
    mask: Path | None  # ground-truth mask, None for good images or when absent

    @property
    def anomalous(self) -> bool:
        return self.label != "good"


def list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def find_classes(root: str | Path) -> list[str]:
    """Class folders of ``root`` that have ``train/good`` or ``test`` images, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: no such folder")
    classes = [
        d.name
        for d in sorted(root.iterdir())
        if d.is_dir() and (list_images(d / "train" / "good") or (d / "test").is_dir())
    ]
    if not classes:
        if list_images(root / "train" / "good"):
            raise DataError(
                f"{root}: looks like a single class folder; pass its parent folder "
                f"(the data set root holding <class>/train/good)"
            )
        raise DataError(f"{root}: no class folders with train/good or test images (MVTec AD layout expected)")
    return classes


def train_images(root: str | Path, cls: str) -> list[Path]:
    return list_images(Path(root) / cls / "train" / "good")


def _mask_for(root: Path, cls: str, defect: str, image: Path) -> Path | None:
    gt = root / cls / "ground_truth" / defect
    for name in (f"{image.stem}_mask", image.stem):
        for suffix in IMAGE_SUFFIXES:
            p = gt / f"{name}{suffix}"
            if p.is_file():
                return p
    return None


def test_items(root: str | Path, cls: str) -> list[TestItem]:
    """Test images of one class; masks where ``ground_truth`` has them."""
    root = Path(root)
    test = root / cls / "test"
    items: list[TestItem] = []
    if not test.is_dir():
        return items
    for d in sorted(p for p in test.iterdir() if p.is_dir()):
        for img in list_images(d):
            mask = None if d.name == "good" else _mask_for(root, cls, d.name, img)
            items.append(TestItem(img, d.name, mask))
    return items


def load_resized(path: str | Path, size: int) -> np.ndarray:
    """uint8 [size, size, 3]: RGB, straight PIL BILINEAR resize (the deployed transform)."""
    return np.asarray(resize(load_rgb(path), size))


def load_mask(path: Path | None, size: int) -> np.ndarray:
    """bool [size, size]; nearest resize; all False for None (good images)."""
    if path is None:
        return np.zeros((size, size), dtype=bool)
    with Image.open(path) as m:
        m = m.convert("L").resize((size, size), Image.Resampling.NEAREST)
        return np.asarray(m) > 127


@dataclass(frozen=True)
class Split:
    """Per class: training images and held-out good images (for calibration)."""

    train: dict[str, list[Path]]
    held_out: dict[str, list[Path]]


def split_train_good(
    root: str | Path, classes: list[str], holdout_fraction: float = 0.12, min_holdout: int = 2, max_holdout: int = 12
) -> Split:
    """Deterministic split of each class's train/good: a few images (the fraction,
    clamped to [min, max], never more than a third) are held out for calibration,
    chosen by a hash of the file name so the split does not depend on the order or
    count of other files. The first image (the default prompt) always trains."""
    train: dict[str, list[Path]] = {}
    held: dict[str, list[Path]] = {}
    for cls in classes:
        imgs = train_images(root, cls)
        if not imgs:
            continue
        n = int(round(len(imgs) * holdout_fraction))
        n = max(min_holdout, min(max_holdout, n))
        n = min(n, len(imgs) // 3)
        keyed = sorted(imgs[1:], key=lambda p: hashlib.sha1(p.name.encode()).hexdigest())
        h = set(keyed[:n])
        held[cls] = [p for p in imgs if p in h]
        train[cls] = [p for p in imgs if p not in h]
    if not train:
        raise DataError(f"{root}: no train/good images in any class")
    return Split(train, held)
