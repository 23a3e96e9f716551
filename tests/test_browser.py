"""The app in a real browser: `streamlit run` in a subprocess, driven by headless Chromium
(see tests/browser_support.py)."""

import re
import shutil

import pytest
from playwright.sync_api import expect

from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, choose, streamlit_server

pytestmark = BROWSER_ONLY


@pytest.fixture(scope="module")
def app_url(app_workspace_template, tmp_path_factory):
    """The app served on a copy of the one-cohort workspace ("tiny"), so the page is not empty."""
    folder = tmp_path_factory.mktemp("browser")
    workspace = shutil.copytree(app_workspace_template, folder / "workspace")
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url


# --- tests ----------------------------------------------------------------------------------------


def test_generate_a_cohort_and_open_a_stroke_patient(page, app_url, artifacts):
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.wait_for_selector(IDLE)
    cohort = page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')
    expect(cohort).to_have_value("tiny")
    page.locator(".js-plotly-plot").filter(visible=True).first.wait_for()  # the distribution figure
    page.wait_for_timeout(500)  # let plotly finish drawing
    assert_page_readable(page)
    page.screenshot(path=str(artifacts / "cohort.png"))

    # Generate a small cohort through the form.
    generator = page.locator("[data-testid=stExpander] summary").filter(has_text="Generate a synthetic cohort")
    generator.click()
    page.locator('input[aria-label="Cohort name"]').fill("from-browser")
    patients = page.locator('input[aria-label="Patients"]')
    patients.fill("40")
    patients.press("Tab")  # commit the number
    page.locator("[data-testid=stFormSubmitButton] button").filter(has_text="Generate and save").click()
    page.get_by_text("Saved 40 patients as 'from-browser'").wait_for()
    page.wait_for_selector(IDLE)
    assert_page_readable(page)
    caption = page.locator("[data-testid=stMain] [data-testid=stCaptionContainer]").filter(has_text="patients ·")
    expect(caption).to_have_text(re.compile(r"^from-browser · 40 patients · "))
    generator.click()  # fold the generator away, so the patient panel moves up

    # A stroke patient: FA map with a lesion, MEPs, voluntary EMG and reaching.
    page.get_by_role("tab", name="Patient").click()
    choose(page, "Indication", "stroke")
    expect(page.locator('input[aria-label="Indication"]')).to_have_value("stroke")
    indication = page.locator("[data-testid=stMetric]").filter(has=page.get_by_text("Indication", exact=True))
    expect(indication.locator("[data-testid=stMetricValue]")).to_have_text("Stroke")
    panel = page.locator("[data-testid=stTabs] [role=tabpanel]").filter(visible=True)

    brain = panel.locator(".js-plotly-plot").filter(has_text="FA over MNI152")
    brain.wait_for()
    brain.locator(".hm image").first.wait_for(state="attached")  # heatmaps drawn
    assert brain.locator(".hm image").count() >= 6  # background and FA in each of 3 panels (+ lesion)
    assert brain.get_by_text("Axial z =").count() == 1
    mep = panel.locator(".js-plotly-plot").filter(has_text="Time from TMS pulse")
    mep.wait_for()
    assert mep.locator(".scatterlayer .trace path.js-line").count() > 0
    assert mep.get_by_text("MEP present").count() + mep.get_by_text("no MEP").count() >= 1
    figures = panel.locator(".js-plotly-plot").filter(visible=True)
    assert figures.count() >= 3, f"{figures.count()} plotly figures on the patient tab"

    # The new cohort is the one in use, in the sidebar too.
    expect(cohort).to_have_value("from-browser")
    assert_page_readable(page)

    page.locator("[data-testid=stTabs] [role=tablist]").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1_000)  # plotly relayout after the scroll
    page.screenshot(path=str(artifacts / "patient.png"))
    assert_page_readable(page, every_tab=True)


@pytest.mark.parametrize("path, heading", [("cohort", "Cohort explorer"), ("prediction", "Treatment-response prediction")])
def test_a_deep_link_on_a_fresh_server_opens_that_page_and_cohort_with_the_sidebar(page, app_workspace_template, tmp_path, path, heading):
    from dataclasses import replace

    from core.store.workspace import Workspace

    workspace = shutil.copytree(app_workspace_template, tmp_path / "workspace")
    Workspace(workspace).save(replace(Workspace(workspace).load("tiny"), name="second"))  # not the cohort opened last
    with streamlit_server(workspace, tmp_path / "streamlit.log") as url:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/{path}?cohort=second")
        page.wait_for_selector(IDLE)
        page.get_by_role("heading", name=heading).wait_for()
        # The redirect through app.py takes more than one script run: wait for the sidebar to settle.
        expect(page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')).to_have_count(1)
        expect(page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')).to_have_value("second")
        page.wait_for_selector(IDLE)
        assert_page_readable(page)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
