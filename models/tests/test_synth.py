"""Tests of the synthetic benchmark generator (onenip.synth)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from onenip.synth import CLASSES, render_inspection_sequence, render_pair
from onenip.synth.cli import main

SIZE = 128
COUNTS = ["--train", "4", "--test-good", "2", "--test-defect", "2", "--size", str(SIZE)]


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _load(p: Path) -> np.ndarray:
    return np.asarray(Image.open(p))


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "a"
    assert main([str(out), "--seed", "3", "--jobs", "1", "--quiet", *COUNTS]) == 0
    return out


def test_deterministic_bytes(bench: Path, tmp_path: Path) -> None:
    again = tmp_path / "b"
    # Different worker count must not matter either.
    assert main([str(again), "--seed", "3", "--jobs", "2", "--quiet", *COUNTS]) == 0
    a, b = _tree(bench), _tree(again)
    assert len(a) > 100
    assert a == b


def test_seed_changes_images(bench: Path, tmp_path: Path) -> None:
    other = tmp_path / "c"
    assert main([str(other), "--seed", "4", "--classes", "wood,pill", "--quiet", *COUNTS]) == 0
    for c in ("wood", "pill"):
        p = f"{c}/train/good/000.png"
        assert (bench / p).read_bytes() != (other / p).read_bytes()


def test_class_subset_matches_full_run(bench: Path, tmp_path: Path) -> None:
    sub = tmp_path / "d"
    assert main([str(sub), "--seed", "3", "--classes", "screw", "--quiet", *COUNTS]) == 0
    full = {k: v for k, v in _tree(bench).items() if k.startswith("screw/")}
    part = {k: v for k, v in _tree(sub).items() if k.startswith("screw/")}
    assert full == part


def test_layout_and_manifest(bench: Path) -> None:
    man = json.loads((bench / "manifest.json").read_text())
    assert man["seed"] == 3
    assert set(man["classes"]) == set(CLASSES)
    assert len(CLASSES) >= 6
    kinds = {e["kind"] for e in man["classes"].values()}
    assert kinds == {"texture", "object"}
    assert any(e["channels"] == 1 for e in man["classes"].values())
    for name, entry in man["classes"].items():
        root = bench / name
        assert len(list((root / "train" / "good").glob("*.png"))) == entry["train_good"] == 4
        assert len(list((root / "test" / "good").glob("*.png"))) == entry["test_good"] == 2
        assert not (root / "ground_truth" / "good").exists()
        assert 2 <= len(entry["defects"]) <= 4
        test_dirs = {p.name for p in (root / "test").iterdir()}
        assert test_dirs == {"good", *entry["defects"]}
        for defect, n in entry["defects"].items():
            imgs = sorted((root / "test" / defect).glob("*.png"))
            assert len(imgs) == n == 2
            masks = sorted((root / "ground_truth" / defect).glob("*.png"))
            assert [m.name for m in masks] == [f"{p.stem}_mask.png" for p in imgs]
            for p, m in zip(imgs, masks):
                im, mk = Image.open(p), Image.open(m)
                assert im.size == mk.size == (SIZE, SIZE)
                assert mk.mode == "L"
                assert im.mode == ("L" if entry["channels"] == 1 else "RGB")
        for p in (root / "train" / "good").glob("*.png"):
            assert Image.open(p).size == (SIZE, SIZE)


def test_masks_binary_nonempty_inside(bench: Path) -> None:
    for mpath in bench.glob("*/ground_truth/*/*_mask.png"):
        m = _load(mpath)
        assert set(np.unique(m).tolist()) <= {0, 255}, mpath
        frac = float((m > 0).mean())
        assert 0.0005 < frac < 0.15, (mpath, frac)
        # The defect lies inside the picture, not cut off at its border.
        border = np.concatenate([m[:2].ravel(), m[-2:].ravel(), m[:, :2].ravel(), m[:, -2:].ravel()])
        assert not border.any(), mpath


def test_good_images_vary(bench: Path) -> None:
    for name in CLASSES:
        imgs = [_load(p).astype(np.float32) for p in sorted((bench / name / "train" / "good").glob("*.png"))]
        for i in range(len(imgs)):
            for j in range(i + 1, len(imgs)):
                d = float(np.abs(imgs[i] - imgs[j]).mean())
                assert d > 1.0, (name, i, j, d)


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a.astype(np.float32) - b.astype(np.float32))
    return d.max(axis=2) if d.ndim == 3 else d


@pytest.mark.parametrize("name", list(CLASSES))
def test_defects_differ_from_nearest_good_in_mask(bench: Path, name: str) -> None:
    goods = [_load(p) for p in sorted((bench / name / "train" / "good").glob("*.png"))]
    goods += [_load(p) for p in sorted((bench / name / "test" / "good").glob("*.png"))]
    inside, outside = [], []
    for p in sorted((bench / name / "test").glob("*/*.png")):
        if p.parent.name == "good":
            continue
        img = _load(p)
        m = _load(bench / name / "ground_truth" / p.parent.name / f"{p.stem}_mask.png") > 0
        near = min(goods, key=lambda g: float(np.abs(g.astype(np.float32) - img).mean()))
        d = _diff(img, near)
        inside.append(float(d[m].mean()))
        outside.append(float(d[~m].mean()))
    assert np.mean(inside) > 1.3 * np.mean(outside), (name, inside, outside)


@pytest.mark.parametrize("name", list(CLASSES))
def test_mask_covers_the_change(name: str) -> None:
    """Against the same part without its defect, the change lies (almost) only in the mask."""
    for defect in CLASSES[name].defects:
        for i in range(2):
            img, mask, clean = render_pair(name, 11, "test", i, defect, SIZE)
            m = mask > 0
            d = _diff(img, clean)
            assert d[m].mean() > 12.0, (name, defect, i, d[m].mean())
            # Pixels outside the mask barely change (soft edges, at most a few pixels).
            assert (d[~m] > 12).sum() <= 0.05 * m.sum() + 3, (name, defect, i)
            assert d[~m].mean() < 0.5


def test_inspection_sequence() -> None:
    frames = render_inspection_sequence("cap", 6, [1, 4], seed=5, size=SIZE)
    assert len(frames) == 6
    labels = [f.label for f in frames]
    assert labels[0] == "good" and labels[1] != "good" and labels[4] != "good"
    assert labels[1] != labels[4]
    for f in frames:
        assert f.image.shape == (SIZE, SIZE, 3) and f.image.dtype == np.uint8
        if f.label == "good":
            assert f.mask is None
        else:
            assert f.mask is not None and f.mask.shape == (SIZE, SIZE) and (f.mask > 0).any()
    again = render_inspection_sequence("cap", 6, [1, 4], seed=5, size=SIZE)
    assert all(np.array_equal(a.image, b.image) for a, b in zip(frames, again))
    with pytest.raises(ValueError):
        render_inspection_sequence("cap", 3, [5], seed=5)
