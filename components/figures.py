"""How every figure is shown: with its image export (PNG/SVG) and its numbers as CSV, and the
orthogonal-slice brain viewer with its crosshair.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from components import state
from components.views.slices import AXIS_NAMES, orthogonal_slices_figure, ras_grid, snap_to_grid
from core.data.schema import FEATURE_DESCRIPTIONS

# Plotly's toolbar (shown on hover) is about this tall, drawn over the top right of the figure.
MODEBAR_STRIP_PX = 30
PLOTLY_DEFAULT_HEIGHT_PX = 450
PLOTLY_DEFAULT_MARGIN_TOP_PX = 100
TITLE_GAP_PX = 8  # between the strip and a title placed by Plotly


def _drawn_above_plot(fig: go.Figure) -> bool:
    """Whether a title, legend or annotation sits in the figure's top margin."""
    layout = fig.layout
    if layout.title.text:
        return True
    legend = layout.legend
    if layout.showlegend is not False and legend.y is not None and (legend.yref == "container" or legend.y >= 1):
        return True
    return any(a.yref in ("paper", "container") and a.y is not None and a.y >= 1 for a in layout.annotations)


def clear_modebar_strip(fig: go.Figure) -> go.Figure:
    """Lower everything drawn in the top margin by the toolbar's height, so the toolbar never covers a
    title, subtitle, legend or label. The figure grows by that height; figures with nothing in their
    top margin are left as they are, and a figure already lowered is not lowered again."""
    if getattr(fig, "_modebar_strip_cleared", False) or not _drawn_above_plot(fig):
        return fig
    fig._modebar_strip_cleared = True
    layout = fig.layout
    old_height = layout.height or PLOTLY_DEFAULT_HEIGHT_PX
    old_top = layout.margin.t if layout.margin.t is not None else PLOTLY_DEFAULT_MARGIN_TOP_PX
    height = old_height + MODEBAR_STRIP_PX
    fig.update_layout(height=height, margin_t=old_top + MODEBAR_STRIP_PX)

    def lowered(y_container: float) -> float:
        return 1 - (MODEBAR_STRIP_PX + (1 - y_container) * old_height) / height

    title = layout.title
    if title.text and title.yref in (None, "container"):
        if title.y in (None, "auto"):  # Plotly would centre it in the top margin: put it just under the strip
            fig.update_layout(title=dict(yref="container", y=lowered(1 - TITLE_GAP_PX / old_height), yanchor="top"))
        else:
            fig.update_layout(title_y=lowered(title.y))
    if layout.legend.yref == "container" and layout.legend.y is not None:
        fig.update_layout(legend_y=lowered(layout.legend.y))
    return fig


def show_figure(fig: go.Figure, *, key: str, data: pd.DataFrame | None = None, filename: str = "figure") -> None:
    """Render a figure with image export (camera button) and, when given, its numbers as CSV."""
    fig.layout.font.size = 13
    clear_modebar_strip(fig)
    config = {"displaylogo": False, "toImageButtonOptions": {"format": state.image_format(), "filename": filename, "scale": 2}}
    st.plotly_chart(fig, width="stretch", config=config, key=f"fig-{key}")
    if data is not None:
        st.download_button(
            "Numbers behind this figure (CSV)",
            data.to_csv().encode(),
            file_name=f"{filename}.csv",
            mime="text/csv",
            key=f"csv-{key}",
            icon=":material/download:",
        )


def column_label(column: str) -> str:
    """Human label of an outcome or feature column, with its name for features."""
    if column == "improvement_pct":
        return "Improvement (%)"
    return f"{FEATURE_DESCRIPTIONS[column]}  [{column}]" if column in FEATURE_DESCRIPTIONS else column


def brain_slice_viewer(
    background,
    affine,
    overlay=None,
    mask=None,
    *,
    key: str,
    default_crosshair_mm=None,
    **figure_kwargs,
) -> tuple[float, float, float]:
    """Streamlit widget: crosshair sliders (mm), a jump-to-mask button, the slice figure and the value there.

    All widget state lives under session-state keys starting with ``key``, so several viewers can share a
    page. ``default_crosshair_mm`` defaults to the origin (or the grid centre when the origin is off the
    grid). ``figure_kwargs`` go to :func:`orthogonal_slices_figure`. Returns the crosshair in mm.
    """
    grid = ras_grid(background, affine, overlay, mask)
    axes_mm = [grid.axis_mm(a) for a in range(3)]
    state_keys = [f"{key}_{name}_mm" for name in AXIS_NAMES]

    if default_crosshair_mm is None:
        try:
            default = snap_to_grid(grid, (0.0, 0.0, 0.0))
        except ValueError:
            default = tuple(float(ax[len(ax) // 2]) for ax in axes_mm)
    else:
        default = snap_to_grid(grid, default_crosshair_mm)
    for state_key, axis, value in zip(state_keys, axes_mm, default):
        # Reset when absent, or left over from a different grid (e.g. another uploaded volume).
        current = state.widget_value(state_key)
        if current is None or not axis[0] - 1e-6 <= current <= axis[-1] + 1e-6:
            state.set_widget_value(state_key, value)

    mask_centre = grid.mask_centre_mm()

    def jump_to_mask():
        # Runs as a callback, i.e. before the sliders are built, the only time their state may be set.
        for state_key, value in zip(state_keys, mask_centre):
            state.set_widget_value(state_key, value)

    columns = st.columns(3)
    for column, name, state_key, axis, step in zip(columns, AXIS_NAMES, state_keys, axes_mm,
                                                   grid.voxel_size_mm()):
        column.slider(f"{name} (mm)", min_value=float(axis[0]), max_value=float(axis[-1]),
                      step=float(step), key=state_key)
    crosshair = tuple(float(state.widget_value(k)) for k in state_keys)
    ijk = grid.nearest_voxel(crosshair)

    info = iter(st.columns(1 + (grid.overlay is not None) + 2 * (grid.mask is not None),
                           vertical_alignment="bottom"))
    background_name = figure_kwargs.pop("background_name", "Background")
    next(info).metric(f"{background_name} at crosshair", f"{float(grid.background[ijk]):.3g}",
                      help=f"Voxel (i, j, k) = {ijk} of the RAS-oriented grid.")
    if grid.overlay is not None:
        overlay_name = figure_kwargs.get("overlay_name", "overlay")
        next(info).metric(f"{overlay_name} at crosshair", f"{float(grid.overlay[ijk]):.3g}")
    if grid.mask is not None:
        mask_name = figure_kwargs.get("mask_name", "mask")
        next(info).metric(f"In {mask_name}", "yes" if grid.mask[ijk] else "no")
        next(info).button(f"Jump to {mask_name} centre", key=f"{key}_jump", on_click=jump_to_mask,
                          disabled=mask_centre is None, help=None if mask_centre else "The mask is empty.")

    fig = orthogonal_slices_figure(grid.background, grid.affine, grid.overlay, grid.mask, crosshair,
                                   **figure_kwargs)
    st.plotly_chart(
        clear_modebar_strip(fig),
        key=f"{key}_chart",
        config={
            "displaylogo": False,
            # The app-wide PNG/SVG choice, at the size shown and doubled for print.
            "toImageButtonOptions": {"format": state.image_format(), "filename": f"{key}_slices", "scale": 2},
        },
    )
    return crosshair
