"""Training data for the TMS threshold surrogate: E-field grids around somata and NEURON thresholds.

Each row of the dataset is one neuron (cell type x morphological variant) at one cortical site,
turned by one azimuth about its local normal, under one coil placement. It holds the 9 x 9 x 9
grid of E-field vectors around the soma in the cell's frame, normalised by |E| at the soma
(Aberra et al. 2023, NeuroImage 275:120184), and the NEURON threshold for that field. Per cell
variant there is also a *direction map*: the threshold in a uniform field as a function of its
direction, the input of the uniform-field baseline.

Design (all deterministic given the config; ``DATASET_VERSION`` enters the digest)
----------------------------------------------------------------------------------
Coil placements (:func:`coil_placements`)
    Around a hotspot preset (``config.hotspot``, default the left hand knob, see
    ``core.tms.cortex.COIL_PRESETS``), tilt 0. Let c0, n0 and e1 be the preset's coil centre,
    scalp normal and handle direction, e2 = n0 x e1. Placement 0 *is* the preset. Placement
    k >= 1 (j = k - 1, M = n_placements - 1) sits on a Vogel (sunflower) disc of radius
    R = ``placement_radius_mm`` in the tangent plane at c0, projected radially onto the scalp:
    offset r_j = R sqrt((j + 1/2) / M) at angle theta_j = j x 137.508 deg (the golden angle)
    from e1 towards e2; its handle is turned from e1 towards e2 by
    alpha_j = 360 deg x frac(j / sqrt 2) (a Kronecker sequence, so handle angles fill 0-360 deg
    independently of the position) and then laid in the local scalp tangent plane. The seed does
    not move placements.
Cortical sites (:func:`plan_dataset`)
    The soma layer of each cell type (``SOMA_LAYERS``: L2/3 PC in L2/3, L4 LBC in L4, L5 PC in
    L5) in the preset's hemisphere. The region of interest is the vertices within
    ``roi_radius_mm`` (straight line, pial coordinates) of the hotspot's target vertex. A site is
    *within reach* of a placement when |E| at that vertex of the soma layer is at least
    ``reach_fraction`` of the largest |E| over the layer's ROI vertices for that placement (with
    the defaults the ROI holds the whole reachable area). For each placement and cell type,
    ``sites_per_placement`` sites are drawn uniformly without replacement from the reachable
    ones (``numpy.random.default_rng([seed, placement, cell type index])``); both variants of a
    cell type use the same sites and azimuths.
Regions
    Every vertex within reach of any placement in any soma layer gets a region id: k-means of
    their pial coordinates into ``n_regions`` patches, each vertex weighted by the number of
    (placement, soma layer) pairs that reach it, so the patches near the hotspot, which every
    placement reaches, are smaller and the regions hold similar numbers of rows (shipped config:
    580-1650 rows a region). Seeding is deterministic: the first centre is the vertex nearest the
    hotspot target, each next one the vertex maximising weight x squared distance to the chosen
    centres (a greedy k-means++), then weighted Lloyd iterations. Region ids are
    per vertex, the same in every layer, so a later split can hold out whole cortical regions
    (``region``) and whole coil placements (``placement_id``).
Azimuthal rotations
    ``rotations_per_site`` azimuths per site, evenly spaced, with a random offset:
    phi_k = u + 360 k / n, u ~ U(0, 360/n) (rng ``[seed, placement, cell type index, vertex]``);
    the frame is ``core.tms.cortex.cell_frame``.
Thresholds
    ``core.tms.threshold.threshold_search`` with ``config.waveform`` and ``config.rel_tol``, on
    the grid *as stored* (float32, trilinear interpolation, ``field_from_grid``). The grid is
    normalised to 1 V/m at the soma, so the search returns the threshold |E| at the soma,
    ``threshold_e_v_per_m``; the coil threshold of that placement is
    ``threshold_a_per_us = threshold_e_v_per_m / e_soma_v_per_m_per_a_per_us``. The bracketing
    starts from the previous row's threshold in the same chunk (the first row of a chunk from
    ``_FIRST_GUESS_V_PER_M``), never from state left by other chunks, so a row's value does not
    depend on which worker computed it or in which order: a resumed run equals a one-shot run.
Direction maps
    Per cell variant, thresholds in a uniform field of 1 V/m per A/us (so A/us = V/m) along the
    ``n_directions`` points of a Fibonacci sphere in the cell frame (:func:`fibonacci_directions`;
    z = the cortical normal towards the pia).

Storage
-------
Generation writes chunks of ``chunk_size`` rows as Parquet (zstd) into
``<workspace>/tms/<config digest>/``: ``chunk_00012.parquet`` (grid rows, ``e_field`` a
fixed-size list of 2187 float32 in C order of (9, 9, 9, 3)) and ``directions_00003.parquet``, plus
``config.yaml``, ``plan.json`` (the expected chunks) and ``runs.jsonl`` (one line per run: wall
time, thresholds, thresholds/s). A chunk is written to a temporary name and renamed, so a killed
run leaves only whole chunks, and a rerun skips them. Workers write their own chunks, so with a
Dask scheduler the workspace must be on a file system the workers share.

:func:`export_dataset` writes the shipped form (``assets/tms/``): ``tms_dataset.parquet`` with
float16 grids (Parquet BYTE_STREAM_SPLIT encoding + zstd: 2.4 KiB a row, against 6.5 KiB for
float32 and 8.5 KiB raw), ``tms_directions.parquet``, ``dataset.yaml`` and ``manifest.json``. The
manifest records the float16 check: thresholds recomputed on float16-rounded grids against the
float32 ones (0.01% bisection, same starting point). Recomputing the grids from the stored
geometry instead would take ~40 ms a row (6 min for 9,000 rows) at every load, so it was not
chosen; the geometry columns are kept, so it remains possible.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from core.config import Settings
from core.errors import InputError
from core.tms.efield import CoilPlacement

__all__ = [
    "DATASET_VERSION",
    "SOMA_LAYERS",
    "DatasetConfig",
    "DatasetPlan",
    "GenerationReport",
    "TMSDataset",
    "coil_placements",
    "dataset_folder",
    "export_dataset",
    "fibonacci_directions",
    "generate_dataset",
    "load_dataset",
    "placement_of",
    "plan_dataset",
]

DATASET_VERSION = 1  # bump when the scheme changes: it enters the digest, so old chunks are not reused
SOMA_LAYERS = {"L23_PC": "L2/3", "L4_LBC": "L4", "L5_PC": "L5"}
# Starting points of the first bracketing in a chunk: threshold |E| at the soma (V/m), roughly
# the medians of these cells under the hand-knob placement. Later rows start from the previous row.
_FIRST_GUESS_V_PER_M = {"L23_PC": 300.0, "L4_LBC": 550.0, "L5_PC": 250.0}
_GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))  # 137.508 deg
_EXPORT_GRIDS = "tms_dataset.parquet"
_EXPORT_DIRECTIONS = "tms_directions.parquet"


# ---------------------------------------------------------------------------------------------
# config


def _int_in(problems: list, name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        problems.append(f"{name} must be an integer within {lo}..{hi}, found {value!r}")


def _float_in(problems: list, name: str, value, lo: float, hi: float, *, open_lo: bool = False) -> None:
    ok = isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and math.isfinite(float(value))
    if ok:
        ok = (lo < float(value) if open_lo else lo <= float(value)) and float(value) <= hi
    if not ok:
        problems.append(f"{name} must be a number within {'(' if open_lo else '['}{lo}, {hi}], found {value!r}")


@dataclass(frozen=True)
class DatasetConfig(Settings):
    """What to simulate for the surrogate's training set (the defaults are the shipped dataset).

    Parameters
    ----------
    seed : random seed of the site sampling and the azimuth offsets.
    cell_types : cell types (``core.tms.neurons.CELL_TYPES``).
    variants : morphological variants of each cell type.
    waveform : "monophasic" or "biphasic" (``core.tms.threshold``).
    n_placements : coil placements; placement 0 is the hotspot preset (see the module docstring).
    sites_per_placement : cortical sites drawn per placement and cell type.
    rotations_per_site : azimuthal rotations of the cell about its normal per site.
    grid_points : points per side of the E-field grid (odd; the soma at the centre).
    grid_spacing_mm : grid spacing (mm).
    hotspot : coil preset the placements vary around (``core.tms.cortex.COIL_PRESETS``).
    placement_radius_mm : largest offset of the coil centre from the preset's (mm, on the scalp).
    roi_radius_mm : sites lie within this distance of the preset's target vertex (mm).
    reach_fraction : a site is within reach when |E| there >= this x the layer's max (0..1].
    n_regions : cortical patches (k-means) for held-out-region splits.
    n_directions : directions of the uniform-field direction map per cell variant (0 = none).
    rel_tol : relative tolerance of the threshold bisection.
    chunk_size : rows per chunk file (also the unit of parallel work and of resumption).
    """

    seed: int = 0
    cell_types: tuple = ("L23_PC", "L4_LBC", "L5_PC")
    variants: tuple = (0, 1)
    waveform: str = "monophasic"
    n_placements: int = 40
    sites_per_placement: int = 14
    rotations_per_site: int = 3
    grid_points: int = 9
    grid_spacing_mm: float = 0.5
    hotspot: str = "hand_knob_left"
    placement_radius_mm: float = 20.0
    roi_radius_mm: float = 60.0
    reach_fraction: float = 0.5
    n_regions: int = 8
    n_directions: int = 128
    rel_tol: float = 0.01
    chunk_size: int = 40

    SOURCE: ClassVar[str] = "TMS dataset config"

    def __post_init__(self):
        from core.tms.cortex import COIL_PRESETS
        from core.tms.neurons import CELL_TYPES, N_VARIANTS

        problems: list[str] = []
        cell_types = tuple(self.cell_types) if isinstance(self.cell_types, (list, tuple)) else (self.cell_types,)
        variants = tuple(self.variants) if isinstance(self.variants, (list, tuple)) else (self.variants,)
        object.__setattr__(self, "cell_types", cell_types)
        object.__setattr__(self, "variants", variants)
        if not cell_types or any(c not in CELL_TYPES for c in cell_types) or len(set(cell_types)) != len(cell_types):
            problems.append(f"cell_types must be distinct names from {list(CELL_TYPES)}, found {list(cell_types)}")
        max_variant = min((N_VARIANTS.get(c, 0) for c in cell_types), default=0) - 1
        if (not variants or len(set(variants)) != len(variants)
                or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= max_variant for v in variants)):
            problems.append(f"variants must be distinct integers within 0..{max(max_variant, 0)}, found {list(variants)}")
        else:
            object.__setattr__(self, "variants", tuple(int(v) for v in variants))
        _int_in(problems, "seed", self.seed, 0, 2**32 - 1)
        if self.waveform not in ("monophasic", "biphasic"):
            problems.append(f"waveform must be 'monophasic' or 'biphasic', found {self.waveform!r}")
        _int_in(problems, "n_placements", self.n_placements, 1, 1000)
        _int_in(problems, "sites_per_placement", self.sites_per_placement, 1, 1000)
        _int_in(problems, "rotations_per_site", self.rotations_per_site, 1, 72)
        _int_in(problems, "grid_points", self.grid_points, 3, 21)
        if isinstance(self.grid_points, (int, np.integer)) and self.grid_points % 2 == 0:
            problems.append(f"grid_points must be odd (the soma at the centre), found {self.grid_points}")
        _float_in(problems, "grid_spacing_mm", self.grid_spacing_mm, 0.0, 2.0, open_lo=True)
        if self.hotspot not in COIL_PRESETS:
            problems.append(f"hotspot must be one of {list(COIL_PRESETS)}, found {self.hotspot!r}")
        _float_in(problems, "placement_radius_mm", self.placement_radius_mm, 0.0, 40.0)
        _float_in(problems, "roi_radius_mm", self.roi_radius_mm, 5.0, 200.0)
        _float_in(problems, "reach_fraction", self.reach_fraction, 0.0, 1.0, open_lo=True)
        _int_in(problems, "n_regions", self.n_regions, 1, 64)
        _int_in(problems, "n_directions", self.n_directions, 0, 5000)
        _float_in(problems, "rel_tol", self.rel_tol, 0.0, 0.1, open_lo=True)
        _int_in(problems, "chunk_size", self.chunk_size, 1, 10_000)
        if problems:
            raise InputError("; ".join(problems) + ".", source="TMS dataset config")

    @property
    def n_grid_rows(self) -> int:
        """Rows with a grid: cell types x variants x placements x sites x rotations (at most:
        a placement with fewer sites within reach gives fewer)."""
        return (len(self.cell_types) * len(self.variants) * self.n_placements * self.sites_per_placement
                * self.rotations_per_site)

    def digest(self) -> str:
        """Short content hash of the config and ``DATASET_VERSION``: the chunk folder's name."""
        payload = json.dumps({"version": DATASET_VERSION, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------
# geometry: placements, directions, regions, sites


def fibonacci_directions(n: int) -> np.ndarray:
    """``n`` nearly uniform unit vectors (Fibonacci sphere), in the cell frame.

    Direction k: z = 1 - (2k + 1) / n, azimuth k x 137.508 deg (the golden angle), so
    ``z`` runs from near +1 (towards the pia) to near -1.

    Returns
    -------
    (n, 3) float array of unit vectors.
    """
    k = np.arange(int(n), dtype=float)
    z = 1.0 - (2.0 * k + 1.0) / max(int(n), 1)
    r = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    phi = np.deg2rad(k * _GOLDEN_ANGLE_DEG)
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def coil_placements(config: DatasetConfig, cortex=None) -> pd.DataFrame:
    """The coil placements of ``config`` (scheme in the module docstring).

    Returns
    -------
    DataFrame indexed by ``placement_id`` with ``offset_along_mm``, ``offset_across_mm`` (offset
    of the centre along the preset's handle and across it, in the tangent plane at the preset's
    centre), ``offset_mm``, ``handle_angle_deg`` (turn from the preset's handle, counter-clockwise
    seen from outside), ``coil_x_mm``/``coil_y_mm``/``coil_z_mm`` (centre on the scalp),
    ``normal_x/y/z`` (coil axis), ``handle_x/y/z``, ``tilt_deg`` (0).
    """
    from core.tms.cortex import coil_preset, load_cortex

    if cortex is None:
        cortex = load_cortex()
    hot = coil_preset(cortex, config.hotspot, 0.0)
    c0, n0, e1 = (np.asarray(v, float) for v in (hot.centre_mm, hot.normal, hot.handle_direction))
    e2 = np.cross(n0, e1)
    rows = []
    m = config.n_placements - 1
    for k in range(config.n_placements):
        if k == 0:
            r = theta = alpha = 0.0
        else:
            j = k - 1
            r = config.placement_radius_mm * math.sqrt((j + 0.5) / m)
            theta = (j * _GOLDEN_ANGLE_DEG) % 360.0
            alpha = 360.0 * ((j / math.sqrt(2.0)) % 1.0)
        t, a = math.radians(theta), math.radians(alpha)
        p = c0 + r * (math.cos(t) * e1 + math.sin(t) * e2) - cortex.sphere_centre_mm
        normal = p / np.linalg.norm(p)
        centre = cortex.sphere_centre_mm + cortex.scalp_radius_mm * normal
        if k == 0:
            placement = hot
        else:
            placement = CoilPlacement.from_scalp_point(centre, normal, math.cos(a) * e1 + math.sin(a) * e2, 0.0)
        rows.append({
            "placement_id": k,
            "offset_along_mm": r * math.cos(t),
            "offset_across_mm": r * math.sin(t),
            "offset_mm": r,
            "handle_angle_deg": alpha,
            **{f"coil_{c}_mm": v for c, v in zip("xyz", placement.centre_mm)},
            **{f"normal_{c}": v for c, v in zip("xyz", placement.normal)},
            **{f"handle_{c}": v for c, v in zip("xyz", placement.handle_direction)},
            "tilt_deg": placement.tilt_deg,
        })
    return pd.DataFrame(rows).set_index("placement_id")


def placement_of(row) -> CoilPlacement:
    """The ``CoilPlacement`` of a row of :func:`coil_placements` or of the dataset table."""
    get = row.__getitem__
    return CoilPlacement(tuple(float(get(f"coil_{c}_mm")) for c in "xyz"), tuple(float(get(f"normal_{c}")) for c in "xyz"),
                         tuple(float(get(f"handle_{c}")) for c in "xyz"), float(get("tilt_deg")))


def _kmeans(points: np.ndarray, weights: np.ndarray, k: int, start: int, iterations: int = 100) -> np.ndarray:
    """Deterministic weighted k-means: greedy k-means++ seeding from ``points[start]``, then Lloyd."""
    k = min(k, len(points))
    centres = [points[start]]
    d = np.linalg.norm(points - centres[0], axis=1)
    for _ in range(1, k):
        centres.append(points[int(np.argmax(weights * d**2))])
        d = np.minimum(d, np.linalg.norm(points - centres[-1], axis=1))
    centres = np.array(centres)
    labels = None
    for _ in range(iterations):
        new = np.argmin(np.linalg.norm(points[:, None, :] - centres[None], axis=2), axis=1)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for c in range(k):
            if np.any(labels == c):
                centres[c] = np.average(points[labels == c], axis=0, weights=weights[labels == c])
    return labels


@dataclass(frozen=True, eq=False)
class DatasetPlan:
    """Everything :func:`generate_dataset` will compute, before any simulation.

    Attributes
    ----------
    config : DatasetConfig
    placements : DataFrame from :func:`coil_placements`.
    regions : Series, region id per vertex within reach (index: vertex).
    rows : DataFrame, one row per grid threshold in dataset order (``row_id``): cell_type,
        variant, layer, placement columns, vertex, region, soma_x/y/z_mm, cell_nx/ny/nz (local
        normal = cell z), azimuth_deg, chunk.
    directions : DataFrame, one row per direction-map threshold: cell_type, variant,
        direction_id, dir_x/y/z (cell frame), polar_deg, azimuth_deg, chunk.
    sphere_centre_mm : (3,) array, the head sphere's centre (the E-field needs it).
    """

    config: DatasetConfig
    placements: pd.DataFrame
    regions: pd.Series
    rows: pd.DataFrame
    directions: pd.DataFrame
    sphere_centre_mm: np.ndarray

    @property
    def grid_chunks(self) -> list[str]:
        return [_chunk_name("chunk", i) for i in range(int(self.rows["chunk"].max()) + 1)] if len(self.rows) else []

    @property
    def direction_chunks(self) -> list[str]:
        return ([_chunk_name("directions", i) for i in range(int(self.directions["chunk"].max()) + 1)]
                if len(self.directions) else [])


def _chunk_name(kind: str, i: int) -> str:
    return f"{kind}_{i:05d}.parquet"


def plan_dataset(config: DatasetConfig, cortex=None) -> DatasetPlan:
    """Placements, regions, sites, rotations and chunks of ``config`` (a few seconds; no NEURON).

    Costs one E-field evaluation over the ROI of each soma layer per placement.
    """
    from core.tms.cortex import COIL_PRESETS, efield_v_per_m, load_cortex
    from core.tms.efield import FigureEightCoil

    if cortex is None:
        cortex = load_cortex()
    preset = COIL_PRESETS[config.hotspot]
    placements = coil_placements(config, cortex)
    hemi = cortex.hemisphere_slice(preset["hemisphere"])
    target = cortex.nearest_vertex(preset["target_mm"], preset["hemisphere"])
    vertices = np.arange(hemi.start, hemi.stop)
    roi = vertices[np.linalg.norm(cortex.vertices_mm[hemi] - cortex.vertices_mm[target], axis=1) <= config.roi_radius_mm]
    coil = FigureEightCoil()
    layers = [SOMA_LAYERS[c] for c in config.cell_types]
    reachable: dict[tuple[int, str], np.ndarray] = {}
    for pid, prow in placements.iterrows():
        placement = placement_of(prow)
        for layer in dict.fromkeys(layers):
            positions, _ = cortex.surface(layer)
            e = np.linalg.norm(efield_v_per_m(positions[roi], coil, placement, cortex.sphere_centre_mm), axis=1)
            reachable[(int(pid), layer)] = roi[e >= config.reach_fraction * e.max()]
    candidates, weights = np.unique(np.concatenate(list(reachable.values())), return_counts=True)
    start = int(np.argmin(np.linalg.norm(cortex.vertices_mm[candidates] - cortex.vertices_mm[target], axis=1)))
    labels = _kmeans(cortex.vertices_mm[candidates], weights.astype(float), config.n_regions, start)
    regions = pd.Series(labels, index=pd.Index(candidates, name="vertex"), name="region")

    rows = []
    for ci, cell_type in enumerate(config.cell_types):
        layer = SOMA_LAYERS[cell_type]
        positions, normals = cortex.surface(layer)
        sites = []
        for pid in placements.index:
            pool = reachable[(int(pid), layer)]
            rng = np.random.default_rng([config.seed, int(pid), ci])
            chosen = rng.choice(pool, size=min(config.sites_per_placement, len(pool)), replace=False)
            for vertex in chosen:
                rot_rng = np.random.default_rng([config.seed, int(pid), ci, int(vertex)])
                u = rot_rng.uniform(0.0, 360.0 / config.rotations_per_site)
                for k in range(config.rotations_per_site):
                    sites.append((int(pid), int(vertex), u + 360.0 * k / config.rotations_per_site))
        for variant in config.variants:
            for pid, vertex, azimuth in sites:
                rows.append({
                    "cell_type": cell_type, "variant": variant, "layer": layer, "placement_id": pid,
                    "vertex": vertex, "region": int(regions[vertex]),
                    **{f"soma_{c}_mm": v for c, v in zip("xyz", positions[vertex])},
                    **{f"cell_n{c}": v for c, v in zip("xyz", normals[vertex])},
                    "azimuth_deg": azimuth,
                })
    table = pd.DataFrame(rows)
    table = table.join(placements, on="placement_id")
    table.index.name = "row_id"
    # chunks never mix cell variants (a worker keeps one live cell)
    table["chunk"] = _chunk_numbers(table[["cell_type", "variant"]], config.chunk_size)

    dirs = fibonacci_directions(config.n_directions)
    drows = []
    for cell_type in config.cell_types:
        for variant in config.variants:
            for k, d in enumerate(dirs):
                drows.append({"cell_type": cell_type, "variant": variant, "direction_id": k,
                              "dir_x": d[0], "dir_y": d[1], "dir_z": d[2],
                              "polar_deg": float(np.degrees(np.arccos(np.clip(d[2], -1, 1)))),
                              "azimuth_deg": float(np.degrees(np.arctan2(d[1], d[0])) % 360.0)})
    directions = pd.DataFrame(drows, columns=["cell_type", "variant", "direction_id", "dir_x", "dir_y", "dir_z",
                                              "polar_deg", "azimuth_deg"])
    directions["chunk"] = _chunk_numbers(directions[["cell_type", "variant"]], config.chunk_size)
    return DatasetPlan(config, placements, regions, table, directions, np.asarray(cortex.sphere_centre_mm, float))


def _chunk_numbers(keys: pd.DataFrame, size: int) -> np.ndarray:
    out = np.zeros(len(keys), dtype=np.int64)
    if not len(keys):
        return out
    group = (keys != keys.shift()).any(axis=1).cumsum().to_numpy() - 1
    chunk, previous, count = -1, -1, 0
    for i, g in enumerate(group):
        if g != previous or count == size:
            chunk, previous, count = chunk + 1, g, 0
        out[i] = chunk
        count += 1
    return out


# ---------------------------------------------------------------------------------------------
# workers


def _grid_field(cfg: dict, row: dict) -> tuple[np.ndarray, float]:
    from core.tms.cortex import efield_grid

    grid = efield_grid([row[f"soma_{c}_mm"] for c in "xyz"], [row[f"cell_n{c}"] for c in "xyz"], row["azimuth_deg"],
                       placement_of(row), cfg["sphere_centre_mm"], n_points=cfg["grid_points"],
                       spacing_mm=cfg["grid_spacing_mm"])
    return grid.e_field.astype(np.float32), grid.e_soma_v_per_m


def _write_table(table, path: Path, *, float_columns: list[str] = (), dictionary: list[str] = ()) -> None:
    import pyarrow.parquet as pq

    from core.store.atomic import atomic_path

    with atomic_path(path) as tmp:  # temporary, fsync, rename: a killed run or a power cut leaves whole chunks only
        pq.write_table(table, tmp, compression="zstd", compression_level=9, use_dictionary=list(dictionary) or False,
                       use_byte_stream_split=list(float_columns) or False)


def _fsl(flat: np.ndarray, dtype):
    import pyarrow as pa

    typ = pa.float16() if dtype == np.float16 else pa.float32()
    return pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(flat, dtype).ravel(), type=typ), flat.shape[1])


def _compute_chunk(task: dict) -> dict:
    """One unit of parallel work: the thresholds of one chunk (one cell variant), written to disk."""
    import pyarrow as pa

    from core.tms import threshold as th
    from core.tms.neurons import get_cell

    start = time.perf_counter()
    cfg = task["config"]
    cell = get_cell(task["cell_type"], task["variant"])
    waveform = th.get_waveform(cfg["waveform"])
    guess = _FIRST_GUESS_V_PER_M[task["cell_type"]]
    out, grids, n_sims = [], [], 0
    for row in task["rows"]:
        if task["kind"] == "grid":
            grid, e_soma = _grid_field(cfg, row)
            e = th.field_from_grid(cell, grid, cfg["grid_spacing_mm"] * 1000.0)  # normalised: 1 V/m at the soma
            grids.append(grid.reshape(-1))
        else:
            e = th.uniform_field(cell, [row["dir_x"], row["dir_y"], row["dir_z"]], 1.0)
        result = th.threshold_search(cell, e, waveform, rel_tol=cfg["rel_tol"], initial_a_per_us=guess)
        value = float(result.threshold_a_per_us)
        if math.isfinite(value):
            guess = value
        n_sims += result.n_simulations
        if task["kind"] == "grid":
            out.append({**row, "e_soma_v_per_m_per_a_per_us": e_soma, "threshold_e_v_per_m": value,
                        "threshold_a_per_us": value / e_soma, "n_simulations": result.n_simulations,
                        "ap_site": result.first_site_kind})
        else:
            out.append({**row, "threshold_v_per_m": value, "n_simulations": result.n_simulations,
                        "ap_site": result.first_site_kind})
    frame = pd.DataFrame(out)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    floats = []
    if task["kind"] == "grid":
        table = table.append_column("e_field", _fsl(np.stack(grids), np.float32))
        floats = ["e_field.list.element"]
    layout = {"float_columns": floats, "dictionary": ["cell_type", "layer", "ap_site"] if task["kind"] == "grid" else ["cell_type", "ap_site"]}
    info = {"chunk": Path(task["path"]).name, "thresholds": len(out), "simulations": n_sims, "seconds": time.perf_counter() - start}
    if task.get("return_table"):  # on a Dask worker, which may not see the workspace: the caller writes it
        return {**info, "table": table, "layout": layout}
    _write_table(table, Path(task["path"]), **layout)
    return info


# ---------------------------------------------------------------------------------------------
# generation


def dataset_folder(config: DatasetConfig, workspace: str | Path | None = None) -> Path:
    """``<workspace>/tms/<config digest>/`` (default workspace: ``core.store.default_workspace``)."""
    from core.store.workspace import default_workspace

    return Path(workspace if workspace is not None else default_workspace()) / "tms" / config.digest()


@dataclass
class GenerationReport:
    """What one :func:`generate_dataset` call did.

    Attributes
    ----------
    folder : the chunk folder.
    chunks_total, chunks_before, chunks_computed : chunk counts (grid + direction chunks).
    thresholds_total, thresholds_computed : threshold counts.
    seconds : wall time of the simulations in this call (planning excluded).
    complete : whether every chunk now exists.
    """

    folder: Path
    chunks_total: int
    chunks_before: int
    chunks_computed: int
    thresholds_total: int
    thresholds_computed: int
    seconds: float
    complete: bool
    computed: list = field(default_factory=list)

    @property
    def thresholds_per_s(self) -> float:
        return self.thresholds_computed / self.seconds if self.seconds > 0 else float("nan")


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (v.item() if isinstance(v, np.generic) else v) for k, v in r.items()} for r in frame.to_dict("records")]


def generate_dataset(config: DatasetConfig, workspace: str | Path | None = None, *, n_jobs: int = 2,
                     limit: int | None = None, progress=None, plan: DatasetPlan | None = None) -> GenerationReport:
    """Compute the missing chunks of ``config``'s dataset into its workspace folder.

    Parameters
    ----------
    config : DatasetConfig
    workspace : workspace folder (default ``core.store.default_workspace()``); chunks go to
        ``dataset_folder(config, workspace)``.
    n_jobs : worker processes (``core.parallel.parallel_map``; Dask when
        ``NEUROPREDICT_DASK_SCHEDULER`` is set: the workers send each chunk back and it is written
        here, so they need not see the workspace). 1 runs in this process.
    limit : compute at most this many missing chunks, then stop (a rerun continues).
    progress : ``progress(done_thresholds, total_thresholds)``, called as chunks finish
        (``done`` counts chunks from earlier runs too).
    plan : a precomputed :func:`plan_dataset` of ``config`` (saves the planning).

    Returns
    -------
    GenerationReport
    """
    from core.parallel import on_cluster, parallel_map

    if limit is not None and (isinstance(limit, bool) or int(limit) < 0):
        raise InputError(f"limit must be a non-negative number of chunks, found {limit!r}.", field="limit")
    folder = dataset_folder(config, workspace)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the dataset folder: {exc.strerror}.", source=str(folder)) from exc
    if plan is None:
        plan = plan_dataset(config)
    elif plan.config != config:
        raise InputError("the plan was made for another config.", field="plan")
    config_file = folder / "config.yaml"
    if not config_file.exists():
        config.to_yaml(config_file)
    expected = {"digest": config.digest(), "version": DATASET_VERSION, "grid_chunks": plan.grid_chunks,
                "direction_chunks": plan.direction_chunks, "n_rows": len(plan.rows), "n_directions": len(plan.directions)}
    (folder / "plan.json").write_text(json.dumps(expected, indent=1))

    cfg = {"waveform": config.waveform, "rel_tol": config.rel_tol, "grid_points": config.grid_points,
           "grid_spacing_mm": config.grid_spacing_mm, "sphere_centre_mm": plan.sphere_centre_mm.tolist()}
    tasks, done_before, n_total, n_chunks = [], 0, 0, 0
    # per cell variant: the direction map first, then the grid rows; both workers share a cell
    for cell_type in config.cell_types:
        for variant in config.variants:
            for kind, table, names in (("directions", plan.directions, plan.direction_chunks), ("grid", plan.rows, plan.grid_chunks)):
                mine = table[(table["cell_type"] == cell_type) & (table["variant"] == variant)]
                for chunk_id, part in mine.groupby("chunk", sort=True):
                    n_chunks += 1
                    n_total += len(part)
                    path = folder / names[int(chunk_id)]
                    if path.exists():
                        done_before += len(part)
                        continue
                    if kind == "grid":
                        part = part.reset_index()  # keep row_id
                    tasks.append({"kind": kind, "path": str(path), "cell_type": cell_type, "variant": int(variant),
                                  "config": cfg, "rows": _records(part.drop(columns="chunk", errors="ignore"))})
    chunks_before = n_chunks - len(tasks)
    if limit is not None:
        tasks = tasks[: int(limit)]
    sizes = np.cumsum([len(t["rows"]) for t in tasks]) if tasks else np.zeros(0)
    if progress:
        progress(done_before, n_total)

    def report(i, _total):
        if progress:
            progress(done_before + int(sizes[i - 1]), n_total)

    if on_cluster() and n_jobs != 1 and len(tasks) > 1:  # workers send each chunk back; it is written here as it arrives
        tasks = [{**t, "return_table": True} for t in tasks]

    def written(i, result):
        if "table" in result:
            _write_table(result.pop("table"), Path(tasks[i]["path"]), **result.pop("layout"))

    start = time.perf_counter()
    try:
        results = parallel_map(_compute_chunk, tasks, n_jobs=n_jobs, prefer="processes", progress=report, on_result=written) if tasks else []
    finally:
        if n_jobs == 1 or len(tasks) <= 1:  # the cell lived in this process
            from core.tms.neurons import release_cell

            release_cell()
    seconds = time.perf_counter() - start
    computed = sum(r["thresholds"] for r in results)
    complete = all((folder / n).exists() for n in plan.grid_chunks + plan.direction_chunks)
    out = GenerationReport(folder, n_chunks, chunks_before, len(results), n_total, computed, seconds, complete, results)
    if results:
        with open(folder / "runs.jsonl", "a") as log:
            log.write(json.dumps({"finished": time.strftime("%Y-%m-%dT%H:%M:%S"), "n_jobs": n_jobs,
                                  "chunks": len(results), "thresholds": computed,
                                  "simulations": sum(r["simulations"] for r in results), "wall_s": round(seconds, 2),
                                  "thresholds_per_s": round(out.thresholds_per_s, 3), "complete": complete}) + "\n")
    return out


# ---------------------------------------------------------------------------------------------
# loading and export


@dataclass(frozen=True, eq=False)
class TMSDataset:
    """A loaded dataset.

    Attributes
    ----------
    config : DatasetConfig
    rows : DataFrame, one row per grid threshold (index ``row_id``); columns as
        :class:`DatasetPlan` ``.rows`` plus ``e_soma_v_per_m_per_a_per_us`` (|E| at the soma per
        A/us of coil dI/dt), ``threshold_e_v_per_m`` (threshold |E| at the soma),
        ``threshold_a_per_us`` (coil dI/dt threshold of that placement), ``n_simulations``,
        ``ap_site`` (compartment kind where the AP started).
    grids : (n_rows, n, n, n, 3) float32 array, E / |E(soma)| in the cell frame, in the order of
        ``rows``; ``grids[:, c, c, c]`` (c = n // 2) have norm 1.
    directions : DataFrame, the direction maps: cell_type, variant, direction_id, dir_x/y/z
        (cell frame), polar_deg, azimuth_deg, threshold_v_per_m (uniform-field threshold),
        n_simulations, ap_site.
    complete : whether every planned chunk was there.
    """

    config: DatasetConfig
    rows: pd.DataFrame
    grids: np.ndarray
    directions: pd.DataFrame
    complete: bool

    def __len__(self) -> int:
        return len(self.rows)


def _read_parquet(path: Path, grid_points: int):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read the dataset file ({exc}); delete it and generate again.", source=str(path)) from exc
    grids = None
    if "e_field" in table.column_names:
        column = table.column("e_field").combine_chunks()
        n = grid_points
        if not pa.types.is_fixed_size_list(column.type) or column.type.list_size != n**3 * 3:
            raise InputError(f"e_field must hold {n ** 3 * 3} values a row, found {column.type}.", source=str(path))
        grids = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, n, n, n, 3)
        table = table.drop(["e_field"])
    return table.to_pandas(), grids


def load_dataset(folder: str | Path) -> TMSDataset:
    """Load a dataset: a chunk folder (``dataset_folder(...)``: the chunks are concatenated, in
    row order) or an exported folder (``export_dataset``, e.g. ``assets/tms``).

    Raises
    ------
    InputError
        When the folder holds neither, or a file cannot be read.
    """
    folder = Path(folder)
    config_file = folder / "config.yaml" if (folder / "config.yaml").exists() else folder / "dataset.yaml"
    if not config_file.exists():
        raise InputError("no TMS dataset here (expected config.yaml with chunk_*.parquet, or dataset.yaml with "
                         f"{_EXPORT_GRIDS}).", source=str(folder))
    config = DatasetConfig.from_yaml(config_file)
    n = config.grid_points
    if (folder / _EXPORT_GRIDS).exists():
        rows, grids = _read_parquet(folder / _EXPORT_GRIDS, n)
        directions = (_read_parquet(folder / _EXPORT_DIRECTIONS, n)[0] if (folder / _EXPORT_DIRECTIONS).exists()
                      else pd.DataFrame())
        complete = True
    else:
        parts = [_read_parquet(p, n) for p in sorted(folder.glob("chunk_*.parquet"))]
        dparts = [_read_parquet(p, n)[0] for p in sorted(folder.glob("directions_*.parquet"))]
        if not parts and not dparts:
            raise InputError("no chunks yet: run `python -m core tms-dataset` first.", source=str(folder))
        rows = pd.concat([p[0] for p in parts], ignore_index=True) if parts else pd.DataFrame({"row_id": []}, dtype="int64")
        grids = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, n, n, n, 3), np.float32)
        directions = pd.concat(dparts, ignore_index=True) if dparts else pd.DataFrame()
        try:
            plan = json.loads((folder / "plan.json").read_text())
            expected = set(plan["grid_chunks"]) | set(plan["direction_chunks"])
        except (OSError, ValueError, KeyError):
            expected = None
        present = {p.name for p in folder.glob("*.parquet")}
        complete = expected is not None and expected <= present
    order = np.argsort(rows["row_id"].to_numpy(), kind="stable")
    rows, grids = rows.iloc[order].set_index("row_id"), grids[order]
    if len(directions):
        directions = directions.sort_values(["cell_type", "variant", "direction_id"], kind="stable").reset_index(drop=True)
    return TMSDataset(config, rows, grids, directions, bool(complete))


def _float16_check(data: TMSDataset, n_rows: int) -> dict:
    """Thresholds on float16-rounded grids against float32 ones, at 0.01% bisection, same start."""
    from core.tms import threshold as th
    from core.tms.neurons import get_cell, release_cell

    if n_rows <= 0 or not len(data):
        return {}
    picks = np.unique(np.linspace(0, len(data) - 1, min(n_rows, len(data))).round().astype(int))
    spacing_um = data.config.grid_spacing_mm * 1000.0
    diffs = []
    try:
        for i in sorted(picks, key=lambda i: (data.rows["cell_type"].iloc[i], data.rows["variant"].iloc[i])):
            row = data.rows.iloc[i]
            cell = get_cell(row["cell_type"], int(row["variant"]))
            g32 = data.grids[i]
            g16 = g32.astype(np.float16).astype(np.float32)
            start = float(row["threshold_e_v_per_m"])
            a = th.threshold_search(cell, th.field_from_grid(cell, g32, spacing_um), data.config.waveform, 1e-4, start)
            b = th.threshold_search(cell, th.field_from_grid(cell, g16, spacing_um), data.config.waveform, 1e-4, start)
            diffs.append(abs(b.threshold_a_per_us / a.threshold_a_per_us - 1.0))
    finally:
        release_cell()
    rounding = np.abs(data.grids.astype(np.float16).astype(np.float32) - data.grids)
    return {"rows_checked": len(diffs), "bisection_rel_tol": 1e-4,
            "max_rel_threshold_change": float(max(diffs)), "median_rel_threshold_change": float(np.median(diffs)),
            "max_abs_grid_rounding": float(rounding.max()),
            "max_rel_grid_rounding": float((rounding / np.maximum(np.abs(data.grids), 1e-3)).max())}


def export_dataset(folder: str | Path, out_dir: str | Path, *, verify_rows: int = 12) -> dict:
    """Write a finished chunk folder in its shipped form (see the module docstring).

    Parameters
    ----------
    folder : the chunk folder (``dataset_folder(config, workspace)``).
    out_dir : where to write (e.g. ``assets/tms``); existing export files are replaced.
    verify_rows : rows whose thresholds are recomputed on float16 grids (about 2 s each).

    Returns
    -------
    dict, the manifest (also written as ``manifest.json``).
    """
    import pyarrow as pa

    data = load_dataset(folder)
    if not data.complete:
        raise InputError("the dataset is not complete yet; finish generating it (rerun the same command) first.",
                         source=str(folder))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows = data.rows.reset_index()
    table = pa.Table.from_pandas(rows, preserve_index=False).append_column(
        "e_field", _fsl(data.grids.reshape(len(rows), -1), np.float16))
    _write_table(table, out / _EXPORT_GRIDS, float_columns=["e_field.list.element"],
                 dictionary=["cell_type", "layer", "ap_site"])
    _write_table(pa.Table.from_pandas(data.directions, preserve_index=False), out / _EXPORT_DIRECTIONS,
                 dictionary=["cell_type", "ap_site"])
    data.config.to_yaml(out / "dataset.yaml")
    runs = []
    if (Path(folder) / "runs.jsonl").exists():
        runs = [json.loads(line) for line in (Path(folder) / "runs.jsonl").read_text().splitlines() if line.strip()]
    manifest = {
        "digest": data.config.digest(),
        "version": DATASET_VERSION,
        "grid_rows": len(rows),
        "direction_rows": len(data.directions),
        "files_bytes": {p: (out / p).stat().st_size for p in (_EXPORT_GRIDS, _EXPORT_DIRECTIONS)},
        "grid_storage": "float16, fixed-size list, Parquet BYTE_STREAM_SPLIT + zstd level 9",
        "float16_check": _float16_check(data, verify_rows),
        "generation_runs": runs,
        "thresholds_finite": int(np.isfinite(rows["threshold_e_v_per_m"]).sum()),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


# ---------------------------------------------------------------------------------------------
# command line (registered by core.__main__)


def add_cli(subparsers) -> None:
    """Register ``tms-dataset`` on the ``python -m core`` parser."""
    p = subparsers.add_parser("tms-dataset", help="generate (resumably) the TMS threshold dataset for the surrogate")
    p.add_argument("--workspace", default=None, help="workspace folder; chunks go to <workspace>/tms/<config digest>/")
    p.add_argument("--config", help="dataset config, YAML or JSON (default: the shipped assets/tms/dataset.yaml)")
    p.add_argument("--n-jobs", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--limit", type=int, default=None, help="compute at most N more chunks, then stop (rerun to continue)")
    p.add_argument("--export", default=None, metavar="DIR",
                   help="when the dataset is complete, write its shipped form (float16 zstd Parquet) to DIR, e.g. assets/tms")
    p.add_argument("--plan-only", action="store_true", help="print the plan's sizes and folder, compute nothing")


def run_cli(args) -> int:
    """Run ``python -m core tms-dataset``; InputError propagates to the caller."""
    import sys

    shipped = Path(__file__).resolve().parents[2] / "assets" / "tms" / "dataset.yaml"
    if args.config:
        config = DatasetConfig.from_file(args.config)
    elif shipped.exists():
        config = DatasetConfig.from_yaml(shipped)
    else:
        config = DatasetConfig()
    if args.n_jobs == 0 or args.n_jobs < -1:
        raise InputError(f"--n-jobs must be a positive number of processes (or -1 for all cores), found {args.n_jobs}.")
    t0 = time.perf_counter()
    plan = plan_dataset(config)
    folder = dataset_folder(config, args.workspace)
    n_rows, n_dirs = len(plan.rows), len(plan.directions)
    print(f"TMS dataset {config.digest()} -> {folder}\n  {n_rows} grid thresholds ({len(plan.grid_chunks)} chunks) + "
          f"{n_dirs} direction-map thresholds ({len(plan.direction_chunks)} chunks); "
          f"{len(plan.placements)} placements, {plan.regions.nunique()} regions; planned in {time.perf_counter() - t0:.1f} s",
          flush=True)
    if args.plan_only:
        return 0
    start = time.perf_counter()
    first: list = []

    def progress(done, total):
        now = time.perf_counter() - start
        if not first:
            first.append(done)
            print(f"  {done}/{total} thresholds already done", file=sys.stderr, flush=True)
            return
        rate = (done - first[0]) / now if now > 0 else 0.0
        eta = (total - done) / rate / 60 if rate > 0 else float("nan")
        print(f"  {time.strftime('%H:%M:%S')} {done}/{total} thresholds, {rate:.2f} thresholds/s, "
              f"ETA {eta:.1f} min", file=sys.stderr, flush=True)

    report = generate_dataset(config, args.workspace, n_jobs=args.n_jobs, limit=args.limit, progress=progress, plan=plan)
    print(f"computed {report.thresholds_computed} thresholds in {report.chunks_computed} chunks in {report.seconds:.1f} s "
          f"({report.thresholds_per_s:.2f} thresholds/s); {'complete' if report.complete else 'not complete yet: rerun to continue'}",
          flush=True)
    if args.export:
        if not report.complete:
            raise InputError("not exporting: the dataset is not complete yet (rerun without --limit).")
        manifest = export_dataset(report.folder, args.export)
        sizes = ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in manifest["files_bytes"].items())
        print(f"exported to {args.export}: {sizes}; float16 check {manifest['float16_check']}", flush=True)
    return 0
