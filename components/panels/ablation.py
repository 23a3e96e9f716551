"""Panels of the Ablation page: settings that survive page switches, the run with progress and
cancel/resume, and the result views (comparisons, Shapley values, subsets, permutation test, cost).

A run is stored in the workspace under :func:`core.ablation.ablation_digest` (cohort content plus
settings, not the metric), so the same cohort and settings load at once, also after a restart.
Everything derived from a run is cached under that digest; big objects are passed as
``_underscore`` arguments so Streamlit never hashes them.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import streamlit as st

from components import state
from components.figures import show_figure
from components.panels import jobs
from components.views import ablation as views
from core import ablation as engine
from core.ablation.config import DESIGNS
from core.ablation.result import AblationResult
from core.data.cohort import Cohort
from core.data.schema import MODALITY_LABELS
from core.evaluation.ground_truth import modality_recovery
from core.evaluation.metrics import METRICS
from core.jobs import Job, ablation_job

DESIGN_LABELS = {"leave_one_out": "Leave one modality out", "single": "Single modality", "add_one": "Add one in order", "all_subsets": "All subsets"}
ORDER_LABELS = {"best": "best single modality first", "cheapest": "cheapest first (cost table below)"}

# Example costs per modality, to be replaced by a clinic's own. Rough orders of magnitude only:
# a diffusion sequence with set-up on a 3 T scanner (~15 min of scanner time), a TMS/EMG session
# (~40 min of lab time), an instrumented reaching assessment (~30 min), clinical scales (~20 min).
# Prices are in any one currency and purely illustrative.
COST_COLUMNS = {"scanner_min": "Scanner min", "lab_min": "Lab min", "price": "Price"}
EXAMPLE_COSTS = {
    "dti": {"scanner_min": 15.0, "lab_min": 10.0, "price": 400.0},
    "emg": {"scanner_min": 0.0, "lab_min": 40.0, "price": 150.0},
    "kin": {"scanner_min": 0.0, "lab_min": 30.0, "price": 120.0},
    "clin": {"scanner_min": 0.0, "lab_min": 20.0, "price": 40.0},
}
COST_MEASURES = {"time": "Scanner + lab time (min)", "scanner_min": "Scanner time (min)", "lab_min": "Lab time (min)", "price": "Price (example units)"}

# Page state that must outlive a visit to another page (Streamlit drops the state of widgets a run
# does not draw): a copy of each remembered widget's value, and the cost table.
_SETTINGS_KEY = "ablation.settings"
_COSTS_KEY = "ablation.costs"
_COST_BASE_KEY = "ablation.cost_base"


# --- settings that survive page switches -------------------------------------------------------


def remembered(widget, label: str, *args, key: str, default, **kwargs):
    """Draw ``widget(label, *args, key=key, **kwargs)`` starting from its last value, also after a
    visit to another page; ``default`` on the first visit. The widget gets no default of its own."""
    saved = state.session_store(_SETTINGS_KEY)
    if state.widget_value(key) is None:
        state.set_widget_value(key, saved.get(key, default))
    value = widget(label, *args, key=key, **kwargs)
    saved[key] = value
    return value


def start(cohort: Cohort, config: engine.AblationConfig) -> Job:
    """Submit the ablation as a background job (:func:`core.jobs.ablation_job`): it runs
    :func:`core.ablation.run_ablation` as ``python -m core ablate`` does, resumes a saved partial run,
    and stores the result; a cancelled job stores its finished fits as a partial run."""
    params, digest = ablation_job(cohort, config, cohort_workspace=jobs.cohort_workspace())
    return jobs.submit("ablation", params, digest)


def run_progress(job: Job, config: engine.AblationConfig, resume: AblationResult | None = None) -> None:
    """The ablation job's progress (model fits) and Cancel."""
    verb = "Resuming" if resume is not None else "Running"
    jobs.progress_panel(job, f"{verb} the ablation: {config.n_repeats} x {config.n_splits}-fold CV per subset, {config.n_permutations} permutations",
                        cancel_help="Stops after the fits under way; the finished ones stay saved, and Resume completes the run later.")


def partial_notice(result: AblationResult) -> None:
    done, total = result.progress()
    st.info(f"A partial run with these settings is saved: {done} of {total} model fits, from a run that was cancelled or stopped. "
            "**Resume** fits only the missing ones; changing a setting starts a different run.", icon=":material/pause_circle:")


# --- derived tables, cached by run digest ---------------------------------------------------------


@state.user_cache_data(max_entries=16, show_spinner=False)
def summary_tables(_result: AblationResult, digest: str, metric: str) -> dict:
    """Subsets, Shapley values, permutation test and the chance level of one metric."""
    scores = _result.scores
    chance = float(scores.loc[scores["subset"] == _result.full_label, f"chance_{metric}"].mean())
    return {"subsets": _result.subsets(metric), "shapley": _result.shapley(metric), "permutation": _result.permutation_test(metric), "chance": chance}


@state.user_cache_data(max_entries=32, show_spinner=False)
def design_table(_result: AblationResult, digest: str, metric: str, design: str, order: tuple | None) -> pd.DataFrame:
    return _result.design(design, metric, order=order)


@state.user_cache_data(max_entries=32, show_spinner=False)
def pareto_table(_result: AblationResult, digest: str, metric: str, costs: tuple) -> pd.DataFrame:
    return _result.pareto_front(dict(costs), metric)


_COLUMN_LABELS = {"value": "Shapley value", "share": "share of the gain", "ci_low": "95% CI low", "ci_high": "95% CI high", "p_holm": "Holm p",
                  "mean": "subset's mean", "change": "change"}


def _readable(table: pd.DataFrame, values: tuple) -> tuple[pd.DataFrame, dict]:
    """A table to show: estimates as numbers with four decimals, p-values as text ("<0.001").
    The CSV under each figure keeps every number unrounded."""
    shown = table.copy()
    for c in ("p", "p_holm"):
        if c in shown:
            shown[c] = [views.p_text(v) for v in shown[c]]
    return shown, {c: st.column_config.NumberColumn(_COLUMN_LABELS.get(c, c), format="%.4f") for c in values} | {c: _COLUMN_LABELS.get(c, c) for c in ("p", "p_holm")}


# --- headline -------------------------------------------------------------------------------------


def headline(cohort: Cohort, result: AblationResult, metric: str) -> None:
    t = summary_tables(result, result.digest, metric)
    spec = METRICS[metric]
    full = t["subsets"].set_index("subset").loc[result.full_label]
    shapley, perm = t["shapley"], t["permutation"]
    c = st.columns(4)
    c[0].metric(f"Full model {spec.label}", f"{full['mean']:.3f}", help="Mean over every test fold of the model on all modalities.")
    c[0].caption(f"95% CI {full['ci_low']:.3f} – {full['ci_high']:.3f} · {len(result.scores) // len(result.subset_labels)} folds")
    c[1].metric("Chance level", f"{t['chance']:.3f}", help=spec.chance)
    c[1].caption(spec.chance)
    top = shapley.index[0]
    c[2].metric("Largest contribution", MODALITY_LABELS.get(top, top), help="The modality with the largest Shapley value.")
    c[2].caption(f"{100 * shapley.loc[top, 'share']:.0f}% of the gain above chance")
    if perm["n_permutations"]:
        c[3].metric("Permutation p", f"{perm['p_value']:.3f}", help="Full model against label-permuted data; the smallest possible p is 1 / (permutations + 1).")
        c[3].caption(f"{perm['n_permutations']} permutations · smallest possible {1 / (perm['n_permutations'] + 1):.3f}")
    else:
        c[3].metric("Permutation p", "—", help="No permutations in this run.")


# --- comparisons: the forest plot -----------------------------------------------------------------


def comparisons_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader("What each modality changes")
    c = st.columns([2, 3])
    design = remembered(c[0].selectbox, "Design", list(DESIGNS), key="abl-design", default="leave_one_out", format_func=DESIGN_LABELS.get)
    order = None
    if design == "add_one":
        how = remembered(c[1].radio, "Order of adding", list(ORDER_LABELS), key="abl-order", default="best", format_func=ORDER_LABELS.get, horizontal=True,
                         help="An order picked from the same folds (best first) makes the first steps a little optimistic; an order fixed in advance, such as by cost, does not.")
        if how == "cheapest":
            costs = modality_costs(result.modalities)
            order = tuple(sorted(result.modalities, key=lambda m: costs[m]))
    else:
        c[1].caption(DESIGNS[design])
    table = design_table(result, result.digest, metric, design, order)
    if design == "add_one":
        c[1].caption(DESIGNS[design] + ". Order: " + " → ".join(views.SHORT_NAMES.get(m, m) for m in table.attrs["order"]) + ".")
    fig, data = views.forest_figure(table, design)
    show_figure(fig, key="abl-forest", data=data, filename=f"{cohort.name}-ablation-{design}-{metric}")
    st.caption(table.attrs["note"])
    with st.expander("Table of the comparisons", icon=":material/table:"):
        shown, formats = _readable(data, ("mean", "change", "ci_low", "ci_high", "t"))
        st.dataframe(shown, width="stretch", column_config=formats)


# --- modality Shapley values ----------------------------------------------------------------------


def shapley_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader("How much each modality contributes (Shapley values)")
    t = summary_tables(result, result.digest, metric)
    full = t["subsets"].set_index("subset").loc[result.full_label]
    truth = cohort.ground_truth
    left, right = st.columns([3, 2]) if truth is not None else (st.container(), None)
    with left:
        fig, data = views.shapley_waterfall_figure(t["shapley"], t["chance"], full)
        show_figure(fig, key="abl-shapley", data=data, filename=f"{cohort.name}-ablation-shapley-{metric}")
    if right is not None:
        with right:
            table, rho = modality_recovery(truth, t["shapley"])
            fig, data = views.planted_vs_shapley_figure(table, rho)
            show_figure(fig, key="abl-planted", data=data, filename=f"{cohort.name}-ablation-planted-vs-shapley-{metric}")
            st.caption(f"Synthetic cohort, so the truth is known: Spearman ρ = {rho:.2f} between each modality's planted contribution "
                       "(sum of its features' planted effects, logit scale) and its Shapley value. Shares make the two scales comparable; # is the rank.")
    st.caption("A modality's Shapley value is its average gain over every order in which the modalities could be added, computed from all "
               f"{len(result.subset_labels)} subsets fold by fold, so the values add up exactly to the full model's gain above chance. Modalities that "
               "carry the same information share the credit. Error bars: 95% CI (corrected resampled t-test across folds).")
    shown, formats = _readable(t["shapley"].rename(index=MODALITY_LABELS), ("value", "share", "ci_low", "ci_high"))
    st.dataframe(shown, width="stretch", column_config=formats)


# --- all subsets ----------------------------------------------------------------------------------


def subsets_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader(f"All {len(result.subset_labels)} subsets")
    t = summary_tables(result, result.digest, metric)
    fig, data = views.lattice_figure(t["subsets"], result.modalities)
    show_figure(fig, key="abl-lattice", data=data, filename=f"{cohort.name}-ablation-subsets-{metric}")
    st.caption("Each column is one subset of modalities (dots below), fitted on the same folds as every other; the point is its mean over the folds "
               "with a 95% CI. Hover for the paired change against the full model and its Holm p-value.")


# --- permutation test -------------------------------------------------------------------------------


def permutation_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader("Is the full model better than chance?")
    perm = summary_tables(result, result.digest, metric)["permutation"]
    if not perm["n_permutations"]:
        st.info("This run has no permutations: set **Permutations** above 0 and run again.")
        return
    left, right = st.columns([3, 2])
    with left:
        fig, data = views.permutation_figure(perm)
        show_figure(fig, key="abl-permutation", data=data, filename=f"{cohort.name}-ablation-permutations-{metric}")
    right.metric("p-value", f"{perm['p_value']:.3f}", help="Smallest possible: 1 / (permutations + 1).")
    right.metric(f"Observed {METRICS[metric].label}", f"{perm['observed']:.3f}")
    right.metric("With permuted labels", f"{perm['null_mean']:.3f}", help="Mean over the permutations; the dashed line marks the value 5% of them reach.")
    right.caption(f"The outcome is shuffled across patients, folds are rebuilt and the full model refitted, {perm['n_permutations']} times; p = (1 + permutations "
               f"at least as good as observed) / (1 + permutations) = (1 + {perm['count']}) / {1 + perm['n_permutations']}. Observed: mean over the first "
               "repeat's folds, computed like each permuted value.")


# --- cost / benefit ----------------------------------------------------------------------------------


def _cost_base(modalities: list[str]) -> pd.DataFrame:
    saved = state.session_store(_COSTS_KEY, lambda: {m: dict(v) for m, v in EXAMPLE_COSTS.items()})
    rows = [{"modality": views.SHORT_NAMES.get(m, m), **saved.get(m, EXAMPLE_COSTS.get(m, dict.fromkeys(COST_COLUMNS, 0.0)))} for m in modalities]
    return pd.DataFrame(rows, index=modalities)


def _editor_key(modalities: list[str]) -> str:
    return "abl-costs-" + "-".join(modalities)


def _editor_base(modalities: list[str]) -> pd.DataFrame:
    """The table the cost editor starts from: fixed while the editor lives (its edits are relative
    to it), rebuilt from the last costs when the editor is new (first visit, back from another page)."""
    key = _editor_key(modalities)
    bases = state.session_store(_COST_BASE_KEY)
    if state.widget_value(key) is None or key not in bases:
        bases[key] = _cost_base(modalities)
    return bases[key]


def cost_table(modalities: list[str]) -> pd.DataFrame:
    """The cost table as the user left it: its base plus edits the editor has not drawn yet in this run."""
    key = _editor_key(modalities)
    table = _editor_base(modalities).copy()
    for row, edits in (state.widget_value(key) or {}).get("edited_rows", {}).items():
        for column, value in edits.items():
            if column in COST_COLUMNS:
                table.iloc[int(row), table.columns.get_loc(column)] = np.nan if value is None else value
    return table


def modality_costs(modalities: list[str], measure: str | None = None) -> dict:
    """Cost per modality in the chosen measure (default: the one chosen on the page)."""
    measure = measure or state.session_store(_SETTINGS_KEY).get("abl-cost-measure", "time")
    table = cost_table(modalities)
    values = table["scanner_min"] + table["lab_min"] if measure == "time" else table[measure]
    return {m: float(v) if pd.notna(v) else np.nan for m, v in values.items()}


def cost_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader("Cost and benefit")
    left, right = st.columns([2, 3])
    with left:
        edited = st.data_editor(
            _editor_base(result.modalities), key=_editor_key(result.modalities), hide_index=True, num_rows="fixed", width="stretch", disabled=["modality"],
            column_config={"modality": st.column_config.TextColumn("Modality"),
                           **{c: st.column_config.NumberColumn(label, min_value=0.0, step=1.0, format="%g") for c, label in COST_COLUMNS.items()}},
        )  # fmt: skip
        saved = state.session_store(_COSTS_KEY, lambda: {m: dict(v) for m, v in EXAMPLE_COSTS.items()})
        for m, row in edited.iterrows():
            saved[m] = {c: row[c] for c in COST_COLUMNS}
        measure = remembered(st.radio, "Cost to weigh", list(COST_MEASURES), key="abl-cost-measure", default="time", format_func=COST_MEASURES.get)
        st.caption("The numbers are **examples**, not quotes: about 15 min of scanner time for a diffusion sequence with set-up, 40 min for a TMS/EMG "
                   "session, 30 min for instrumented reaching, 20 min for clinical scales; prices are illustrative. Enter your clinic's own; "
                   "a subset costs the sum of its modalities.")
    costs = modality_costs(result.modalities, measure)
    table = pareto_table(result, result.digest, metric, tuple(sorted(costs.items())))
    with right:
        fig, data = views.pareto_figure(table, COST_MEASURES[measure])
        show_figure(fig, key="abl-pareto", data=data, filename=f"{cohort.name}-ablation-pareto-{metric}")
    front = table[table["pareto"]]
    st.caption(f"Pareto front (blue): the {len(front)} subsets that no other subset beats on both cost and mean {METRICS[metric].label}: "
               + "; ".join(f"{views.subset_name(s)} ({c:g})" for s, c in zip(front["subset"], front["cost"]))
               + ". Compare intervals before dropping a modality: the front ranks means, and neighbours often overlap.")


# --- exports --------------------------------------------------------------------------------------


def export_panel(cohort: Cohort, result: AblationResult, metric: str) -> None:
    st.subheader("Export")
    c = st.columns(3)
    c[0].download_button("Per-fold scores of every subset (CSV)", result.scores.to_csv(index=False).encode(), f"{cohort.name}-ablation-{result.digest}-scores.csv",
                         "text/csv", key="abl-dl-scores", icon=":material/download:")
    c[1].download_button("Permutation scores (CSV)", result.permutation_scores.to_csv(index=False).encode(), f"{cohort.name}-ablation-{result.digest}-permutations.csv",
                         "text/csv", key="abl-dl-permutations", icon=":material/download:")
    _, meta = result.to_frames()
    c[2].download_button("Run settings (JSON)", json.dumps({"cohort": cohort.name, **meta}, indent=1, default=str).encode(), f"{cohort.name}-ablation-{result.digest}.json",
                         "application/json", key="abl-dl-settings", icon=":material/description:")
    st.caption("Every figure exports as PNG or SVG (camera button; format in the sidebar) and the numbers behind it as CSV (button under it). "
               "The per-fold scores hold every metric, so any table here can be recomputed from them.")
