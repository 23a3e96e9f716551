"""core.modelling.estimators: a scikit-learn classifier and regressor on xgboost, explained exactly."""

import json

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.exceptions import NotFittedError

from core.errors import InputError
from core.modelling.estimators import ResponseClassifier, ResponseRegressor, estimator_for, load_estimator


@pytest.fixture(scope="module")
def data(small_cohort):
    return small_cohort.features, small_cohort.outcomes["responder"].astype(float).to_numpy()


def test_shap_values_add_up_to_the_prediction_and_missing_values_are_kept(data):
    X, y = data
    assert X.isna().any().any()  # patients lacking a modality are part of the data
    model = ResponseClassifier(n_estimators=200).fit(X, y)
    assert model.fit(X, y) is model
    explanation = model.explain(X)
    np.testing.assert_allclose(explanation.values.sum(1) + explanation.base_values, model.predict_margin(X), atol=1e-4)
    np.testing.assert_array_equal(explanation.data, X.to_numpy(dtype=float))
    assert explanation.output_space == "log-odds" and list(explanation.index) == list(X.index)
    assert len(model.predict(X)) == len(X)
    interaction = model.shap_interaction_values(X.iloc[:20])
    np.testing.assert_allclose(interaction.sum(2)[:, :-1], explanation.values[:20], atol=1e-4)


def test_the_classifier_and_the_regressor_follow_scikit_learn(data, small_cohort):
    X, y = data
    clf = ResponseClassifier(n_estimators=60).fit(X, y)
    assert is_classifier(clf) and list(clf.classes_) == [0, 1]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(clf.predict(X), (proba[:, 1] >= 0.5).astype(int))  # labels, not probabilities
    np.testing.assert_allclose(clf.output_from_margin(clf.predict_margin(X)), proba[:, 1], rtol=1e-5)
    assert clf.score(X, y) == pytest.approx(np.mean(clf.predict(X) == y))
    assert clone(clf).get_params() == clf.get_params() and not hasattr(clone(clf), "booster_")

    improvement = small_cohort.outcomes["improvement_pct"].to_numpy()
    reg = ResponseRegressor(n_estimators=60).fit(X, improvement)
    assert is_regressor(reg) and not hasattr(reg, "predict_proba")
    np.testing.assert_allclose(reg.predict(X), reg.predict_margin(X), rtol=1e-6)  # identity link: % improvement
    assert reg.explain(X).output_space == "% improvement"
    assert type(estimator_for("responder")) is ResponseClassifier and type(estimator_for("improvement_pct")) is ResponseRegressor
    with pytest.raises(InputError, match="unknown outcome 'mrs'"):
        estimator_for("mrs")


def test_an_unfitted_model_raises_scikit_learns_not_fitted_error(data):
    X, _ = data
    for method in ("predict", "predict_margin", "explain"):
        with pytest.raises(NotFittedError):
            getattr(ResponseRegressor(), method)(X)


def test_saved_model_predicts_the_same_after_reload(tmp_path, data):
    X, y = data
    model = ResponseClassifier(n_estimators=100, seed=3).fit(X, y)
    model.save(tmp_path / "fold0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold0.json", "fold0.ubj"]
    again = load_estimator(tmp_path / "fold0")
    assert type(again) is ResponseClassifier
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert again.get_params() == model.get_params()


def test_a_model_saved_with_its_outcome_among_the_parameters_still_loads(tmp_path, data, small_cohort):
    X, _ = data
    improvement = small_cohort.outcomes["improvement_pct"].to_numpy()
    model = ResponseRegressor(n_estimators=40).fit(X, improvement)
    model.save(tmp_path / "fold0")
    meta = json.loads((tmp_path / "fold0.json").read_text())
    del meta["estimator"]
    meta["params"]["outcome"] = "improvement_pct"
    (tmp_path / "fold0.json").write_text(json.dumps(meta))
    again = load_estimator(tmp_path / "fold0")
    assert type(again) is ResponseRegressor
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    (tmp_path / "fold0.json").write_text("{not json")
    with pytest.raises(InputError, match="cannot read the saved model"):
        load_estimator(tmp_path / "fold0")


def test_bad_training_data_get_clear_messages(data):
    X, y = data
    text = X.copy()
    text["clin.age"] = text["clin.age"].astype(str).where(text.index != text.index[0], "sixty")
    with pytest.raises(InputError, match=r"non-numeric values in feature column\(s\) \['clin.age'\]"):
        ResponseClassifier().fit(text, y)
    with pytest.raises(InputError, match=r"all \d+ patients are responders; a classifier needs both classes"):
        ResponseClassifier().fit(X, np.ones(len(y)))
    with pytest.raises(InputError, match=r"improvement_pct is the same \(12\) for every patient"):
        ResponseRegressor().fit(X, np.full(len(y), 12.0))
    model = ResponseClassifier(n_estimators=20).fit(X, y)
    with pytest.raises(InputError, match=r"feature column\(s\) \['clin.age'\] the model was trained on are missing"):
        model.predict(X.drop(columns="clin.age"))


def test_explaining_with_several_models_at_once_equals_each_models_own_explanation(data):
    from core.modelling.estimators import explain_each

    X, y = data
    models = [ResponseClassifier(n_estimators=40, seed=s).fit(X, y) for s in (1, 2)]
    together = explain_each(models, X.iloc[:15])
    for model, explanation in zip(models, together):
        alone = model.explain(X.iloc[:15])
        np.testing.assert_array_equal(explanation.values, alone.values)
        np.testing.assert_array_equal(explanation.base_values, alone.base_values)
    other = ResponseClassifier(n_estimators=20).fit(X.drop(columns="clin.age"), y)
    with pytest.raises(InputError, match="trained on different features or outcomes"):
        explain_each([models[0], other], X)
