import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from core.evaluation.metrics import roc_auc
from core.modelling.estimators import ResponseModel
from core.modelling.validation import CohortSplitter, cross_validate


@pytest.fixture(scope="module")
def data(small_cohort):
    return small_cohort.features, small_cohort.outcomes["responder"].astype(float).to_numpy()


def test_shap_values_add_up_to_the_prediction_and_missing_values_are_kept(data):
    X, y = data
    assert X.isna().any().any()  # patients lacking a modality are part of the data
    model = ResponseModel(n_estimators=200).fit(X, y)
    assert model.fit(X, y) is model
    values, base = model.shap_values(X)
    np.testing.assert_allclose(values.sum(1) + base, model.predict_margin(X), atol=1e-4)
    assert len(model.predict(X)) == len(X)
    interaction = model.shap_interaction_values(X.iloc[:20])
    np.testing.assert_allclose(interaction.sum(2)[:, :-1], values[:20], atol=1e-4)


def test_saved_model_predicts_the_same_after_reload(tmp_path, data):
    X, y = data
    model = ResponseModel(outcome="responder", n_estimators=100, seed=3).fit(X, y)
    model.save(tmp_path / "fold0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold0.json", "fold0.ubj"]
    again = ResponseModel.load(tmp_path / "fold0")
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.get_params() == model.get_params()


def test_bad_training_data_get_clear_messages(data):
    X, y = data
    text = X.copy()
    text["clin.age"] = text["clin.age"].astype(str).where(text.index != text.index[0], "sixty")
    with pytest.raises(InputError, match=r"non-numeric values in feature column\(s\) \['clin.age'\]"):
        ResponseModel().fit(text, y)
    with pytest.raises(InputError, match=r"all \d+ patients are responders; a classifier needs both classes"):
        ResponseModel().fit(X, np.ones(len(y)))
    with pytest.raises(InputError, match=r"improvement_pct is the same \(12\) for every patient"):
        ResponseModel(outcome="improvement_pct").fit(X, np.full(len(y), 12.0))


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
    assert roc_auc(y, result.prediction) >= 0.85 * oracle  # 300 patients; the 2000-patient bar is in the issue
    # Out-of-fold SHAP values add up to the out-of-fold margin.
    margin = np.log(result.prediction_by_repeat / (1 - result.prediction_by_repeat)).mean(axis=1)
    np.testing.assert_allclose(result.shap.sum(axis=1) + result.shap_base, margin, atol=1e-3)

    shuffled = small_cohort.outcomes.copy()
    shuffled["responder"] = np.random.default_rng(0).permutation(shuffled["responder"].to_numpy())
    from dataclasses import replace

    null = cross_validate(replace(small_cohort, outcomes=shuffled), "responder", splitter=splitter, interactions=False, n_jobs=1)
    assert abs(roc_auc(shuffled["responder"], null.prediction) - 0.5) <= 0.08


def test_a_cv_run_reloads_from_the_workspace_without_retraining(tmp_path, small_cohort):
    from core.modelling.validation import run_digest
    from core.modelling.whatif import WhatIf
    from core.store.workspace import Workspace

    splitter = CohortSplitter(n_splits=5, n_repeats=1, seed=2)
    result = cross_validate(small_cohort, "responder", splitter=splitter, params={"n_estimators": 60}, n_jobs=1)
    run = run_digest(small_cohort, "responder", splitter, result.params, result.features)
    ws = Workspace(tmp_path)
    assert ws.load_cv(run) is None
    ws.save_cv(small_cohort, run, result)
    loaded = Workspace(tmp_path).load_cv(run)
    pd.testing.assert_frame_equal(loaded.shap, result.shap)
    pd.testing.assert_series_equal(loaded.prediction, result.prediction)
    np.testing.assert_allclose(loaded.interaction, result.interaction, rtol=1e-5, atol=1e-6)
    assert loaded.scheme == result.scheme
    # The reloaded fold models give the same what-if answers as the ones just trained.
    pid = small_cohort.patients.index[10]
    change = {"clin.levodopa_response_pct": 80.0}
    a = WhatIf(result, small_cohort.features).scenario(pid, change)
    b = WhatIf(loaded, small_cohort.features).scenario(pid, change)
    assert a.prediction == pytest.approx(b.prediction, abs=1e-6)


def test_what_if_starts_from_the_out_of_fold_prediction_and_flags_unseen_values(small_cohort):
    from core.modelling.whatif import WhatIf

    result = cross_validate(small_cohort, "responder", splitter=CohortSplitter(n_repeats=2), params={"n_estimators": 80}, interactions=False, n_jobs=1)
    whatif = WhatIf(result, small_cohort.features)
    pid = small_cohort.patients.index[0]
    unchanged = whatif.scenario(pid)
    assert unchanged.prediction == pytest.approx(result.prediction[pid], abs=1e-5)
    assert unchanged.spread[0] <= unchanged.prediction <= unchanged.spread[1]
    assert unchanged.out_of_range == []
    margin = unchanged.shap.sum() + unchanged.base
    assert 1 / (1 + np.exp(-margin)) == pytest.approx(unchanged.prediction, abs=0.05)  # mean of margins vs mean of probabilities
    far = whatif.scenario(pid, {"clin.age": 130.0})
    assert far.out_of_range == ["clin.age"]
    with pytest.raises(InputError, match="unknown feature 'clin.shoe_size'"):
        whatif.scenario(pid, {"clin.shoe_size": 44})
