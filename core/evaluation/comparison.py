"""Several models cross-validated on the same folds of one cohort, compared patient for patient.

Every model here (xgboost on engineered features, deep fusion on raw data, the stacked model, a
baseline) predicts every patient out-of-fold on the same :class:`~core.modelling.validation.CohortSplitter`
folds, so their predictions are paired: the same patients, the same training sets. The comparison
uses that pairing twice:

* **Intervals of each model** (:attr:`ModelComparison.metrics`, decision curves, the oracle
  fraction): a percentile bootstrap over patients, responders and non-responders resampled
  separately, with the *same* resampled patients for every model, so the models' intervals are
  comparable and a model that appears under two names gets identical intervals.
* **Differences between models** (:attr:`ModelComparison.paired`): the difference of a metric on
  each test fold, model minus the reference (the first model given), summarised by the corrected
  resampled t-test (Nadeau & Bengio 2003), which allows for the overlap of training sets between folds.

Figures of merit come from :mod:`core.evaluation.metrics`; this module adds the logistic
recalibration slope and intercept (:func:`calibration_slope_intercept`), the breakdown by
missing-modality pattern, and, for a synthetic cohort, each model's AUC as a fraction of the
oracle's (the AUC of the true response probabilities).

Example
-------
>>> comparison = compare_models(cohort, {"xgboost": xgb_run, "deep fusion": fusion_run})  # doctest: +SKIP
>>> comparison.summary_sentence()
>>> comparison.metrics.query("metric == 'auc'")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
from scipy.special import expit

from core.data.schema import MODALITIES, modality_of
from core.errors import InputError
from core.evaluation.metrics import binary_metrics, binary_metrics_ci, decision_curve, metrics_with_ci, roc_auc, roc_auc_ci
from core.evaluation.stats import corrected_resampled_ttest

if TYPE_CHECKING:
    from core.modelling.validation import CVResult

__all__ = [
    "ModelComparison",
    "compare_models",
    "calibration_slope_intercept",
    "COMPARED_METRICS",
    "PAIRED_METRICS",
    "DECISION_THRESHOLDS",
    "MIN_PER_CLASS",
    "TREAT_ALL",
    "TREAT_NONE",
]

# Figures of merit of :attr:`ModelComparison.metrics`, in order; the first four from binary_metrics_ci.
COMPARED_METRICS = ("auc", "pr_auc", "brier", "ece", "calibration_slope", "calibration_intercept")
# Figures compared fold by fold (:attr:`ModelComparison.paired`).
PAIRED_METRICS = ("auc", "pr_auc", "brier")
# Threshold probabilities of the decision curves: 0.05, 0.06, ..., 0.95.
DECISION_THRESHOLDS = np.round(np.arange(5, 96) / 100, 2)
# Fewest responders and fewest non-responders a missing-modality pattern needs for its AUC.
MIN_PER_CLASS = 10
PROBABILITY_CLIP = 1e-6  # probabilities are clipped to [1e-6, 1 - 1e-6] before taking logits
TREAT_ALL, TREAT_NONE = "treat all", "treat none"
_RESERVED = ("observed", "pattern", "oracle", TREAT_ALL, TREAT_NONE)
_ORACLE = "true_response_probability"
_BLOCK_ELEMENTS = 4_000_000  # resamples x patients scored at once (about 32 MB per float array)


# --- calibration slope and intercept --------------------------------------------------------------


def _recalibration_input(y_true, probability) -> tuple[np.ndarray, np.ndarray]:
    """Labels as float 0/1 and the logits of the clipped probabilities, both shape (n_patients,); else an InputError."""
    y = np.asarray(y_true)
    p = np.asarray(probability, dtype=float)
    if y.ndim != 1 or p.ndim != 1 or y.size != p.size:
        raise InputError(f"Expected one responder label and one probability per patient; found shapes {y.shape} and {p.shape}.", field="probability")
    y = pd.to_numeric(pd.Series(y), errors="coerce").to_numpy(dtype=float)
    if not np.all((y == 0) | (y == 1)):
        raise InputError("Responder labels must be 0/1 or True/False, with none missing.", field="responder")
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise InputError(f"Calibration slope and intercept need both classes; found {n_pos} responders and {y.size - n_pos} non-responders.", field="responder")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise InputError("Probabilities must be numbers between 0 and 1, with none missing.", field="probability")
    p = np.clip(p, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    return y, np.log(p) - np.log1p(-p)


def _solve(h: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve ``h @ s = g`` for each row: ``h`` (k, p, p), ``g`` (k, p) with p 1 or 2; NaN where ``h`` is singular."""
    with np.errstate(invalid="ignore", divide="ignore"):
        if g.shape[1] == 1:
            return g / h[:, 0]
        det = h[:, 0, 0] * h[:, 1, 1] - h[:, 0, 1] * h[:, 1, 0]
        return np.column_stack([(h[:, 1, 1] * g[:, 0] - h[:, 0, 1] * g[:, 1]) / det, (h[:, 0, 0] * g[:, 1] - h[:, 1, 0] * g[:, 0]) / det])


def _evaluate(weights: np.ndarray, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probability ``expit(eta)`` (k, n_patients) and the weighted Bernoulli log-likelihood of each row (k,)."""
    softplus = np.abs(eta)  # log(1 + exp(eta)) = max(eta, 0) + log1p(exp(-|eta|)), exact for any eta
    np.negative(softplus, out=softplus)
    np.exp(softplus, out=softplus)
    np.log1p(softplus, out=softplus)
    softplus += np.maximum(eta, 0.0)
    softplus -= y * eta
    return expit(eta), -np.einsum("kn,kn->k", weights, softplus)


def _logistic_fit(weights: np.ndarray, y: np.ndarray, design: np.ndarray, offset: np.ndarray, start: np.ndarray, *, max_iter: int = 100,
                  tol: float = 1e-8) -> np.ndarray:
    """Maximum-likelihood logistic regression of many weighted samples at once: Newton's method with step halving.

    Parameters
    ----------
    weights : float array, shape (k, n_patients)
        Weight of each patient in each of k samples (a bootstrap resample's draw counts; ones for the data).
    y : float array, shape (n_patients,)
        Observed responder status, 0/1.
    design : float array, shape (n_patients, p), p 1 or 2
        The model's columns: ``logit P(y=1) = design @ theta + offset``.
    offset : float array, shape (n_patients,)
    start : float array, shape (p,)
        Where every sample's iterations start.

    Returns
    -------
    float array, shape (k, p)
        The estimates; NaN for a sample where the iterations did not converge (a full Newton step
        still larger than ``tol`` relative to the estimates after ``max_iter`` steps).
    """
    k, p = weights.shape[0], design.shape[1]
    theta = np.tile(np.asarray(start, dtype=float), (k, 1))
    converged = np.zeros(k, bool)
    active = np.arange(k)
    pairs = [(i, j) for i in range(p) for j in range(i, p)]
    products = np.column_stack([design[:, i] * design[:, j] for i, j in pairs])  # (n_patients, n_pairs)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        w = weights
        observed = w @ (y[:, None] * design)  # (k, p): the score is observed - expected
        eta = theta @ design.T + offset
        mu, ll = _evaluate(w, y, eta)
        for _ in range(max_iter):
            wm = w * mu
            grad = observed - wm @ design
            mu -= 1.0
            wm *= mu  # -w mu (1 - mu)
            curvature = -(wm @ products)
            h = np.empty((active.size, p, p))
            for column, (i, j) in enumerate(pairs):
                h[:, i, j] = h[:, j, i] = curvature[:, column]
            step = _solve(h, grad)
            change = step @ design.T
            trial_eta = eta + change
            trial_mu, trial_ll = _evaluate(w, y, trial_eta)
            scale = np.ones(active.size)
            for _ in range(40):  # halve the step where the likelihood would fall
                worse = np.flatnonzero(~(trial_ll >= ll - 1e-12 * np.abs(ll)))
                if worse.size == 0:
                    break
                scale[worse] /= 2
                trial_eta[worse] = eta[worse] + scale[worse, None] * change[worse]
                trial_mu[worse], trial_ll[worse] = _evaluate(w[worse], y, trial_eta[worse])
            theta[active] += scale[:, None] * step
            eta, mu, ll = trial_eta, trial_mu, trial_ll
            size = np.abs(step).max(axis=1)  # the full Newton step: near the optimum the error is about its square
            done = ~(size > tol * (1.0 + np.abs(theta[active]).max(axis=1)))  # NaN steps stop too
            converged[active[done]] = np.isfinite(size[done])
            if done.all():
                break
            keep = ~done
            active, eta, mu, ll, observed = active[keep], eta[keep], mu[keep], ll[keep], observed[keep]
            w = weights[active]
    theta[~converged] = np.nan
    return theta


def _separated(weights: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether ``x`` separates the drawn responders from the drawn non-responders (ties allowed), per row: shape (k,).

    Then the slope's maximum-likelihood estimate is infinite.
    """
    drawn = weights > 0
    pos, neg = drawn & (y == 1), drawn & (y == 0)
    lowest_pos, highest_pos = np.where(pos, x, np.inf).min(axis=1), np.where(pos, x, -np.inf).max(axis=1)
    lowest_neg, highest_neg = np.where(neg, x, np.inf).min(axis=1), np.where(neg, x, -np.inf).max(axis=1)
    return (highest_neg <= lowest_pos) | (highest_pos <= lowest_neg)


def _recalibrate(weights: np.ndarray, y: np.ndarray, x: np.ndarray, start: tuple = (0.0, 1.0, 0.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic recalibration of many weighted samples at once.

    Parameters
    ----------
    weights : float array, shape (n_samples, n_patients)
        Weight of each patient in each sample (a bootstrap resample's draw counts; ones for the data).
    y : float array, shape (n_patients,)
        Observed responder status, 0/1.
    x : float array, shape (n_patients,)
        Logit of the predicted probability.
    start : (a, b, a'), default (0, 1, 0)
        Where the iterations start: for bootstrap resamples, the estimates on the data.

    Returns
    -------
    a, slope, intercept : float arrays, shape (n_samples,)
        ``a`` and ``slope`` b of ``logit P(y=1) = a + b x``; ``intercept``: a' of ``logit P(y=1) = a' + x``
        (the slope fixed at 1). ``a`` and ``slope`` are NaN where the prediction separates the
        sample's classes (their maximum-likelihood estimates are infinite) or is constant.
    """
    ones = np.ones((x.size, 1))
    two = _logistic_fit(weights, y, np.column_stack([ones[:, 0], x]), np.zeros_like(x), np.asarray(start[:2], dtype=float))
    two[_separated(weights, y, x)] = np.nan
    intercept = _logistic_fit(weights, y, ones, x, np.asarray(start[2:], dtype=float))[:, 0]
    return two[:, 0], two[:, 1], intercept


def calibration_slope_intercept(y_true, probability) -> tuple[float, float]:
    """Calibration slope and calibration-in-the-large intercept of predicted probabilities.

    Both come from logistic recalibration, fitted by unpenalised maximum likelihood (Newton's method)
    on the logit of the prediction, ``x = logit(p)`` with ``p`` clipped to [1e-6, 1 - 1e-6]:

    * **slope** ``b`` of ``logit P(y=1) = a + b x``. Below 1, the predictions are too extreme
      (over-fitting); above 1, too timid.
    * **intercept** ``a'`` of ``logit P(y=1) = a' + x``, the slope fixed at 1 (``x`` as an
      offset): calibration in the large, on the log-odds scale. Above 0, the model predicts too
      few responses on average; below 0, too many. (This is not the ``a`` of the two-parameter fit,
      which depends on the slope.)

    A perfectly calibrated prediction has slope 1 and intercept 0 (Van Calster et al. 2016,
    J Clin Epidemiol 74:167).

    Parameters
    ----------
    y_true : array-like of bool or 0/1, shape (n_patients,)
        Observed responder status; both classes must be present.
    probability : array-like of float, shape (n_patients,)
        Predicted probability of response, in [0, 1].

    Returns
    -------
    slope, intercept : float
        Unitless slope; intercept in log-odds. The slope is NaN when the prediction separates the
        classes perfectly (its maximum-likelihood estimate is infinite) or is the same for every patient.
    """
    y, x = _recalibration_input(y_true, probability)
    _, slope, intercept = _recalibrate(np.ones((1, y.size)), y, x)
    return float(slope[0]), float(intercept[0])


# --- bootstrap helpers ------------------------------------------------------------------------------


def _resample_counts(y: np.ndarray, n_boot: int, seed: int, level: float) -> np.ndarray:
    """How often each resample of :func:`~core.evaluation.metrics.binary_metrics_ci` draws each patient.

    The draws are those of :func:`~core.evaluation.metrics.metrics_with_ci`, which by its contract
    resamples exactly as :func:`~core.evaluation.metrics.binary_metrics_ci` does for the same
    labels and seed (responders and non-responders separately). A statistic that records the
    positions it is handed reads them back, so every figure here uses the same resampled patients
    as the metrics table. Returns an integer array of shape (n_boot, n_patients).
    """
    n = y.size
    dtype = np.uint16 if n <= np.iinfo(np.uint16).max else np.int32  # a count never exceeds n
    counts = np.zeros((n_boot, n), dtype=dtype)
    drawn = 0

    def record(_, positions):
        nonlocal drawn
        if drawn > 0:  # the first call scores the sample itself
            counts[drawn - 1] = np.bincount(positions.astype(np.int64), minlength=n)
        drawn += 1
        return {"drawn": float(drawn)}

    metrics_with_ci(record, y, np.arange(n, dtype=float), n_boot=n_boot, seed=seed, level=level)
    return counts


def _blocks(counts: np.ndarray):
    """Float blocks of rows of ``counts``, each about ``_BLOCK_ELEMENTS`` values: (start, block)."""
    size = max(1, _BLOCK_ELEMENTS // max(1, counts.shape[1]))
    for start in range(0, counts.shape[0], size):
        yield start, counts[start:start + size].astype(float)


def _auc_of_resamples(weights: np.ndarray, y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC of each weighted resample (ties count one half), shape (n_resamples,).

    ``weights`` (n_resamples, n_patients): draws of each patient; ``y`` (n_patients,) bool;
    ``score`` (n_patients,). Each responder drawn counts the non-responders drawn below its score,
    and half of those tied with it.
    """
    order = np.argsort(score, kind="stable")
    s, yy, w = score[order], y[order], weights[:, order]
    starts = np.r_[0, np.flatnonzero(s[1:] != s[:-1]) + 1]  # runs of tied scores
    neg = np.add.reduceat(w * ~yy, starts, axis=1)
    pos = np.add.reduceat(w * yy, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.einsum("ij,ij->i", pos, below + 0.5 * neg) / (pos.sum(axis=1) * neg.sum(axis=1))


def _interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0 of ``values`` (n_resamples, ...), NaN resamples left out.

    As :func:`~core.evaluation.metrics.metrics_with_ci`: NaN when fewer than half the resamples are valid.
    """
    alpha = (1 - level) / 2
    valid = np.isfinite(values)
    enough = valid.sum(axis=0) >= values.shape[0] / 2
    low = np.full(values.shape[1:], np.nan)
    high = np.full(values.shape[1:], np.nan)
    if np.all(valid):
        low[...], high[...] = np.quantile(values, [alpha, 1 - alpha], axis=0)
    elif np.any(enough):
        masked = np.where(valid, values, np.nan)
        q = np.nanquantile(masked[:, enough] if values.ndim > 1 else masked, [alpha, 1 - alpha], axis=0)
        low[enough], high[enough] = q[0], q[1]
    return low, high


# --- input checks --------------------------------------------------------------------------------


def _count(k: int, noun: str) -> str:
    return f"{k} {noun}{'' if k == 1 else 's'}"


def _check_outcome(name: str, result) -> None:
    if result.outcome != "responder":
        raise InputError(f"model {name!r} was cross-validated on the outcome {result.outcome!r}; the comparison scores probabilities of response, "
                         "so every model must predict 'responder'.", field="outcome")


def _check_patients(name: str, result, index: pd.Index, cohort_name: str) -> None:
    predicted = result.prediction.index
    if predicted.equals(index):
        if not result.prediction_by_repeat.index.equals(index):
            raise InputError(f"model {name!r}: its per-repeat predictions are not indexed by the cohort's patients in the cohort's order.", field="patient_id")
        return
    missing, extra = index.difference(predicted), predicted.difference(index)
    if missing.empty and extra.empty:
        raise InputError(f"model {name!r} predicts the patients of {cohort_name!r} in another order; its folds hold row positions, "
                         "so it must have been cross-validated on this cohort as it is.", field="patient_id")
    parts = []
    if len(missing):
        parts.append(f"{len(missing)} of the cohort's patients {'has' if len(missing) == 1 else 'have'} no prediction (e.g. {', '.join(map(str, missing[:3]))})")
    if len(extra):
        parts.append(f"{_count(len(extra), 'predicted patient')} {'is' if len(extra) == 1 else 'are'} not in the cohort (e.g. {', '.join(map(str, extra[:3]))})")
    raise InputError(f"model {name!r} was not cross-validated on cohort {cohort_name!r}: {'; '.join(parts)}. Train every model on the same cohort.", field="patient_id")


def _check_probabilities(name: str, result) -> None:
    values = result.prediction_by_repeat.to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0) | (values > 1)
    if bad.any():
        raise InputError(f"model {name!r} has {_count(int(bad.sum()), 'out-of-fold prediction')} missing or outside 0 to 1; "
                         "every patient needs a prediction from every repeat.", field="prediction")


def _check_same_folds(reference: str, ref_folds: list, name: str, folds: list) -> None:
    advice = "Cross-validate every model with the same splitter (the same number of folds and repeats and the same seed) on the same cohort."
    if len(folds) != len(ref_folds):
        raise InputError(f"model {name!r} was cross-validated on {len(folds)} folds and {reference!r} on {len(ref_folds)}: they are not the same folds. {advice}", field="folds")
    for ref, fold in zip(ref_folds, folds):
        where = f"repeat {ref.repeat}, fold {ref.fold}"
        if (fold.repeat, fold.fold) != (ref.repeat, ref.fold):
            raise InputError(f"model {name!r} has repeat {fold.repeat}, fold {fold.fold} where {reference!r} has {where}: the folds are in another order. {advice}", field="folds")
        for part, a, b in (("test", ref.test, fold.test), ("training", ref.train, fold.train)):
            if not np.array_equal(np.asarray(a), np.asarray(b)):
                differ = len(set(np.asarray(a).tolist()) ^ set(np.asarray(b).tolist()))
                detail = f"{_count(differ, 'patient')} in one and not the other" if differ else "the same patients in another order"
                raise InputError(f"models {name!r} and {reference!r} were not cross-validated on the same folds: {where} has different {part} patients "
                                 f"({detail}). {advice}", field="folds")


def _patterns(features: pd.DataFrame) -> pd.Series:
    """Modalities each patient has, e.g. "dti+emg+kin+clin" ("none" without any): present = any feature not NaN."""
    by_modality = {}
    for column in features.columns:
        by_modality.setdefault(modality_of(column), []).append(column)
    order = [m for m in MODALITIES if m in by_modality]
    if not order:
        return pd.Series("none", index=features.index, name="pattern", dtype=object)
    present = np.column_stack([features[by_modality[m]].notna().any(axis=1).to_numpy() for m in order])
    combos, which = np.unique(present, axis=0, return_inverse=True)
    labels = np.array(["+".join(m for m, has in zip(order, combo) if has) or "none" for combo in combos], dtype=object)
    return pd.Series(labels[np.ravel(which)], index=features.index, name="pattern", dtype=object)


# --- the comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelComparison:
    """Models cross-validated on the same folds of one cohort, side by side. Made by :func:`compare_models`.

    Attributes
    ----------
    reference : str
        The model every other is compared with (the first one given).
    models : tuple of str
        Names of the models, in the order given.
    level : float
        Two-sided coverage of every interval (e.g. 0.95).
    n_boot, seed : int
        Bootstrap resamples and their seed.
    scheme : str
        The cross-validation scheme in words (the reference run's ``scheme``).
    scores : pandas.DataFrame indexed by ``patient_id``, shape (n_patients, n_models + 2 or 3)
        ``observed`` (responder, 0/1), one column per model (out-of-fold probability of response,
        mean over repeats), ``pattern`` (the modalities the patient has, e.g. "emg+kin+clin") and,
        for a synthetic cohort, ``oracle`` (the true probability of response).
    metrics : pandas.DataFrame, one row per (model, metric)
        ``model``, ``metric`` (:data:`COMPARED_METRICS`: ``auc``, ``pr_auc``, ``brier``, ``ece``
        (probability, 10 quantile bins), ``calibration_slope``, ``calibration_intercept`` (log-odds),
        see :func:`calibration_slope_intercept`), ``estimate`` (on all patients), ``ci_low``,
        ``ci_high`` (percentile bootstrap, classes resampled separately, the same resamples for every model).
    paired : pandas.DataFrame, one row per (model other than the reference, metric of :data:`PAIRED_METRICS`)
        ``model``, ``reference``, ``metric``, ``mean`` (mean over folds of the metric on the fold's
        test patients, model minus reference; for the Brier score negative is better), ``ci_low``,
        ``ci_high``, ``p`` (corrected resampled t-test), ``n_folds``.
    paired_per_fold : pandas.DataFrame, one row per (fold, model, metric)
        ``repeat``, ``fold``, ``model``, ``metric``, ``difference`` (model minus reference on the
        fold's test patients, from that repeat's predictions), ``value`` and ``reference_value``.
    decision_curves : pandas.DataFrame, one row per (threshold, curve)
        ``threshold`` (:data:`DECISION_THRESHOLDS`), ``model`` (a model, "treat all" or
        "treat none"), ``net_benefit`` (responders treated per patient, net of the harm of treating
        non-responders), ``ci_low``, ``ci_high`` (bootstrap; treat-all's is fixed, since the
        resamples keep the prevalence).
    by_pattern : pandas.DataFrame, one row per (missing-modality pattern, model)
        ``pattern``, ``model``, ``n``, ``n_responders``, ``auc``, ``ci_low``, ``ci_high``
        (bootstrap within the pattern, the same resamples for every model) and ``note``: why the AUC is NaN (fewer than
        :data:`MIN_PER_CLASS` patients of a class), else "". Largest pattern first.
    oracle : pandas.DataFrame indexed by model, or None
        For a cohort with the true probability of response: ``auc``, ``oracle_auc`` (AUC of the
        true probabilities: no model beats it on average), ``oracle_ci_low``, ``oracle_ci_high``,
        ``fraction`` (``auc / oracle_auc``), ``ci_low``, ``ci_high`` (paired bootstrap of the
        fraction: model and oracle on the same resamples). None otherwise.
    """

    reference: str
    models: tuple
    level: float
    n_boot: int
    seed: int
    scheme: str
    scores: pd.DataFrame
    metrics: pd.DataFrame
    paired: pd.DataFrame
    paired_per_fold: pd.DataFrame
    decision_curves: pd.DataFrame
    by_pattern: pd.DataFrame
    oracle: pd.DataFrame | None

    def summary_sentence(self) -> str:
        """Which model has the higher AUC, by how much, and whether the paired interval excludes zero.

        One sentence per model other than the reference, e.g. "fusion's AUC is 0.021 higher than
        xgboost's (mean over folds; 95% CI 0.004 to 0.038, corrected resampled t-test over 25 test
        folds, p = 0.021): the interval excludes zero." Said from the side of the model with the
        higher mean; the difference is the paired per-fold one of :attr:`paired`. Model names are
        written as given.
        """
        rows = self.paired[self.paired["metric"] == "auc"]
        if rows.empty:
            auc = self.metrics.set_index(["model", "metric"]).loc[(self.reference, "auc")]
            return f"{self.reference}'s AUC is {auc['estimate']:.3f} ({self._pct} CI {auc['ci_low']:.3f} to {auc['ci_high']:.3f}); there is no other model to compare it with."
        return " ".join(self._sentence(row) for row in rows.itertuples())

    @property
    def _pct(self) -> str:
        return f"{100 * self.level:g}%"

    def _sentence(self, row) -> str:
        test = f"corrected resampled t-test over {row.n_folds} test folds, p {_p_text(row.p)}"
        if row.mean == 0 and row.ci_low == 0 and row.ci_high == 0:
            return f"{row.model} and {row.reference} have the same AUC on every test fold (difference 0.000, {test}): the data do not show a difference."
        if row.mean >= 0:
            high, low, mean, ci = row.model, row.reference, row.mean, (row.ci_low, row.ci_high)
        else:  # said from the better model's side
            high, low, mean, ci = row.reference, row.model, -row.mean, (-row.ci_high, -row.ci_low)
        excludes = ci[0] > 0 or ci[1] < 0
        verdict = "the interval excludes zero." if excludes else "the interval includes zero, so the data do not show a difference."
        return f"{high}'s AUC is {mean:.3f} higher than {low}'s (mean over folds; {self._pct} CI {ci[0]:.3f} to {ci[1]:.3f}, {test}): {verdict}"

    def to_csv_tables(self) -> dict[str, pd.DataFrame]:
        """The tables for download, by file stem: ``scores``, ``metrics``, ``paired``, ``paired_per_fold``,
        ``decision_curves``, ``by_pattern`` and (synthetic cohorts) ``oracle``; each with its index as columns."""
        tables = {"scores": self.scores.reset_index(), "metrics": self.metrics, "paired": self.paired, "paired_per_fold": self.paired_per_fold,
                  "decision_curves": self.decision_curves, "by_pattern": self.by_pattern}
        if self.oracle is not None:
            tables["oracle"] = self.oracle.reset_index()
        return {name: table.copy() for name, table in tables.items()}


def _p_text(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"= {p:.3f}"


def compare_models(cohort, results: Mapping[str, CVResult], *, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> ModelComparison:
    """Compare models cross-validated on the same folds of a cohort: metrics, paired differences, decision curves.

    Parameters
    ----------
    cohort : :class:`~core.data.cohort.Cohort`
        The cohort every model was cross-validated on (its ``features``, ``outcomes`` with
        ``responder`` and, for synthetic cohorts, ``true_response_probability``).
    results : mapping of str to :class:`~core.modelling.validation.CVResult`
        Name -> out-of-fold results of the ``responder`` outcome, all on the same folds; the first
        is the reference of the paired comparisons. Names must differ from "observed", "pattern",
        "oracle", "treat all" and "treat none".
    n_boot : int, default 1000
        Bootstrap resamples of every interval. Memory: ``n_boot x n_patients`` counts (4 MB for
        1000 x 2,000). About 5 s for 1000 resamples of 2,000 patients and 3 models on two busy cores,
        most of it the calibration slope and intercept of every resample (Newton iterations on all at once).
    seed : int, default 0
        Seed of the resampling; the same seed gives the same intervals.
    level : float, default 0.95
        Two-sided coverage of the intervals.

    Returns
    -------
    ModelComparison

    Raises
    ------
    InputError
        No model; a reserved name; an outcome other than ``responder``; a model whose patients differ
        from the cohort's; folds that differ between models (names the fold and whether its
        training or test patients differ); missing predictions or probabilities outside [0, 1].
    """
    if not results:
        raise InputError("Expected at least one cross-validated model to compare; found none.", field="results")
    names = [str(n) for n in results]
    clash = [n for n in names if n in _RESERVED]
    if clash:
        raise InputError(f"model name(s) {clash} are reserved for the comparison's own columns; rename them.", field="results")
    if len(set(names)) != len(names):
        raise InputError(f"model names must differ; found {names}.", field="results")
    runs = dict(zip(names, results.values()))
    cohort_name = getattr(cohort, "name", "cohort")
    index = cohort.features.index
    reference = names[0]
    for name, result in runs.items():
        _check_outcome(name, result)
        _check_patients(name, result, index, cohort_name)
        _check_same_folds(reference, runs[reference].folds, name, result.folds)
        missing = [f"repeat_{r}" for r in sorted({f.repeat for f in result.folds}) if f"repeat_{r}" not in result.prediction_by_repeat.columns]
        if missing:
            raise InputError(f"model {name!r} has no per-repeat predictions {missing}.", field="prediction_by_repeat")
        _check_probabilities(name, result)

    observed = pd.to_numeric(cohort.outcomes["responder"], errors="coerce")
    if observed.isna().any() or not observed.isin([0, 1]).all():
        raise InputError("the cohort's responder outcome must be 0/1 (or True/False) for every patient.", source=cohort_name, field="responder")
    y = observed.to_numpy(dtype=int)
    scores = pd.DataFrame({"observed": y}, index=index)
    for name, result in runs.items():
        scores[name] = result.prediction.to_numpy(dtype=float)
    scores["pattern"] = _patterns(cohort.features)
    has_oracle = _ORACLE in cohort.outcomes.columns
    if has_oracle:
        scores["oracle"] = cohort.outcomes[_ORACLE].to_numpy(dtype=float)

    counts = _resample_counts(y, n_boot, seed, level)
    metrics = _metric_table(scores, names, counts, n_boot=n_boot, seed=seed, level=level)
    curves = _decision_curves(scores, names, counts, level)
    oracle = _oracle_table(scores, names, counts, level) if has_oracle else None
    paired, per_fold = _paired(scores, runs, reference, level)
    by_pattern = _by_pattern(scores, names, n_boot=n_boot, seed=seed, level=level)
    return ModelComparison(reference=reference, models=tuple(names), level=float(level), n_boot=int(n_boot), seed=int(seed),
                           scheme=str(getattr(runs[reference], "scheme", "")), scores=scores, metrics=metrics, paired=paired,
                           paired_per_fold=per_fold, decision_curves=curves, by_pattern=by_pattern, oracle=oracle)


def _metric_table(scores: pd.DataFrame, names: list, counts: np.ndarray, *, n_boot: int, seed: int, level: float) -> pd.DataFrame:
    y = scores["observed"].to_numpy()
    rows = []
    for name in names:
        p = scores[name].to_numpy()
        table = binary_metrics_ci(y, p, n_boot=n_boot, seed=seed, level=level)
        for metric in COMPARED_METRICS[:4]:
            rows.append((name, metric, float(table.at[metric, "estimate"]), float(table.at[metric, "ci_low"]), float(table.at[metric, "ci_high"])))
        yf, x = _recalibration_input(y, p)
        fit = [float(v[0]) for v in _recalibrate(np.ones((1, yf.size)), yf, x)]  # a, slope, intercept on the data
        slope, intercept = fit[1], fit[2]
        first_guess = (*(fit[:2] if np.all(np.isfinite(fit[:2])) else (0.0, 1.0)), fit[2] if np.isfinite(fit[2]) else 0.0)
        values = np.empty((counts.shape[0], 2))
        for start, block in _blocks(counts):
            values[start:start + len(block)] = np.column_stack(_recalibrate(block, yf, x, first_guess)[1:])
        low, high = _interval(values, level)
        rows.append((name, "calibration_slope", slope, low[0], high[0]))
        rows.append((name, "calibration_intercept", intercept, low[1], high[1]))
    return pd.DataFrame(rows, columns=["model", "metric", "estimate", "ci_low", "ci_high"])


def _decision_curves(scores: pd.DataFrame, names: list, counts: np.ndarray, level: float) -> pd.DataFrame:
    y = scores["observed"].to_numpy().astype(bool)
    n = y.size
    t = DECISION_THRESHOLDS
    odds = t / (1 - t)
    parts = []
    first = None
    for name in names:
        p = scores[name].to_numpy()
        curve = decision_curve(y, p, t)
        first = curve if first is None else first
        treated = (p[:, None] >= t[None, :]).astype(float)  # (n_patients, n_thresholds)
        values = np.empty((counts.shape[0], t.size))
        for start, block in _blocks(counts):
            tp, fp = (block * y) @ treated, (block * ~y) @ treated
            values[start:start + len(block)] = (tp - fp * odds) / n  # stratified resamples draw n patients
        low, high = _interval(values, level)
        parts.append(pd.DataFrame({"threshold": t, "model": name, "net_benefit": curve["net_benefit_model"].to_numpy(), "ci_low": low, "ci_high": high}))
    treat_all = first["net_benefit_treat_all"].to_numpy()
    parts.append(pd.DataFrame({"threshold": t, "model": TREAT_ALL, "net_benefit": treat_all, "ci_low": treat_all, "ci_high": treat_all}))
    zero = np.zeros(t.size)
    parts.append(pd.DataFrame({"threshold": t, "model": TREAT_NONE, "net_benefit": zero, "ci_low": zero, "ci_high": zero}))
    return pd.concat(parts, ignore_index=True)


def _oracle_table(scores: pd.DataFrame, names: list, counts: np.ndarray, level: float) -> pd.DataFrame:
    y = scores["observed"].to_numpy().astype(bool)
    truth = scores["oracle"].to_numpy(dtype=float)
    if not np.all(np.isfinite(truth)):
        raise InputError("the cohort's true response probabilities have missing values.", field=_ORACLE)
    oracle_auc = roc_auc(y, truth)
    boot = {name: np.empty(counts.shape[0]) for name in ["oracle", *names]}
    for start, block in _blocks(counts):
        for name in boot:
            boot[name][start:start + len(block)] = _auc_of_resamples(block, y, scores[name].to_numpy(dtype=float))
    oracle_low, oracle_high = _interval(boot["oracle"], level)
    rows = []
    for name in names:
        auc = roc_auc(y, scores[name].to_numpy())
        low, high = _interval(boot[name] / boot["oracle"], level)
        rows.append({"model": name, "auc": auc, "oracle_auc": oracle_auc, "oracle_ci_low": float(oracle_low), "oracle_ci_high": float(oracle_high),
                     "fraction": auc / oracle_auc, "ci_low": float(low), "ci_high": float(high)})
    return pd.DataFrame(rows).set_index("model")


def _paired(scores: pd.DataFrame, runs: dict, reference: str, level: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    y = scores["observed"].to_numpy()
    folds = runs[reference].folds
    by_repeat = {name: result.prediction_by_repeat for name, result in runs.items()}
    values = {}  # (model, fold number) -> {metric: value}
    for name in runs:
        for number, fold in enumerate(folds):
            p = by_repeat[name][f"repeat_{fold.repeat}"].to_numpy(dtype=float)[fold.test]
            figures = binary_metrics(y[fold.test], p)
            values[name, number] = {m: float(figures[m]) for m in PAIRED_METRICS}
    n_train = np.array([len(f.train) for f in folds], dtype=float)
    n_test = np.array([len(f.test) for f in folds], dtype=float)
    rows, per_fold = [], []
    for name in list(runs)[1:]:
        for metric in PAIRED_METRICS:
            model_values = np.array([values[name, k][metric] for k in range(len(folds))])
            reference_values = np.array([values[reference, k][metric] for k in range(len(folds))])
            diffs = model_values - reference_values
            test = corrected_resampled_ttest(diffs, n_train, n_test, level=level)
            rows.append({"model": name, "reference": reference, "metric": metric, "mean": test["mean"], "ci_low": test["ci_low"], "ci_high": test["ci_high"],
                         "p": test["p"], "n_folds": int(test["n_folds"])})
            per_fold.append(pd.DataFrame({"repeat": [f.repeat for f in folds], "fold": [f.fold for f in folds], "model": name, "metric": metric,
                                          "difference": diffs, "value": model_values, "reference_value": reference_values}))
    paired = pd.DataFrame(rows, columns=["model", "reference", "metric", "mean", "ci_low", "ci_high", "p", "n_folds"])
    columns = ["repeat", "fold", "model", "metric", "difference", "value", "reference_value"]
    per_fold_table = pd.concat(per_fold, ignore_index=True)[columns] if per_fold else pd.DataFrame(columns=columns)
    return paired, per_fold_table


def _by_pattern(scores: pd.DataFrame, names: list, *, n_boot: int, seed: int, level: float) -> pd.DataFrame:
    sizes = scores["pattern"].value_counts(sort=False)
    order = sorted(sizes.index, key=lambda pattern: (-sizes[pattern], str(pattern)))
    rows = []
    for pattern in order:
        part = scores[scores["pattern"] == pattern]
        y = part["observed"].to_numpy()
        n, n_pos = int(y.size), int(y.sum())
        n_neg = n - n_pos
        note = ""
        if min(n_pos, n_neg) < MIN_PER_CLASS:
            few = [f"{k} {what}{'' if k == 1 else 's'}" for k, what in ((n_pos, "responder"), (n_neg, "non-responder")) if k < MIN_PER_CLASS]
            note = f"AUC not estimated: {' and '.join(few)} (at least {MIN_PER_CLASS} of each class needed)"
        for name in names:
            auc = low = high = np.nan
            if not note:
                auc, low, high = roc_auc_ci(y, part[name].to_numpy(), n_boot=n_boot, seed=seed, level=level)
            rows.append({"pattern": pattern, "model": name, "n": n, "n_responders": n_pos, "auc": auc, "ci_low": low, "ci_high": high, "note": note})
    return pd.DataFrame(rows, columns=["pattern", "model", "n", "n_responders", "auc", "ci_low", "ci_high", "note"])
