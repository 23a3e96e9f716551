"""Figures of the Ablation page: forest plot, subset lattice, modality Shapley waterfall, planted vs
recovered contributions, permutation test and the cost/performance Pareto front.

Pure builders: they take the tables of :class:`core.ablation.AblationResult` and return
``(figure, data)``, where ``data`` is the table of numbers the figure draws (the CSV export of
:func:`components.figures.show_figure`). None touches Streamlit. Colours are Okabe-Ito, one per
modality (:data:`components.palette.MODALITY_COLORS`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.palette import BLACK, BLUE, MODALITY_COLORS, SKY_BLUE, VERMILLION
from core.ablation.result import subset_modalities
from core.evaluation.metrics import METRICS

__all__ = [
    "SHORT_NAMES",
    "subset_name",
    "row_labels",
    "p_text",
    "forest_figure",
    "lattice_figure",
    "shapley_waterfall_figure",
    "planted_vs_shapley_figure",
    "permutation_figure",
    "pareto_figure",
]

GREY, LIGHT_GREY = "#999999", "#E3E3E3"
SHORT_NAMES = {"dti": "DTI", "emg": "EMG", "kin": "Kinematics", "clin": "Clinical"}
COMPACT_NAMES = {"dti": "DTI", "emg": "EMG", "kin": "Kin", "clin": "Clin"}  # labels in a crowded plot
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.16, x=0)


def _short(modality: str) -> str:
    return SHORT_NAMES.get(modality, modality)


def _color(modality: str) -> str:
    return MODALITY_COLORS.get(modality, GREY)


def subset_name(label: str) -> str:
    """``"dti+emg"`` -> ``"DTI + EMG"``."""
    return " + ".join(_short(m) for m in subset_modalities(label))


def _axis_label(metric: str) -> str:
    spec = METRICS[metric]
    return spec.label + ("" if spec.higher_is_better else " (lower is better)")


def row_labels(design: pd.DataFrame, name: str) -> list[str]:
    """One label per row of :meth:`~core.ablation.AblationResult.design`, in words."""
    if name == "leave_one_out":
        return [f"without {_short(m)}" for m in design["modality"]]
    if name == "single":
        return [f"{_short(m)} alone" for m in design["modality"]]
    if name == "add_one":
        return [f"+ {_short(m)}" + (" (vs chance)" if ref == "chance" else "") for m, ref in zip(design["modality"], design["reference"])]
    return [subset_name(s) for s in design["subset"]]


def p_text(p: float) -> str:
    """A p-value for reading: three decimals, "<0.001" below that, "—" when there is none."""
    if p is None or not np.isfinite(p):
        return "—"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


# --- forest plot --------------------------------------------------------------------------------


def forest_figure(design: pd.DataFrame, name: str) -> tuple[go.Figure, pd.DataFrame]:
    """Change in metric with its 95% CI per comparison of one design; Holm-significant rows filled.

    ``design`` is :meth:`~core.ablation.AblationResult.design` (its ``attrs`` give the metric).
    Each row's change, CI, p and Holm p are written at the right, a star marking significance.
    """
    metric = design.attrs["metric"]
    higher = design.attrs["higher_is_better"]
    labels = row_labels(design, name)
    data = design.assign(label=labels).set_index("label")
    colors = [_color(m) if m else BLACK for m in design["modality"]]
    significant = design["significant"].to_numpy(bool)
    fig = go.Figure()
    fig.add_vline(x=0, line=dict(color=BLACK, width=1.2))
    for flag, symbol, legend in ((True, "diamond", "significant (Holm p < 0.05)"), (False, "circle-open", "not significant")):
        # Legend entries in grey: the colours belong to the modalities.
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=legend, marker=dict(symbol=symbol, size=13, color="#555555", line=dict(width=2.5, color="#555555"))))
        rows = significant == flag
        if not rows.any():
            continue
        part = design[rows]
        fig.add_trace(go.Scatter(
            x=part["change"], y=np.asarray(labels)[rows], mode="markers", name=legend, showlegend=False,
            marker=dict(symbol=symbol, size=15, color=np.asarray(colors)[rows], line=dict(width=2.5, color=np.asarray(colors)[rows])),
            error_x=dict(type="data", symmetric=False, array=part["ci_high"] - part["change"], arrayminus=part["change"] - part["ci_low"], thickness=2.2, width=7, color="#555555"),
            customdata=np.stack([part["ci_low"], part["ci_high"], part["p"], part["p_holm"], part["mean"]], axis=1),
            hovertemplate="%{y}<br>change %{x:+.3f} (95% CI %{customdata[0]:+.3f} to %{customdata[1]:+.3f})<br>p = %{customdata[2]:.4f}, Holm p = %{customdata[3]:.4f}<br>"
                          f"{METRICS[metric].label} of the subset: " + "%{customdata[4]:.3f}<extra></extra>",
        ))  # fmt: skip
    mono = dict(size=12, family="monospace")
    for label, row in zip(labels, design.itertuples()):
        star = " ✱" if row.significant else ""
        fig.add_annotation(xref="paper", x=1.01, xanchor="left", y=label, yref="y", showarrow=False, align="left", font=mono,
                           text=f"{row.change:+.3f} [{row.ci_low:+.3f}, {row.ci_high:+.3f}]  {p_text(row.p):>6}  {p_text(row.p_holm):>6}{star}")
    fig.add_annotation(xref="paper", x=1.01, xanchor="left", yref="paper", y=1.0, yanchor="bottom", showarrow=False, align="left", font=mono,
                       text=f"<b>{'change [95% CI]':<23}  {'p':>6}  {'Holm p':>6}</b>")
    better = "better →" if higher else "← better"
    reference = {"leave_one_out": "the full model", "single": "the full model", "add_one": "the previous step", "all_subsets": "the full model"}[name]
    span = max(float(design["ci_high"].max()), 0.0) - min(float(design["ci_low"].min()), 0.0)
    fig.update_layout(
        xaxis=dict(title=f"change in {_axis_label(metric)} against {reference}   ({better})", zeroline=False,
                   range=[min(float(design["ci_low"].min()), 0.0) - 0.08 * span, max(float(design["ci_high"].max()), 0.0) + 0.08 * span]),
        yaxis=dict(type="category", autorange="reversed", categoryorder="array", categoryarray=labels),
        height=150 + 46 * len(design), margin=dict(t=40, l=10, r=330, b=40), legend=dict(orientation="h", yanchor="bottom", y=1.0, x=0, xanchor="left"),
    )
    columns = ["subset", "modality", "reference", "mean", "change", "ci_low", "ci_high", "t", "p", "p_holm", "significant"]
    return fig, data[columns]


# --- all subsets: an UpSet-style lattice --------------------------------------------------------


def lattice_figure(subsets: pd.DataFrame, modalities: list[str]) -> tuple[go.Figure, pd.DataFrame]:
    """Mean metric with its 95% CI for every subset (top) above a dot matrix of its modalities.

    Subsets are ordered by size, and within a size from best to worst; the dashed line is the full
    model's mean.
    """
    metric = subsets.attrs["metric"]
    higher = subsets.attrs["higher_is_better"]
    key = subsets["mean"] if higher else -subsets["mean"]
    table = subsets.assign(_key=key).sort_values(["n_modalities", "_key"], ascending=[True, False], kind="stable").drop(columns="_key").reset_index(drop=True)
    table.insert(1, "name", [subset_name(s) for s in table["subset"]])
    x = np.arange(len(table))
    full = table[table["n_modalities"] == len(modalities)].iloc[0]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3], vertical_spacing=0.03)
    is_full = (table["n_modalities"] == len(modalities)).to_numpy()
    fig.add_trace(go.Scatter(
        x=x, y=table["mean"], mode="markers", name="mean over folds (95% CI)", showlegend=False,
        marker=dict(size=13, color=np.where(is_full, BLACK, BLUE), symbol=np.where(is_full, "diamond", "circle")),
        error_y=dict(type="data", symmetric=False, array=table["ci_high"] - table["mean"], arrayminus=table["mean"] - table["ci_low"], thickness=2, width=6, color="#555555"),
        customdata=np.stack([table["name"], table["ci_low"], table["ci_high"], table["change"], table["p_holm"].fillna(np.nan)], axis=1),
        hovertemplate="%{customdata[0]}<br>" + METRICS[metric].label + " %{y:.3f} (95% CI %{customdata[1]:.3f} to %{customdata[2]:.3f})"
                      "<br>vs full model %{customdata[3]:+.3f}, Holm p %{customdata[4]:.3f}<extra></extra>",
    ), row=1, col=1)  # fmt: skip
    # Dot matrix: one row per modality, a filled dot where the subset has it, joined by a line.
    for j, subset in enumerate(table["subset"]):
        members = subset_modalities(subset)
        ys = [_short(m) for m in modalities if m in members]
        if len(ys) > 1:
            fig.add_trace(go.Scatter(x=[j] * len(ys), y=ys, mode="lines", line=dict(color="#555555", width=2.5), showlegend=False, hoverinfo="skip"), row=2, col=1)
    for m in modalities:
        has = table[m].to_numpy(bool)
        fig.add_trace(go.Scatter(x=x, y=[_short(m)] * len(table), mode="markers", showlegend=False, name=_short(m),
                                 marker=dict(size=15, color=np.where(has, _color(m), LIGHT_GREY), line=dict(color="white", width=1)),
                                 customdata=table["name"], hovertemplate="%{customdata}<extra></extra>"), row=2, col=1)
    # Alternate shading per subset size, and the size written above each group (after the traces:
    # plotly leaves shapes out of subplots that are still empty).
    for size, part in table.groupby("n_modalities"):
        lo, hi = part.index.min() - 0.5, part.index.max() + 0.5
        if size % 2 == 0:
            for row in (1, 2):
                fig.add_vrect(x0=lo, x1=hi, fillcolor="#EFEFEF", line_width=0, layer="below", row=row, col=1)
        fig.add_annotation(x=(lo + hi) / 2, y=1.0, xref="x", yref="paper", yanchor="bottom", showarrow=False, font=dict(size=12, color="#555555"),
                           text=f"{size} modalit{'y' if size == 1 else 'ies'}")
    # Labelled in the right margin: inside the plot the label would sit on a subset's error bar.
    fig.add_hline(y=float(full["mean"]), line=dict(color=BLACK, dash="dash", width=1), row=1, col=1, annotation_text="full<br>model", annotation_position="right")
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, range=[-0.6, len(table) - 0.4])
    fig.update_yaxes(title_text=_axis_label(metric), row=1, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=[_short(m) for m in reversed(modalities)], showgrid=False, row=2, col=1)
    fig.update_layout(height=560, margin=dict(t=40, l=10, r=55, b=10), showlegend=False)
    data = table.set_index("subset")
    return fig, data


# --- modality Shapley values ----------------------------------------------------------------------


def shapley_waterfall_figure(shapley: pd.DataFrame, chance: float, full: pd.Series) -> tuple[go.Figure, pd.DataFrame]:
    """From chance to the full model, one step per modality (its Shapley value), CIs as error bars.

    ``shapley`` is :meth:`~core.ablation.AblationResult.shapley` (values in "gain above chance"
    units, larger is better); ``chance`` the metric's mean chance level; ``full`` the full
    model's row of :meth:`~core.ablation.AblationResult.subsets` (``mean``, ``ci_low``,
    ``ci_high``). For error metrics (Brier, MAE, RMSE) the steps go down.
    """
    metric = shapley.attrs["metric"]
    sign = 1.0 if METRICS[metric].higher_is_better else -1.0
    steps = sign * shapley["value"].to_numpy()
    ends = chance + np.cumsum(steps)
    starts = ends - steps
    low = sign * shapley["ci_low"].to_numpy()
    high = sign * shapley["ci_high"].to_numpy()
    err_plus, err_minus = np.maximum(low, high) - steps, steps - np.minimum(low, high)
    values = np.concatenate([[chance, full["mean"], full["ci_low"], full["ci_high"]], starts + np.minimum(low, high), starts + np.maximum(low, high), ends])
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    pad = 0.12 * (hi - lo) + 1e-9
    floor = lo - pad
    shares = shapley["share"].to_numpy()
    names = [f"<b>+ {_short(m)}</b><br>{s:+.3f} ({100 * sh:.0f}%)" for m, s, sh in zip(shapley.index, steps, shares)]
    first, last = f"<b>chance</b><br>{chance:.3f}", f"<b>full model</b><br>{full['mean']:.3f}"
    x = [first, *names, last]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[first], y=[chance - floor], base=[floor], marker_color=GREY, name="chance",
                         hovertemplate=f"chance level: {chance:.3f}<br>{METRICS[metric].chance}<extra></extra>"))
    fig.add_trace(go.Bar(
        x=names, y=steps, base=starts, marker_color=[_color(m) for m in shapley.index], name="Shapley value",
        error_y=dict(type="data", symmetric=False, array=err_plus, arrayminus=err_minus, thickness=2, width=8, color="#444444"),
        customdata=np.stack([shapley["ci_low"], shapley["ci_high"], shapley["p_holm"], 100 * shares], axis=1),
        hovertemplate="%{customdata[3]:.0f}% of the gain<br>Shapley value %{y:+.3f} (95% CI %{customdata[0]:+.3f} to %{customdata[1]:+.3f})<br>Holm p %{customdata[2]:.4f}<extra></extra>",
    ))  # fmt: skip
    fig.add_trace(go.Bar(
        x=[last], y=[full["mean"] - floor], base=[floor], marker_color=BLACK, name="full model",
        error_y=dict(type="data", symmetric=False, array=[full["ci_high"] - full["mean"]], arrayminus=[full["mean"] - full["ci_low"]], thickness=2, width=8, color="#444444"),
        hovertemplate=f"full model: {full['mean']:.3f} (95% CI {full['ci_low']:.3f} to {full['ci_high']:.3f})<extra></extra>",
    ))  # fmt: skip
    running = [chance, *ends]
    for i, level in enumerate(running):  # dotted connectors from each running total to the next bar
        fig.add_shape(type="line", x0=i - 0.4, x1=i + 1.4, y0=level, y1=level, xref="x", yref="y", line=dict(color=GREY, width=1, dash="dot"))
    fig.update_layout(
        xaxis=dict(categoryorder="array", categoryarray=x), yaxis=dict(title=_axis_label(metric), range=[floor, hi + pad]),
        height=480, margin=dict(t=50, l=10, r=10, b=40), showlegend=False, bargap=0.35,
        title=f"From chance to the full model: {sign * shapley.attrs['total']:+.3f} {METRICS[metric].label}",
    )
    data = shapley.assign(step=steps, start=starts, end=ends).rename_axis("modality")
    data.attrs = {}
    return fig, data


def planted_vs_shapley_figure(table: pd.DataFrame, rho: float) -> tuple[go.Figure, pd.DataFrame]:
    """Each modality's share of the planted contributions beside its share of the Shapley values.

    ``table`` and ``rho``: :func:`core.evaluation.ground_truth.modality_recovery` (planted and
    Shapley values, their shares and ranks per modality; Spearman's rho). Shares make the two
    scales comparable.
    """
    data = table.copy()
    data = data.sort_values("planted", ascending=True, kind="stable")
    data.index.name = "modality"
    names = [_short(m) for m in data.index]
    colors = [_color(m) for m in data.index]
    fig = go.Figure()
    for name, group, marker in (("recovered (Shapley)", "shapley", dict(color="#777777")), ("planted (ground truth)", "planted", dict(color="#777777", opacity=0.45, pattern=dict(shape="/", fgcolor="#333333")))):
        # Legend entries in grey (the colours are the modalities'), sharing their bars' slot.
        fig.add_trace(go.Bar(y=[None], x=[None], orientation="h", name=name, marker=marker, offsetgroup=group))
    fig.add_trace(go.Bar(y=names, x=100 * data["planted_share"], orientation="h", name="planted (ground truth)", showlegend=False, offsetgroup="planted", marker=dict(color=colors, opacity=0.45, pattern=dict(shape="/", fgcolor="#333333")),
                         text=[f"{100 * v:.0f}% · #{r}" for v, r in zip(data["planted_share"], data["planted_rank"])], textposition="outside",
                         hovertemplate="%{y}: planted %{x:.0f}% of the total<extra></extra>"))
    fig.add_trace(go.Bar(y=names, x=100 * data["shapley_share"], orientation="h", name="recovered (Shapley)", showlegend=False, offsetgroup="shapley", marker=dict(color=colors),
                         text=[f"{100 * v:.0f}% · #{r}" for v, r in zip(data["shapley_share"], data["shapley_rank"])], textposition="outside",
                         hovertemplate="%{y}: Shapley %{x:.0f}% of the full model's gain<extra></extra>"))
    top = float(np.nanmax(100 * data[["planted_share", "shapley_share"]].to_numpy())) if len(data) else 100.0
    fig.update_layout(barmode="group", yaxis=dict(type="category", categoryorder="array", categoryarray=names), xaxis=dict(title="share of the total (%)", range=[min(0.0, float(np.nanmin(100 * data["shapley_share"]))) * 1.2, top * 1.3]),
                      height=470, margin=dict(t=50, l=10, r=10, b=40), legend=LEGEND_BELOW, title=f"Planted vs recovered: Spearman ρ = {rho:.2f}")
    return fig, data


# --- permutation test -------------------------------------------------------------------------------


def permutation_figure(test: dict) -> tuple[go.Figure, pd.DataFrame]:
    """Histogram of the metric on label-permuted data, the observed value and the 95% line.

    ``test`` is :meth:`~core.ablation.AblationResult.permutation_test`.
    """
    metric = test["metric"]
    null = np.asarray(test["null"], dtype=float)
    fig = go.Figure(go.Histogram(x=null, nbinsx=max(10, min(40, null.size // 2)), marker_color=SKY_BLUE, name="permuted labels", hovertemplate="%{x}: %{y} permutations<extra></extra>"))
    fig.add_vline(x=test["observed"], line=dict(color=VERMILLION, width=3), annotation_text=f"observed {test['observed']:.3f}", annotation_position="top left" if METRICS[metric].higher_is_better else "top right",
                  annotation_font=dict(color=VERMILLION, size=13))
    if np.isfinite(test["null_quantile_95"]):
        fig.add_vline(x=test["null_quantile_95"], line=dict(color=BLACK, dash="dash", width=1.5), annotation_text="95th percentile" if METRICS[metric].higher_is_better else "5th percentile",
                      annotation_position="top right" if METRICS[metric].higher_is_better else "top left")
    values = np.concatenate([null[np.isfinite(null)], [test["observed"]]])
    pad = 0.08 * (values.max() - values.min()) + 1e-9
    fig.update_layout(xaxis=dict(title=f"{_axis_label(metric)} of the full model, first repeat's folds", range=[values.min() - pad, values.max() + pad]), yaxis_title="permutations", height=400, margin=dict(t=50, l=10, r=10, b=40), showlegend=False,
                      title=f"Permutation test: p = {test['p_value']:.3f} ({test['n_permutations']} permutations)", bargap=0.05)
    data = pd.DataFrame({"permutation": np.arange(null.size), metric: null}).set_index("permutation")
    data.attrs = {}
    return fig, data


# --- cost / benefit ------------------------------------------------------------------------------


def pareto_figure(pareto: pd.DataFrame, cost_label: str) -> tuple[go.Figure, pd.DataFrame]:
    """Every subset by cost and mean metric (95% CI); the Pareto-optimal ones joined and labelled
    (``Kin`` kinematics, ``Clin`` clinical).

    ``pareto`` is :meth:`~core.ablation.AblationResult.pareto_front`.
    """
    metric = pareto.attrs["metric"]
    table = pareto.copy()
    table.insert(1, "name", [subset_name(s) for s in table["subset"]])
    front = table[table["pareto"]].sort_values("cost", kind="stable")
    rest = table[~table["pareto"]]
    fig = go.Figure()
    hover = "%{customdata[0]}<br>cost %{x:.4g}<br>" + METRICS[metric].label + " %{y:.3f} (95% CI %{customdata[1]:.3f} to %{customdata[2]:.3f})<extra></extra>"
    fig.add_trace(go.Scatter(x=rest["cost"], y=rest["mean"], mode="markers", name="dominated (another subset costs no more and does at least as well)",
                             marker=dict(size=11, color="white", line=dict(color=GREY, width=2)),
                             error_y=dict(type="data", symmetric=False, array=rest["ci_high"] - rest["mean"], arrayminus=rest["mean"] - rest["ci_low"], color=LIGHT_GREY, thickness=1.5, width=4),
                             customdata=np.stack([rest["name"], rest["ci_low"], rest["ci_high"]], axis=1) if len(rest) else None, hovertemplate=hover))
    fig.add_trace(go.Scatter(x=front["cost"], y=front["mean"], mode="lines+markers", name="Pareto front", line=dict(color=BLUE, width=2.5, shape="hv"),
                             marker=dict(size=14, color=BLUE, symbol="diamond"),
                             error_y=dict(type="data", symmetric=False, array=front["ci_high"] - front["mean"], arrayminus=front["mean"] - front["ci_low"], color=BLUE, thickness=1.5, width=5),
                             customdata=np.stack([front["name"], front["ci_low"], front["ci_high"]], axis=1), hovertemplate=hover))
    for i, (cost, mean, subset) in enumerate(zip(front["cost"], front["mean"], front["subset"])):
        # Up and to the left, clear of the step line; alternate heights so neighbours do not collide.
        fig.add_annotation(x=cost, y=mean, text="+".join(COMPACT_NAMES.get(m, m) for m in subset_modalities(subset)), showarrow=True, arrowhead=0, arrowcolor=GREY,
                           ax=-18, ay=-28 - 22 * (i % 2), xanchor="right", font=dict(size=12, color=BLACK), bgcolor="rgba(255,255,255,0.85)")
    span = float(table["cost"].max() - table["cost"].min()) or 1.0
    fig.update_layout(xaxis=dict(title=cost_label, range=[float(table["cost"].min()) - 0.2 * span, float(table["cost"].max()) + 0.08 * span]), yaxis_title=_axis_label(metric),
                      height=480, margin=dict(t=40, l=10, r=10, b=40), legend=LEGEND_BELOW, title="Cost against performance: the Pareto front")
    data = table.set_index("subset")
    data.attrs = {}
    return fig, data
