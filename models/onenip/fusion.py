"""Reconstruction map, fusion with the refiner and the image score."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .resize import resize_bilinear


def reconstruction_map(rec: Tensor, feat: Tensor, out_size: int) -> tuple[Tensor, Tensor]:
    """rec_map = ||F_hat - F||_2 over channels, bilinear (align_corners=True) to
    out_size x out_size; also returns the residual |F_hat - F| for the refiner."""
    diff = rec - feat
    rec_map = torch.sqrt(torch.sum(diff * diff, dim=1, keepdim=True))
    rec_map = resize_bilinear(rec_map, (out_size, out_size))
    return rec_map, diff.abs()


def fuse(rec_map: Tensor, ref_prob: Tensor, fuse_k: float) -> Tensor:
    """anomaly_map = 0.5 * rec_map + 0.5 * k * sigmoid(refiner logits)."""
    return 0.5 * rec_map + (0.5 * fuse_k) * ref_prob


def image_score(anomaly_map: Tensor, pool: int = 16) -> Tensor:
    """max over avg_pool2d(anomaly_map, pool x pool, stride 1): [B, 1, H, W] -> [B]."""
    pooled = F.avg_pool2d(anomaly_map, pool, stride=1)
    return pooled.flatten(1).amax(dim=1)


def fuse_k_from_rec_map(rec_map: Tensor) -> float:
    """k = (max + min) / 2 of reconstruction maps (calibrated on held-out normal images)."""
    return float((rec_map.max() + rec_map.min()) / 2)
