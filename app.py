"""NeuroPredict: entry point. Navigation, and the sidebar shared by every page."""

import streamlit as st

from components import state
from core.errors import InputError

st.set_page_config(page_title="NeuroPredict", page_icon=":material/neurology:", layout="wide")
state.mark_entry_point()

pages = [
    st.Page("pages/cohort.py", title="Cohort", icon=":material/groups:", default=True),
    st.Page("pages/prediction.py", title="Prediction", icon=":material/query_stats:"),
    st.Page("pages/ablation.py", title="Ablation", icon=":material/layers:"),
    st.Page("pages/any_outcome.py", title="Any outcome", icon=":material/psychology_alt:"),
    st.Page("pages/upload.py", title="Upload", icon=":material/upload_file:"),
    st.Page("pages/tms.py", title="TMS maps", icon=":material/bolt:"),
]
page = st.navigation(pages)
state.follow_deep_link(page)

with st.sidebar:
    st.markdown("### NeuroPredict")
    st.caption("Treatment-response prediction for neuromodulation (DBS, rTMS).")
    try:
        workspace = state.workspace()
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    names = workspace.names()
    if names:
        current = state.current_cohort_name()
        choice = st.selectbox("Cohort", names, index=names.index(current) if current in names else 0)
        if choice != current:
            state.set_current_cohort(choice)
    st.caption(f"Workspace: `{workspace.path}`")
    state.image_format_selector()

page.run()
