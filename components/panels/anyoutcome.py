"""Panels of the Any outcome page: choosing or describing a measure, its zero-shot predictions with
how far to trust them, few-shot from K labelled patients, the held-out evaluation, and what a clinic
loses by skipping the scan.

Stored results (the evaluation, the transfer curve, the distillation bound) live in the workspace under keys of the cohort's
content and the settings, so they load at once, also after a restart, and equal the CLI's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from components import state
from components.figures import show_figure
from components.panels import jobs
from components.views import anyoutcome as views
from core.data.outcome_bank import KINDS, described_outcome, load_outcome_bank
from core.data.schema import MODALITY_LABELS
from core.errors import InputError
from core.evaluation.anyoutcome import METHOD_LABELS, AnyOutcomeSettings
from core.jobs import any_outcome_job, bound_job, transfer_job
from core.modelling.anyoutcome import fit_on_cohort, meta_matching, signed_r, zero_shot_table

INDICATION_LABELS = {"stroke": "Stroke", "parkinsons": "Parkinson's disease"}
DIRECTION_LABELS = {"higher_better": "higher is better", "higher_worse": "higher is worse"}


@state.user_cache_resource(max_entries=8, show_spinner="Fitting the zero-shot model ...")
def _fitted(cohort_digest: str, family: str, _cohort):
    return fit_on_cohort(_cohort, exclude_families=(family,))


def measure_picker(cohort):
    """A measure from the bank or one the user describes; returns its OutcomeSpec (or None with an error shown)."""
    indications = [i for i in INDICATION_LABELS if (cohort.patients["indication"] == i).any()]
    source = st.radio("Measure", ["From the outcome bank", "Describe a new measure"], horizontal=True, key="any-source")
    if source == "From the outcome bank":
        bank = [s for s in load_outcome_bank() if s.indication in indications]
        key = st.selectbox("Outcome measure", [s.key for s in bank], format_func=lambda k: next(s.name for s in bank if s.key == k), key="any-measure",
                           help="Predicted as if its whole instrument family had never been seen: the model learns from the other families only.")
        spec = next(s for s in bank if s.key == key)
        st.caption(f"{spec.description} · {spec.kind}, {DIRECTION_LABELS[spec.direction]}, {spec.range[0]:g}-{spec.range[1]:g} {spec.unit}, "
                   f"{spec.time_point_weeks:g} weeks · instrument family `{spec.family}`")
        return spec
    description = st.text_area("Describe the measure as you would to a colleague", key="any-description", height=90,
                               placeholder="e.g. Wolf Motor Function Test, seconds to complete 15 timed arm and hand tasks with the affected arm")
    c = st.columns(4)
    indication = c[0].selectbox("Indication", indications, format_func=INDICATION_LABELS.get, key="any-indication")
    direction = c[1].selectbox("Direction", list(DIRECTION_LABELS), format_func=DIRECTION_LABELS.get, key="any-direction")
    kind = c[2].selectbox("Kind of measure", list(KINDS), key="any-kind")
    weeks = c[3].number_input("Time point (weeks)", 1.0, 104.0, 12.0, key="any-weeks")
    if not description.strip():
        st.info("Type a description: what is measured, how, on which body part, and whether higher is better.", icon=":material/edit:")
        return None
    try:
        return described_outcome(description, indication, direction, kind=kind, time_point_weeks=float(weeks))
    except InputError as exc:
        st.error(str(exc))
        return None


def zero_shot_panel(cohort, spec, evaluation) -> None:
    """Zero-shot predictions per patient, the nearest seen measures, and how zero-shot fared at that similarity."""
    model = _fitted(cohort.digest, spec.family, cohort)
    table = zero_shot_table(cohort, spec, model)
    similarity = model.similarities(spec)
    same = [k for k in similarity.index if model.seen_spec(k).indication == spec.indication]
    nearest = similarity[same].head(5)
    left, right = st.columns([3, 2])
    with left:
        fig, data = views.zero_shot_figure(table, spec.title)
        show_figure(fig, key="any-zero-shot", data=data, filename=f"{cohort.name}-{spec.key}-zero-shot")
    with right:
        st.markdown("**Nearest seen measures** (description similarity)")
        names = {s.key: s.name for s in load_outcome_bank()}
        st.dataframe(pd.DataFrame({"measure": [names.get(k, k) for k in nearest.index], "similarity": nearest.round(3).to_numpy()}), hide_index=True, width="stretch")
        st.markdown("**How far to trust it**")
        st.write(_trust_sentence(float(nearest.iloc[0]), evaluation))
    st.caption("Predictions are on the standardised scale: standard deviations from the cohort's mean, signed so that a higher prediction means a "
               "higher score on this measure. Zero-shot knows no value of the measure, so it cannot know its mean or spread.")


def _trust_sentence(similarity: float, evaluation) -> str:
    if evaluation is None:
        return ("Run the held-out evaluation (tab **Held-out evaluation**) to see how well zero-shot predicted unseen measures that were this "
                "similar to a seen one.")
    r = evaluation.reliability(similarity)
    return (f"Its nearest seen measure has similarity {similarity:.2f}. In the held-out evaluation, the {len(r['measures'])} unseen measures closest to that "
            f"similarity ({r['similarity_low']:.2f}-{r['similarity_high']:.2f}) were predicted with signed r from {r['r_min']:.2f} to "
            f"{r['r_max']:.2f} (mean {r['r_mean']:.2f}) by zero-shot. Similar wording does not guarantee a similar measure: check the nearest measures.")


def few_shot_panel(cohort, spec) -> None:
    """Switch to few-shot: K patients with a recorded value; scored on the other patients."""
    if spec.key not in cohort.outcomes:
        st.info("Few-shot needs recorded values of the measure: upload a table with it as an outcome column, mapped to this description.", icon=":material/info:")
        return
    rows = np.flatnonzero((cohort.patients["indication"] == spec.indication).to_numpy() & cohort.outcomes[spec.key].notna().to_numpy())
    k = int(st.number_input("K labelled patients", 5, max(5, min(200, len(rows) // 2)), min(50, len(rows) // 2), key="any-k",
                            help="Drawn at random (seed 0) from the patients with a value; the others are the test patients."))
    pick = np.sort(np.random.default_rng(0).choice(rows, k, replace=False))
    rest = np.setdiff1d(rows, pick)
    model = _fitted(cohort.digest, spec.family, cohort)
    seen = model.seen_predictions(cohort.features.iloc[rows], spec.indication).assign(zero_shot=model.predict(cohort.features.iloc[rows], spec))
    seen_k, seen_rest = seen.loc[cohort.patients.index[pick]], seen.loc[cohort.patients.index[rest]]
    y = cohort.outcomes[spec.key].to_numpy(float)
    few = meta_matching(seen_k, y[pick], seen_rest, "stacked")
    zero = seen_rest["zero_shot"].to_numpy()
    c = st.columns(2)
    c[0].metric(f"Few-shot (stacked meta-matching, K = {k})", f"r = {signed_r(y[rest], few):.3f}", help="Signed Pearson r on the patients not among the K.")
    c[1].metric("Zero-shot on the same patients", f"r = {signed_r(y[rest], zero):.3f}")
    st.caption("The seen measures' models are fitted on all patients, the K included: this view shows the few-shot mechanics on your cohort. "
               "The held-out evaluation scores it without that overlap.")


def evaluation_panel(cohort):
    """The stored held-out evaluation (or a button that computes it), with its figures and tables; returns it or None."""
    settings = AnyOutcomeSettings()
    workspace = state.workspace()
    try:
        evaluation = workspace.any_outcome_evaluation(cohort, settings, compute=False)
    except InputError as exc:
        st.error(str(exc))
        evaluation = None
    if evaluation is None:
        n_families = len({s.family for s in cohort.measure_specs().values()})
        jobs.offer_or_follow("any_outcome", any_outcome_job(cohort, settings, cohort_workspace=jobs.cohort_workspace()),
                   title=f"Held-out evaluation: {settings.n_splits} patient folds x {n_families} held-out instrument families",
                   info=f"Not evaluated yet: {settings.n_splits} patient folds x {n_families} held-out instrument families (about 2 minutes for "
                        "2,000 patients). The result is stored in the workspace and equals `python -m core any-outcome`.",
                   button="Run the held-out evaluation", button_key="any-evaluate")
    return evaluation


def evaluation_views(cohort, evaluation) -> None:
    st.markdown(evaluation.summary_sentence())
    summary = evaluation.summary()
    left, right = st.columns(2)
    with left:
        fig, data = views.method_summary_figure(summary)
        show_figure(fig, key="any-methods", data=data, filename=f"{cohort.name}-any-outcome-methods")
    with right:
        fig, data = views.few_shot_figure(summary)
        show_figure(fig, key="any-few-shot", data=data, filename=f"{cohort.name}-any-outcome-few-shot")
    few = evaluation.paired("meta_matching_stacked", ("xgboost_k",), k=50)
    if len(few):
        row = few.iloc[0]
        verdict = "beats" if row["ci_low"] > 0 else "does not beat (CI includes 0)"
        st.markdown(f"At K = 50, stacked meta-matching {verdict} xgboost trained on the same 50 patients: {row['mean_difference']:+.3f} signed r "
                    f"(95% CI {row['ci_low']:+.3f} to {row['ci_high']:+.3f}) over {int(row['families'])} families.")
    fig, data = views.similarity_figure(evaluation.per_outcome, evaluation.similarity)
    show_figure(fig, key="any-similarity", data=data, filename=f"{cohort.name}-any-outcome-similarity")
    st.markdown("**Zero-shot minus each baseline** (mean over held-out families, bootstrap 95% CI over families)")
    paired = evaluation.paired()
    # p to 4 places: the smallest a 5,000-resample bootstrap can give, 1/5,001, would round to 0.
    st.dataframe(paired.assign(baseline=paired["baseline"].map(METHOD_LABELS)).round(3).assign(p=paired["p"].round(4)), hide_index=True, width="stretch")
    with st.expander("Signed r per measure and method"):
        table = evaluation.per_outcome.query("K == 0").pivot_table(index=["family", "measure"], columns="method", values="r").round(3)
        st.dataframe(table, width="stretch")
    c = st.columns(3)
    for i, (name, table) in enumerate(evaluation.to_csv_tables().items()):
        c[i % 3].download_button(f"{name}.csv", table.to_csv(index=False).encode(), file_name=f"{cohort.name}-{name}.csv", mime="text/csv",
                                 key=f"any-csv-{name}", icon=":material/download:")


def transfer_panel(cohort) -> None:
    """What a clinic loses by skipping the scan, with and without transfer from a DTI teacher."""
    from core.evaluation.transfer import TRANSFER_CURVE_SIZES, transfer_sentence

    if "dti" not in cohort.modalities:
        st.info("This cohort has no DTI features: there is no costly scan to skip.", icon=":material/info:")
        return
    cheap = st.multiselect("Cheap modalities (what the clinic measures)", [m for m in cohort.modalities if m != "dti"], default=[m for m in cohort.modalities if m != "dti"],
                           format_func=MODALITY_LABELS.get, key="any-cheap")
    if not cheap:
        st.info("Pick at least one cheap modality.")
        return
    sizes = tuple(n for n in TRANSFER_CURVE_SIZES if n < cohort.n_patients) + (cohort.n_patients,)
    workspace = state.workspace()
    stored = workspace.transfer_curve(cohort, cheap, sizes, compute=False)
    if stored is None:
        jobs.offer_or_follow("transfer", transfer_job(cohort, cheap, sizes, cohort_workspace=jobs.cohort_workspace()),
                   title=f"Transfer curve: full, cheap-only and distilled-student models at N = {', '.join(map(str, sizes))}",
                   info=f"Not computed yet: full, cheap-only and distilled-student models at N = {', '.join(map(str, sizes))} on the same folds "
                        "(about 2 minutes for 2,000 patients). Stored in the workspace.",
                   button="Compute the transfer curve", button_key="any-transfer")
        return
    curve, limit = stored
    limit_auc = float(limit["cheap_limit_auc"].iloc[0]) if limit is not None and "cheap_limit_auc" in limit else None
    st.markdown(transfer_sentence(curve))
    fig, data = views.transfer_figure(curve, limit_auc)
    show_figure(fig, key="any-transfer-curve", data=data, filename=f"{cohort.name}-transfer-curve")
    if limit_auc is not None:
        st.caption(f"Cheap-only limit: xgboost on the cheap features of {int(limit['n_reference'].iloc[0]):,} further patients from the same generator, "
                   "scored on this cohort; a large-sample estimate from below, not an exact Bayes limit.")
    if "true_response_probability" in cohort.outcomes:
        bound_view(cohort, cheap)


def bound_view(cohort, cheap) -> None:
    """The DTI-taught student beside students taught by the true probabilities (synthetic cohorts only)."""
    from core.evaluation.transfer import BOUND_SUBSAMPLES, bound_patients, distillation_bound_sentence, distillation_bound_summary

    st.subheader("How much could any teacher pass on?")
    n_patients = bound_patients(cohort)
    workspace = state.workspace()
    table = workspace.distillation_bound(cohort, cheap, compute=False)
    if table is None:
        jobs.offer_or_follow("bound", bound_job(cohort, cheap, cohort_workspace=jobs.cohort_workspace()),
                   title=f"Distillation bound: {BOUND_SUBSAMPLES} subsamples of {n_patients} patients",
                   info=f"This cohort's ground truth knows each patient's true chance of response. A student taught by it shows the most "
                        f"distillation could add at {n_patients} patients. Not computed yet: {BOUND_SUBSAMPLES} subsamples of {n_patients} "
                        "patients (about half a minute). Stored in the workspace.",
                   button="Compute the bound", button_key="any-bound", primary=False)
        return
    summary = distillation_bound_summary(table)
    st.markdown(distillation_bound_sentence(summary))
    fig, data = views.distillation_bound_figure(summary)
    show_figure(fig, key="any-transfer-bound", data=data, filename=f"{cohort.name}-distillation-bound")
    if "disjoint" in table and table["disjoint"].all():
        independence = "the subsamples share no patient, so the interval over them is a fair one"
    elif n_patients == cohort.n_patients:
        independence = "every subsample is the whole cohort, differing only in its folds, so the interval is too narrow"
    else:
        independence = f"the cohort is too small for {BOUND_SUBSAMPLES} separate subsamples, so they share patients and the interval is too narrow"
    st.caption(f"Each subsample is cross-validated on its own 5 folds; {independence}.")

