"""Cached backbone features: the normal images and a few synthetic-anomaly
variants of each, computed once with the frozen backbone (spec section 4).

Features are stored as float16 ``[C, h, w]`` (about 96 KB per image at 256 for
onenip-s), masks as uint8 at the input size. The cache is saved next to the run
so that ``--resume`` does not recompute it; its key covers the file list, the
configuration, the number of variants and the seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ..anomalies import synthesize
from ..data import load_resized
from ..model import OneNIP
from ..preprocess import normalize


@dataclass
class FeatureCache:
    classes: list[str]
    paths: list[str]  # one per normal image
    class_index: Tensor  # [M] int64
    normal: Tensor  # [M, C, h, w] float16
    anomalous: Tensor  # [M, V, C, h, w] float16
    masks: Tensor  # [M, V, H, W] uint8 (0/1)
    key: str

    @property
    def variants(self) -> int:
        return int(self.anomalous.shape[1])

    def by_class(self) -> list[Tensor]:
        """Indices of the normal images of each class."""
        return [torch.nonzero(self.class_index == c).flatten() for c in range(len(self.classes))]

    def save(self, path: Path) -> None:
        torch.save(
            {
                "key": self.key,
                "classes": self.classes,
                "paths": self.paths,
                "class_index": self.class_index,
                "normal": self.normal,
                "anomalous": self.anomalous,
                "masks": self.masks,
            },
            path,
        )

    @staticmethod
    def load(path: Path, key: str) -> FeatureCache | None:
        if not path.is_file():
            return None
        try:
            d = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:
            return None
        if d.get("key") != key:
            return None
        return FeatureCache(
            d["classes"], d["paths"], d["class_index"], d["normal"], d["anomalous"], d["masks"], d["key"]
        )


def cache_key(train: dict[str, list[Path]], config_name: str, input_size: int, variants: int, seed: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([config_name, input_size, variants, seed, 2]).encode())
    for cls in sorted(train):
        for p in train[cls]:
            st = p.stat()
            h.update(f"{cls}/{p.name}:{st.st_size}:{int(st.st_mtime)}".encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def _features(model: OneNIP, batch: list[np.ndarray]) -> Tensor:
    cfg = model.cfg
    x = torch.from_numpy(np.concatenate([normalize(b, cfg.mean, cfg.std) for b in batch]))
    return model.features(x).to(torch.float16)


def build_cache(
    model: OneNIP,
    train: dict[str, list[Path]],
    variants: int,
    seed: int,
    batch_size: int = 16,
    progress: bool = True,
    on_image: Callable[[int], None] | None = None,
) -> FeatureCache:
    """Backbone features of every training image and ``variants`` anomalous versions of it."""
    size = model.cfg.input_size
    model.eval()
    classes = sorted(train)
    items = [(ci, p) for ci, c in enumerate(classes) for p in train[c]]
    key = cache_key(train, model.cfg.name, size, variants, seed)
    M = len(items)
    C, h = model.cfg.channels, model.cfg.feature_size
    normal = torch.empty((M, C, h, h), dtype=torch.float16)
    anomalous = torch.empty((M, variants, C, h, h), dtype=torch.float16)
    masks = torch.empty((M, variants, size, size), dtype=torch.uint8)
    # textures from other normal images: a small, fixed pool across classes
    pool_rng = np.random.default_rng(seed + 7)
    pool_idx = pool_rng.choice(M, size=min(M, 24), replace=False)
    others = [load_resized(items[int(i)][1], size) for i in pool_idx]
    bar = tqdm(total=M, desc="caching features", unit="img", disable=not progress, dynamic_ncols=True)
    for start in range(0, M, batch_size):
        chunk = items[start : start + batch_size]
        imgs = [load_resized(p, size) for _, p in chunk]
        normal[start : start + len(chunk)] = _features(model, imgs)
        for j, img in enumerate(imgs):
            i = start + j
            rng = np.random.default_rng([seed, i])
            cls_others = [o for k, o in zip(pool_idx, others) if items[int(k)][0] != items[i][0]] or others
            anoms = []
            for v in range(variants):
                a, m = synthesize(img, rng, cls_others)
                anoms.append(a)
                masks[i, v] = torch.from_numpy((m > 0.5).astype(np.uint8))
            anomalous[i] = _features(model, anoms)
        bar.update(len(chunk))
        if on_image is not None:
            on_image(start + len(chunk))
    bar.close()
    return FeatureCache(
        classes,
        [str(p) for _, p in items],
        torch.tensor([ci for ci, _ in items], dtype=torch.int64),
        normal,
        anomalous,
        masks,
        key,
    )
