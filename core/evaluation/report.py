"""The model report of a cross-validation run, and the tables it and the Prediction page share.

:func:`model_report_html` writes one self-contained HTML page covering the TRIPOD+AI reporting
items that apply to an internally validated prediction model (data source, participants and
outcome, predictors, missing data, model, validation, performance with 95% CIs, calibration).
The Prediction page's "Model report (HTML)" download and ``python -m core report`` both call it,
so a run gives the same bytes wherever its report is written.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd

from core.data.schema import FEATURE_DESCRIPTIONS, INPUT_LABELS, input_source
from core.evaluation.metrics import METRICS, calibration_curve, expected_calibration_error
from core.evaluation.performance import N_BOOT, binary_ci_tables, calibration_line, regression_ci_tables, repeat_spread, score_table
from core.modelling.estimators import estimator_for

__all__ = ["model_report_html", "ci_table", "prediction_table"]


def ci_table(tables: dict, digits: int = 3) -> pd.DataFrame:
    """Figure x prediction table of "estimate (low–high)" strings, as the page and the report show it.

    Parameters
    ----------
    tables : name -> :func:`~core.evaluation.metrics.metrics_with_ci` table (e.g.
        :func:`~core.evaluation.performance.binary_ci_tables`).
    digits : decimals of every number.

    Returns
    -------
    pandas.DataFrame indexed by the figures' labels (index name "metric (95% CI)"), one column
    per prediction named with its patient count, e.g. "Model (xgboost) (n=200)". A figure
    without an interval shows its estimate alone, one without an estimate "—". The ``n`` and
    ``prevalence`` rows are left out (the count is in the column name).
    """
    out = {}
    for name, table in tables.items():
        col = {}
        for metric, row in table.iterrows():
            if metric in ("n", "prevalence"):
                continue
            label = METRICS[metric].label if metric in METRICS else metric
            if not np.isfinite(row["estimate"]):
                col[label] = "—"
            elif np.isfinite(row["ci_low"]):
                col[label] = f"{row['estimate']:.{digits}f} ({row['ci_low']:.{digits}f}–{row['ci_high']:.{digits}f})"
            else:
                col[label] = f"{row['estimate']:.{digits}f}"
        n = table.loc["n", "estimate"] if "n" in table.index else np.nan
        out[f"{name} (n={int(n)})" if np.isfinite(n) else name] = col
    frame = pd.DataFrame(out)
    frame.index.name = "metric (95% CI)"
    return frame


def prediction_table(result, scores: pd.DataFrame) -> pd.DataFrame:
    """Every patient's out-of-fold predictions, as the page's and the command line's CSV export.

    Parameters
    ----------
    result : :class:`~core.modelling.validation.CVResult`.
    scores : :func:`~core.evaluation.performance.score_table` of the same run.

    Returns
    -------
    pandas.DataFrame indexed by ``patient_id``: the columns of ``scores`` followed by one column
    per repeat (``repeat_0`` ...), each that repeat's out-of-fold prediction (probability of
    response, or improvement in %).
    """
    return scores.join(result.prediction_by_repeat)


def model_report_html(cohort, result, run: str, *, threshold: float = 0.5, n_boot: int = N_BOOT, scores: pd.DataFrame | None = None) -> str:
    """The TRIPOD+AI model report of a cross-validation run, as one self-contained HTML page.

    Parameters
    ----------
    cohort : :class:`~core.data.cohort.Cohort` the run was trained on.
    result : its :class:`~core.modelling.validation.CVResult`.
    run : the run digest (:func:`~core.modelling.validation.run_digest`), printed in the report.
    threshold : decision threshold (probability of response) of the threshold-dependent figures
        of a binary outcome; ignored for a continuous one. The Prediction page passes its
        slider's value rounded to 0.01.
    n_boot : bootstrap resamples of every 95% interval.
    scores : :func:`~core.evaluation.performance.score_table` of this run when it is already at
        hand (it refits the clinical baseline on every fold); computed when None.

    Returns
    -------
    str: an HTML document with no external template or asset; every value from the cohort is
    escaped.
    """
    scores = score_table(cohort, result) if scores is None else scores
    observed, predicted = scores["observed"], scores["model"]
    _, spread = repeat_spread(result, observed)
    notes = []
    if result.is_binary:
        metrics = ci_table(binary_ci_tables(scores, threshold, n_boot=n_boot))
        calibration = calibration_curve(observed, predicted).set_index("bin")
        ece = expected_calibration_error(observed, predicted)
        notes.append(f"Threshold-dependent figures at a predicted probability of {threshold:.2f}.")
        summary = f"{int(scores['responder'].sum())} responders ({100 * scores['responder'].mean():.1f}%)."
    else:
        metrics = ci_table(regression_ci_tables(scores, n_boot=n_boot))
        slope, intercept = calibration_line(observed, predicted)
        calibration, ece = pd.DataFrame({"value": [intercept, slope]}, index=["calibration intercept (% points)", "calibration slope"]), None
        summary = f"Improvement: mean {observed.mean():.1f}%, SD {observed.std():.1f}%."
    return _document(
        cohort_name=cohort.name, n_patients=cohort.n_patients, provenance=cohort.provenance, responder_threshold_pct=cohort.responder_threshold_pct,
        outcome=result.outcome, outcome_summary=summary, features=list(result.features),
        missing_by_modality=(100 * (~cohort.modality_availability())).mean().round(1),
        missing_by_feature=100 * cohort.features[[f for f in result.features if f in cohort.features.columns]].isna().mean(),
        model_params=result.fold_models[0].get_params() if result.fold_models else estimator_for(result.outcome, **result.params).get_params(),
        model=result.model, scheme=result.scheme, run=run, n_boot=n_boot, metrics=metrics, repeat_spread=spread, calibration=calibration, ece=ece, notes=notes,
    )


_PREDICTORS = {
    "xgboost": "{n} engineered features; the modality is the name's prefix.",
    "fusion": "The raw data of {n} modalities (FA map crop, MEP sweeps and voluntary EMG, reach trajectories, clinical values); "
              "the explanation is per modality.",
    "stacked": "{n} inputs: the engineered features, and the deep fusion model's log-odds from the raw data (fusion.logit).",
}
_MISSING = {
    "xgboost": "Missing values stay missing: xgboost learns a default direction at every split, so no patient is dropped and nothing is imputed.",
    "fusion": "A missing modality is replaced by a learned missing-modality embedding (the network is trained with modality dropout), "
              "so no patient is dropped and no signal is made up.",
    "stacked": "Missing values stay missing (xgboost's default directions); the fusion model's input covers patients missing raw data "
               "with its learned missing-modality embeddings.",
}


def _model_text(model: str, params: dict) -> str:
    if model == "fusion":
        return (f"Deep multimodal fusion ({params.get('fusion', '?')} fusion): a 3D CNN on the FA map, CNN-GRU encoders of the EMG and reach "
                f"recordings, an MLP on the clinical values. The epoch is chosen by early stopping on an inner split of each training fold "
                f"(held-out share {params.get('early_stopping_fraction', '?')}, patience {params.get('patience', '?')} epochs).")
    if model == "stacked":
        return (f"Stacked: gradient-boosted trees (xgboost) on the engineered features plus the deep fusion model's log-odds. Inside each "
                f"training fold, the training patients' fusion log-odds come from an inner {params.get('inner_splits', '?')}-fold "
                "cross-validation (nested), so no patient's label reaches their own input.")
    return ("Gradient-boosted trees (xgboost). The number of trees is chosen by early stopping on an inner split of each training fold only "
            f"(held-out share {params.get('early_stopping_fraction', '?')}, patience {params.get('early_stopping_rounds', '?')} trees).")


def _missing_note(missing: pd.Series, feature: str) -> str:
    share = missing.get(feature)
    return f" <i>(missing for {share:.1f}% of patients)</i>" if share else ""


def _table_html(frame: pd.DataFrame, digits: int = 4) -> str:
    return frame.to_html(float_format=lambda v: f"{v:.{digits}g}", border=0, classes="t", na_rep="—", escape=True, index_names=False)


def _document(
    *,
    cohort_name: str,
    n_patients: int,
    provenance: dict,
    responder_threshold_pct: float,
    outcome: str,
    outcome_summary: str,
    features: list,
    missing_by_modality: pd.Series,
    missing_by_feature: pd.Series,
    model_params: dict,
    scheme: str,
    model: str = "xgboost",
    run: str,
    n_boot: int,
    metrics: pd.DataFrame,
    repeat_spread: pd.DataFrame,
    calibration: pd.DataFrame,
    ece: float | None,
    notes: list,
) -> str:
    """The report's HTML from its numbers: a calibration table with ``ece`` is a binary outcome's
    (observed rate per bin), without it a continuous outcome's (calibration line)."""
    e = html.escape
    kind = provenance.get("kind", "unknown")
    config = provenance.get("config")
    source = f"Synthetic cohort from NeuroPredict's generator with a known ground truth (seed {config.get('seed')})." if kind == "synthetic" and config else f"Source: {e(str(kind))}."
    prov_rows = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in (config or {k: v for k, v in provenance.items() if k != 'kind'}).items())
    by_modality = {}
    for f in features:
        by_modality.setdefault(input_source(f), []).append(f)
    predictors = "".join(
        f"<h3>{e(INPUT_LABELS.get(m, m))} ({len(fs)})</h3><ul>" + "".join(f"<li><code>{e(f)}</code>: {e(FEATURE_DESCRIPTIONS.get(f, ''))}{_missing_note(missing_by_feature, f)}</li>" for f in fs) + "</ul>"
        for m, fs in by_modality.items()
    )
    outcome_text = (f"Responder: improvement of at least <b>{responder_threshold_pct:g}%</b> (binary; the model predicts the probability of response)."
                    if outcome == "responder" else "Continuous improvement in % (the model predicts the improvement directly).")
    params = "".join(f"<tr><th>{e(str(k))}</th><td>{e(str(v))}</td></tr>" for k, v in model_params.items())
    missing = _table_html(missing_by_modality.rename("patients missing the modality (%)").to_frame())
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>NeuroPredict model report: {e(cohort_name)} / {e(outcome)}</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;line-height:1.45;color:#222}"
        "table.t,table.kv{border-collapse:collapse;margin:.5em 0}table.t td,table.t th,table.kv td,table.kv th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
        "h2{border-bottom:2px solid #0072B2;padding-bottom:.2em}code{background:#f3f3f3;padding:0 .2em}</style></head><body>",
        f"<h1>Model report: {e(outcome)} on cohort “{e(cohort_name)}”</h1>",
        f"<p>Run <code>{e(run)}</code>. Structured after the TRIPOD+AI reporting items that apply to an internally validated prediction model.</p>",
        f"<h2>Data source</h2><p>{source}</p><table class='kv'>{prov_rows}</table>",
        f"<h2>Participants and outcome</h2><p>{n_patients} patients. {outcome_text}</p><p>{e(outcome_summary)}</p>",
        f"<h2>Predictors</h2><p>{_PREDICTORS[model].format(n=len(features))}</p>{predictors}",
        f"<h2>Missing data</h2><p>{_MISSING[model]}</p>" + missing,
        f"<h2>Model</h2><p>{_model_text(model, model_params)} Test patients never influence training.</p><table class='kv'>{params}</table>",
        f"<h2>Validation</h2><p>{e(scheme)}. Every patient is predicted only by models that never saw them (out-of-fold); the prediction is the mean over repeats. "
        "Baselines are evaluated on the same folds.</p>",
        f"<h2>Performance</h2><p>Point estimate on the out-of-fold predictions, with a percentile bootstrap 95% interval over patients ({n_boot} resamples, stratified by outcome class for a binary outcome).</p>",
        _table_html(metrics),
        "<p>Spread across repeats (each a full out-of-fold pass; folds share patients, so the SD describes variation and is not a standard error):</p>",
        _table_html(repeat_spread),
    ]
    if ece is not None:
        parts += [f"<h2>Calibration</h2><p>Expected calibration error (ECE, 10 quantile bins): <b>{ece:.4f}</b>. Observed response rate per bin, with Wilson 95% intervals:</p>", _table_html(calibration)]
    else:
        parts += ["<h2>Calibration</h2><p>Linear fit of observed on predicted improvement (perfect calibration: intercept 0, slope 1):</p>", _table_html(calibration)]
    for note in notes:
        parts.append(f"<p><i>{e(note)}</i></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
