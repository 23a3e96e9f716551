"""The Prediction page's what-if panel in a real browser: edit a value, see the edited prediction move.

The server, the Chromium launch settings and the helpers come from tests/test_browser.py. The
workspace holds a 200-patient cohort "tiny" and a responder run trained exactly as the page trains
it with its defaults (5 x 5 CV, default xgboost settings), so the page loads the saved run instead
of training. The plain functions here (``prediction_workspace``, ``pick_edit``, ``open_whatif``,
``edit_value``) are shared with the browser benchmark, tests/bench_browser.py.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from core.modelling.validation import CohortSplitter, cross_validate, run_digest
from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, choose, settle, streamlit_server

COHORT = CohortConfig(name="tiny", n_patients=200, seed=3)
OUTCOME = "responder"
FEATURE = "clin.levodopa_response_pct"  # Parkinson's patients only; a strong planted effect
WHATIF_TAB = "What-if"
MAX_WATERFALL_FEATURES = 10  # views.waterfall_figure's default: features shown before "N other features"

pytestmark = BROWSER_ONLY


# --- workspace: a cohort and the run the page would train on it ---------------------------------


def page_run(cohort) -> str:
    """The run digest pages/prediction.py gives the default responder run (5 x 5 CV, default xgboost)."""
    return run_digest(cohort, OUTCOME, CohortSplitter(n_splits=5, n_repeats=5), {}, list(cohort.features.columns))


def prediction_workspace(path: Path) -> Path:
    """Save the cohort "tiny" in a workspace at ``path`` and train and save the page's default run."""
    ws = Workspace(path)
    ws.save(generate_cohort(COHORT, n_jobs=1))
    cohort = ws.load(COHORT.name)  # as the page sees it
    ws.save_cv(cohort, page_run(cohort), cross_validate(cohort, OUTCOME, splitter=CohortSplitter(n_splits=5, n_repeats=5)))
    return Path(path)


def pick_edit(workspace: Path, n_values: int, feature: str = FEATURE) -> tuple[str, list[float]]:
    """A patient and ``n_values`` values of ``feature`` that each move the edited prediction visibly.

    Every value lies inside the training range (no out-of-range warning), is round to one decimal,
    keeps ``feature`` among the waterfall's labelled bars, and gives a shown prediction (3 decimals)
    other than the baseline's and the previous value's. Chosen with the saved run, so the test
    knows beforehand that an edit must change the page.
    """
    from core.modelling.whatif import WhatIf

    ws = Workspace(workspace)
    cohort = ws.load(COHORT.name)
    wi = WhatIf(ws.load_cv(page_run(cohort), cohort), cohort.features)
    low, high = float(wi.low[feature]), float(wi.high[feature])
    grid = [round(float(v), 1) for v in np.linspace(low, high, 4 * n_values + 2)[1:-1]]
    candidates = [v for pair in zip(grid, reversed(grid)) for v in pair][: len(grid)]  # alternate ends of the range
    for patient in wi.features.index[wi.features[feature].notna()]:
        own = float(wi.features.at[patient, feature])
        shown = f"{wi.scenario(patient).prediction:.3f}"
        values, previous = [], shown
        for value in candidates:
            if abs(value - own) < 1e-9:
                continue
            scenario = wi.scenario(patient, {feature: value})
            text = f"{scenario.prediction:.3f}"
            top = scenario.explanation.to_series().abs().sort_values(ascending=False, kind="stable").index[:MAX_WATERFALL_FEATURES]
            if text not in (shown, previous) and feature in top:
                values.append(value)
                previous = text
            if len(values) == n_values:
                return patient, values
    raise AssertionError(f"no patient of {COHORT.name!r} whose prediction moves with {feature} {n_values} times")


# --- page helpers -----------------------------------------------------------------------------


def visible_panel(page):
    """The outer tab panel on show (the what-if panel, once its tab is chosen)."""
    return page.locator("[data-testid=stMain] [data-testid=stTabs] [role=tabpanel]").filter(visible=True).first


def metric_value(page, label):
    metric = page.locator("[data-testid=stMetric]").filter(visible=True).filter(has=page.get_by_text(label, exact=True))
    return metric.locator("[data-testid=stMetricValue]")


def open_whatif(page, url: str, patient: str, feature: str = FEATURE) -> None:
    """Open the Prediction page on the saved run, its what-if tab, ``patient``, and ``feature``'s modality."""
    from core.data.schema import MODALITY_LABELS, modality_of

    page.set_default_timeout(TIMEOUT_MS)
    # Through the app and its navigation: a deep link to /prediction on a fresh server runs
    # pages/prediction.py without app.py, and the page sends the browser to the app (Cohort) instead.
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Prediction").click()
    page.get_by_role("heading", name="Treatment-response prediction").wait_for()
    page.wait_for_selector(IDLE)
    page.get_by_text("(loaded saved run)").wait_for()  # the fixture's run, not "press Train"
    page.get_by_role("tab", name=WHATIF_TAB, exact=True).click()
    panel = visible_panel(page)
    chooser = panel.locator('input[aria-label^="Patient ("]')
    chooser.click()
    chooser.fill(patient)  # the combobox filters its (virtualised) list as one types
    page.get_by_role("option", name=re.compile(rf"^{re.escape(patient)} ")).click()
    settle(page)
    panel.locator("[data-testid=stButtonGroup]").get_by_role("radio", name=MODALITY_LABELS[modality_of(feature)], exact=True).click()  # the editor's modality
    feature_input(page, feature).wait_for()


def feature_input(page, feature: str = FEATURE):
    return visible_panel(page).locator(f'input[aria-label="{feature.split(".", 1)[1]}"]').filter(visible=True)


def waterfall_label(feature: str, value: float) -> str:
    """The bar label views.waterfall_figure gives ``feature`` at ``value``."""
    return f"{feature} = {value:.4g}"


# --- the test -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prediction_template(tmp_path_factory):
    return prediction_workspace(tmp_path_factory.mktemp("browser-prediction-template") / "workspace")


@pytest.fixture(scope="module")
def edit(prediction_template):
    patient, values = pick_edit(prediction_template, 1)
    return patient, values[0]


@pytest.fixture(scope="module")
def prediction_url(prediction_template, tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-prediction")
    workspace = shutil.copytree(prediction_template, folder / "workspace")
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url


def test_whatif_edit_moves_the_edited_prediction(page, prediction_url, edit, artifacts):
    patient, value = edit
    open_whatif(page, prediction_url, patient)
    assert_page_readable(page)
    baseline, edited = metric_value(page, "Baseline prediction"), metric_value(page, "Edited prediction")
    before = baseline.inner_text()
    assert re.fullmatch(r"0\.\d{3}|1\.000", before), before
    assert edited.inner_text() == before  # nothing edited yet

    box = feature_input(page)
    box.fill(f"{value:g}")
    box.press("Enter")  # commit: the what-if fragment reruns alone
    settle(page)
    panel = visible_panel(page)
    panel.get_by_text(f"Changed: {FEATURE}:").wait_for()
    after = edited.inner_text()
    assert after != before, f"edited prediction still {after} after {FEATURE} = {value:g}"
    assert baseline.inner_text() == before
    waterfall = panel.locator(".st-key-fig-wi-waterfall-edited .js-plotly-plot")
    waterfall.get_by_text(waterfall_label(FEATURE, value)).first.wait_for()  # the edited figure shows the new value
    assert_page_readable(page)

    panel.locator('input[aria-label^="Patient ("]').evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1_000)  # plotly relayout after the scroll
    page.screenshot(path=str(artifacts / "whatif.png"))
    assert_page_readable(page, every_tab=True)


# --- the comparison of models -----------------------------------------------------------------------

COMPARE_SETTINGS = {"n_splits": 3, "n_repeats": 1, "max_epochs": 2}


@pytest.fixture(scope="module")
def compare_url(tmp_path_factory):
    """A 240-patient raw-signal cohort with xgboost, fusion and stacked runs on the same 1 x 3 folds."""
    from dataclasses import replace

    from core.modelling.validation import CVSettings
    from core.synth.config import presets

    folder = tmp_path_factory.mktemp("browser-compare")
    ws = Workspace(folder / "workspace")
    ws.save(generate_cohort(replace(presets()["raw_signal"], n_patients=240, name="raw240"), n_jobs=1))
    cohort = ws.load("raw240")
    for model in ("xgboost", "fusion", "stacked"):
        ws.train_cv(cohort, CVSettings(model=model, **COMPARE_SETTINGS))
    with streamlit_server(folder / "workspace", folder / "streamlit.log") as url:
        yield url


def test_compare_view_shows_the_models_side_by_side_with_the_lesson(page, compare_url, artifacts):
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.goto(compare_url)
    page.wait_for_selector(IDLE)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Prediction").click()
    page.get_by_role("heading", name="Treatment-response prediction").wait_for()
    page.wait_for_selector(IDLE)
    choose(page, "Model", "Deep fusion (raw data)")
    folds = page.locator('input[aria-label="Folds"]')
    folds.fill(str(COMPARE_SETTINGS["n_splits"]))
    folds.press("Enter")
    settle(page)
    page.get_by_text("Model settings (Deep fusion (raw data))").click()
    epochs = page.locator('input[aria-label="Most epochs"]')
    epochs.fill(str(COMPARE_SETTINGS["max_epochs"]))
    epochs.press("Enter")
    settle(page)
    page.get_by_text("(loaded saved run)").wait_for()
    page.get_by_role("tab", name="Compare models", exact=True).click()
    settle(page)
    panel = visible_panel(page)
    panel.get_by_text("where the lesion sits front to back").wait_for()  # the one-sentence lesson of the raw-signal preset
    panel.get_by_text(re.compile(r"AUC is \d\.\d{3} higher than")).first.wait_for()
    for key in ("metrics", "paired", "calibration", "decision", "patterns"):
        panel.locator(f".st-key-fig-pred-compare-{key} .js-plotly-plot").wait_for()
    assert_page_readable(page)
    page.set_viewport_size({"width": 1400, "height": 4200})  # the whole view: the app scrolls inside its main block, not the page
    page.wait_for_timeout(2_000)  # plotly relayout at the new size
    page.screenshot(path=str(artifacts / "compare-models.png"))
    assert_page_readable(page, every_tab=True)
