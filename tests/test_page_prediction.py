"""The Prediction page driven through AppTest: training, saved runs, the numbers shown, what-if, errors.

Every test runs app.py (navigation + sidebar) and switches to pages/prediction.py, on a private copy
of a small workspace holding the 60-patient cohort "tiny" (``app_workspace_template`` in
conftest.py). Runs use 2 repeats instead of 5 to stay fast; the page exposes the setting.
"""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import core.modelling.validation
from components.panels.prediction import VIEW_KEY
from core.data.cohort import Cohort
from core.data.schema import modality_of
from core.errors import InputError
from core.evaluation.ground_truth import cause_recovery, importance_recovery, top_k_recall
from core.evaluation.metrics import METRICS, regression_metrics, roc_auc
from core.modelling.validation import CohortSplitter, cross_validate, run_digest
from core.modelling.whatif import IMMUTABLE_FEATURES, WhatIf
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from tests.app_support import APP, captions, metric, no_exception, private_workspace
from tests.jobs_support import click_and_finish

PAGE = "pages/prediction.py"
REPEATS = 2


pytestmark = pytest.mark.usefixtures("fresh_streamlit")


def default_run(cohort, outcome="responder", n_repeats=REPEATS) -> str:
    """The digest the page gives a run with default model settings."""
    return run_digest(cohort, outcome, CohortSplitter(n_repeats=n_repeats), {}, list(cohort.features.columns))


@pytest.fixture(scope="module")
def trained_template(app_workspace_template, tmp_path_factory):
    """The "tiny" workspace plus a saved 2 x 5 responder run, as the page would have stored it."""
    path = shutil.copytree(app_workspace_template, tmp_path_factory.mktemp("prediction") / "workspace")
    ws = Workspace(path)
    tiny = ws.load("tiny")
    ws.save_cv(tiny, default_run(tiny), cross_validate(tiny, "responder", splitter=CohortSplitter(n_repeats=REPEATS)))
    return path


@pytest.fixture
def trained_workspace(trained_template, tmp_path, monkeypatch):
    return private_workspace(trained_template, tmp_path, monkeypatch)


@pytest.fixture
def empty_workspace(app_workspace, monkeypatch):
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    return app_workspace


# --- helpers ------------------------------------------------------------------------------------


def open_page(repeats=REPEATS, outcome=None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=180).switch_page(PAGE).run()
    no_exception(at)
    assert at.title[0].value == "Treatment-response prediction"
    at.number_input(key="pred-repeats").set_value(repeats)
    if outcome:
        at.radio(key="pred-outcome").set_value(outcome)
    at.run()
    no_exception(at)
    return at


def open_view(at, view: str) -> AppTest:
    """Open one of the page's tabs (only the open tab runs)."""
    at.session_state[VIEW_KEY] = view
    at.run()
    no_exception(at)
    return at


def show_inputs(at, feature: str) -> None:
    """Switch the what-if editor to ``feature``'s modality (one modality's inputs are drawn at a time)."""
    at.segmented_control(key="wi-modality").set_value(modality_of(feature)).run()
    no_exception(at)


def train(at) -> AppTest:
    """Press Train and wait for the background job (if one started), as the page's poll would, then rerun."""
    return click_and_finish(at, "pred-train", os.environ[DEFAULT_WORKSPACE_ENV])


# --- training, storage, reloading ----------------------------------------------------------------


def test_train_stores_the_run_shows_its_auc_and_a_new_session_reloads_it(empty_workspace, monkeypatch):
    at = open_page()
    assert any("press **Train**" in i.value for i in at.info)
    assert at.button(key="pred-train").label == f"Train ({REPEATS} x 5 CV)"

    train(at)
    ws = Workspace(empty_workspace)
    tiny = ws.load("tiny")
    run = default_run(tiny)
    stored = ws.load_cv(run, tiny)
    assert stored is not None and len(stored.fold_models) == REPEATS * 5
    y = tiny.outcomes["responder"]
    auc = roc_auc(y, stored.prediction)
    assert metric(at, "OOF AUC") == f"{auc:.3f}"
    per_repeat = [roc_auc(y, stored.prediction_by_repeat[c]) for c in stored.prediction_by_repeat]
    assert metric(at, "AUC across repeats") == f"{np.mean(per_repeat):.3f}"
    assert f"SD {np.std(per_repeat, ddof=1):.3f} · min {min(per_repeat):.3f} · max {max(per_repeat):.3f} · {REPEATS} repeats" in captions(at)
    assert any(f"Run `{run}` (trained and saved)" in c and stored.scheme in c for c in captions(at))
    open_view(at, "Ground truth")
    assert metric(at, "Model AUC (out-of-fold)") == f"{auc:.3f}"  # same run, another tab
    _, feature_rho = importance_recovery(tiny.ground_truth, stored.importance())
    _, cause_rho = cause_recovery(tiny.ground_truth, stored.importance())
    recall = top_k_recall(tiny.ground_truth, stored.importance())
    assert metric(at, "Agreement by feature (Spearman ρ)") == f"{feature_rho:.2f}"
    assert metric(at, "Agreement by cause (Spearman ρ)") == f"{cause_rho:.2f}"
    assert metric(at, f"Planted features in the top {recall['k']}") == f"{len(recall['found'])} of {recall['k']}"

    # A fresh session (caches emptied, as after a restart) loads the stored run and never retrains.
    def refuse(*args, **kwargs):
        raise AssertionError("retrained a run that is saved")

    monkeypatch.setattr(core.modelling.validation, "cross_validate", refuse)
    st.cache_resource.clear()
    st.cache_data.clear()
    again = open_page()
    assert any(f"Run `{run}` (loaded saved run)" in c for c in captions(again))
    assert metric(again, "OOF AUC") == f"{auc:.3f}"
    train(again)  # the button, too, loads instead of training
    assert any("Loaded saved run" in s.value for s in again.success)
    assert metric(again, "OOF AUC") == f"{auc:.3f}"


def test_continuous_outcome_shows_regression_metrics_of_the_stored_run(empty_workspace):
    at = train(open_page(outcome="improvement_pct"))
    ws = Workspace(empty_workspace)
    tiny = ws.load("tiny")
    stored = ws.load_cv(default_run(tiny, "improvement_pct"), tiny)
    assert stored is not None and stored.outcome == "improvement_pct"
    expected = regression_metrics(tiny.outcomes["improvement_pct"], stored.prediction)
    assert metric(at, METRICS["mae"].label) == f"{expected['mae']:.1f}"
    assert metric(at, METRICS["r2"].label) == f"{expected['r2']:.3f}"
    assert metric(at, METRICS["pearson_r"].label) == f"{expected['pearson_r']:.3f}"


# --- the saved run's views --------------------------------------------------------------------------


def test_threshold_slider_moves_sensitivity_and_specificity(trained_workspace):
    at = open_page()
    tiny = Workspace(trained_workspace).load("tiny")
    stored = Workspace(trained_workspace).load_cv(default_run(tiny), tiny)
    y, p = tiny.outcomes["responder"].to_numpy(), stored.prediction.to_numpy()
    for threshold in (0.5, 0.3):
        at.slider(key="pred-threshold").set_value(threshold).run()
        no_exception(at)
        called = p >= threshold
        assert metric(at, "Sensitivity") == f"{(called & y).sum() / y.sum():.3f}"
        assert metric(at, "Specificity") == f"{(~called & ~y).sum() / (~y).sum():.3f}"
    table = at.dataframe[0].value
    assert table.index.name == "metric (95% CI)" and table.columns[0] == f"Model (xgboost) (n={len(y)})"
    assert table.loc["ROC AUC"].iloc[0].startswith(f"{roc_auc(y, p):.3f} (")


def test_whatif_edit_gives_the_scenario_of_core(trained_workspace):
    at = open_view(open_page(), "What-if")
    tiny = Workspace(trained_workspace).load("tiny")
    stored = Workspace(trained_workspace).load_cv(default_run(tiny), tiny)
    whatif = WhatIf(stored, tiny.features)
    patient = at.selectbox(key="wi-patient-responder").value
    base = whatif.scenario(patient)
    assert metric(at, "Baseline prediction") == f"{base.prediction:.3f}" == f"{stored.prediction[patient]:.3f}"
    assert metric(at, "Edited prediction") == f"{base.prediction:.3f}"

    # The most important editable feature this patient has, moved to the other end of its range.
    feature = next(f for f in stored.importance().index if f not in IMMUTABLE_FEATURES and pd.notna(tiny.features.at[patient, f]))
    low, high = tiny.features[feature].min(), tiny.features[feature].max()
    value = float(low if tiny.features.at[patient, feature] > (low + high) / 2 else high)
    edited = whatif.scenario(patient, {feature: value})
    assert edited.prediction != pytest.approx(base.prediction, abs=5e-4), "pick a change that moves the prediction"
    show_inputs(at, feature)
    at.number_input(key=f"wi-{patient}-{feature}").set_value(value).run()
    no_exception(at)
    assert metric(at, "Edited prediction") == f"{edited.prediction:.3f}"
    assert metric(at, "Baseline prediction") == f"{base.prediction:.3f}"
    assert not at.warning

    # A value beyond anything seen in training is named in a warning.
    beyond = float(high + (high - low) / 4)
    at.number_input(key=f"wi-{patient}-{feature}").set_value(beyond).run()
    no_exception(at)
    assert whatif.scenario(patient, {feature: beyond}).out_of_range == [feature]
    assert len(at.warning) == 1 and feature in at.warning[0].value


def test_edits_in_two_modalities_add_up_survive_switching_and_reset(trained_workspace):
    at = open_view(open_page(), "What-if")
    tiny = Workspace(trained_workspace).load("tiny")
    whatif = WhatIf(Workspace(trained_workspace).load_cv(default_run(tiny), tiny), tiny.features)
    patient = at.selectbox(key="wi-patient-responder").value
    own = tiny.features.loc[patient]
    dti = next(f for f in tiny.features if f.startswith("dti.") and pd.notna(own[f]))
    clin = "clin.safe_score"
    edits = {dti: float(tiny.features[dti].min()), clin: float(tiny.features[clin].max())}
    for feature, value in edits.items():
        show_inputs(at, feature)
        at.number_input(key=f"wi-{patient}-{feature}").set_value(value).run()
        no_exception(at)
    # The DTI inputs are no longer drawn, yet their edit still counts.
    assert at.number_input(key=f"wi-{patient}-{clin}").value == edits[clin]
    assert metric(at, "Edited prediction") == f"{whatif.scenario(patient, edits).prediction:.3f}"
    show_inputs(at, dti)
    assert at.number_input(key=f"wi-{patient}-{dti}").value == edits[dti]
    assert any(c.startswith("Changed: ") and dti in c and clin in c for c in captions(at))

    at.button(key="wi-reset").click().run()
    no_exception(at)
    assert at.number_input(key=f"wi-{patient}-{dti}").value == pytest.approx(own[dti])
    assert metric(at, "Edited prediction") == metric(at, "Baseline prediction") == f"{whatif.scenario(patient).prediction:.3f}"
    assert not any(c.startswith("Changed: ") for c in captions(at))


def test_age_sex_and_indication_are_locked_until_unlocked(trained_workspace):
    at = open_view(open_page(), "What-if")
    patient = at.selectbox(key="wi-patient-responder").value
    show_inputs(at, "clin.age")
    inputs = {f: at.number_input(key=f"wi-{patient}-{f}") for f in IMMUTABLE_FEATURES}
    assert all(w.disabled for w in inputs.values())
    assert not at.number_input(key=f"wi-{patient}-clin.safe_score").disabled

    at.toggle(key="wi-unlock").set_value(True).run()
    no_exception(at)
    assert not any(at.number_input(key=f"wi-{patient}-{f}").disabled for f in IMMUTABLE_FEATURES)
    tiny = Workspace(trained_workspace).load("tiny")
    stored = Workspace(trained_workspace).load_cv(default_run(tiny), tiny)
    age = float(tiny.features["clin.age"].min())
    at.number_input(key=f"wi-{patient}-clin.age").set_value(age).run()
    no_exception(at)
    assert metric(at, "Edited prediction") == f"{WhatIf(stored, tiny.features).scenario(patient, {'clin.age': age}).prediction:.3f}"


# --- bad cohorts ------------------------------------------------------------------------------------


def _broken(tiny: Cohort, kind: str) -> tuple[Cohort, str]:
    outcomes, features = tiny.outcomes.copy(), tiny.features.copy()
    outcome = "responder"
    if kind == "one class":
        outcomes["responder"] = False
    elif kind == "constant outcome":
        outcomes["improvement_pct"], outcome = 40.0, "improvement_pct"
    elif kind == "all-missing feature":
        features["kin.sparc"] = np.nan
    elif kind == "non-numeric column":
        features["clin.nihss"] = features["clin.nihss"].map(lambda v: "n/a" if pd.isna(v) else f"{v:g} points").astype(object)
    patients = tiny.patients
    if kind == "fewer patients than folds":  # 4 responders and 4 non-responders for 5 folds
        keep = list(outcomes.index[outcomes["responder"]][:4]) + list(outcomes.index[~outcomes["responder"]][:4])
        patients, features, outcomes = patients.loc[keep], features.loc[keep], outcomes.loc[keep]
    name = kind.replace(" ", "-")
    return Cohort(name, patients, features, outcomes, tiny.responder_threshold_pct, provenance={"kind": "test"}), outcome


@pytest.mark.parametrize("kind", ["one class", "constant outcome", "all-missing feature", "non-numeric column", "fewer patients than folds"])
def test_a_bad_cohort_shows_the_error_from_core_and_stays_loaded(empty_workspace, kind):
    ws = Workspace(empty_workspace)
    cohort, outcome = _broken(ws.load("tiny"), kind)
    ws.save(cohort)
    ws.set_setting("last_cohort", cohort.name)
    with pytest.raises(InputError) as expected:
        cross_validate(cohort, outcome, splitter=CohortSplitter(n_repeats=REPEATS))

    at = train(open_page(outcome=outcome))
    assert [e.value for e in at.error] == [str(expected.value)]
    assert any(c.startswith(f"**{cohort.name}** · {cohort.n_patients} patients") for c in captions(at))
    assert at.sidebar.selectbox[0].value == cohort.name
    assert ws.load_cv(run_digest(cohort, outcome, CohortSplitter(n_repeats=REPEATS), {}, list(cohort.features.columns)), cohort) is None


# --- the model report --------------------------------------------------------------------------------


def test_model_report_covers_the_tripod_items_with_the_runs_numbers(trained_workspace):
    from core.evaluation.metrics import binary_metrics, expected_calibration_error, metrics_with_ci
    from core.evaluation.report import model_report_html

    ws = Workspace(trained_workspace)
    tiny = ws.load("tiny")
    run = default_run(tiny)
    stored = ws.load_cv(run, tiny)
    report = model_report_html(tiny, stored, run)
    y, p = tiny.outcomes["responder"].to_numpy(), stored.prediction.to_numpy()
    auc = metrics_with_ci(lambda a, b: binary_metrics(a, b, 0.5), y, p, n_boot=1000).loc["auc"]
    for section in ("Data source", "Participants and outcome", "Predictors", "Missing data", "Model", "Validation", "Performance", "Calibration"):
        assert f"<h2>{section}</h2>" in report
    assert stored.scheme in report
    assert f"improvement of at least <b>{tiny.responder_threshold_pct:g}%</b>" in report
    assert all(f"<code>{f}</code>" in report for f in tiny.features.columns)
    assert f"{auc['estimate']:.3f} ({auc['ci_low']:.3f}–{auc['ci_high']:.3f})" in report
    assert f"<b>{expected_calibration_error(y, p):.4f}</b>" in report
    assert "early_stopping_rounds" in report and report.startswith("<!DOCTYPE html>") and report.endswith("</html>")


# --- deep fusion, stacked, and the comparison of models ------------------------------------------

DEEP = {"n_splits": 2, "n_repeats": 1, "max_epochs": 2}


def deep_settings(model: str):
    from core.modelling.validation import CVSettings

    return CVSettings(model=model, **DEEP)


@pytest.fixture(scope="module")
def models_template(app_workspace_template, tmp_path_factory):
    """The "tiny" workspace with xgboost, fusion and stacked runs on the same 1 x 2 folds."""
    path = shutil.copytree(app_workspace_template, tmp_path_factory.mktemp("models") / "workspace")
    ws = Workspace(path)
    tiny = ws.load("tiny")
    for model in ("xgboost", "fusion", "stacked"):
        ws.train_cv(tiny, deep_settings(model))
    return path


@pytest.fixture
def models_workspace(models_template, tmp_path, monkeypatch):
    return private_workspace(models_template, tmp_path, monkeypatch)


def open_deep(model: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300).switch_page(PAGE).run()
    at.selectbox(key="pred-model").set_value(model).run()
    at.number_input(key="pred-folds").set_value(DEEP["n_splits"])
    at.number_input(key="pred-epochs").set_value(DEEP["max_epochs"])
    at.run()
    no_exception(at)
    return at


def test_a_stopped_fusion_run_resumes_from_the_page_with_its_kept_folds(empty_workspace):
    ws = Workspace(empty_workspace)
    tiny = ws.load("tiny")
    settings = deep_settings("fusion")
    run = settings.run_digest(tiny)

    def stop(done, total):
        raise KeyboardInterrupt  # what pressing Stop does to the page's script: it ends mid-run

    with pytest.raises(KeyboardInterrupt):
        ws.train_cv(tiny, settings, progress=stop)
    at = open_deep("fusion")
    assert any("stopped with 1 of 2 folds finished and kept" in w.value for w in at.warning)
    train(at)
    assert any(f"Run `{run}` (trained and saved)" in c for c in captions(at))
    assert ws.cv_progress(run) == 0
    stored = ws.load_cv(run, tiny)
    fresh = Workspace(empty_workspace.parent / "fresh").train_cv(tiny, settings)
    np.testing.assert_allclose(stored.prediction.to_numpy(), fresh.prediction.to_numpy(), atol=1e-6)
    assert metric(at, "OOF AUC") == f"{roc_auc(tiny.outcomes['responder'], stored.prediction):.3f}"


def test_compare_view_scores_every_model_on_the_same_patients(models_workspace):
    from components.panels.prediction import MODEL_NAMES
    from core.evaluation.comparison import compare_models

    at = open_view(open_deep("fusion"), "Compare models")
    ws = Workspace(models_workspace)
    tiny = ws.load("tiny")
    runs = {MODEL_NAMES[m]: ws.load_cv(deep_settings(m).run_digest(tiny), tiny) for m in ("xgboost", "fusion", "stacked")}
    expected = compare_models(tiny, runs, n_boot=1000)
    assert any(expected.summary_sentence() in m.value for m in at.markdown), [m.value for m in at.markdown]
    for name, row in expected.oracle.iterrows():
        assert metric(at, name) == f"{row['fraction']:.3f}"
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"fig-pred-compare-metrics", "fig-pred-compare-paired", "fig-pred-compare-decision", "fig-pred-compare-calibration", "fig-pred-compare-patterns"} <= charts
    assert any("Every effect planted in this cohort is summarised by an engineered feature" in m.value for m in at.markdown)
    assert at.button(key="pred-learning-curves")  # offered, not computed: minutes of deep training


def test_fusion_what_if_knocks_out_the_scan_as_core_does(models_workspace):
    from core.modelling.fusion import fusion_design
    from core.modelling.whatif import FusionWhatIf

    at = open_view(open_deep("fusion"), "What-if")
    ws = Workspace(models_workspace)
    tiny = ws.load("tiny")
    result = ws.load_cv(deep_settings("fusion").run_digest(tiny), tiny)
    wi = FusionWhatIf(result, fusion_design(tiny, ws.fusion_inputs(tiny)))
    patient = next(pid for pid in tiny.patients.index if all(wi.has(pid).values()))
    at.selectbox(key="wi-fusion-patient").set_value(patient).run()
    at.toggle(key=f"wi-fusion-{patient}-dti").set_value(False).run()
    no_exception(at)
    assert metric(at, "Edited probability of response") == f"{wi.scenario(patient, ['dti']).prediction:.3f}"
    assert metric(at, "Baseline probability of response") == f"{result.prediction[patient]:.3f}"
    assert any("without Diffusion MRI (DTI)" in c for c in captions(at))


def test_fusion_explanations_show_modality_shapley_loss_curves_and_where_the_fa_branch_looks(models_workspace):
    at = open_view(open_deep("fusion"), "Explanations")
    charts = {c.key for c in at.get("plotly_chart")}
    assert {"fig-pred-deep-beeswarm", "fig-pred-deep-modality-importance", "fig-pred-deep-loss"} <= charts
    assert any(key.startswith("pred-saliency-") and key.endswith("_chart") for key in charts)
    assert any(m.label == "|Saliency| in the affected CST" for m in at.metric)


def test_stacked_run_opens_with_the_fusion_input_among_its_features(models_workspace):
    at = open_view(open_deep("stacked"), "Explanations")
    ws = Workspace(models_workspace)
    tiny = ws.load("tiny")
    run = deep_settings("stacked").run_digest(tiny)
    assert any(f"Run `{run}` (loaded saved run)" in c for c in captions(at))
    assert "What-if" not in [t.label for t in at.tabs]
    assert any(option.endswith("fusion.logit") for option in at.selectbox(key="pred-dep-feature").options)


@pytest.mark.parametrize("model", ["fusion", "stacked"])
def test_deep_runs_export_a_model_report_that_names_the_model(models_workspace, model):
    from core.evaluation.report import model_report_html

    at = open_view(open_deep(model), "Export")
    ws = Workspace(models_workspace)
    tiny = ws.load("tiny")
    run = deep_settings(model).run_digest(tiny)
    html = model_report_html(tiny, ws.load_cv(run, tiny), run)
    assert ("Deep multimodal fusion" if model == "fusion" else "Stacked: gradient-boosted trees") in html
    assert ("learned missing-modality embedding" if model == "fusion" else "fusion.logit") in html
    assert at.get("download_button")
