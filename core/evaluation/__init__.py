"""How good a model is, with its uncertainty: metrics with confidence intervals, statistics of
cross-validated comparisons, and recovery of a synthetic cohort's ground truth."""

from core.evaluation.ground_truth import bayes_optimal_auc
from core.evaluation.metrics import (METRICS, MetricSpec, binary_metrics, binary_metrics_ci, calibration_curve, confusion_at, decision_curve,
                                     expected_calibration_error, fold_spread, metrics_with_ci, regression_metrics, roc_auc, roc_auc_ci)
from core.evaluation.stats import corrected_resampled_ttest, holm, shapley_values

__all__ = [
    "METRICS", "MetricSpec", "roc_auc", "roc_auc_ci", "binary_metrics", "binary_metrics_ci", "confusion_at", "calibration_curve",
    "expected_calibration_error", "decision_curve", "regression_metrics", "metrics_with_ci", "fold_spread",
    "corrected_resampled_ttest", "holm", "shapley_values", "bayes_optimal_auc",
]
