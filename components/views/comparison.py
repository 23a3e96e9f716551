"""Figures of a model comparison: metrics with CIs side by side, paired per-fold differences, decision
curves, calibration, AUC per missing-modality pattern, and AUC against cohort size.

Pure builders: they take a :class:`core.evaluation.comparison.ModelComparison` (or a table) and
return ``(figure, data)``, where ``data`` is the table of numbers the figure draws (the CSV export
of :func:`components.figures.show_figure`). None touches Streamlit. Each model keeps one
Okabe-Ito colour in every figure, in the order the comparison lists them; references (treat all,
treat none, chance, the oracle, perfect calibration) are grey or black.
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY_BLUE, VERMILLION, translucent
from core.errors import InputError
from core.evaluation.comparison import COMPARED_METRICS, PAIRED_METRICS, TREAT_ALL, TREAT_NONE
from core.evaluation.metrics import METRICS, calibration_curve

__all__ = [
    "MODEL_COLORS",
    "model_colors",
    "pattern_label",
    "metric_forest_figure",
    "paired_difference_figure",
    "decision_curves_figure",
    "calibration_figure",
    "pattern_figure",
    "learning_curve_figure",
]

GREY = "#999999"
MODEL_COLORS = [BLUE, ORANGE, GREEN, PURPLE, VERMILLION, SKY_BLUE]  # Okabe-Ito without yellow (too pale on white) and black (references)
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.14, x=0)
SHORT_NAMES = {"dti": "DTI", "emg": "EMG", "kin": "kinematics", "clin": "clinical"}
PANEL_TITLES = {
    "auc": "ROC AUC (higher is better)",
    "pr_auc": "PR AUC, average precision (higher is better)",
    "brier": "Brier score (lower is better)",
    "ece": "ECE, probability (lower is better)",
    "calibration_slope": "Calibration slope (1 is ideal)",
    "calibration_intercept": "Calibration intercept, log-odds (0 is ideal)",
}
IDEAL = {"calibration_slope": 1.0, "calibration_intercept": 0.0}


def model_colors(models) -> dict:
    """One colour per model name, in order (cycling after six models)."""
    return {m: MODEL_COLORS[i % len(MODEL_COLORS)] for i, m in enumerate(models)}


def _pct(level: float) -> str:
    return f"{100 * level:g}%"


def _esc(name) -> str:
    return html.escape(str(name))


def pattern_label(pattern: str, modalities) -> str:
    """A missing-modality pattern in words: "all modalities", or what it lacks ("no DTI, no EMG")."""
    present = set(pattern.split("+")) - {"none"}
    missing = [m for m in modalities if m not in present]
    return "all modalities" if not missing else ", ".join(f"no {SHORT_NAMES.get(m, m)}" for m in missing)


# --- metrics side by side --------------------------------------------------------------------------


def metric_forest_figure(comparison) -> tuple[go.Figure, pd.DataFrame]:
    """One panel per figure of merit: each model's estimate with its bootstrap CI.

    The intervals come from the same resampled patients for every model. Calibration panels mark
    the ideal value; the AUC panel marks the oracle's AUC when the cohort has a ground truth.
    """
    models = list(comparison.models)
    colors = model_colors(models)
    metrics = comparison.metrics
    titles = [PANEL_TITLES[m] for m in COMPARED_METRICS]
    oracle_auc = None if comparison.oracle is None else float(comparison.oracle["oracle_auc"].iloc[0])
    if oracle_auc is not None:
        titles[COMPARED_METRICS.index("auc")] = f"ROC AUC (higher is better; dotted: oracle {oracle_auc:.3f})"
    fig = make_subplots(rows=3, cols=2, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.16, shared_yaxes=True)
    for k, metric in enumerate(COMPARED_METRICS):
        r, c = k // 2 + 1, k % 2 + 1
        part = metrics[metrics["metric"] == metric].set_index("model")
        for model in models:
            est, low, high = (float(part.at[model, col]) for col in ("estimate", "ci_low", "ci_high"))
            fig.add_trace(go.Scatter(
                x=[est], y=[_esc(model)], mode="markers", name=_esc(model), legendgroup=str(model), showlegend=k == 0,
                marker=dict(size=11, color=colors[model], symbol="diamond"),
                error_x=dict(type="data", symmetric=False, array=[high - est], arrayminus=[est - low], color=colors[model], thickness=2.2, width=6),
                hovertemplate=f"{_esc(model)}<br>{PANEL_TITLES[metric]}<br>{est:.3f} ({_pct(comparison.level)} CI {low:.3f} to {high:.3f})<extra></extra>",
            ), row=r, col=c)  # fmt: skip
        if metric in IDEAL:
            fig.add_vline(x=IDEAL[metric], line=dict(color=GREY, dash="dash", width=1.2), row=r, col=c)
        if metric == "auc" and oracle_auc is not None:
            fig.add_vline(x=oracle_auc, line=dict(color=BLACK, dash="dot", width=1.5), row=r, col=c)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=[_esc(m) for m in reversed(models)], automargin=True)
    fig.update_xaxes(nticks=6)
    fig.update_annotations(font_size=13)
    fig.update_layout(height=340 + 3 * 30 * len(models), margin=dict(t=110, l=10, r=20, b=40), showlegend=False,  # the models are named on the y axes
                      title=dict(text=f"Each model with its {_pct(comparison.level)} bootstrap CI", subtitle=dict(text=f"{comparison.n_boot} resamples of patients, the same for every model")))
    data = metrics.assign(label=[PANEL_TITLES[m] for m in metrics["metric"]])
    if oracle_auc is not None:
        data = data.assign(oracle_auc=oracle_auc)
    return fig, data


# --- paired differences --------------------------------------------------------------------------


def paired_difference_figure(comparison) -> tuple[go.Figure, pd.DataFrame]:
    """Per metric, each model minus the reference: one dot per test fold, the mean with its corrected-t CI.

    The corrected resampled t-test (Nadeau & Bengio) widens the interval for the training patients
    that folds share; a CI clear of the zero line is a difference the data show.
    """
    reference = comparison.reference
    others = [m for m in comparison.models if m != reference]
    colors = model_colors(comparison.models)
    per_fold = comparison.paired_per_fold
    summary = comparison.paired
    columns = ["repeat", "fold", "model", "metric", "difference", "value", "reference_value", "mean", "ci_low", "ci_high", "p"]
    if not others:
        fig = go.Figure()
        fig.add_annotation(text=f"Only one model ({_esc(reference)}): nothing to compare it with.", showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5, font=dict(size=14))
        fig.update_layout(height=200, xaxis_visible=False, yaxis_visible=False, margin=dict(t=20, l=10, r=10, b=10))
        return fig, pd.DataFrame(columns=columns)
    titles = []
    for metric in PAIRED_METRICS:
        better = "higher is better →" if METRICS[metric].higher_is_better else "← lower is better"
        titles.append(f"{METRICS[metric].label}: model minus {_esc(reference)}  ({better})")
    fig = make_subplots(rows=len(PAIRED_METRICS), cols=1, subplot_titles=titles, vertical_spacing=0.2 if len(others) < 2 else 0.15 if len(others) < 3 else 0.1)
    rng = np.random.default_rng(0)  # the same jitter every time
    for k, metric in enumerate(PAIRED_METRICS, start=1):
        for j, model in enumerate(others):
            dots = per_fold[(per_fold["model"] == model) & (per_fold["metric"] == metric)]
            jitter = rng.uniform(-0.18, 0.18, len(dots))
            fig.add_trace(go.Scatter(
                x=dots["difference"], y=j + 0.12 + jitter, mode="markers", name=_esc(model), legendgroup=str(model), showlegend=False,
                marker=dict(size=7, color=translucent(colors[model], 0.55), line=dict(color=colors[model], width=1)),
                customdata=np.stack([dots["repeat"], dots["fold"]], axis=1),
                hovertemplate=f"{_esc(model)}: repeat %{{customdata[0]}}, fold %{{customdata[1]}}<br>difference %{{x:+.3f}}<extra></extra>",
            ), row=k, col=1)  # fmt: skip
            s = summary[(summary["model"] == model) & (summary["metric"] == metric)].iloc[0]
            fig.add_trace(go.Scatter(
                x=[s["mean"]], y=[j - 0.3], mode="markers", name=_esc(model), legendgroup=str(model), showlegend=k == 1,
                marker=dict(size=12, color=colors[model], symbol="diamond"),
                error_x=dict(type="data", symmetric=False, array=[s["ci_high"] - s["mean"]], arrayminus=[s["mean"] - s["ci_low"]], color=colors[model], thickness=4, width=0),
                hovertemplate=(f"{_esc(model)} minus {_esc(reference)}<br>mean {s['mean']:+.3f} ({_pct(comparison.level)} CI {s['ci_low']:+.3f} to {s['ci_high']:+.3f})"
                               f"<br>p = {s['p']:.4f} over {int(s['n_folds'])} folds<extra></extra>"),
            ), row=k, col=1)  # fmt: skip
            p_text = "p < 0.001" if s["p"] < 0.001 else f"p = {s['p']:.3f}"
            fig.add_annotation(xref="x domain" if k == 1 else f"x{k} domain", x=1.01, xanchor="left", yref="y" if k == 1 else f"y{k}", y=j, showarrow=False, align="left",
                               text=f"{s['mean']:+.3f}<br>[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]<br>{p_text}", font=dict(size=11, color=BLACK))
        fig.add_vline(x=0, line=dict(color=BLACK, width=1.2), row=k, col=1)
        fig.update_yaxes(tickvals=list(range(len(others))), ticktext=[_esc(m) for m in others], range=[len(others) - 0.5, -0.6], row=k, col=1)
        shown = np.r_[0.0, per_fold.loc[per_fold["metric"] == metric, "difference"], summary.loc[summary["metric"] == metric, ["ci_low", "ci_high"]].to_numpy().ravel()]
        shown = shown[np.isfinite(shown)]
        pad = 0.06 * (shown.max() - shown.min()) + 1e-9
        fig.update_xaxes(title_text=f"difference in {METRICS[metric].label}", title_standoff=4, zeroline=False, range=[shown.min() - pad, shown.max() + pad], row=k, col=1)
    fig.update_annotations(font_size=12)
    n_folds = int(summary["n_folds"].iloc[0])
    fig.update_layout(height=150 + len(PAIRED_METRICS) * (110 + 50 * len(others)), margin=dict(t=110, l=10, r=120, b=40), showlegend=False,  # models on the y axes
                      title=dict(text=f"Paired differences against {_esc(reference)}",
                                 subtitle=dict(text=f"dots: the {n_folds} test folds · diamond: their mean with the corrected-t {_pct(comparison.level)} CI")))
    data = per_fold.merge(summary[["model", "metric", "mean", "ci_low", "ci_high", "p"]], on=["model", "metric"], how="left")[columns]
    return fig, data


# --- decision curves -----------------------------------------------------------------------------


def decision_curves_figure(comparison) -> tuple[go.Figure, pd.DataFrame]:
    """Net benefit against threshold probability per model with its bootstrap band; treat all and treat none."""
    curves = comparison.decision_curves
    colors = model_colors(comparison.models)
    fig = go.Figure()
    for model in comparison.models:
        part = curves[curves["model"] == model]
        t = part["threshold"].to_numpy()
        fig.add_trace(go.Scatter(x=np.r_[t, t[::-1]], y=np.r_[part["ci_high"].to_numpy(), part["ci_low"].to_numpy()[::-1]], fill="toself", fillcolor=translucent(colors[model], 0.18),
                                 line=dict(width=0), mode="lines", name=f"{_esc(model)} CI", legendgroup=str(model), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=t, y=part["net_benefit"], mode="lines", name=_esc(model), legendgroup=str(model), line=dict(color=colors[model], width=2.5),
                                 customdata=part[["ci_low", "ci_high"]].to_numpy(),
                                 hovertemplate=f"{_esc(model)}<br>threshold %{{x:.2f}}<br>net benefit %{{y:.3f}} (CI %{{customdata[0]:.3f}} to %{{customdata[1]:.3f}})<extra></extra>"))
    treat_all = curves[curves["model"] == TREAT_ALL]
    treat_none = curves[curves["model"] == TREAT_NONE]
    fig.add_trace(go.Scatter(x=treat_all["threshold"], y=treat_all["net_benefit"], mode="lines", name=TREAT_ALL, line=dict(color=GREY, dash="dash", width=2),
                             hovertemplate="treat all<br>threshold %{x:.2f}<br>net benefit %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=treat_none["threshold"], y=treat_none["net_benefit"], mode="lines", name=TREAT_NONE, line=dict(color=BLACK, dash="dot", width=1.5), hoverinfo="skip"))
    shown = curves[curves["model"].isin(list(comparison.models))]
    top = max(0.05, float(shown["ci_high"].max()), float(treat_all["net_benefit"].max())) * 1.08
    low = min(-0.05, float(shown["ci_low"].min()) - 0.02)
    fig.update_layout(xaxis=dict(title="threshold probability of response (treat at or above it)", range=[0, 1]),
                      yaxis=dict(title="net benefit (responders treated per patient)", range=[max(low, -0.3 * top), top]),
                      height=500, margin=dict(t=70, l=10, r=10), legend=LEGEND_BELOW,
                      title=dict(text="Decision curves", subtitle=dict(text=f"{_pct(comparison.level)} bootstrap bands, the same resamples for every model")))
    return fig, curves.copy()


# --- calibration ---------------------------------------------------------------------------------


def calibration_figure(comparison, n_bins: int = 10) -> tuple[go.Figure, pd.DataFrame]:
    """Observed response rate against mean predicted probability, ``n_bins`` quantile bins per model, Wilson 95% CIs.

    The legend gives each model's calibration slope and intercept (logistic recalibration).
    """
    scores = comparison.scores
    colors = model_colors(comparison.models)
    figures = comparison.metrics.set_index(["model", "metric"])["estimate"]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(color=GREY, dash="dot"), hoverinfo="skip"))
    rows = []
    for model in comparison.models:
        table = calibration_curve(scores["observed"], scores[model], n_bins=n_bins)
        slope, intercept = figures[(model, "calibration_slope")], figures[(model, "calibration_intercept")]
        fig.add_trace(go.Scatter(
            x=table["mean_predicted"], y=table["observed_rate"], mode="lines+markers", name=f"{_esc(model)} (slope {slope:.2f}, intercept {intercept:+.2f})",
            legendgroup=str(model), line=dict(color=colors[model], width=2), marker=dict(size=8, color=colors[model]),
            error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["observed_rate"], arrayminus=table["observed_rate"] - table["ci_low"], color=colors[model], thickness=1, width=3),
            customdata=table[["n", "ci_low", "ci_high"]].to_numpy(),
            hovertemplate=f"{_esc(model)}<br>predicted %{{x:.2f}}<br>observed %{{y:.2f}} (95% CI %{{customdata[1]:.2f}}-%{{customdata[2]:.2f}})<br>n = %{{customdata[0]}}<extra></extra>",
        ))  # fmt: skip
        rows.append(table.assign(model=model))
    fig.update_layout(xaxis=dict(title="mean predicted probability of response (out-of-fold)", range=[-0.01, 1.02]),
                      yaxis=dict(title="observed response rate", range=[-0.01, 1.03]),
                      height=520, margin=dict(t=70, l=10, r=10), legend=dict(orientation="h", yanchor="top", y=-0.14, x=0),
                      title=dict(text="Calibration", subtitle=dict(text=f"{n_bins} quantile bins per model, Wilson 95% CI; slope and intercept from logistic recalibration")))
    data = pd.concat(rows, ignore_index=True)[["model", "bin", "mean_predicted", "observed_rate", "n", "ci_low", "ci_high"]]
    return fig, data


# --- missing-modality patterns -------------------------------------------------------------------


def pattern_figure(comparison) -> tuple[go.Figure, pd.DataFrame]:
    """AUC per missing-modality pattern and model with its bootstrap CI; patients and responders in the tick labels.

    Patterns with fewer than 10 patients of either class have no AUC and say so in their label.
    """
    table = comparison.by_pattern
    models = list(comparison.models)
    colors = model_colors(models)
    patterns = list(dict.fromkeys(table["pattern"]))
    modalities = [m for m in SHORT_NAMES if any(m in p.split("+") for p in patterns)]
    first = table.drop_duplicates("pattern").set_index("pattern")
    labels = {}
    for p in patterns:
        n, pos = int(first.at[p, "n"]), int(first.at[p, "n_responders"])
        extra = "<br><i>too few for an AUC</i>" if first.at[p, "note"] else ""
        labels[p] = f"{pattern_label(p, modalities)}<br>n = {n} ({pos} responder{'' if pos == 1 else 's'}){extra}"
    offsets = {m: (j - (len(models) - 1) / 2) * min(0.22, 0.7 / max(1, len(models))) for j, m in enumerate(models)}
    fig = go.Figure()
    for model in models:
        part = table[table["model"] == model].set_index("pattern").loc[patterns]
        y = np.arange(len(patterns)) + offsets[model]
        fig.add_trace(go.Scatter(
            x=part["auc"], y=y, mode="markers", name=_esc(model), marker=dict(size=10, color=colors[model], symbol="diamond"),
            error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["auc"], arrayminus=part["auc"] - part["ci_low"], color=colors[model], thickness=2, width=4),
            customdata=np.stack([[pattern_label(p, modalities) for p in patterns], part["ci_low"], part["ci_high"], part["n"]], axis=1),
            hovertemplate=f"{_esc(model)}<br>%{{customdata[0]}} (n = %{{customdata[3]}})<br>AUC %{{x:.3f}} (CI %{{customdata[1]:.3f}} to %{{customdata[2]:.3f}})<extra></extra>",
        ))  # fmt: skip
    fig.add_vline(x=0.5, line=dict(color=GREY, dash="dot", width=1.2), annotation_text="chance", annotation_position="bottom right", annotation_font=dict(size=11, color=GREY))
    values = table[["ci_low", "ci_high", "auc"]].to_numpy(dtype=float)
    low = float(np.nanmin(values)) if np.isfinite(values).any() else 0.5
    fig.update_layout(xaxis=dict(title=f"ROC AUC within the pattern ({_pct(comparison.level)} bootstrap CI)", range=[min(0.45, low - 0.03), 1.01]),
                      yaxis=dict(tickvals=list(range(len(patterns))), ticktext=[labels[p] for p in patterns], range=[len(patterns) - 0.5, -0.5], automargin=True),
                      height=190 + 62 * len(patterns), margin=dict(t=90, l=10, r=10, b=50), legend=dict(orientation="h", yanchor="bottom", y=1.01, x=0),
                      title=dict(text="Discrimination by missing-modality pattern", y=0.99, yanchor="top"))
    data = table.assign(pattern_label=[pattern_label(p, modalities) for p in table["pattern"]])
    return fig, data


# --- learning curve ------------------------------------------------------------------------------


def learning_curve_figure(table: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Out-of-fold AUC against cohort size per model with CI bands; the oracle's AUC as a dashed line.

    ``table``: one row per (cohort size, model) with columns ``n_patients``, ``model``, ``auc``,
    ``ci_low``, ``ci_high`` and optionally ``oracle_auc`` (the AUC of the true response
    probabilities of the cohort of that size). The x axis is logarithmic, ticked at the sizes given.
    """
    required = ["n_patients", "model", "auc", "ci_low", "ci_high"]
    missing = [c for c in required if c not in getattr(table, "columns", [])]
    if missing:
        raise InputError(f"the learning-curve table lacks column(s) {missing}; expected {required} (and optionally 'oracle_auc').", field="table")
    data = table.sort_values(["model", "n_patients"], kind="stable").reset_index(drop=True)
    models = list(dict.fromkeys(table["model"]))
    colors = model_colors(models)
    fig = go.Figure()
    for model in models:
        part = data[data["model"] == model]
        n = part["n_patients"].to_numpy(dtype=float)
        fig.add_trace(go.Scatter(x=np.r_[n, n[::-1]], y=np.r_[part["ci_high"].to_numpy(), part["ci_low"].to_numpy()[::-1]], fill="toself", fillcolor=translucent(colors[model], 0.18),
                                 line=dict(width=0), mode="lines", name=f"{_esc(model)} CI", legendgroup=str(model), showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=n, y=part["auc"], mode="lines+markers", name=_esc(model), legendgroup=str(model), line=dict(color=colors[model], width=2.5), marker=dict(size=8),
                                 customdata=part[["ci_low", "ci_high"]].to_numpy(),
                                 hovertemplate=f"{_esc(model)}<br>%{{x}} patients<br>AUC %{{y:.3f}} (CI %{{customdata[0]:.3f}} to %{{customdata[1]:.3f}})<extra></extra>"))
    values = [data["ci_low"].to_numpy(dtype=float), data["ci_high"].to_numpy(dtype=float)]
    if "oracle_auc" in data.columns and data["oracle_auc"].notna().any():
        oracle = data.groupby("n_patients")["oracle_auc"].mean().dropna()
        fig.add_trace(go.Scatter(x=oracle.index.to_numpy(dtype=float), y=oracle.to_numpy(), mode="lines+markers", name="oracle (true response probability)",
                                 line=dict(color=BLACK, dash="dash", width=2), marker=dict(size=6, symbol="square"), hovertemplate="oracle<br>%{x} patients<br>AUC %{y:.3f}<extra></extra>"))
        values.append(oracle.to_numpy(dtype=float))
    sizes = np.sort(data["n_patients"].unique()).astype(float)
    finite = np.concatenate(values)
    finite = finite[np.isfinite(finite)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.5, 1.0)
    pad = 0.05 * (high - low) + 0.01
    span = np.log10(sizes) if sizes.size else np.log10([100, 2000])
    fig.update_layout(xaxis=dict(type="log", title="patients in the cohort (log scale)", tickvals=sizes, ticktext=[f"{int(s):,}" for s in sizes],
                                 range=[span.min() - 0.08, span.max() + 0.08]),
                      yaxis=dict(title="ROC AUC, out-of-fold (CI band)", range=[max(0.0, low - pad), min(1.0, high + pad)]),
                      height=480, margin=dict(t=50, l=10, r=10), legend=LEGEND_BELOW, title="Discrimination against cohort size")
    return fig, data
