"""Writing the benchmark to disk in the MVTec AD layout, plus a manifest and a preview.

    OUT/manifest.json
    OUT/<class>/train/good/000.png
    OUT/<class>/test/good/000.png
    OUT/<class>/test/<defect>/000.png
    OUT/<class>/ground_truth/<defect>/000_mask.png      (0/255, same size)
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .catalog import CLASSES, render_image

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class Counts:
    train: int = 60
    test_good: int = 15
    test_defect: int = 8


def save_png(path: Path, arr: np.ndarray) -> None:
    """Write a uint8 array as PNG with fixed settings (no metadata: byte-reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="PNG", optimize=False, compress_level=6)


def _stem(i: int) -> str:
    return f"{i:03d}"


def write_class(out: str, name: str, seed: int, counts: Counts, size: int) -> dict:
    """Render and write all images of one class; returns its manifest entry."""
    root = Path(out) / name
    spec = CLASSES[name]
    for sub in ("train", "test", "ground_truth"):  # no stale images from an earlier, larger run
        if (root / sub).is_dir():
            shutil.rmtree(root / sub)
    for i in range(counts.train):
        img, _ = render_image(name, seed, "train", i, None, size)
        save_png(root / "train" / "good" / f"{_stem(i)}.png", img)
    for i in range(counts.test_good):
        img, _ = render_image(name, seed, "test", i, None, size)
        save_png(root / "test" / "good" / f"{_stem(i)}.png", img)
    for d in spec.defects:
        for i in range(counts.test_defect):
            img, mask = render_image(name, seed, "test", i, d, size)
            assert mask is not None
            save_png(root / "test" / d / f"{_stem(i)}.png", img)
            save_png(root / "ground_truth" / d / f"{_stem(i)}_mask.png", mask)
    return {
        "kind": spec.kind,
        "description": spec.description,
        "channels": spec.channels,
        "mode": "L" if spec.channels == 1 else "RGB",
        "size": [size, size],
        "train_good": counts.train,
        "test_good": counts.test_good,
        "defects": {d: counts.test_defect for d in spec.defects},
    }


def generate(
    out: str | os.PathLike[str],
    seed: int,
    classes: Sequence[str] | None = None,
    counts: Counts = Counts(),
    size: int = 256,
    jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Generate the benchmark under ``out`` and write ``out/manifest.json``."""
    names = list(classes) if classes else list(CLASSES)
    unknown = [c for c in names if c not in CLASSES]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; known: {', '.join(CLASSES)}")
    out = str(out)
    Path(out).mkdir(parents=True, exist_ok=True)
    entries: dict[str, dict] = {}
    if jobs > 1 and len(names) > 1:
        with ProcessPoolExecutor(max_workers=jobs) as ex:
            futs = {n: ex.submit(write_class, out, n, seed, counts, size) for n in names}
            for n in names:
                entries[n] = futs[n].result()
                if progress:
                    progress(n)
    else:
        for n in names:
            entries[n] = write_class(out, n, seed, counts, size)
            if progress:
                progress(n)
    manifest = {
        "generator": "onenip-synth",
        "version": MANIFEST_VERSION,
        "seed": seed,
        "size": size,
        "layout": "mvtec",
        "classes": entries,
        "totals": {
            "train_good": sum(e["train_good"] for e in entries.values()),
            "test_good": sum(e["test_good"] for e in entries.values()),
            "test_defect": sum(sum(e["defects"].values()) for e in entries.values()),
        },
    }
    with open(Path(out) / "manifest.json", "w", encoding="utf-8") as f:
        json.dump(manifest, f, indent=2, sort_keys=False)
        f.write("\n")
    return manifest


def contact_sheet(root: str | os.PathLike[str], out_png: str | os.PathLike[str], per_row: int = 8,
                  tile: int = 128) -> None:
    """A preview PNG: per class, good images then defects with their masks outlined in green."""
    root = Path(root)
    rows = []
    for cdir in sorted(p for p in root.iterdir() if (p / "train" / "good").is_dir()):
        tiles = [Path(p) for p in sorted((cdir / "train" / "good").glob("*.png"))[:2]]
        items: list[tuple[Path, Path | None]] = [(p, None) for p in tiles]
        for ddir in sorted(p for p in (cdir / "test").iterdir() if p.name != "good"):
            for p in sorted(ddir.glob("*.png"))[:2]:
                items.append((p, cdir / "ground_truth" / ddir.name / f"{p.stem}_mask.png"))
        row = []
        for img_p, mask_p in items[:per_row]:
            img = np.asarray(Image.open(img_p).convert("RGB")).copy()
            if mask_p is not None and mask_p.exists():
                m = np.asarray(Image.open(mask_p)) > 127
                inner = m & np.roll(m, 1, 0) & np.roll(m, -1, 0) & np.roll(m, 1, 1) & np.roll(m, -1, 1)
                img[m & ~inner] = (0, 255, 0)
            row.append(np.asarray(Image.fromarray(img).resize((tile, tile), Image.Resampling.BILINEAR)))
        while len(row) < per_row:
            row.append(np.zeros((tile, tile, 3), np.uint8))
        rows.append(np.concatenate(row, axis=1))
    if rows:
        Image.fromarray(np.concatenate(rows, axis=0)).save(out_png)
