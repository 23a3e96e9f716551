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
