"""Figures and tables of the TMS threshold-maps page: plotly builders over ``core.tms`` objects.

Every builder is pure (no streamlit): it takes a ``core.tms.maps.ThresholdMap`` (or plain arrays)
and returns a plotly figure or a DataFrame, so the page's panels and the tests share them.

Quantities shown on the surface (``QUANTITIES``):

- ``"efield"``: |E| at the soma layer (V/m) at the chosen intensity;
- ``"threshold"``: median coil threshold over rotations and variants (A/us); NaN (grey) where
  it is above the stimulator range or the site was screened out;
- ``"fraction"``: the share of the (rotation, variant) cells activated at the chosen intensity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.palette import BLACK, ORANGE, SKY_BLUE, VERMILLION

__all__ = [
    "CELL_LABELS",
    "QUANTITIES",
    "cross_sections_figure",
    "map_values",
    "surface_figure",
    "surrogate_report_table",
    "threshold_histogram",
]

def _scale(name: str, reverse: bool = False) -> list:
    """A plotly sequential scale as explicit stops. Streamlit's plotly theme swaps colours
    "#000001".."#0000ff" for theme colours (inferno starts at "#000004"), so those are nudged."""
    colours = list(getattr(plotly.colors.sequential, name))
    colours = [("#01000a" if c.lower().startswith("#0000") else c) for c in colours]
    colours = colours[::-1] if reverse else colours
    return [[i / (len(colours) - 1), c] for i, c in enumerate(colours)]


QUANTITIES = {
    "efield": ("|E| (V/m)", _scale("Inferno")),
    "threshold": ("threshold (A/µs)", _scale("Viridis", reverse=True)),
    "fraction": ("activated fraction", _scale("Viridis")),
}
CELL_LABELS = {"L23_PC": "L2/3 pyramidal cell", "L4_LBC": "L4 large basket cell", "L5_PC": "L5 pyramidal cell"}
NAN_GREY = "#BDBDBD"
HANDLE_LENGTH_MM = 30.0
DIRECTION_LETTERS = "LRPAIS"  # low and high end of x, y, z in RAS mm: left-right, posterior-anterior, inferior-superior
COMPASS_RADIUS_MM = 45.0  # from the coil centre to the direction letters
SLICE_HALF_WIDTH_MM = 2.0


def map_values(tmap, cell_type: str, quantity: str, intensity_a_per_us: float) -> np.ndarray:
    """(n,) values of one quantity of ``QUANTITIES`` on the map's vertices (NaN = none)."""
    if quantity == "efield":
        return tmap.efield_magnitude_v_per_m(cell_type, intensity_a_per_us)
    if quantity == "threshold":
        return tmap.median_threshold_a_per_us(cell_type)
    if quantity == "fraction":
        return tmap.fraction_activated(cell_type, intensity_a_per_us)
    raise ValueError(f"unknown quantity {quantity!r}; expected one of {list(QUANTITIES)}")


def _colour_range(values: np.ndarray, quantity: str, cap: float) -> tuple[float, float]:
    if quantity == "fraction":
        return 0.0, 1.0
    finite = values[np.isfinite(values)]
    if not len(finite):
        return 0.0, 1.0
    if quantity == "threshold":
        return float(finite.min()), float(cap)
    return 0.0, float(finite.max())


def surface_figure(positions_mm, faces, values, quantity: str, placement, *, max_intensity_a_per_us: float = 300.0,
                   title: str = "", height: int = 640) -> go.Figure:
    """Plotly mesh of one hemisphere coloured by ``values`` (NaN faces in grey), with the coil.

    The camera looks down the coil axis at the coil centre; a marker shows the centre and a line
    the handle direction (``HANDLE_LENGTH_MM``).
    """
    pos = np.round(np.asarray(positions_mm, float), 1)
    faces = np.asarray(faces)
    values = np.asarray(values, float)
    label, scale = QUANTITIES[quantity]
    cmin, cmax = _colour_range(values, quantity, max_intensity_a_per_us)
    finite_face = np.all(np.isfinite(values[faces]), axis=1)
    fig = go.Figure()
    x, y, z = pos.T
    if (~finite_face).any():
        grey = faces[~finite_face]
        fig.add_trace(go.Mesh3d(x=x, y=y, z=z, i=grey[:, 0], j=grey[:, 1], k=grey[:, 2], color=NAN_GREY,
                                name="above range", hoverinfo="skip", showscale=False, flatshading=False,
                                lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1)))
    if finite_face.any():
        shown = faces[finite_face]
        fig.add_trace(go.Mesh3d(
            x=x, y=y, z=z, i=shown[:, 0], j=shown[:, 1], k=shown[:, 2], intensity=np.where(np.isfinite(values), values, cmin),
            intensitymode="vertex", colorscale=scale, cmin=cmin, cmax=cmax, name=label,
            colorbar=dict(title=dict(text=label, side="right"), len=0.75, thickness=16),
            hovertemplate="x %{x} y %{y} z %{z} mm<br>" + label + " %{intensity:.3g}<extra></extra>",
            lighting=dict(ambient=0.55, diffuse=0.6, specular=0.1)))
    centre = np.asarray(placement.centre_mm, float)
    handle = np.asarray(placement.handle_direction, float)
    tip = centre + HANDLE_LENGTH_MM * handle
    fig.add_trace(go.Scatter3d(x=[centre[0]], y=[centre[1]], z=[centre[2]], mode="markers", name="coil centre",
                               marker=dict(size=7, color=VERMILLION, line=dict(color=BLACK, width=1))))
    fig.add_trace(go.Scatter3d(x=[centre[0], tip[0]], y=[centre[1], tip[1]], z=[centre[2], tip[2]], mode="lines",
                               name="handle", line=dict(color=ORANGE, width=8)))
    normal = np.asarray(placement.normal, float)
    span = pos.max(axis=0) - pos.min(axis=0)
    middle = 0.5 * (pos.max(axis=0) + pos.min(axis=0))
    # Directions instead of mm axes: the camera is close to the coil, so axes' ticks and titles fall
    # outside the view and are cut off. A compass around the coil centre, in the plane under the coil and
    # above the cortex, names each direction that plane shows; it turns with the scene.
    compass = []
    for letter, direction in zip(DIRECTION_LETTERS, np.repeat(np.eye(3), 2, axis=0) * np.tile([-1.0, 1.0], 3)[:, None]):
        along_plane = direction - (direction @ normal) * normal
        if np.linalg.norm(along_plane) > 0.6:
            compass.append((letter, centre + COMPASS_RADIUS_MM * along_plane / np.linalg.norm(along_plane) + 0.25 * COMPASS_RADIUS_MM * normal))
    fig.add_trace(go.Scatter3d(x=[p[0] for _, p in compass], y=[p[1] for _, p in compass], z=[p[2] for _, p in compass], mode="text",
                               text=[letter for letter, _ in compass], textfont=dict(size=18, color=SKY_BLUE, weight="bold"), name="directions",
                               showlegend=False, hoverinfo="skip"))
    look_at = (centre - middle) / span.max()  # scene coordinates with aspectmode="data"
    look_at = 0.5 * look_at
    eye = look_at + 1.5 * normal
    fig.update_layout(
        height=height, title=title, margin=dict(l=0, r=0, t=40 if title else 10, b=0), showlegend=True,
        legend=dict(orientation="h", yanchor="bottom", y=0.0, x=0.0),
        scene=dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False, zaxis_visible=False,
                   camera=dict(eye=dict(x=eye[0], y=eye[1], z=eye[2]), center=dict(x=look_at[0], y=look_at[1], z=look_at[2]),
                               up=dict(x=0, y=1, z=0) if abs(normal[1]) < 0.9 else dict(x=0, y=0, z=1))),
    )
    return fig


def threshold_histogram(thresholds_a_per_us, intensity_a_per_us: float, max_intensity_a_per_us: float,
                        label: str = "") -> tuple[go.Figure, pd.DataFrame]:
    """Histogram of the finite median thresholds (A/us), with a line at the chosen intensity."""
    t = np.asarray(thresholds_a_per_us, float)
    finite = t[np.isfinite(t)]
    fig = go.Figure(go.Histogram(x=finite, xbins=dict(start=0, end=max_intensity_a_per_us, size=max_intensity_a_per_us / 60),
                                 marker_color="#0072B2", name=label))
    fig.add_vline(x=intensity_a_per_us, line_dash="dash", line_color=VERMILLION,
                  annotation_text=f"intensity {intensity_a_per_us:g} A/µs", annotation_position="top left")
    fig.update_layout(height=340, xaxis_title="median threshold (A/µs)", yaxis_title="vertices", bargap=0.05,
                      xaxis_range=[0, max_intensity_a_per_us], margin=dict(t=30, b=40), showlegend=False)
    return fig, pd.DataFrame({"threshold_a_per_us": finite})


def cross_sections_figure(positions_mm, values, quantity: str, crosshair_mm, *,
                          max_intensity_a_per_us: float = 300.0) -> tuple[go.Figure, pd.DataFrame]:
    """Three orthogonal cross-sections of the surface through ``crosshair_mm``.

    Each panel shows the vertices within ``SLICE_HALF_WIDTH_MM`` of the plane (sagittal x,
    coronal y, axial z) as points coloured by the map; NaN points in grey.
    """
    pos = np.asarray(positions_mm, float)
    values = np.asarray(values, float)
    c = np.asarray(crosshair_mm, float)
    label, scale = QUANTITIES[quantity]
    cmin, cmax = _colour_range(values, quantity, max_intensity_a_per_us)
    panels = ((0, 1, 2, f"Sagittal x = {c[0]:.0f} mm"), (1, 0, 2, f"Coronal y = {c[1]:.0f} mm"), (2, 0, 1, f"Axial z = {c[2]:.0f} mm"))
    fig = make_subplots(rows=1, cols=3, subplot_titles=[p[3] for p in panels], horizontal_spacing=0.09)
    rows = []
    for col, (fixed, h, v, name) in enumerate(panels, start=1):
        near = np.abs(pos[:, fixed] - c[fixed]) <= SLICE_HALF_WIDTH_MM
        ok = near & np.isfinite(values)
        grey = near & ~np.isfinite(values)
        axes = "xyz"
        fig.add_trace(go.Scatter(x=pos[grey, h], y=pos[grey, v], mode="markers", marker=dict(size=4, color=NAN_GREY),
                                 hoverinfo="skip", showlegend=False), row=1, col=col)
        fig.add_trace(go.Scatter(
            x=pos[ok, h], y=pos[ok, v], mode="markers", showlegend=False,
            marker=dict(size=5, color=values[ok], colorscale=scale, cmin=cmin, cmax=cmax, showscale=col == 3,
                        colorbar=dict(title=dict(text=label, side="right"), thickness=14)),
            hovertemplate=f"{axes[h]} %{{x:.1f}} {axes[v]} %{{y:.1f}} mm<br>{label} %{{marker.color:.3g}}<extra></extra>"),
            row=1, col=col)
        fig.add_trace(go.Scatter(x=[c[h]], y=[c[v]], mode="markers", marker=dict(symbol="cross-thin-open", size=18, color=BLACK,
                                 line=dict(width=2, color=BLACK)), hoverinfo="skip", showlegend=False), row=1, col=col)
        fig.update_xaxes(title_text=f"{axes[h]} (mm)", row=1, col=col)
        fig.update_yaxes(title_text=f"{axes[v]} (mm)", scaleanchor=f"x{col if col > 1 else ''}", scaleratio=1, row=1, col=col)
        rows.append(pd.DataFrame({"panel": name, axes[h] + "_mm": pos[near, h], axes[v] + "_mm": pos[near, v],
                                  "value": values[near]}))
    fig.update_layout(height=380, margin=dict(t=40, b=40, l=10, r=10))
    return fig, pd.concat(rows, ignore_index=True)


def surrogate_report_table(report: dict, held_out: str = "held_out") -> pd.DataFrame:
    """Per cell type: CNN and uniform-field baseline MAPE (%) and R² on the held-out set, with
    Aberra et al. 2023's figures beside them."""
    aberra = report.get("aberra_2023", {})
    rows = []
    for cell_type, part in report.get("cell_types", {}).items():
        s = part["sets"][held_out]
        rows.append({"cell type": cell_type, "held-out cells": s["n"],
                     "CNN MAPE (%)": s["cnn"]["mape_pct"], "CNN R²": s["cnn"]["r2_a_per_us"],
                     "baseline MAPE (%)": s["baseline"]["mape_pct"], "baseline R²": s["baseline"]["r2_a_per_us"],
                     "Aberra 2023 CNN MAPE (%)": f"< {aberra.get('cnn_mape_pct_below', '?')}",
                     "Aberra 2023 uniform MAPE (%)": "–".join(str(v) for v in aberra.get("uniform_mape_pct_range", []))})
    return pd.DataFrame(rows)
