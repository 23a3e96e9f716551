"""Models of treatment response: the xgboost classifier and regressor, one Explanation object for
their SHAP values, honest cross-validation on shared folds, what-if scenarios, and baselines."""

from core.modelling.baselines import clinical_baseline, prep2_score
from core.modelling.estimators import (ResponseClassifier, ResponseEstimator, ResponseRegressor, check_features, check_outcome, estimator_for,
                                       explain_each, load_estimator)
from core.modelling.explanation import Explanation
from core.modelling.prep2 import prep2_evaluation, prep2_prediction
from core.modelling.validation import CohortSplitter, CVResult, Fold, cross_validate, run_digest, training_data
from core.modelling.whatif import Scenario, WhatIf

__all__ = [
    "ResponseEstimator", "ResponseClassifier", "ResponseRegressor", "estimator_for", "explain_each", "load_estimator", "check_features", "check_outcome",
    "Explanation", "CohortSplitter", "Fold", "CVResult", "cross_validate", "run_digest", "training_data",
    "WhatIf", "Scenario", "clinical_baseline", "prep2_score", "prep2_prediction", "prep2_evaluation",
]
