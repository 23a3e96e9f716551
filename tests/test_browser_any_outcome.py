"""The Any outcome page in a real browser: run the held-out evaluation from its button, then
describe a measure the model never saw and get its zero-shot predictions and nearest seen measures.

The workspace holds one 200-patient cohort "mid"; nothing is precomputed. Screenshots in
tests/artifacts/: any-outcome-evaluation.png and any-outcome-described.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, settle, streamlit_server

RUN_TIMEOUT_MS = 400_000  # 5 folds x 17 held-out families on 200 patients: about a minute on two idle cores

pytestmark = BROWSER_ONLY


@pytest.fixture(scope="module")
def outcome_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-any-outcome")
    workspace = folder / "workspace"
    Workspace(workspace).save(generate_cohort(CohortConfig(name="mid", n_patients=200, seed=5), n_jobs=1))
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url


def test_evaluate_then_predict_a_described_measure(page, outcome_url, artifacts):
    page.set_default_timeout(TIMEOUT_MS)
    page.set_viewport_size({"width": 1400, "height": 2200})
    page.goto(outcome_url)
    page.wait_for_selector(IDLE)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Any outcome").click()
    page.get_by_role("heading", name="Any outcome").wait_for()
    page.wait_for_selector(IDLE)
    assert_page_readable(page)

    page.get_by_role("tab", name="Held-out evaluation").click()
    page.get_by_role("button", name="Run the held-out evaluation").click()
    methods = page.locator(".st-key-fig-any-methods .js-plotly-plot")
    methods.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    assert_page_readable(page)
    expect(page.get_by_text("held-out instrument families, zero-shot signed r averages")).to_be_visible()
    expect(page.locator(".st-key-fig-any-few-shot .js-plotly-plot")).to_be_visible()
    page.screenshot(path=str(artifacts / "any-outcome-evaluation.png"))

    page.get_by_role("tab", name="Predict a measure").click()
    page.get_by_text("Describe a new measure").click()
    settle(page)
    box = page.locator("textarea[aria-label='Describe the measure as you would to a colleague']")
    box.fill("Wolf Motor Function Test: seconds to complete 15 timed arm and hand tasks with the affected arm")
    box.press("Control+Enter")
    settle(page)
    page.locator("[data-testid=stSelectbox]").filter(has_text="Direction").click()  # more seconds is worse
    page.get_by_role("option", name="higher is worse").click()
    settle(page)
    page.locator(".st-key-fig-any-zero-shot .js-plotly-plot").wait_for()
    settle(page)
    assert_page_readable(page)
    expect(page.get_by_text("Nearest seen measures")).to_be_visible()
    expect(page.get_by_text("In the held-out evaluation, the")).to_be_visible()
    page.screenshot(path=str(artifacts / "any-outcome-described.png"))
    assert_page_readable(page, every_tab=True)
