"""The full OneNIP model, split along the ONNX contract.

- ``encode_prompt``: prompt image -> prompt tokens (the prompt's ENCODER output)
- ``reconstruct``: image + cached prompt tokens -> rec_map, residual
- ``refine``: residual + rec_map -> anomaly_map, score (fusion with fuse_k)
- ``forward``: everything, with the prompt encoded on every call (reference path)
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from .backbone import build_backbone
from .config import ModelConfig
from .fusion import fuse, image_score, reconstruction_map
from .neck import Neck
from .refiner import Refiner
from .transformer import Attention, ReconstructionTransformer


class OneNIPOutput(NamedTuple):
    rec_map: Tensor  # [B, 1, H, W]
    residual: Tensor  # [B, C, h, w] = |rec_feat - feat|
    anomaly_map: Tensor  # [B, 1, H, W]
    score: Tensor  # [B]
    rec_feat: Tensor  # [B, C, h, w] reconstructed features F_hat
    feat: Tensor  # [B, C, h, w] features F of the image
    ref_logits: Tensor  # [B, 1, H, W] refiner logits


class OneNIP(nn.Module):
    def __init__(self, cfg: ModelConfig, pretrained: bool = True, fuse_k: float = 1.0) -> None:
        super().__init__()
        self.cfg = cfg
        self.fuse_k = float(fuse_k)
        h = cfg.feature_size
        self.backbone = build_backbone(cfg.backbone_spec, pretrained)
        self.backbone_weights = "imagenet" if pretrained and cfg.backbone_spec.pretrained else "random"
        self.neck = Neck(h)
        self.transformer = ReconstructionTransformer(
            channels=cfg.channels,
            h=h,
            dim=cfg.hidden_dim,
            heads=cfg.nhead,
            enc_layers=cfg.num_encoder_layers,
            dec_layers=cfg.num_decoder_layers,
            ffn=cfg.dim_feedforward,
            dropout=cfg.dropout,
            neighbor=cfg.neighbor,
            jitter_scale=cfg.jitter_scale,
            jitter_prob=cfg.jitter_prob,
        )
        self.refiner = Refiner(cfg.channels, cfg.refiner_dim, cfg.input_size)
        self.reset_parameters()
        if self.backbone_weights == "random":
            self.reset_backbone()

    # -- initialisation -------------------------------------------------------
    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases for the trainable part."""
        for m in [*self.transformer.modules(), *self.refiner.modules()]:
            if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, Attention):
                nn.init.xavier_uniform_(m.in_proj_weight)
                nn.init.zeros_(m.in_proj_bias)
            elif isinstance(m, nn.Embedding):
                nn.init.uniform_(m.weight)
            elif isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
                m.reset_parameters()

    def reset_backbone(self, seed: int = 0) -> None:
        """Random backbone (no ImageNet weights), for smoke tests and as the skeleton a
        checkpoint is loaded into: normal convolution weights with variance 1.5 / fan_in
        (a damped He init), default BatchNorm statistics. Full He init lets a random
        B4 blow up on structured images (features ~30, float32 parity noise > 1e-4),
        LeCun init makes the deepest tap vanish; this keeps taps at about 0.01..5."""
        g = torch.Generator().manual_seed(seed)
        for m in self.backbone.modules():
            if isinstance(m, nn.Conv2d):
                with torch.no_grad():
                    m.weight.normal_(0.0, (1.5 / m.weight[0].numel()) ** 0.5, generator=g)
                    if m.bias is not None:
                        m.bias.zero_()
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_parameters()

    def train(self, mode: bool = True) -> "OneNIP":
        super().train(mode)
        self.backbone.eval()  # frozen, always in inference mode
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.")]

    # -- pieces ---------------------------------------------------------------
    def features(self, image: Tensor) -> Tensor:
        """Normalised image [B, 3, H, W] -> concatenated features [B, C, h, w]."""
        return self.neck(self.backbone(image))

    def encode_prompt(self, prompt_image: Tensor) -> Tensor:
        """Prompt image [B, 3, H, W] -> prompt tokens [B, N, D] (encoder output)."""
        return self.transformer.encode(self.features(prompt_image)).transpose(0, 1)

    def reconstruct_features(self, feat: Tensor, prompt_tokens: Tensor) -> Tensor:
        """Features [B, C, h, w] + prompt tokens [Bp, N, D] -> F_hat [B, C, h, w]."""
        image_tokens = self.transformer.encode(feat)
        return self.transformer.decode(prompt_tokens.transpose(0, 1), image_tokens)

    def reconstruct(self, image: Tensor, prompt_tokens: Tensor) -> tuple[Tensor, Tensor]:
        """Image [B, 3, H, W] + prompt tokens [1, N, D] -> (rec_map [B, 1, H, W],
        residual [B, C, h, w])."""
        feat = self.features(image)
        rec = self.reconstruct_features(feat, prompt_tokens)
        return reconstruction_map(rec, feat, self.cfg.input_size)

    def refine(self, residual: Tensor, rec_map: Tensor) -> tuple[Tensor, Tensor]:
        """(residual, rec_map) -> (anomaly_map [B, 1, H, W], score [B])."""
        ref = torch.sigmoid(self.refiner(residual))
        amap = fuse(rec_map, ref, self.fuse_k)
        return amap, image_score(amap, self.cfg.score_pool)

    # -- reference path -------------------------------------------------------
    def forward_features(self, feat: Tensor, prompt_feat: Tensor) -> OneNIPOutput:
        """The whole model on features (e.g. cached backbone features in training)."""
        prompt_tokens = self.transformer.encode(prompt_feat).transpose(0, 1)
        rec = self.reconstruct_features(feat, prompt_tokens)
        rec_map, residual = reconstruction_map(rec, feat, self.cfg.input_size)
        logits = self.refiner(residual)
        amap = fuse(rec_map, torch.sigmoid(logits), self.fuse_k)
        score = image_score(amap, self.cfg.score_pool)
        return OneNIPOutput(rec_map, residual, amap, score, rec, feat, logits)

    def forward(self, image: Tensor, prompt_image: Tensor) -> OneNIPOutput:
        """Everything, with the prompt run through backbone and encoder every time."""
        return self.forward_features(self.features(image), self.features(prompt_image))


def build_model(cfg: ModelConfig, pretrained: bool = True, fuse_k: float = 1.0) -> OneNIP:
    return OneNIP(cfg, pretrained=pretrained, fuse_k=fuse_k).eval()
