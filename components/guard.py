"""One way for every page to show bad input: core's message in ``st.error``, never a traceback."""

from __future__ import annotations

import streamlit as st

from core.errors import InputError


def guarded(panel, *args, **kwargs) -> None:
    """Run a panel; an :class:`~core.errors.InputError` shows its message instead of a traceback.

    What the page drew before the panel stays on screen, and nothing already loaded is lost.
    """
    try:
        panel(*args, **kwargs)
    except InputError as exc:
        st.error(str(exc))
