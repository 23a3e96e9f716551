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


def cause_recovery(truth: GroundTruth, importance: pd.Series) -> tuple[pd.DataFrame, float]:
    """Planted effect against recovered importance, summed over the features of each cause.

    Correlated measurements of one cause (lesion load, FA asymmetry, affected-CST FA) share the
    SHAP credit of the one feature the term was planted on, which lowers the feature-level rho;
    summed by cause (:data:`core.synth.outcome.FEATURE_CAUSES`) the credit adds up again.
    Returns ``(table, rho)``: columns ``cause`` (label), ``features``, ``planted_effect`` and
    ``mean_abs_shap`` (sums over the cause's features) indexed by cause key, and Spearman's rho.
    """
    from core.synth.outcome import CAUSES, FEATURE_CAUSES

    features, _ = importance_recovery(truth, importance)
    features = features.assign(cause=[FEATURE_CAUSES.get(f, "none") for f in features.index])
    grouped = features.groupby("cause", sort=False)
    table = pd.DataFrame({
        "cause": [CAUSES[c] for c in grouped.groups],
        "features": [", ".join(group.index) for _, group in grouped],
        "planted_effect": grouped["planted_effect"].sum(),
        "mean_abs_shap": grouped["mean_abs_shap"].sum(),
    }).sort_values("planted_effect", ascending=False)
    table.index.name = "cause_key"
    rho = float(spearmanr(table["planted_effect"], table["mean_abs_shap"]).statistic) if len(table) > 2 else float("nan")
    return table, rho


def top_k_recall(truth: GroundTruth, importance: pd.Series, k: int | None = None) -> dict:
    """Share of the planted features among the ``k`` features of largest importance.

    ``k`` defaults to the number of features with a planted effect, so 1.0 means the model's top
    features are exactly the planted ones. Returns ``{"k", "recall", "planted", "found"}``.
    """
    table, _ = importance_recovery(truth, importance)
    planted = list(table.index[table["planted_effect"] > 0])
    k = len(planted) if k is None else int(k)
    top = list(table["mean_abs_shap"].sort_values(ascending=False, kind="stable").index[:k])
    found = [f for f in top if f in planted]
    return {"k": k, "recall": len(found) / k if k else float("nan"), "planted": planted, "found": found}


def modality_recovery(truth: GroundTruth, shapley: pd.DataFrame) -> tuple[pd.DataFrame, float]:
    """Each modality's planted contribution beside its modality Shapley value from an ablation.

    ``shapley`` is :meth:`core.ablation.AblationResult.shapley`. Returns ``(table, rho)``: per
    modality ``planted``, ``shapley``, their shares of the totals and ranks (1 = largest), and
    Spearman's rho between planted contribution and Shapley value (NaN below three modalities).
    """
    modalities = list(shapley.index)
    planted = truth.modality_effects().reindex(modalities).fillna(0.0)
    table = pd.DataFrame({"planted": planted, "shapley": shapley["value"]})
    table["planted_share"] = table["planted"] / table["planted"].sum() if table["planted"].sum() else 0.0
    table["shapley_share"] = shapley["share"]
    table["planted_rank"] = table["planted"].rank(ascending=False, method="min").astype(int)
    table["shapley_rank"] = shapley["rank"]
    table.index.name = "modality"
    rho = float(spearmanr(table["planted"], table["shapley"]).statistic) if len(table) > 2 else float("nan")
    return table, rho
