"""Ablation page: what each data source adds. Every modality subset on the same folds, paired
comparisons, modality Shapley values, a permutation test and cost against performance."""

import streamlit as st

from components import state
from components.guard import guarded
from components.panels import ablation as panels
from components.panels import jobs
from core.ablation.config import AblationConfig, ablation_digest
from core.data.schema import OUTCOME_LABELS
from core.errors import InputError
from core.evaluation.metrics import METRICS, metrics_for

cohort = state.cohort_page("pages/ablation.py", "Modality ablation")

keep = panels.remembered
c = st.columns([3, 1, 1, 1, 2], vertical_alignment="bottom")
outcome = keep(c[0].radio, "Outcome", list(OUTCOME_LABELS), key="abl-outcome", default="responder", format_func=OUTCOME_LABELS.get, horizontal=True)
n_repeats = int(keep(c[1].number_input, "Repeats", 1, 50, key="abl-repeats", default=2, help="Each repeat reshuffles the K folds. More repeats give tighter intervals and take longer (5 matches the Prediction page). With 2, a change of a few thousandths of AUC can come out significant by the luck of the folds: confirm small effects with 5."))
n_splits = int(keep(c[2].number_input, "Folds", 2, 10, key="abl-folds", default=5))
n_permutations = int(keep(c[3].number_input, "Permutations", 0, 1000, key="abl-permutations", default=20, step=10,
                          help="Label permutations for the test of the full model against chance; each refits it on one repeat of K folds. 0 skips the test; 100 resolves p down to 0.01."))
with st.expander("More settings", icon=":material/tune:"):
    e = st.columns(2)
    seed = int(keep(e[0].number_input, "Seed (folds and permutations)", 0, 2**31 - 1, key="abl-seed", default=0))
    group_by_site = keep(e[1].radio, "Keep each site within one fold", ["auto", "never"], key="abl-group", default="auto", horizontal=True,
                         format_func={"auto": "when there are at least K sites", "never": "never"}.get)

try:
    config = AblationConfig(outcome=outcome, n_splits=n_splits, n_repeats=n_repeats, seed=seed, group_by_site=group_by_site, n_permutations=n_permutations)
except InputError as exc:
    st.error(str(exc))
    st.stop()
digest = ablation_digest(cohort, config)
try:
    result = state.saved_ablation_run(digest)
except InputError as exc:  # a stored run that cannot be read: say so, and offer to run it again
    st.error(str(exc))
    result = None
job = jobs.active("ablation", digest)  # the run is a background job: reattach to it
partial = result is not None and not result.is_complete
n_subsets = 2 ** len(cohort.modalities) - 1
n_fits = n_subsets * n_splits * n_repeats + n_permutations * n_splits
if partial:
    label = "Resume ({} of {} fits done)".format(*result.progress())
else:
    label = f"Run ablation ({n_fits} fits)"
clicked = c[4].button(label, type="primary", key="abl-run", icon=":material/play_arrow:" if not partial else ":material/play_circle:", disabled=job is not None,
                      help=f"{n_subsets} subsets x {n_repeats} x {n_splits} folds, plus {n_permutations} permutations x {n_splits} folds of the full model.")

if clicked and result is not None and not partial:
    st.success(f"Loaded saved run `{digest}`: same cohort and settings, so nothing was refitted.", icon=":material/inventory_2:")
elif clicked and job is None:
    job = panels.start(cohort, config)
if job is not None:
    panels.run_progress(job, config, resume=result if partial else None)  # reruns the page once the run is stored
    st.stop()

if result is None or partial:
    jobs.finished_notice(jobs.latest("ablation", digest))  # the error of a failed job, what a cancelled one kept
if result is None:
    st.info(f"No saved run for {OUTCOME_LABELS[outcome].lower()} with these settings yet: press **Run ablation**. "
            "A run is saved in the workspace and comes back at once, also after a restart. It runs in the background: closing the tab does not stop it, "
            "**Cancel** keeps the fits already finished, and **Resume** completes the run later without refitting them.", icon=":material/info:")
    st.stop()
if partial:
    panels.partial_notice(result)
    st.stop()

source = "run and saved" if jobs.made_here("ablation", digest) else "loaded saved run"
done, total = result.progress()
c = st.columns([1, 2], vertical_alignment="bottom")
options = metrics_for(outcome)
metric = keep(c[0].selectbox, "Metric", options, key=f"abl-metric-{outcome}", default=options[0], format_func=lambda m: METRICS[m].label,
              help="Every metric was scored in the same run: switching refits nothing.")
c[1].caption(f"Run `{digest}` ({source}) · {result.meta.get('n_patients', cohort.n_patients)} patients · validation: {result.meta.get('scheme', '')} · "
             f"{total} model fits · every subset on the same folds")

for panel in (panels.headline, panels.shapley_panel, panels.comparisons_panel, panels.subsets_panel, panels.permutation_panel, panels.cost_panel, panels.export_panel):
    guarded(panel, cohort, result, metric)
