"""What a synthetic cohort's known truth says about a model: the ceiling AUC, and how well
importance recovers the planted effects.
"""

from __future__ import annotations

import pandas as pd
from scipy.stats import spearmanr

from core.data.cohort import Cohort, GroundTruth
from core.data.schema import modality_of


def bayes_optimal_auc(cohort: Cohort, n_boot: int = 500) -> tuple[float, float, float] | None:
    """AUC of the true response probabilities against the observed labels, with a 95% CI.

    No model can beat it on average on this cohort: it is the ceiling for out-of-fold AUC.
    None for cohorts without a ground truth.
    """
    from core.evaluation.metrics import roc_auc_ci

    if "true_response_probability" not in cohort.outcomes:
        return None
    return roc_auc_ci(cohort.outcomes["responder"], cohort.outcomes["true_response_probability"], n_boot=n_boot)


def importance_recovery(truth: GroundTruth, importance: pd.Series) -> tuple[pd.DataFrame, float]:
    """Planted effect against a recovered importance (e.g. mean |SHAP|) for every feature.

    Features with no planted effect count as 0, so a model that credits proxies is penalised.
    Returns ``(table, rho)``: columns ``planted_effect``, ``mean_abs_shap``, ``modality``
    indexed by feature, and Spearman's rho between the two (NaN below three features).
    """
    planted = truth.feature_effects.set_index("feature")["effect"].reindex(importance.index).fillna(0.0)
    table = pd.DataFrame({"planted_effect": planted, "mean_abs_shap": importance, "modality": [modality_of(f) for f in importance.index]})
    table.index.name = "feature"
    rho = float(spearmanr(table["planted_effect"], table["mean_abs_shap"]).statistic) if len(table) > 2 else float("nan")
    return table, rho
