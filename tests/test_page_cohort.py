"""The app driven through streamlit.testing.v1.AppTest: widgets, numbers shown, errors, no exception.

Every test runs app.py (st.navigation + the sidebar + pages/cohort.py) against a private copy of a
small saved workspace (``app_workspace`` in conftest.py), so tests never share a cohort choice.
"""


import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from core.data.schema import FEATURE_DESCRIPTIONS, MODALITIES
from core.evaluation.ground_truth import bayes_optimal_auc
from core.modelling.prep2 import prep2_evaluation
from core.store.workspace import DEFAULT_WORKSPACE_ENV, Workspace
from core.synth.config import INDICATIONS, CohortConfig, presets
from core.synth.outcome import outcome_formula
from tests.app_support import APP, figure

TABS = ["Distributions", "Correlations", "Patient", "Ground truth", "Export"]


pytestmark = pytest.mark.usefixtures("fresh_streamlit")


@pytest.fixture
def app(app_workspace, monkeypatch):
    """The app, run once, on a workspace holding the cohort "tiny"."""
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    return at


@pytest.fixture
def tiny(app_workspace):
    return Workspace(app_workspace).load("tiny")


# --- helpers ------------------------------------------------------------------------------------


def by_label(widgets, label):
    (match,) = [w for w in widgets if w.label == label]
    return match


def metric(at, label):
    return by_label(at.metric, label).value


def trace_names(fig):
    return [t.get("name") for t in fig["data"]]


def cohort_selector(at):
    return by_label(at.sidebar.selectbox, "Cohort")


def page_caption(at):
    """The caption under the generator: '**name** · N patients · ...'."""
    (caption,) = [c.value for c in at.caption if c.value.startswith("**")]
    return caption


def submit_form(at, **values):
    """Fill the generator form (label -> value) and press "Generate and save"."""
    for label, value in values.items():
        widget = [w for w in (*at.text_input, *at.number_input, *at.slider) if w.label == label]
        assert len(widget) == 1, f"no single form widget labelled {label!r}"
        widget[0].set_value(value)
    by_label(at.button, "Generate and save").click()
    return at.run()


# --- the page with a saved cohort ---------------------------------------------------------------


def test_page_shows_the_saved_cohort_and_its_summary(app, tiny, app_workspace):
    at = app
    assert [t.label for t in at.tabs] == TABS
    selector = cohort_selector(at)
    assert selector.options == ["tiny"] and selector.value == "tiny"
    assert any(str(app_workspace) in c.value for c in at.sidebar.caption)
    assert by_label(at.sidebar.radio, "Figure download format").value == "png"
    assert page_caption(at).startswith("**tiny** · 60 patients · modalities: dti, emg, kin, clin")

    summary = at.dataframe[0].value
    expected = tiny.patients["indication"].value_counts()
    assert sorted(summary.index) == sorted(expected.index) == ["parkinsons", "stroke"]
    assert summary["patients"].to_dict() == expected.to_dict()
    responders = 100 * tiny.outcomes.groupby(tiny.patients["indication"])["responder"].mean()
    assert summary["responders (%)"].to_dict() == responders.round(1).to_dict()
    # With a cohort loaded, the generator starts collapsed and no error or info is shown.
    assert at.expander[0].label == "Generate a synthetic cohort" and not at.expander[0].proto.expanded
    assert not at.error and not at.info


def test_ground_truth_tab_shows_what_core_computes(app, tiny):
    at = app
    auc, low, high = bayes_optimal_auc(tiny)
    assert metric(at, "Bayes-optimal AUC") == f"{auc:.3f}"
    assert any(c.value == f"95% CI {low:.3f} - {high:.3f} (stratified bootstrap, 500 resamples)" for c in at.caption)
    assert metric(at, "Responders") == f"{100 * tiny.outcomes['responder'].mean():.1f}%"
    prep2 = prep2_evaluation(tiny)
    assert prep2["n_evaluated"] > 0
    assert metric(at, "PREP2 correct") == f"{100 * prep2['accuracy']:.1f}%"
    assert metric(at, "Stroke patients evaluated") == str(prep2["n_evaluated"])
    planted = figure(at, "fig-planted")
    shown = sorted(f for t in planted["data"] for f in t["y"])
    assert shown == sorted(tiny.ground_truth.feature_effects["feature"])
    # The outcome model is written from the generator's own constants and this cohort's config.
    assert "Outcome model: " + outcome_formula(CohortConfig.from_dict(tiny.provenance["config"])) in [c.value for c in at.caption]


def test_split_by_and_variable_redraw_the_distribution(app, tiny):
    at = app
    groups = {"responder": tiny.outcomes["responder"].map({True: "responder", False: "non-responder"})}
    groups |= {by: tiny.patients[by] for by in ("indication", "site")}
    for by in ("indication", "site", "responder"):
        at.radio(key="dist-by").set_value(by).run()
        assert not at.exception, [e.message for e in at.exception]
        counts = groups[by].value_counts().sort_index()
        assert trace_names(figure(at, "fig-distribution")) == [f"{g} (n={n})" for g, n in counts.items()]

    # A feature with missing values: each group counts only the patients that have it.
    feature = "dti.cst_fa_affected"
    assert tiny.features[feature].isna().any()
    at.selectbox(key="dist-column").set_value(feature).run()
    assert not at.exception
    fig = figure(at, "fig-distribution")
    present = groups["responder"][tiny.features[feature].notna()].value_counts().sort_index()
    assert trace_names(fig) == [f"{g} (n={n})" for g, n in present.items()]
    assert fig["layout"]["yaxis"]["title"]["text"] == FEATURE_DESCRIPTIONS.get(feature, feature)


def test_patient_tab_shows_a_stroke_patient_with_lesion_and_recordings(app, tiny):
    at = app
    at.selectbox(key="drill-indication").set_value("stroke").run()
    assert not at.exception
    stroke = tiny.patients.index[tiny.patients["indication"] == "stroke"]
    patient = at.selectbox(key="drill-patient")
    assert list(patient.options) == list(stroke)

    complete = tiny.modality_availability().loc[stroke].all(axis=1)
    pid = complete[complete].index[-1]  # not the default choice, so the panel has to follow the selection
    patient.set_value(pid).run()
    assert not at.exception, [e.message for e in at.exception]
    outcome = tiny.outcomes.loc[pid]
    assert metric(at, "Indication") == "Stroke"
    assert metric(at, "Improvement") == f"{outcome['improvement_pct']:.0f}%"
    assert metric(at, "True response probability") == f"{outcome['true_response_probability']:.2f}"

    # Brain viewer: crosshair sliders in mm, opened on the lesion, which the figure draws.
    assert [s.key for s in at.slider if s.key and s.key.startswith("fa-")] == [f"fa-{pid}_{a}_mm" for a in "xyz"]
    assert tiny.raw_data(pid).lesion_mask.any()
    assert metric(at, "In lesion") == "yes"
    brain = figure(at, f"fa-{pid}_chart")
    assert brain["layout"]["title"]["text"].startswith("FA over MNI152")
    assert trace_names(brain).count("lesion") >= 3  # one lesion layer per panel (+ legend entry)

    patient_tab = by_label(at.tabs, "Patient")
    keys = [c.key for c in patient_tab.get("plotly_chart")]
    assert keys == [f"fa-{pid}_chart", "fig-mep", "fig-voluntary", "fig-trajectory", "fig-speed"]
    assert trace_names(figure(at, "fig-voluntary")) == ["FDI", "ECR"]
    features = patient_tab.dataframe[0].value
    assert list(features.index) == list(tiny.features.columns)
    expected = {k: float(f"{v:.4g}") for k, v in tiny.features.loc[pid].dropna().items()}  # shown to 4 digits
    assert features["value"].dropna().to_dict() == expected
    yes_no = [f for f in tiny.features.columns if tiny.features[f].nunique() == 2]
    graded = [f for f in tiny.features.columns if tiny.features[f].nunique() > 2 and pd.notna(tiny.features.at[pid, f])]
    assert yes_no and graded
    assert (features.loc[yes_no, "cohort percentile"] == "n/a (yes/no)").all()  # words, not Streamlit's "None"
    shown = features.loc[graded, "cohort percentile"].astype(int)
    np.testing.assert_array_equal(shown, (tiny.features[graded].rank(pct=True).loc[pid] * 100).round(0).astype(int))

    incomplete = complete[~complete].index[0]  # a stroke patient missing a modality: its features are NaN
    at.selectbox(key="drill-patient").set_value(incomplete).run()
    gaps = tiny.features.columns[tiny.features.loc[incomplete].isna()]
    assert len(gaps) and (by_label(at.tabs, "Patient").dataframe[0].value.loc[gaps, "cohort percentile"] == "missing").all()


# --- the generator form ---------------------------------------------------------------------------


def test_export_tab_offers_the_first_patients_raw_data_as_the_clis_upload_folder(app, tiny, app_workspace, tmp_path, monkeypatch):
    import shlex

    from core.io.export import upload_folder_zip
    from tests.test_cli import run_cli

    at = app
    assert by_label(at.number_input, "Patients (the first N)").value == 10
    (button,) = [b for b in at.get("download_button") if b.proto.id.endswith("export-raw")]
    assert button.proto.label == "Upload folder of 10 patients (zip)"
    (command,) = [c.value.split("`")[1] for c in at.caption if "export-upload" in c.value]
    # The command the page gives writes what the button's callable does: the first 10 patients' folder.
    monkeypatch.chdir(tmp_path)
    status, _, err = run_cli(*shlex.split(command)[3:], "--workspace", app_workspace)
    assert status == 0, err
    assert (tmp_path / "tiny-10-patients.zip").read_bytes() == upload_folder_zip(tiny, list(tiny.patients.index[:10]))


def test_generating_through_the_form_saves_and_selects_the_cohort(app, app_workspace):
    at = submit_form(app, **{"Cohort name": "from-form", "Patients": 60})
    assert not at.exception, [e.message for e in at.exception]
    assert not at.error
    assert [t.value for t in at.toast] == ["Saved 60 patients as 'from-form'"]
    assert sorted(Workspace(app_workspace).names()) == ["from-form", "tiny"]
    saved = Workspace(app_workspace).load("from-form")
    assert saved.n_patients == 60
    assert page_caption(at).startswith("**from-form** · 60 patients")
    assert at.dataframe[0].value["patients"].sum() == 60

    # On the next run the sidebar lists the new cohort, selected; the choice survives a restart.
    at.run()
    selector = cohort_selector(at)
    assert sorted(selector.options) == ["from-form", "tiny"] and selector.value == "from-form"
    assert Workspace(app_workspace).get_setting("last_cohort") == "from-form"
    # And the sidebar switches back.
    selector.set_value("tiny").run()
    assert page_caption(at).startswith("**tiny** · 60 patients")


def test_sidebar_shows_a_new_cohort_in_the_run_that_saves_it(app):
    at = submit_form(app, **{"Cohort name": "from-form", "Patients": 20})
    assert page_caption(at).startswith("**from-form**")
    assert cohort_selector(at).value == "from-form"


def test_indications_all_zero_show_an_error_and_keep_the_cohort(app, app_workspace):
    at = submit_form(
        app,
        **{"Stroke: rTMS-assisted upper-limb rehabilitation": 0.0, "Parkinson's disease: subthalamic DBS": 0.0},
    )
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1 and "indications need non-negative fractions with a positive sum" in at.error[0].value
    assert not at.status  # nothing was generated
    assert Workspace(app_workspace).names() == ["tiny"]
    assert page_caption(at).startswith("**tiny** · 60 patients")
    assert cohort_selector(at).value == "tiny"


def test_unsafe_cohort_name_shows_an_error_and_writes_nothing(app, app_workspace):
    at = submit_form(app, **{"Cohort name": "../x", "Patients": 10})
    assert not at.exception, [e.message for e in at.exception]
    assert len(at.error) == 1 and "cohort name '../x' is not allowed" in at.error[0].value
    assert Workspace(app_workspace).names() == ["tiny"]
    assert not (app_workspace / "x").exists() and not (app_workspace.parent / "x").exists()
    assert sorted(p.name.split("@")[0] for p in (app_workspace / "cohorts").iterdir()) == ["tiny"]  # cohorts/<name>@<version>
    assert page_caption(at).startswith("**tiny** · 60 patients")


def form_values(at) -> dict:
    """What the generator form shows now, by config field."""
    text = {w.label: w.value for w in (*at.text_input, *at.number_input, *at.slider)}
    values = {"name": text["Cohort name"], "n_patients": text["Patients"], "seed": text["Seed"], "n_sites": text["Sites"]}
    values |= {f"indication {k}": text[label] for k, label in INDICATIONS.items()}
    values |= {"site_effect": text["Site effect"], "measurement_noise": text["Measurement noise"]}
    values |= {"outcome_noise_pct": text["Outcome noise (% points SD)"], "responder_threshold_pct": text["Responder threshold (% improvement)"]}
    preset = at.selectbox(key="generate-preset").value
    values |= {f"strength {m}": at.slider(key=f"generate-{preset}-s-{m}").value for m in MODALITIES}
    values |= {f"missing {m}": at.slider(key=f"generate-{preset}-m-{m}").value for m in MODALITIES}
    return values


def config_values(config) -> dict:
    values = {"name": config.name, "n_patients": config.n_patients, "seed": config.seed, "n_sites": config.n_sites}
    values |= {f"indication {k}": float(config.indications.get(k, 0.0)) for k in INDICATIONS}
    values |= {"site_effect": config.site_effect, "measurement_noise": config.measurement_noise}
    values |= {"outcome_noise_pct": config.outcome_noise_pct, "responder_threshold_pct": config.responder_threshold_pct}
    values |= {f"strength {m}": config.strength(m) for m in MODALITIES}
    values |= {f"missing {m}": float(config.missing_rate.get(m, 0.0)) for m in MODALITIES}
    return values


def test_the_form_starts_from_the_default_preset(app):
    assert app.selectbox(key="generate-preset").value == "default"
    assert form_values(app) == config_values(presets()["default"])


def test_choosing_a_preset_loads_all_its_values(app):
    at = app
    for name in ("null_dti", "stroke_rtms", "parkinsons_dbs", "default"):
        at.selectbox(key="generate-preset").set_value(name).run()
        assert not at.exception
        assert form_values(at) == config_values(presets()[name]), name


# --- an empty workspace ---------------------------------------------------------------------------


def test_empty_workspace_invites_to_generate_a_cohort(tmp_path, monkeypatch):
    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(tmp_path / "empty"))
    at = AppTest.from_file(str(APP), default_timeout=120).run()
    assert not at.exception, [e.message for e in at.exception]
    assert [i.value for i in at.info] == ["The workspace holds no cohort yet: generate one above."]
    assert not at.sidebar.selectbox  # nothing to choose
    generator = at.expander[0]
    assert generator.label == "Generate a synthetic cohort" and generator.proto.expanded
    assert not at.tabs and not at.dataframe
