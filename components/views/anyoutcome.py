"""Figures of the Any outcome page: held-out signed r of every method, few-shot curves, r against
similarity to the nearest seen measure, one measure's zero-shot predictions, and the costly-to-cheap
transfer curve with the most a perfect teacher could pass on.

Pure builders returning ``(figure, data)``; ``data`` is the table each figure draws (its CSV).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.palette import BLACK, BLUE, GREEN, ORANGE, PURPLE, SKY_BLUE, VERMILLION
from core.evaluation.anyoutcome import FEW_SHOT_METHODS, METHOD_LABELS, REFERENCE_METHODS, ZERO_SHOT_METHODS

__all__ = ["method_summary_figure", "few_shot_figure", "similarity_figure", "zero_shot_figure", "transfer_figure", "distillation_bound_figure", "METHOD_COLORS"]

GREY = "#999999"
METHOD_COLORS = {"zero_shot": BLUE, "nearest": ORANGE, "similarity_weighted": VERMILLION, "attribute_map": PURPLE, "population_mean": GREY,
                 "supervised": BLACK, "ceiling": GREY, "meta_matching_basic": SKY_BLUE, "meta_matching_stacked": BLUE, "xgboost_k": GREEN}
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.2, x=0)


def method_summary_figure(summary: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Mean signed r over held-out families (95% CI over families) of the zero-shot methods and references."""
    data = summary[summary["K"] == 0].set_index("method").reindex([m for m in ZERO_SHOT_METHODS + REFERENCE_METHODS if m in set(summary["method"])])
    data = data.iloc[::-1]  # first method on top
    fig = go.Figure()
    for method, row in data.iterrows():
        reference = method in REFERENCE_METHODS
        fig.add_trace(go.Scatter(
            x=[row["mean_r"]], y=[row["label"]], mode="markers", marker=dict(size=12, color=METHOD_COLORS[method], symbol="diamond" if reference else "circle"),
            error_x=dict(type="data", symmetric=False, array=[row["ci_high"] - row["mean_r"]], arrayminus=[row["mean_r"] - row["ci_low"]], color=METHOD_COLORS[method]),
            name=row["label"], showlegend=False, hovertemplate=f"{row['label']}<br>mean signed r %{{x:.3f}} (95% CI {row['ci_low']:.3f} to {row['ci_high']:.3f})<extra></extra>"))
    fig.add_vline(x=0, line=dict(color=GREY, dash="dot"))
    fig.update_layout(height=max(420, 90 + 42 * len(data)), margin=dict(l=10, r=20, t=40, b=50), title="Unseen measures: signed r over held-out families",  # as tall as the few-shot figure beside it
                      xaxis=dict(title="mean signed Pearson r (95% CI over families)", range=[min(-0.05, data["ci_low"].min() - 0.05), 1.0]),
                      yaxis=dict(automargin=True))
    return fig, data.iloc[::-1].reset_index()


def few_shot_figure(summary: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Signed r against K labelled patients for meta-matching and xgboost on the K patients, with
    zero-shot (K = 0) and the supervised reference as lines."""
    few = summary[summary["method"].isin(FEW_SHOT_METHODS)]
    fig = go.Figure()
    for offset, method in zip((-1, 0, 1), FEW_SHOT_METHODS):
        part = few[few["method"] == method].sort_values("K")
        if part.empty:
            continue
        fig.add_trace(go.Scatter(x=_dodged(part["K"], offset), y=part["mean_r"], mode="lines+markers", name=METHOD_LABELS[method], line=dict(color=METHOD_COLORS[method]),
                                 error_y=dict(type="data", symmetric=False, array=part["ci_high"] - part["mean_r"], arrayminus=part["mean_r"] - part["ci_low"]),
                                 customdata=part["K"], hovertemplate="K = %{customdata}: mean signed r %{y:.3f}<extra>" + METHOD_LABELS[method] + "</extra>"))
    zero = summary[(summary["K"] == 0)].set_index("method")["mean_r"]
    span = [few["K"].min() * 0.85, few["K"].max() * 1.15] if len(few) else [1, 100]
    references = {"zero_shot": ("dash", "Zero-shot, no labels"), "supervised": ("dot", "Supervised, all training labels")}
    for method, (dash, label) in references.items():
        if method in zero:  # references as legend entries: an annotation on the plot would sit on the curves
            fig.add_trace(go.Scatter(x=span, y=[zero[method]] * 2, mode="lines", line=dict(color=METHOD_COLORS[method], dash=dash),
                                     name=f"{label}: {zero[method]:.2f}", hoverinfo="skip"))
    fig.update_layout(height=420, margin=dict(l=10, r=20, t=40, b=10), title="Few-shot: K labelled patients of the unseen measure", legend=LEGEND_BELOW,
                      xaxis=dict(title="K labelled patients", type="log", tickvals=sorted(few["K"].unique())), yaxis=dict(title="mean signed r over families"))
    return fig, few.reset_index(drop=True)


def _dodged(x, offset: int) -> np.ndarray:
    """Positions on a log axis moved a little sideways, so error bars of methods at the same x do not hide each other."""
    return np.asarray(x, float) * 10 ** (0.025 * offset)


def similarity_figure(per_outcome: pd.DataFrame, similarity: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Each unseen measure's signed r (zero-shot and the nearest-seen baseline) against the description
    similarity to its nearest seen measure: does zero-shot only work for near-twins?"""
    zero = per_outcome[per_outcome["K"] == 0].pivot_table(index="measure", columns="method", values="r")
    data = similarity.set_index("measure").join(zero[[m for m in ("zero_shot", "nearest", "supervised") if m in zero]]).reset_index()
    fig = go.Figure()
    for method, symbol in (("supervised", "diamond-open"), ("nearest", "x"), ("zero_shot", "circle")):
        if method not in data:
            continue
        fig.add_trace(go.Scatter(x=data["similarity"], y=data[method], mode="markers", name=METHOD_LABELS[method], marker=dict(color=METHOD_COLORS[method], symbol=symbol, size=9),
                                 customdata=data[["measure", "nearest_seen"]], hovertemplate="%{customdata[0]} (nearest seen: %{customdata[1]})<br>similarity %{x:.2f}, r %{y:.3f}<extra></extra>"))
    fig.add_hline(y=0, line=dict(color=GREY, dash="dot"))
    fig.update_layout(height=440, margin=dict(l=10, r=20, t=40, b=10), title="Signed r by similarity to the nearest seen measure", legend=LEGEND_BELOW,
                      xaxis=dict(title="description similarity to the nearest seen measure (cosine)"), yaxis=dict(title="signed r on held-out patients"))
    return fig, data


def zero_shot_figure(table: pd.DataFrame, name: str) -> tuple[go.Figure, pd.DataFrame]:
    """One measure's zero-shot predictions: against the recorded values when the cohort has them, else their spread."""
    fig = go.Figure()
    if "recorded" in table:
        r = float(np.corrcoef(table["recorded"], table["zero_shot_sd"])[0, 1]) if table["zero_shot_sd"].std() > 0 else 0.0
        fig.add_trace(go.Scatter(x=table["zero_shot_sd"], y=table["recorded"], mode="markers", marker=dict(color=BLUE, size=6, opacity=0.6),
                                 text=table.index, hovertemplate="%{text}: predicted %{x:.2f} SD, recorded %{y}<extra></extra>", showlegend=False))
        fig.update_layout(title=f"{name}<br><sub>zero-shot prediction against the recorded value: signed r = {r:.2f}</sub>", yaxis=dict(title="recorded value"))
    else:
        bins = int(np.clip(round(2 * len(table) ** (1 / 3)), 10, 40))  # Rice's rule: 40 bins left 200 patients' histogram full of gaps
        fig.add_trace(go.Histogram(x=table["zero_shot_sd"], marker=dict(color=BLUE, line=dict(color="white", width=1)), nbinsx=bins, showlegend=False,
                                   hovertemplate="%{x} SD: %{y} patients<extra></extra>"))
        fig.update_layout(title=f"{name}<br><sub>zero-shot predictions of the cohort</sub>", yaxis=dict(title="patients"))
    fig.update_layout(height=420, margin=dict(l=10, r=20, t=70, b=10), xaxis=dict(title="zero-shot prediction (SD from the cohort mean; higher = higher score)"))
    return fig, table


def transfer_figure(curve: pd.DataFrame, limit: float | None = None) -> tuple[go.Figure, pd.DataFrame]:
    """AUC against cohort size of the full model (with DTI), cheap-only and the distilled student, with 95% CIs."""
    labels = {"full": "Full model (with DTI)", "cheap_only": "Cheap modalities only", "student": "Student (distilled from the DTI teacher)"}
    colors = {"full": BLACK, "cheap_only": ORANGE, "student": BLUE}
    fig = go.Figure()
    for offset, model in zip((-1, 0, 1), ("full", "cheap_only", "student")):
        part = curve[curve["model"] == model].sort_values("n_patients")
        if part.empty:
            continue
        fig.add_trace(go.Scatter(x=_dodged(part["n_patients"], offset), y=part["auc"], customdata=part["n_patients"], mode="lines+markers", name=labels[model], line=dict(color=colors[model], dash="dot" if model == "full" else "solid"),
                                 error_y=dict(type="data", symmetric=False, array=part["ci_high"] - part["auc"], arrayminus=part["auc"] - part["ci_low"]),
                                 hovertemplate="N = %{customdata}: AUC %{y:.3f}<extra>" + labels[model] + "</extra>"))
    if limit is not None:  # a legend entry, not an annotation: a label on the line would sit under the error bars
        sizes = sorted(curve["n_patients"].unique())
        fig.add_trace(go.Scatter(x=[sizes[0] * 0.85, sizes[-1] * 1.15], y=[limit, limit], mode="lines", line=dict(color=GREY, dash="dash"),
                                 name=f"Cheap-only limit ({limit:.3f})", hovertemplate=f"large-sample cheap-only limit {limit:.3f}<extra></extra>"))
    fig.update_layout(height=440, margin=dict(l=10, r=20, t=40, b=10), title="Skipping the scan: AUC by cohort size, same folds", legend={**LEGEND_BELOW, "y": -0.26},
                      xaxis=dict(title="patients (N)", type="log", tickvals=sorted(curve["n_patients"].unique())), yaxis=dict(title="AUC (95% CI)"))
    return fig, curve


BOUND_LABELS = {"full": "Full model (reads DTI)", "student": "Student taught by the DTI model", "oracle_taught": "Taught by a perfect teacher, imitation as the student's",
                "oracle_taught_alone": "Taught by a perfect teacher alone"}


def distillation_bound_figure(summary: pd.DataFrame) -> tuple[go.Figure, pd.DataFrame]:
    """Each model's AUC minus the cheap-only model's at one cohort size (mean over subsamples, 95% t interval):
    the DTI-taught student beside students taught by the true probabilities, the most a teacher could pass on."""
    colors = {"full": BLACK, "student": BLUE, "oracle_taught": SKY_BLUE, "oracle_taught_alone": GREEN}
    data = summary.reindex([m for m in BOUND_LABELS if m in summary.index]).iloc[::-1]  # first model on top
    fig = go.Figure()
    for model, row in data.iterrows():
        fig.add_trace(go.Scatter(
            x=[row["diff_vs_cheap_only"]], y=[BOUND_LABELS[model]], mode="markers", showlegend=False,
            marker=dict(size=12, color=colors[model], symbol="diamond" if model.startswith("oracle") else "circle"),
            error_x=dict(type="data", symmetric=False, array=[row["diff_ci_high"] - row["diff_vs_cheap_only"]], arrayminus=[row["diff_vs_cheap_only"] - row["diff_ci_low"]],
                         color=colors[model]),
            hovertemplate=f"{BOUND_LABELS[model]}<br>AUC minus cheap-only %{{x:+.3f}} (95% CI {row['diff_ci_low']:+.3f} to {row['diff_ci_high']:+.3f})<extra></extra>"))
    fig.add_vline(x=0, line=dict(color=GREY, dash="dot"), annotation_text="cheap-only", annotation_position="top", annotation_font_size=11)
    n = int(data["n_subsamples"].iloc[0]) if len(data) else 0
    fig.update_layout(height=120 + 46 * len(data), margin=dict(l=10, r=20, t=50, b=50), title="How much could a teacher pass on? AUC gained over cheap-only",
                      xaxis=dict(title=f"AUC minus cheap-only (mean and 95% CI over {n} subsamples)", zeroline=False), yaxis=dict(automargin=True))
    return fig, data.iloc[::-1].reset_index().assign(label=lambda t: t["model"].map(BOUND_LABELS))
