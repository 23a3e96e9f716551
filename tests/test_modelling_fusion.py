"""core.modelling.fusion: the deep fusion model learns from raw data, on the folds xgboost uses."""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from core.errors import InputError
from core.modelling.fusion import FUSION_MODALITIES, FusionClassifier, fusion_design, load_fusion
from core.modelling.validation import CohortSplitter, cross_validate, cross_validate_fusion
from core.store.workspace import Workspace

QUICK = {"max_epochs": 3, "embedding_size": 8, "patience": 2, "n_threads": 1}


@pytest.fixture(scope="module")
def design(small_cohort, tmp_path_factory):
    return fusion_design(small_cohort, Workspace(tmp_path_factory.mktemp("fusion")).fusion_inputs(small_cohort))


@pytest.fixture(scope="module")
def labels(small_cohort):
    return small_cohort.outcomes["responder"].astype(int).to_numpy()


@pytest.fixture(scope="module")
def fitted(design, labels):
    return FusionClassifier(**QUICK).fit(design.take(np.arange(200)), labels[:200])


def test_the_same_seed_gives_the_same_model_and_another_seed_does_not(design, labels, fitted):
    test = design.take(np.arange(200, 300))
    again = FusionClassifier(**QUICK).fit(design.take(np.arange(200)), labels[:200])
    np.testing.assert_array_equal(again.predict_proba(test), fitted.predict_proba(test))
    other = FusionClassifier(**{**QUICK, "seed": 1}).fit(design.take(np.arange(200)), labels[:200])
    assert not np.array_equal(other.predict_proba(test), fitted.predict_proba(test))
    assert list(fitted.history_.columns) == ["epoch", "train_loss", "valid_loss"] and 1 <= fitted.best_epoch_ <= 3


def test_raw_data_of_test_patients_change_nothing_that_was_learned(small_cohort, design, tmp_path):
    splitter = CohortSplitter(n_splits=2, n_repeats=1)
    inputs = design.inputs
    first = cross_validate_fusion(small_cohort, inputs, splitter=splitter, params=QUICK)
    fold = first.folds[0]
    scrambled = inputs.take(np.arange(len(inputs)))
    rng = np.random.default_rng(0)
    for name in ("fa", "mep", "voluntary", "reach"):
        array = getattr(scrambled, name)
        array[fold.test] = rng.normal(size=array[fold.test].shape).astype(array.dtype)
    second = cross_validate_fusion(small_cohort, scrambled, splitter=splitter, params=QUICK)
    a, b = first.fold_models[0].network_.state_dict(), second.fold_models[0].network_.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)  # fold 0's model never saw its test patients' data
    assert first.fold_models[0].scales_ == second.fold_models[0].scales_


def test_every_patient_gets_a_prediction_whatever_modality_is_missing(design, fitted):
    test = design.take(np.arange(200, 260))
    for m in range(len(FUSION_MODALITIES)):
        hide = np.zeros((len(test), len(FUSION_MODALITIES)), bool)
        hide[:, m] = True
        assert np.isfinite(fitted.predict_margin(test, hide)).all()
    assert np.isfinite(fitted.predict_margin(test, np.ones((len(test), 4), bool))).all()  # nothing at all: the base rate


def test_modality_shapley_values_add_up_to_the_prediction(design, fitted):
    test = design.take(np.arange(200, 240))
    explanation = fitted.explain(test)
    assert explanation.feature_names == FUSION_MODALITIES and explanation.output_space == "log-odds"
    np.testing.assert_allclose(explanation.margin, fitted.predict_margin(test), atol=1e-9)
    np.testing.assert_allclose(explanation.base_values, fitted.predict_margin(test, np.ones((len(test), 4), bool)), atol=1e-12)
    assert set(explanation.mean_abs(by="modality").index) == set(FUSION_MODALITIES)


def test_a_saved_model_reloads_to_identical_predictions_and_bad_use_is_refused(design, fitted, tmp_path):
    fitted.save(tmp_path / "fold_000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fold_000.json", "fold_000.pt"]
    again = load_fusion(tmp_path / "fold_000")
    test = design.take(np.arange(200, 300))
    np.testing.assert_array_equal(again.predict_proba(test), fitted.predict_proba(test))
    with pytest.raises(NotFittedError):
        FusionClassifier().predict_proba(test)
    with pytest.raises(InputError, match="reads a FusionDesign"):
        fitted.predict_proba(test.clinical)


def test_fusion_is_cross_validated_on_the_folds_xgboost_uses(small_cohort, design):
    splitter = CohortSplitter(n_splits=3, n_repeats=1)
    epochs = []
    fusion = cross_validate_fusion(small_cohort, design.inputs, splitter=splitter, params=QUICK, on_epoch=lambda fold, row: epochs.append(fold.fold))
    boosted = cross_validate(small_cohort, "responder", splitter=splitter, params={"n_estimators": 30}, interactions=False, n_jobs=1)
    assert [f.test.tolist() for f in fusion.folds] == [f.test.tolist() for f in boosted.folds]
    assert fusion.model == "fusion" and sorted(set(epochs)) == [0, 1, 2]
    assert fusion.prediction.notna().all() and fusion.prediction.between(0, 1).all()


def test_a_fusion_run_is_stored_and_reloaded_like_an_xgboost_run(small_cohort, design, tmp_path):
    from core.modelling.validation import run_digest

    splitter = CohortSplitter(n_splits=2, n_repeats=1)
    result = cross_validate_fusion(small_cohort, design.inputs, splitter=splitter, params=QUICK)
    run = run_digest(small_cohort, "responder", splitter, QUICK, result.features, model="fusion")
    assert run != run_digest(small_cohort, "responder", splitter, QUICK, result.features)
    Workspace(tmp_path).save_cv(small_cohort, run, result)
    loaded = Workspace(tmp_path).load_cv(run, small_cohort)
    assert loaded.model == "fusion" and type(loaded.fold_models[0]) is FusionClassifier
    np.testing.assert_array_equal(loaded.prediction.to_numpy(), result.prediction.to_numpy())
    np.testing.assert_array_equal(loaded.explanation.data, result.explanation.data)
    test = design.take(np.arange(20))
    np.testing.assert_array_equal(loaded.fold_models[1].predict_proba(test), result.fold_models[1].predict_proba(test))


def test_fa_saliency_adds_up_to_what_the_fa_map_changes_and_is_zero_without_a_scan(design, fitted):
    test = design.take(np.arange(200, 230))
    saliency = fitted.fa_saliency(test, steps=64)
    assert saliency.shape == (30, *design.inputs.fa.shape[1:])
    blank = test.take(np.arange(30))
    centre = fitted.scales_["fa"][0][0]
    blank.inputs.fa[:] = centre  # every voxel at the training mean: the path's start
    change = fitted.predict_margin(test) - fitted.predict_margin(blank)
    has_fa = test.inputs.mask["dti"]
    np.testing.assert_allclose(saliency[has_fa].sum(axis=(1, 2, 3)), change[has_fa], atol=0.02 + 0.02 * np.abs(change[has_fa]).max())
    assert not saliency[~has_fa].any()


def test_fusion_what_if_knocks_out_modalities_and_edits_clinical_values(small_cohort, design):
    from core.modelling.whatif import FusionWhatIf

    result = cross_validate_fusion(small_cohort, design.inputs, splitter=CohortSplitter(n_splits=2, n_repeats=1), params=QUICK)
    wi = FusionWhatIf(result, design)
    patient = next(pid for pid in design.patient_ids if all(wi.has(pid).values()))
    base = wi.scenario(patient)
    np.testing.assert_allclose(base.prediction, result.prediction[patient], atol=1e-6)  # the baseline is the out-of-fold prediction
    no_scan = wi.scenario(patient, knocked_out=["dti"])
    model = wi.models_for(patient)[0]
    row = design.take([list(design.patient_ids).index(patient)])
    hide = np.array([[True, False, False, False]])
    np.testing.assert_allclose(no_scan.prediction, model.output_from_margin(model.predict_margin(row, hide))[0], atol=1e-6)
    assert no_scan.explanation.values[0] == 0.0  # a knocked-out modality contributes nothing
    nothing = wi.scenario(patient, knocked_out=list(FUSION_MODALITIES))
    np.testing.assert_allclose(nothing.explanation.values, 0.0, atol=1e-12)
    column = design.clinical_names[0]
    edited = wi.scenario(patient, clinical_changes={column: float(wi.high[column]) + 100})
    assert edited.out_of_range == [column] and edited.prediction != base.prediction
    with pytest.raises(InputError, match="unknown modality"):
        wi.scenario(patient, knocked_out=["pet"])
