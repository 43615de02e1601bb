"""``onenip-train``: one OneNIP model for all classes of an MVTec-layout folder,
trained on cached backbone features (spec section 4)."""

from .cache import FeatureCache, build_cache
from .loop import TrainConfig, train

__all__ = ["FeatureCache", "TrainConfig", "build_cache", "train"]
