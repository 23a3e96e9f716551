"""What a synthetic cohort's known truth says about a model: the ceiling AUC, and how well
importance recovers the planted effects.
"""

from __future__ import annotations

from core.data.cohort import Cohort


def bayes_optimal_auc(cohort: Cohort, n_boot: int = 500) -> tuple[float, float, float] | None:
    """AUC of the true response probabilities against the observed labels, with a 95% CI.

    No model can beat it on average on this cohort: it is the ceiling for out-of-fold AUC.
    None for cohorts without a ground truth.
    """
    from core.evaluation.metrics import roc_auc_ci

    if "true_response_probability" not in cohort.outcomes:
        return None
    return roc_auc_ci(cohort.outcomes["responder"], cohort.outcomes["true_response_probability"], n_boot=n_boot)
