"""Bilinear resize with align_corners=True, written as two small matrix products.

``F.interpolate`` and ONNX ``Resize`` both compute source coordinates in
float32 but round differently; on steep feature maps the two disagree by
~1e-3, which would break the 1e-4 parity of the exported graphs. Here the
interpolation weights are computed once on the host, with exactly PyTorch's
float32 arithmetic (scale = (in - 1) / (out - 1), src = scale * i,
lambda = src - floor(src)), and applied as ``Wy @ x @ Wx^T``. The result equals
``F.interpolate(x, size, mode="bilinear", align_corners=True)`` up to float32
summation order, and ONNX Runtime computes the same MatMuls.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor


@lru_cache(maxsize=64)
def resize_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] float32 interpolation matrix (align_corners=True)."""
    f32 = np.float32
    scale = f32(n_in - 1) / f32(n_out - 1) if n_out > 1 else f32(0.0)
    w = np.zeros((n_out, n_in), dtype=np.float32)
    for i in range(n_out):
        src = f32(scale * f32(i))
        i0 = min(int(src), n_in - 1)
        i1 = i0 + 1 if i0 < n_in - 1 else i0
        lam = f32(min(max(src - f32(i0), f32(0.0)), f32(1.0)))
        w[i, i0] += f32(1.0) - lam
        w[i, i1] += lam
    w.setflags(write=False)
    return w


def resize_bilinear(x: Tensor, size: tuple[int, int]) -> Tensor:
    """[B, C, h, w] -> [B, C, *size], bilinear, align_corners=True."""
    h, w = int(x.shape[-2]), int(x.shape[-1])
    if (h, w) == tuple(size):
        return x
    wy = torch.from_numpy(resize_weights(h, size[0]).copy()).to(x.dtype)
    wx = torch.from_numpy(resize_weights(w, size[1]).copy()).to(x.dtype)
    return torch.matmul(torch.matmul(wy, x), wx.t())
