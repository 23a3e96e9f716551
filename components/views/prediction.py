"""Figures of the Prediction page: performance, SHAP explanations, what-if, ground truth.

Pure builders: they take numbers (arrays, tables, core results) and return plotly figures; none
touches Streamlit. The page's tables and its model report come from :mod:`core.evaluation.report`.
Figure builders return ``(figure, data)`` where ``data`` is the table of numbers the figure draws
(the CSV export of :func:`figures.show_figure`).
Colours are Okabe-Ito (see :mod:`components.palette`).
"""

from __future__ import annotations

import html

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.palette import BLACK, BLUE, GREEN, MODALITY_COLORS, OKABE_ITO, ORANGE, PURPLE, SKY_BLUE, VERMILLION
from core.data.schema import FEATURE_DESCRIPTIONS, INPUT_LABELS, MODALITY_LABELS, input_source
from core.evaluation.metrics import calibration_curve, pr_curve_points, roc_curve_points
from core.modelling.explanation import Explanation

__all__ = [
    "SERIES_COLORS",
    "roc_figure",
    "pr_figure",
    "calibration_figure",
    "confusion_matrix_figure",
    "decision_curve_figure",
    "repeat_spread_figure",
    "predicted_vs_actual_figure",
    "residuals_figure",
    "beeswarm_figure",
    "importance_figure",
    "modality_importance_figure",
    "strongest_partner",
    "dependence_figure",
    "waterfall_figure",
    "waterfall_range",
    "planted_vs_recovered",
    "cause_recovery_figure",
    "place_labels",
]

GREY = "#999999"
# Blue (low) through reddish purple to vermillion (high): readable with the common colour-vision deficiencies.
VALUE_SCALE = [[0.0, BLUE], [0.5, PURPLE], [1.0, VERMILLION]]
SERIES_COLORS = {"model": BLUE, "clinical": ORANGE, "prep2": GREEN, "treat all": GREY, "treat none": BLACK}
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, x=0)


def _color(name: str, i: int) -> str:
    for key, color in SERIES_COLORS.items():
        if name.lower().startswith(key):
            return color
    return OKABE_ITO[i % len(OKABE_ITO)]


# --- performance: binary outcome -----------------------------------------------------------------


def _scored(y, score) -> tuple[np.ndarray, np.ndarray]:
    y, score = np.asarray(y, dtype=float), np.asarray(score, dtype=float)
    keep = np.isfinite(score)
    return y[keep], score[keep]


def roc_figure(series: dict, aucs: dict | None = None) -> tuple[go.Figure, pd.DataFrame]:
    """ROC curves of several scores. ``series``: name -> (labels, score); NaN scores are left out."""
    fig, rows = go.Figure(), []
    for i, (name, (y, score)) in enumerate(series.items()):
        y, score = _scored(y, score)
        pts = roc_curve_points(y, score)
        label = f"{name} (AUC {aucs[name]:.3f})" if aucs and name in aucs else name
        fig.add_trace(go.Scatter(x=pts["fpr"], y=pts["tpr"], mode="lines", name=label, line=dict(color=_color(name, i), width=2.5),
                                 hovertemplate="1 - specificity %{x:.2f}<br>sensitivity %{y:.2f}<extra>" + html.escape(name) + "</extra>"))
        rows.append(pts.assign(series=name))
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color=GREY, dash="dot"), hoverinfo="skip"))
    fig.update_layout(xaxis=dict(title="1 - specificity (false-positive rate)", range=[0, 1], constrain="domain"), yaxis=dict(title="sensitivity (true-positive rate)", range=[0, 1.01], scaleanchor="x"),
                      height=470, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title="ROC curve (out-of-fold)")
    return fig, pd.concat(rows, ignore_index=True)[["series", "fpr", "tpr", "threshold"]]


def pr_figure(series: dict) -> tuple[go.Figure, pd.DataFrame]:
    """Precision-recall curves; a dotted line per series at its prevalence (a random score)."""
    fig, rows = go.Figure(), []
    for i, (name, (y, score)) in enumerate(series.items()):
        y, score = _scored(y, score)
        pts = pr_curve_points(y, score)
        color = _color(name, i)
        fig.add_trace(go.Scatter(x=pts["recall"], y=pts["precision"], mode="lines", name=name, line=dict(color=color, width=2.5, shape="hv"),
                                 hovertemplate="recall %{x:.2f}<br>precision %{y:.2f}<extra>" + html.escape(name) + "</extra>"))
        fig.add_hline(y=float(np.mean(y)), line=dict(color=color, dash="dot", width=1))
        rows.append(pts.assign(series=name, prevalence=float(np.mean(y))))
    fig.update_layout(xaxis=dict(title="recall (sensitivity)", range=[0, 1]), yaxis=dict(title="precision (PPV)", range=[0, 1.02]),
                      height=470, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title="Precision-recall (dotted: prevalence)")
    return fig, pd.concat(rows, ignore_index=True)[["series", "recall", "precision", "threshold", "prevalence"]]


def calibration_figure(y, probability, ece: float, n_bins: int = 10) -> tuple[go.Figure, pd.DataFrame]:
    """Observed response rate per bin of predicted probability, Wilson 95% intervals, ECE in the title."""
    table = calibration_curve(y, probability, n_bins=n_bins)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration", line=dict(color=GREY, dash="dot"), hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=table["mean_predicted"], y=table["observed_rate"], mode="lines+markers", name="model", line=dict(color=BLUE, width=2), marker=dict(size=9),
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["observed_rate"], arrayminus=table["observed_rate"] - table["ci_low"], color=BLUE, thickness=1.2),
        customdata=table[["n", "ci_low", "ci_high"]], hovertemplate="predicted %{x:.2f}<br>observed %{y:.2f} (95% CI %{customdata[1]:.2f}-%{customdata[2]:.2f})<br>n = %{customdata[0]}<extra></extra>",
    ))
    fig.add_trace(go.Histogram(x=np.asarray(probability, dtype=float), xbins=dict(start=0, end=1, size=0.02), name="patients per predicted probability (histogram)", marker_color=SKY_BLUE, opacity=0.45, yaxis="y2", hovertemplate="%{x}: %{y} patients<extra></extra>"))
    fig.update_layout(xaxis=dict(title="predicted probability of response", range=[0, 1]), yaxis=dict(title="observed response rate", range=[0, 1.02]),
                      yaxis2=dict(overlaying="y", side="right", showgrid=False, showticklabels=False, range=[0, 4 * max(1, np.histogram(probability, bins=50, range=(0, 1))[0].max())]),
                      height=470, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title=f"Calibration: ECE {ece:.3f} ({n_bins} quantile bins, Wilson 95% CI)")
    return fig, table.set_index("bin")


def confusion_matrix_figure(counts: dict, threshold: float) -> tuple[go.Figure, pd.DataFrame]:
    """2 x 2 counts (``tp``, ``fp``, ``tn``, ``fn``) with the share of each observed class."""
    table = pd.DataFrame([[counts["tp"], counts["fn"]], [counts["fp"], counts["tn"]]], index=["responder", "non-responder"], columns=["predicted responder", "predicted non-responder"])
    share = table.div(table.sum(axis=1).replace(0, np.nan), axis=0) * 100
    text = [[f"<b>{c}</b><br>{s:.0f}% of row" if np.isfinite(s) else str(c) for c, s in zip(rc, rs)] for rc, rs in zip(table.to_numpy(), share.to_numpy())]
    fig = go.Figure(go.Heatmap(z=share.fillna(0).to_numpy(), x=list(table.columns), y=list(table.index), text=text, texttemplate="%{text}", textfont=dict(size=15),
                               colorscale="Blues", zmin=0, zmax=100, colorbar=dict(title="% of row"), hovertemplate="observed %{y}<br>%{x}<br>%{z:.0f}% of row<extra></extra>"))
    fig.update_layout(xaxis_title=f"prediction at probability >= {threshold:.2f}", yaxis_title="observed", yaxis_autorange="reversed", height=360, margin=dict(t=30, l=10, r=10))
    return fig, table


def decision_curve_figure(curves: dict) -> tuple[go.Figure, pd.DataFrame]:
    """Net benefit per threshold. ``curves``: name -> output of :func:`core.evaluation.metrics.decision_curve`."""
    fig, rows, first = go.Figure(), [], None
    for i, (name, dc) in enumerate(curves.items()):
        first = dc if first is None else first
        fig.add_trace(go.Scatter(x=dc["threshold"], y=dc["net_benefit_model"], mode="lines", name=name, line=dict(color=_color(name, i), width=2.5)))
        rows.append(dc[["threshold", "net_benefit_model"]].rename(columns={"net_benefit_model": name}).set_index("threshold"))
    fig.add_trace(go.Scatter(x=first["threshold"], y=first["net_benefit_treat_all"], mode="lines", name="treat all", line=dict(color=GREY, dash="dash")))
    fig.add_trace(go.Scatter(x=first["threshold"], y=first["net_benefit_treat_none"], mode="lines", name="treat none", line=dict(color=BLACK, dash="dot")))
    top = max(0.05, float(first["net_benefit_treat_all"].max()), *(float(dc["net_benefit_model"].max()) for dc in curves.values())) * 1.1
    fig.update_layout(xaxis=dict(title="threshold probability (treat when predicted >= threshold)", range=[0, 1]), yaxis=dict(title="net benefit (responders treated per patient)", range=[-0.05, top]),
                      height=470, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title="Decision curve")
    data = pd.concat(rows, axis=1).assign(treat_all=first["net_benefit_treat_all"].to_numpy(), treat_none=first["net_benefit_treat_none"].to_numpy())
    return fig, data


def repeat_spread_figure(per_repeat: pd.Series, metric: str = "AUC") -> tuple[go.Figure, pd.DataFrame]:
    """One dot per repeat (each a full out-of-fold pass) and their mean."""
    fig = go.Figure(go.Scatter(x=per_repeat.to_numpy(), y=[metric] * len(per_repeat), mode="markers", marker=dict(size=13, color=BLUE, line=dict(color="white", width=1)),
                               text=list(per_repeat.index), hovertemplate="%{text}: %{x:.3f}<extra></extra>", name="repeat"))
    fig.add_vline(x=float(per_repeat.mean()), line=dict(color=BLACK, dash="dash"), annotation_text=f"mean {per_repeat.mean():.3f}", annotation_position="top")
    pad = max(0.01, float(per_repeat.max() - per_repeat.min()))
    fig.update_layout(xaxis=dict(title=f"{metric} of each repeat's out-of-fold predictions", range=[per_repeat.min() - pad, per_repeat.max() + pad]), yaxis=dict(visible=False),
                      height=170, margin=dict(t=30, b=10, l=10, r=10), showlegend=False)
    return fig, per_repeat.to_frame(metric)


# --- performance: continuous outcome -------------------------------------------------------------


def predicted_vs_actual_figure(actual: pd.Series, predicted: pd.Series, groups: pd.Series | None = None, threshold: float | None = None) -> tuple[go.Figure, pd.DataFrame]:
    """Scatter of predicted against observed improvement, identity line, coloured by group."""
    data = pd.DataFrame({"observed": actual, "predicted": predicted, "group": groups if groups is not None else "all"})
    fig = go.Figure()
    for i, (name, part) in enumerate(data.groupby("group", sort=True)):
        fig.add_trace(go.Scatter(x=part["observed"], y=part["predicted"], mode="markers", name=str(name), marker=dict(color=OKABE_ITO[i % len(OKABE_ITO)], size=7, opacity=0.7),
                                 text=part.index, hovertemplate="%{text}<br>observed %{x:.1f}%<br>predicted %{y:.1f}%<extra></extra>"))
    lo, hi = float(min(data["observed"].min(), data["predicted"].min())), float(max(data["observed"].max(), data["predicted"].max()))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="identity (perfect prediction)", line=dict(color=BLACK, dash="dash"), hoverinfo="skip"))
    if threshold is not None:
        fig.add_vline(x=threshold, line=dict(color=GREY, dash="dot"), annotation_text=f"responder threshold {threshold:g}%")
    fig.update_layout(xaxis_title="observed improvement (%)", yaxis=dict(title="predicted improvement (%, out-of-fold)", scaleanchor="x"), height=480, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title="Predicted vs observed")
    return fig, data


def residuals_figure(actual: pd.Series, predicted: pd.Series) -> tuple[go.Figure, pd.DataFrame]:
    """Residual (observed - predicted) against prediction."""
    data = pd.DataFrame({"predicted": predicted, "residual": actual - predicted})
    fig = go.Figure(go.Scatter(x=data["predicted"], y=data["residual"], mode="markers", marker=dict(color=BLUE, size=7, opacity=0.6), text=data.index,
                               hovertemplate="%{text}<br>predicted %{x:.1f}%<br>residual %{y:.1f}<extra></extra>", name="patients"))
    fig.add_hline(y=0, line=dict(color=BLACK, dash="dash"))
    fig.update_layout(xaxis_title="predicted improvement (%)", yaxis_title="residual: observed - predicted (% points)", height=480, margin=dict(t=40, l=10, r=10), showlegend=False, title="Residuals")
    return fig, data


# --- SHAP -------------------------------------------------------------------------------------


def _normalise(values: pd.Series) -> pd.Series:
    """Feature value scaled to 0-1 between its 5th and 95th percentile (NaN stays NaN)."""
    lo, hi = values.quantile(0.05), values.quantile(0.95)
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        lo, hi = values.min(), values.max()
    if not np.isfinite(hi - lo) or hi - lo <= 0:
        return values * 0 + 0.5
    return ((values - lo) / (hi - lo)).clip(0, 1)


def _swarm_offsets(x: np.ndarray, width: float, n_bins: int = 80) -> np.ndarray:
    """Vertical offsets (within +-width) that stack points with similar x, densest bins widest."""
    span = np.ptp(x) if x.size else 0.0
    if x.size == 0 or span == 0:
        return np.zeros_like(x)
    b = np.minimum(((x - x.min()) / span * n_bins).astype(int), n_bins - 1)
    offsets = np.zeros(x.size)
    counts = np.bincount(b, minlength=n_bins)
    step = width / max(1.0, counts.max() / 2)
    for k in np.flatnonzero(counts > 1):
        members = np.flatnonzero(b == k)
        ranks = np.arange(members.size)
        offsets[members] = np.where(ranks % 2 == 0, 1, -1) * ((ranks + 1) // 2) * step
        offsets[members] -= offsets[members].mean()
    return offsets


def beeswarm_figure(explanation: Explanation, top: int = 15) -> tuple[go.Figure, pd.DataFrame]:
    """SHAP beeswarm: one row per feature (top by mean |SHAP|), one point per patient.

    x = SHAP value, colour = the feature's value scaled per feature (5th-95th percentile to 0-1);
    patients missing the feature are grey.
    """
    shap, features = explanation.frame(), explanation.data_frame()
    order = explanation.mean_abs().index[:top]
    rows = []
    for pos, feature in enumerate(reversed(order)):
        x = shap[feature].to_numpy()
        rows.append(pd.DataFrame({"patient_id": shap.index, "feature": feature, "row": pos, "shap": x, "value": features[feature].to_numpy(),
                                  "value_scaled": _normalise(features[feature]).to_numpy(), "y": pos + _swarm_offsets(x, 0.38)}))
    data = pd.concat(rows, ignore_index=True)
    present = data[data["value"].notna()]
    missing = data[data["value"].isna()]
    fig = go.Figure()
    scatter = go.Scattergl if len(data) > 20_000 else go.Scatter  # SVG up to 20k points: crisp SVG export
    if len(missing):
        fig.add_trace(scatter(x=missing["shap"], y=missing["y"], mode="markers", name="value missing", marker=dict(size=5, color=GREY, opacity=0.5, symbol="x-thin-open"),
                                   customdata=missing[["patient_id", "feature"]], hovertemplate="%{customdata[0]}<br>%{customdata[1]} missing<br>SHAP %{x:.3f}<extra></extra>"))
    fig.add_trace(scatter(
        x=present["shap"], y=present["y"], mode="markers", name="patients", showlegend=False,
        marker=dict(size=5, color=present["value_scaled"], colorscale=VALUE_SCALE, cmin=0, cmax=1, colorbar=dict(title="feature value", tickvals=[0, 1], ticktext=["low", "high"], len=0.6)),
        customdata=present[["patient_id", "feature", "value"]], hovertemplate="%{customdata[0]}<br>%{customdata[1]} = %{customdata[2]:.3g}<br>SHAP %{x:.3f}<extra></extra>",
    ))
    fig.add_vline(x=0, line=dict(color=BLACK, width=1))
    fig.update_layout(xaxis_title=f"SHAP value ({explanation.unit})", yaxis=dict(tickvals=list(range(len(order))), ticktext=list(reversed(order)), range=[-0.6, len(order) - 0.4]),
                      height=160 + 34 * len(order), margin=dict(t=40, l=10, r=10), legend=dict(orientation="h", yanchor="top", y=-0.08, x=0), title=f"SHAP beeswarm: top {len(order)} features")
    return fig, data.drop(columns=["y"])


def importance_figure(explanation: Explanation) -> tuple[go.Figure, pd.DataFrame]:
    """Mean |SHAP| per feature, bars coloured by modality, largest at the top."""
    importance = explanation.mean_abs()
    table = importance.rename("mean_abs_shap").to_frame().assign(modality=[input_source(f) for f in importance.index])
    table.index.name = "feature"
    ordered = table.sort_values("mean_abs_shap")
    fig = go.Figure()
    for modality in INPUT_LABELS:
        part = ordered[ordered["modality"] == modality]
        if len(part):
            fig.add_trace(go.Bar(x=part["mean_abs_shap"], y=part.index, orientation="h", name=INPUT_LABELS[modality], marker_color=MODALITY_COLORS.get(modality, GREY),
                                 customdata=[FEATURE_DESCRIPTIONS.get(f, f) for f in part.index], hovertemplate="%{y}: %{x:.3f}<br>%{customdata}<extra></extra>"))
    fig.update_layout(barmode="overlay", xaxis_title=f"mean |SHAP| ({explanation.unit})", yaxis=dict(categoryorder="array", categoryarray=list(ordered.index)),
                      height=140 + 24 * len(table), margin=dict(t=60, l=10, r=10), legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0), title="Importance per feature")
    return fig, table


def modality_importance_figure(explanation: Explanation) -> tuple[go.Figure, pd.DataFrame]:
    """Sum over each modality's features of their mean |SHAP|."""
    modality_importance = explanation.mean_abs(by="modality")
    labels = [INPUT_LABELS.get(m, m) for m in modality_importance.index]
    fig = go.Figure(go.Bar(x=labels, y=modality_importance.to_numpy(), marker_color=[MODALITY_COLORS.get(m, GREY) for m in modality_importance.index],
                           text=np.round(modality_importance.to_numpy(), 3), textposition="outside", hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.update_layout(yaxis_title=f"sum of mean |SHAP| ({explanation.unit})", height=380, margin=dict(t=40, l=10, r=10), title="Importance per modality",
                      yaxis_range=[0, float(modality_importance.max()) * 1.18 if len(modality_importance) else 1])
    return fig, modality_importance.rename("sum_mean_abs_shap").to_frame()


def strongest_partner(interaction: np.ndarray | None, features: list, feature: str) -> tuple[str | None, pd.Series]:
    """The feature with the largest mean |SHAP interaction| with ``feature`` (and all partners' values)."""
    if interaction is None:
        return None, pd.Series(dtype=float)
    i = features.index(feature)
    strength = pd.Series(np.abs(interaction[:, i, :]).mean(axis=0), index=features).drop(feature).sort_values(ascending=False)
    return (strength.index[0] if len(strength) and strength.iloc[0] > 0 else None), strength


def dependence_figure(explanation: Explanation, feature: str, interaction: np.ndarray | None = None) -> tuple[go.Figure, pd.DataFrame]:
    """SHAP of ``feature`` against its value, coloured by the value of its strongest interaction
    partner (largest mean |SHAP interaction|, from ``interaction`` (n, k, k) when given)."""
    partner, _ = strongest_partner(interaction, list(explanation.feature_names), feature)
    values = explanation.data_frame()
    data = pd.DataFrame({"value": values[feature], "shap": explanation.column(feature)})
    if partner is not None:
        data[partner] = values[partner]
    shown = data[data["value"].notna()]
    fig = go.Figure()
    if partner is not None:
        has = shown[shown[partner].notna()]
        lacks = shown[shown[partner].isna()]
        lo, hi = has[partner].quantile(0.05), has[partner].quantile(0.95)
        fig.add_trace(go.Scatter(x=has["value"], y=has["shap"], mode="markers", name="patients", showlegend=False, text=has.index,
                                 marker=dict(size=7, color=has[partner], colorscale=VALUE_SCALE, cmin=lo if hi > lo else None, cmax=hi if hi > lo else None, colorbar=dict(title=partner.split(".", 1)[1], len=0.7), line=dict(width=0.3, color="white")),
                                 customdata=has[partner], hovertemplate="%{text}<br>value %{x:.3g}<br>SHAP %{y:.3f}<br>" + html.escape(partner) + " = %{customdata:.3g}<extra></extra>"))
        if len(lacks):
            fig.add_trace(go.Scatter(x=lacks["value"], y=lacks["shap"], mode="markers", name=f"{partner} missing", marker=dict(size=6, color=GREY, symbol="x-thin-open"), text=lacks.index,
                                     hovertemplate="%{text}<br>value %{x:.3g}<br>SHAP %{y:.3f}<extra></extra>"))
    else:
        fig.add_trace(go.Scatter(x=shown["value"], y=shown["shap"], mode="markers", name="patients", marker=dict(size=7, color=BLUE), text=shown.index, hovertemplate="%{text}<br>value %{x:.3g}<br>SHAP %{y:.3f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=BLACK, width=1))
    n_missing = int(data["value"].isna().sum())
    title = f"Dependence: {feature}" + (f", coloured by {partner} (strongest interaction)" if partner else "")
    fig.update_layout(xaxis_title=FEATURE_DESCRIPTIONS.get(feature, feature) + (f"  ({n_missing} patients missing it not shown)" if n_missing else ""),
                      yaxis_title=f"SHAP of {feature} ({explanation.unit})", height=460, margin=dict(t=40, l=10, r=10), title=title, legend=LEGEND_BELOW)
    return fig, data


def waterfall_figure(explanation: Explanation, title: str = "", max_features: int = 10, x_range: tuple | None = None) -> tuple[go.Figure, pd.DataFrame]:
    """One patient's explanation: base value -> largest contributions (rest summed) -> prediction.

    The axis is the explanation's output space (log-odds for the responder, with the probability
    in the title). ``x_range`` fixes the axis, so two waterfalls side by side compare at a glance.
    """
    labels, amounts = _waterfall_steps(explanation, max_features)
    base, margin = float(explanation.base_values), explanation.margin
    labels.append("prediction")
    measures = ["absolute", *["relative"] * (len(amounts) - 1), "total"]
    amounts.append(margin)
    texts = [f"{base:.2f}", *[f"{a:+.2f}" for a in amounts[1:-1]], f"{margin:.2f}"]
    unit = explanation.unit
    headline = f"log-odds {margin:.2f} → probability {explanation.output:.3f}" if explanation.is_log_odds else f"predicted improvement {margin:.1f}%"
    x_range = list(x_range or waterfall_range([explanation], max_features))
    spec = {
        "data": [{"type": "waterfall", "orientation": "h", "y": labels, "x": amounts, "measure": measures, "text": texts, "textposition": "outside", "cliponaxis": False,
                  "increasing": {"marker": {"color": VERMILLION}}, "decreasing": {"marker": {"color": BLUE}}, "totals": {"marker": {"color": PURPLE}},
                  "connector": {"line": {"color": GREY, "width": 1}}, "hovertemplate": "%{y}<br>%{x:+.3f}<extra></extra>"}],
        "layout": {"title": {"text": f"{title}{': ' if title else ''}{headline}"}, "xaxis": {"title": {"text": f"{unit}<br>(red raises, blue lowers)"}, "range": x_range, "automargin": False},
                   "yaxis": {"autorange": "reversed", "automargin": False}, "height": 140 + 30 * len(labels),
                   "margin": {"t": 50, "l": _label_margin_px(labels), "r": 40, "b": 80}, "showlegend": False},
    }
    # Unvalidated: the what-if redraws two of these per edit, and validation costs ~25 ms each.
    # The spec is fixed and checked by tests/test_components_views.py against a validated copy.
    fig = go.Figure(spec, _validate=False)
    data = pd.DataFrame({"step": labels, "measure": measures, "amount": amounts})
    return fig, data


def _label_margin_px(labels: list[str]) -> int:
    """Left margin that fits the longest bar label at the figures' 13 px font.

    Fixed instead of plotly's automargin, which draws a figure twice whenever a label's width
    changes, as it does on every what-if edit.
    """
    return 12 + 6 * max(map(len, labels))


def _waterfall_steps(explanation: Explanation, max_features: int) -> tuple[list, list]:
    """Labels and amounts of a waterfall's steps: base, largest contributions, the rest summed."""
    shap, values, base = explanation.to_series(), explanation.data_series(), float(explanation.base_values)
    order = shap.abs().sort_values(ascending=False, kind="stable").index
    shown, rest = list(order[:max_features]), list(order[max_features:])
    # An explanation over modalities (the fusion model's) starts from the logit with every modality knocked out.
    over_modalities = all(f in MODALITY_LABELS for f in shap.index)
    labels, amounts = ["base value (no modality seen)" if over_modalities else "base value (mean of training)"], [float(base)]
    for f in shown:
        v = values[f]
        if over_modalities:
            labels.append(f"{MODALITY_LABELS[f]}: {'seen' if v == 1 else 'not seen'}")
        else:
            labels.append(f"{f} = {'missing' if pd.isna(v) else f'{v:.4g}'}")
        amounts.append(float(shap[f]))
    if rest:
        labels.append(f"{len(rest)} other features")
        amounts.append(float(shap[rest].sum()))
    return labels, amounts


def waterfall_range(explanations: list, max_features: int = 10, pad: float = 0.25) -> tuple[float, float]:
    """Axis range covering every running total of the waterfalls of one-patient explanations.

    For log-odds, 0 (probability 0.5) is kept in range as a landmark; for an improvement in %,
    leaving it out keeps the contributions readable next to a large base value.
    """
    totals = np.concatenate([np.cumsum(_waterfall_steps(e, max_features)[1]) for e in explanations])
    include_zero = all(e.is_log_odds for e in explanations)
    lo, hi = float(totals.min()), float(totals.max())
    if include_zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    margin = pad * (hi - lo) + 1e-6
    return lo - margin, hi + margin


# --- ground truth -------------------------------------------------------------------------------


LABEL_FONT_PX = 11
_CHAR_PX = 0.62 * LABEL_FONT_PX  # mean glyph width of the label font
_NOMINAL_PLOT_WIDTH_PX = 460  # the narrowest plot area these figures get (half a wide page)


def place_labels(x_px: np.ndarray, y_px: np.ndarray, texts: list[str], *, width_px: float, height_px: float) -> list[tuple[float, float, str]]:
    """Where to put each point's label so that no two labels and no label and point overlap.

    Points are in pixels of the plot area (origin bottom left). Labels are placed greedily in the
    given order, each at the first free spot among offsets around its point, going further out
    in steps of 12 px until one is free, and kept inside the plot area. Returns per label ``(ax, ay, xanchor)``:
    plotly's pixel offsets of the label from its point (``ay`` negative = up) and its anchor.
    """
    boxes: list[tuple[float, float, float, float]] = []
    points = list(zip(x_px, y_px))

    def free(box) -> bool:
        x0, y0, x1, y1 = box
        if x0 < 0 or x1 > width_px or y0 < 0 or y1 > height_px:
            return False
        if any(x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1 for b in boxes):
            return False
        return not any(x0 - 4 < px < x1 + 4 and y0 - 4 < py < y1 + 4 for px, py in points)

    placed = []
    for (px, py), text in zip(points, texts):
        w, h = len(text) * _CHAR_PX + 6, LABEL_FONT_PX + 6
        choice = None
        for distance in np.arange(10.0, max(width_px, height_px), 12.0):
            for dx, dy in ((1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1)):
                cx, cy = px + dx * distance, py + dy * distance  # the label's anchor point
                x0 = cx if dx > 0 else cx - w if dx < 0 else cx - w / 2
                box = (x0, cy - h / 2, x0 + w, cy + h / 2)
                if free(box):
                    choice = (dx * distance, -dy * distance, "left" if dx > 0 else "right" if dx < 0 else "center", box)
                    break
            if choice:
                break
        if choice is None:  # crowded beyond every offset tried: straight above, on top of the rest
            choice = (0.0, -12.0, "center", (px - w / 2, py + 6, px + w / 2, py + 6 + h))
        boxes.append(choice[3])
        placed.append(choice[:3])
    return placed


def _planted_scatter(data: pd.DataFrame, labels: dict, colors: dict, names: dict, rho: float, what: str, unit: str, title: str) -> go.Figure:
    """Planted effect (x) against recovered mean |SHAP| (y), one trace per group, labels that never overlap."""
    height, plot_height = 500, 500 - 40 - 150  # figure height less the top margin and the legend and axis below
    x_top = float(data["planted_effect"].max()) * 1.08 + 1e-9
    x_low = -0.04 * x_top
    y_top = float(data["mean_abs_shap"].max()) * 1.15 + 1e-9
    fig = go.Figure()
    for group, color in colors.items():
        part = data[data["group"] == group]
        if len(part):
            fig.add_trace(go.Scatter(x=part["planted_effect"], y=part["mean_abs_shap"], mode="markers", name=names[group],
                                     marker=dict(size=11, color=color, line=dict(color="white", width=1)), customdata=list(part.index),
                                     hovertemplate="%{customdata}<br>planted %{x:.3f}<br>recovered %{y:.3f}<extra></extra>"))
    # Labels in order of importance: the most important ones get the spots next to their points.
    labelled = data.loc[[k for k in labels if k in data.index]].sort_values("mean_abs_shap", ascending=False)
    to_px = lambda v, low, high, size: (np.asarray(v, float) - low) / (high - low) * size  # noqa: E731
    spots = place_labels(to_px(labelled["planted_effect"], x_low, x_top, _NOMINAL_PLOT_WIDTH_PX), to_px(labelled["mean_abs_shap"], 0.0, y_top, plot_height),
                         [labels[k] for k in labelled.index], width_px=_NOMINAL_PLOT_WIDTH_PX, height_px=plot_height)
    for (key, row), (ax, ay, anchor) in zip(labelled.iterrows(), spots):
        fig.add_annotation(x=row["planted_effect"], y=row["mean_abs_shap"], text=labels[key], ax=ax, ay=ay, xanchor=anchor, showarrow=True, arrowhead=0,
                           arrowwidth=0.8, arrowcolor=GREY, font=dict(size=LABEL_FONT_PX), bgcolor="rgba(255,255,255,0.7)")
    fig.update_layout(xaxis=dict(title="planted effect: mean |term| on the logit scale (0 = none planted)", range=[x_low, x_top]),
                      yaxis=dict(title=f"recovered: mean |SHAP| ({unit})", range=[0, y_top]),
                      height=height, margin=dict(t=40, l=10, r=10), legend=LEGEND_BELOW, title=f"{title}: Spearman ρ = {rho:.2f} ({len(data)} {what})")
    return fig


def planted_vs_recovered(data: pd.DataFrame, rho: float, unit: str, n_labels: int = 6) -> go.Figure:
    """Planted effect (ground truth) against recovered importance (mean |SHAP|) per feature, with Spearman rho.

    ``data``: :func:`core.evaluation.ground_truth.importance_recovery`'s table (``planted_effect``,
    ``mean_abs_shap``, ``modality`` by feature); ``unit``: the SHAP values' output space in words.
    The ``n_labels`` largest by planted effect and by recovered importance are labelled, and the
    three proxies (nothing planted) that take the most credit.
    """
    proxies = data[data["planted_effect"] == 0]
    shown = set(data["planted_effect"].nlargest(n_labels).index) | set(data["mean_abs_shap"].nlargest(n_labels).index) | set(proxies["mean_abs_shap"].nlargest(3).index)
    labels = {f: f.split(".", 1)[1] for f in data.sort_values("mean_abs_shap").index if f in shown}
    return _planted_scatter(data.assign(group=data["modality"]), labels, MODALITY_COLORS, MODALITY_LABELS, rho, "features", unit, "Planted vs recovered, by feature")


def cause_recovery_figure(data: pd.DataFrame, rho: float, unit: str) -> go.Figure:
    """Planted effect against recovered importance summed by cause, with Spearman rho; every cause labelled.

    ``data``: :func:`core.evaluation.ground_truth.cause_recovery`'s table (``cause``, ``features``,
    ``planted_effect``, ``mean_abs_shap`` by cause key).
    """
    labels = {key: row["cause"] for key, row in data.sort_values("mean_abs_shap").iterrows()}
    return _planted_scatter(data.assign(group="cause"), labels, {"cause": BLUE}, {"cause": "cause (features summed)"}, rho, "causes", unit,
                            "Planted vs recovered, by cause")


def loss_curves_figure(history: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Training and held-out log-loss per epoch, one colour per fold (``history``: fold, epoch, train_loss, valid_loss)."""
    fig = go.Figure()
    for i, (fold, part) in enumerate(history.groupby("fold", sort=False)):
        colour = OKABE_ITO[i % len(OKABE_ITO)]
        fig.add_trace(go.Scatter(x=part["epoch"], y=part["train_loss"], mode="lines", line=dict(color=colour, dash="dot", width=1.5), name=f"{fold}: training",
                                 legendgroup=fold, hovertemplate=f"{fold}<br>epoch %{{x}}: training loss %{{y:.4f}}<extra></extra>"))
        fig.add_trace(go.Scatter(x=part["epoch"], y=part["valid_loss"], mode="lines+markers", line=dict(color=colour, width=2), marker=dict(size=4),
                                 name=f"{fold}: held-out", legendgroup=fold, hovertemplate=f"{fold}<br>epoch %{{x}}: held-out loss %{{y:.4f}}<extra></extra>"))
        best = part.loc[part["valid_loss"].idxmin()]
        fig.add_trace(go.Scatter(x=[best["epoch"]], y=[best["valid_loss"]], mode="markers", marker=dict(color=colour, size=11, symbol="star", line=dict(color=BLACK, width=1)),
                                 showlegend=False, legendgroup=fold, hovertemplate=f"{fold}<br>epoch used: %{{x}} (lowest held-out loss %{{y:.4f}})<extra></extra>"))
    fig.update_layout(xaxis_title="epoch", yaxis_title="log-loss (lower is better)", height=360, margin=dict(t=40, l=10, r=10),
                      title="Loss per epoch: dotted = training patients, solid = early-stopping split; star = epoch used",
                      legend=dict(font=dict(size=11)))
    return fig, history
