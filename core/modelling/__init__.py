"""Models of treatment response: the xgboost estimators, honest cross-validation on shared folds,
what-if scenarios, and the baselines they are judged against (clinical model, PREP2)."""

from core.modelling.baselines import clinical_baseline, prep2_score
from core.modelling.estimators import ResponseModel, check_features, check_outcome
from core.modelling.validation import CohortSplitter, CVResult, Fold, cross_validate, run_digest
from core.modelling.whatif import Scenario, WhatIf

__all__ = [
    "ResponseModel", "check_features", "check_outcome",
    "CohortSplitter", "Fold", "CVResult", "cross_validate", "run_digest",
    "WhatIf", "Scenario", "clinical_baseline", "prep2_score",
]
