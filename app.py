"""NeuroPredict: entry point. The login screen (when logins are on), navigation, and the sidebar
shared by every page."""

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

if state.logins_enabled() and state.current_user() is None:
    # Nothing else runs for a visitor who has not logged in: no page, no workspace, no cohort, no menu.
    requested = st.navigation(pages, position="hidden")
    st.title("NeuroPredict")
    st.write("Log in with your hospital account to open your workspace.")
    state.keep_link_through_login(requested)
    for provider in state.login_providers():
        label = "Log in" if provider is None else f"Log in with {provider}"
        if st.button(label, type="primary", icon=":material/login:", key=f"login-{provider or 'default'}"):
            st.login(provider)
    st.stop()

page = st.navigation(pages)
state.follow_deep_link(page)

with st.sidebar:
    st.markdown("### NeuroPredict")
    st.caption("Treatment-response prediction for neuromodulation (DBS, rTMS).")
    user = state.current_user()
    try:
        workspace = state.workspace()
    except InputError as exc:
        st.error(str(exc))
        st.stop()
    link = st.query_params.get("cohort")
    if link is not None:  # a deep link ?cohort=NAME opens the user's own cohort, or one shared with them
        del st.query_params["cohort"]
        try:
            state.open_cohort_link(link)
        except InputError as exc:
            st.error(str(exc))
    labels = state.cohort_labels()
    choices = list(labels)
    if choices:
        current = state.current_cohort_key()
        choice = st.selectbox("Cohort", choices, index=choices.index(current) if current in choices else 0, format_func=labels.__getitem__)
        if choice != current:
            state.set_current_cohort(choice)
        if state.current_cohort_is_shared():
            st.caption("Shared with you read-only: open and analyse it; it stays in its owner's workspace.")
    if user is None:
        st.caption(f"Workspace: `{workspace.path}`")
    else:
        with st.expander("Share a cohort", icon=":material/share:"):
            own = workspace.names()
            with st.form("share", clear_on_submit=True, border=False):
                cohort = st.selectbox("Your cohort", own)
                email = st.text_input("Colleague's e-mail", placeholder="name@hospital.org")
                if st.form_submit_button("Share read-only", disabled=not own):
                    try:
                        state.share_cohort(cohort, email)
                        st.success(f"'{cohort}' is shared read-only with {email.strip().lower()}.")
                    except InputError as exc:
                        st.error(str(exc))
            for i, share in enumerate(state.my_shares()):
                left, right = st.columns([4, 1], vertical_alignment="center")
                left.caption(f"{share.cohort} → {share.with_email}")
                if right.button("", icon=":material/close:", key=f"unshare-{i}", help=f"Stop sharing {share.cohort} with {share.with_email}"):
                    state.unshare_cohort(share.cohort, share.with_email)
                    st.rerun()
        st.caption(f"Logged in as **{user.label}**")
        if st.button("Log out", icon=":material/logout:"):
            st.logout()
    state.image_format_selector()
    if user is not None:
        state.follow_link_after_login()

page.run()
