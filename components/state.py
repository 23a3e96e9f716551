"""The app's shared state in one typed facade: which workspace, which cohort, export format.

Pages never touch ``st.session_state`` keys directly; they call these functions.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.cohort import Cohort
from core.workspace import Workspace, default_workspace

_COHORT_KEY = "neuropredict.cohort_name"
_FORMAT_KEY = "neuropredict.image_format"
LAST_COHORT_SETTING = "last_cohort"


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


def workspace_path() -> Path:
    return workspace().path


def image_format() -> str:
    """Format of the camera button on every figure: "png" or "svg"."""
    return st.session_state.get(_FORMAT_KEY, "png")


def image_format_selector() -> None:
    st.radio("Figure download format", ["png", "svg"], key=_FORMAT_KEY, horizontal=True, help="Format of the camera button on every figure.")
