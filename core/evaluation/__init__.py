"""How good a model is, with its uncertainty: metrics with confidence intervals, the model's performance beside its
baselines, statistics of cross-validated comparisons, recovery of a synthetic cohort's ground truth, the model report."""

from core.evaluation.ground_truth import bayes_optimal_auc
from core.evaluation.metrics import (METRICS, MetricSpec, binary_metrics, binary_metrics_ci, calibration_curve, confusion_at, decision_curve,
                                     expected_calibration_error, fold_spread, metrics_with_ci, regression_metrics, roc_auc, roc_auc_ci)
from core.evaluation.performance import (CLINICAL, MODEL, MODEL_STROKE, PREP2, binary_ci_tables, calibration_line, prep2_probability, prep2_usable,
                                         regression_ci_tables, repeat_spread, score_table)
from core.evaluation.report import ci_table, model_report_html, prediction_table
from core.evaluation.stats import corrected_resampled_ttest, holm, shapley_values

__all__ = [
    "METRICS", "MetricSpec", "roc_auc", "roc_auc_ci", "binary_metrics", "binary_metrics_ci", "confusion_at", "calibration_curve",
    "expected_calibration_error", "decision_curve", "regression_metrics", "metrics_with_ci", "fold_spread",
    "MODEL", "CLINICAL", "PREP2", "MODEL_STROKE", "score_table", "prep2_usable", "prep2_probability", "binary_ci_tables", "regression_ci_tables",
    "repeat_spread", "calibration_line", "model_report_html", "ci_table", "prediction_table",
    "corrected_resampled_ttest", "holm", "shapley_values", "bayes_optimal_auc",
]
