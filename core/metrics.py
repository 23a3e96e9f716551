"""Figures of merit with their uncertainty."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from core.errors import InputError


def roc_auc(y_true, score) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg)); ties count one half."""
    y = np.asarray(y_true, dtype=bool)
    score = np.asarray(score, dtype=float)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"AUC needs both classes; found {n_pos} responders and {n_neg} non-responders.", field="responder")
    ranks = rankdata(score)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bootstrap_ci(statistic, *arrays, n_boot: int = 1000, level: float = 0.95, seed: int = 0, stratify=None) -> tuple[float, float, float]:
    """Point estimate and percentile bootstrap interval of ``statistic(*arrays)``.

    ``stratify`` (e.g. the labels) keeps each resample's class balance, so AUC is always defined.
    """
    arrays = [np.asarray(a) for a in arrays]
    n = len(arrays[0])
    rng = np.random.default_rng(seed)
    strata = [np.arange(n)] if stratify is None else [np.flatnonzero(np.asarray(stratify) == v) for v in np.unique(stratify)]
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = np.concatenate([rng.choice(s, len(s)) for s in strata])
        values[b] = statistic(*(a[idx] for a in arrays))
    alpha = (1 - level) / 2
    return float(statistic(*arrays)), float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def roc_auc_ci(y_true, score, **kwargs) -> tuple[float, float, float]:
    """AUC with a stratified bootstrap 95% interval: (auc, low, high)."""
    return bootstrap_ci(roc_auc, np.asarray(y_true, bool), score, stratify=np.asarray(y_true, bool), **kwargs)
