"""Metrics on toy cases with known answers, and against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from onenip.metrics import auroc, average_precision, pro_auc


def test_auroc_perfect_and_matches_sklearn() -> None:
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auroc(np.array([0, 0, 1, 1]), np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = rng.normal(size=200) + y
    assert auroc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert average_precision(y, s) == pytest.approx(average_precision_score(y, s))
    assert auroc(np.zeros(5), np.arange(5)) is None  # one class only


def _two_regions() -> tuple[np.ndarray, np.ndarray]:
    gt = np.zeros((32, 32), bool)
    gt[2:8, 2:8] = True  # region A
    gt[20:30, 20:24] = True  # region B
    rng = np.random.default_rng(1)
    amap = rng.uniform(0.0, 0.5, gt.shape)
    return gt, amap


def test_pro_perfect_map_is_one() -> None:
    gt, amap = _two_regions()
    amap = amap.copy()
    amap[gt] = 1.0
    assert pro_auc([gt], [amap]) == pytest.approx(1.0, abs=1e-3)


def test_pro_half_the_regions_found() -> None:
    gt, amap = _two_regions()
    amap = amap.copy()
    amap[2:8, 2:8] = 1.0  # region A found
    amap[20:30, 20:24] = 0.0  # region B below every normal pixel
    # every threshold with FPR > 0 covers all of A and none of B: PRO = 0.5 everywhere
    assert pro_auc([gt], [amap]) == pytest.approx(0.5, abs=0.01)


def test_pro_region_size_does_not_matter() -> None:
    """PRO averages over regions, not pixels: a tiny found region weighs as much as a big missed one."""
    gt = np.zeros((40, 40), bool)
    gt[1:3, 1:3] = True  # 4 pixels, found
    gt[10:30, 10:30] = True  # 400 pixels, missed
    amap = np.random.default_rng(2).uniform(0.2, 0.5, gt.shape)
    amap[1:3, 1:3] = 1.0
    amap[10:30, 10:30] = 0.0
    assert pro_auc([gt], [amap]) == pytest.approx(0.5, abs=0.01)
    assert pro_auc([np.zeros_like(gt)], [amap]) is None
