"""Anomaly-detection metrics: image AUROC, pixel AUROC, pixel AP, PRO (AUPRO).

PRO follows the MVTec AD definition: for a threshold t, the per-region overlap
is the fraction of each connected ground-truth region's pixels above t,
averaged over all regions of all images; it is integrated over the false
positive rate on normal pixels from 0 to ``max_fpr`` (0.3) and divided by
``max_fpr``, so a perfect map scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """ROC AUC, None where only one class is present."""
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(bool).ravel()
    if labels.all() or not labels.any():
        return None
    return float(roc_auc_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import average_precision_score

    labels = np.asarray(labels).astype(bool).ravel()
    if not labels.any():
        return None
    return float(average_precision_score(labels, np.asarray(scores, dtype=np.float64).ravel()))


def pro_curve(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], max_fpr: float = 0.3,
              n_thresholds: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(fpr, pro) arrays, fpr ascending up to max_fpr."""
    from skimage.measure import label as cc_label

    normal = np.concatenate([m[~g] for g, m in zip(masks, maps)]).astype(np.float64)
    regions: list[np.ndarray] = []
    for g, m in zip(masks, maps):
        if g.any():
            lab = cc_label(g, connectivity=2)
            for r in range(1, int(lab.max()) + 1):
                regions.append(np.sort(m[lab == r].astype(np.float64)))
    if not regions or normal.size == 0:
        raise ValueError("PRO needs at least one anomalous region and some normal pixels")
    normal.sort()
    # thresholds from the top of the normal pixels down to the (1 - max_fpr) quantile, plus above everything
    qs = np.linspace(1.0, 1.0 - max_fpr, n_thresholds)
    ts = np.quantile(normal, qs)
    ts = np.concatenate([[max(normal[-1], max(r[-1] for r in regions)) + 1e-6], ts])
    n = normal.size
    fpr = (n - np.searchsorted(normal, ts, side="right")) / n
    pro = np.zeros_like(ts)
    for r in regions:
        pro += (r.size - np.searchsorted(r, ts, side="right")) / r.size
    pro /= len(regions)
    order = np.argsort(fpr, kind="stable")
    return fpr[order], pro[order]


def pro_auc(masks: Sequence[np.ndarray], maps: Sequence[np.ndarray], max_fpr: float = 0.3) -> float | None:
    """Normalised area under the PRO curve up to max_fpr; None without anomalous regions."""
    if not any(g.any() for g in masks):
        return None
    fpr, pro = pro_curve(masks, maps, max_fpr)
    keep = fpr <= max_fpr
    f, p = fpr[keep], pro[keep]
    if f[-1] < max_fpr:  # interpolate the end point
        j = np.searchsorted(fpr, max_fpr)
        if j < len(fpr):
            f0, f1, p0, p1 = fpr[j - 1], fpr[j], pro[j - 1], pro[j]
            pe = p0 + (p1 - p0) * (max_fpr - f0) / max(f1 - f0, 1e-12)
        else:
            pe = p[-1]
        f, p = np.append(f, max_fpr), np.append(p, pe)
    area = float(np.sum((f[1:] - f[:-1]) * (p[1:] + p[:-1]) / 2))
    return area / max_fpr
