"""The app in a real browser: `streamlit run` in a subprocess, driven by headless Chromium.

Playwright cannot download its own browser here, so Debian's /usr/bin/chromium is launched through
``executable_path``. Without it the module is skipped, except in CI (env var CI set), where it is an
error. Screenshots go to tests/artifacts/ (git-ignored) for a person to look at.
"""

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"
RUNNING = "[data-testid=stApp][data-test-script-state=running]"
TIMEOUT_MS = 120_000
expect.set_options(timeout=30_000)

# Every browser test module sets ``pytestmark = BROWSER_ONLY``: skipped without Chromium, except in CI.
BROWSER_ONLY = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.exists() and not os.environ.get("CI"),
        reason=f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
    ),
]
pytestmark = BROWSER_ONLY


# --- browser: pytest-playwright, pointed at Debian's chromium -------------------------------------


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM.exists():  # only reached in CI: elsewhere the module is skipped
        pytest.fail(f"CI is set but {CHROMIUM} is missing: CI must install Debian's chromium for the browser tests.")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # Streamlit scrolls inside its own container, so a full-page screenshot shows no more than the
    # viewport: make the viewport tall instead.
    return {**browser_context_args, "viewport": {"width": 1400, "height": 3200}}


# --- server: `streamlit run app.py` on a free port ------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(workspace: Path, log: Path):
    """Yield the base URL of `streamlit run app.py` on ``workspace``; kill it and its children after."""
    port = _free_port()
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port),
        "--server.address", "127.0.0.1",
        "--server.headless", "true",
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--client.toolbarMode", "minimal",
    ]  # fmt: skip
    env = {**os.environ, "NEUROPREDICT_WORKSPACE": str(workspace)}
    with open(log, "wb") as out:
        # A session of its own, so that teardown can end the server and every worker it started.
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with code {server.returncode} before answering:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on port {port} within 60 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield url
    finally:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.pid, sig)
            try:
                server.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue


@pytest.fixture(scope="module")
def app_url(app_workspace_template, tmp_path_factory):
    """The app served on a copy of the one-cohort workspace ("tiny"), so the page is not empty."""
    folder = tmp_path_factory.mktemp("browser")
    workspace = shutil.copytree(app_workspace_template, folder / "workspace")
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="module")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


# --- helpers --------------------------------------------------------------------------------------


def settle(page, started_within_ms=3_000):
    """Wait for the rerun an interaction triggers (if it starts in time) to finish."""
    with contextlib.suppress(Exception):
        page.wait_for_selector(RUNNING, timeout=started_within_ms)
    page.wait_for_selector(IDLE, timeout=TIMEOUT_MS)


def choose(page, label, option):
    """Pick ``option`` in the selectbox labelled ``label`` (a combobox in Streamlit >= 1.50)."""
    page.locator(f'input[aria-label="{label}"]').click()
    page.get_by_role("option", name=option, exact=True).click()
    settle(page)


def assert_no_exception(page):
    shown = page.locator("[data-testid=stException]")
    assert shown.count() == 0, shown.all_inner_texts()


# --- tests ----------------------------------------------------------------------------------------


def test_generate_a_cohort_and_open_a_stroke_patient(page, app_url, artifacts):
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(app_url)
    page.wait_for_selector(IDLE)
    cohort = page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')
    expect(cohort).to_have_value("tiny")
    page.locator(".js-plotly-plot").filter(visible=True).first.wait_for()  # the distribution figure
    page.wait_for_timeout(500)  # let plotly finish drawing
    assert_no_exception(page)
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
    assert_no_exception(page)
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
    assert_no_exception(page)

    page.locator("[data-testid=stTabs] [role=tablist]").evaluate("e => e.scrollIntoView({block: 'start'})")
    page.wait_for_timeout(1_000)  # plotly relayout after the scroll
    page.screenshot(path=str(artifacts / "patient.png"))


@pytest.mark.parametrize("path, heading", [("cohort", "Cohort explorer"), ("prediction", "Treatment-response prediction")])
def test_a_deep_link_on_a_fresh_server_opens_that_page_with_the_sidebar(page, app_workspace_template, tmp_path, path, heading):
    workspace = shutil.copytree(app_workspace_template, tmp_path / "workspace")
    with streamlit_server(workspace, tmp_path / "streamlit.log") as url:
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(f"{url}/{path}")
        page.wait_for_selector(IDLE)
        page.get_by_role("heading", name=heading).wait_for()
        # The redirect through app.py takes more than one script run: wait for the sidebar to settle.
        expect(page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')).to_have_count(1)
        expect(page.locator('[data-testid=stSidebar] input[aria-label="Cohort"]')).to_have_value("tiny")
        page.wait_for_selector(IDLE)
        assert_no_exception(page)
        expect(page.get_by_role("heading", name=heading)).to_be_visible()
