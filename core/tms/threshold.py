"""TMS activation thresholds of compartmental neurons: pulse waveforms, E-field coupling through
quasipotentials and the extracellular mechanism, and threshold search by bracketing + bisection.

Units and conventions
---------------------
- The E-field is linear in the coil's dI/dt, so a field distribution is given *per A/us*: an
  array ``e_field_at_segments_v_per_m`` of shape (n_segments, 3), in V/m per A/us, one row per
  compartment in the order of ``Cell.segment_positions_um()``, in the cell frame (soma at the
  origin, z the cortical normal towards the pia).
- A pulse of amplitude ``A`` (A/us, the peak coil dI/dt) gives the field ``E(t) = e * A * w(t)``
  with the normalised waveform ``w`` (peak |w| = 1).
- The threshold is the smallest ``A`` that elicits an action potential. For a uniform field of
  ``|e|`` V/m per A/us the threshold field is ``A_th * |e|`` V/m, the unit of Aberra et al. 2020.

Coupling (Aberra et al. 2018, 2020): the quasipotential of each compartment is
``phi_i = -integral of E . dl`` along the neurites from the soma (trapezoid rule between
neighbouring compartment centres; exact for a uniform field, ``phi = -E . r``), and
``e_extracellular(t) = phi_i * A * w(t)`` drives NEURON's ``extracellular`` mechanism through
``xtra.mod``.

Action potential criterion: at least ``N_AP_SITES`` = 3 excitable compartments (soma, hillock,
AIS, nodes of Ranvier, unmyelinated axon and terminals) cross 0 mV upwards within the simulated
``tstop`` (1 ms). Aberra et al.'s threshold search (TMSsim_Aberra2019, threshold_finder.hoc)
counts an AP when more than 2 compartments cross 0 mV within 1 ms at dt = 5 us; here only
excitable compartments count, because low-capacitance myelin (0.02 uF/cm2) can be polarised past
0 mV passively by a strong pulse without any spike.

Numerics: fixed step, backward Euler, dt = 5 us, 37 degC, CVode off (as Aberra 2020); one
``finitialize`` per trial (the rest state is exact, see ``core.tms.neurons``); the run stops as
soon as the criterion is met. Halving dt, a 2.5x finer compartment grid or a shorter tstop
(0.7 ms) each move thresholds by < 1% (``tms_numerics`` in tests/bench_tms.py).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from core.errors import InputError
from core.tms.mechanisms import load_mechanisms
from core.tms.neurons import CELSIUS, Cell

__all__ = [
    "DT_MS",
    "N_AP_SITES",
    "TSTOP_MS",
    "ThresholdResult",
    "Waveform",
    "biphasic_waveform",
    "elicits_ap",
    "field_from_grid",
    "get_waveform",
    "interpolate_grid",
    "monophasic_waveform",
    "quasipotentials_mv",
    "threshold_a_per_us",
    "threshold_search",
    "uniform_field",
]

DT_MS = 0.005
TSTOP_MS = 1.0
N_AP_SITES = 3
PULSE_DELAY_MS = 0.01
_SAMPLE_MS = 0.001  # waveform samples played into NEURON (linear interpolation between them)
_CHUNK_MS = 0.1  # the run checks the AP criterion this often, to stop early

# First guesses of threshold |E| (V/m) per cell type; the search learns better ones as it goes.
_GUESS_V_PER_M = {"L23_PC": 250.0, "L4_LBC": 250.0, "L5_PC": 180.0}


# ---------------------------------------------------------------------------------------------
# waveforms


@dataclass(frozen=True, eq=False)
class Waveform:
    """A TMS pulse waveform: the coil's dI/dt over time, normalised to a peak |value| of 1.

    Attributes
    ----------
    name : str
    t_ms : ndarray, shape (n,)
        Sample times (ms), from 0; the pulse starts at ``PULSE_DELAY_MS``.
    values : ndarray, shape (n,)
        Normalised dI/dt (unitless), max |values| = 1; the E-field is proportional to it.
    tstop_ms : float
        Length of the simulation used with it (ms).
    """

    name: str
    t_ms: np.ndarray
    values: np.ndarray
    tstop_ms: float = TSTOP_MS


def monophasic_waveform(rise_us: float = 80.0, tail_tau_us: float = 100.0, tstop_ms: float = TSTOP_MS) -> Waveform:
    """Monophasic pulse (MagStim 200 / MagPro monophasic-like), dI/dt normalised to peak 1.

    The coil current rises as a quarter sine over ``rise_us`` (the RLC discharge of the
    capacitor) and then decays critically damped (the diode/resistor branch) with time constant
    ``tail_tau_us``. With s the time from pulse onset, T = ``rise_us``, tau = ``tail_tau_us``,
    u = s - T::

        w(s) = cos(pi s / (2 T))                                  0 <= s < T
        w(s) = -(2 T / pi) (u / tau^2) exp(-u / tau)              s >= T

    The E-field jumps to its peak at onset and falls to 0 at the current peak (s = T); the tail
    is a long, shallow reversed phase, min -2T/(pi e tau) = -0.19 at u = tau, integral of the
    whole pulse 0 (the current returns to zero). Aberra et al. 2020 use recorded MagPro X100
    monophasic waveforms of this shape (main phase ~80 us, reversed phase ~20% lasting ~0.5 ms).
    """
    t = np.arange(0.0, tstop_ms + _SAMPLE_MS / 2, _SAMPLE_MS)
    s_us = (t - PULSE_DELAY_MS) * 1000.0
    w = np.zeros_like(t)
    rise = (s_us >= 0) & (s_us < rise_us)
    w[rise] = np.cos(np.pi * s_us[rise] / (2 * rise_us))
    tail = s_us >= rise_us
    u = s_us[tail] - rise_us
    w[tail] = -(2 * rise_us / np.pi) * (u / tail_tau_us**2) * np.exp(-u / tail_tau_us)
    return Waveform("monophasic", t, w, tstop_ms)


def biphasic_waveform(period_us: float = 300.0, tstop_ms: float = TSTOP_MS) -> Waveform:
    """Biphasic pulse (MagPro/MagStim Rapid biphasic-like): one full cosine cycle of dI/dt.

    The coil current is one sine period (the capacitor discharges and recharges), so with s the
    time from onset and T = ``period_us``::

        w(s) = cos(2 pi s / T)     0 <= s <= T,      0 otherwise

    Peak 1 at onset and end, -1 at T/2, integral 0. MagPro X100 biphasic pulses last ~290 us,
    MagStim Rapid2 ~400 us; 300 us is the common textbook value.
    """
    t = np.arange(0.0, tstop_ms + _SAMPLE_MS / 2, _SAMPLE_MS)
    s_us = (t - PULSE_DELAY_MS) * 1000.0
    w = np.where((s_us >= 0) & (s_us <= period_us), np.cos(2 * np.pi * s_us / period_us), 0.0)
    return Waveform("biphasic", t, w, tstop_ms)


_WAVEFORMS: dict[str, Waveform] = {}


def get_waveform(name: str) -> Waveform:
    """The default ``"monophasic"`` or ``"biphasic"`` waveform (cached)."""
    if name not in ("monophasic", "biphasic"):
        raise InputError(f"unknown waveform {name!r}; expected 'monophasic' or 'biphasic'.", field="waveform")
    if name not in _WAVEFORMS:
        _WAVEFORMS[name] = monophasic_waveform() if name == "monophasic" else biphasic_waveform()
    return _WAVEFORMS[name]


# ---------------------------------------------------------------------------------------------
# fields


def uniform_field(cell: Cell, direction, magnitude_v_per_m: float = 1.0) -> np.ndarray:
    """A uniform field at every compartment of ``cell``.

    Parameters
    ----------
    direction : array-like, shape (3,)
        Field direction in the cell frame (normalised here; z towards the pia).
    magnitude_v_per_m : float
        |E| in V/m per A/us.

    Returns
    -------
    ndarray, shape (n_segments, 3), V/m per A/us
    """
    d = np.asarray(direction, dtype=float).reshape(3)
    norm = np.linalg.norm(d)
    if not np.isfinite(norm) or norm == 0:
        raise InputError(f"field direction must be a non-zero 3-vector; got {direction!r}.", field="direction")
    return np.tile(d / norm * float(magnitude_v_per_m), (cell.n_segments, 1))


def interpolate_grid(grid_v_per_m: np.ndarray, spacing_um: float, positions_um: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a regular grid of E-field vectors centred on the soma.

    Parameters
    ----------
    grid_v_per_m : ndarray, shape (nx, ny, nz, 3)
        Field vectors (V/m per A/us) on the grid; ``grid[i, j, k]`` sits at
        ``((i - (nx-1)/2) * spacing_um, (j - (ny-1)/2) * spacing_um, (k - (nz-1)/2) * spacing_um)``
        in the cell frame (the surrogate dataset uses 9 x 9 x 9, soma at ``grid[4, 4, 4]``).
    spacing_um : float
        Grid spacing (um).
    positions_um : ndarray, shape (n, 3)
        Where to evaluate, in the cell frame. Points outside the grid take the value at the
        nearest grid face (constant extrapolation).

    Returns
    -------
    ndarray, shape (n, 3), V/m per A/us
    """
    grid = np.asarray(grid_v_per_m, dtype=float)
    if grid.ndim != 4 or grid.shape[3] != 3 or min(grid.shape[:3]) < 2:
        raise InputError(f"E-field grid must have shape (nx, ny, nz, 3) with n >= 2; got {grid.shape}.", field="grid_v_per_m")
    if not spacing_um > 0:
        raise InputError(f"grid spacing must be > 0 um; got {spacing_um!r}.", field="spacing_um")
    shape = np.array(grid.shape[:3])
    # fractional grid coordinates, clamped to the grid
    f = np.asarray(positions_um, dtype=float) / spacing_um + (shape - 1) / 2.0
    f = np.clip(f, 0.0, shape - 1)
    i0 = np.minimum(np.floor(f).astype(int), shape - 2)
    t = f - i0
    out = np.zeros((len(f), 3))
    for dx in (0, 1):
        wx = t[:, 0] if dx else 1 - t[:, 0]
        for dy in (0, 1):
            wy = t[:, 1] if dy else 1 - t[:, 1]
            for dz in (0, 1):
                wz = t[:, 2] if dz else 1 - t[:, 2]
                out += (wx * wy * wz)[:, None] * grid[i0[:, 0] + dx, i0[:, 1] + dy, i0[:, 2] + dz]
    return out


def field_from_grid(cell: Cell, grid_v_per_m: np.ndarray, spacing_um: float) -> np.ndarray:
    """E-field at every compartment of ``cell`` from a grid centred on its soma.

    See ``interpolate_grid``. Returns shape (n_segments, 3), V/m per A/us.
    """
    return interpolate_grid(grid_v_per_m, spacing_um, cell.segment_positions_um())


def quasipotentials_mv(cell: Cell, e_field_at_segments_v_per_m: np.ndarray) -> np.ndarray:
    """Quasipotential of each compartment, phi = -integral of E . dl from the soma.

    Integrated along the neurites (trapezoid rule between neighbouring compartment centres), so
    for a uniform field phi_i = -E . r_i exactly.

    Parameters
    ----------
    e_field_at_segments_v_per_m : ndarray, shape (n_segments, 3)
        V/m per A/us.

    Returns
    -------
    ndarray, shape (n_segments,), mV per A/us (V/m x um = uV)
    """
    e = _check_field(cell, e_field_at_segments_v_per_m)
    parent = cell.segment_parent
    r = cell._positions_um
    has_parent = parent >= 0
    p = np.where(has_parent, parent, 0)
    # potential drop across each link, then a cumulative sum down the tree (parents come first)
    step = np.where(has_parent, -0.5 * np.einsum("ij,ij->i", e + e[p], r - r[p]), 0.0) * 1e-3
    phi = np.zeros(cell.n_segments)
    for i in range(cell.n_segments):  # ~500 additions; parents precede children
        if has_parent[i]:
            phi[i] = phi[parent[i]] + step[i]
    return phi


def _check_field(cell: Cell, e) -> np.ndarray:
    e = np.asarray(e, dtype=float)
    if e.shape != (cell.n_segments, 3):
        raise InputError(f"E-field must have shape (n_segments, 3) = ({cell.n_segments}, 3) for {cell.cell_type} v{cell.variant}; got {e.shape}.", field="e_field_at_segments_v_per_m")
    if not np.all(np.isfinite(e)):
        raise InputError("E-field contains NaN or infinite values.", field="e_field_at_segments_v_per_m")
    return e


# ---------------------------------------------------------------------------------------------
# simulation


class _Driver:
    """Per-process NEURON settings and the waveform played into ``stim_xtra`` (global state)."""

    def __init__(self):
        load_mechanisms()
        from neuron import h

        self.h = h
        self.pc = h.ParallelContext()
        self.pc.set_maxstep(10)  # psolve needs a positive min NetCon delay; no NetCon targets here
        self.waveform: Waveform | None = None
        self._t = self._w = None

    def prepare(self, waveform: Waveform) -> None:
        h = self.h
        h.cvode_active(0)
        h.secondorder = 0
        h.dt = DT_MS
        h.steps_per_ms = 1.0 / DT_MS
        h.celsius = CELSIUS
        if self.waveform is not waveform:
            if self._w is not None:
                self._w.play_remove()
            self._t = h.Vector(waveform.t_ms)
            self._w = h.Vector(waveform.values)
            self._w.play(h._ref_stim_xtra, self._t, True)  # continuous: linear interpolation
            self.waveform = waveform

    def run(self, cell: Cell, amplitude_a_per_us: float, waveform: Waveform) -> bool:
        h = self.h
        self.prepare(waveform)
        h.amp_xtra = amplitude_a_per_us
        h.finitialize(cell.v_rest_mv)
        cell._spike_times.resize(0)
        cell._spike_ids.resize(0)
        t = 0.0
        while t < waveform.tstop_ms - 1e-9:
            t = min(t + _CHUNK_MS, waveform.tstop_ms)
            self.pc.psolve(t)
            if cell._spike_ids.size() >= N_AP_SITES and len(set(cell._spike_ids.to_python())) >= N_AP_SITES:
                return True
        return False


_driver: _Driver | None = None
_warned_extra_sections = False


def _get_driver() -> _Driver:
    global _driver
    if _driver is None:
        _driver = _Driver()
    return _driver


def _set_field(cell: Cell, e_field) -> np.ndarray:
    global _warned_extra_sections
    phi = quasipotentials_mv(cell, e_field)
    from neuron import h

    cell._es_pointers.scatter(h.Vector(phi))
    if not _warned_extra_sections and sum(1 for _ in h.allsec()) != len(cell.sections):
        _warned_extra_sections = True
        warnings.warn("other NEURON sections exist besides this cell's; they are simulated too and slow every threshold down (keep one cell alive, e.g. with core.tms.neurons.get_cell).", stacklevel=3)
    return phi


def elicits_ap(cell: Cell, e_field_at_segments_v_per_m: np.ndarray, waveform: Waveform, amplitude_a_per_us: float) -> bool:
    """Whether one pulse of peak dI/dt ``amplitude_a_per_us`` (A/us) elicits an action potential
    (``N_AP_SITES`` excitable compartments crossing 0 mV within ``waveform.tstop_ms``)."""
    _set_field(cell, e_field_at_segments_v_per_m)
    return _get_driver().run(cell, float(amplitude_a_per_us), waveform)


@dataclass(frozen=True)
class ThresholdResult:
    """Outcome of a threshold search.

    Attributes
    ----------
    threshold_a_per_us : float
        Smallest tested peak dI/dt (A/us) that elicited an AP; ``inf`` if none did up to the
        search limit.
    below_a_per_us : float
        Largest tested amplitude that did not; ``threshold / below - 1 <= rel_tol``.
    n_simulations : int
    first_site : int
        Compartment where the AP was first detected at threshold (index into per-segment
        arrays), -1 if none.
    first_site_kind : str
    latency_ms : float
        Time of that first 0 mV crossing after pulse onset (ms).
    """

    threshold_a_per_us: float
    below_a_per_us: float
    n_simulations: int
    first_site: int = -1
    first_site_kind: str = ""
    latency_ms: float = float("nan")


_learned_guess: dict[tuple, float] = {}


def _reference_field_v_per_m(cell: Cell, e: np.ndarray) -> float:
    # median |E| over the axon: where TMS acts, and robust to a few strong compartments
    magnitude = np.linalg.norm(e, axis=1)
    axon = np.isin(cell.segment_kinds, ("node", "terminal", "myelin", "unmyelinated"))
    ref = float(np.median(magnitude[axon]))
    return ref if ref > 0 else float(magnitude.max())


def threshold_search(
    cell: Cell,
    e_field_at_segments_v_per_m: np.ndarray,
    waveform: Waveform | str = "monophasic",
    rel_tol: float = 0.01,
    initial_a_per_us: float | None = None,
    max_a_per_us: float = 1e5,
) -> ThresholdResult:
    """Threshold peak dI/dt by bracketing and bisection; see ``threshold_a_per_us``."""
    if isinstance(waveform, str):
        waveform = get_waveform(waveform)
    if not 0 < rel_tol < 1:
        raise InputError(f"rel_tol must be in (0, 1); got {rel_tol!r}.", field="rel_tol")
    e = _check_field(cell, e_field_at_segments_v_per_m)
    ref = _reference_field_v_per_m(cell, e)
    if ref == 0:
        return ThresholdResult(math.inf, math.inf, 0)
    _set_field(cell, e)
    driver = _get_driver()
    key = (cell.cell_type, cell.variant, waveform.name)
    guess = initial_a_per_us or _learned_guess.get(key, _GUESS_V_PER_M[cell.cell_type]) / ref

    n, first_spike = 0, (np.zeros(0, int), np.zeros(0))

    def fires(a: float) -> bool:
        nonlocal n, first_spike
        n += 1
        if driver.run(cell, a, waveform):
            # keep where/when the AP started at the lowest firing amplitude so far
            first_spike = (np.array(cell._spike_ids.to_python(), dtype=int), np.array(cell._spike_times.to_python()))
            return True
        return False

    # bracket: step out from the guess geometrically, widening the step each time
    lo, hi, a, factor = 0.0, math.inf, guess, 1.12
    while lo == 0.0 or hi == math.inf:
        if fires(a):
            hi = a
            if lo > 0:
                break
            a = a / factor
        else:
            lo = a
            if hi < math.inf:
                break
            if a >= max_a_per_us:
                return ThresholdResult(math.inf, lo, n)
            a = min(a * factor, max_a_per_us)
        factor = factor**1.6
    # bisection in log space until hi/lo - 1 <= rel_tol
    while hi / lo - 1.0 > rel_tol:
        mid = math.sqrt(lo * hi)
        if fires(mid):
            hi = mid
        else:
            lo = mid
    _learned_guess[key] = 0.5 * (lo + hi) * ref
    ids, times = first_spike  # from the run at ``hi``
    first = int(ids[np.argmin(times)]) if len(ids) else -1
    return ThresholdResult(
        threshold_a_per_us=hi,
        below_a_per_us=lo,
        n_simulations=n,
        first_site=first,
        first_site_kind=str(cell.segment_kinds[first]) if first >= 0 else "",
        latency_ms=float(times.min() - PULSE_DELAY_MS) if len(times) else math.nan,
    )


def threshold_a_per_us(
    cell: Cell,
    e_field_at_segments_v_per_m: np.ndarray,
    waveform: Waveform | str = "monophasic",
    rel_tol: float = 0.01,
    initial_a_per_us: float | None = None,
) -> float:
    """Activation threshold of ``cell``: the smallest peak coil dI/dt (A/us) that elicits an AP.

    Parameters
    ----------
    cell : Cell
    e_field_at_segments_v_per_m : ndarray, shape (n_segments, 3)
        E-field at each compartment in V/m per A/us, cell frame (see ``uniform_field``,
        ``field_from_grid``).
    waveform : Waveform or {"monophasic", "biphasic"}
    rel_tol : float
        Bisection stops when (smallest firing amplitude) / (largest silent amplitude) - 1 <=
        ``rel_tol``; the smallest firing amplitude is returned, so the result is at most
        ``rel_tol`` above the true threshold.
    initial_a_per_us : float, optional
        Where to start bracketing; by default from a per-cell-type estimate of the threshold
        field that the search refines as it runs.

    Returns
    -------
    float
        Threshold in A/us; ``inf`` when no AP occurs up to 1e5 A/us (e.g. a zero field). In a
        uniform field of |e| V/m per A/us the threshold field is ``threshold * |e|`` V/m.
    """
    return threshold_search(cell, e_field_at_segments_v_per_m, waveform, rel_tol, initial_a_per_us).threshold_a_per_us
