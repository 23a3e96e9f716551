"""TMS threshold maps: |E|, the surrogate's threshold and the activated fraction at every vertex.

For one coil placement, every vertex of a hemisphere's fsaverage5 surface gets, for each cell
type on its soma layer (``core.tms.dataset.SOMA_LAYERS``: L2/3 PC in L2/3, L4 LBC in L4, L5 PC in
L5):

- |E| at the soma per A/us of coil dI/dt (V/m per A/us); at an intensity I (A/us) the field is
  that times I;
- the coil threshold (A/us) of the cell at ``n_rotations`` azimuths about the local normal
  (0, 360/n, ... degrees) times each morphological variant, from the CNN surrogate
  (``core.tms.surrogate``); the map shows their median;
- at an intensity I, the activated fraction: the share of those (rotation, variant) thresholds
  that are <= I.

Thresholds do not depend on the intensity (the field is linear in dI/dt), so they are computed
once per placement (:func:`threshold_map`) and the intensity only enters the fraction and |E|
(:meth:`ThresholdMap.fraction_activated`): moving an intensity slider costs microseconds, and
the fraction rises monotonically with the intensity.

How it stays fast (a whole hemisphere, three layers, in ~1.5 s on 2 cores)
---------------------------------------------------------------------------
1. **Linearised grids.** The E-field is smooth on the 2 mm scale of the grid, so instead of
   evaluating it at 729 grid points for every vertex and rotation, it is evaluated at the soma
   and its Jacobian J by central differences (six points +-``JACOBIAN_STEP_MM`` along the head
   axes, once per vertex on the surface halfway between the shallowest and deepest mapped soma
   layer: those layers lie within ~0.3 mm of it). The grid of a rotation R
   (``core.tms.cortex.cell_frame``) is then ``R^T (E + J R o) / |E|`` at the grid offsets o.
   Against exact grids (``core.tms.cortex.efield_grid``) at the hand-knob hotspot this changes
   grid values by < 2 % of |E| and surrogate thresholds by < 0.3 % (median ~0.02 %;
   ``tests/bench_tms_maps.py`` measures both). Such a grid is linear in 12 numbers (R^T E / |E| and R^T J R / |E|), and so is
   the CNN's first convolution: ``ThresholdSurrogate.predict_linear`` applies it to 12 basis
   fields once and never builds the grids.
2. **Screening.** A cell is given to the CNN only where its threshold could lie within
   ``max_intensity_a_per_us`` (default ``MAX_INTENSITY_A_PER_US`` = 300 A/us, the range of
   common stimulators). Stage 1, per vertex: ``|E| per A/us >= threshold_floor / max_intensity``,
   the floor being 0.8 x the lowest threshold |E| at the soma in the surrogate's training rows and
   direction maps (``ThresholdSurrogate.threshold_floor_v_per_m_``). Stage 2, per (vertex,
   rotation): the uniform-field threshold along that cell's field direction (the direction map,
   lowest over the variants) times ``baseline_ratio_floor_`` (0.85 x the lowest NEURON/baseline
   ratio over the training rows) must be within range. ``screen=False`` runs the CNN everywhere
   (the tests check both give the same map near the hotspot). Elsewhere the cells are "not activated
   within the stimulator range": their thresholds are +inf, their median NaN, their fraction 0.
   Thresholds the CNN puts above ``max_intensity_a_per_us`` are reported the same way, so whether
   a site was screened out or computed never shows in the map (``evaluated`` says which).
   Intensities above ``max_intensity_a_per_us`` are refused: recompute with a larger range.
3. **Batching.** The CNN's convolutional trunk runs once per (vertex, rotation) that passed the
   screen, and its dense head once per variant.

Waveform: the shipped surrogate is trained on monophasic pulses (``core.tms.dataset``); asking
for another waveform raises ``InputError`` (train a biphasic surrogate first).

Usage (what the TMS page needs)::

    from core.tms.cortex import CoilSpec, coil_preset, load_cortex, placement_of
    from core.tms.maps import threshold_map, check_against_neuron

    cortex = load_cortex()
    tm = threshold_map(coil_preset(cortex, "hand_knob_left"), cortex=cortex)   # ~1-3 s, cache it
    # or a moved coil: threshold_map(placement_of(cortex, CoilSpec(anterior_mm=10.0)), cortex=cortex)
    tm.efield_magnitude_v_per_m("L5_PC", 120.0)     # |E| (V/m) on L5 at 120 A/us
    tm.median_threshold_a_per_us("L5_PC")           # A/us, NaN = not activated within 300 A/us
    tm.fraction_activated("L5_PC", 120.0)           # 0..1, instant for a slider
    tm.summary("L5_PC", 120.0)                      # max |E|, vertices activated, lowest/median threshold
    tm.to_frame(120.0).to_csv(...); tm.to_gifti(120.0, "map.gii")
    check_against_neuron(tm, "L5_PC", 5, progress=...)   # NEURON vs surrogate at 5 random cells

Checking: :func:`check_against_neuron` re-simulates a few random cells of a map with NEURON on
exact grids and returns their error against the surrogate (for the page's "check" button).

Exports: :meth:`ThresholdMap.to_frame` (a DataFrame for CSV: hemisphere, cell type, layer,
vertex, x/y/z, |E|, threshold, fraction) and :meth:`ThresholdMap.to_gifti` (a nibabel
``GiftiImage``: the surface as POINTSET + TRIANGLE arrays and one data array per map).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from core.errors import InputError

__all__ = [
    "JACOBIAN_STEP_MM",
    "MAX_INTENSITY_A_PER_US",
    "N_ROTATIONS",
    "ThresholdMap",
    "cell_frames",
    "check_against_neuron",
    "efield_jacobian",
    "linearised_grids",
    "threshold_map",
]

MAX_INTENSITY_A_PER_US = 300.0
N_ROTATIONS = 6  # azimuths per vertex: 6 x 2 variants = 12 cells a vertex (8 or 12: finer fractions, slower)
JACOBIAN_STEP_MM = 1.0
_BATCH = 4096  # (vertex, rotation) pairs through the CNN at once


def cell_frames(normals, azimuths_deg) -> np.ndarray:
    """Vectorised ``core.tms.cortex.cell_frame``: (n, 3) normals x (r,) azimuths -> (n, r, 3, 3)
    rotations from the cell frame to head coordinates (columns x, y, z)."""
    z = np.asarray(normals, float).reshape(-1, 3)
    z = z / np.linalg.norm(z, axis=1, keepdims=True)
    ref = np.where(np.abs(z[:, 1:2]) < 0.95, np.array([[0.0, 1.0, 0.0]]), np.array([[1.0, 0.0, 0.0]]))
    x0 = ref - np.einsum("ij,ij->i", ref, z)[:, None] * z
    x0 /= np.linalg.norm(x0, axis=1, keepdims=True)
    y0 = np.cross(z, x0)
    phi = np.deg2rad(np.asarray(azimuths_deg, float).reshape(-1))
    x = np.cos(phi)[None, :, None] * x0[:, None] + np.sin(phi)[None, :, None] * y0[:, None]
    zz = np.broadcast_to(z[:, None], x.shape)
    y = np.cross(zz, x)
    return np.stack([x, y, zz], axis=-1)


def efield_jacobian(points_mm, placement, sphere_centre_mm, coil=None, step_mm: float = JACOBIAN_STEP_MM) -> np.ndarray:
    """Spatial Jacobian of the E-field per A/us by central differences.

    Returns
    -------
    (n, 3, 3) float array, ``J[i, a, b] = dE_a / dx_b`` at point i (V/m per A/us per mm).
    """
    from core.tms.efield import FigureEightCoil, efield_v_per_m

    p = np.asarray(points_mm, float).reshape(-1, 3)
    steps = np.concatenate([np.eye(3), -np.eye(3)]) * step_mm  # +x +y +z -x -y -z
    stencil = (p[:, None, :] + steps[None]).reshape(-1, 3)
    e = efield_v_per_m(stencil, coil or FigureEightCoil(), placement, sphere_centre_mm).reshape(len(p), 6, 3)
    return ((e[:, :3] - e[:, 3:]) / (2.0 * step_mm)).transpose(0, 2, 1)


def linearised_grids(e_v_per_m, jacobian, frames, n_points: int = 9, spacing_mm: float = 0.5) -> np.ndarray:
    """Normalised cell-frame grids of the linear field model ``E(p + d) = E + J d``.

    Parameters
    ----------
    e_v_per_m : (n, 3) field at the somata (head frame; any common scale).
    jacobian : (n, 3, 3) its Jacobian (same scale per mm).
    frames : (n, 3, 3) cell-to-head rotations (:func:`cell_frames`).

    Returns
    -------
    (n, n_points, n_points, n_points, 3) float32 array, as ``core.tms.cortex.EFieldGrid.e_field``.
    """
    from core.tms.cortex import grid_offsets_mm

    e = np.asarray(e_v_per_m, float)
    r = np.asarray(frames, float)
    rt = r.transpose(0, 2, 1)
    norm = np.linalg.norm(e, axis=1)
    a = np.matmul(rt, e[:, :, None])[:, :, 0] / norm[:, None]  # R^T E / |E|
    b = np.matmul(rt, np.matmul(np.asarray(jacobian, float), r)) / norm[:, None, None]  # R^T J R / |E|
    offsets = grid_offsets_mm(n_points, spacing_mm).reshape(1, -1, 3).astype(np.float32)
    grids = np.matmul(offsets, b.transpose(0, 2, 1).astype(np.float32))  # (n, points, 3): B o
    grids += a[:, None, :].astype(np.float32)
    return grids.reshape(len(e), n_points, n_points, n_points, 3)


@dataclass(frozen=True, eq=False)
class ThresholdMap:
    """Thresholds of one coil placement over a hemisphere (see the module docstring).

    Attributes
    ----------
    hemisphere : "left" or "right".
    vertices : (n,) int array, fsaverage5 vertex numbers within the hemisphere (0..10241).
    faces : (f, 3) int array, triangles indexing rows of the maps (only triangles whose three
        vertices are in the map).
    cell_types : tuple of str.
    layers : dict cell type -> soma layer ("L2/3", "L4", "L5").
    positions_mm : dict cell type -> (n, 3) soma-layer positions (mm).
    efield_per_a_per_us : dict cell type -> (n, 3) E-field at the soma layer per A/us (V/m per A/us).
    thresholds_a_per_us : dict cell type -> (n, n_rotations, n_variants) float32 coil thresholds
        (A/us); +inf where not activated within ``max_intensity_a_per_us``.
    evaluated : dict cell type -> (n,) bool, where the CNN ran for at least one rotation (False:
        screened out, the field too weak for any threshold within range).
    azimuths_deg : (n_rotations,) azimuths of the cells about the normal.
    variants : dict cell type -> tuple of variant numbers.
    max_intensity_a_per_us : the range the thresholds are resolved in.
    waveform : str.
    placement : the CoilPlacement.
    seconds : dict of timings (efield, jacobian, cnn, total).
    """

    hemisphere: str
    vertices: np.ndarray
    faces: np.ndarray
    cell_types: tuple
    layers: dict
    positions_mm: dict
    efield_per_a_per_us: dict
    thresholds_a_per_us: dict
    evaluated: dict
    azimuths_deg: np.ndarray
    variants: dict
    max_intensity_a_per_us: float
    waveform: str
    placement: object
    seconds: dict = field(default_factory=dict)

    @property
    def n_vertices(self) -> int:
        return len(self.vertices)

    def _cell(self, cell_type: str) -> str:
        if cell_type not in self.cell_types:
            raise InputError(f"unknown cell type {cell_type!r}; this map holds {list(self.cell_types)}.", field="cell_type")
        return cell_type

    def _intensity(self, intensity_a_per_us) -> float:
        try:
            value = float(intensity_a_per_us)
        except (TypeError, ValueError):
            raise InputError(f"intensity must be a number of A/us, found {intensity_a_per_us!r}.", field="intensity") from None
        if not math.isfinite(value) or value < 0:
            raise InputError(f"intensity must be a finite dI/dt >= 0 A/us, found {intensity_a_per_us!r}.", field="intensity")
        if value > self.max_intensity_a_per_us:
            raise InputError(f"intensity {value:g} A/us is above this map's range ({self.max_intensity_a_per_us:g} A/us); "
                             "recompute the map with a larger max_intensity_a_per_us.", field="intensity")
        return value

    def efield_magnitude_v_per_m(self, cell_type: str, intensity_a_per_us: float = 1.0) -> np.ndarray:
        """(n,) |E| at the cell type's soma layer (V/m) at ``intensity_a_per_us``."""
        value = self._intensity(intensity_a_per_us)
        return np.linalg.norm(self.efield_per_a_per_us[self._cell(cell_type)], axis=1) * value

    def median_threshold_a_per_us(self, cell_type: str) -> np.ndarray:
        """(n,) median coil threshold over rotations and variants (A/us); NaN where the median is
        above ``max_intensity_a_per_us`` (not activated within the stimulator range)."""
        t = self.thresholds_a_per_us[self._cell(cell_type)]
        med = np.median(t.reshape(len(t), -1).astype(float), axis=1)
        med[~np.isfinite(med)] = np.nan
        return med

    def fraction_activated(self, cell_type: str, intensity_a_per_us: float) -> np.ndarray:
        """(n,) share of the (rotation, variant) cells with threshold <= ``intensity_a_per_us``."""
        value = self._intensity(intensity_a_per_us)
        t = self.thresholds_a_per_us[self._cell(cell_type)]
        return (t.reshape(len(t), -1) <= value).mean(axis=1)

    def summary(self, cell_type: str, intensity_a_per_us: float) -> dict:
        """The headline numbers of one cell type's map at one intensity (the TMS page's metric row).

        Returns
        -------
        dict with
            ``max_e_v_per_m`` : largest |E| on the soma layer at ``intensity_a_per_us`` (V/m);
            ``vertices_activated`` : vertices where at least one (rotation, variant) cell has a
            threshold <= ``intensity_a_per_us``;
            ``mean_fraction_activated`` : mean activated fraction (0..1) over those vertices, 0
            when there are none;
            ``lowest_threshold_a_per_us``, ``median_threshold_a_per_us`` : the lowest and the
            median of the vertices' median thresholds (A/us, :meth:`median_threshold_a_per_us`),
            over the vertices where that is within ``max_intensity_a_per_us``; NaN when none is;
            ``vertices_below_range`` : how many vertices that is;
            ``vertices_evaluated`` : vertices where the CNN ran (the others were screened out).
        """
        e = self.efield_magnitude_v_per_m(cell_type, intensity_a_per_us)
        fraction = self.fraction_activated(cell_type, intensity_a_per_us)
        medians = self.median_threshold_a_per_us(cell_type)
        within = medians[np.isfinite(medians)]
        activated = fraction > 0
        return {"max_e_v_per_m": float(e.max()), "vertices_activated": int(activated.sum()),
                "mean_fraction_activated": float(fraction[activated].mean()) if activated.any() else 0.0,
                "lowest_threshold_a_per_us": float(within.min()) if len(within) else float("nan"),
                "median_threshold_a_per_us": float(np.median(within)) if len(within) else float("nan"),
                "vertices_below_range": int(len(within)), "vertices_evaluated": int(self.evaluated[cell_type].sum())}

    def to_frame(self, intensity_a_per_us: float, cell_types=None):
        """The map at one intensity as a long DataFrame (one row per cell type x vertex), for CSV:
        hemisphere, cell_type, layer, vertex, x_mm, y_mm, z_mm (soma layer), e_v_per_m (|E| at the
        intensity), threshold_a_per_us (median; NaN = above the range), fraction_activated,
        evaluated."""
        import pandas as pd

        value = self._intensity(intensity_a_per_us)
        parts = []
        for ct in cell_types or self.cell_types:
            pos = self.positions_mm[self._cell(ct)]
            parts.append(pd.DataFrame({
                "hemisphere": self.hemisphere, "cell_type": ct, "layer": self.layers[ct], "vertex": self.vertices,
                "x_mm": pos[:, 0], "y_mm": pos[:, 1], "z_mm": pos[:, 2],
                "e_v_per_m": self.efield_magnitude_v_per_m(ct, value),
                "threshold_a_per_us": self.median_threshold_a_per_us(ct),
                "fraction_activated": self.fraction_activated(ct, value),
                "evaluated": self.evaluated[ct]}))
        return pd.concat(parts, ignore_index=True)

    def to_gifti(self, intensity_a_per_us: float, path=None, surface: str | None = None, cortex=None):
        """The map as a GIFTI image: POINTSET and TRIANGLE arrays of a surface, then per cell type
        three float32 data arrays named ``<cell_type>/e_v_per_m``, ``<cell_type>/threshold_a_per_us``
        (median; NaN above the range) and ``<cell_type>/fraction_activated``.

        ``surface``: the geometry written ("pial", "white" or a layer; default the soma layer of
        the first cell type). Values belong to each cell type's soma layer and are written on the
        chosen surface by vertex correspondence. Written to ``path`` when given (.gii).
        """
        import nibabel as nib

        from core.tms.cortex import load_cortex

        value = self._intensity(intensity_a_per_us)
        if surface is None:
            points = self.positions_mm[self.cell_types[0]]
            surface = self.layers[self.cell_types[0]]
        else:
            cortex = cortex or load_cortex()
            sl = cortex.hemisphere_slice(self.hemisphere)
            points = cortex.surface(surface)[0][sl][self.vertices]
        meta = {"AnatomicalStructurePrimary": "CortexLeft" if self.hemisphere == "left" else "CortexRight",
                "Surface": str(surface), "Space": "fsaverage5 (MNI305 mm)", "Waveform": self.waveform,
                "IntensityAPerUs": f"{value:g}", "MaxIntensityAPerUs": f"{self.max_intensity_a_per_us:g}",
                "CoilCentreMm": " ".join(f"{c:.3f}" for c in self.placement.centre_mm),
                "CoilHandle": " ".join(f"{c:.5f}" for c in self.placement.handle_direction)}
        img = nib.gifti.GiftiImage(meta=nib.gifti.GiftiMetaData(meta))
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.asarray(points, np.float32), intent="NIFTI_INTENT_POINTSET",
                                                          datatype="NIFTI_TYPE_FLOAT32"))
        img.add_gifti_data_array(nib.gifti.GiftiDataArray(np.asarray(self.faces, np.int32), intent="NIFTI_INTENT_TRIANGLE",
                                                          datatype="NIFTI_TYPE_INT32"))
        for ct in self.cell_types:
            for name, data in (("e_v_per_m", self.efield_magnitude_v_per_m(ct, value)),
                               ("threshold_a_per_us", self.median_threshold_a_per_us(ct)),
                               ("fraction_activated", self.fraction_activated(ct, value))):
                img.add_gifti_data_array(nib.gifti.GiftiDataArray(
                    np.asarray(data, np.float32), intent="NIFTI_INTENT_ESTIMATE", datatype="NIFTI_TYPE_FLOAT32",
                    meta=nib.gifti.GiftiMetaData({"Name": f"{ct}/{name}", "Layer": self.layers[ct]})))
        if path is not None:
            nib.save(img, str(path))
        return img


def _middle_layer(cortex, layer_names) -> np.ndarray:
    """Positions of the surface halfway (in relative depth) between the shallowest and the deepest
    of the given layers (all hemispheres), e.g. depth 0.525 for L2/3 (0.40) .. L5 (0.65)."""
    from core.tms.cortex import LAYER_RELATIVE_DEPTHS

    depths = [LAYER_RELATIVE_DEPTHS[name] for name in layer_names]
    d = 0.5 * (min(depths) + max(depths))
    return (1.0 - d) * cortex.vertices_mm + d * cortex.white_mm


def threshold_map(placement, *, cortex=None, hemisphere: str | None = None, cell_types=None,
                  waveform: str = "monophasic", coil=None, n_rotations: int = N_ROTATIONS,
                  max_intensity_a_per_us: float = MAX_INTENSITY_A_PER_US, vertices=None, surrogate_dir=None,
                  screen: bool = True) -> ThresholdMap:
    """Thresholds of every cell type at every vertex of a hemisphere for one coil placement.

    Parameters
    ----------
    placement : core.tms.efield.CoilPlacement (e.g. ``core.tms.cortex.coil_preset(cortex)``).
    cortex : core.tms.cortex.Cortex (default ``load_cortex()``).
    hemisphere : "left"/"right"; default the side of the coil centre (x < 0: left).
    cell_types : default all of ``core.tms.neurons.CELL_TYPES``.
    waveform : only the surrogate's (monophasic for the shipped one).
    coil : core.tms.efield.FigureEightCoil (default the 70 mm figure-8).
    n_rotations : azimuths of the cell per vertex (1..72).
    max_intensity_a_per_us : thresholds above it are "not activated" (+inf); see the module docstring.
    vertices : optional subset of hemisphere vertex numbers (0..10241) to map.
    surrogate_dir : folder of the surrogate files (default the shipped ``assets/tms/surrogate``).
    screen : skip sites whose |E| is too weak for any threshold within range (False: run the CNN
        everywhere; same result, slower).

    Returns
    -------
    ThresholdMap
    """
    from core.tms.cortex import load_cortex
    from core.tms.dataset import SOMA_LAYERS
    from core.tms.efield import CoilPlacement, FigureEightCoil, efield_v_per_m
    from core.tms.neurons import CELL_TYPES
    from core.tms.surrogate import load_surrogate

    t_start = time.perf_counter()
    if not isinstance(placement, CoilPlacement):
        raise InputError(f"placement must be a CoilPlacement (e.g. core.tms.cortex.coil_preset), found "
                         f"{type(placement).__name__}.", field="placement")
    cell_types = tuple(CELL_TYPES if cell_types is None else ([cell_types] if isinstance(cell_types, str) else cell_types))
    bad = [c for c in cell_types if c not in CELL_TYPES]
    if bad or not cell_types:
        raise InputError(f"unknown cell type(s) {bad}; expected some of {list(CELL_TYPES)}.", field="cell_types")
    try:
        cap = float(max_intensity_a_per_us)
    except (TypeError, ValueError):
        cap = float("nan")
    if not math.isfinite(cap) or cap <= 0:
        raise InputError(f"max_intensity_a_per_us must be a positive number of A/us, found {max_intensity_a_per_us!r}.",
                         field="max_intensity_a_per_us")
    if isinstance(n_rotations, bool) or not isinstance(n_rotations, (int, np.integer)) or not 1 <= n_rotations <= 72:
        raise InputError(f"n_rotations must be an integer within 1..72, found {n_rotations!r}.", field="n_rotations")
    surrogates = {ct: load_surrogate(ct, surrogate_dir) for ct in cell_types}
    for ct, s in surrogates.items():
        if waveform != s.waveform:
            raise InputError(f"the {ct} surrogate was trained on {s.waveform} pulses only, not {waveform!r}; a "
                             f"{waveform} map needs a {waveform} dataset and `python -m core tms-train` on it.",
                             field="waveform")
    cortex = cortex or load_cortex()
    if hemisphere is None:
        hemisphere = "left" if placement.centre_mm[0] < 0 else "right"
        if hemisphere not in cortex.hemispheres:
            hemisphere = cortex.hemispheres[0]
    sl = cortex.hemisphere_slice(hemisphere)
    n_hemi = sl.stop - sl.start
    if vertices is None:
        local = np.arange(n_hemi)
    else:
        local = np.unique(np.asarray(vertices).reshape(-1))
        if not len(local) or not np.issubdtype(local.dtype, np.integer) or local.min() < 0 or local.max() >= n_hemi:
            raise InputError(f"vertices must be vertex numbers within 0..{n_hemi - 1}.", field="vertices")
    index = np.full(n_hemi, -1)
    index[local] = np.arange(len(local))
    hemi_faces = cortex.faces[np.all((cortex.faces >= sl.start) & (cortex.faces < sl.stop), axis=1)] - sl.start
    faces = index[hemi_faces]
    faces = faces[np.all(faces >= 0, axis=1)]
    coil = coil or FigureEightCoil()
    azimuths = 360.0 * np.arange(n_rotations) / n_rotations
    positions, fields, thresholds, evaluated, layers, variants, work = {}, {}, {}, {}, {}, {}, {}
    n_grids = 0
    timing = {"efield": 0.0, "screen": 0.0, "jacobian": 0.0, "cnn": 0.0}
    # pass 1: the field at every soma and the screen, per cell type
    for ct in cell_types:
        model = surrogates[ct]
        layer = SOMA_LAYERS[ct]
        pos_all, nrm_all = cortex.surface(layer)
        pos, nrm = pos_all[sl][local], nrm_all[sl][local]
        t0 = time.perf_counter()
        e = efield_v_per_m(pos, coil, placement, cortex.sphere_centre_mm)
        timing["efield"] += time.perf_counter() - t0
        mag = np.linalg.norm(e, axis=1)
        todo = mag > 0
        if screen:  # stage 1: |E| too weak for the lowest threshold the cell type has shown
            todo &= mag * cap >= model.threshold_floor_v_per_m_
        sites = np.flatnonzero(todo)
        frames = cell_frames(nrm[sites], azimuths)  # (sites, rotations, 3, 3)
        pairs = np.ones((len(sites), n_rotations), bool)
        if screen and len(sites) and model.baseline_ is not None and model.baseline_ratio_floor_:
            # stage 2: the uniform-field threshold along this cell's field direction, times the
            # lowest NEURON/baseline ratio seen in training (with a margin), is out of range
            t0 = time.perf_counter()
            dirs = np.matmul(frames.transpose(0, 1, 3, 2), e[sites][:, None, :, None])[..., 0].reshape(-1, 3)
            lowest = np.min([model.baseline_.threshold_v_per_m(dirs, var) for var in model.variants], axis=0)
            pairs = (lowest.reshape(len(sites), n_rotations) * model.baseline_ratio_floor_
                     <= cap * mag[sites][:, None])
            timing["screen"] += time.perf_counter() - t0
        site_idx, rot_idx = np.nonzero(pairs)
        work[ct] = (sites, frames, site_idx, rot_idx)
        positions[ct], fields[ct], layers[ct], variants[ct] = pos, e, layer, tuple(model.variants)
    # the Jacobian once per vertex, on the middle soma layer (the layers are < 1 mm apart)
    needed = np.unique(np.concatenate([w[0][np.unique(w[2])] for w in work.values()] + [np.zeros(0, int)]))
    jac = np.zeros((len(local), 3, 3))
    if len(needed):
        t0 = time.perf_counter()
        mid = _middle_layer(cortex, [layers[ct] for ct in cell_types])
        jac[needed] = efield_jacobian(mid[sl][local][needed], placement, cortex.sphere_centre_mm, coil)
        timing["jacobian"] += time.perf_counter() - t0
    # pass 2: the CNN on the (vertex, rotation) pairs that passed the screen
    for ct in cell_types:
        model = surrogates[ct]
        sites, frames, site_idx, rot_idx = work[ct]
        e, mag = fields[ct], np.linalg.norm(fields[ct], axis=1)
        out = np.full((len(local), n_rotations, len(model.variants)), np.inf, dtype=np.float32)
        done = np.zeros(len(local), bool)
        done[sites[np.unique(site_idx)]] = True
        n_grids += len(site_idx)
        if len(site_idx):
            t0 = time.perf_counter()
            v = sites[site_idx]
            r = frames[site_idx, rot_idx]  # (k, 3, 3) cell -> head
            rt = r.transpose(0, 2, 1)
            a = np.matmul(rt, e[v][:, :, None])[:, :, 0] / mag[v][:, None]  # R^T E / |E|
            b = np.matmul(rt, np.matmul(jac[v], r)) / mag[v][:, None, None]  # R^T J R / |E|
            thr_a = model.predict_linear(a, b, batch_size=_BATCH) / mag[v][:, None]
            timing["cnn"] += time.perf_counter() - t0
            thr_a[thr_a > cap] = np.inf
            out[v, rot_idx] = thr_a
        thresholds[ct], evaluated[ct] = out, done
    timing = {k: round(v, 4) for k, v in timing.items()}
    timing["n_grids"] = n_grids
    timing["total"] = round(time.perf_counter() - t_start, 4)
    return ThresholdMap(hemisphere=hemisphere, vertices=local, faces=faces, cell_types=cell_types, layers=layers,
                        positions_mm=positions, efield_per_a_per_us=fields, thresholds_a_per_us=thresholds,
                        evaluated=evaluated, azimuths_deg=azimuths, variants=variants, max_intensity_a_per_us=cap,
                        waveform=waveform, placement=placement, seconds=timing)


def check_against_neuron(tmap: ThresholdMap, cell_type: str, n_sites: int = 5, *, seed: int = 0, cortex=None,
                         coil=None, rel_tol: float = 0.01, progress=None):
    """Re-simulate ``n_sites`` random cells of a map with NEURON and compare with the surrogate.

    Sites are drawn (``numpy.random.default_rng(seed)``) among the (vertex, rotation, variant)
    cells of ``cell_type`` whose surrogate threshold is within the map's range. Each gets the
    *exact* E-field grid (``core.tms.cortex.efield_grid``, not the linearised one) and a
    threshold search (``core.tms.threshold.threshold_a_per_us``, ``rel_tol``), about 0.3-1 s a
    site. ``progress(done, total, row)`` is called after each site (row: a dict as below).

    Returns
    -------
    DataFrame with vertex, azimuth_deg, variant, surrogate_a_per_us, neuron_a_per_us,
    rel_error (surrogate / NEURON - 1), seconds (NEURON time).
    """
    import pandas as pd

    from core.tms import threshold as th
    from core.tms.cortex import efield_grid, load_cortex
    from core.tms.efield import FigureEightCoil
    from core.tms.neurons import get_cell

    ct = tmap._cell(cell_type)
    if isinstance(n_sites, bool) or not isinstance(n_sites, (int, np.integer)) or not 1 <= n_sites <= 1000:
        raise InputError(f"n_sites must be an integer within 1..1000, found {n_sites!r}.", field="n_sites")
    t = tmap.thresholds_a_per_us[ct]
    cells = np.argwhere(np.isfinite(t))
    if not len(cells):
        raise InputError(f"no {ct} cell is activated within {tmap.max_intensity_a_per_us:g} A/us in this map; move the "
                         "coil or raise the range.", field="cell_type")
    rng = np.random.default_rng(seed)
    picks = cells[rng.choice(len(cells), size=min(n_sites, len(cells)), replace=False)]
    cortex = cortex or load_cortex()
    waveform = th.get_waveform(tmap.waveform)
    rows = []
    for vi, ri, ki in picks:
        variant = tmap.variants[ct][ki]
        grid = efield_grid(tmap.positions_mm[ct][vi], cortex.surface(tmap.layers[ct])[1][cortex.hemisphere_slice(
            tmap.hemisphere)][tmap.vertices[vi]], float(tmap.azimuths_deg[ri]), tmap.placement, cortex.sphere_centre_mm,
            coil or FigureEightCoil())
        cell = get_cell(ct, int(variant))
        t0 = time.perf_counter()
        threshold_e = th.threshold_a_per_us(cell, th.field_from_grid(cell, grid.e_field, grid.spacing_mm * 1000.0),
                                            waveform, rel_tol)
        neuron = threshold_e / grid.e_soma_v_per_m
        row = {"vertex": int(tmap.vertices[vi]), "azimuth_deg": float(tmap.azimuths_deg[ri]), "variant": int(variant),
               "surrogate_a_per_us": float(t[vi, ri, ki]), "neuron_a_per_us": float(neuron),
               "rel_error": float(t[vi, ri, ki]) / float(neuron) - 1.0, "seconds": time.perf_counter() - t0}
        rows.append(row)
        if progress:
            progress(len(rows), len(picks), row)
    return pd.DataFrame(rows)
