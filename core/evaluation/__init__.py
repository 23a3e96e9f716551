"""How good a model is, with its uncertainty: metrics with confidence intervals, the model's performance beside its
baselines, models compared on the same folds and learning curves, statistics of cross-validated comparisons, ground-truth recovery, the model report,
held-out evaluation of any-outcome prediction, and what skipping a costly scan costs."""

from core.evaluation.anyoutcome import AnyOutcomeEvaluation, AnyOutcomeSettings, evaluate_any_outcome
from core.evaluation.comparison import ModelComparison, calibration_slope_intercept, compare_models
from core.evaluation.ground_truth import bayes_optimal_auc, raw_signal_note, saliency_regions
from core.evaluation.learning import LEARNING_CURVE_SIZES, learning_curve, subsample
from core.evaluation.metrics import (METRICS, MetricSpec, binary_metrics, binary_metrics_ci, calibration_curve, confusion_at, decision_curve,
                                     expected_calibration_error, fold_spread, metrics_with_ci, regression_metrics, roc_auc, roc_auc_ci)
from core.evaluation.performance import (CLINICAL, MODEL, MODEL_STROKE, PREP2, binary_ci_tables, calibration_line, prep2_probability, prep2_usable,
                                         regression_ci_tables, repeat_spread, score_table)
from core.evaluation.report import ci_table, model_report_html, prediction_table
from core.evaluation.stats import corrected_resampled_ttest, holm, shapley_values
from core.evaluation.transfer import cheap_bayes_limit, transfer_curve, transfer_sentence

__all__ = [
    "METRICS", "MetricSpec", "roc_auc", "roc_auc_ci", "binary_metrics", "binary_metrics_ci", "confusion_at", "calibration_curve",
    "expected_calibration_error", "decision_curve", "regression_metrics", "metrics_with_ci", "fold_spread",
    "MODEL", "CLINICAL", "PREP2", "MODEL_STROKE", "score_table", "prep2_usable", "prep2_probability", "binary_ci_tables", "regression_ci_tables",
    "repeat_spread", "calibration_line", "model_report_html", "ci_table", "prediction_table",
    "corrected_resampled_ttest", "holm", "shapley_values", "bayes_optimal_auc",
    "ModelComparison", "compare_models", "calibration_slope_intercept", "raw_signal_note", "saliency_regions",
    "LEARNING_CURVE_SIZES", "learning_curve", "subsample",
    "AnyOutcomeEvaluation", "AnyOutcomeSettings", "evaluate_any_outcome", "transfer_curve", "cheap_bayes_limit", "transfer_sentence",
]
