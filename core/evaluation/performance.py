"""Performance of a cross-validated response model beside its baselines, on the same patients.

One table holds every patient's observed outcome, the model's out-of-fold prediction, the clinical
baseline's out-of-fold prediction on the same folds and the PREP2 rule's score
(:func:`score_table`). Everything else here is derived from it: bootstrap 95% intervals of every
figure of merit for the model and each baseline (:func:`binary_ci_tables`,
:func:`regression_ci_tables`), the spread of the model's figure across repeats
(:func:`repeat_spread`) and the calibration line of a continuous prediction
(:func:`calibration_line`). The Prediction page, the model report and the command line all read
their numbers from these functions.

Example
-------
>>> scores = score_table(cohort, result)                      # doctest: +SKIP
>>> tables = binary_ci_tables(scores, threshold=0.5)
>>> tables[MODEL].loc["auc", ["estimate", "ci_low", "ci_high"]]
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.evaluation.metrics import binary_metrics_ci, fold_spread, metrics_with_ci, regression_metrics, roc_auc
from core.modelling.baselines import PREP2_SCORE, clinical_baseline, prep2_score

__all__ = [
    "MODEL", "CLINICAL", "PREP2", "MODEL_STROKE", "N_BOOT", "PREP2_MIN_PATIENTS",
    "score_table", "prep2_usable", "prep2_probability", "binary_ci_tables", "regression_ci_tables", "repeat_spread", "calibration_line",
]

# Names of the compared predictions: the keys of the CI tables and the columns of the report.
MODEL, CLINICAL, PREP2 = "Model (xgboost)", "Clinical baseline", "PREP2 rule (stroke)"
MODEL_STROKE = "Model on PREP2's patients"
N_BOOT = 1000  # bootstrap resamples of every interval the page and the report show
PREP2_MIN_PATIENTS = 10  # fewer stroke patients with PREP2's inputs give no useful AUC
_PREP2_TOP = max(PREP2_SCORE.values())  # Excellent = 3


def score_table(cohort, result) -> pd.DataFrame:
    """Every patient's outcome beside the model's and the baselines' out-of-fold predictions.

    Parameters
    ----------
    cohort : :class:`~core.data.cohort.Cohort` the run was trained on.
    result : :class:`~core.modelling.validation.CVResult` of that cohort; the clinical baseline is
        refitted on its folds, so both predictions come from the same training patients.

    Returns
    -------
    pandas.DataFrame indexed by ``patient_id``, shape (n_patients, 6), or 7 columns for a binary outcome:
        ``indication`` (str; "all" when the cohort has none), ``responder`` (bool),
        ``observed`` (the run's outcome as float: 0/1 responder, or improvement in %),
        ``model`` (out-of-fold prediction, mean over repeats: probability of response, or
        improvement in %), ``clinical`` (the clinical baseline's, same units), ``prep2_score``
        (binary outcome only: PREP2 category as 0-3, NaN for patients the rule does not apply to)
        and ``error`` (``|model - observed|``: probability units, or % points).
    """
    observed = cohort.outcomes[result.outcome].astype(float)
    table = pd.DataFrame({
        "indication": cohort.patients["indication"] if "indication" in cohort.patients else "all",
        "responder": cohort.outcomes["responder"].astype(bool),
        "observed": observed,
        "model": result.prediction,
        "clinical": clinical_baseline(cohort, result.outcome, result.folds),
    })  # fmt: skip
    if result.is_binary:
        table["prep2_score"] = prep2_score(cohort)
    table["error"] = (table["model"] - observed).abs()
    return table


def prep2_usable(scores: pd.DataFrame) -> pd.Series | None:
    """The patients PREP2 can be judged on, or None when they are too few to judge it.

    Parameters
    ----------
    scores : :func:`score_table` of a run.

    Returns
    -------
    pandas.Series of bool, shape (n_patients,), True where the PREP2 score exists; None when the
    table has no PREP2 score (a continuous outcome), or fewer than :data:`PREP2_MIN_PATIENTS`
    patients have one, or they are all of one class.
    """
    if "prep2_score" not in scores:
        return None
    has = scores["prep2_score"].notna()
    y = scores.loc[has, "observed"]
    return has if has.sum() >= PREP2_MIN_PATIENTS and 0 < y.sum() < len(y) else None


def prep2_probability(score) -> np.ndarray:
    """PREP2's category (0 Poor ... 3 Excellent) scaled to 0-1, so it can be scored like a probability.

    A threshold of 0.5 then calls a responder at Good or Excellent. The scaled categories are a
    ranking, not a calibrated probability: their Brier score and calibration error mean nothing.
    Shape (n_patients,), as ``score``.
    """
    return np.asarray(score, dtype=float) / _PREP2_TOP


def binary_ci_tables(scores: pd.DataFrame, threshold: float = 0.5, *, n_boot: int = N_BOOT) -> dict[str, pd.DataFrame]:
    """Every binary figure of merit with its bootstrap 95% interval, for the model and each baseline.

    Parameters
    ----------
    scores : :func:`score_table` of a run with the responder outcome.
    threshold : decision threshold (probability of response) of the threshold-dependent figures.
    n_boot : bootstrap resamples over patients (stratified by class; seed 0, so the same call gives
        the same intervals).

    Returns
    -------
    dict of name -> :func:`~core.evaluation.metrics.binary_metrics_ci` table (index: figure;
    columns ``estimate``, ``ci_low``, ``ci_high``, ``n_valid``):

    - :data:`MODEL`, :data:`CLINICAL`: on every patient;
    - :data:`PREP2`: the rule's category as :func:`prep2_probability`, on :func:`prep2_usable`'s
      patients, with Brier score and ECE blanked (NaN, ``n_valid`` 0): a category carries no
      calibration;
    - :data:`MODEL_STROKE`: the model on those same patients, for a fair comparison.

    The last two only when :func:`prep2_usable` finds enough patients.
    """
    y = scores["observed"].to_numpy()
    tables = {MODEL: binary_metrics_ci(y, scores["model"].to_numpy(), threshold, n_boot=n_boot),
              CLINICAL: binary_metrics_ci(y, scores["clinical"].to_numpy(), threshold, n_boot=n_boot)}
    stroke = prep2_usable(scores)
    if stroke is not None:
        part = scores[stroke]
        prep2 = binary_metrics_ci(part["observed"].to_numpy(), prep2_probability(part["prep2_score"]), threshold, n_boot=n_boot)
        prep2.loc[["brier", "ece"], ["estimate", "ci_low", "ci_high", "n_valid"]] = [np.nan, np.nan, np.nan, 0]
        tables[PREP2] = prep2
        tables[MODEL_STROKE] = binary_metrics_ci(part["observed"].to_numpy(), part["model"].to_numpy(), threshold, n_boot=n_boot)
    return tables


def regression_ci_tables(scores: pd.DataFrame, *, n_boot: int = N_BOOT) -> dict[str, pd.DataFrame]:
    """Every regression figure of merit (MAE and RMSE in % points, R², Pearson r) with its bootstrap 95% interval.

    Parameters
    ----------
    scores : :func:`score_table` of a run with the continuous outcome (improvement in %).
    n_boot : bootstrap resamples over patients (seed 0).

    Returns
    -------
    dict of :data:`MODEL` and :data:`CLINICAL` -> :func:`~core.evaluation.metrics.metrics_with_ci`
    table of :func:`~core.evaluation.metrics.regression_metrics` (index: figure; columns
    ``estimate``, ``ci_low``, ``ci_high``, ``n_valid``).
    """
    y = scores["observed"].to_numpy()
    return {name: metrics_with_ci(regression_metrics, y, scores[column].to_numpy(), n_boot=n_boot) for name, column in ((MODEL, "model"), (CLINICAL, "clinical"))}


def repeat_spread(result, observed) -> tuple[pd.Series, pd.DataFrame]:
    """ROC AUC (binary outcome) or R² (continuous) of each repeat's out-of-fold predictions, and their spread.

    Parameters
    ----------
    result : :class:`~core.modelling.validation.CVResult`; each of its repeats is a full
        out-of-fold pass with its own split.
    observed : shape (n_patients,), the outcome in ``result.prediction_by_repeat``'s row order
        (``score_table(...)["observed"]``).

    Returns
    -------
    per_repeat : pandas.Series named "auc" or "r2", one value per repeat (index: the repeat columns).
    spread : :func:`~core.evaluation.metrics.fold_spread` of it, indexed by that name: ``mean``,
        ``sd`` (ddof 1), ``min``, ``max``, ``n``. Repeats share patients, so ``sd`` describes how
        much the figure moves with another split; it is not a standard error.
    """
    name = "auc" if result.is_binary else "r2"
    figure = (lambda p: roc_auc(observed, p)) if result.is_binary else (lambda p: regression_metrics(observed, p)["r2"])
    per_repeat = result.prediction_by_repeat.apply(figure).rename(name)
    table = per_repeat.rename_axis("repeat").reset_index()
    return per_repeat, fold_spread(table, name)


def calibration_line(observed, predicted) -> tuple[float, float]:
    """Least-squares line of observed on predicted improvement: ``(slope, intercept)``.

    Parameters
    ----------
    observed, predicted : shape (n_patients,), improvement in %.

    Returns
    -------
    slope (unitless) and intercept (% points). A perfectly calibrated prediction has slope 1 and
    intercept 0; a slope below 1 means the predictions spread wider than the outcomes they predict.
    """
    slope, intercept = np.polyfit(np.asarray(predicted, dtype=float), np.asarray(observed, dtype=float), 1)
    return float(slope), float(intercept)
