"""What a synthetic cohort's known truth says about a model: the ceiling AUC, and how well
importance recovers the planted effects.
"""

from __future__ import annotations

import numpy as np
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


def saliency_regions(saliency: np.ndarray, lesion_mask_2mm: np.ndarray | None, affected_hemisphere: str | None) -> pd.DataFrame:
    """Where the FA branch looks: the share of a patient's |FA saliency| inside the lesion and the
    affected corticospinal tract, against the share of the crop's volume they fill.

    Parameters
    ----------
    saliency : (24, 11, 28) attributions on the 4 mm crop (:meth:`core.modelling.fusion.FusionClassifier.fa_saliency`).
    lesion_mask_2mm : (99, 117, 95) bool lesion on the MNI152 2 mm grid, or None.
    affected_hemisphere : "left" or "right", or None (both tracts then count as the tract).

    Returns
    -------
    DataFrame indexed by region ("lesion", "affected CST"): ``saliency_share`` (0..1),
    ``volume_share`` (0..1) and ``enrichment`` (their ratio; 1 = no more than chance, NaN for an
    empty region). A 4 mm voxel belongs to a region when at least half of its 2 mm voxels do.
    """
    from core.anatomy import load_anatomy
    from core.features.tensors import fa_crop

    magnitude = np.abs(np.asarray(saliency, dtype=float))
    anatomy = load_anatomy()
    tract = np.zeros(99 * 117 * 95, np.float32)
    for side in ("left", "right") if affected_hemisphere not in ("left", "right") else (affected_hemisphere,):
        tract[anatomy.cst_index[side]] = 1.0
    regions = {"lesion": None if lesion_mask_2mm is None else fa_crop(np.asarray(lesion_mask_2mm, np.float32)) >= 0.5,
               "affected CST": fa_crop(tract.reshape(99, 117, 95)) >= 0.5}
    total = magnitude.sum()
    rows = {}
    for name, region in regions.items():
        if region is None or not region.any():
            rows[name] = {"saliency_share": np.nan, "volume_share": 0.0, "enrichment": np.nan}
            continue
        share = float(magnitude[region].sum() / total) if total > 0 else np.nan
        volume = float(region.mean())
        rows[name] = {"saliency_share": share, "volume_share": volume, "enrichment": share / volume}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("region")


def raw_signal_note(cohort: Cohort) -> str:
    """One sentence on why a model of the raw data can or cannot be expected to beat xgboost on the
    engineered features of this cohort, from what its generator planted (or, for uploads, what is unknown)."""
    config = (cohort.provenance or {}).get("config") or {}
    if cohort.ground_truth is None or not config:
        return ("Whether the raw recordings hold outcome signal that the engineered features miss is unknown for an uploaded cohort; "
                "on small cohorts gradient boosting on good features usually wins (Grinsztajn et al. 2022).")
    if float(config.get("lesion_position_effect", 0.0) or 0.0) > 0:
        return (f"Here the outcome also depends on where the lesion sits front to back ({float(config['lesion_position_effect']):g} logits), "
                "which the FA map shows and no engineered feature measures: only a model of the raw data can use it.")
    return ("Every effect planted in this cohort is summarised by an engineered feature, so xgboost on the features already has the "
            "signal, and on tabular data of this size gradient boosting usually beats deep networks (Grinsztajn et al. 2022).")
