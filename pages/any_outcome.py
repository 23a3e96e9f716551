"""Any outcome page: predict a measure the model was never trained on from its description, see
how far to trust that from the held-out evaluation, switch to few-shot with K labelled patients,
and see what a clinic loses by skipping the costly scan."""

import streamlit as st

from components import state
from components.guard import guarded
from components.panels import anyoutcome as panels

cohort = state.cohort_page("pages/any_outcome.py", "Any outcome")
if not cohort.measure_specs():
    st.info("This cohort holds no described outcome measures. Synthetic cohorts carry the whole outcome bank (41 measures); "
            "for an upload, map its outcome columns to descriptions on the Upload page.", icon=":material/info:")
    st.stop()

predict, evaluate, transfer = st.tabs(["Predict a measure", "Held-out evaluation", "Skip the scan"])
with evaluate:
    evaluation = guarded(panels.evaluation_panel, cohort)
    if evaluation is not None:
        guarded(panels.evaluation_views, cohort, evaluation)
with predict:
    spec = panels.measure_picker(cohort)
    if spec is not None:
        guarded(panels.zero_shot_panel, cohort, spec, evaluation)
        st.subheader("Few-shot: K labelled patients")
        guarded(panels.few_shot_panel, cohort, spec)
with transfer:
    guarded(panels.transfer_panel, cohort)
