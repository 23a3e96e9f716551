"""core.modelling.stacking: xgboost on the features plus the fusion model's nested out-of-fold log-odds."""

import numpy as np
import pytest

from core.data.schema import FUSION_LOGIT
from core.errors import InputError
from core.modelling.estimators import load_estimator
from core.modelling.fusion import FusionClassifier
from core.modelling.stacking import StackedClassifier, stacked_design
from core.modelling.validation import CohortSplitter, CVSettings, cross_validate, cross_validate_fusion, cross_validate_stacked
from core.store.workspace import Workspace

QUICK = {"max_epochs": 2, "embedding_size": 8, "patience": 1, "n_threads": 1}
STACKED = {"fusion_params": QUICK, "inner_splits": 2}


@pytest.fixture(scope="module")
def inputs(small_cohort, tmp_path_factory):
    return Workspace(tmp_path_factory.mktemp("stacking")).fusion_inputs(small_cohort)


@pytest.fixture(scope="module")
def design(small_cohort, inputs):
    return stacked_design(small_cohort, inputs)


@pytest.fixture(scope="module")
def labels(small_cohort):
    return small_cohort.outcomes["responder"].astype(int).to_numpy()


@pytest.fixture(scope="module")
def fitted(design, labels):
    return StackedClassifier(**STACKED).fit(design.take(np.arange(200)), labels[:200])


def test_each_training_patient_is_stacked_on_a_fusion_model_that_never_saw_them(design, labels, fitted):
    train, y = design.take(np.arange(200)), labels[:200]
    inner = CohortSplitter(n_splits=2, n_repeats=1).split(y, train.groups)
    rebuilt = np.full(200, np.nan)
    for fold in inner:
        model = FusionClassifier(**QUICK).fit(train.fusion.take(fold.train), y[fold.train])
        rebuilt[fold.test] = model.predict_margin(train.fusion.take(fold.test))
    assert sorted(np.concatenate([f.test for f in inner]).tolist()) == list(range(200))  # each patient in one inner test fold
    np.testing.assert_array_equal(fitted.inner_fusion_logit_, rebuilt)
    assert list(fitted.feature_names_in_)[-1] == FUSION_LOGIT
    explanation = fitted.explain(design.take(np.arange(200, 240)))
    np.testing.assert_allclose(explanation.values.sum(1) + explanation.base_values, fitted.predict_margin(design.take(np.arange(200, 240))), atol=1e-4)
    assert "fusion" in explanation.mean_abs(by="modality").index


def test_a_saved_stacked_model_reloads_to_identical_predictions(design, fitted, tmp_path):
    fitted.save(tmp_path / "fold_000")
    again = load_estimator(tmp_path / "fold_000")
    test = design.take(np.arange(200, 300))
    np.testing.assert_array_equal(again.predict_proba(test), fitted.predict_proba(test))
    with pytest.raises(InputError, match="StackedDesign"):
        fitted.predict_proba(design.features)


def test_stacked_runs_on_the_xgboost_folds_and_reuses_a_fusion_run_exactly(small_cohort, inputs):
    splitter = CohortSplitter(n_splits=2, n_repeats=1)
    fusion = cross_validate_fusion(small_cohort, inputs, splitter=splitter, params=QUICK)
    alone = cross_validate_stacked(small_cohort, inputs, splitter=splitter, params=STACKED)
    reused = cross_validate_stacked(small_cohort, inputs, splitter=splitter, params=STACKED, fusion_run=fusion)
    boosted = cross_validate(small_cohort, "responder", splitter=splitter, interactions=False)
    assert [f.test.tolist() for f in alone.folds] == [f.test.tolist() for f in boosted.folds]
    # The fusion run's fold models are what the stacked model would have fitted itself.
    np.testing.assert_array_equal(alone.prediction.to_numpy(), reused.prediction.to_numpy())
    assert alone.model == "stacked" and alone.features[-1] == FUSION_LOGIT
    logit = np.concatenate([m.fusion_.predict_margin(stacked_design(small_cohort, inputs).fusion.take(f.test)) for f, m in zip(alone.folds, alone.fold_models)])
    order = np.concatenate([f.test for f in alone.folds])
    np.testing.assert_allclose(alone.explanation.data[order, -1], logit)
    with pytest.raises(InputError, match="not cross-validated on these folds"):
        cross_validate_stacked(small_cohort, inputs, splitter=CohortSplitter(n_splits=3, n_repeats=1), params=STACKED, fusion_run=fusion)


def test_a_stopped_deep_run_resumes_from_its_finished_folds(small_cohort, tmp_path):
    workspace = Workspace(tmp_path)
    settings = CVSettings(model="fusion", n_splits=2, n_repeats=1, max_epochs=2)
    run = settings.run_digest(small_cohort)

    def stop_after_first(done, total):
        if done == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        workspace.train_cv(small_cohort, settings, progress=stop_after_first)
    assert workspace.cv_progress(run) == 1 and workspace.load_cv(run, small_cohort) is None
    epochs = []
    resumed = workspace.train_cv(small_cohort, settings, on_epoch=lambda fold, row: epochs.append(fold.fold))
    assert set(epochs) == {1}  # only the second fold was trained again
    assert workspace.cv_progress(run) == 0
    fresh = Workspace(tmp_path / "fresh").train_cv(small_cohort, settings)
    np.testing.assert_allclose(resumed.prediction.to_numpy(), fresh.prediction.to_numpy(), atol=1e-6)
    stored = workspace.load_cv(run, small_cohort)
    np.testing.assert_allclose(stored.prediction.to_numpy(), fresh.prediction.to_numpy(), atol=1e-6)


def test_settings_name_the_model_and_refuse_what_it_cannot_predict(small_cohort):
    xgb, fusion, stacked = (CVSettings(model=m) for m in ("xgboost", "fusion", "stacked"))
    assert len({s.run_digest(small_cohort) for s in (xgb, fusion, stacked)}) == 3
    assert xgb.run_digest(small_cohort) == CVSettings().run_digest(small_cohort)
    assert stacked.model_params() == {"fusion_params": {}, "xgboost_params": {}}
    with pytest.raises(InputError, match="predicts the responder label only"):
        CVSettings(model="fusion", outcome="improvement_pct")
    with pytest.raises(InputError, match="unknown model 'svm'"):
        CVSettings(model="svm")
