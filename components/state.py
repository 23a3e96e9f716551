"""The app's shared state in one facade: which workspace, which cohort, export format, the saved
runs, and what a session remembers between reruns (settings, edits, a widget's value).

Pages and panels never touch ``st.session_state`` directly; they call these functions.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import streamlit as st

from core.data.cohort import Cohort
from core.store.workspace import Workspace, default_workspace

_COHORT_KEY = "neuropredict.cohort_name"
_FORMAT_KEY = "neuropredict.image_format"
_ENTRY_KEY = "neuropredict.entry_point_ran"
_FLASH_KEY = "neuropredict.flash"
_DEEP_LINK_KEY = "neuropredict.deep_link"
LAST_COHORT_SETTING = "last_cohort"
_DEFAULT_PAGE_STEM = "cohort"  # the default page's url_path is ""


@st.cache_resource
def _workspace_at(path: str) -> Workspace:
    return Workspace(path)


def workspace() -> Workspace:
    return _workspace_at(str(default_workspace()))


@st.cache_resource(max_entries=4)
def _load_cohort(path: str, name: str, saved_at) -> Cohort:
    # saved_at is part of the key: saving a cohort again under the same name reloads it.
    return Workspace(path).load(name)


def current_cohort_name() -> str | None:
    """The cohort in use: this session's choice, else the one last opened (kept in the workspace)."""
    ws = workspace()
    names = ws.names()
    name = st.session_state.get(_COHORT_KEY) or ws.get_setting(LAST_COHORT_SETTING)
    if name not in names:
        name = names[0] if names else None
    return name


def set_current_cohort(name: str) -> None:
    st.session_state[_COHORT_KEY] = name
    workspace().set_setting(LAST_COHORT_SETTING, name)


def current_cohort() -> Cohort | None:
    name = current_cohort_name()
    if name is None:
        return None
    ws = workspace()
    return _load_cohort(str(ws.path), name, ws.saved_at(name))


def cohort_page(page_path: str, title: str) -> Cohort:
    """Header of a page that works on the current cohort: title, flash, the cohort and its caption.

    Stops the page with a pointer to the Cohort page when the workspace holds no cohort.
    """
    require_entry_point(page_path)
    st.title(title)
    show_flash()
    cohort = current_cohort()
    if cohort is None:
        st.info("The workspace holds no cohort yet: generate one on the Cohort page.")
        st.stop()
    st.caption(f"**{cohort.name}** · {cohort.describe()}")
    return cohort


def workspace_path() -> Path:
    return workspace().path


# --- saved runs, loaded once per run ---------------------------------------------------------------


class _NotSaved(Exception):
    """Raised inside the cached loader so that "not saved yet" is never cached."""


@st.cache_resource(max_entries=8, show_spinner="Loading the saved run ...")
def _load_saved(workspace_path: str, kind: str, key: str, version, _cohort: Cohort | None = None):
    # ``version`` is part of the cache key: a run saved again under the same key is reloaded.
    ws = Workspace(workspace_path)
    result = ws.load_cv(key, _cohort) if kind == "cv" else ws.load_ablation(key)
    if result is None:
        raise _NotSaved(key)
    return result


def saved_cv_run(cohort: Cohort, run: str):
    """The stored cross-validation run with this digest (:func:`core.modelling.run_digest`), or None.

    Raises InputError when it cannot be read.
    """
    try:
        return _load_saved(str(workspace_path()), "cv", run, None, cohort)
    except _NotSaved:
        return None


def saved_ablation_run(digest: str):
    """The stored ablation run (complete or partial) with this digest, or None. InputError when unreadable."""
    saved_at = workspace().ablation_saved_at(digest)
    if saved_at is None:
        return None
    try:
        return _load_saved(str(workspace_path()), "ablation", digest, saved_at)
    except _NotSaved:
        return None


# --- what a session remembers between reruns --------------------------------------------------------


def session_store(name: str, factory=dict):
    """This session's object under ``name`` (made by ``factory()`` on first use): settings that
    survive page switches, what-if edits, an upload in progress."""
    key = f"neuropredict.{name}"
    if key not in st.session_state:
        st.session_state[key] = factory()
    return st.session_state[key]


def widget_value(key: str, default=None):
    """The current value of the widget with this key (``default`` before it was first drawn)."""
    return st.session_state.get(key, default)


def set_widget_value(key: str, value) -> None:
    """Preset the widget with this key (before it is drawn in this run)."""
    st.session_state[key] = value


def forget_widget(key: str) -> None:
    """Drop a widget's remembered value, so it starts from its default when drawn again."""
    st.session_state.pop(key, None)


def image_format() -> str:
    """Format of the camera button on every figure: "png" or "svg"."""
    return st.session_state.get(_FORMAT_KEY, "png")


def image_format_selector() -> None:
    st.radio("Figure download format", ["png", "svg"], key=_FORMAT_KEY, horizontal=True, help="Format of the camera button on every figure.")


def mark_entry_point() -> None:
    """Called by app.py on every run, before the page."""
    st.session_state[_ENTRY_KEY] = True


def require_entry_point(page_path: str) -> None:
    """Send a page that runs without app.py to the app, which then opens this page.

    A first visit straight to a page URL on a fresh server makes Streamlit run the file in
    ``pages/`` on its own (its legacy multipage mode), without the sidebar or page config.
    ``page_path`` is the page's path relative to app.py, e.g. ``"pages/prediction.py"``.
    """
    if not st.session_state.get(_ENTRY_KEY):
        st.session_state[_DEEP_LINK_KEY] = page_path
        st.switch_page("app.py")


def follow_deep_link(current_page) -> None:
    """Called by app.py after st.navigation: open the page a first deep link asked for."""
    target = st.session_state.pop(_DEEP_LINK_KEY, None)
    if target and PurePosixPath(target).stem != (current_page.url_path or _DEFAULT_PAGE_STEM):
        st.switch_page(target)


def flash(message: str) -> None:
    """Show ``message`` once, on the next run (e.g. after ``st.rerun``)."""
    st.session_state[_FLASH_KEY] = message


def show_flash() -> None:
    # A toast, not an element: an element that comes and goes would shift the page and reset its tabs.
    message = st.session_state.pop(_FLASH_KEY, None)
    if message:
        st.toast(message, icon=":material/check_circle:")
