"""One way for every page to show bad input: core's message in ``st.error``, never a traceback."""

from __future__ import annotations

import streamlit as st

from core.errors import InputError


def guarded(panel, *args, **kwargs):
    """Run a panel and return what it returns; an :class:`~core.errors.InputError` shows its message
    instead of a traceback (and gives None).

    What the page drew before the panel stays on screen, and nothing already loaded is lost.
    """
    try:
        return panel(*args, **kwargs)
    except InputError as exc:
        st.error(str(exc))
        return None
