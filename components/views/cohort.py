"""Figures of the Cohort page: distributions, correlations, planted effects and the PREP2 check.

Pure builders: they take core objects and return plotly figures; none touches Streamlit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.palette import BLACK, GROUP_COLORS, MODALITY_COLORS, OKABE_ITO, translucent
from core.data.cohort import Cohort
from core.data.schema import FEATURE_DESCRIPTIONS, MODALITY_LABELS
from core.modelling.prep2 import CATEGORIES


def _groups(cohort: Cohort, by: str) -> pd.Series:
    if by == "responder":
        return cohort.outcomes["responder"].map({True: "responder", False: "non-responder"})
    return cohort.patients[by].astype(str)


def distribution_figure(cohort: Cohort, column: str, by: str) -> tuple[go.Figure, pd.DataFrame]:
    """Violin + box of one feature (or ``improvement_pct``) split by responder, indication or site."""
    values = cohort.outcomes[column] if column in cohort.outcomes else cohort.features[column]
    table = pd.DataFrame({column: values, by: _groups(cohort, by)}).dropna()
    fig = go.Figure()
    for i, (name, part) in enumerate(table.groupby(by, sort=True)):
        color = GROUP_COLORS.get(name, OKABE_ITO[i % len(OKABE_ITO)])
        # The box (quartiles) and the mean line are drawn in black over a translucent fill, so they show.
        fig.add_trace(go.Violin(y=part[column], name=f"{name} (n={len(part)})", points=False, spanmode="hard", line_color=color, fillcolor=translucent(color, 0.45),
                                box=dict(visible=True, width=0.15, fillcolor="white", line=dict(color=BLACK, width=1)), meanline=dict(visible=True, color=BLACK, width=1.5)))
    right = 10
    if column == "improvement_pct":
        # Labelled in the right margin, where no violin can sit under the label.
        fig.add_hline(y=cohort.responder_threshold_pct, line=dict(dash="dash", color=BLACK, width=1), annotation_position="right",
                      annotation_text=f"responder<br>threshold<br>{cohort.responder_threshold_pct:g}%", annotation_font_size=12)
        right = 90
    fig.update_layout(yaxis_title="Improvement (%)" if column == "improvement_pct" else FEATURE_DESCRIPTIONS.get(column, column), showlegend=False, height=420, margin=dict(t=40, b=40, r=right))
    return fig, table


def correlation_figure(corr: pd.DataFrame) -> go.Figure:
    """Heatmap of feature correlations, with lines between modality blocks."""
    labels = list(corr.columns)
    fig = go.Figure(go.Heatmap(z=corr.to_numpy(), x=labels, y=labels, zmin=-1, zmax=1, colorscale="RdBu_r", colorbar=dict(title="Spearman r"), hovertemplate="%{y}<br>%{x}<br>r = %{z:.2f}<extra></extra>"))
    prefixes = [c.split(".")[0] for c in labels]
    for i in range(1, len(labels)):
        if prefixes[i] != prefixes[i - 1]:
            for kw in (dict(x0=i - 0.5, x1=i - 0.5, y0=-0.5, y1=len(labels) - 0.5), dict(y0=i - 0.5, y1=i - 0.5, x0=-0.5, x1=len(labels) - 0.5)):
                fig.add_shape(type="line", line=dict(color="black", width=1.5), **kw)
    fig.update_layout(height=720, yaxis_autorange="reversed", margin=dict(l=10, r=10, t=30, b=10), xaxis_tickangle=-45)
    return fig


def planted_effects_figure(effects: pd.DataFrame) -> go.Figure:
    """Horizontal bars of each feature's planted effect, coloured by modality."""
    table = effects.sort_values("effect")
    fig = go.Figure()
    for modality, part in table.groupby("modality", sort=False):
        fig.add_trace(go.Bar(x=part["effect"], y=part["feature"], orientation="h", name=MODALITY_LABELS[modality], marker_color=MODALITY_COLORS[modality], customdata=part[["formula"]], hovertemplate="%{y}: %{x:.3f}<br>%{customdata[0]}<extra></extra>"))
    fig.update_layout(barmode="overlay", height=90 + 28 * len(table), xaxis_title="planted effect: mean |term| on the logit scale", yaxis=dict(categoryorder="array", categoryarray=table["feature"].tolist()), margin=dict(t=10, l=10), legend=dict(orientation="h", yanchor="top", y=-0.12 - 1.2 / len(table)))
    return fig


def modality_effects_figure(modality_effects: pd.Series) -> go.Figure:
    # "Diffusion MRI (DTI)" on two lines: on one it ran into the next bar's label in a half-width column.
    labels = [MODALITY_LABELS[m].replace(" (", "<br>(") for m in modality_effects.index]
    fig = go.Figure(go.Bar(x=labels, y=modality_effects.to_numpy(), marker_color=[MODALITY_COLORS[m] for m in modality_effects.index], text=np.round(modality_effects.to_numpy(), 2), textposition="outside"))
    fig.update_layout(yaxis_title="planted contribution (logit scale)", height=340, margin=dict(t=30))
    return fig


def confusion_figure(confusion: pd.DataFrame) -> go.Figure:
    """PREP2 predicted category vs observed 3-month ARAT band, counts with row percentages."""
    counts = confusion.reindex(index=CATEGORIES, columns=CATEGORIES, fill_value=0)
    share = counts.div(counts.sum(axis=1).replace(0, np.nan), axis=0) * 100
    text = [[f"{c}<br>{p:.0f}%" if np.isfinite(p) else str(c) for c, p in zip(rc, rp)] for rc, rp in zip(counts.to_numpy(), share.to_numpy())]
    fig = go.Figure(go.Heatmap(z=share.fillna(0).to_numpy(), x=list(CATEGORIES), y=list(CATEGORIES), text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=100, colorbar=dict(title="% of row")))
    fig.update_layout(xaxis_title="observed ARAT band at 3 months", yaxis_title="PREP2 prediction", yaxis_autorange="reversed", height=380, margin=dict(t=30))
    return fig
