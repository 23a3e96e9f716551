"""core.evaluation.ground_truth on the 2,000-patient demo cohort: the model against the known truth."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from core.evaluation.ground_truth import cause_recovery, importance_recovery, modality_recovery, top_k_recall
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


def test_summed_by_cause_the_shap_credit_agrees_better_than_by_feature(default_cohort, default_result):
    """Correlated measurements of one cause share its credit; summed by cause, the ranking recovers."""
    by_feature, feature_rho = importance_recovery(default_cohort.ground_truth, default_result.importance())
    by_cause, cause_rho = cause_recovery(default_cohort.ground_truth, default_result.importance())
    assert cause_rho >= max(feature_rho, 0.85)
    assert by_cause["planted_effect"].sum() == pytest.approx(by_feature["planted_effect"].sum())
    assert by_cause["mean_abs_shap"].sum() == pytest.approx(by_feature["mean_abs_shap"].sum())
    assert by_cause.loc["none", "planted_effect"] == 0.0
    # The CST's measurements share what was planted on affected-CST FA alone.
    assert set(by_cause.loc["cst_integrity", "features"].split(", ")) == {"dti.cst_fa_affected", "dti.cst_fa_asymmetry", "dti.cst_lesion_load_ml", "emg.mep_latency_fdi_ms"}


def test_most_planted_features_are_among_the_models_top_features(default_cohort, default_result):
    recall = top_k_recall(default_cohort.ground_truth, default_result.importance())
    assert recall["k"] == int((default_cohort.ground_truth.feature_effects["effect"] > 0).sum())
    assert recall["recall"] >= 0.8


def test_modality_recovery_ranks_planted_contributions_against_shapley_values(default_cohort):
    shapley = pd.DataFrame({"value": [0.2, 0.1, 0.05, 0.01], "share": [0.55, 0.28, 0.14, 0.03], "rank": [1, 2, 3, 4]},
                           index=pd.Index(["clin", "dti", "kin", "emg"], name="modality"))
    table, rho = modality_recovery(default_cohort.ground_truth, shapley)
    planted = default_cohort.ground_truth.modality_effects()
    assert table["planted"].to_dict() == planted.reindex(shapley.index).to_dict()
    assert table["planted_share"].sum() == pytest.approx(1.0)
    assert rho == pytest.approx(stats.spearmanr(planted.reindex(shapley.index), shapley["value"]).statistic)
