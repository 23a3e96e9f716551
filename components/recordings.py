"""Plots of raw per-patient recordings: TMS motor evoked potentials, voluntary EMG and reaching kinematics.

Pure plotly (no streamlit), so that they can be tested and scripted. Derived quantities (speed, movement
segments, MEP latency and presence) come from ``core.signals``; these functions only draw them.
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

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
    fig = make_subplots(rows=n_muscles, cols=1, shared_xaxes=True, vertical_spacing=0.12 / n_muscles,
                        subplot_titles=titles)

    window_name = f"MEP window {window_ms[0]:g}–{window_ms[1]:g} ms"
    # All trials of a muscle as one NaN-separated trace: one legend entry, one SVG path.
    trial_x = np.tile(np.append(t_ms, np.nan), n_trials)
    latency_in_legend = False  # the first muscle may have no onset, so not simply "first row"
    for i in range(n_muscles):
        row, first = i + 1, i == 0
        trial_y = np.hstack([sweeps[i], np.full((n_trials, 1), np.nan)]).ravel()
        fig.add_trace(go.Scatter(
            x=trial_x, y=trial_y, mode="lines", line=dict(color=_SKY_BLUE, width=0.8), opacity=0.7,
            name=f"trials (n = {n_trials})", legendgroup="trials", showlegend=first, hoverinfo="skip",
        ), row=row, col=1)
        fig.add_trace(go.Scatter(
            x=t_ms, y=sweeps[i].mean(axis=0), mode="lines", line=dict(color=_BLUE, width=2.5),
            name="mean", legendgroup="mean", showlegend=first, meta=str(muscles[i]),
            hovertemplate="%{x:.1f} ms<br>%{y:.1f} µV<extra>mean " + _muscle_label(muscles[i]) + "</extra>",
        ), row=row, col=1)

        fig.add_vrect(x0=window_ms[0], x1=window_ms[1], fillcolor=_SHADE, line_width=0, layer="below",
                      name=window_name, legendgroup="window", showlegend=first, row=row, col=1)
        fig.add_vline(x=0.0, line=dict(color=_BLACK, width=1.5, dash="dot"), name="TMS pulse",
                      legendgroup="pulse", showlegend=first, row=row, col=1)
        if latency is not None and np.isfinite(latency[i]):
            fig.add_vline(x=float(latency[i]), line=dict(color=_VERMILLION, width=2, dash="dash"),
                          name="onset latency", legendgroup="latency", showlegend=not latency_in_legend,
                          row=row, col=1,
                          annotation=dict(text=f"onset {latency[i]:.1f} ms", font_color=_VERMILLION,
                                          xanchor="left", yanchor="top"),
                          annotation_position="top right")
            latency_in_legend = True
        fig.update_yaxes(title_text="EMG (µV)", row=row, col=1)

    fig.update_xaxes(title_text="Time from TMS pulse (ms)", row=n_muscles, col=1)
    fig.update_layout(height=_row_height(n_muscles, 220), **_LAYOUT)
    return fig


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
    scatter = go.Scattergl if emg.shape[1] > _WEBGL_ABOVE_SAMPLES else go.Scatter
    fig = make_subplots(rows=len(muscles), cols=1, shared_xaxes=True, vertical_spacing=0.12 / len(muscles),
                        subplot_titles=[_muscle_label(m) for m in muscles])
    for i, muscle in enumerate(muscles):
        fig.add_trace(scatter(
            x=t_s, y=emg[i], mode="lines", line=dict(color=_BLUE, width=0.8), name=_muscle_label(muscle),
            showlegend=False, hovertemplate="%{x:.3f} s<br>%{y:.1f} µV<extra></extra>",
        ), row=i + 1, col=1)
        fig.update_yaxes(title_text="EMG (µV)", row=i + 1, col=1)
    fig.update_xaxes(title_text="Time (s)", row=len(muscles), col=1)
    fig.update_layout(height=_row_height(len(muscles), 180), **_LAYOUT)
    return fig


def trajectory_figure(position_mm, fs_hz) -> go.Figure:
    """3-D hand trajectory, ``position_mm`` (n_samples, 3) in mm, coloured by time (s), start and end marked."""
    pos = np.asarray(position_mm, dtype=float)
    if pos.ndim != 2 or pos.shape[1] != 3 or len(pos) < 2:
        raise ValueError(f"position_mm must have shape (n_samples, 3) in mm, got shape {pos.shape}.")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    t_s = np.arange(len(pos)) / fs_hz
    fig = go.Figure(go.Scatter3d(
        x=pos[:, 0], y=pos[:, 1], z=pos[:, 2], mode="lines", name="trajectory", showlegend=False,
        line=dict(color=t_s, colorscale="Viridis", width=4, colorbar=dict(title=dict(text="Time (s)"), len=0.7)),
        customdata=t_s,
        hovertemplate="t %{customdata:.2f} s<br>x %{x:.1f} mm<br>y %{y:.1f} mm<br>z %{z:.1f} mm<extra></extra>",
    ))
    for index, label, color, symbol in ((0, "start", _GREEN, "circle"), (-1, "end", _VERMILLION, "diamond")):
        fig.add_trace(go.Scatter3d(
            x=pos[[index], 0], y=pos[[index], 1], z=pos[[index], 2], mode="markers", name=label,
            marker=dict(color=color, size=6, symbol=symbol),
            hovertemplate=f"{label}, t {t_s[index]:.2f} s<extra></extra>",
        ))
    # Equal mm on all axes so that tremor is not exaggerated, but every axis spans at least a third of
    # the longest one: a straight reach would otherwise collapse into a needle the camera cannot frame.
    lo, hi = np.nanmin(pos, axis=0), np.nanmax(pos, axis=0)
    span = np.maximum(hi - lo, (hi - lo).max() / 3) + 1e-6
    centre = (lo + hi) / 2
    axes = {
        f"{name}axis": dict(title=dict(text=f"{name} (mm)"), range=[c - s / 2, c + s / 2])
        for name, c, s in zip("xyz", centre, span)
    }
    fig.update_layout(
        scene=dict(**axes, aspectmode="manual", aspectratio=dict(zip("xyz", 1.6 * span / span.max())),
                   camera=dict(eye=dict(x=1.6, y=-1.1, z=0.9))),
        height=480, **_LAYOUT,
    )
    return fig


def speed_profile_figure(speed_mm_s, fs_hz, segments=None) -> go.Figure:
    """Hand speed over time with movement segments shaded.

    ``speed_mm_s`` is (n_samples,) in mm/s; ``segments`` a sequence of (start, stop) sample indices with
    ``stop`` exclusive, as from ``core.signals.movement_segments``. Each segment is one rectangle named
    "movement" spanning ``start / fs_hz`` to ``stop / fs_hz`` seconds.
    """
    speed = np.asarray(speed_mm_s, dtype=float)
    if speed.ndim != 1:
        raise ValueError(f"speed_mm_s must be one value per sample, got shape {speed.shape}.")
    if not fs_hz > 0:
        raise ValueError(f"fs_hz must be a positive sampling rate in Hz, got {fs_hz!r}.")
    t_s = np.arange(len(speed)) / fs_hz
    fig = go.Figure(go.Scatter(
        x=t_s, y=speed, mode="lines", line=dict(color=_BLUE, width=1.5), name="speed",
        hovertemplate="%{x:.2f} s<br>%{y:.0f} mm/s<extra></extra>",
    ))
    for n, (start, stop) in enumerate(segments or ()):
        if not 0 <= start < stop <= len(speed):
            raise ValueError(
                f"Movement segment {n} = ({start}, {stop}) is not a (start, stop) sample range within the "
                f"{len(speed)} samples of the speed trace."
            )
        fig.add_vrect(x0=start / fs_hz, x1=stop / fs_hz, fillcolor=_ORANGE, opacity=0.25, line_width=0,
                      layer="below", name="movement", legendgroup="movement", showlegend=n == 0)
    fig.update_xaxes(title_text="Time (s)")
    fig.update_yaxes(title_text="Speed (mm/s)", rangemode="tozero")
    fig.update_layout(height=300, **_LAYOUT)
    return fig
