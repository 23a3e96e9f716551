"""Statistics of cross-validated comparisons: the corrected resampled t-test (Nadeau & Bengio
2003), Holm's adjustment, and exact Shapley values of a cooperative game.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

from core.errors import InputError
from core.modelling.explanation import shapley_values

__all__ = ["corrected_resampled_ttest", "holm", "shapley_values"]


def corrected_resampled_ttest(values, n_train, n_test, *, level: float = 0.95) -> dict:
    """Mean, confidence interval and two-sided p-value of per-fold values, Nadeau & Bengio (2003).

    Parameters
    ----------
    values : array-like, shape (J,)
        One value per fold (J = n_splits x n_repeats): a paired difference of a metric between two
        models, a metric itself, or a per-fold Shapley value.
    n_train, n_test : float or array-like of shape (J,)
        Training and test patients per fold; arrays are averaged.
    level : two-sided coverage of the interval.

    Returns
    -------
    dict
        ``mean``; ``se`` = sqrt((1/J + n_test/n_train) * s^2) with s^2 the sample variance
        (ddof=1); ``t`` = mean / se; ``df`` = J - 1; ``p`` (two-sided, H0: true mean 0);
        ``ci_low``, ``ci_high`` = mean -/+ t_{(1+level)/2, J-1} * se; ``n_folds`` = J.
        With zero spread (e.g. a model compared with itself) ``se`` is 0, and ``p`` is 1 when the
        mean is 0, else 0.
    """
    d = np.asarray(values, dtype=float)
    d = d[np.isfinite(d)]
    J = d.size
    if J < 2:
        raise InputError(f"the corrected t-test needs at least 2 folds with a value; found {J}.", field="folds")
    ratio = float(np.mean(n_test)) / float(np.mean(n_train))
    mean = float(d.mean())
    se = math.sqrt((1.0 / J + ratio) * float(d.var(ddof=1)))
    df = J - 1
    half = float(stats.t.ppf((1 + level) / 2, df)) * se
    if se > 0:
        t = mean / se
        p = float(2 * stats.t.sf(abs(t), df))
    else:  # every fold gave the same value
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
        p = 1.0 if mean == 0 else 0.0
    return {"mean": mean, "se": se, "t": t, "df": df, "p": p, "ci_low": mean - half, "ci_high": mean + half, "n_folds": J}


def holm(p_values) -> np.ndarray:
    """Holm (1979) step-down adjusted p-values; NaN entries stay NaN and are not counted.

    Controls the chance of any false positive in the family at the chosen level, without
    assuming the tests are independent.
    """
    p = np.asarray(p_values, dtype=float)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(np.isfinite(p))
    m = valid.size
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, (m - rank) * p[i])  # monotone: an adjusted p never falls below an earlier one
        out[i] = min(1.0, running)
    return out
