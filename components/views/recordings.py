"""Plots of raw per-patient recordings: TMS motor evoked potentials, voluntary EMG and reaching kinematics.

Pure plotly (no streamlit), so that they can be tested and scripted. Derived quantities (speed, movement
segments, MEP latency and presence) come from ``core.features``; these functions only draw them.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from components.palette import BLACK as _BLACK
from components.palette import BLUE as _BLUE
from components.palette import GREEN as _GREEN
from components.palette import ORANGE as _ORANGE
from components.palette import SKY_BLUE as _SKY_BLUE
from components.palette import VERMILLION as _VERMILLION

__all__ = ["mep_sweeps_figure", "voluntary_emg_figure", "trajectory_figure", "speed_profile_figure"]

_SHADE = "rgba(0, 0, 0, 0.08)"
_WEBGL_ABOVE_SAMPLES = 20_000  # SVG lines get sluggish past this; long uploaded recordings switch to WebGL
_LAYOUT = dict(
    template="plotly_white",
    margin=dict(l=60, r=20, t=60, b=50),
    legend=dict(orientation="h", x=0, y=1, yanchor="top", yref="container"),  # in the top margin
    hovermode="closest",
)


def _row_height(n_rows: int, per_row: int, extra: int = 110) -> int:
    return per_row * n_rows + extra


def _muscle_label(name) -> str:
    return str(name).upper()


def _row_domains(n_rows: int, spacing: float) -> list[list[float]]:
    """Paper y-domains of stacked rows, top row first, as ``make_subplots(rows=n, vertical_spacing=...)``."""
    height = (1.0 - spacing * (n_rows - 1)) / n_rows
    starts = [sum([height] * r) + r * spacing for r in range(n_rows)]  # bottom-up, as make_subplots sums them
    return [[max(0.0, y), min(1.0, y + height)] for y in reversed(starts)]


def _stacked_rows(titles, x_title: str, y_title: str) -> dict:
    """Layout of one column of rows sharing the x axis (zoom one, zoom all), x ticks on the bottom row only.

    What ``make_subplots(rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.12 / n, subplot_titles=...)``
    followed by per-row ``update_yaxes`` builds, as plain dicts.
    """
    n_rows = len(titles)
    bottom = f"x{n_rows if n_rows > 1 else ''}"
    layout, annotations = {}, []
    for i, (title, domain) in enumerate(zip(titles, _row_domains(n_rows, 0.12 / n_rows))):
        suffix = "" if i == 0 else str(i + 1)
        xaxis = dict(anchor=f"y{suffix}", domain=[0.0, 1.0])
        if i < n_rows - 1:
            xaxis.update(matches=bottom, showticklabels=False)
        else:
            xaxis["title"] = dict(text=x_title)
        layout[f"xaxis{suffix}"] = xaxis
        layout[f"yaxis{suffix}"] = dict(anchor=f"x{suffix}", domain=domain, title=dict(text=y_title))
        annotations.append(dict(text=title, x=0.5, y=domain[1], xref="paper", yref="paper", xanchor="center",
                                yanchor="bottom", showarrow=False, font=dict(size=16)))
    layout["annotations"] = annotations
    return layout


def _vrect(x0, x1, row: int = 1, **style) -> dict:
    """A full-height band over one row's x range, as ``fig.add_vrect(..., row=row, col=1)`` draws it."""
    suffix = "" if row == 1 else str(row)
    return dict(type="rect", x0=x0, x1=x1, xref=f"x{suffix}", y0=0, y1=1, yref=f"y{suffix} domain", **style)


def _vline(x, row: int = 1, **style) -> dict:
    """A full-height vertical line in one row, as ``fig.add_vline(x, row=row, col=1)`` draws it."""
    return _vrect(x, x, row, **style) | {"type": "line"}


def _per_muscle(values, n_muscles: int, name: str, dtype) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.shape != (n_muscles,):
        raise ValueError(f"{name} must have one value per muscle ({n_muscles}), got shape {np.shape(values)}.")
    return arr


def mep_sweeps_figure(
    mep_sweeps_uv,
    fs_hz,
    sweep_start_ms,
    muscles,
    *,
    latency_ms=None,
    window_ms=(10, 60),
    present=None,
) -> go.Figure:
    """MEP sweeps around single TMS pulses, one row per muscle.

    Parameters
    ----------
    mep_sweeps_uv : (n_muscles, n_trials, n_sweep_samples) array in µV.
    fs_hz : sampling rate in Hz.
    sweep_start_ms : time of each sweep's first sample relative to the TMS pulse at 0 ms.
    muscles : one name per muscle row.
    latency_ms : optional (n_muscles,) MEP onset latency in ms; NaN draws no marker.
    window_ms : (start, stop) of the MEP analysis window in ms, shaded.
    present : optional (n_muscles,) bool, written as "MEP present/absent" in each subplot title.

    Every trial is drawn thin and their mean thick (``name="mean"``, one per row); the pulse, the
    window and the latencies are layout shapes named "TMS pulse", "MEP window <start>–<stop> ms" and
    "onset latency".
    """
    sweeps = np.asarray(mep_sweeps_uv, dtype=float)
    muscles = tuple(muscles)
    if sweeps.ndim != 3 or sweeps.shape[0] != len(muscles) or sweeps.shape[2] < 2:
        raise ValueError(
            "mep_sweeps_uv must have shape (n_muscles, n_trials, n_sweep_samples) with one row per muscle "
            f"({len(muscles)}: {', '.join(map(str, muscles))}); got shape {sweeps.shape}."
        )
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    n_muscles, n_trials, n_samples = sweeps.shape
    latency = _per_muscle(latency_ms, n_muscles, "latency_ms", float)
    present = _per_muscle(present, n_muscles, "present", bool)

    t_ms = sweep_start_ms + np.arange(n_samples) * 1000.0 / fs_hz
    titles = [
        _muscle_label(m) + ("" if present is None else f" — MEP {'present' if present[i] else 'absent'}")
        for i, m in enumerate(muscles)
    ]
    # Built as plain dicts and validated once by go.Figure: per-row add_trace/add_vline calls cost more
    # than the data.
    layout = _stacked_rows(titles, "Time from TMS pulse (ms)", "EMG (µV)")
    traces, shapes, annotations = [], [], layout["annotations"]

    window_name = f"MEP window {window_ms[0]:g}–{window_ms[1]:g} ms"
    # All trials of a muscle as one NaN-separated trace: one legend entry, one SVG path.
    trial_x = np.tile(np.append(t_ms, np.nan), n_trials)
    latency_in_legend = False  # the first muscle may have no onset, so not simply "first row"
    for i, muscle in enumerate(muscles):
        row, first = i + 1, i == 0
        axes = dict(xaxis=f"x{row if row > 1 else ''}", yaxis=f"y{row if row > 1 else ''}")
        trial_y = np.hstack([sweeps[i], np.full((n_trials, 1), np.nan)]).ravel()
        traces.append(dict(
            type="scatter", x=trial_x, y=trial_y, mode="lines", line=dict(color=_SKY_BLUE, width=0.8),
            opacity=0.7, name=f"trials (n = {n_trials})", legendgroup="trials", showlegend=first,
            hoverinfo="skip", **axes,
        ))
        traces.append(dict(
            type="scatter", x=t_ms, y=sweeps[i].mean(axis=0), mode="lines", line=dict(color=_BLUE, width=2.5),
            name="mean", legendgroup="mean", showlegend=first, meta=str(muscle),
            hovertemplate="%{x:.1f} ms<br>%{y:.1f} µV<extra>mean " + _muscle_label(muscle) + "</extra>", **axes,
        ))

        shapes.append(_vrect(window_ms[0], window_ms[1], row, fillcolor=_SHADE, line=dict(width=0),
                             layer="below", name=window_name, legendgroup="window", showlegend=first))
        shapes.append(_vline(0.0, row, line=dict(color=_BLACK, width=1.5, dash="dot"), name="TMS pulse",
                             legendgroup="pulse", showlegend=first))
        if latency is not None and np.isfinite(latency[i]):
            onset = float(latency[i])
            line = _vline(onset, row, line=dict(color=_VERMILLION, width=2, dash="dash"), name="onset latency",
                          legendgroup="latency", showlegend=not latency_in_legend)
            shapes.append(line)
            # Label at the top right of the line, as add_vline(annotation_position="top right") puts it.
            annotations.append(dict(text=f"onset {onset:.1f} ms", font=dict(color=_VERMILLION), x=onset,
                                    xref=line["xref"], y=1, yref=line["yref"], xanchor="left", yanchor="top",
                                    showarrow=False))
            latency_in_legend = True

    layout.update(shapes=shapes, height=_row_height(n_muscles, 220), **_LAYOUT)
    return go.Figure(data=traces, layout=layout)


def voluntary_emg_figure(voluntary_uv, fs_hz, muscles) -> go.Figure:
    """Raw voluntary-contraction EMG, one row per muscle; ``voluntary_uv`` is (n_muscles, n_samples) µV."""
    emg = np.asarray(voluntary_uv, dtype=float)
    muscles = tuple(muscles)
    if emg.ndim != 2 or emg.shape[0] != len(muscles):
        raise ValueError(
            f"voluntary_uv must have shape (n_muscles, n_samples) with one row per muscle ({len(muscles)}); "
            f"got shape {emg.shape}."
        )
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    t_s = np.arange(emg.shape[1]) / fs_hz
    trace_type = "scattergl" if emg.shape[1] > _WEBGL_ABOVE_SAMPLES else "scatter"
    labels = [_muscle_label(m) for m in muscles]
    traces = [
        dict(type=trace_type, x=t_s, y=emg[i], mode="lines", line=dict(color=_BLUE, width=0.8), name=label,
             showlegend=False, hovertemplate="%{x:.3f} s<br>%{y:.1f} µV<extra></extra>",
             xaxis=f"x{i + 1 if i else ''}", yaxis=f"y{i + 1 if i else ''}")
        for i, label in enumerate(labels)
    ]
    layout = _stacked_rows(labels, "Time (s)", "EMG (µV)")
    layout.update(height=_row_height(len(muscles), 180), **_LAYOUT)
    return go.Figure(data=traces, layout=layout)


def trajectory_figure(position_mm, fs_hz) -> go.Figure:
    """3-D hand trajectory, ``position_mm`` (n_samples, 3) in mm, coloured by time (s), start and end marked.

    All three axes are in mm at the same scale. The camera looks at the path from the side of its main
    horizontal direction, from above and behind the start, so that a reach runs left (start, near) to
    right instead of pointing at the viewer or folding onto itself.
    """
    pos = np.asarray(position_mm, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) < 2:
        raise ValueError(f"position_mm must have shape (n_samples, 3) in mm, got shape {pos.shape}.")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    t_s = np.arange(len(pos)) / fs_hz
    traces = [dict(
        type="scatter3d", x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="lines", name="trajectory",
        showlegend=False,
        line=dict(color=t_s, colorscale="Viridis", width=4,
                  colorbar=dict(title=dict(text="Time (s)"), len=0.7, thickness=15)),
        customdata=t_s,
        hovertemplate="t %{customdata:.2f} s<br>x %{x:.1f} mm<br>y %{y:.1f} mm<br>z %{z:.1f} mm<extra></extra>",
    )]
    # Wider than the line and outlined, so that a path passing back through them (out-and-back reaches)
    # does not hide them.
    for index, label, color, symbol in ((0, "start", _GREEN, "circle"), (-1, "end", _VERMILLION, "diamond")):
        traces.append(dict(
            type="scatter3d", x=pos[[index], 0], y=pos[[index], 1], z=pos[[index], 2], mode="markers",
            name=label, marker=dict(color=color, size=8, symbol=symbol, line=dict(color="white", width=2)),
            hovertemplate=f"{label}, t {t_s[index]:.2f} s<extra></extra>",
        ))
    # Equal mm on all axes so that tremor is not exaggerated, but every axis spans at least a third of
    # the longest one: a straight reach would otherwise collapse into a needle the camera cannot frame.
    # Padded, because the scene clips at its ranges: a start or end marker on the edge is cut in half.
    lo, hi = np.nanmin(pos, axis=0), np.nanmax(pos, axis=0)
    longest = (hi - lo).max()
    span = np.maximum(hi - lo, longest / 3) + 0.1 * longest + 1e-6
    centre = (lo + hi) / 2
    aspect = span / span.max()  # the longest axis 1: the box then fits the camera below
    axes = {
        f"{name}axis": dict(title=dict(text=f"{name} (mm)"), range=[c - s / 2, c + s / 2])
        for name, c, s in zip("xyz", centre, span)
    }
    for name, a in zip("xyz", aspect):
        if a < 0.5:  # a short axis: at most 2 labels, none near the box corners where other axes' labels start
            axes[f"{name}axis"]["tickvals"] = _inner_ticks(*axes[f"{name}axis"]["range"])
    layout = dict(
        scene=dict(**axes, aspectmode="manual", aspectratio=dict(zip("xyz", aspect)),
                   camera=_side_view(pos, aspect)),
        height=420, **_LAYOUT,
    )
    layout["margin"] = dict(l=0, r=0, t=50, b=0)  # a 3-D scene draws its tick labels inside its domain
    return go.Figure(data=traces, layout=layout)


def _inner_ticks(lo: float, hi: float, most: int = 2) -> list[float]:
    """At most ``most`` round tick values (1, 2, 2.5 or 5 x 10^k apart) in the middle 60% of [lo, hi]."""
    inner_lo, inner_hi = lo + 0.2 * (hi - lo), hi - 0.2 * (hi - lo)
    for exponent in range(int(np.floor(np.log10((inner_hi - inner_lo) / most))) - 1, 20):
        for mantissa in (1.0, 2.0, 2.5, 5.0):
            step = mantissa * 10.0**exponent
            ticks = np.arange(np.ceil(inner_lo / step), np.floor(inner_hi / step) + 1) * step
            if len(ticks) <= most:
                return [round(float(v), max(0, 2 - exponent)) for v in ticks]
    return [float((lo + hi) / 2)]


def _side_view(pos: np.ndarray, aspect: np.ndarray) -> dict:
    """Plotly scene camera (scene units) for a path: beside its main horizontal direction, above, behind the start.

    The main direction runs from the start to the point farthest from it (the target of out-and-back
    reaches), so that it crosses the view left to right with the start nearest the viewer, where the
    path does not hide its marker. A mostly vertical path gets a plain three-quarter view.
    """
    offsets = pos - pos[0]
    distance = np.einsum("ij,ij->i", offsets, offsets)
    reach = offsets[int(np.nanargmax(distance))] if np.isfinite(distance).any() else np.zeros(3)
    along = np.array([reach[0], reach[1], 0.0])
    if np.hypot(*along[:2]) <= 0.5 * np.linalg.norm(reach):  # also when the path does not move at all
        eye = np.array([1.5, -1.5, 0.9])
    else:
        along /= np.hypot(*along[:2])
        side = np.cross(along, [0.0, 0.0, 1.0])  # horizontal, perpendicular to the reach
        eye = 1.2 * side - 0.8 * along + np.array([0.0, 0.0, 0.9])
    # Scene units follow the box, whose longest side is 1: move back for a bulkier box so that it fits.
    eye *= np.linalg.norm(aspect) / np.linalg.norm([1, 1 / 3, 1 / 3])
    # Look a little left of and below the box's centre: the box then sits right of the middle, leaving
    # room for the vertical axis's labels and title, which plotly draws on the left edge.
    right = np.cross(-eye, [0.0, 0.0, 1.0])
    look_at = -0.12 * right / max(np.linalg.norm(right), 1e-9) - np.array([0.0, 0.0, 0.15])
    return dict(eye=dict(zip("xyz", (float(v) for v in eye))), center=dict(zip("xyz", (float(v) for v in look_at))),
                up=dict(x=0, y=0, z=1))


def speed_profile_figure(speed_mm_s, fs_hz, segments=None) -> go.Figure:
    """Hand speed over time with movement segments shaded.

    ``speed_mm_s`` is (n_samples,) in mm/s; ``segments`` a sequence of (start, stop) sample indices with
    ``stop`` exclusive, as from ``core.features.kinematics.movement_segments``. Each segment is one rectangle named
    "movement" spanning ``start / fs_hz`` to ``stop / fs_hz`` seconds.
    """
    speed = np.asarray(speed_mm_s, dtype=float)
    if speed.ndim != 1:
        raise ValueError(f"speed_mm_s must be one value per sample, got shape {speed.shape}.")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    t_s = np.arange(len(speed)) / fs_hz
    shapes = []
    for n, (start, stop) in enumerate(segments or ()):
        if not 0 <= start < stop <= len(speed):
            raise ValueError(
                f"Movement segment {n} = ({start}, {stop}) is not a (start, stop) sample range within the "
                f"{len(speed)} samples of the speed trace."
            )
        shapes.append(_vrect(start / fs_hz, stop / fs_hz, fillcolor=_ORANGE, opacity=0.25, line=dict(width=0),
                             layer="below", name="movement", legendgroup="movement", showlegend=n == 0))
    trace = dict(
        type="scatter", x=t_s, y=speed, mode="lines", line=dict(color=_BLUE, width=1.5), name="speed",
        hovertemplate="%{x:.2f} s<br>%{y:.0f} mm/s<extra></extra>",
    )
    layout = dict(
        xaxis=dict(title=dict(text="Time (s)")),
        yaxis=dict(title=dict(text="Speed (mm/s)"), rangemode="tozero"),
        shapes=shapes, height=300, **_LAYOUT,
    )
    return go.Figure(data=[trace], layout=layout)
