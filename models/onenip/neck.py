"""The parameter-free neck: every tap resized to stride 16, then concatenated."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .resize import resize_bilinear


class Neck(nn.Module):
    """Resize each tap to h x h (bilinear, align_corners=True) and concat channels."""

    def __init__(self, feature_size: int) -> None:
        super().__init__()
        self.h = feature_size

    def forward(self, taps: list[Tensor]) -> Tensor:
        size = (self.h, self.h)
        return torch.cat([resize_bilinear(t, size) for t in taps], dim=1)
