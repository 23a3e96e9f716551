"""Shared fixtures: small synthetic cohorts, made once per test session."""

import pytest

from core.synth.config import CohortConfig, presets
from core.synth.generator import generate_cohort


@pytest.fixture(scope="session")
def small_config():
    return CohortConfig(name="small", n_patients=300, seed=7)


@pytest.fixture(scope="session")
def small_cohort(small_config):
    return generate_cohort(small_config, n_jobs=1)


@pytest.fixture(scope="session")
def default_cohort():
    """The demo cohort: the shipped default preset (2,000 patients, both indications)."""
    return generate_cohort(presets()["default"])


@pytest.fixture(scope="session")
def stroke_cohort():
    """Stroke patients only: the PREP2 check and the lesion-load checks use them."""
    return generate_cohort(CohortConfig(name="stroke", n_patients=1000, seed=11, indications={"stroke": 1.0}), n_jobs=1)


# --- app and browser tests ---------------------------------------------------------------------


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives a real `streamlit run` server in headless Chromium (needs /usr/bin/chromium)"
    )


@pytest.fixture(scope="session")
def app_workspace_template(tmp_path_factory):
    """A workspace folder holding one small saved cohort, "tiny" (60 patients, both indications).

    Made once per session. The app writes into its workspace (the cohort last opened, new cohorts),
    so tests copy it first: see ``app_workspace``.
    """
    from core.store.workspace import Workspace

    path = tmp_path_factory.mktemp("app-workspace-template") / "workspace"
    Workspace(path).save(generate_cohort(CohortConfig(name="tiny", n_patients=60, seed=3), n_jobs=1))
    return path


@pytest.fixture
def app_workspace(app_workspace_template, tmp_path):
    """A private copy of ``app_workspace_template`` that a test may write to."""
    import shutil

    return shutil.copytree(app_workspace_template, tmp_path / "workspace")


@pytest.fixture
def fresh_streamlit(monkeypatch):
    """Empty Streamlit caches; run app.py on every AppTest rerun, as a real server does.

    The pages live in a folder named ``pages/``. AppTest re-evaluates Streamlit's legacy
    "pages/ directory" flag before every run, so from the second run on it would execute a page
    alone, without app.py and its sidebar. A real server evaluates that flag once per process and
    app.py's st.navigation() clears it, so here it is cleared the same way.
    """
    import streamlit as st
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


# --- browser tests: pytest-playwright pointed at Debian's chromium (see tests/browser_support.py) ---


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    from tests.browser_support import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():  # only reached in CI: elsewhere the browser tests are skipped
        pytest.fail(f"CI is set but {CHROMIUM} is missing: CI must install Debian's chromium for the browser tests.")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    # Streamlit scrolls inside its own container, so a full-page screenshot shows no more than the
    # viewport: make the viewport tall instead.
    return {**browser_context_args, "viewport": {"width": 1400, "height": 3200}}


@pytest.fixture(scope="session")
def artifacts():
    """tests/artifacts/, where browser tests leave screenshots for a person to look at."""
    from tests.browser_support import ARTIFACTS

    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def empty_workspace(app_workspace, monkeypatch):
    """The one-cohort workspace ("tiny"), private to the test, opened by the app under test."""
    from core.store.workspace import DEFAULT_WORKSPACE_ENV

    monkeypatch.setenv(DEFAULT_WORKSPACE_ENV, str(app_workspace))
    return app_workspace
