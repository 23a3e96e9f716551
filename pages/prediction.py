"""Prediction page: train the response model with repeated cross-validation, judge it, explain it, ask what-if."""

import streamlit as st

from components import state
from components.guard import guarded
from components.panels import prediction as panels
from core.data.schema import OUTCOME_LABELS
from core.errors import InputError
from core.modelling.validation import CVSettings, cross_validate

cohort = state.cohort_page("pages/prediction.py", "Treatment-response prediction")

c = st.columns([3, 1, 1, 2], vertical_alignment="bottom")
outcome = c[0].radio("Outcome", list(OUTCOME_LABELS), format_func=OUTCOME_LABELS.get, horizontal=True, key="pred-outcome")
n_repeats = int(c[1].number_input("Repeats", *CVSettings.LIMITS["n_repeats"], CVSettings.n_repeats, key="pred-repeats", help="Each repeat reshuffles the folds; predictions are averaged over repeats."))
n_splits = int(c[2].number_input("Folds", *CVSettings.LIMITS["n_splits"], CVSettings.n_splits, key="pred-folds"))
with st.expander("Model settings (xgboost)", icon=":material/tune:"):
    settings = CVSettings(outcome=outcome, n_splits=n_splits, n_repeats=n_repeats, **panels.model_settings())
splitter, params = settings.splitter(), settings.model_params()  # python -m core train builds the same
run = settings.run_digest(cohort)
train = c[3].button(f"Train ({n_repeats} x {n_splits} CV)", type="primary", key="pred-train", icon=":material/model_training:")

try:
    result = state.saved_cv_run(cohort, run)
except InputError as exc:  # a stored run that cannot be read: say so, and offer to retrain
    st.error(str(exc))
    result = None
just_trained = False
if train and result is not None:
    st.success(f"Loaded saved run `{run}`: same cohort and settings, so no retraining.", icon=":material/inventory_2:")
elif train:
    error = None
    with st.status(f"Training {n_repeats} x {n_splits}-fold cross-validation ...", expanded=True) as status:
        bar = st.progress(0.0, text="splitting the cohort into folds")
        try:
            trained = cross_validate(cohort, outcome, splitter=splitter, params=params,
                                     progress=lambda done, total: bar.progress(done / total, text=f"fold {done} of {total} trained and explained"))
            bar.progress(1.0, text="saving the fold models in the workspace")
            state.workspace().save_cv(cohort, run, trained)
        except InputError as exc:
            error = str(exc)
            status.update(label="Not trained", state="error", expanded=False)
        else:
            status.update(label=f"Trained and saved run `{run}`", state="complete", expanded=False)
    if error:
        st.error(error)
    else:
        result, just_trained = state.saved_cv_run(cohort, run), True

if result is None:
    st.info(f"No saved run for {OUTCOME_LABELS[outcome].lower()} with these settings yet: press **Train**.", icon=":material/info:")
    st.stop()

source = "trained and saved" if just_trained else "loaded saved run"
st.caption(f"Run `{run}` ({source}) · validation: {result.scheme} · {len(result.fold_models)} fold models")

# Only the open tab runs and is sent: hidden tabs full of plots slowed every what-if edit in the
# browser (the tab panels re-scan their whole subtree for focusable elements on each render).
VIEWS = {"Performance": panels.performance_panel, "Explanations": panels.explanations_panel, "What-if": panels.whatif_panel,
         "Ground truth": panels.ground_truth_panel, "Export": panels.export_panel}
for tab, view in zip(st.tabs(list(VIEWS), key=panels.VIEW_KEY, on_change="rerun", bind="query-params"), VIEWS.values()):
    if tab.open:
        with tab:
            guarded(view, cohort, result, run)
