#!/usr/bin/env python3
"""Generate the pre-processing parity fixtures used by `tests/preprocess.rs`.

Run from anywhere with the project's virtual environment (numpy + Pillow):

    .venv/bin/python tests/data/make_preprocess_fixtures.py

It writes into `tests/data/preprocess/`:

* `rgb_37x23.png`, `rgb_64x48.png`: textured RGB images (odd and even sizes);
* `gray_37x23.png`: a textured 8-bit grayscale image;
* `<name>.i420`: the RGB images converted to BT.601 limited-range I420 (Y, then U, then V,
  tightly packed; chroma planes are ceil(w/2) x ceil(h/2), each sample the mean of its 2x2
  block, centred siting);
* `<name>_s<S>.f32`: the reference model input for size S, raw little-endian float32, NCHW
  [1, 3, S, S], computed exactly like the training transform:
  `np.asarray(img.convert("RGB").resize((S, S), Image.BILINEAR), dtype=np.float32) / 255`,
  minus the ImageNet mean, divided by the ImageNet std, transposed to CHW;
* `rgb_64x48_roi_5_7_41_30_s<S>.f32`: the same for `img.crop((5, 7, 46, 37))`.

The output is deterministic (fixed seed), so re-running it must not change the files.
"""

from pathlib import Path

import numpy as np
from PIL import Image

OUT = Path(__file__).resolve().parent / "preprocess"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
SIZES = (16, 32)
ROI = (5, 7, 41, 30)  # x, y, w, h


def texture(w: int, h: int, channels: int, seed: int) -> np.ndarray:
    """Gradients, stripes and noise: every filter tap sees different values.

    Like camera images, most of the detail is in luminance (noise and stripes shared by the
    channels) and colour varies slowly, so that 4:2:0 chroma subsampling loses little.
    """
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    shared = 50.0 * np.sin(0.9 * x + 0.5 * y) + rng.normal(0.0, 25.0, size=(h, w))
    planes = []
    for c in range(channels):
        base = 255.0 * (x / max(w - 1, 1) * (0.3 + 0.2 * c) + y / max(h - 1, 1) * (0.5 - 0.1 * c))
        own = rng.normal(0.0, 4.0, size=(h, w))
        planes.append(base + shared + own)
    arr = np.clip(np.rint(np.stack(planes, axis=-1)), 0, 255).astype(np.uint8)
    # A few saturated pixels to exercise clamping.
    arr[0, 0] = 255
    arr[h - 1, w - 1] = 0
    return arr


def reference(img: Image.Image, size: int) -> np.ndarray:
    """The training transform, literally."""
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255
    x = (x - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None], dtype="<f4")


def to_i420(rgb: np.ndarray) -> bytes:
    """BT.601 limited range ("studio swing") RGB -> I420, chroma averaged over 2x2 blocks."""
    f = rgb.astype(np.float64)
    r, g, b = f[..., 0], f[..., 1], f[..., 2]
    y = 16 + (65.481 * r + 128.553 * g + 24.966 * b) / 255
    u = 128 + (-37.797 * r - 74.203 * g + 112.0 * b) / 255
    v = 128 + (112.0 * r - 93.786 * g - 18.214 * b) / 255
    h, w = y.shape
    ch, cw = (h + 1) // 2, (w + 1) // 2

    def subsample(p: np.ndarray) -> np.ndarray:
        # Replicate the last row/column for odd sizes, then average 2x2 blocks.
        p = np.pad(p, ((0, 2 * ch - h), (0, 2 * cw - w)), mode="edge")
        return p.reshape(ch, 2, cw, 2).mean(axis=(1, 3))

    planes = [y, subsample(u), subsample(v)]
    return b"".join(np.clip(np.rint(p), 0, 255).astype(np.uint8).tobytes() for p in planes)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    images = {
        "rgb_37x23": Image.fromarray(texture(37, 23, 3, seed=1), "RGB"),
        "rgb_64x48": Image.fromarray(texture(64, 48, 3, seed=2), "RGB"),
        "gray_37x23": Image.fromarray(texture(37, 23, 1, seed=3)[..., 0], "L"),
    }
    for name, img in images.items():
        img.save(OUT / f"{name}.png", optimize=True)
        for size in SIZES:
            reference(img, size).tofile(OUT / f"{name}_s{size}.f32")
        if img.mode == "RGB":
            (OUT / f"{name}.i420").write_bytes(to_i420(np.asarray(img)))

    x, y, w, h = ROI
    cropped = images["rgb_64x48"].crop((x, y, x + w, y + h))
    for size in SIZES:
        reference(cropped, size).tofile(OUT / f"rgb_64x48_roi_{x}_{y}_{w}_{h}_s{size}.f32")

    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total} bytes, into {OUT}")


if __name__ == "__main__":
    main()
