"""The Any outcome page driven through AppTest: zero-shot predictions of a bank measure and of a
described one, the stored held-out evaluation and transfer curve shown with the engine's numbers,
and the errors a bad description gets.

The workspace holds "mid" (200 patients, both indications) with its evaluation (5 folds) and a
transfer curve stored as the page stores them (the curve's cheap-only limit from 2,000 reference
patients instead of the page's 20,000, to stay fast).
"""

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data.outcome_bank import load_outcome_bank
from core.evaluation.anyoutcome import AnyOutcomeSettings
from core.evaluation.transfer import TRANSFER_CURVE_SIZES, transfer_sentence
from core.jobs import JobRunner
from core.modelling.anyoutcome import zero_shot_table
from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.app_support import APP, array_of, figure, no_exception, private_workspace
from tests.jobs_support import click_and_finish, finish_jobs

PAGE = "pages/any_outcome.py"
CHEAP = ["emg", "kin", "clin"]

pytestmark = pytest.mark.usefixtures("fresh_streamlit")


@pytest.fixture(scope="module")
def outcome_template(tmp_path_factory):
    path = tmp_path_factory.mktemp("any-outcome") / "workspace"
    ws = Workspace(path)
    mid = generate_cohort(CohortConfig(name="mid", n_patients=200, seed=5), n_jobs=1)
    ws.save(mid)
    mid = ws.load("mid")
    ws.any_outcome_evaluation(mid, AnyOutcomeSettings())
    sizes = tuple(n for n in TRANSFER_CURVE_SIZES if n < mid.n_patients) + (mid.n_patients,)
    ws.transfer_curve(mid, [m for m in mid.modalities if m != "dti"], sizes, n_reference=2000)
    return path


@pytest.fixture
def workspace(outcome_template, tmp_path, monkeypatch):
    return private_workspace(outcome_template, tmp_path, monkeypatch)


def open_page() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=300).switch_page(PAGE).run()
    no_exception(at)
    assert at.title[0].value == "Any outcome"
    return at


def test_zero_shot_of_a_bank_measure_shows_the_engines_predictions(workspace):
    at = open_page()
    at.selectbox(key="any-measure").set_value("grip_kg_w12").run()
    no_exception(at)
    mid = Workspace(workspace).load("mid")
    spec = next(s for s in load_outcome_bank() if s.key == "grip_kg_w12")
    expected = zero_shot_table(mid, spec)
    shown = figure(at, "fig-any-zero-shot")["data"][0]
    np.testing.assert_allclose(array_of(shown["x"]), expected["zero_shot_sd"].to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(array_of(shown["y"]), expected["recorded"].to_numpy())
    assert "signed r = " in figure(at, "fig-any-zero-shot")["layout"]["title"]["text"]
    assert any("In the held-out evaluation, the" in m.value for m in at.markdown)
    assert any("Few-shot (stacked meta-matching" in m.label for m in at.metric)


def test_a_described_measure_is_predicted_and_an_empty_one_is_explained(workspace):
    at = open_page()
    at.radio(key="any-source").set_value("Describe a new measure").run()
    no_exception(at)
    assert any("Type a description" in i.value for i in at.info)
    at.text_area(key="any-description").set_value("Wolf Motor Function Test, seconds to complete timed arm and hand tasks").run()
    at.selectbox(key="any-direction").set_value("higher_worse").run()
    no_exception(at)
    nearest = next(d.value for d in at.dataframe if "similarity" in d.value.columns)
    assert len(nearest) == 5 and nearest["similarity"].is_monotonic_decreasing
    assert any("Few-shot needs recorded values" in i.value for i in at.info)


def test_the_stored_evaluation_and_transfer_curve_are_shown_with_their_numbers(workspace):
    at = open_page()
    ws = Workspace(workspace)
    mid = ws.load("mid")
    evaluation = ws.any_outcome_evaluation(mid, AnyOutcomeSettings(), compute=False)
    assert any(m.value == evaluation.summary_sentence() for m in at.markdown)
    methods = figure(at, "fig-any-methods")["data"]
    summary = evaluation.summary().query("K == 0").set_index("label")["mean_r"]
    assert {array_of(t["y"])[0]: array_of(t["x"])[0] for t in methods} == pytest.approx(summary.to_dict())
    paired = next(d.value for d in at.dataframe if "baseline" in d.value.columns)
    np.testing.assert_allclose(paired["mean_difference"], evaluation.paired()["mean_difference"].round(3))
    assert (paired["p"] > 0).all()  # shown to 4 places, so the smallest bootstrap p does not read 0
    sizes = tuple(n for n in TRANSFER_CURVE_SIZES if n < mid.n_patients) + (mid.n_patients,)
    curve, limit = ws.transfer_curve(mid, CHEAP, sizes, compute=False)
    assert any(m.value == transfer_sentence(curve) for m in at.markdown)
    shown = figure(at, "fig-any-transfer-curve")["data"]
    limit_auc = float(limit["cheap_limit_auc"].iloc[0])
    assert [t["name"] for t in shown] == ["Full model (with DTI)", "Cheap modalities only", "Student (distilled from the DTI teacher)",
                                          f"Cheap-only limit ({limit_auc:.3f})"]
    assert array_of(shown[3]["y"]) == [limit_auc, limit_auc]
    np.testing.assert_allclose(array_of(shown[2]["y"]), curve.query("model == 'student'").sort_values("n_patients")["auc"])


def test_the_distillation_bound_is_computed_on_request_stored_and_drawn_with_its_numbers(workspace):
    from core.evaluation.transfer import distillation_bound_sentence, distillation_bound_summary

    at = open_page()
    assert at.subheader[-1].value == "How much could any teacher pass on?"
    click_and_finish(at, "any-bound", workspace)  # a background job, as the page's poll waits for it
    (job,) = JobRunner(workspace).list("local")
    assert job.kind == "bound" and job.status == "done"
    ws = Workspace(workspace)
    table = ws.distillation_bound(ws.load("mid"), CHEAP, compute=False)
    assert table is not None and table["n_patients"].eq(200).all() and table["subsample"].nunique() == 6
    summary = distillation_bound_summary(table)
    assert any(m.value == distillation_bound_sentence(summary) for m in at.markdown)
    shown = {array_of(t["y"])[0]: array_of(t["x"])[0] for t in figure(at, "fig-any-transfer-bound")["data"]}
    labels = {"Student taught by the DTI model": "student", "Taught by a perfect teacher alone": "oracle_taught_alone", "Full model (reads DTI)": "full"}
    assert {label: shown[label] for label in labels} == pytest.approx({label: summary.at[model, "diff_vs_cheap_only"] for label, model in labels.items()})
    again = open_page()  # stored: a fresh session draws it without the button
    assert not [b for b in again.button if b.key == "any-bound"]
    assert any(m.value == distillation_bound_sentence(summary) for m in again.markdown)


def test_without_a_stored_evaluation_the_page_offers_to_run_it(workspace):
    import shutil

    for kind in ("any_outcome_predictions", "any_outcome_splits", "any_outcome_similarity"):
        shutil.rmtree(workspace / kind)
    at = open_page()
    assert at.button(key="any-evaluate").label == "Run the held-out evaluation"
    assert any("Run the held-out evaluation (tab **Held-out evaluation**)" in m.value for m in at.markdown)
    # The button starts a background job; its panel shows Cancel; a job cancelled before any fold finished leaves no evaluation.
    at.button(key="any-evaluate").click().run()
    no_exception(at)
    runner = JobRunner(workspace)
    (job,) = runner.list("local")
    assert job.kind == "any_outcome" and job.active
    at.button(key=f"job-cancel-{job.id}").click().run()
    (done,) = finish_jobs(workspace)
    assert done.status == "cancelled"
    at = open_page()
    assert at.button(key="any-evaluate").label == "Run the held-out evaluation"
    assert [i.value for i in at.info if i.value == done.message] == [done.message]  # what the job said (how far it got depends on the machine)
