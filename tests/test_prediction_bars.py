"""The bars of the prediction issue, on the 2000-patient default synthetic cohort."""

from dataclasses import replace

import numpy as np
import pytest

from core.evaluation.ground_truth import importance_recovery
from core.evaluation.metrics import expected_calibration_error, roc_auc
from core.modelling.validation import cross_validate


@pytest.fixture(scope="module")
def default_result(default_cohort):
    return cross_validate(default_cohort, "responder", interactions=False)


def test_out_of_fold_auc_reaches_93_percent_of_the_oracle(default_cohort, default_result):
    y = default_cohort.outcomes["responder"]
    oracle = roc_auc(y, default_cohort.outcomes["true_response_probability"])
    assert roc_auc(y, default_result.prediction) >= 0.93 * oracle


def test_out_of_fold_probabilities_are_calibrated(default_cohort, default_result):
    assert expected_calibration_error(default_cohort.outcomes["responder"], default_result.prediction) <= 0.05


def test_shap_importance_recovers_the_planted_ranking(default_cohort, default_result):
    _, rho = importance_recovery(default_cohort.ground_truth, default_result.importance())
    assert rho >= 0.8


def test_shuffled_labels_give_chance_auc(default_cohort):
    shuffled = default_cohort.outcomes.copy()
    shuffled["responder"] = np.random.default_rng(1).permutation(shuffled["responder"].to_numpy())
    result = cross_validate(replace(default_cohort, outcomes=shuffled), "responder", interactions=False)
    assert abs(roc_auc(shuffled["responder"], result.prediction) - 0.5) <= 0.05
