"""Cortex for TMS simulations: fsaverage5 surfaces, a spherical head, layers, E-field sampling.

Everything is built from the fsaverage5 meshes that ship inside nilearn (no download):

- **Surfaces.** Pial and white surfaces of one or both hemispheres (10242 vertices each, with
  vertex-to-vertex correspondence between pial and white). fsaverage coordinates (MNI305) are
  treated as MNI millimetres.
- **Head sphere.** A least-squares sphere fitted to the outer envelope of the cortex: the pial
  vertices on the convex hull of both hemispheres, above z = 0 mm (the dorsal convexity, where TMS
  coils sit). The skull follows that envelope, not the sulcal fundi, so fitting all vertices
  would shrink the sphere into the brain. Result: centre (0.1, -19.5, -1.6) mm, radius 79.7 mm,
  RMS residual 4.5 mm. The scalp is a concentric sphere ``SCALP_OFFSET_MM`` = 12 mm farther out
  (CSF, skull and scalp together are about 12-15 mm thick over the convexity). Every pial vertex
  lies inside the scalp (the largest excess of a pial vertex over the fitted radius is 10.3 mm, at
  the frontal pole). Under the hand-knob preset the nearest cortex is about 12 mm below the scalp;
  the hand-knob vertex itself, which lies 7 mm below the gyral crowns of the average brain, is
  19 mm below.
- **Layers.** Cell bodies sit on surfaces interpolated linearly between pial (relative depth 0)
  and white (1) at ``LAYER_RELATIVE_DEPTHS``: L2/3 0.40, L4 0.55, L5 0.65, L6 0.85, following
  the normalised-depth placement of cells between the grey- and white-matter surfaces in Aberra
  et al. (2020, Brain Stimul 13:175-189). These numbers were written from the paper's method,
  not copied from its data files; check them against its layer table before quoting them.
- **Normals.** Per vertex: the area-weighted mean of the adjacent face normals of that surface,
  unit length, pointing out of the brain (FreeSurfer winding). On sulcal walls "out" is sideways.
- **Coil positions.** Named presets over the hand knob (``COIL_PRESETS``, :func:`coil_preset`);
  a :class:`CoilSpec` (a preset's target moved by anterior and lateral offsets in mm, the handle
  angle and the tilt in degrees) becomes a placement with :func:`placement_of`.
- **E-field grids.** For the CNN surrogate: the E-field on a 9 x 9 x 9 grid around a soma, in the
  cell's frame (z along the local normal, x/y in the tangent plane turned by an azimuth), divided
  by |E| at the soma (Aberra et al. 2023, NeuroImage 275:120184).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType

import numpy as np

from core.errors import InputError
from core.tms.efield import CoilPlacement, FigureEightCoil, efield_v_per_m

__all__ = [
    "LAYER_RELATIVE_DEPTHS",
    "SCALP_OFFSET_MM",
    "GRID_POINTS",
    "GRID_SPACING_MM",
    "COIL_PRESETS",
    "Cortex",
    "EFieldGrid",
    "load_cortex",
    "fit_sphere",
    "vertex_normals",
    "PRESET_HANDLE_DEG",
    "CoilSpec",
    "coil_preset",
    "placement_of",
    "hand_knob_placement",
    "layer_efield_v_per_m",
    "cell_frame",
    "grid_offsets_mm",
    "efield_grid",
    "vertex_efield_grid",
]

HEMISPHERES = ("left", "right")
# Normalised depth below the pial surface (0 = pial, 1 = white), after Aberra et al. 2020.
LAYER_RELATIVE_DEPTHS = {"L2/3": 0.4, "L4": 0.55, "L5": 0.65, "L6": 0.85}
SCALP_OFFSET_MM = 12.0  # scalp sphere radius = fitted cortical-envelope radius + this
ENVELOPE_MIN_Z_MM = 0.0  # only hull vertices above this enter the sphere fit (dorsal convexity)

# 9 points at 0.5 mm: the grid spans +-2 mm around the soma, the extent of a human L5 pyramidal
# cell (apical dendrite up to L1 about 2 mm above the soma, basal dendrites and axon collaterals
# within about 1 mm, main axon down towards the white matter), so one grid covers every cell type.
GRID_POINTS = 9
GRID_SPACING_MM = 0.5

# Coil presets: target (MNI mm, the nearest pial vertex is used) and the handle heading seen from
# above (x, y); the handle is the scalp tangent with that heading. Handle 45 degrees to the
# midline, pointing backwards and outwards: with a positive dI/dt the induced field under the
# coil points anterior-medial (posterior-to-anterior current across the central sulcus), the
# classic orientation for the motor hotspot.
COIL_PRESETS = {
    "hand_knob_left": {
        "hemisphere": "left",
        "target_mm": (-37.0, -21.0, 58.0),
        "handle_heading": (-1.0, -1.0),
    },
    "hand_knob_right": {
        "hemisphere": "right",
        "target_mm": (37.0, -21.0, 58.0),
        "handle_heading": (1.0, -1.0),
    },
}


# Every preset's handle heading, as an angle seen from above: 45 degrees from pointing straight back
# towards lateral (the (-1, -1) / (1, -1) headings above).
PRESET_HANDLE_DEG = 45.0


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class Cortex:
    """Cortical surfaces, layers and head sphere (all coordinates in mm, fsaverage/MNI space).

    Attributes
    ----------
    hemispheres : tuple of str, the hemispheres in vertex order ("left" first).
    n_vertices_per_hemisphere : tuple of int, vertex counts in the same order.
    vertices_mm : (n, 3) float array, pial surface vertices.
    white_mm : (n, 3) float array, white-matter surface vertices (same vertex order).
    faces : (f, 3) int array, triangles indexing ``vertices_mm`` (shared by all surfaces).
    normals : (n, 3) float array, unit outward normals of the pial surface.
    layer_positions_mm : mapping str -> (n, 3) float array, layer surfaces ("L2/3", "L4", "L5", "L6").
    layer_normals : mapping str -> (n, 3) float array, unit outward normals of each layer surface.
    sphere_centre_mm : (3,) float array, centre of the head sphere.
    sphere_radius_mm : float, radius fitted to the cortical envelope.
    sphere_fit_rms_mm : float, RMS radial residual of the envelope vertices.
    scalp_radius_mm : float, ``sphere_radius_mm + SCALP_OFFSET_MM``.

    Arrays are read-only: a loaded cortex is cached and shared.
    """

    hemispheres: tuple
    n_vertices_per_hemisphere: tuple
    vertices_mm: np.ndarray
    white_mm: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    layer_positions_mm: dict
    layer_normals: dict
    sphere_centre_mm: np.ndarray
    sphere_radius_mm: float
    sphere_fit_rms_mm: float
    scalp_radius_mm: float

    @property
    def n_vertices(self) -> int:
        return len(self.vertices_mm)

    @property
    def thickness_mm(self) -> np.ndarray:
        """(n,) float array, pial-to-white distance per vertex (mm)."""
        return np.linalg.norm(self.vertices_mm - self.white_mm, axis=1)

    def hemisphere_slice(self, hemisphere: str) -> slice:
        """Vertex index range of one hemisphere."""
        if hemisphere not in self.hemispheres:
            raise InputError(f"hemisphere {hemisphere!r} is not loaded; loaded: {list(self.hemispheres)}",
                             field="hemisphere")
        i = self.hemispheres.index(hemisphere)
        start = int(sum(self.n_vertices_per_hemisphere[:i]))
        return slice(start, start + self.n_vertices_per_hemisphere[i])

    def surface(self, layer: str) -> tuple[np.ndarray, np.ndarray]:
        """Positions and unit outward normals of "pial", "white" or a layer ("L2/3", "L4", "L5", "L6").

        Returns
        -------
        positions_mm : (n, 3) float array.
        normals : (n, 3) float array.
        """
        if layer == "pial":
            return self.vertices_mm, self.normals
        if layer == "white":
            return self.white_mm, _white_normals(self)
        if layer not in self.layer_positions_mm:
            raise InputError(f"unknown layer {layer!r}; expected pial, white or one of {list(LAYER_RELATIVE_DEPTHS)}",
                             field="layer")
        return self.layer_positions_mm[layer], self.layer_normals[layer]

    def nearest_vertex(self, point_mm, hemisphere: str | None = None) -> int:
        """Index of the pial vertex nearest to ``point_mm`` (optionally within one hemisphere)."""
        sl = self.hemisphere_slice(hemisphere) if hemisphere else slice(0, self.n_vertices)
        d = np.linalg.norm(self.vertices_mm[sl] - np.asarray(point_mm, float).reshape(3), axis=1)
        return int(sl.start + np.argmin(d))

    def scalp_point(self, point_mm) -> np.ndarray:
        """(3,) float array: the scalp point nearest to ``point_mm`` (radial projection, mm)."""
        v = np.asarray(point_mm, float).reshape(3) - self.sphere_centre_mm
        return self.sphere_centre_mm + self.scalp_radius_mm * v / np.linalg.norm(v)


@lru_cache(maxsize=4)
def _white_normals(cortex: Cortex) -> np.ndarray:
    return _readonly(vertex_normals(cortex.white_mm, cortex.faces))


def fit_sphere(points_mm) -> tuple[np.ndarray, float, float]:
    """Least-squares sphere through points: algebraic fit, refined on the geometric residuals.

    Parameters
    ----------
    points_mm : (n, 3) array, n >= 4 (mm).

    Returns
    -------
    centre_mm : (3,) float array.
    radius_mm : float.
    rms_mm : float, RMS of |p - centre| - radius.
    """
    from scipy.optimize import least_squares

    p = np.asarray(points_mm, dtype=float)
    if p.ndim != 2 or p.shape[1] != 3 or len(p) < 4:
        raise InputError(f"need an (n >= 4, 3) array of points, found shape {p.shape}", field="points_mm")
    # Linear (Kasa) fit: |p|^2 = 2 p.c + (r^2 - |c|^2).
    design = np.column_stack([2 * p, np.ones(len(p))])
    sol, *_ = np.linalg.lstsq(design, np.einsum("ij,ij->i", p, p), rcond=None)
    centre0 = sol[:3]
    radius0 = np.sqrt(sol[3] + centre0 @ centre0)

    def residual(x):
        return np.linalg.norm(p - x[:3], axis=1) - x[3]

    fit = least_squares(residual, np.append(centre0, radius0))
    centre, radius = fit.x[:3], float(fit.x[3])
    return centre, radius, float(np.sqrt(np.mean(residual(fit.x) ** 2)))


def vertex_normals(vertices_mm, faces) -> np.ndarray:
    """Unit vertex normals: area-weighted mean of the adjacent face normals.

    Parameters
    ----------
    vertices_mm : (n, 3) array.
    faces : (f, 3) int array, counter-clockwise seen from outside (FreeSurfer convention), so the
        normals point outwards.

    Returns
    -------
    (n, 3) float array of unit vectors. A vertex whose faces are all degenerate gets +z (this does
    not happen on fsaverage5).
    """
    v = np.asarray(vertices_mm, dtype=float)
    f = np.asarray(faces)
    # Cross product of two edges = 2 x area x unit normal: summing it weights by area.
    face_n = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
    n = np.zeros_like(v)
    for k in range(3):
        np.add.at(n, f[:, k], face_n)
    norm = np.linalg.norm(n, axis=1)
    bad = norm < 1e-12
    n[bad] = (0.0, 0.0, 1.0)
    norm[bad] = 1.0
    return n / norm[:, None]


@lru_cache(maxsize=1)
def _fsaverage5() -> dict:
    from nilearn import datasets

    mesh = datasets.load_fsaverage("fsaverage5")  # bundled with nilearn: no download
    out = {}
    for hemi in HEMISPHERES:
        pial, white = mesh["pial"].parts[hemi], mesh["white_matter"].parts[hemi]
        out[hemi] = (np.asarray(pial.coordinates, float), np.asarray(white.coordinates, float),
                     np.asarray(pial.faces, np.int64))
    return out


@lru_cache(maxsize=1)
def _head_sphere() -> tuple[np.ndarray, float, float]:
    from scipy.spatial import ConvexHull

    data = _fsaverage5()
    pial = np.vstack([data[h][0] for h in HEMISPHERES])  # the head sphere always uses both
    envelope = pial[ConvexHull(pial).vertices]
    return fit_sphere(envelope[envelope[:, 2] > ENVELOPE_MIN_Z_MM])


@lru_cache(maxsize=4)
def _load_cortex(hemispheres: tuple) -> Cortex:
    data = _fsaverage5()
    pial, white, faces, counts, offset = [], [], [], [], 0
    for hemi in hemispheres:
        p, w, f = data[hemi]
        pial.append(p)
        white.append(w)
        faces.append(f + offset)
        counts.append(len(p))
        offset += len(p)
    pial, white, faces = np.vstack(pial), np.vstack(white), np.vstack(faces)
    layers, layer_normals = {}, {}
    for name, depth in LAYER_RELATIVE_DEPTHS.items():
        layers[name] = _readonly((1.0 - depth) * pial + depth * white)
        layer_normals[name] = _readonly(vertex_normals(layers[name], faces))
    centre, radius, rms = _head_sphere()
    return Cortex(
        hemispheres=hemispheres,
        n_vertices_per_hemisphere=tuple(counts),
        vertices_mm=_readonly(pial),
        white_mm=_readonly(white),
        faces=_readonly(faces),
        normals=_readonly(vertex_normals(pial, faces)),
        layer_positions_mm=MappingProxyType(layers),
        layer_normals=MappingProxyType(layer_normals),
        sphere_centre_mm=_readonly(centre),
        sphere_radius_mm=radius,
        sphere_fit_rms_mm=rms,
        scalp_radius_mm=radius + SCALP_OFFSET_MM,
    )


def load_cortex(hemispheres=("left", "right")) -> Cortex:
    """Load the fsaverage5 cortex (cached; about 2 s the first time, mostly importing nilearn).

    Parameters
    ----------
    hemispheres : str or sequence of str, "left" and/or "right".

    Returns
    -------
    Cortex
    """
    if isinstance(hemispheres, str):
        hemispheres = (hemispheres,)
    hemispheres = tuple(hemispheres)
    if not hemispheres or any(h not in HEMISPHERES for h in hemispheres) or len(set(hemispheres)) != len(hemispheres):
        raise InputError(f"hemispheres must be 'left' and/or 'right', found {list(hemispheres)}", field="hemispheres")
    return _load_cortex(tuple(h for h in HEMISPHERES if h in hemispheres))


def coil_preset(cortex: Cortex, name: str = "hand_knob_left", tilt_deg: float = 0.0) -> CoilPlacement:
    """Coil placement of a named preset (see ``COIL_PRESETS``).

    The target is snapped to the nearest pial vertex of the preset's hemisphere; the coil centre is
    the scalp point nearest to that vertex (radial projection), the coil axis the scalp normal
    there, and the handle the scalp tangent whose heading seen from above is the preset's.
    """
    if name not in COIL_PRESETS:
        raise InputError(f"unknown coil preset {name!r}; expected one of {list(COIL_PRESETS)}", field="preset")
    preset = COIL_PRESETS[name]
    vertex = cortex.nearest_vertex(preset["target_mm"], preset["hemisphere"])
    centre = cortex.scalp_point(cortex.vertices_mm[vertex])
    normal = (centre - cortex.sphere_centre_mm) / cortex.scalp_radius_mm
    heading = np.array([*preset["handle_heading"], 0.0])
    # Tilt the heading out of the horizontal plane just enough to lie in the tangent plane, so the
    # angle to the midline seen from above is kept (the clinical description of coil orientation).
    handle = heading - heading.dot(normal) / normal[2] * np.array([0.0, 0.0, 1.0])
    return CoilPlacement.from_scalp_point(centre, normal, handle, tilt_deg)


@dataclass(frozen=True)
class CoilSpec:
    """A coil position as a person sets it: a preset hotspot, offsets from it, handle angle and tilt.

    Attributes
    ----------
    preset : a key of ``COIL_PRESETS``.
    anterior_mm : moves the target forwards (+, towards +y) or backwards (-) from the hotspot (mm).
    lateral_mm : moves the target outwards (+, away from the midline) or towards it (-) (mm).
    handle_deg : the handle's angle seen from above, from pointing straight back (0) towards
        lateral (90); ``PRESET_HANDLE_DEG`` (45) is the presets' posterior-lateral handle.
    tilt_deg : rotation of the coil about its handle axis (degrees, see ``CoilPlacement``).
    """

    preset: str = "hand_knob_left"
    anterior_mm: float = 0.0
    lateral_mm: float = 0.0
    handle_deg: float = PRESET_HANDLE_DEG
    tilt_deg: float = 0.0

    @property
    def is_preset(self) -> bool:
        """True when neither offset nor handle differ from the preset (tilt may)."""
        return self.anterior_mm == 0 and self.lateral_mm == 0 and self.handle_deg == PRESET_HANDLE_DEG

    def target_mm(self, cortex: Cortex) -> np.ndarray:
        """(3,) float array: the point the coil aims at, the preset's hotspot (its pial vertex)
        moved ``lateral_mm`` along x (away from the midline) and ``anterior_mm`` along y (mm)."""
        if self.preset not in COIL_PRESETS:
            raise InputError(f"unknown coil preset {self.preset!r}; expected one of {list(COIL_PRESETS)}", field="preset")
        values = {"anterior_mm": self.anterior_mm, "lateral_mm": self.lateral_mm, "handle_deg": self.handle_deg, "tilt_deg": self.tilt_deg}
        for name, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(value):
                raise InputError(f"{name} must be a finite number, found {value!r}.", field=name)
        preset = COIL_PRESETS[self.preset]
        outwards = -1.0 if preset["hemisphere"] == "left" else 1.0
        hotspot = cortex.vertices_mm[cortex.nearest_vertex(preset["target_mm"], preset["hemisphere"])]
        return hotspot + np.array([outwards * self.lateral_mm, self.anterior_mm, 0.0])


def placement_of(cortex: Cortex, spec: CoilSpec) -> CoilPlacement:
    """The CoilPlacement of a :class:`CoilSpec`: the coil over its target, handle turned as asked.

    Without an offset or a turned handle this is exactly ``coil_preset(cortex, spec.preset,
    spec.tilt_deg)``. Otherwise the coil centre is the scalp point above ``spec.target_mm``
    (radial projection) and the handle the scalp tangent whose heading seen from above makes
    ``handle_deg`` with the posterior direction, towards lateral.
    """
    target = spec.target_mm(cortex)
    if spec.is_preset:
        return coil_preset(cortex, spec.preset, spec.tilt_deg)
    outwards = -1.0 if COIL_PRESETS[spec.preset]["hemisphere"] == "left" else 1.0
    normal = (target - cortex.sphere_centre_mm) / np.linalg.norm(target - cortex.sphere_centre_mm)
    angle = math.radians(spec.handle_deg)
    heading = np.array([outwards * math.sin(angle), -math.cos(angle), 0.0])
    # as coil_preset: keep the heading seen from above, in the scalp's tangent plane
    handle = heading - heading.dot(normal) / normal[2] * np.array([0.0, 0.0, 1.0])
    return CoilPlacement.on_sphere(target, cortex.sphere_centre_mm, cortex.scalp_radius_mm, handle, spec.tilt_deg)


def hand_knob_placement(cortex: Cortex, hemisphere: str = "left", tilt_deg: float = 0.0) -> CoilPlacement:
    """Motor hotspot over the hand knob (MNI (+-37, -21, 58)), handle 45 degrees posterior-lateral.

    The left hotspot's coil centre is at about (-49, -24, 76) mm on the scalp.
    """
    return coil_preset(cortex, f"hand_knob_{hemisphere}", tilt_deg)


def layer_efield_v_per_m(cortex: Cortex, layer: str, placement: CoilPlacement, coil: FigureEightCoil | None = None,
                         di_dt_a_per_us: float = 1.0) -> np.ndarray:
    """E-field at every vertex of a surface ("pial", "white", "L2/3", "L4", "L5", "L6").

    Returns
    -------
    (n, 3) float array, E-field (V/m) in head coordinates. A whole hemisphere takes about 0.2 s.
    """
    positions, _ = cortex.surface(layer)
    return efield_v_per_m(positions, coil or FigureEightCoil(), placement, cortex.sphere_centre_mm, di_dt_a_per_us)


def cell_frame(normal, azimuth_deg: float = 0.0) -> np.ndarray:
    """Rotation from the cell frame to head coordinates.

    z is the unit local normal (towards the pial surface: a pyramidal cell's apical dendrite
    points along +z). At azimuth 0, x is the head's anterior axis (+y) projected onto the tangent
    plane (the head's +x where the normal is within 18 degrees of the anterior axis); the
    azimuth turns the cell about z, counter-clockwise seen from outside: x = cos(phi) x0 + sin(phi) y0.

    Parameters
    ----------
    normal : (3,) array-like, local normal (any length).
    azimuth_deg : float, rotation of the cell about its normal (degrees).

    Returns
    -------
    (3, 3) float array R with columns x, y, z: head = soma + R @ cell.
    """
    z = np.asarray(normal, dtype=float).reshape(3)
    z = z / np.linalg.norm(z)
    ref = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.95 else np.array([1.0, 0.0, 0.0])
    x0 = ref - ref.dot(z) * z
    x0 /= np.linalg.norm(x0)
    y0 = np.cross(z, x0)
    phi = np.deg2rad(azimuth_deg)
    x = np.cos(phi) * x0 + np.sin(phi) * y0
    y = np.cross(z, x)
    return np.column_stack([x, y, z])


def grid_offsets_mm(n_points: int = GRID_POINTS, spacing_mm: float = GRID_SPACING_MM) -> np.ndarray:
    """Grid points in the cell frame, centred on the soma.

    Returns
    -------
    (n, n, n, 3) float array: ``offsets[i, j, k] = (g[i], g[j], g[k])`` with
    ``g = (arange(n) - (n - 1) / 2) * spacing_mm`` (mm); the soma is the centre point.
    """
    if n_points < 1 or n_points % 2 == 0:
        raise InputError(f"the grid needs an odd number of points per side (the soma at the centre), found {n_points}",
                         field="n_points")
    g = (np.arange(n_points) - (n_points - 1) / 2) * spacing_mm
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1)


@dataclass(frozen=True, eq=False)
class EFieldGrid:
    """E-field around one soma, in the cell's frame, normalised by |E| at the soma.

    Attributes
    ----------
    e_field : (n, n, n, 3) float array, E / |E(soma)| (dimensionless), components along the cell's
        x, y, z; index order as :func:`grid_offsets_mm`. ``e_field[c, c, c]`` (c = n // 2) has norm 1.
    e_soma_v_per_m : float, |E| at the soma for the requested dI/dt (V/m); the physical field is
        ``e_field * e_soma_v_per_m`` and scales linearly with dI/dt.
    points_mm : (n, n, n, 3) float array, grid points in head coordinates (mm).
    rotation : (3, 3) float array, cell frame to head coordinates (see :func:`cell_frame`).
    spacing_mm : float, grid spacing (mm).
    """

    e_field: np.ndarray
    e_soma_v_per_m: float
    points_mm: np.ndarray
    rotation: np.ndarray
    spacing_mm: float


def efield_grid(soma_mm, normal, azimuth_deg: float, placement: CoilPlacement, sphere_centre_mm,
                coil: FigureEightCoil | None = None, di_dt_a_per_us: float = 1.0, n_points: int = GRID_POINTS,
                spacing_mm: float = GRID_SPACING_MM) -> EFieldGrid:
    """E-field on an n x n x n grid around a soma in the cell's frame, normalised by |E| at the soma.

    Parameters
    ----------
    soma_mm : (3,) array-like, soma position (mm, head coordinates).
    normal : (3,) array-like, local cortical normal (cell z axis).
    azimuth_deg : float, rotation of the cell about its normal (degrees), see :func:`cell_frame`.
    placement : CoilPlacement
    sphere_centre_mm : (3,) array-like, centre of the head sphere (mm).
    coil : FigureEightCoil, default the 70 mm figure-8.
    di_dt_a_per_us : float, only scales ``e_soma_v_per_m`` (A/us).
    n_points : int, odd, points per side (default 9).
    spacing_mm : float, grid spacing (default 0.5 mm, so +-2 mm).

    Returns
    -------
    EFieldGrid
    """
    rotation = cell_frame(normal, azimuth_deg)
    soma = np.asarray(soma_mm, dtype=float).reshape(3)
    offsets = grid_offsets_mm(n_points, spacing_mm)
    points = soma + offsets @ rotation.T
    e_head = efield_v_per_m(points.reshape(-1, 3), coil or FigureEightCoil(), placement, sphere_centre_mm,
                            di_dt_a_per_us)
    e_cell = (e_head @ rotation).reshape(offsets.shape)  # components along the cell axes
    c = n_points // 2
    e_soma = float(np.linalg.norm(e_cell[c, c, c]))
    if not e_soma > 0:
        raise InputError("the E-field at the soma is zero, so the grid cannot be normalised", field="soma_mm")
    return EFieldGrid(e_field=e_cell / e_soma, e_soma_v_per_m=e_soma, points_mm=points, rotation=rotation,
                      spacing_mm=float(spacing_mm))


def vertex_efield_grid(cortex: Cortex, layer: str, vertex: int, azimuth_deg: float, placement: CoilPlacement,
                       coil: FigureEightCoil | None = None, di_dt_a_per_us: float = 1.0, n_points: int = GRID_POINTS,
                       spacing_mm: float = GRID_SPACING_MM) -> EFieldGrid:
    """:func:`efield_grid` for a cell at a vertex of a layer, z along that layer's normal."""
    positions, normals = cortex.surface(layer)
    return efield_grid(positions[vertex], normals[vertex], azimuth_deg, placement, cortex.sphere_centre_mm, coil,
                       di_dt_a_per_us, n_points, spacing_mm)
