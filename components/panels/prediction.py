"""Panels of the Prediction page: performance, explanations, what-if, ground truth and exports.

The numbers come from :mod:`core.evaluation` (score table, CI tables, spread across repeats, the
model report); this module caches them under the run digest
(:func:`core.modelling.validation.run_digest`), which covers the cohort's content digest and every
setting of the run. Big objects are passed as ``_underscore`` arguments so Streamlit never hashes them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import streamlit as st

from components import state
from components.figures import brain_slice_viewer, clear_modebar_strip, column_label, show_figure
from components.panels import cohort as cohort_panels
from components.panels import jobs
from components.views import prediction as views
from components.views.slices import ras_grid
from core.data.cohort import Cohort
from core.data.schema import FEATURE_DESCRIPTIONS, MODALITY_LABELS, modality_of
from core.evaluation import performance
from core.evaluation.ground_truth import cause_recovery, importance_recovery, top_k_recall
from core.evaluation.metrics import METRICS, binary_metrics, confusion_at, decision_curve, expected_calibration_error, roc_auc
from core.evaluation.performance import CLINICAL, MODEL, MODEL_STROKE, N_BOOT, PREP2
from core.evaluation.report import ci_table, model_report_html, prediction_table
from core.jobs import Job, cv_job, learning_curves_job
from core.modelling.validation import CVResult, CVSettings
from core.modelling.whatif import IMMUTABLE_FEATURES, WhatIf

THRESHOLD_KEY = "pred-threshold"
EDITS_KEY = "prediction.whatif_edits"
VIEW_KEY = "view"  # the open tab of the Prediction page, also its query parameter (?view=What-if)


MODEL_LABELS = {"xgboost": "xgboost (engineered features)", "fusion": "Deep fusion (raw data)", "stacked": "Stacked (xgboost + fusion)"}
MODEL_NAMES = {"xgboost": "xgboost", "fusion": "Deep fusion", "stacked": "Stacked"}  # short: in sentences, legends and tick labels


def model_settings(model: str = "xgboost") -> dict:
    """Settings of the chosen model a user may change (:class:`CVSettings` fields), each as chosen."""
    defaults, limits = CVSettings(), CVSettings.LIMITS
    chosen = {}
    if model in ("xgboost", "stacked"):
        if model == "stacked":
            st.caption("xgboost on top of the features and the fusion model's log-odds")
        c = st.columns(4)
        chosen.update({
            "max_depth": c[0].number_input("Tree depth", *limits["max_depth"], defaults.max_depth, key="pred-depth"),
            "learning_rate": c[1].number_input("Learning rate", *limits["learning_rate"], defaults.learning_rate, 0.005, format="%.3f", key="pred-eta"),
            "n_estimators": c[2].number_input("Most trees", *limits["n_estimators"], defaults.n_estimators, 50, key="pred-trees", help="Early stopping on an inner split of each training fold picks how many are used."),
            "early_stopping_rounds": c[3].number_input("Early-stopping patience (trees)", *limits["early_stopping_rounds"], defaults.early_stopping_rounds, 5, key="pred-patience"),
        })  # fmt: skip
    if model in ("fusion", "stacked"):
        c = st.columns(3)
        chosen["fusion"] = c[0].selectbox("Fusion", CVSettings.FUSIONS, key="pred-fusion",
                                          help="intermediate: one head on the joined branch embeddings; late: the mean of one head per branch.")
        chosen["max_epochs"] = int(c[1].number_input("Most epochs", *limits["max_epochs"], defaults.max_epochs, key="pred-epochs",
                                                     help="Early stopping on an inner split of each training fold picks the epoch used."))
        if model == "stacked":
            chosen["inner_splits"] = int(c[2].number_input("Inner folds", *limits["inner_splits"], defaults.inner_splits, key="pred-inner-folds",
                                                           help="Inside each training fold, the training patients' fusion log-odds come from this many inner folds (nested)."))
    return chosen


def start_training(cohort: Cohort, settings: CVSettings) -> Job:
    """Submit the cross-validation of ``settings`` as a background job (:func:`core.jobs.cv_job`):
    it runs :meth:`core.store.Workspace.train_cv`, as ``python -m core train`` does, and stores the run."""
    params, run = cv_job(cohort, settings, cohort_workspace=jobs.cohort_workspace())
    return jobs.submit("cv", params, run)


def training_progress(job: Job, settings: CVSettings) -> None:
    """The training job's progress and Cancel; deep models also show each fold's loss curves as they train."""
    deep = settings.model != "xgboost"
    jobs.progress_panel(job, f"Training {MODEL_LABELS[settings.model]}: {settings.n_repeats} x {settings.n_splits}-fold cross-validation",
                        detail=_loss_curves if deep else None,
                        cancel_help="Stops after the current epoch; finished folds are kept and Train resumes from them." if deep
                        else "Stops after the folds under way; finished folds are kept and Train resumes from them.")


def _loss_curves(job: Job) -> None:
    losses = job.detail.get("losses")
    if losses:
        fig, _ = views.loss_curves_figure(pd.DataFrame(losses))
        st.plotly_chart(clear_modebar_strip(fig), config={"displaylogo": False}, key=f"pred-job-losses-{job.id}")


def training_history(result: CVResult) -> pd.DataFrame:
    """Loss per epoch of every fold's fusion network (the stacked model's outer fusion models)."""
    frames = []
    for fold, model in zip(result.folds, result.fold_models):
        network = model if result.model == "fusion" else model.fusion_
        frames.append(network.history_.assign(fold=f"repeat {fold.repeat + 1}, fold {fold.fold + 1}"))
    return pd.concat(frames, ignore_index=True)


# --- derived tables, cached by run digest ---------------------------------------------------------


@state.user_cache_data(max_entries=8, show_spinner="Scoring the baselines on the same folds ...")
def scores(_cohort: Cohort, _result: CVResult, run: str) -> pd.DataFrame:
    """:func:`core.evaluation.performance.score_table` of the run."""
    return performance.score_table(_cohort, _result)


@state.user_cache_data(max_entries=24, show_spinner="Bootstrapping 95% intervals ...")
def binary_ci(_s: pd.DataFrame, run: str, threshold: float) -> dict:
    """:func:`core.evaluation.performance.binary_ci_tables` of the run at ``threshold``."""
    return performance.binary_ci_tables(_s, threshold, n_boot=N_BOOT)


@state.user_cache_data(max_entries=8, show_spinner="Bootstrapping 95% intervals ...")
def regression_ci(_s: pd.DataFrame, run: str) -> dict:
    """:func:`core.evaluation.performance.regression_ci_tables` of the run."""
    return performance.regression_ci_tables(_s, n_boot=N_BOOT)


@state.user_cache_data(max_entries=8, show_spinner=False)
def repeat_spread(_result: CVResult, _observed: pd.Series, run: str) -> tuple[pd.Series, pd.DataFrame]:
    """:func:`core.evaluation.performance.repeat_spread`: each repeat's AUC or R², and their spread."""
    return performance.repeat_spread(_result, _observed)


@state.user_cache_data(max_entries=8, show_spinner="Writing the model report ...")
def report_html(_cohort: Cohort, _result: CVResult, run: str, threshold: float) -> str:
    """:func:`core.evaluation.report.model_report_html` of the run at ``threshold``, from the cached score table."""
    return model_report_html(_cohort, _result, run, threshold=threshold, n_boot=N_BOOT, scores=scores(_cohort, _result, run))


def _spread_metric(col, row: pd.Series, name: str) -> None:
    """Mean of a figure over repeats, with its SD and range underneath (a description, not a CI)."""
    col.metric(f"{name} across repeats", f"{row['mean']:.3f}", help=f"Mean of each repeat's out-of-fold {name}; the SD shows how much it moves with another split. Folds share patients, so it is not a CI.")
    col.caption((f"SD {row['sd']:.3f} · " if row["n"] > 1 else "") + f"min {row['min']:.3f} · max {row['max']:.3f} · {int(row['n'])} repeats")


def _ci_caption(table: pd.DataFrame, metric: str, digits: int = 3) -> str:
    row = table.loc[metric]
    return f"95% CI {row['ci_low']:.{digits}f} – {row['ci_high']:.{digits}f}" if np.isfinite(row["ci_low"]) else "no interval"


# --- performance -------------------------------------------------------------------------------


def performance_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    if result.is_binary:
        _binary_performance(cohort, result, run)
    else:
        _continuous_performance(cohort, result, run)


def _binary_performance(cohort: Cohort, result: CVResult, run: str) -> None:
    s = scores(cohort, result, run)
    y = s["observed"]
    ci = binary_ci(s, run, 0.5)
    per_repeat, spread = repeat_spread(result, y, run)
    stroke = performance.prep2_usable(s)
    m = st.columns(4)
    m[0].metric("OOF AUC", f"{ci[MODEL].loc['auc', 'estimate']:.3f}", help="ROC AUC of the out-of-fold predictions (mean over repeats).")
    m[0].caption(_ci_caption(ci[MODEL], "auc") + f" · {len(y)} patients")
    m[1].metric("Clinical baseline AUC", f"{ci[CLINICAL].loc['auc', 'estimate']:.3f}", help="Logistic regression on the clin.* features, trained on the same folds.")
    m[1].caption(_ci_caption(ci[CLINICAL], "auc"))
    if stroke is not None:
        m[2].metric("PREP2 AUC (stroke)", f"{ci[PREP2].loc['auc', 'estimate']:.3f}", help="The published PREP2 rule's category as a score; not trained, so no folds.")
        m[2].caption(f"{_ci_caption(ci[PREP2], 'auc')} · model on the same {int(stroke.sum())}: {ci[MODEL_STROKE].loc['auc', 'estimate']:.3f}")
    else:
        m[2].metric("PREP2 AUC (stroke)", "—", help="Needs at least 10 stroke patients with PREP2's inputs, of both classes.")
    _spread_metric(m[3], spread.loc["auc"], "AUC")

    series = {MODEL: (y, s["model"]), CLINICAL: (y, s["clinical"])}
    aucs = {MODEL: ci[MODEL].loc["auc", "estimate"], CLINICAL: ci[CLINICAL].loc["auc", "estimate"]}
    if stroke is not None:
        series[PREP2] = (y[stroke], s.loc[stroke, "prep2_score"])
        aucs[PREP2] = ci[PREP2].loc["auc", "estimate"]
    left, right = st.columns(2)
    with left:
        fig, data = views.roc_figure(series, aucs)
        show_figure(fig, key="pred-roc", data=data, filename=f"{cohort.name}-roc")
    with right:
        fig, data = views.pr_figure(series)
        show_figure(fig, key="pred-pr", data=data, filename=f"{cohort.name}-precision-recall")
    left, right = st.columns(2)
    with left:
        ece = expected_calibration_error(y, s["model"])
        fig, data = views.calibration_figure(y, s["model"], ece)
        show_figure(fig, key="pred-calibration", data=data, filename=f"{cohort.name}-calibration")
    with right:
        curves = {MODEL: decision_curve(y, s["model"]), CLINICAL: decision_curve(y, s["clinical"])}
        fig, data = views.decision_curve_figure(curves)
        show_figure(fig, key="pred-decision", data=data, filename=f"{cohort.name}-decision-curve")
    _threshold_panel(s, run)
    st.markdown("**Spread across repeats** (each repeat is a full out-of-fold pass with its own split)")
    fig, data = views.repeat_spread_figure(per_repeat, "AUC")
    show_figure(fig, key="pred-repeats", data=data, filename=f"{cohort.name}-auc-per-repeat")


@st.fragment
def _threshold_panel(s: pd.DataFrame, run: str) -> None:
    """Threshold slider, confusion matrix and the metric table at that threshold (reruns alone)."""
    st.markdown("**At a decision threshold**")
    threshold = st.slider("Decision threshold (predicted probability of response)", 0.05, 0.95, 0.5, 0.01, key=THRESHOLD_KEY)
    y, p = s["observed"], s["model"]
    left, right = st.columns([3, 2])
    with left:
        fig, data = views.confusion_matrix_figure(confusion_at(y, p, threshold), threshold)
        show_figure(fig, key="pred-confusion", data=data, filename=f"confusion-at-{threshold:.2f}")
    with right:
        at = binary_metrics(y, p, threshold)
        c = st.columns(2)
        for i, (name, label) in enumerate((("sensitivity", "Sensitivity"), ("specificity", "Specificity"), ("ppv", "PPV"), ("npv", "NPV"))):
            c[i % 2].metric(label, "—" if not np.isfinite(at[name]) else f"{at[name]:.3f}")
        st.caption("PPV: responders among those predicted to respond; NPV: non-responders among those predicted not to.")
    table = ci_table(binary_ci(s, run, round(threshold, 2)))
    st.dataframe(table, width="stretch")
    st.caption(f"Out-of-fold predictions; percentile bootstrap over patients ({N_BOOT} resamples, stratified by class). Threshold-dependent rows at {threshold:.2f}; "
               "PREP2 calls a responder at Good or Excellent (score scaled 0-1), and its categories carry no calibration.")


def _continuous_performance(cohort: Cohort, result: CVResult, run: str) -> None:
    s = scores(cohort, result, run)
    ci = regression_ci(s, run)
    per_repeat, spread = repeat_spread(result, s["observed"], run)
    m = st.columns(5)
    for col, (metric, digits) in zip(m, (("mae", 1), ("rmse", 1), ("r2", 3), ("pearson_r", 3))):
        col.metric(METRICS[metric].label, f"{ci[MODEL].loc[metric, 'estimate']:.{digits}f}")
        col.caption(_ci_caption(ci[MODEL], metric, digits) + f" · clinical {ci[CLINICAL].loc[metric, 'estimate']:.{digits}f}")
    _spread_metric(m[4], spread.loc["r2"], "R²")
    left, right = st.columns(2)
    with left:
        fig, data = views.predicted_vs_actual_figure(s["observed"], s["model"], s["indication"], cohort.responder_threshold_pct)
        show_figure(fig, key="pred-scatter", data=data, filename=f"{cohort.name}-predicted-vs-observed")
    with right:
        fig, data = views.residuals_figure(s["observed"], s["model"])
        show_figure(fig, key="pred-residuals", data=data, filename=f"{cohort.name}-residuals")
    st.dataframe(ci_table(ci, digits=3), width="stretch")
    st.caption(f"Out-of-fold predictions; percentile bootstrap over patients ({N_BOOT} resamples). The clinical baseline is a ridge regression on clin.* features, on the same folds.")
    st.markdown("**Spread across repeats** (each repeat is a full out-of-fold pass with its own split)")
    fig, data = views.repeat_spread_figure(per_repeat, "R²")
    show_figure(fig, key="pred-repeats", data=data, filename=f"{cohort.name}-r2-per-repeat")


# --- explanations ------------------------------------------------------------------------------


def _prediction_text(result: CVResult, value: float) -> str:
    return f"{value:.3f}" if result.is_binary else f"{value:.1f}%"


def explanations_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    explanation = result.explanation
    st.caption(f"Out-of-fold SHAP values (exact TreeSHAP, in {explanation.unit}), averaged over repeats: each patient is explained only by models that never saw them.")
    fig, data = views.beeswarm_figure(explanation)
    show_figure(fig, key="pred-beeswarm", data=data, filename=f"{cohort.name}-shap-beeswarm")
    left, right = st.columns([3, 2])
    with left:
        fig, data = views.importance_figure(explanation)
        show_figure(fig, key="pred-importance", data=data, filename=f"{cohort.name}-shap-importance")
    with right:
        fig, data = views.modality_importance_figure(explanation)
        show_figure(fig, key="pred-modality-importance", data=data, filename=f"{cohort.name}-shap-importance-by-modality")

    st.markdown("**Dependence**: how one feature's value moves its SHAP value")
    feature = st.selectbox("Feature", list(result.importance().index), key="pred-dep-feature", format_func=column_label)
    partner, strength = views.strongest_partner(result.interaction, list(result.features), feature)
    fig, data = views.dependence_figure(explanation, feature, result.interaction)
    show_figure(fig, key="pred-dependence", data=data, filename=f"{cohort.name}-dependence-{feature}")
    if partner:
        st.caption(f"Colour: {partner}, the feature with the largest mean |SHAP interaction| with {feature} ({strength.iloc[0]:.3f}; first repeat's out-of-fold interaction values).")

    st.markdown("**One patient**: from the average prediction to this patient's")
    s = scores(cohort, result, run)
    patient = st.selectbox("Patient", list(cohort.features.index), key=f"pred-wf-patient-{result.outcome}",
                           format_func=lambda pid: f"{pid} · {s.at[pid, 'indication']} · {'responder' if s.at[pid, 'responder'] else 'non-responder'} · predicted {_prediction_text(result, s.at[pid, 'model'])}")
    fig, data = views.waterfall_figure(explanation[patient], title=patient)
    show_figure(fig, key="pred-waterfall", data=data, filename=f"{cohort.name}-waterfall-{patient}")
    if explanation.is_log_odds:
        st.caption(f"The bars sum to the mean out-of-fold log-odds. The page's prediction is the mean of the repeats' probabilities ({s.at[patient, 'model']:.3f}), which can differ slightly.")


# --- what-if --------------------------------------------------------------------------------------


@state.user_cache_resource(max_entries=4, show_spinner=False)
def _whatif(_result: CVResult, _features: pd.DataFrame, run: str) -> WhatIf:
    return WhatIf(_result, _features)


def _input_spec(low: float, high: float, binary: bool) -> dict:
    """Number-input bounds: the training range widened by half its span (so values outside it can be tried)."""
    if binary:
        return dict(min_value=0.0, max_value=1.0, step=1.0, format="%.0f")
    span = high - low if high > low else max(abs(high), 1.0)
    decimals = int(min(6, max(0, 3 - math.floor(math.log10(span)))))
    lower = low - span / 2
    return dict(min_value=float(max(0.0, lower) if low >= 0 else lower), max_value=float(high + span / 2), step=10.0**-decimals, format=f"%.{decimals}f")


def whatif_key(patient_id: str, feature: str) -> str:
    return f"wi-{patient_id}-{feature}"


@state.user_cache_resource(max_entries=4, show_spinner=False)
def _editor_inputs(_wi: WhatIf, run: str) -> dict:
    """Per modality, per feature: number-input arguments and help, built once per run, not per edit."""
    inputs = {}
    for feature in _wi.features.columns:
        low, high = float(_wi.low[feature]), float(_wi.high[feature])
        binary = set(_wi.features[feature].dropna().unique()) <= {0.0, 1.0}
        help_text = f"{FEATURE_DESCRIPTIONS.get(feature, feature)}. Seen in training: {low:.4g} – {high:.4g}." + (" Empty = missing." if not binary else "")
        inputs.setdefault(modality_of(feature), {})[feature] = (_input_spec(low, high, binary), help_text)
    return {m: inputs[m] for m in MODALITY_LABELS if m in inputs}


def _same(a, b) -> bool:
    return (a is None or pd.isna(a)) if (b is None or pd.isna(b)) else (a is not None and not pd.isna(a) and float(a) == float(b))


def patient_edits(patient_id: str) -> dict:
    """This session's edits of one patient, ``{feature: value or None}``.

    Kept apart from the inputs' own state: only one modality's inputs are drawn at a time, and
    Streamlit forgets the state of inputs it did not draw.
    """
    return state.session_store(EDITS_KEY).setdefault(patient_id, {})


def _store_edit(patient_id: str, feature: str, original: float) -> None:
    value, edits = state.widget_value(whatif_key(patient_id, feature)), patient_edits(patient_id)
    if _same(value, original):
        edits.pop(feature, None)
    else:
        edits[feature] = value


def _forget_edits(patient_id: str, features) -> None:
    edits = patient_edits(patient_id)
    for feature in list(features):
        edits.pop(feature, None)
        state.forget_widget(whatif_key(patient_id, feature))


def _feature_editor(wi: WhatIf, run: str, patient_id: str, unlock: bool) -> dict:
    """One modality's inputs at a time; returns every edit of the patient, across modalities."""
    if not unlock:  # locking again restores the patient's own age, sex and indication
        _forget_edits(patient_id, IMMUTABLE_FEATURES)
    original, edits = wi.features.loc[patient_id], patient_edits(patient_id)
    inputs = _editor_inputs(wi, run)
    c = st.columns([4, 1], vertical_alignment="bottom")
    # One modality drawn, not all in tabs: a third of the inputs to rerun and redraw on every edit.
    modality = c[0].segmented_control("Inputs", list(inputs), format_func=MODALITY_LABELS.get, key="wi-modality", required=True, default=next(iter(inputs)),
                                      help="Edits in every modality count; the caption below the inputs lists them all.")
    c[1].button("Reset edits", key="wi-reset", on_click=_forget_edits, args=(patient_id, list(edits)), disabled=not edits, icon=":material/undo:", width="stretch")
    cols = st.columns(3)
    for i, (feature, (spec, help_text)) in enumerate(inputs[modality].items()):
        value = edits[feature] if feature in edits else original[feature]
        locked = feature in IMMUTABLE_FEATURES and not unlock
        cols[i % 3].number_input(
            feature.split(".", 1)[1], value=None if value is None or pd.isna(value) else float(value), key=whatif_key(patient_id, feature), disabled=locked,
            placeholder="missing", on_change=_store_edit, args=(patient_id, feature, original[feature]),
            help=help_text + (" Locked: a fact about the patient." if locked else ""), **spec,
        )
    return dict(edits)


@state.user_cache_data(max_entries=4, show_spinner=False)
def patient_labels(_s: pd.DataFrame, _result: CVResult, run: str) -> dict:
    """Picker label of every patient, built once per run: the what-if rerun on every edit must not."""
    return {
        pid: f"{pid} · {row.indication} · {'responder' if row.responder else 'non-responder'} · OOF {_prediction_text(_result, row.model)} · error {row.error:.2f}"
        for pid, row in zip(_s.index, _s[["indication", "responder", "model", "error"]].itertuples(index=False))
    }


@st.fragment
def whatif_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    """Pick a patient, edit their values, compare baseline and edited predictions and explanations.

    Widgets whose labels or ranges depend on the outcome are keyed by it, so switching the outcome
    never shows a stale label or an error range of the other outcome.
    """
    s = scores(cohort, result, run)
    c = st.columns([1, 1, 2])
    indication = c[0].selectbox("Indication", ["all", *sorted(s["indication"].astype(str).unique())], key="wi-indication")
    responder = c[1].selectbox("Observed", ["all", "responders", "non-responders"], key="wi-responder")
    top = 1.0 if result.is_binary else float(math.ceil(s["error"].max()))
    label = "Prediction error |OOF probability - label|" if result.is_binary else "Prediction error |predicted - observed| (% points)"
    low, high = c[2].slider(label, 0.0, top, (0.0, top), 0.01 if result.is_binary else 1.0, key=f"wi-error-{result.outcome}")
    keep = s["error"].between(low, high)
    if indication != "all":
        keep &= s["indication"].astype(str) == indication
    if responder != "all":
        keep &= s["responder"] == (responder == "responders")
    ids = list(s.index[keep])
    if not ids:
        st.info("No patient matches these filters.")
        return
    labels = patient_labels(s, result, run)
    patient = st.selectbox(f"Patient ({len(ids)} match)", ids, key=f"wi-patient-{result.outcome}", format_func=labels.get)
    _whatif_scenarios(cohort, result, run, patient)


@st.fragment
def _whatif_scenarios(cohort: Cohort, result: CVResult, run: str, patient: str) -> None:
    """One patient's editor, predictions and waterfalls: an edit reruns only this, not the filters and picker."""
    wi = _whatif(result, cohort.features, run)
    s = scores(cohort, result, run)
    unlock = st.toggle("Unlock age, sex and indication", key="wi-unlock", help="Facts about a patient, not levers: locked unless you want to ask 'what if this patient were older'.")
    changes = _feature_editor(wi, run, patient, unlock)
    base, edited = wi.scenario(patient), wi.scenario(patient, changes)
    n_models = len(wi.models_for(patient))
    observed = s.at[patient, "observed"]
    st.caption(f"Observed: {'responder' if s.at[patient, 'responder'] else 'non-responder'} (improvement {cohort.outcomes.at[patient, 'improvement_pct']:.0f}%). "
               f"Predicted by the {n_models} cross-validation models that never saw this patient (one per repeat)." + ("" if result.is_binary else f" Observed improvement {observed:.1f}%."))
    if changes:
        st.caption("Changed: " + "; ".join(f"{f}: {_fmt(wi.features.at[patient, f])} → {_fmt(v)}" for f, v in changes.items()))
    if edited.out_of_range:
        st.warning("Outside the range seen in training, so the trees extrapolate flat from their edge: "
                   + ", ".join(f"{f} = {_fmt(changes.get(f, wi.features.at[patient, f]))} (seen {wi.low[f]:.4g} – {wi.high[f]:.4g})" for f in edited.out_of_range))
    x_range = views.waterfall_range([base.explanation, edited.explanation])
    left, right = st.columns(2)
    for col, name, scenario in ((left, "Baseline", base), (right, "Edited", edited)):
        with col:
            change = scenario.prediction - base.prediction
            neutral = scenario is base or not changes  # a grey badge on both sides keeps them aligned
            delta = ("out-of-fold prediction" if scenario is base else "no change") if neutral else (f"{change:+.3f}" if result.is_binary else f"{change:+.1f}")
            col.metric(f"{name} prediction", _prediction_text(result, scenario.prediction), delta=delta, delta_color="off" if neutral else "normal", delta_arrow="off" if neutral else "auto",
                       help="Probability of response: mean over the models" if result.is_binary else "Predicted improvement: mean over the models")
            col.caption(f"Range across the {n_models} models: {_prediction_text(result, scenario.spread[0])} – {_prediction_text(result, scenario.spread[1])}")
            fig, data = views.waterfall_figure(scenario.explanation, title=name, x_range=x_range)
            show_figure(fig, key=f"wi-waterfall-{name.lower()}", data=data, filename=f"{patient}-whatif-{name.lower()}")
    if result.is_binary:
        st.caption("Waterfalls: SHAP values averaged over the models, in log-odds. The probability of that mean log-odds can differ slightly from the mean of the models' probabilities above.")


def _fmt(value) -> str:
    return "missing" if value is None or pd.isna(value) else f"{float(value):.4g}"


# --- ground truth -------------------------------------------------------------------------------


def ground_truth_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    truth = cohort.ground_truth
    if truth is None:
        st.info("Ground truth is known only for synthetic cohorts.")
        return
    s = scores(cohort, result, run)
    if s["responder"].nunique() < 2:
        st.info("AUCs need both responders and non-responders; this cohort has one class only.")
        oof_auc = bayes = None
    else:
        oof_auc = roc_auc(s["responder"], s["model"])
        bayes = cohort_panels.cached_bayes_auc(cohort, cohort.digest)
    c = st.columns(3)
    if oof_auc is not None:
        c[0].metric("Model AUC (out-of-fold)", f"{oof_auc:.3f}", help="Responder label against the out-of-fold prediction" + ("" if result.is_binary else " (predicted improvement used as the score)."))
    if bayes is not None:
        c[1].metric("Bayes-optimal AUC", f"{bayes[0]:.3f}", help="AUC of the true response probabilities: the ceiling for any model on this cohort.")
        c[1].caption(f"95% CI {bayes[1]:.3f} – {bayes[2]:.3f}")
        c[2].metric("Share of the ceiling reached", f"{oof_auc / bayes[0]:.3f}", help="Model AUC / Bayes-optimal AUC.")
    importance = result.importance()
    by_feature, rho = importance_recovery(truth, importance)
    by_cause, cause_rho = cause_recovery(truth, importance)
    recall = top_k_recall(truth, importance)
    m = st.columns(3)
    m[0].metric("Agreement by feature (Spearman ρ)", f"{rho:.2f}", help=f"Planted effect against mean |SHAP| over {len(by_feature)} features.")
    m[1].metric("Agreement by cause (Spearman ρ)", f"{cause_rho:.2f}", help=f"The same, with the features of each of the {len(by_cause)} causes summed.")
    m[2].metric(f"Planted features in the top {recall['k']}", f"{len(recall['found'])} of {recall['k']}",
                help="Of the features the outcome was planted on, how many are among the model's top features by mean |SHAP|. "
                     "Missing: " + (", ".join(sorted(set(recall["planted"]) - set(recall["found"]))) or "none") + ".")
    st.markdown(f"**Why the two differ.** SHAP splits a cause's credit among the correlated features that measure it (lesion load and FA "
                f"asymmetry take part of what was planted on affected-CST FA), so agreement by feature (ρ = {rho:.2f}) is lower than by cause "
                f"(ρ = {cause_rho:.2f}), where the shared credit adds up again.")
    left, right = st.columns(2)
    with left:
        show_figure(views.planted_vs_recovered(by_feature, rho, result.explanation.unit), key="pred-planted", data=by_feature, filename=f"{cohort.name}-planted-vs-recovered")
    with right:
        show_figure(views.cause_recovery_figure(by_cause, cause_rho, result.explanation.unit), key="pred-planted-causes", data=by_cause,
                    filename=f"{cohort.name}-planted-vs-recovered-by-cause")
    st.caption("The planted effect is the mean |exact Shapley value| of the outcome terms that read a feature (0 for features no term reads, "
               "such as lesion load or MEP latency, which measure the same causes less directly); a cause's is the sum over its features. "
               "A modality missing for many patients also loses some credit, so ρ < 1 even for a good model.")


# --- exports ----------------------------------------------------------------------------------


def export_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    s = scores(cohort, result, run)
    oof = prediction_table(result, s)
    c = st.columns(3)
    c[0].download_button("Out-of-fold predictions (CSV)", oof.to_csv().encode(), f"{cohort.name}-{result.outcome}-oof-predictions.csv", "text/csv", key="pred-dl-oof", icon=":material/download:")
    shap = result.explanation.to_frame()
    c[1].download_button("SHAP values (CSV)", shap.to_csv().encode(), f"{cohort.name}-{result.outcome}-shap.csv", "text/csv", key="pred-dl-shap", icon=":material/download:")
    c[2].download_button("Model report (HTML)", report_html(cohort, result, run, round(float(state.widget_value(THRESHOLD_KEY, 0.5)), 2)).encode(), f"{cohort.name}-{result.outcome}-model-report.html", "text/html", key="pred-dl-report", icon=":material/description:")
    st.caption("The report follows the TRIPOD+AI items that apply to an internally validated model: data source, outcome, predictors, missing data, "
               "model and early stopping, validation scheme, performance with 95% CIs, calibration.")


# --- deep models: explanations, what-if and ground truth of fusion and stacked runs ---------------


def views_for(result: CVResult, settings: CVSettings) -> dict:
    """The Prediction page's tabs for this run: xgboost and deep fusion runs have a what-if editor;
    a stacked run does not (its fusion input would have to be recomputed for every edit)."""
    compare = lambda cohort, result, run: compare_panel(cohort, result, settings)  # noqa: E731
    if result.model == "xgboost":
        return {"Performance": performance_panel, "Explanations": explanations_panel, "What-if": whatif_panel,
                "Ground truth": ground_truth_panel, "Compare models": compare, "Export": export_panel}
    if result.model == "fusion":
        return {"Performance": performance_panel, "Explanations": deep_explanations_panel, "What-if": fusion_whatif_panel,
                "Ground truth": deep_ground_truth_panel, "Compare models": compare, "Export": export_panel}
    return {"Performance": performance_panel, "Explanations": explanations_panel, "Ground truth": deep_ground_truth_panel,
            "Compare models": compare, "Export": export_panel}


@state.user_cache_resource(max_entries=2, show_spinner="Reading the cohort's raw-data tensors from the workspace ...")
def fusion_inputs(_cohort: Cohort, digest: str):
    """The cohort's cached raw-data tensors (built when missing)."""
    return state.workspace().fusion_inputs(_cohort)


def _design(cohort: Cohort):
    from core.modelling.fusion import fusion_design

    return fusion_design(cohort, fusion_inputs(cohort, cohort.digest))


@state.user_cache_data(max_entries=16, show_spinner="Integrated gradients of the FA branch ...")
def fa_saliency(_cohort: Cohort, _result: CVResult, run: str, patient: str) -> np.ndarray:
    """Mean over the fold models blind to the patient of their FA saliency (24, 11, 28), in log-odds."""
    design = _design(_cohort)
    position = list(design.patient_ids).index(patient)
    return np.mean([m.fa_saliency(design.take([position]))[0] for m in _result.models_blind_to(position)], axis=0)


@state.user_cache_data(max_entries=4, show_spinner="Where the FA branch looks, over 40 stroke patients with a lesion ...")
def saliency_summary(_cohort: Cohort, _result: CVResult, run: str) -> pd.DataFrame:
    """Mean over up to 40 lesioned patients of :func:`core.evaluation.ground_truth.saliency_regions`."""
    from core.evaluation.ground_truth import saliency_regions

    lesioned = [pid for pid in _cohort.patients.index if _cohort.patients.at[pid, "indication"] == "stroke"][:200]
    rows = []
    for pid in lesioned:
        raw = _cohort.raw_data(pid)
        if raw.fa is None or raw.lesion_mask is None or not raw.lesion_mask.any():
            continue
        table = saliency_regions(fa_saliency(_cohort, _result, run, pid), raw.lesion_mask, _cohort.patients.get("affected_hemisphere", pd.Series(dtype=str)).get(pid))
        rows.append(table.assign(patient_id=pid).reset_index())
        if len(rows) == 40:
            break
    if not rows:
        return pd.DataFrame()
    return pd.concat(rows).groupby("region")[["saliency_share", "volume_share", "enrichment"]].agg(["mean", "count"])


def deep_explanations_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    from core.features.tensors import FA_CROP_AFFINE, fa_crop

    explanation = result.explanation
    st.caption(f"Exact Shapley values of the four modalities (each knocked out and replaced by the network's learned missing-modality embedding), "
               f"in {explanation.unit}, out-of-fold and averaged over repeats.")
    left, right = st.columns([3, 2])
    with left:
        fig, data = views.beeswarm_figure(explanation)
        show_figure(fig, key="pred-deep-beeswarm", data=data, filename=f"{cohort.name}-fusion-modality-shapley")
    with right:
        fig, data = views.modality_importance_figure(explanation)
        show_figure(fig, key="pred-deep-modality-importance", data=data, filename=f"{cohort.name}-fusion-importance-by-modality")
    with st.expander("Training: loss per epoch of every fold", icon=":material/show_chart:"):
        fig, data = views.loss_curves_figure(training_history(result))
        show_figure(fig, key="pred-deep-loss", data=data, filename=f"{cohort.name}-fusion-loss-curves")

    st.markdown("**Where the FA branch looks**: integrated gradients of the log-odds over the FA map, with the patient's lesion")
    has_fa = [pid for pid, present in zip(explanation.index, explanation.data[:, 0]) if present]
    stroke = [pid for pid in has_fa if cohort.patients.at[pid, "indication"] == "stroke"] or has_fa
    if not stroke:
        st.info("No patient of this cohort has an FA map.")
        return
    patient = st.selectbox("Patient", stroke, key="pred-saliency-patient",
                           format_func=lambda pid: f"{pid} · {cohort.patients.at[pid, 'indication']} · OOF {result.prediction[pid]:.3f}")
    raw = cohort.raw_data(patient)
    saliency = fa_saliency(cohort, result, run, patient)
    lesion = None if raw.lesion_mask is None else fa_crop(raw.lesion_mask.astype(np.float32)) >= 0.5
    magnitude = np.abs(saliency)
    peak = float(magnitude.max()) or 1.0
    lesion = lesion if lesion is not None and lesion.any() else None
    background = fa_crop(raw.fa)
    brain_slice_viewer(background, FA_CROP_AFFINE, magnitude, lesion, key=f"pred-saliency-{patient}",
                       default_crosshair_mm=None if lesion is None else ras_grid(background, FA_CROP_AFFINE, mask=lesion).mask_centre_mm(), overlay_name="|saliency| (log-odds)", mask_name="lesion", overlay_threshold=0.1 * peak,
                       overlay_range=(0.1 * peak, peak), overlay_colorscale="Viridis", background_name="FA (4 mm crop)")
    from core.evaluation.ground_truth import saliency_regions

    regions = saliency_regions(saliency, raw.lesion_mask, cohort.patients.get("affected_hemisphere", pd.Series(dtype=str)).get(patient))
    c = st.columns(2)
    for col, region in zip(c, regions.index):
        row = regions.loc[region]
        if np.isfinite(row["enrichment"]):
            col.metric(f"|Saliency| in the {region}", f"{100 * row['saliency_share']:.1f}%", help="Share of the summed |integrated gradients| over the crop.")
            col.caption(f"the {region} fills {100 * row['volume_share']:.1f}% of the crop: {row['enrichment']:.1f}x what chance would give")
        else:
            col.metric(f"|Saliency| in the {region}", "—", help=f"This patient has no {region} on the crop.")
    summary = saliency_summary(cohort, result, run)
    if len(summary):
        lesion_row = summary.loc["lesion"] if "lesion" in summary.index else None
        tract_row = summary.loc["affected CST"]
        text = f"Over {int(tract_row[('enrichment', 'count')])} stroke patients with a lesion: "
        if lesion_row is not None:
            text += f"{100 * lesion_row[('saliency_share', 'mean')]:.1f}% of |saliency| falls in the lesion ({lesion_row[('enrichment', 'mean')]:.1f}x chance), "
        text += f"{100 * tract_row[('saliency_share', 'mean')]:.1f}% in the affected CST ({tract_row[('enrichment', 'mean')]:.1f}x chance)."
        st.caption(text + " Integrated gradients run from a blank map (every voxel at the training mean FA) to the patient's, and add up to the change in log-odds.")


@state.user_cache_resource(max_entries=2, show_spinner=False)
def _fusion_whatif(_cohort: Cohort, _result: CVResult, run: str):
    from core.modelling.whatif import FusionWhatIf

    return FusionWhatIf(_result, _design(_cohort))


@st.fragment
def fusion_whatif_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    """Knock a modality out of one patient or edit their clinical values; the fold models blind to them answer."""
    from core.modelling.fusion import FUSION_MODALITIES

    wi = _fusion_whatif(cohort, result, run)
    s = scores(cohort, result, run)
    labels = patient_labels(s, result, run)
    patient = st.selectbox("Patient", list(s.index), key="wi-fusion-patient", format_func=labels.get)
    has = wi.has(patient)
    c = st.columns(len(FUSION_MODALITIES))
    knocked = [m for col, m in zip(c, FUSION_MODALITIES)
               if not col.toggle(MODALITY_LABELS[m], value=has[m], disabled=not has[m], key=f"wi-fusion-{patient}-{m}",
                                 help="Off: as if this modality had never been recorded for the patient." if has[m] else "Not recorded for this patient.") and has[m]]
    changes = {}
    if has["clin"] and "clin" not in knocked:
        with st.expander("Clinical values", icon=":material/edit:"):
            cols = st.columns(3)
            for i, column in enumerate(wi.clinical.columns):
                original = wi.clinical.at[patient, column]
                spec = _input_spec(float(wi.low[column]), float(wi.high[column]), set(wi.clinical[column].dropna().unique()) <= {0.0, 1.0})
                value = cols[i % 3].number_input(column.split(".", 1)[1], value=None if pd.isna(original) else float(original), placeholder="missing",
                                                 key=f"wi-fusion-{patient}-{column}", help=FEATURE_DESCRIPTIONS.get(column, column), **spec)
                if not _same(value, original):
                    changes[column] = value
    base, edited = wi.scenario(patient), wi.scenario(patient, knocked, changes)
    if knocked or changes:
        st.caption("Changed: " + "; ".join([f"without {MODALITY_LABELS[m]}" for m in knocked] + [f"{k}: {_fmt(wi.clinical.at[patient, k])} → {_fmt(v)}" for k, v in changes.items()]))
    if edited.out_of_range:
        st.warning("Outside the range seen in training: " + ", ".join(edited.out_of_range))
    x_range = views.waterfall_range([base.explanation, edited.explanation])
    left, right = st.columns(2)
    n_models = len(wi.models_for(patient))
    for col, name, scenario in ((left, "Baseline", base), (right, "Edited", edited)):
        with col:
            neutral = scenario is base or not (knocked or changes)
            col.metric(f"{name} probability of response", f"{scenario.prediction:.3f}",
                       delta=("out-of-fold prediction" if scenario is base else "no change") if neutral else f"{scenario.prediction - base.prediction:+.3f}",
                       delta_color="off" if neutral else "normal", delta_arrow="off" if neutral else "auto")
            col.caption(f"Range across the {n_models} model{'s' if n_models > 1 else ''} that never saw this patient: {scenario.spread[0]:.3f} – {scenario.spread[1]:.3f}")
            fig, data = views.waterfall_figure(scenario.explanation, title=name, x_range=x_range)
            show_figure(fig, key=f"wi-fusion-waterfall-{name.lower()}", data=data, filename=f"{patient}-fusion-whatif-{name.lower()}")
    st.caption("Bars: each modality's exact Shapley value in log-odds; a knocked-out modality contributes nothing, and the network uses its learned missing-modality embedding instead.")


def deep_ground_truth_panel(cohort: Cohort, result: CVResult, run: str) -> None:
    from core.evaluation.ground_truth import modality_recovery, raw_signal_note

    truth = cohort.ground_truth
    if truth is None:
        st.info("Ground truth is known only for synthetic cohorts.")
        return
    s = scores(cohort, result, run)
    oof_auc = roc_auc(s["responder"], s["model"])
    bayes = cohort_panels.cached_bayes_auc(cohort, cohort.digest)
    c = st.columns(3)
    c[0].metric("Model AUC (out-of-fold)", f"{oof_auc:.3f}")
    if bayes is not None:
        c[1].metric("Bayes-optimal AUC", f"{bayes[0]:.3f}", help="AUC of the true response probabilities: the ceiling for any model on this cohort.")
        c[2].metric("Share of the ceiling reached", f"{oof_auc / bayes[0]:.3f}")
    st.markdown(raw_signal_note(cohort))
    importance = result.explanation.mean_abs(by="modality")
    modalities = importance.drop("fusion", errors="ignore")
    shapley = pd.DataFrame({"value": modalities, "share": modalities / modalities.sum(), "rank": modalities.rank(ascending=False, method="min").astype(int)})
    table, rho = modality_recovery(truth, shapley)
    st.metric("Agreement by modality (Spearman ρ)", "—" if not np.isfinite(rho) else f"{rho:.2f}", help="Planted contribution per modality against mean |Shapley value| per modality.")
    st.dataframe(table.style.format({"planted": "{:.3f}", "shapley": "{:.3f}", "planted_share": "{:.1%}", "shapley_share": "{:.1%}"}), width="stretch")
    note = (" The stacked model's fusion.logit carries credit for every modality at once, so it is left out of this table." if result.model == "stacked" else "")
    st.caption("Planted: mean |exact Shapley value| of the outcome terms each modality drives (raw-only terms such as the lesion's position count for DTI). "
               "Recovered: the model's mean |Shapley value| per modality." + note)


# --- comparison of models on the same folds -----------------------------------------------------


@state.user_cache_data(max_entries=4, show_spinner="Comparing the models on the same patients (bootstrap and corrected t-tests) ...")
def _comparison(_cohort: Cohort, _runs: dict, key: str):
    from core.evaluation.comparison import compare_models

    return compare_models(_cohort, _runs, n_boot=N_BOOT)


def compare_panel(cohort: Cohort, result: CVResult, settings: CVSettings) -> None:
    """Every model trained with these folds, side by side on the same patients, with the lesson in one sentence."""
    from dataclasses import replace

    from components.views import comparison as compare_views
    from core.evaluation.ground_truth import raw_signal_note

    if not result.is_binary:
        st.info("Models are compared on the responder label: choose the binary outcome.")
        return
    base = replace(settings, outcome="responder")
    digests = {m: replace(base, model=m).run_digest(cohort) for m in CVSettings.MODELS}
    runs = {m: state.saved_cv_run(cohort, d) for m, d in digests.items()}
    missing = [m for m, r in runs.items() if r is None]
    st.markdown(raw_signal_note(cohort))
    if missing:
        c = st.columns(len(missing))
        for col, m in zip(c, missing):
            if col.button(f"Train {MODEL_LABELS[m]} on these folds", key=f"pred-compare-train-{m}", icon=":material/model_training:",
                          help="xgboost takes seconds; the deep models minutes per fold (a background job: cancellable, resumable)."):
                start_training(cohort, replace(base, model=m))
        for m in missing:
            job = jobs.active("cv", digests[m])
            if job is not None:
                training_progress(job, replace(base, model=m))
    runs = {m: r for m, r in runs.items() if r is not None}
    st.caption(f"{settings.n_repeats} x {settings.n_splits}-fold cross-validation; the same folds and patients for every model. "
               f"Trained: {', '.join(MODEL_LABELS[m] for m in runs) or 'none'}.")
    if len(runs) < 2:
        st.info("Train at least two models with these folds to compare them.", icon=":material/info:")
        return
    comparison = _comparison(cohort, {MODEL_NAMES[m]: r for m, r in runs.items()}, "|".join(digests[m] for m in runs))
    st.markdown(comparison.summary_sentence())
    if comparison.oracle is not None:
        st.markdown(f"**Share of the oracle AUC** (AUC of the true response probabilities, {comparison.oracle['oracle_auc'].iloc[0]:.3f}: no model beats it on average)")
        c = st.columns(len(comparison.oracle))
        for col, (name, row) in zip(c, comparison.oracle.iterrows()):
            col.metric(name, f"{row['fraction']:.3f}", help=f"AUC {row['auc']:.3f} / oracle AUC {row['oracle_auc']:.3f}; the interval is a paired bootstrap over patients.")
            col.caption(f"AUC {row['auc']:.3f} · 95% CI of the share {row['ci_low']:.3f} – {row['ci_high']:.3f}")
    figures = {"metrics": compare_views.metric_forest_figure, "paired": compare_views.paired_difference_figure, "calibration": compare_views.calibration_figure,
               "decision": compare_views.decision_curves_figure, "patterns": compare_views.pattern_figure}
    names = {"metrics": "metrics", "paired": "paired-differences", "calibration": "calibration", "decision": "decision-curves", "patterns": "by-missing-modality"}
    slots = [st.container()] + [column for _ in range(2) for column in st.columns(2)]
    for slot, (key, build) in zip(slots, figures.items()):
        with slot:
            fig, data = build(comparison)
            show_figure(fig, key=f"pred-compare-{key}", data=data, filename=f"{cohort.name}-model-comparison-{names[key]}")
    st.dataframe(comparison.paired.round({"mean": 4, "ci_low": 4, "ci_high": 4, "p": 4}), width="stretch", hide_index=True)
    st.caption("Paired differences per fold (model minus the first model), with the corrected resampled t-test (Nadeau & Bengio 2003) over the folds, as on the Ablation page. "
               f"Metric intervals: percentile bootstrap over patients ({N_BOOT} resamples, the same resamples for every model).")
    _learning_curves(cohort, base)


def _learning_curves(cohort: Cohort, settings: CVSettings) -> None:
    """The learning curves of these folds, computed by a background job (:func:`core.jobs.learning_curves_job`,
    which reuses the stored whole-cohort runs) and stored in the workspace."""
    from components.views import comparison as compare_views
    from core.evaluation.learning import LEARNING_CURVE_SIZES

    st.markdown("**Learning curves**: AUC against the number of patients, each size cross-validated on a stratified subset")
    params, key = learning_curves_job(cohort, settings, cohort_workspace=jobs.cohort_workspace())
    table = state.workspace().load_table("learning_curves", key)
    if table is None:
        job = jobs.active("learning_curves", key)
        sizes = [n for n in LEARNING_CURVE_SIZES if n <= cohort.n_patients]
        if job is None:
            jobs.finished_notice(jobs.latest("learning_curves", key))
            if not st.button(f"Compute learning curves ({', '.join(map(str, sizes))} patients; the deep models take minutes)", key="pred-learning-curves",
                             icon=":material/trending_up:"):
                st.caption("Not computed yet for this cohort and these settings; `python -m tests.bench_fusion` computes them for the presets.")
                return
            job = jobs.submit("learning_curves", params, key)
        jobs.progress_panel(job, "Learning curves", cancel_help="Stops after the model under way; the cohort sizes with every model done are kept, and the button resumes from them.")
        return
    table = table.assign(model=table["model"].map(MODEL_NAMES).fillna(table["model"]))
    fig, data = compare_views.learning_curve_figure(table)
    show_figure(fig, key="pred-compare-learning", data=data, filename=f"{cohort.name}-learning-curves")
