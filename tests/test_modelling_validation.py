"""core.modelling.validation: shared folds, honest out-of-fold predictions and explanations, stored runs."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.evaluation.metrics import roc_auc
from core.modelling.validation import CohortSplitter, cross_validate, run_digest, training_data
from core.modelling.whatif import WhatIf
from core.store.workspace import Workspace


def test_splitter_folds_partition_the_patients_and_respect_sites():
    y = np.tile([0, 1], 60)
    sites = np.repeat([f"s{k}" for k in range(6)], 20)
    splitter = CohortSplitter(n_splits=5, n_repeats=3, seed=1)
    folds = splitter.split(y, sites)
    assert len(folds) == 15
    for r in range(3):
        tests = np.concatenate([f.test for f in folds if f.repeat == r])
        assert sorted(tests) == list(range(len(y)))  # every patient tested exactly once per repeat
    for f in folds:
        assert not set(sites[f.train]) & set(sites[f.test])  # grouped: no site on both sides
    assert "grouped by site (6 sites" in splitter.scheme(sites)
    assert [f.test.tolist() for f in folds] == [f.test.tolist() for f in splitter.split(y, sites)]
    with pytest.raises(InputError, match="5-fold cross-validation needs at least 5 patients in each outcome class; found 12 patients, 2 in the smallest class"):
        CohortSplitter().split(np.r_[np.zeros(10), np.ones(2)])


def test_out_of_fold_auc_approaches_the_oracle_and_shuffled_labels_give_chance(small_cohort):
    splitter = CohortSplitter(n_splits=5, n_repeats=2, seed=0)
    result = cross_validate(small_cohort, "responder", splitter=splitter, interactions=False, n_jobs=1)
    y = small_cohort.outcomes["responder"]
    oracle = roc_auc(y, small_cohort.outcomes["true_response_probability"])
    assert roc_auc(y, result.prediction) >= 0.85 * oracle  # 300 patients; the 2,000-patient figure is in test_prediction_bars
    # Out-of-fold SHAP values add up to the out-of-fold margin, and explain the cohort's own values.
    margin = np.log(result.prediction_by_repeat / (1 - result.prediction_by_repeat)).mean(axis=1)
    np.testing.assert_allclose(result.explanation.margin, margin, atol=1e-3)
    np.testing.assert_array_equal(result.explanation.data, small_cohort.features.to_numpy(dtype=float))
    assert result.explanation.output_space == "log-odds" and list(result.explanation.index) == list(small_cohort.features.index)

    shuffled = small_cohort.outcomes.copy()
    shuffled["responder"] = np.random.default_rng(0).permutation(shuffled["responder"].to_numpy())
    null = cross_validate(replace(small_cohort, outcomes=shuffled), "responder", splitter=splitter, interactions=False, n_jobs=1)
    assert abs(roc_auc(shuffled["responder"], null.prediction) - 0.5) <= 0.08


def test_training_data_refuses_what_no_model_can_learn(small_cohort):
    X, y = training_data(small_cohort, "responder")
    assert X.shape == small_cohort.features.shape and set(np.unique(y)) == {0.0, 1.0}
    empty = small_cohort.features.assign(**{"clin.age": np.nan})
    with pytest.raises(InputError, match=r"feature\(s\) \['clin.age'\] are missing for every patient"):
        training_data(replace(small_cohort, features=empty), "responder")
    with pytest.raises(InputError, match="unknown outcome 'mrs'"):
        training_data(small_cohort, "mrs")


def test_a_cv_run_reloads_from_the_workspace_without_retraining(tmp_path, small_cohort):
    splitter = CohortSplitter(n_splits=5, n_repeats=1, seed=2)
    result = cross_validate(small_cohort, "responder", splitter=splitter, params={"n_estimators": 60}, n_jobs=1)
    run = run_digest(small_cohort, "responder", splitter, result.params, result.features)
    ws = Workspace(tmp_path)
    assert ws.load_cv(run, small_cohort) is None
    ws.save_cv(small_cohort, run, result)
    loaded = Workspace(tmp_path).load_cv(run, small_cohort)
    pd.testing.assert_frame_equal(loaded.explanation.frame(), result.explanation.frame())
    np.testing.assert_array_equal(loaded.explanation.base_values, result.explanation.base_values)
    np.testing.assert_array_equal(loaded.explanation.data, result.explanation.data)
    pd.testing.assert_series_equal(loaded.prediction, result.prediction)
    np.testing.assert_allclose(loaded.interaction, result.interaction, rtol=1e-5, atol=1e-6)
    assert loaded.scheme == result.scheme and loaded.params == result.params == {"n_estimators": 60}
    # The reloaded fold models give the same what-if answers as the ones just trained.
    pid = small_cohort.patients.index[10]
    change = {"clin.levodopa_response_pct": 80.0}
    a = WhatIf(result, small_cohort.features).scenario(pid, change)
    b = WhatIf(loaded, small_cohort.features).scenario(pid, change)
    assert a.prediction == pytest.approx(b.prediction, abs=1e-6)


def test_the_continuous_outcome_runs_a_regressor_explained_in_percent(small_cohort):
    result = cross_validate(small_cohort, "improvement_pct", splitter=CohortSplitter(n_splits=5, n_repeats=1), params={"n_estimators": 60},
                            interactions=False, n_jobs=1)
    assert type(result.fold_models[0]).__name__ == "ResponseRegressor"
    assert result.explanation.output_space == "% improvement"
    np.testing.assert_allclose(result.explanation.margin, result.prediction, atol=1e-3)  # one repeat: the margin is the prediction


@pytest.mark.parametrize("outcome", ["responder", "improvement_pct"])
def test_a_stopped_xgboost_run_resumes_from_its_finished_folds_and_equals_an_uninterrupted_one(outcome, tmp_path, small_cohort, monkeypatch):
    import core.modelling.validation as validation
    from core.modelling.validation import CVSettings

    settings = CVSettings(outcome=outcome, n_splits=3, n_repeats=2)  # the first repeat's folds carry SHAP interaction values
    run = settings.run_digest(small_cohort)
    workspace = Workspace(tmp_path / "stopped")

    def stop_after(kept):
        def progress(done, total):
            if done == kept:
                raise KeyboardInterrupt
        return progress

    with pytest.raises(KeyboardInterrupt):
        workspace.train_cv(small_cohort, settings, progress=stop_after(4), n_jobs=2)
    assert workspace.cv_progress(run) == 4 and workspace.load_cv(run, small_cohort) is None
    fitted = []
    fit_fold = validation._fit_fold
    monkeypatch.setattr(validation, "_fit_fold", lambda args: fitted.append((args[2].repeat, args[2].fold)) or fit_fold(args))
    resumed = workspace.train_cv(small_cohort, settings, n_jobs=2)
    assert sorted(fitted) == [(1, 1), (1, 2)]  # only the two folds not kept were trained
    assert workspace.cv_progress(run) == 0
    fresh = Workspace(tmp_path / "fresh").train_cv(small_cohort, settings, n_jobs=2)
    for result in (resumed, workspace.load_cv(run, small_cohort)):
        np.testing.assert_array_equal(result.prediction.to_numpy(), fresh.prediction.to_numpy())
        np.testing.assert_array_equal(result.explanation.values, fresh.explanation.values)
    np.testing.assert_array_equal(resumed.interaction, fresh.interaction)
