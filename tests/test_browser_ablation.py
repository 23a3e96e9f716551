"""The Ablation page in a real browser: run an ablation with the page's defaults and see its results;
cancel a run and resume it.

The server, the Chromium launch settings and the helpers come from tests/test_browser.py. The
workspace holds one 200-patient cohort "tiny"; nothing is precomputed, so the page really runs
(2 x 5 folds per subset and 20 permutations: its defaults). Screenshots in tests/artifacts/:
ablation.png (the viewport), ablation-full.png (the whole page, for the README) and
ablation-cancelled.png (the page after Cancel).

The run is a background job (core.jobs): the page polls its progress once a second and reruns
itself when the job ends; Cancel stops the job after the fits under way, which it saves as a partial
run. Only a real server shows the polling and the rerun it triggers.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, settle, streamlit_server

COHORT = CohortConfig(name="tiny", n_patients=200, seed=3)
RUN_TIMEOUT_MS = 300_000  # the run itself: about 15-30 s on two idle cores

pytestmark = BROWSER_ONLY


@pytest.fixture(scope="module")
def ablation_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-ablation")
    workspace = folder / "workspace"
    Workspace(workspace).save(generate_cohort(COHORT, n_jobs=1))
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url


def open_ablation(page, url: str) -> None:
    """Through the app and its navigation (a deep link on a fresh server goes through app.py first)."""
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Ablation").click()
    page.get_by_role("heading", name="Modality ablation").wait_for()
    page.wait_for_selector(IDLE)


def test_run_an_ablation_and_see_the_shapley_waterfall(page, ablation_url, artifacts):
    open_ablation(page, ablation_url)
    assert_page_readable(page)
    page.get_by_text("No saved run for responder").wait_for()

    page.get_by_role("button", name=re.compile(r"^Run ablation \(250 fits\)")).click()
    page.get_by_text("Running the ablation").first.wait_for()
    waterfall = page.locator(".st-key-fig-abl-shapley .js-plotly-plot")
    waterfall.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    assert_page_readable(page)
    expect(page.get_by_text("(run and saved)")).to_have_count(1)
    expect(waterfall.get_by_text("full model", exact=True)).to_have_count(1)
    for key in ("abl-forest", "abl-planted", "abl-lattice", "abl-permutation", "abl-pareto"):
        page.locator(f".st-key-fig-{key} .js-plotly-plot").wait_for()
    assert page.locator("[data-testid=stMain] [data-testid=stAlertContentError]").count() == 0

    page.get_by_role("heading", name="How much each modality contributes").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.mouse.move(5, 5)  # no tooltip over the screenshot
    page.wait_for_timeout(1_000)  # plotly relayout after the scroll
    page.screenshot(path=str(artifacts / "ablation.png"))

    # The whole page: Streamlit scrolls inside its main container, so make the viewport as tall as it.
    height = page.locator("[data-testid=stMain]").evaluate("e => e.scrollHeight")
    page.set_viewport_size({"width": 1400, "height": min(int(height) + 40, 8000)})
    page.locator("[data-testid=stMain]").evaluate("e => e.scrollTo(0, 0)")
    page.wait_for_timeout(1_500)
    page.screenshot(path=str(artifacts / "ablation-full.png"))
    assert_page_readable(page, every_tab=True)


def test_cancel_keeps_the_finished_fits_and_resume_completes_the_run(page, ablation_url, artifacts):
    open_ablation(page, ablation_url)
    box = page.locator('input[aria-label="Repeats"]')  # 15 subsets x 5 folds + 20 permutations x 5 folds
    box.fill("1")
    box.press("Tab")
    settle(page)
    page.get_by_role("button", name=re.compile(r"^Run ablation \(175 fits\)")).click()
    page.get_by_text(re.compile(r"^\d+ of 175 model fits$")).wait_for()  # the progress bar moves
    page.get_by_role("button", name="Cancel").click()

    resume = page.get_by_role("button", name=re.compile(r"^Resume \(\d+ of 175 fits done\)"))
    finished = page.locator(".st-key-fig-abl-shapley .js-plotly-plot")
    resume.or_(finished).first.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    page.screenshot(path=str(artifacts / "ablation-cancelled.png"))
    assert resume.count() == 1, "the run finished instead of stopping at Cancel"
    assert_page_readable(page)
    expect(page.get_by_text("A partial run with these settings is saved")).to_have_count(1)
    done = int(re.search(r"\((\d+) of 175", resume.inner_text()).group(1))
    assert 0 < done < 175

    resume.click()
    finished.wait_for(timeout=RUN_TIMEOUT_MS)
    settle(page)
    assert_page_readable(page)
    expect(page.get_by_text("(run and saved)")).to_have_count(1)
