"""Background training in a real browser: Train on the Prediction page starts a job whose progress
the page polls; a second browser opening the page reattaches to the same job; when it finishes,
both pages show the run without a reload.

The job's process is paused (SIGSTOP) while the second browser opens the page, so the job is still
running then however fast the machine. Screenshot: tests/artifacts/prediction-job.png.
"""

from __future__ import annotations

import os
import re
import signal

import pytest

from core.jobs import JobRunner
from core.store.workspace import Workspace
from core.synth.config import CohortConfig
from core.synth.generator import generate_cohort
from tests.browser_support import BROWSER_ONLY, IDLE, TIMEOUT_MS, assert_page_readable, settle, streamlit_server

COHORT = CohortConfig(name="tiny", n_patients=200, seed=3)
RUN_TIMEOUT_MS = 300_000

pytestmark = BROWSER_ONLY


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("browser-jobs")
    workspace = folder / "workspace"
    Workspace(workspace).save(generate_cohort(COHORT, n_jobs=1))
    with streamlit_server(workspace, folder / "streamlit.log") as url:
        yield url, workspace


def open_prediction(page, url: str, repeats: int) -> None:
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(url)
    page.wait_for_selector(IDLE)
    page.locator("[data-testid=stSidebarNav] a").filter(has_text="Prediction").click()
    page.get_by_role("heading", name="Treatment-response prediction").wait_for()
    page.wait_for_selector(IDLE)
    box = page.locator('input[aria-label="Repeats"]')
    box.fill(str(repeats))
    box.press("Tab")
    settle(page)


def test_training_is_a_job_a_second_browser_reattaches_to_and_both_show_its_run(page, browser, browser_context_args, server, artifacts):
    url, workspace = server
    open_prediction(page, url, repeats=3)
    page.get_by_text(re.compile(r"^No saved run of xgboost")).first.wait_for()
    page.get_by_role("button", name=re.compile(r"^Train \(3 x 5 CV\)")).click()
    progress = re.compile(r"^(fold \d+ of 15 trained and explained|splitting the cohort into folds|starting)$")
    page.get_by_text(progress).first.wait_for()
    runner = JobRunner(workspace)
    (job,) = runner.list("local")
    os.killpg(job.pid, signal.SIGSTOP)
    try:
        page.get_by_text("Training xgboost (engineered features): 3 x 5-fold cross-validation").wait_for()
        page.screenshot(path=str(artifacts / "prediction-job.png"))
        second = browser.new_context(**browser_context_args).new_page()
        open_prediction(second, url, repeats=3)
        second.get_by_text(f"Job {job.id}").first.wait_for()  # the same job, found again
        second.get_by_text(progress).first.wait_for()
        assert_page_readable(second)
    finally:
        os.killpg(job.pid, signal.SIGCONT)
    page.get_by_text("(trained and saved)").wait_for(timeout=RUN_TIMEOUT_MS)  # the poll reran the page: no reload
    second.get_by_text("(loaded saved run)").wait_for(timeout=RUN_TIMEOUT_MS)
    assert_page_readable(page)
    assert runner.status(job.id).status == "done"
    second.context.close()
