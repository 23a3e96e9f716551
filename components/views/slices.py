"""Orthogonal-slice brain viewer: a pure plotly figure builder and a thin Streamlit widget.

Volumes are numpy arrays on one voxel grid with a 4x4 voxel -> mm (RAS) affine. Axis flips and
permutations (e.g. FSL's LAS storage) are undone exactly before slicing, so panels are always shown in
neurological convention (left on the left) with axes in mm. Oblique grids are refused rather than shown
with wrong mm labels; resample them first (``nilearn.image.reorder_img(img, resample="continuous")``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import plotly.graph_objects as go
from nibabel.affines import apply_affine
from nibabel.orientations import apply_orientation, inv_ornt_aff, io_orientation

AXIS_NAMES = ("x", "y", "z")
# Per panel: the voxel axis held fixed, then the (horizontal, vertical) voxel axes shown.
_PANELS = (("sagittal", 0, (1, 2)), ("coronal", 1, (0, 2)), ("axial", 2, (0, 1)))
# Direction letters at the low and high end of each horizontal axis (RAS: x runs L -> R, y P -> A).
_EDGE_LABELS = {0: ("L", "R"), 1: ("P", "A")}
_MASK_OPACITY = 0.5
_CROSSHAIR_COLOR = "#56B4E9"  # Okabe-Ito sky blue: apart from the vermillion mask and from viridis
_BACKGROUND_PERCENTILE = 99.5  # clip bright outliers (vessels, fat) so tissue contrast survives
_PANEL_SPACING = 0.09  # paper fraction between panels


class SliceGrid(NamedTuple):
    """Volumes reoriented to RAS+ with the matching axis-aligned affine."""

    background: np.ndarray
    overlay: np.ndarray | None
    mask: np.ndarray | None
    affine: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.background.shape

    def axis_mm(self, axis: int) -> np.ndarray:
        """mm coordinate of each voxel centre along one voxel axis."""
        return self.affine[axis, axis] * np.arange(self.shape[axis]) + self.affine[axis, 3]

    def voxel_size_mm(self) -> np.ndarray:
        return np.diag(self.affine)[:3].copy()

    def nearest_voxel(self, xyz_mm) -> tuple[int, int, int]:
        """Index of the voxel nearest a point in mm; ValueError when the point lies off the grid."""
        xyz = np.asarray(xyz_mm, dtype=float)
        if xyz.shape != (3,) or not np.all(np.isfinite(xyz)):
            raise ValueError(f"crosshair_mm must be three finite numbers (x, y, z) in mm, got {xyz_mm!r}.")
        ijk = np.rint(apply_affine(np.linalg.inv(self.affine), xyz)).astype(int)
        outside = [a for a in range(3) if not 0 <= ijk[a] < self.shape[a]]
        if outside:
            bounds = ", ".join(
                f"{AXIS_NAMES[a]} in [{self.axis_mm(a)[0]:g}, {self.axis_mm(a)[-1]:g}] mm" for a in range(3)
            )
            off = ", ".join(f"{AXIS_NAMES[a]} = {xyz[a]:g} mm" for a in outside)
            raise ValueError(f"Crosshair lies outside the image grid ({off}); the grid covers {bounds}.")
        return tuple(int(v) for v in ijk)

    def mask_centre_mm(self) -> tuple[float, float, float] | None:
        """mm position of the mask voxel nearest the mask's centre of mass (None for an empty mask).

        The nearest *mask* voxel rather than the centroid itself, so that a crescent-shaped lesion
        still shows up in all three panels.
        """
        if self.mask is None or not self.mask.any():
            return None
        ijk = np.argwhere(self.mask)
        nearest = ijk[np.argmin(((ijk - ijk.mean(axis=0)) ** 2).sum(axis=1))]
        return tuple(float(v) for v in apply_affine(self.affine, nearest))


def ras_grid(background, affine, overlay=None, mask=None) -> SliceGrid:
    background = np.asarray(background)
    if background.ndim != 3:
        raise ValueError(f"background must be a 3-D volume, got an array of shape {background.shape}.")
    affine = np.asarray(affine, dtype=float)
    if affine.shape != (4, 4) or not np.all(np.isfinite(affine)) or abs(np.linalg.det(affine[:3, :3])) < 1e-12:
        raise ValueError("affine must be a finite, invertible 4x4 voxel -> mm matrix.")
    volumes = {"overlay": overlay, "mask": mask}
    for name, vol in volumes.items():
        if vol is not None:
            vol = np.asarray(vol)
            if vol.shape != background.shape:
                raise ValueError(
                    f"{name} must be on the background's voxel grid: expected shape {background.shape}, "
                    f"got {vol.shape}."
                )
            volumes[name] = vol.astype(bool) if name == "mask" else vol

    ornt = io_orientation(affine)
    ras_affine = affine @ inv_ornt_aff(ornt, background.shape)
    rotation = ras_affine[:3, :3]
    if np.any(np.abs(rotation - np.diag(np.diag(rotation))) > 1e-3 * np.abs(np.diag(rotation)).min()):
        raise ValueError(
            "The image grid is oblique (rotated against the mm axes), so slices cannot be shown with true mm "
            "axes. Resample it first, e.g. nilearn.image.reorder_img(img, resample='continuous')."
        )

    def reorient(vol):
        return None if vol is None else apply_orientation(vol, ornt)

    return SliceGrid(reorient(background), reorient(volumes["overlay"]), reorient(volumes["mask"]), ras_affine)


def _finite_range(values: np.ndarray, upper_percentile: float = 100.0) -> tuple[float, float]:
    """(min, ``upper_percentile``-th percentile) of the finite values; (0, 1) when there are none."""
    finite = np.isfinite(values)
    flat = values.ravel(order="K") if finite.all() else values[finite]
    if flat.size == 0:
        return 0.0, 1.0
    upper = flat.max() if upper_percentile >= 100 else _upper_percentile(flat, upper_percentile)
    return float(flat.min()), float(upper)


def _upper_percentile(flat: np.ndarray, q: float):
    """``np.percentile(flat, q)`` for a 1-D array and a high ``q``, ranking only the values that can matter.

    The two values numpy interpolates between lie among the top ``n - k`` values; a threshold taken from a
    strided sample selects a few times that many with one comparison, which is far cheaper than numpy's
    selection over the whole volume. Falls back to numpy when the sample misjudges the threshold.
    """
    n = flat.size
    position = (n - 1) * (q / 100)  # as numpy's default ("linear") method
    k = int(np.floor(position))
    needed = n - k  # values ranked k .. n - 1
    sample = flat[:: max(1, n // 50_000)]
    if needed * 20 > n or sample.size < 1000:
        return np.percentile(flat, q)
    # A sample quantile with room for sampling error: some 3x the needed count lies above it.
    keep = min(sample.size - 1, int(sample.size * (1 - 3 * needed / n)))
    threshold = np.partition(sample, keep)[keep]
    top = flat[flat >= threshold]
    if top.size < needed:
        return np.percentile(flat, q)
    j = k - (n - top.size)  # rank of the k-th value among the selected ones
    ranks = [j, j + 1] if j + 1 < top.size else [j]
    part = np.partition(top, ranks)
    pair = np.array([part[j], part[ranks[-1]]], dtype=flat.dtype)
    return np.quantile(pair, position - k)


def _plane(volume: np.ndarray, fixed_axis: int, index: int) -> np.ndarray:
    """2-D slice ready for go.Heatmap: rows run along the vertical axis, columns along the horizontal (a view)."""
    return volume[(slice(None),) * fixed_axis + (index,)].T


def orthogonal_slices_figure(
    background,
    affine,
    overlay=None,
    mask=None,
    crosshair_mm=(0.0, 0.0, 0.0),
    *,
    overlay_range=None,
    overlay_threshold=None,
    overlay_colorscale="Viridis",
    overlay_opacity=0.8,
    mask_color="#D55E00",
    overlay_name="overlay",
    mask_name="mask",
    title=None,
    height=340,
) -> go.Figure:
    """Sagittal, coronal and axial slices through ``crosshair_mm``, side by side.

    Parameters
    ----------
    background : 3-D array, e.g. a T1 template (greys).
    affine : (4, 4) voxel -> mm (RAS) matrix of the grid shared by all volumes.
    overlay : 3-D array on the same grid, e.g. FA (0..1), drawn with ``overlay_colorscale`` and a colourbar.
    mask : 3-D boolean array on the same grid, e.g. a lesion, drawn in ``mask_color``.
    crosshair_mm : (x, y, z) in mm. Each panel shows the voxel slice nearest to it.
    overlay_range : (min, max) of the colour scale; default the overlay's finite range, starting at
        ``overlay_threshold`` when that is given.
    overlay_threshold : overlay values below it are transparent.
    overlay_name, mask_name : labels for the colourbar, hover text and legend.

    Returns
    -------
    plotly.graph_objects.Figure holding only the three slices. Traces carry ``uid`` values
    ``"{background|overlay|mask}-{sagittal|coronal|axial}"``.

    Raises
    ------
    ValueError : volumes of different shapes, an oblique grid, or a crosshair off the grid.
    """
    grid = ras_grid(background, affine, overlay, mask)
    ijk = grid.nearest_voxel(crosshair_mm)
    centre_mm = apply_affine(grid.affine, ijk)
    voxel_mm = grid.voxel_size_mm()

    # Colour limits come from the whole volume so that contrast does not jump as the crosshair moves.
    bg_min, bg_max = _finite_range(grid.background, _BACKGROUND_PERCENTILE)
    if grid.overlay is not None:
        lo, hi = _finite_range(grid.overlay)
        if overlay_threshold is not None:
            lo = float(overlay_threshold)
        cmin, cmax = overlay_range if overlay_range is not None else (lo, hi)

    extents = [
        (grid.shape[h] * voxel_mm[h], grid.shape[v] * voxel_mm[v]) for _, _, (h, v) in _PANELS
    ]
    # Two lines so that the titles of narrow panels do not run into each other.
    convention = "<br><span style='font-size:10px'>neurological: L on left</span>"
    titles = [
        f"Sagittal x = {centre_mm[0]:g} mm<br><span style='font-size:10px'>P left, A right</span>",
        f"Coronal y = {centre_mm[1]:g} mm{convention}",
        f"Axial z = {centre_mm[2]:g} mm{convention}",
    ]
    # Same height, so widths follow each panel's aspect. The layout is built as plain dicts and validated
    # once by go.Figure: per-panel add_trace/add_shape/update_xaxes calls cost more than the slices.
    domains = _column_domains([w / h for w, h in extents], _PANEL_SPACING)
    traces, shapes, annotations, letters = [], [], [], []
    layout = {}
    line = dict(color=_CROSSHAIR_COLOR, width=1)
    for col, ((plane, fixed, (h, v)), panel_title, domain) in enumerate(zip(_PANELS, titles, domains), 1):
        suffix = "" if col == 1 else str(col)
        xref, yref = f"x{suffix}", f"y{suffix}"
        x_mm, y_mm = grid.axis_mm(h), grid.axis_mm(v)
        hname, vname = AXIS_NAMES[h], AXIS_NAMES[v]
        bg = _plane(grid.background, fixed, ijk[fixed]).astype(np.float32)

        # Hover lives on the background trace only, with the overlay value as customdata: stacked
        # heatmaps would otherwise compete for the hover label.
        hover = f"{hname} %{{x:.4~g}} mm, {vname} %{{y:.4~g}} mm<br>background %{{z:.3~g}}"
        ov = None
        if grid.overlay is not None:
            ov = _plane(grid.overlay, fixed, ijk[fixed]).astype(np.float32)
            hover += f"<br>{overlay_name} %{{customdata:.3~g}}"
        traces.append(dict(
            type="heatmap", z=bg, x=x_mm, y=y_mm, colorscale="Greys", reversescale=True, zmin=bg_min, zmax=bg_max,
            showscale=False, customdata=ov, hovertemplate=hover + "<extra></extra>", uid=f"background-{plane}",
            name="background", xaxis=xref, yaxis=yref,
        ))
        if grid.overlay is not None:
            shown = ov if overlay_threshold is None else np.where(ov >= overlay_threshold, ov, np.nan)
            traces.append(dict(
                type="heatmap", z=shown, x=x_mm, y=y_mm, coloraxis="coloraxis", opacity=overlay_opacity,
                hoverinfo="skip", uid=f"overlay-{plane}", name=overlay_name, xaxis=xref, yaxis=yref,
            ))
        if grid.mask is not None:
            # uint8 with a transparent 0 is a quarter the size of a float mask with NaN holes.
            traces.append(dict(
                type="heatmap", z=_plane(grid.mask, fixed, ijk[fixed]).astype(np.uint8), x=x_mm, y=y_mm,
                colorscale=[[0, "rgba(0,0,0,0)"], [1, mask_color]], zmin=0, zmax=1, showscale=False,
                opacity=_MASK_OPACITY, hoverinfo="skip", uid=f"mask-{plane}", name=mask_name,
                xaxis=xref, yaxis=yref,
            ))

        x_range = [x_mm[0] - voxel_mm[h] / 2, x_mm[-1] + voxel_mm[h] / 2]
        y_range = [y_mm[0] - voxel_mm[v] / 2, y_mm[-1] + voxel_mm[v] / 2]
        shapes += [
            dict(type="line", x0=centre_mm[h], x1=centre_mm[h], y0=y_range[0], y1=y_range[1], xref=xref,
                 yref=yref, line=line, name=f"crosshair-{plane}-{hname}"),
            dict(type="line", x0=x_range[0], x1=x_range[1], y0=centre_mm[v], y1=centre_mm[v], xref=xref,
                 yref=yref, line=line, name=f"crosshair-{plane}-{vname}"),
        ]
        # The panel title where make_subplots puts it (titles first, as before), then the direction letters.
        annotations.append(dict(text=panel_title, x=(domain[0] + domain[1]) / 2, y=1.0, xref="paper",
                                yref="paper", xanchor="center", yanchor="bottom", showarrow=False,
                                font=dict(size=12)))
        low, high = _EDGE_LABELS[h]
        for text, x, anchor in ((low, x_range[0], "left"), (high, x_range[1], "right")):
            letters.append(dict(text=f"<b>{text}</b>", x=x, y=y_range[1], xref=xref, yref=yref, xanchor=anchor,
                                yanchor="top", showarrow=False, font=dict(color="white", size=13)))

        axis_style = dict(constrain="domain", showgrid=False, zeroline=False, ticks="outside",
                          tickfont=dict(size=10))
        layout[f"xaxis{suffix}"] = dict(
            anchor=yref, domain=domain, range=x_range,
            title=dict(text=f"{hname} (mm)", font=dict(size=11), standoff=4), **axis_style,
        )
        layout[f"yaxis{suffix}"] = dict(
            anchor=xref, domain=[0.0, 1.0], range=y_range, scaleanchor=xref, scaleratio=1,
            title=dict(text=f"{vname} (mm)", font=dict(size=11), standoff=4), **axis_style,
        )

    if grid.mask is not None:
        # A heatmap's own legend swatch is a colour ramp; a square marker reads as "this colour = mask".
        traces.append(dict(
            type="scatter", x=[None], y=[None], mode="markers", name=mask_name, showlegend=True,
            hoverinfo="skip", xaxis="x", yaxis="y",
            marker=dict(symbol="square", size=12, color=mask_color, opacity=_MASK_OPACITY),
        ))
    if grid.overlay is not None:
        layout["coloraxis"] = dict(
            colorscale=overlay_colorscale, cmin=cmin, cmax=cmax,
            colorbar=dict(title=dict(text=overlay_name), thickness=12, len=0.7, y=1, yanchor="top"),
        )
    if title:
        layout["title"] = dict(text=title)
    layout.update(
        annotations=annotations + letters,
        shapes=shapes,
        height=height,
        # Explicit margins: automargin does not make room for tick labels on scale-anchored axes. No pad:
        # padding (Streamlit's theme sets 8 px) widens the black plot background over the panel titles.
        margin=dict(l=55, r=10, t=100 if title else 70, b=45, pad=0),
        plot_bgcolor="black",
        legend=dict(x=1.01, y=0, yanchor="bottom"),  # under the colourbar
    )
    return go.Figure(data=traces, layout=layout)


def _column_domains(widths, spacing: float) -> list[list[float]]:
    """Paper x-domains of side-by-side panels, as ``make_subplots(column_widths=..., horizontal_spacing=...)``."""
    total = float(sum(widths))
    widths = [(1.0 - spacing * (len(widths) - 1)) * (w / total) for w in widths]
    starts = [sum(widths[:c]) + c * spacing for c in range(len(widths))]
    return [[max(0.0, x), min(1.0, x + w)] for x, w in zip(starts, widths)]


def snap_to_grid(grid: SliceGrid, xyz_mm) -> tuple[float, float, float]:
    return tuple(float(v) for v in apply_affine(grid.affine, grid.nearest_voxel(xyz_mm)))
