"""Cohort page: generate or pick a cohort, explore it, open a patient, check the ground truth."""

import streamlit as st

from components import figures, state
from components.panels import cohort as cohort_panels
from components.views import cohort as cohort_views

state.require_entry_point("pages/cohort.py")
st.title("Cohort explorer")
state.show_flash()

generation_jobs = cohort_panels.generation_jobs()
with st.expander("Generate a synthetic cohort", expanded=state.current_cohort_name() is None or any(job.active for job in generation_jobs), icon=":material/science:"):
    cohort_panels.generation_panel(generation_jobs)

cohort = state.current_cohort()
if cohort is None:
    st.info("The workspace holds no cohort yet: generate one above.")
    st.stop()

st.caption(f"**{cohort.name}** · {cohort.describe()}")
st.dataframe(cohort.summary(), width="stretch")

overview, correlations, patient, truth, export = st.tabs(["Distributions", "Correlations", "Patient", "Ground truth", "Export"])
with overview:
    c1, c2 = st.columns([2, 1])
    column = c1.selectbox("Variable", ["improvement_pct", *cohort.features.columns], key="dist-column", format_func=figures.column_label)
    by = c2.radio("Split by", ["responder", "indication", *(["site"] if "site" in cohort.patients else [])], horizontal=True, key="dist-by")
    fig, data = cohort_views.distribution_figure(cohort, column, by)
    figures.show_figure(fig, key="distribution", data=data, filename=f"distribution-{column}-by-{by}")
with correlations:
    st.caption("Spearman correlations between features (pairwise complete). Lines separate modalities; "
               "shared latent factors make modalities correlate, as in real cohorts.")
    corr = cohort_panels.cached_correlations(cohort, cohort.digest)
    figures.show_figure(cohort_views.correlation_figure(corr), key="correlations", data=corr, filename="feature-correlations")
with patient:
    if cohort.raw is None:
        st.info("This cohort carries no raw data; only its features are available.")
    else:
        cohort_panels.patient_panel(cohort)
with truth:
    cohort_panels.ground_truth_panel(cohort)
with export:
    st.download_button("Features (CSV)", cohort.features.to_csv().encode(), f"{cohort.name}-features.csv", "text/csv")
    st.download_button("Outcomes (CSV)", cohort.outcomes.to_csv().encode(), f"{cohort.name}-outcomes.csv", "text/csv")
    st.download_button("Patients (CSV)", cohort.patients.to_csv().encode(), f"{cohort.name}-patients.csv", "text/csv")
    st.divider()
    cohort_panels.raw_export_panel(cohort)
