"""The supervised refiner: feature residual |F_hat - F| -> anomaly logits."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .resize import resize_bilinear


class RefinerStage(nn.Module):
    """Conv3x3 (no bias) -> BN -> ReLU -> ConvTranspose k2 s2 (doubles h, w)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.up = nn.ConvTranspose2d(cout, cout, 2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        return self.up(F.relu(self.bn(self.conv(x))))


class Refiner(nn.Module):
    """[Conv3x3 BN ReLU ConvT(k2, s2)] x 2, Conv1x1 -> logits at stride 4,
    then bilinear (align_corners=True) to the input size H x W."""

    def __init__(self, channels: int, width: int, out_size: int) -> None:
        super().__init__()
        self.out_size = out_size
        self.stages = nn.ModuleList([RefinerStage(channels, width), RefinerStage(width, width)])
        self.head = nn.Conv2d(width, 1, 1)

    def forward(self, residual: Tensor) -> Tensor:
        """residual [B, C, h, w] -> logits [B, 1, H, W]."""
        x = residual
        for stage in self.stages:
            x = stage(x)
        logits = self.head(x)
        return resize_bilinear(logits, (self.out_size, self.out_size))
