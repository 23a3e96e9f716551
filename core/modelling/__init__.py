"""Models of treatment response: the xgboost classifier and regressor, the deep fusion and stacked models, one
Explanation object for all, cross-validation on shared folds, what-if scenarios, baselines, zero-shot heads of
any outcome measure from its description, a student distilled from a costly-scan teacher, xgboost.dask on a cluster."""

from core.modelling.anyoutcome import AnyOutcomeModel, fit_on_cohort, meta_matching, signed_r, zero_shot_table
from core.modelling.baselines import clinical_baseline, prep2_score
from core.modelling.cluster import DaskResponseClassifier, DaskResponseRegressor, dask_estimator_for
from core.modelling.estimators import (ResponseClassifier, ResponseEstimator, ResponseRegressor, check_features, check_outcome, estimator_for,
                                       explain_each, load_estimator)
from core.modelling.explanation import Explanation, shapley_values
from core.modelling.fusion import FusionClassifier, FusionDesign, fusion_design, load_fusion
from core.modelling.prep2 import prep2_evaluation, prep2_prediction
from core.modelling.stacking import StackedClassifier, StackedDesign, load_stacked, stacked_design
from core.modelling.transfer import DistilledStudent, cross_validate_student
from core.modelling.validation import (CohortSplitter, CVResult, Fold, FoldCheckpoint, cross_validate, cross_validate_fusion, cross_validate_stacked,
                                       run_digest, training_data)
from core.modelling.whatif import Scenario, WhatIf

__all__ = [
    "ResponseEstimator", "ResponseClassifier", "ResponseRegressor", "estimator_for", "explain_each", "load_estimator", "check_features", "check_outcome",
    "Explanation", "shapley_values", "FusionClassifier", "FusionDesign", "fusion_design", "load_fusion",
    "StackedClassifier", "StackedDesign", "stacked_design", "load_stacked",
    "CohortSplitter", "Fold", "CVResult", "FoldCheckpoint", "cross_validate", "cross_validate_fusion", "cross_validate_stacked", "run_digest", "training_data",
    "WhatIf", "Scenario", "clinical_baseline", "prep2_score", "prep2_prediction", "prep2_evaluation",
    "AnyOutcomeModel", "fit_on_cohort", "zero_shot_table", "meta_matching", "signed_r", "DistilledStudent", "cross_validate_student",
    "DaskResponseClassifier", "DaskResponseRegressor", "dask_estimator_for",
]
