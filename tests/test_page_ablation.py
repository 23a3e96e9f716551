"""The Ablation page driven through AppTest: a run, its numbers, saved runs, cancel and resume, errors.

Every test runs app.py (navigation + sidebar) and switches to pages/ablation.py, on a private copy
of a small workspace holding the 60-patient cohort "tiny" (``app_workspace_template`` in
conftest.py). Runs use 1 repeat and 3 permutations instead of the page's 2 and 20 to stay fast.
"""

import os
import shutil

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import core.ablation
from components.panels import ablation as ablation_panels
from components.views.ablation import p_text, subset_name
from core.ablation.config import AblationConfig, ablation_digest
from core.ablation.run import run_ablation
from core.data.cohort import Cohort
from core.errors import InputError
from core.jobs import JobRunner
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from tests.app_support import APP, captions, metric, no_exception, private_workspace
from tests.jobs_support import click_and_finish, finish_jobs, wait_for_progress

PAGE = "pages/ablation.py"
REPEATS, PERMUTATIONS = 1, 3

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


def page_config(outcome="responder") -> AblationConfig:
    """The config the page builds from REPEATS and PERMUTATIONS (other settings at their defaults)."""
    return AblationConfig(outcome=outcome, n_splits=5, n_repeats=REPEATS, n_permutations=PERMUTATIONS)


@pytest.fixture(scope="module")
def ablated_template(app_workspace_template, tmp_path_factory):
    """The "tiny" workspace plus a saved responder run, as the page would have stored it."""
    path = shutil.copytree(app_workspace_template, tmp_path_factory.mktemp("ablation") / "workspace")
    ws = Workspace(path)
    tiny = ws.load("tiny")
    ws.save_ablation(tiny, run_ablation(tiny, page_config()))
    return path


@pytest.fixture
def ablated_workspace(ablated_template, tmp_path, monkeypatch):
    return private_workspace(ablated_template, tmp_path, monkeypatch)


@pytest.fixture
def no_refit(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("refitted an ablation run that is saved")

    monkeypatch.setattr(core.ablation, "run_ablation", refuse)


# --- helpers ------------------------------------------------------------------------------------


def open_page(outcome=None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300).switch_page(PAGE).run()
    no_exception(at)
    assert at.title[0].value == "Modality ablation"
    at.number_input(key="abl-repeats").set_value(REPEATS)
    at.number_input(key="abl-permutations").set_value(PERMUTATIONS)
    if outcome:
        at.radio(key="abl-outcome").set_value(outcome)
    at.run()
    no_exception(at)
    return at


def press_run(at) -> AppTest:
    """Press Run (or Resume) and wait for the background job (if one started), as the page's poll would, then rerun."""
    return click_and_finish(at, "abl-run", os.environ[DEFAULT_WORKSPACE_ENV])


TABLES = {"shapley": "share", "forest": "reference"}  # a column only that table has


def table(at, name) -> pd.DataFrame:
    """The Shapley table or the forest plot's table, as shown."""
    (match,) = [d.value for d in at.dataframe if TABLES[name] in d.value.columns]
    return match


def stored(workspace, outcome="responder"):
    ws = Workspace(workspace)
    tiny = ws.load("tiny")
    digest = ablation_digest(tiny, page_config(outcome))
    return digest, ws.load_ablation(digest)


def assert_shows(at, result, metric_name="auc"):
    """The Shapley table, the forest table and the headline show the engine's numbers."""
    shapley = result.shapley(metric_name)
    shown = table(at, "shapley")
    np.testing.assert_allclose(shown["value"].to_numpy(), shapley["value"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(shown[["ci_low", "ci_high"]].to_numpy(), shapley[["ci_low", "ci_high"]].to_numpy(), rtol=1e-12)
    assert list(shown["p_holm"]) == [p_text(p) for p in shapley["p_holm"]]
    assert list(shown["rank"]) == list(shapley["rank"])
    design = result.design("leave_one_out", metric_name)
    forest = table(at, "forest")
    np.testing.assert_allclose(forest["change"].to_numpy(), design["change"].to_numpy(), rtol=1e-12)
    assert list(forest.index) == [f"without {m}" for m in ("DTI", "EMG", "Kinematics", "Clinical")]
    full = result.subsets(metric_name).set_index("subset").loc[result.full_label]
    assert metric(at, f"Full model {core.evaluation.metrics.METRICS[metric_name].label}") == f"{full['mean']:.3f}"


# --- running, storing, reloading ----------------------------------------------------------------


def test_a_run_shows_the_engines_numbers_and_comes_back_without_refitting(empty_workspace, monkeypatch):
    at = open_page()
    assert any("No saved run for responder" in i.value for i in at.info)
    n_fits = 15 * 5 * REPEATS + PERMUTATIONS * 5
    assert at.button(key="abl-run").label == f"Run ablation ({n_fits} fits)"

    press_run(at)
    digest, result = stored(empty_workspace)
    assert result is not None and result.is_complete and result.progress() == (n_fits, n_fits)
    assert any(c.startswith(f"Run `{digest}` (run and saved)") for c in captions(at))
    assert_shows(at, result)
    test = result.permutation_test("auc")
    assert metric(at, "Permutation p") == f"{test['p_value']:.3f}"
    assert not at.error and not at.warning

    # A fresh session (caches emptied, as after a restart) loads the stored run and never refits.
    def refuse(*args, **kwargs):
        raise AssertionError("refitted an ablation run that is saved")

    monkeypatch.setattr(core.ablation, "run_ablation", refuse)
    st.cache_resource.clear()
    st.cache_data.clear()
    again = open_page()
    assert any(c.startswith(f"Run `{digest}` (loaded saved run)") for c in captions(again))
    assert_shows(again, result)
    press_run(again)  # the button, too, loads instead of refitting
    assert any("Loaded saved run" in s.value for s in again.success)
    assert_shows(again, result)


def test_switching_metric_and_design_refits_nothing_and_shows_the_engines_tables(ablated_workspace, no_refit):
    _, result = stored(ablated_workspace)
    at = open_page()
    at.selectbox(key="abl-metric-responder").set_value("brier").run()
    no_exception(at)
    assert_shows(at, result, "brier")
    for design in ("single", "add_one", "all_subsets"):
        at.selectbox(key="abl-design").set_value(design).run()
        no_exception(at)
        expected = result.design(design, "brier")
        forest = table(at, "forest")
        np.testing.assert_allclose(forest["change"].to_numpy(), expected["change"].to_numpy(), rtol=1e-12)
        assert list(forest["significant"]) == list(expected["significant"])
        assert expected.attrs["note"] in captions(at)
    # Adding modalities cheapest first (example time costs): the order and its steps follow the costs.
    at.selectbox(key="abl-design").set_value("add_one").run()
    at.radio(key="abl-order").set_value("cheapest").run()
    no_exception(at)
    time = {m: c["scanner_min"] + c["lab_min"] for m, c in ablation_panels.EXAMPLE_COSTS.items()}
    order = sorted(result.modalities, key=time.get)
    expected = result.design("add_one", "brier", order=order)
    np.testing.assert_allclose(table(at, "forest")["change"].to_numpy(), expected["change"].to_numpy(), rtol=1e-12)
    assert not at.error


def test_pareto_front_follows_the_chosen_cost(ablated_workspace, no_refit):
    _, result = stored(ablated_workspace)
    at = open_page()
    for measure in ("time", "price"):
        at.radio(key="abl-cost-measure").set_value(measure).run()
        no_exception(at)
        costs = {m: (c["scanner_min"] + c["lab_min"]) if measure == "time" else c[measure] for m, c in ablation_panels.EXAMPLE_COSTS.items()}
        front = result.pareto_front(costs, "auc")
        front = front[front["pareto"]]
        listed = "; ".join(f"{subset_name(s)} ({c:g})" for s, c in zip(front["subset"], front["cost"]))
        assert any(listed in c for c in captions(at)), (listed, captions(at))


def test_settings_survive_a_visit_to_another_page(ablated_workspace, no_refit):
    at = open_page()
    at.selectbox(key="abl-design").set_value("all_subsets").run()
    at.number_input(key="abl-folds").set_value(4).run()  # no saved run: the design box is not drawn now
    assert any("No saved run" in i.value for i in at.info)
    at.switch_page("pages/prediction.py").run()
    no_exception(at)
    at.switch_page(PAGE).run()
    no_exception(at)
    assert at.number_input(key="abl-folds").value == 4
    assert at.number_input(key="abl-repeats").value == REPEATS
    at.number_input(key="abl-folds").set_value(5).run()  # back to the saved run's settings
    assert at.selectbox(key="abl-design").value == "all_subsets"
    assert any("(loaded saved run)" in c for c in captions(at))


# --- cancel and resume ---------------------------------------------------------------------------


def test_a_cancelled_run_keeps_its_fits_and_resume_finishes_it(empty_workspace):
    at = open_page()
    at.button(key="abl-run").click().run()
    no_exception(at)
    runner = JobRunner(empty_workspace)
    (job,) = runner.list("local")
    wait_for_progress(runner, job.id, done=3)
    at.run()
    at.button(key=f"job-cancel-{job.id}").click().run()  # the Cancel button of the job's panel
    no_exception(at)
    (cancelled,) = finish_jobs(empty_workspace)
    assert cancelled.status == "cancelled"
    at.run()
    no_exception(at)
    digest, partial = stored(empty_workspace)
    assert partial is not None and not partial.is_complete
    done, total = partial.progress()
    assert 0 < done < total
    assert cancelled.message == f"Ablation stopped after {done} of {total} model fits; they are saved. Press Resume to finish."
    assert any(cancelled.message == i.value for i in at.info)
    assert any(f"{done} of {total} model fits" in i.value for i in at.info)
    assert at.button(key="abl-run").label == f"Resume ({done} of {total} fits done)"

    press_run(at)
    resumed = runner.list("local")[0]
    assert resumed.id != job.id and resumed.status == "done" and resumed.detail["resumed_from"] == done  # started from the kept fits
    _, finished = stored(empty_workspace)
    assert finished.is_complete
    kept = partial.scores.merge(finished.scores, on=["subset", "repeat", "fold"], suffixes=("", "_final"))
    assert len(kept) == done
    np.testing.assert_array_equal(kept["auc"], kept["auc_final"])
    assert_shows(at, finished)
    assert any(c.startswith(f"Run `{digest}` (run and saved)") for c in captions(at))


def test_workspace_keeps_partial_and_complete_runs(app_workspace, small_cohort):
    ws = Workspace(app_workspace)
    config = AblationConfig(n_splits=3, n_repeats=1, n_permutations=0, model_params={"n_estimators": 30, "early_stopping_rounds": 5})
    digest = ablation_digest(small_cohort, config)
    assert ws.load_ablation(digest) is None and ws.ablation_saved_at(digest) is None
    with pytest.raises(core.ablation.AblationCancelled) as cancelled:
        run_ablation(small_cohort, config, n_jobs=1, chunk_size=4, should_stop=iter([False, True]).__next__)
    ws.save_ablation(small_cohort, cancelled.value.partial)
    partial = Workspace(app_workspace).load_ablation(digest)  # a new process would do exactly this
    assert partial.progress() == (4, 45) and not partial.is_complete
    first = ws.ablation_saved_at(digest)
    ws.save_ablation(small_cohort, run_ablation(small_cohort, config, n_jobs=1, resume=partial))
    complete = ws.load_ablation(digest)
    assert complete.is_complete and ws.ablation_saved_at(digest) > first
    with pytest.raises(InputError, match="not a run digest"):
        ws.load_ablation("../escape")


# --- bad cohorts ----------------------------------------------------------------------------------


def _broken(tiny: Cohort, kind: str) -> Cohort:
    features, outcomes, patients = tiny.features, tiny.outcomes.copy(), tiny.patients
    if kind == "one modality":
        features = features[tiny.features_of("clin")]
    elif kind == "one class":
        outcomes["responder"] = False
    elif kind == "fewer patients than folds":  # 4 responders and 4 non-responders for 5 folds
        keep = list(outcomes.index[outcomes["responder"]][:4]) + list(outcomes.index[~outcomes["responder"]][:4])
        patients, features, outcomes = patients.loc[keep], features.loc[keep], outcomes.loc[keep]
    return Cohort(kind.replace(" ", "-"), patients, features, outcomes, tiny.responder_threshold_pct, provenance={"kind": "test"})


@pytest.mark.parametrize("kind", ["one modality", "one class", "fewer patients than folds"])
def test_a_bad_cohort_shows_the_error_from_core_and_stays_loaded(empty_workspace, kind):
    ws = Workspace(empty_workspace)
    cohort = _broken(ws.load("tiny"), kind)
    ws.save(cohort)
    ws.set_setting("last_cohort", cohort.name)
    with pytest.raises(InputError) as expected:
        run_ablation(cohort, page_config())

    at = press_run(open_page())
    assert [e.value for e in at.error] == [str(expected.value)]
    assert any(c.startswith(f"**{cohort.name}** · {cohort.n_patients} patients") for c in captions(at))
    assert at.sidebar.selectbox[0].value == cohort.name
    assert ws.ablation_saved_at(ablation_digest(cohort, page_config())) is None
    assert ws.load("tiny").n_patients == 60  # nothing loaded is lost


def test_continuous_outcome_shows_r2_and_error_metrics(empty_workspace):
    at = press_run(open_page(outcome="improvement_pct"))
    _, result = stored(empty_workspace, "improvement_pct")
    assert result.is_complete and result.config.outcome == "improvement_pct"
    assert at.selectbox(key="abl-metric-improvement_pct").value == "r2"
    assert_shows(at, result, "r2")
    for name in ("mae", "rmse"):  # lower is better: the views turn round, the numbers stay the engine's
        at.selectbox(key="abl-metric-improvement_pct").set_value(name).run()
        no_exception(at)
        assert_shows(at, result, name)
    assert not at.error
