"""TMS-induced electric field of a figure-8 coil over a spherical conductor.

The coil is a set of magnetic dipoles (Thielscher & Kammer 2004 style); the field of each dipole
inside a spherically symmetric conductor is the closed form of Heller & van Hulsteyn (1992,
Biophys J 61:1240), the reciprocal of Sarvas' (1987, Phys Med Biol 32:11) magnetic field of a
current dipole. It is

    E(r) = -(mu0 / 4 pi) dI/dt / F^2 * [F (r x m) - (m . grad F)(r x r0)]

with r the field point and r0 the dipole position (both relative to the sphere centre), m the
dipole moment per ampere of coil current, a = r0 - r, a = |a|,
F = a (|r0| a + r0 . a) and grad F = (a^2/|r0| + a.r0/a + 2a + 2|r0|) r0 - (a + 2|r0| + a.r0/a) r.

Consequences used by the tests: the field is tangential (r . E = 0), divergence-free, the same for
any radial conductivity profile, linear in dI/dt, and a radially oriented dipole induces no
surface charge, so its field is exactly the free-space (primary) field -dA/dt.

Units: positions in mm at the interface (converted to m inside), dI/dt in A/us, E in V/m.
Sign convention: a positive dI/dt induces, under the coil centre, an E-field pointing *away from
the handle* (like a Magstim 200 monophasic pulse: handle backwards gives posterior-to-anterior
current in the brain).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from core.errors import InputError

__all__ = [
    "FigureEightCoil",
    "CoilPlacement",
    "coil_dipoles",
    "efield_v_per_m",
    "primary_efield",
    "dipole_efield_v_per_m",
    "dipole_primary_efield_v_per_m",
]

MU0_OVER_4PI = 1e-7  # T m / A
A_PER_US_TO_A_PER_S = 1e6
MM_TO_M = 1e-3
# Point x dipole pairs evaluated at once: 512 kB temporaries stay in cache (2^16 was fastest,
# about 0.2 s for 10242 points x 1214 dipoles on one core; 2^18 was several times slower).
_CHUNK_PAIRS = 1 << 16


@dataclass(frozen=True)
class FigureEightCoil:
    """Winding geometry of a 70 mm figure-8 coil, as a planar grid of magnetic dipoles.

    Defaults follow the Magstim 70 mm double coil as modelled by Thielscher & Kammer (2004, Clin
    Neurophysiol 115:1697): each wing is a flat spiral of 9 turns with inner diameter 56 mm and
    outer diameter 87 mm (the "70 mm" is the mean wing diameter). The two wings are coplanar,
    side by side (centres 88 mm apart, 1 mm between the outer turns) and wound in opposite
    senses, so the currents add along the central segment under the coil centre.

    Each turn k of radius R_k carries the coil current, so a wing is a stack of discs; the
    dipole moment per area at radius rho is the number of turns enclosing rho. Discs are cut into
    rings (inside the inner turn: rings of about ``element_mm``; between turns: one ring per turn
    pitch, 1.94 mm) and rings into arcs of about ``element_mm``, one dipole per element.

    Attributes
    ----------
    inner_radius_mm, outer_radius_mm : float
        Radius of the innermost and outermost turn of each wing (mm).
    n_turns : int
        Turns per wing; equally spaced, so the wire pitch is
        (outer - inner) / (n_turns - 1) = 1.94 mm by default.
    wing_gap_mm : float
        Gap between the outer turns of the two wings at the coil centre (mm).
    winding_height_mm : float
        Distance from the scalp (coil bottom surface) to the winding plane (mm): casing plus half
        the winding thickness; an assumption (5 mm), not a manufacturer figure.
    element_mm : float
        Target size of one dipole element (mm). 4 mm gives 1214 dipoles in all; at 12-30 mm below
        the scalp the field then differs from a 0.5 mm discretisation by at most 0.4 %.
    """

    inner_radius_mm: float = 28.0
    outer_radius_mm: float = 43.5
    n_turns: int = 9
    wing_gap_mm: float = 1.0
    winding_height_mm: float = 5.0
    element_mm: float = 4.0

    def __post_init__(self):
        if not 0 < self.inner_radius_mm < self.outer_radius_mm:
            raise InputError(
                f"need 0 < inner radius < outer radius, found {self.inner_radius_mm} and {self.outer_radius_mm} mm",
                field="FigureEightCoil",
            )
        if self.n_turns < 2 or self.element_mm <= 0 or self.winding_height_mm < 0 or self.wing_gap_mm < 0:
            raise InputError(
                "need n_turns >= 2, element_mm > 0, winding_height_mm >= 0 and wing_gap_mm >= 0",
                field="FigureEightCoil",
            )

    @property
    def wire_pitch_mm(self) -> float:
        """Radial spacing between neighbouring turns (mm)."""
        return (self.outer_radius_mm - self.inner_radius_mm) / (self.n_turns - 1)

    @property
    def wing_offset_mm(self) -> float:
        """Distance from the coil centre to each wing centre (mm)."""
        return self.outer_radius_mm + 0.5 * self.wing_gap_mm

    def local_dipoles(self) -> tuple[np.ndarray, np.ndarray]:
        """Dipoles in the coil frame: x joins the wing centres, y is the handle, z the coil axis.

        Returns
        -------
        positions_mm : (m, 3) float array, in the winding plane z = 0 (mm).
        moments_m2 : (m, 3) float array, dipole moment per ampere of coil current (A m^2 / A = m^2),
            along -z for the wing at +x and +z for the wing at -x.
        """
        positions, moments = _local_dipoles(self)
        return positions.copy(), moments.copy()


@lru_cache(maxsize=16)
def _local_dipoles(coil: FigureEightCoil) -> tuple[np.ndarray, np.ndarray]:
    radii = np.linspace(coil.inner_radius_mm, coil.outer_radius_mm, coil.n_turns)
    n_inner = max(1, int(round(coil.inner_radius_mm / coil.element_mm)))
    # Ring edges: a few rings inside the innermost turn, then one ring per turn pitch.
    edges = np.concatenate([np.linspace(0.0, radii[0], n_inner + 1), radii[1:]])
    xy, area_turns = [], []
    for r0, r1 in zip(edges[:-1], edges[1:]):
        n_enclosing = np.count_nonzero(radii > 0.5 * (r0 + r1))  # turns whose disc covers this ring
        # Area centroid radius of the ring, so each element's moment sits at its centre.
        rho = 2.0 / 3.0 * (r1**3 - r0**3) / (r1**2 - r0**2)
        n_arc = max(1, int(np.ceil(2 * np.pi * rho / coil.element_mm))) if r0 > 0 else 1
        phi = (np.arange(n_arc) + 0.5) * 2 * np.pi / n_arc
        ring_area = np.pi * (r1**2 - r0**2)
        if r0 == 0:
            rho_xy = np.zeros((1, 2))
        else:
            rho_xy = rho * np.column_stack([np.cos(phi), np.sin(phi)])
        xy.append(rho_xy)
        area_turns.append(np.full(n_arc, ring_area / n_arc * n_enclosing))
    xy = np.concatenate(xy)
    weight_mm2 = np.concatenate(area_turns)
    positions, moments = [], []
    for sign in (+1.0, -1.0):
        pos = np.column_stack([xy[:, 0] + sign * coil.wing_offset_mm, xy[:, 1], np.zeros(len(xy))])
        mom = np.zeros_like(pos)
        # Opposite senses; this choice makes positive dI/dt induce E away from the handle (+y).
        mom[:, 2] = -sign * weight_mm2 * MM_TO_M**2
        positions.append(pos)
        moments.append(mom)
    positions, moments = np.concatenate(positions), np.concatenate(moments)
    positions.flags.writeable = False
    moments.flags.writeable = False
    return positions, moments


def _unit(v, what: str) -> np.ndarray:
    v = np.asarray(v, dtype=float).reshape(3)
    n = np.linalg.norm(v)
    if not np.isfinite(n) or n == 0:
        raise InputError(f"{what} must be a finite non-zero 3-vector, found {v.tolist()}", field="CoilPlacement")
    return v / n


@dataclass(frozen=True)
class CoilPlacement:
    """Where the coil sits: centre on the scalp, outward axis, handle direction and tilt.

    Attributes
    ----------
    centre_mm : tuple of 3 floats
        Point on the scalp under the coil centre (mm, head coordinates).
    normal : tuple of 3 floats
        Unit outward scalp normal at ``centre_mm``; the coil axis points along it, away from the head.
    handle_direction : tuple of 3 floats
        Unit vector along the handle, in the scalp tangent plane (made orthogonal to ``normal``).
    tilt_deg : float
        Rotation of the coil about the handle axis, pivoting on ``centre_mm`` (degrees). Positive
        tilt lifts the wing on the side ``handle x normal`` and lowers the other wing.

    Use :meth:`from_scalp_point` or :meth:`on_sphere` rather than building one by hand.
    """

    centre_mm: tuple[float, float, float]
    normal: tuple[float, float, float]
    handle_direction: tuple[float, float, float]
    tilt_deg: float = 0.0
    _frame: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        centre = np.asarray(self.centre_mm, dtype=float).reshape(3)
        if not np.all(np.isfinite(centre)):
            raise InputError(f"coil centre must be finite, found {centre.tolist()}", field="CoilPlacement")
        normal = _unit(self.normal, "coil normal")
        handle = _unit(self.handle_direction, "handle direction")
        handle = handle - handle.dot(normal) * normal  # keep the handle in the tangent plane
        if np.linalg.norm(handle) < 1e-6:
            raise InputError("the handle direction is parallel to the scalp normal", field="CoilPlacement")
        handle /= np.linalg.norm(handle)
        wing = np.cross(handle, normal)  # x of the coil frame: from the -x wing to the +x wing
        t = np.deg2rad(float(self.tilt_deg))
        x_t = np.cos(t) * wing + np.sin(t) * normal
        z_t = -np.sin(t) * wing + np.cos(t) * normal
        object.__setattr__(self, "centre_mm", tuple(float(c) for c in centre))
        object.__setattr__(self, "normal", tuple(float(c) for c in normal))
        object.__setattr__(self, "handle_direction", tuple(float(c) for c in handle))
        object.__setattr__(self, "tilt_deg", float(self.tilt_deg))
        frame = np.column_stack([x_t, handle, z_t])
        frame.flags.writeable = False
        object.__setattr__(self, "_frame", frame)

    @classmethod
    def from_scalp_point(cls, point_mm, normal, handle_direction, tilt_deg: float = 0.0) -> "CoilPlacement":
        """Place the coil on a scalp point with a given outward normal.

        Parameters
        ----------
        point_mm : (3,) array-like, scalp point (mm).
        normal : (3,) array-like, outward scalp normal (any length; normalised).
        handle_direction : (3,) array-like, wanted handle direction; its component along the
            normal is removed.
        tilt_deg : float, see the class docstring.
        """
        return cls(tuple(np.asarray(point_mm, float)), tuple(np.asarray(normal, float)),
                   tuple(np.asarray(handle_direction, float)), tilt_deg)

    @classmethod
    def on_sphere(cls, target_mm, sphere_centre_mm, scalp_radius_mm: float, handle_direction,
                  tilt_deg: float = 0.0) -> "CoilPlacement":
        """Place the coil on the scalp sphere straight above a target (radial projection).

        The radial projection is the scalp point nearest to the target.

        Parameters
        ----------
        target_mm : (3,) array-like, point in the head to stimulate (mm).
        sphere_centre_mm : (3,) array-like, centre of the head sphere (mm).
        scalp_radius_mm : float, scalp radius (mm).
        handle_direction, tilt_deg : see :meth:`from_scalp_point`.
        """
        centre = np.asarray(sphere_centre_mm, float).reshape(3)
        normal = _unit(np.asarray(target_mm, float).reshape(3) - centre, "target - sphere centre")
        return cls.from_scalp_point(centre + scalp_radius_mm * normal, normal, handle_direction, tilt_deg)

    @property
    def frame(self) -> np.ndarray:
        """(3, 3) rotation whose columns are the coil axes x (wing to wing), y (handle), z (axis)."""
        return self._frame


def coil_dipoles(coil: FigureEightCoil, placement: CoilPlacement) -> tuple[np.ndarray, np.ndarray]:
    """Dipoles of ``coil`` placed at ``placement``, in head coordinates.

    Returns
    -------
    positions_mm : (m, 3) float array (mm).
    moments_m2 : (m, 3) float array, moment per ampere of coil current (m^2).
    """
    local_pos, local_mom = _local_dipoles(coil)
    frame = placement.frame
    origin = np.asarray(placement.centre_mm) + coil.winding_height_mm * frame[:, 2]
    return origin + local_pos @ frame.T, local_mom @ frame.T


def _as_points(points_mm) -> np.ndarray:
    points = np.asarray(points_mm, dtype=float)
    if points.ndim != 2 or points.shape[1] != 3:
        raise InputError(f"points must have shape (n, 3), found {points.shape}", field="points_mm")
    return points


def dipole_efield_v_per_m(points_mm, positions_mm, moments_m2, sphere_centre_mm, di_dt_a_per_us: float = 1.0,
                          chunk_pairs: int = _CHUNK_PAIRS) -> np.ndarray:
    """E-field of magnetic dipoles outside a spherically symmetric conductor (Heller & van Hulsteyn).

    Parameters
    ----------
    points_mm : (n, 3) array, field points inside the conductor (mm).
    positions_mm : (m, 3) array, dipole positions, all farther from the sphere centre than every
        field point (mm).
    moments_m2 : (m, 3) array, dipole moments per ampere of coil current (m^2).
    sphere_centre_mm : (3,) array, centre of the conductor (mm).
    di_dt_a_per_us : float, rate of change of the coil current (A/us).
    chunk_pairs : int, point x dipole pairs evaluated at once (memory bound).

    Returns
    -------
    (n, 3) float array, E-field (V/m).
    """
    centre = np.asarray(sphere_centre_mm, dtype=float).reshape(3)
    r = (_as_points(points_mm) - centre) * MM_TO_M
    r0 = (np.asarray(positions_mm, dtype=float).reshape(-1, 3) - centre) * MM_TO_M
    m = np.asarray(moments_m2, dtype=float).reshape(-1, 3)
    if len(r) == 0:
        return np.zeros((0, 3))
    r0_sq = np.einsum("ij,ij->i", r0, r0)
    r_sq = np.einsum("ij,ij->i", r, r)
    if r0_sq.min() <= r_sq.max():
        raise InputError(
            f"a coil dipole lies {np.sqrt(r0_sq.min()) / MM_TO_M:.1f} mm from the sphere centre, not outside every "
            f"field point ({np.sqrt(r_sq.max()) / MM_TO_M:.1f} mm): move the coil out or the points in",
            field="CoilPlacement",
        )
    r0_norm = np.sqrt(r0_sq)
    two_r0_norm = 2.0 * r0_norm
    m_dot_r0 = np.einsum("ij,ij->i", m, r0)
    m_dot_r0_over_norm = m_dot_r0 / r0_norm
    out = np.empty_like(r)
    step = max(1, chunk_pairs // len(r0))
    for s in range(0, len(r), step):
        # Everything pairwise is a (k, m) scalar array, updated in place (this loop is the hot
        # path of whole-hemisphere maps); vectors only enter through matmuls.
        p = r[s:s + step]
        r_dot_r0 = p @ r0.T
        a_sq = r_dot_r0 * -2.0
        a_sq += r_sq[s:s + step, None]
        a_sq += r0_sq
        a = np.sqrt(a_sq)
        r0_dot_a = np.subtract(r0_sq, r_dot_r0, out=r_dot_r0)  # r0 . (r0 - r)
        ratio = r0_dot_a / a
        f = a * r0_norm  # F = a (|r0| a + r0 . a)
        f += r0_dot_a
        f *= a
        # m . grad F = alpha (m . r0) - beta (m . r) with alpha = a^2/|r0| + S, beta = S - a,
        # S = r0.a/a + 2a + 2|r0|; regrouped as a^2 (m.r0)/|r0| + S (m.r0 - m.r) + a (m.r).
        big_s = a * 2.0
        big_s += ratio
        big_s += two_r0_norm
        m_dot_r = p @ m.T
        m_dot_grad_f = a_sq
        m_dot_grad_f *= m_dot_r0_over_norm
        term = np.subtract(m_dot_r0, m_dot_r, out=ratio)
        term *= big_s
        m_dot_grad_f += term
        m_dot_r *= a
        m_dot_grad_f += m_dot_r
        inv_f = np.reciprocal(f, out=f)
        # E = -K r x sum_j (m_j / F - (m_j . grad F) r0_j / F^2): the sum is two matmuls.
        v = inv_f @ m
        m_dot_grad_f *= inv_f
        m_dot_grad_f *= inv_f
        v -= m_dot_grad_f @ r0
        out[s:s + step] = np.cross(p, v)
    return -MU0_OVER_4PI * di_dt_a_per_us * A_PER_US_TO_A_PER_S * out


def dipole_primary_efield_v_per_m(points_mm, positions_mm, moments_m2, di_dt_a_per_us: float = 1.0,
                                  chunk_pairs: int = _CHUNK_PAIRS) -> np.ndarray:
    """Free-space (primary) E-field -dA/dt of magnetic dipoles, no conductor.

    E_p(r) = -(mu0 / 4 pi) dI/dt sum_j m_j x (r - r_j) / |r - r_j|^3.

    Parameters and returns as :func:`dipole_efield_v_per_m`, without the sphere.
    """
    r = _as_points(points_mm) * MM_TO_M
    r0 = np.asarray(positions_mm, dtype=float).reshape(-1, 3) * MM_TO_M
    m = np.asarray(moments_m2, dtype=float).reshape(-1, 3)
    m_cross_r0 = np.cross(m, r0)
    r0_sq = np.einsum("ij,ij->i", r0, r0)
    r_sq = np.einsum("ij,ij->i", r, r)
    out = np.empty_like(r)
    step = max(1, chunk_pairs // max(1, len(r0)))
    for s in range(0, len(r), step):
        p = r[s:s + step]
        dist_sq = r_sq[s:s + step, None] + r0_sq - 2.0 * (p @ r0.T)
        w = dist_sq ** -1.5
        # sum_j w_j m_j x (r - r0_j) = (sum_j w_j m_j) x r - sum_j w_j (m_j x r0_j)
        out[s:s + step] = np.cross(w @ m, p) - w @ m_cross_r0
    return -MU0_OVER_4PI * di_dt_a_per_us * A_PER_US_TO_A_PER_S * out


def efield_v_per_m(points_mm, coil: FigureEightCoil, placement: CoilPlacement, sphere_centre_mm,
                   di_dt_a_per_us: float = 1.0) -> np.ndarray:
    """TMS E-field of a placed coil inside a spherical head.

    Independent of the radial conductivity profile (scalp, skull, CSF, brain as shells), linear in
    dI/dt.

    Parameters
    ----------
    points_mm : (n, 3) array, field points inside the head sphere (mm).
    coil : FigureEightCoil
    placement : CoilPlacement
    sphere_centre_mm : (3,) array, centre of the head sphere (mm).
    di_dt_a_per_us : float, rate of change of the coil current (A/us); typical stimulators reach
        about 100-150 A/us at full output.

    Returns
    -------
    (n, 3) float array, E-field (V/m).
    """
    positions_mm, moments_m2 = coil_dipoles(coil, placement)
    return dipole_efield_v_per_m(points_mm, positions_mm, moments_m2, sphere_centre_mm, di_dt_a_per_us)


def primary_efield(points_mm, coil: FigureEightCoil, placement: CoilPlacement,
                   di_dt_a_per_us: float = 1.0) -> np.ndarray:
    """Free-space E-field -dA/dt of a placed coil (V/m), shape (n, 3); no conductor charges."""
    positions_mm, moments_m2 = coil_dipoles(coil, placement)
    return dipole_primary_efield_v_per_m(points_mm, positions_mm, moments_m2, di_dt_a_per_us)
