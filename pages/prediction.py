"""Prediction page: train the response model with repeated cross-validation, judge it, explain it, ask what-if."""

import streamlit as st

from components import state
from components.guard import guarded
from components.panels import jobs
from components.panels import prediction as panels
from core.data.schema import OUTCOME_LABELS
from core.errors import InputError
from core.modelling.validation import CVSettings

cohort = state.cohort_page("pages/prediction.py", "Treatment-response prediction")

c = st.columns([3, 3, 1, 1, 2], vertical_alignment="bottom")
model = c[0].selectbox("Model", list(CVSettings.MODELS), format_func=panels.MODEL_LABELS.get, key="pred-model",
                       help="; ".join(f"{panels.MODEL_LABELS[k]}: {v}" for k, v in CVSettings.MODELS.items()) + ". Every model is cross-validated on the same folds.")
outcomes = list(OUTCOME_LABELS) if model == "xgboost" else ["responder"]  # the deep models predict the responder label
outcome = c[1].radio("Outcome", outcomes, format_func=OUTCOME_LABELS.get, horizontal=True, key="pred-outcome" if model == "xgboost" else "pred-outcome-deep")
deep_repeats = 1 if model != "xgboost" else CVSettings.n_repeats  # a deep run takes minutes per fold: one repeat unless asked
n_repeats = int(c[2].number_input("Repeats", *CVSettings.LIMITS["n_repeats"], deep_repeats, key="pred-repeats" if model == "xgboost" else "pred-repeats-deep",
                                  help="Each repeat reshuffles the folds; predictions are averaged over repeats. Compare models with the same repeats and folds."))
n_splits = int(c[3].number_input("Folds", *CVSettings.LIMITS["n_splits"], CVSettings.n_splits, key="pred-folds"))
with st.expander(f"Model settings ({panels.MODEL_LABELS[model]})", icon=":material/tune:"):
    settings = CVSettings(outcome=outcome, n_splits=n_splits, n_repeats=n_repeats, model=model, **panels.model_settings(model))
run = settings.run_digest(cohort)  # python -m core train with the same settings stores the same run
train = c[4].button(f"Train ({n_repeats} x {n_splits} CV)", type="primary", key="pred-train", icon=":material/model_training:")

try:
    result = state.saved_cv_run(cohort, run)
except InputError as exc:  # a stored run that cannot be read: say so, and offer to retrain
    st.error(str(exc))
    result = None
job = jobs.active("cv", run)  # training runs as a background job: reattach to it
if train and result is not None:
    st.success(f"Loaded saved run `{run}`: same cohort and settings, so no retraining.", icon=":material/inventory_2:")
elif train and job is None:
    job = panels.start_training(cohort, settings)

if result is None:
    if job is not None:
        panels.training_progress(job, settings)  # reruns the page once the run is stored
        st.stop()
    kept = state.workspace().cv_progress(run)
    last = jobs.latest("cv", run)
    if not (kept and last is not None and last.status == "cancelled"):  # the warning below says what a cancel kept
        jobs.finished_notice(last)  # the error of a failed job, what a cancelled or interrupted one left
    if kept:
        st.warning(f"Training of this run was stopped with {kept} of {n_repeats * n_splits} folds finished and kept: press **Train** to resume.", icon=":material/pause_circle:")
    else:
        st.info(f"No saved run of {panels.MODEL_LABELS[model]} for {OUTCOME_LABELS[outcome].lower()} with these settings yet: press **Train**"
                + (" (deep models take minutes per fold on a CPU; training runs in the background, shows its loss curves, and can be cancelled and resumed)." if model != "xgboost" else "."),
                icon=":material/info:")
    st.stop()

source = "trained and saved" if jobs.made_here("cv", run) else "loaded saved run"
st.caption(f"Run `{run}` ({source}) · validation: {result.scheme} · {len(result.fold_models)} fold models")

# Only the open tab runs and is sent: hidden tabs full of plots slowed every what-if edit in the
# browser (the tab panels re-scan their whole subtree for focusable elements on each render).
VIEWS = panels.views_for(result, settings)
for tab, view in zip(st.tabs(list(VIEWS), key=panels.VIEW_KEY, on_change="rerun", bind="query-params"), VIEWS.values()):
    if tab.open:
        with tab:
            guarded(view, cohort, result, run)
