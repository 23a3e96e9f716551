"""Signal-processing features computed from raw EMG and kinematic recordings.

Every function takes raw samples in physical units (µV for EMG, mm for marker positions) and,
unless it says it takes one recording, works over any leading batch axes, so one call covers a
whole cohort. The synthetic generator's recordings and uploaded files (EDF, CSV, C3D) go through
the same code.

How the batch functions stay fast
---------------------------------
Time-domain IIR filtering (``scipy.signal.sosfiltfilt``) costs several seconds per 10,000
recordings, so the batch functions filter in the frequency domain instead: each record's FFT is
multiplied by the amplitude response of the same zero-phase (forward-backward) Butterworth filter,
which is what ``sosfiltfilt`` applies away from the record's ends. The straight line through a
record's first and last samples is taken out first (exactly, in the frequency domain) and, where
the filtered signal is returned, put back, so the FFT's periodic extension has no jump at the ends.

Spectra are periodograms of the whole record, not Welch averages: the features read from them
(median frequency, band power) are integrals of the spectrum and need no Welch smoothing. The
tests check both against the ``sosfiltfilt`` + Welch route.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
from scipy import signal

from core.errors import InputError

__all__ = [
    "bandpass",
    "mep_features",
    "emg_rms_uv",
    "median_frequency_hz",
    "speed_mm_s",
    "movement_segments",
    "sparc",
    "kinematic_features",
]

# Records are processed in blocks of about this many samples: big enough for numpy to be
# efficient, small enough that temporaries stay in cache and memory stays flat for any cohort.
_BLOCK_SAMPLES = 1 << 20

_MEP_MIN_RATE_HZ = 1000.0  # onset must be resolved to 1 ms
_MEP_BASELINE_END_MS = -1.0  # baseline stops short of the pulse and its artefact
_MEP_MIN_BASELINE_MS = 5.0
_MEP_ONSET_SD = 5.0

_EMG_BANDPASS_ORDER = 4
_EMG_MIN_PERIODS = 10  # periods of the band's lower edge a record must span

_LOWPASS_ORDER = 4  # Butterworth low-pass for kinematics (forward-backward: 8th-order roll-off)
_MERGE_GAP_S = 0.1
_REACH_THRESHOLD_FRACTION = 0.05  # movement_segments' defaults, used by kinematic_features
_REACH_MIN_DURATION_S = 0.2
# Movements are found on a speed smoothed by a Gaussian that attenuates the tremor band's lower
# edge this many times, so rest tremor is not taken for movement (a Gaussian does not ring, so
# it adds no side lobes that could bridge two movements).
_SEGMENTATION_TREMOR_ATTENUATION = 20.0
# A record whose smoothed speed stays below this holds rest, tremor or noise, not a reach.
_MIN_MOVEMENT_SPEED_MM_S = 20.0


# ---------------------------------------------------------------- validation


def _rate(fs_hz):
    fs = _number(fs_hz, "fs_hz", "the sampling rate in Hz as a number")
    if not np.isfinite(fs) or fs <= 0:
        raise InputError(f"expected a positive sampling rate in Hz, found {fs_hz!r}", field="fs_hz")
    return fs


def _number(value, field, expected):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"expected {expected}, found {value!r}", field=field) from None


def _samples(x, field, unit=None):
    """Floating-point array of finite samples, or InputError naming the field and what was found.

    Float32 stays float32 (callers convert block by block, which saves a copy of a whole cohort).
    """
    unit_text = f" in {unit}" if unit else ""
    a = np.asarray(x)
    if a.dtype.kind not in "iuf":
        raise InputError(f"expected numeric samples{unit_text}, found data of type {a.dtype}", field=field)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)
    n_bad = int(np.count_nonzero(~np.isfinite(a)))
    if n_bad:
        plural = "s" if n_bad != 1 else ""
        raise InputError(
            f"expected finite samples{unit_text}; found {n_bad} NaN or infinite sample{plural} "
            f"out of {a.size}. Remove or interpolate them before computing features.",
            field=field,
        )
    return a


def _require_ndim(a, min_ndim, field, shape):
    if a.ndim < min_ndim:
        raise InputError(f"expected an array of shape {shape}, found shape {a.shape}", field=field)


def _require_length(n, need, fs, field, why):
    if n < need:
        raise InputError(
            f"recording too short {why}: expected at least {need} samples "
            f"({need / fs:g} s at {fs:g} Hz), found {n}",
            field=field,
        )


def _band(band_hz, fs, field="band_hz"):
    try:
        low, high = (float(v) for v in band_hz)
    except (TypeError, ValueError):
        raise InputError(f"expected a band as (low, high) in Hz, found {band_hz!r}", field=field) from None
    if not 0 < low < high:
        raise InputError(f"expected band edges 0 < low < high in Hz, found low={low:g}, high={high:g}", field=field)
    if high >= fs / 2:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for the {low:g}-{high:g} Hz band: "
            f"expected more than {2 * high:g} Hz (twice the band's upper edge)",
            field="fs_hz",
        )
    return low, high


def _cutoff(cutoff_hz, fs, field):
    cutoff = _number(cutoff_hz, field, "a cut-off in Hz")
    if not cutoff > 0:
        raise InputError(f"expected a positive cut-off in Hz, found {cutoff_hz!r}", field=field)
    if cutoff >= fs / 2:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for a {cutoff:g} Hz cut-off: "
            f"expected more than {2 * cutoff:g} Hz (twice the cut-off)",
            field="fs_hz",
        )
    return cutoff


def _fraction(value, field, *, allow_one=True):
    v = _number(value, field, "a fraction between 0 and 1")
    if not (0 < v <= 1 if allow_one else 0 < v < 1):
        raise InputError(f"expected a fraction between 0 and 1, found {value!r}", field=field)
    return v


# ---------------------------------------------------------------- shared machinery


def _blocks(n_rows, samples_per_row):
    step = max(1, _BLOCK_SAMPLES // max(samples_per_row, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


@lru_cache(maxsize=64)
def _ramp_spectrum(n):
    """rfft of the ramp 0, 1, ..., n - 1."""
    ramp = np.fft.rfft(np.arange(float(n)))
    ramp.flags.writeable = False
    return ramp


def _joined_spectrum(x):
    """rfft over the last axis of x minus the line through its first and last samples. The
    line's offset only touches the 0 Hz bin, which is left as is: every caller discards it."""
    n = x.shape[-1]
    slope = (x[..., -1] - x[..., 0]) / max(n - 1, 1)
    return np.fft.rfft(x, axis=-1) - slope[..., None] * _ramp_spectrum(n)


def _one_sided_weights(n):
    """Weights turning |rfft|^2 into power per bin, so that the bins sum to the mean square."""
    w = np.full(n // 2 + 1, 2.0 / n**2)
    w[0] = 1.0 / n**2
    if n % 2 == 0:
        w[-1] = 1.0 / n**2
    return w


@lru_cache(maxsize=64)
def _butter_sos(order, cutoff, fs, btype):
    return signal.butter(order, cutoff, btype=btype, fs=fs, output="sos")


@lru_cache(maxsize=64)
def _zero_phase_gain(n, fs, order, cutoff, btype):
    """Amplitude response |H(f)|^2 of forward-backward Butterworth filtering at the rfft bins."""
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    _, h = signal.sosfreqz(_butter_sos(order, cutoff, fs, btype), worN=freqs, fs=fs)
    gain = np.abs(h) ** 2
    gain.flags.writeable = False
    return gain


def _nan_median(a):
    """Median over the last axis ignoring NaN; NaN where a row holds no number (no warning)."""
    s = np.sort(a, axis=-1)  # NaN sorts last
    k = np.count_nonzero(~np.isnan(a), axis=-1)
    lo = np.take_along_axis(s, np.maximum((k - 1) // 2, 0)[..., None], axis=-1)[..., 0]
    hi = np.take_along_axis(s, np.maximum(k // 2, 0)[..., None], axis=-1)[..., 0]
    return np.where(k > 0, (lo + hi) / 2, np.nan)


def _ragged(starts, lengths):
    """Flat indices of the ranges [start, start + length) laid end to end, and each range's offset."""
    offsets = np.zeros(len(lengths), dtype=np.intp)
    np.cumsum(lengths[:-1], out=offsets[1:])
    return np.arange(lengths.sum()) - np.repeat(offsets - starts, lengths), offsets


# ---------------------------------------------------------------- EMG


def bandpass(x, fs_hz, low_hz, high_hz, order=4, axis=-1):
    """Zero-phase Butterworth band-pass filter.

    Parameters
    ----------
    x : array_like, any shape
        Samples (any unit; the output has the same unit), time along ``axis``.
    fs_hz : float
        Sampling rate in Hz.
    low_hz, high_hz : float
        Pass band edges in Hz, ``0 < low_hz < high_hz < fs_hz / 2``.
    order : int
        Butterworth order; run forward and backward, the roll-off is twice as steep.
    axis : int
        Time axis.

    Returns
    -------
    ndarray, same shape as ``x``
        Filtered samples (``scipy.signal.sosfiltfilt`` with odd padding of ``3 * (2 * n_sections + 1)``
        samples at each end).

    Raises
    ------
    InputError
        Bad band or sampling rate, non-finite samples, or fewer samples than the padding needs.
    """
    fs = _rate(fs_hz)
    low, high = _band((low_hz, high_hz), fs, field="low_hz, high_hz")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise InputError(f"expected a positive integer filter order, found {order!r}", field="order")
    a = _samples(x, "x").astype(np.float64, copy=False)
    if not isinstance(axis, (int, np.integer)) or not -a.ndim <= axis < max(a.ndim, 1):
        raise InputError(f"expected a time axis within the array's {a.ndim} dimensions, found axis={axis}", field="axis")
    sos = _butter_sos(int(order), (low, high), fs, "bandpass")
    padlen = 3 * (2 * len(sos) + 1)
    n = a.shape[axis] if a.ndim else 0
    if n <= padlen:
        raise InputError(
            f"recording too short for an order-{order} zero-phase filter: expected more than "
            f"{padlen} samples along axis {axis}, found {n}",
            field="x",
        )
    return signal.sosfiltfilt(sos, a, axis=axis, padlen=padlen)


def mep_features(
    sweeps_uv,
    fs_hz,
    sweep_start_ms,
    window_ms=(10.0, 60.0),
    present_threshold_uv=50.0,
    min_trials_present=0.5,
):
    """Motor evoked potential (MEP) amplitude, onset latency and presence from TMS sweeps.

    Each sweep is referenced to its own pre-stimulus mean (from the sweep start to -1 ms, which
    leaves out the TMS artefact). The background level is the mean and SD of the rectified
    pre-stimulus samples of all the recording's sweeps together. Per trial:

    * amplitude: peak-to-peak of the sweep within ``window_ms``;
    * onset: the first sample in the window where the rectified sweep exceeds the background
      mean + 5 SD, moved back to the start of the rise: the time, interpolated between
      samples, at which the rectified sweep last rose through the background mean before that
      crossing. A fixed threshold alone would report small MEPs late, by the time they take to
      climb 5 SD;
    * the trial shows a MEP when its amplitude reaches ``present_threshold_uv`` *and* the 5 SD
      crossing happened, so that a noisy background (whose peak-to-peak easily tops 50 µV at
      20 µV RMS) is not counted as a response.

    Parameters
    ----------
    sweeps_uv : array_like, shape (..., n_trials, n_sweep_samples)
        EMG sweeps in µV, one per TMS pulse.
    fs_hz : float
        Sampling rate in Hz, at least 1000.
    sweep_start_ms : float
        Time of each sweep's first sample relative to the pulse, in ms (e.g. -20.0). The sweeps
        must start at least 6 ms before the pulse, to leave a 5 ms baseline.
    window_ms : (float, float)
        Response window in ms after the pulse, ``0 <= start < end <= end of sweep``.
    present_threshold_uv : float
        Peak-to-peak amplitude, in µV, a trial must reach to show a MEP.
    min_trials_present : float
        Fraction of trials that must show a MEP for ``present`` (0.5: "5 of 10 trials").

    Returns
    -------
    dict of ndarray
        With ``batch = sweeps_uv.shape[:-2]``:

        ``amplitude_uv`` : float, shape batch
            Mean over all trials of the peak-to-peak amplitude, µV.
        ``latency_ms`` : float, shape batch
            Median onset latency over the trials that show a MEP, ms; NaN when the MEP is not
            ``present`` (a stray trial in background noise gives no latency).
        ``present`` : bool, shape batch
            At least ``min_trials_present`` of the trials show a MEP.
        ``trial_amplitude_uv`` : float, shape batch + (n_trials,)
            Peak-to-peak amplitude of each trial, µV.

    Raises
    ------
    InputError
        Wrong shape, non-finite samples, sampling rate below 1000 Hz, too short a baseline, or a
        window outside the sweep.
    """
    fs = _rate(fs_hz)
    if fs < _MEP_MIN_RATE_HZ:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for MEP onsets: expected at least {_MEP_MIN_RATE_HZ:g} Hz",
            field="fs_hz",
        )
    x = _samples(sweeps_uv, "sweeps_uv", "µV")
    _require_ndim(x, 2, "sweeps_uv", "(..., n_trials, n_sweep_samples)")
    threshold_uv = _number(present_threshold_uv, "present_threshold_uv", "an amplitude in µV")
    if not threshold_uv > 0:
        raise InputError(f"expected a positive amplitude in µV, found {present_threshold_uv!r}", field="present_threshold_uv")
    min_fraction = _fraction(min_trials_present, "min_trials_present")

    n_trials, n = x.shape[-2:]
    start_ms = _number(sweep_start_ms, "sweep_start_ms", "the sweep start in ms")
    t_ms = start_ms + np.arange(n) * (1000.0 / fs)
    tol = 1e-9
    n_base = int(np.searchsorted(t_ms, _MEP_BASELINE_END_MS + tol))
    need = int(np.ceil(_MEP_MIN_BASELINE_MS * fs / 1000.0))
    if n_base < need:
        raise InputError(
            f"expected at least {_MEP_MIN_BASELINE_MS:g} ms of pre-stimulus baseline (sweeps starting at "
            f"{_MEP_BASELINE_END_MS - _MEP_MIN_BASELINE_MS:g} ms or earlier), found sweeps starting at {start_ms:g} ms",
            field="sweep_start_ms",
        )
    try:
        w0, w1 = (float(v) for v in window_ms)
    except (TypeError, ValueError):
        raise InputError(f"expected a response window as (start, end) in ms, found {window_ms!r}", field="window_ms") from None
    if not 0 <= w0 < w1 or w1 > t_ms[-1] + tol:
        raise InputError(
            f"expected a response window 0 <= start < end <= {t_ms[-1]:g} ms (the sweep's end), "
            f"found {w0:g}-{w1:g} ms",
            field="window_ms",
        )
    i0 = int(np.searchsorted(t_ms, w0 - tol))
    i1 = int(np.searchsorted(t_ms, w1 + tol))

    batch = x.shape[:-2]
    recordings = x.reshape(-1, n_trials, n)
    ptp = np.empty(recordings.shape[:2])
    onset_ms = np.empty(recordings.shape[:2])
    shows_mep = np.empty(recordings.shape[:2], dtype=bool)
    lag = np.arange(i1 - i0)
    for sl in _blocks(len(recordings), n_trials * n):
        block = recordings[sl].astype(np.float64)
        base = block[..., :n_base]
        level = base.mean(axis=-1, keepdims=True)
        win = block[..., i0:i1] - level
        ptp[sl] = win.max(axis=-1) - win.min(axis=-1)
        # Rectified background statistics pooled over the recording's sweeps: a single 19 ms
        # baseline gives so unsteady an SD that background noise would pass for a MEP in about
        # one sweep in ten.
        rect_base = np.abs(base - level).reshape(len(block), -1)
        rest = rect_base.mean(axis=-1)[:, None, None]
        rect = np.abs(win)
        above = rect > rest + _MEP_ONSET_SD * rect_base.std(axis=-1, ddof=1)[:, None, None]
        crossing = above.argmax(axis=-1)
        at_rest = (rect <= rest) & (lag < crossing[..., None])
        last_rest = np.where(at_rest, lag, -1).max(axis=-1)
        # Sub-sample: where the rectified sweep passes the background mean between the last sample
        # at rest and the next one (or the window start when it never rests).
        before = np.take_along_axis(rect, np.maximum(last_rest, 0)[..., None], axis=-1)[..., 0]
        after = np.take_along_axis(rect, (last_rest + 1)[..., None], axis=-1)[..., 0]
        share = np.divide(rest[..., 0] - before, after - before, out=np.ones_like(before), where=last_rest >= 0)
        onset_ms[sl] = t_ms[i0] + (np.maximum(last_rest, 0) + share) * (1000.0 / fs)
        shows_mep[sl] = above.any(axis=-1) & (ptp[sl] >= threshold_uv)

    ptp = ptp.reshape(batch + (n_trials,))
    shows_mep = shows_mep.reshape(ptp.shape)
    onset_ms = np.where(shows_mep, onset_ms.reshape(ptp.shape), np.nan)
    present = shows_mep.sum(axis=-1) >= min_fraction * n_trials - 1e-9
    return {
        "amplitude_uv": ptp.mean(axis=-1),
        "latency_ms": np.where(present, _nan_median(onset_ms), np.nan),
        "present": present,
        "trial_amplitude_uv": ptp,
    }


def _band_power_spectra(x_uv, fs_hz, band_hz):
    """Yield (block slice, power per rfft bin after zero-phase band-pass) for each block of records."""
    fs = _rate(fs_hz)
    low, high = _band(band_hz, fs)
    x = _samples(x_uv, "x_uv", "µV")
    _require_ndim(x, 1, "x_uv", "(..., n_samples)")
    n = x.shape[-1]
    _require_length(n, int(np.ceil(_EMG_MIN_PERIODS * fs / low)), fs, "x_uv", f"for the {low:g}-{high:g} Hz band")
    # Forward-backward filtering scales the amplitude by |H|^2, hence the power by |H|^4.
    weight = _zero_phase_gain(n, fs, _EMG_BANDPASS_ORDER, (low, high), "bandpass") ** 2 * _one_sided_weights(n)
    rows = x.reshape(-1, n)
    for sl in _blocks(len(rows), n):
        spectrum = _joined_spectrum(rows[sl].astype(np.float64))
        yield sl, (spectrum.real**2 + spectrum.imag**2) * weight


def emg_rms_uv(x_uv, fs_hz, band_hz=(20.0, 450.0)):
    """Root-mean-square amplitude of band-passed EMG.

    The band-pass is the zero-phase order-4 Butterworth of :func:`bandpass`, applied in the
    frequency domain (see the module notes); the RMS is read from the spectrum (Parseval).

    Parameters
    ----------
    x_uv : array_like, shape (..., n_samples)
        EMG in µV, e.g. a voluntary-contraction segment. At least 10 periods of the band's lower
        edge long (0.5 s for 20 Hz).
    fs_hz : float
        Sampling rate in Hz, above twice the band's upper edge (900 Hz for 450 Hz).
    band_hz : (float, float)
        Pass band in Hz.

    Returns
    -------
    ndarray, shape x_uv.shape[:-1]
        RMS in µV.

    Raises
    ------
    InputError
        Non-finite samples, too short a record, or a sampling rate too low for the band.
    """
    x_shape = np.shape(x_uv)
    out = np.empty(int(np.prod(x_shape[:-1])))
    for sl, power in _band_power_spectra(x_uv, fs_hz, band_hz):
        out[sl] = np.sqrt(power.sum(axis=-1))
    return out.reshape(x_shape[:-1])


def median_frequency_hz(x_uv, fs_hz, band_hz=(20.0, 450.0)):
    """Median frequency of band-passed EMG: the frequency splitting its power into equal halves.

    The power spectrum is the periodogram of the whole record after the zero-phase band-pass of
    :func:`emg_rms_uv`; each bin's power is spread evenly over the bin's width, so the result is
    not quantised to the bin grid.

    Parameters
    ----------
    x_uv : array_like, shape (..., n_samples)
        EMG in µV, at least 10 periods of the band's lower edge long.
    fs_hz : float
        Sampling rate in Hz, above twice the band's upper edge.
    band_hz : (float, float)
        Pass band in Hz.

    Returns
    -------
    ndarray, shape x_uv.shape[:-1]
        Median frequency in Hz; NaN for a record with no power in the band (all zeros).

    Raises
    ------
    InputError
        Non-finite samples, too short a record, or a sampling rate too low for the band.
    """
    x_shape = np.shape(x_uv)
    fs = _rate(fs_hz)
    n = x_shape[-1] if x_shape else 0
    out = np.empty(int(np.prod(x_shape[:-1])))
    for sl, power in _band_power_spectra(x_uv, fs_hz, band_hz):
        cumulative = np.cumsum(power, axis=-1)
        half = cumulative[:, -1] / 2
        k = np.argmax(cumulative >= half[:, None], axis=-1)
        in_bin = np.take_along_axis(power, k[:, None], axis=-1)[:, 0]
        before = np.take_along_axis(cumulative, k[:, None], axis=-1)[:, 0] - in_bin
        share = np.divide(half - before, in_bin, out=np.full_like(half, np.nan), where=in_bin > 0)
        out[sl] = (k - 0.5 + share) * (fs / n)
    return out.reshape(x_shape[:-1])


# ---------------------------------------------------------------- kinematics


def _positions(position_mm, fs_hz, field="position_mm"):
    fs = _rate(fs_hz)
    p = _samples(position_mm, field, "mm")
    if p.ndim < 2 or p.shape[-1] != 3:
        raise InputError(f"expected marker positions of shape (..., n_samples, 3) (x, y, z in mm), found shape {p.shape}", field=field)
    return p, fs


def _position_blocks(p):
    """Yield (block slice, position spectra (b, 3, n_bins), slope of the joining line per sample (b, 3))."""
    n = p.shape[-2]
    rows = p.reshape(-1, n, 3)
    for sl in _blocks(len(rows), 3 * n):
        block = np.swapaxes(rows[sl], 1, 2).astype(np.float64, order="C")
        yield sl, np.fft.rfft(block, axis=-1), (block[..., -1] - block[..., 0]) / max(n - 1, 1)


def _velocity_filter(n, fs, smoothing):
    """Differentiator times a zero-phase low-pass (amplitude response ``smoothing`` at the rfft
    bins, 1 at 0 Hz), and the velocity that the joining line ``0, 1, ..., n - 1`` contributes
    beyond its own slope: filtering the raw spectrum and adding slope x this is the same as
    filtering the end-joined record and adding its slope back, at no cost per record."""
    gain = smoothing * (2j * np.pi * np.fft.rfftfreq(n, 1.0 / fs))
    return gain, fs - np.fft.irfft(_ramp_spectrum(n) * gain, n)


def _speed(spectrum, slope, velocity_filter, n):
    """Tangential speed (b, n) in mm/s from position spectra (b, 3, n_bins)."""
    gain, ramp_velocity = velocity_filter
    v = np.fft.irfft(spectrum * gain, n, axis=-1)
    v += slope[..., None] * ramp_velocity
    return np.sqrt(v[:, 0] ** 2 + v[:, 1] ** 2 + v[:, 2] ** 2)


def speed_mm_s(position_mm, fs_hz, lowpass_hz=15.0):
    """Tangential speed of a marker after a zero-phase low-pass.

    Positions are low-passed with an order-4 Butterworth applied forward and backward (in the
    frequency domain, see the module notes) and differentiated exactly in the frequency domain.

    Parameters
    ----------
    position_mm : array_like, shape (..., n_samples, 3)
        Marker position (x, y, z) in mm.
    fs_hz : float
        Sampling rate in Hz, above twice ``lowpass_hz``.
    lowpass_hz : float
        Low-pass cut-off in Hz.

    Returns
    -------
    ndarray, shape position_mm.shape[:-1]
        Speed in mm/s.

    Raises
    ------
    InputError
        Wrong shape, non-finite samples, fewer than 2 samples, or a sampling rate too low for the
        cut-off.
    """
    p, fs = _positions(position_mm, fs_hz)
    cutoff = _cutoff(lowpass_hz, fs, "lowpass_hz")
    n = p.shape[-2]
    _require_length(n, 2, fs, "position_mm", "to compute a speed")
    velocity = _velocity_filter(n, fs, _zero_phase_gain(n, fs, _LOWPASS_ORDER, cutoff, "lowpass"))
    out = np.empty((int(np.prod(p.shape[:-2])), n))
    for sl, spectrum, slope in _position_blocks(p):
        out[sl] = _speed(spectrum, slope, velocity, n)
    return out.reshape(p.shape[:-1])


def _first_true(mask, rows, cols):
    """Column of the first True at or after (rows, cols) of a 2-D mask, per query; n_cols if none."""
    n = mask.shape[1]
    where = np.append(np.flatnonzero(mask), mask.size)
    hit = where[np.searchsorted(where, rows * n + cols)]
    return np.where(hit < (rows + 1) * n, hit - rows * n, n)


def _last_true(mask, rows, cols):
    """Column of the last True at or before (rows, cols) of a 2-D mask, per query; -1 if none."""
    n = mask.shape[1]
    where = np.concatenate(([-1], np.flatnonzero(mask)))
    hit = where[np.searchsorted(where, rows * n + cols, side="right") - 1]
    return np.where(hit >= rows * n, hit - rows * n, -1)


def _downhill_left(s, rows, cols):
    """The local minimum reached from each (row, col) by walking left while the speed keeps falling."""
    stop = np.ones(s.shape, dtype=bool)
    stop[:, 1:] = s[:, :-1] >= s[:, 1:]
    return _last_true(stop, rows, cols)


def _downhill_right(s, rows, cols):
    """The local minimum reached from each (row, col) by walking right while the speed keeps falling."""
    stop = np.ones(s.shape, dtype=bool)
    stop[:, :-1] = s[:, 1:] >= s[:, :-1]
    return _first_true(stop, rows, cols)


def _segment_rows(s, fs, threshold_fraction, min_duration_s, min_peak=0.0):
    """Movements in each row of a 2-D speed array.

    Returns row, threshold run start/stop and extended start/stop (stops exclusive), ordered by
    row then time.
    """
    peak = s.max(axis=1)
    above = (s > threshold_fraction * peak[:, None]) & (peak > min_peak)[:, None]
    edges = np.diff(above.astype(np.int8), axis=1, prepend=0, append=0)
    rows, start = np.nonzero(edges == 1)
    stop = np.nonzero(edges == -1)[1]
    opens = np.ones(len(rows), dtype=bool)
    opens[1:] = (rows[1:] != rows[:-1]) | ((start[1:] - stop[:-1]) / fs >= _MERGE_GAP_S)
    closes = np.ones(len(rows), dtype=bool)
    closes[:-1] = opens[1:]
    rows, start, stop = rows[opens], start[opens], stop[closes]
    keep = (stop - start) / fs >= min_duration_s
    rows, start, stop = rows[keep], start[keep], stop[keep]
    # A threshold cuts the slow start and end off a movement (5% of peak cuts 12% of a
    # minimum-jerk reach), so each movement is extended downhill to the neighbouring minima.
    return rows, start, stop, _downhill_left(s, rows, start), _downhill_right(s, rows, stop - 1) + 1


def _segment_args(fs_hz, threshold_fraction, min_duration_s):
    fraction = _fraction(threshold_fraction, "threshold_fraction", allow_one=False)
    min_duration = _number(min_duration_s, "min_duration_s", "a duration in s")
    if not min_duration >= 0:
        raise InputError(f"expected a duration of 0 s or more, found {min_duration_s!r}", field="min_duration_s")
    return _rate(fs_hz), fraction, min_duration


def movement_segments(speed, fs_hz, threshold_fraction=0.05, min_duration_s=0.2):
    """Discrete movements in one recording's speed profile.

    Samples faster than ``threshold_fraction`` x the record's peak speed are movement; runs
    separated by less than 0.1 s are merged, runs shorter than ``min_duration_s`` dropped, and each
    movement is then extended to the local speed minima on either side, so that its duration is
    not shortened by the threshold.

    Parameters
    ----------
    speed : array_like, shape (n_samples,)
        Speed profile of one recording (mm/s or any unit), non-negative.
    fs_hz : float
        Sampling rate in Hz.
    threshold_fraction : float
        Threshold as a fraction of the record's peak speed, between 0 and 1.
    min_duration_s : float
        Shortest above-threshold run, after merging, that counts as a movement, in s.

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` sample indices of each movement in time order, ``stop`` exclusive (slice
        convention). A movement includes the speed minima that bound it (its first and last
        samples), so its duration is ``(stop - 1 - start) / fs_hz``; two movements may share one.
        Empty when nothing moves.

    Raises
    ------
    InputError
        Not 1-D, non-finite or negative samples.
    """
    fs, fraction, min_duration = _segment_args(fs_hz, threshold_fraction, min_duration_s)
    s = _speed_profile(speed, fs)
    _, _, _, first, stop = _segment_rows(s[None], fs, fraction, min_duration)
    return [(int(a), int(b)) for a, b in zip(first, stop)]


def _speed_profile(speed, fs):
    s = _samples(speed, "speed", "mm/s")
    if s.ndim != 1:
        raise InputError(f"expected one recording's speed profile of shape (n_samples,), found shape {s.shape}", field="speed")
    _require_length(s.size, 2, fs, "speed", "for a speed profile")
    if s.size and s.min() < 0:
        raise InputError(
            f"expected a speed profile (>= 0), found values down to {s.min():g}; "
            "pass the speed (norm of the velocity), not a velocity component",
            field="speed",
        )
    return s


def _sparc_ragged(values, starts, lengths, fs, padlevel, fc_hz, amplitude_threshold):
    """SPARC of each range values[start:start + length], vectorised over ranges of equal FFT size."""
    out = np.empty(len(lengths))
    nfft = 2 ** (np.ceil(np.log2(lengths)).astype(np.int64) + padlevel)
    for size in np.unique(nfft):
        group = np.flatnonzero(nfft == size)
        n_bins = int(np.floor(fc_hz * size / fs + 1e-9)) + 1  # bins at or below fc_hz
        for sl in _blocks(len(group), int(size)):
            ids = group[sl]
            width = int(lengths[ids].max())
            counts = lengths[ids]
            idx, offsets = _ragged(starts[ids], counts)
            # Single precision halves the FFT time; SPARC comes out within 1e-6 of double.
            block = np.zeros((len(ids), width), dtype=np.float32)
            block[np.repeat(np.arange(len(ids)), counts), np.arange(len(idx)) - np.repeat(offsets, counts)] = values[idx]
            magnitude = np.abs(scipy.fft.rfft(block, int(size), axis=-1)[:, :n_bins]).astype(np.float64)
            out[ids] = _spectral_arc_length(magnitude / magnitude[:, :1], amplitude_threshold)
    return out


def _spectral_arc_length(spectrum, amplitude_threshold):
    """Minus the arc length of normalised magnitude spectra (rows, bins from 0 Hz), frequency
    axis scaled to 1 at the adaptive cut-off: the last bin at or above the amplitude threshold."""
    k = np.arange(spectrum.shape[-1])
    cut = np.where(spectrum >= amplitude_threshold, k, 0).max(axis=-1)
    step = np.sqrt((1.0 / np.maximum(cut, 1))[:, None] ** 2 + np.diff(spectrum, axis=-1) ** 2)
    return -np.where(k[:-1] < cut[:, None], step, 0.0).sum(axis=-1)


def _sparc_args(fs_hz, padlevel, fc_hz, amplitude_threshold):
    fs = _rate(fs_hz)
    if isinstance(padlevel, bool) or not isinstance(padlevel, (int, np.integer)) or not 0 <= padlevel <= 10:
        raise InputError(f"expected an integer zero-padding level from 0 to 10, found {padlevel!r}", field="padlevel")
    fc = _number(fc_hz, "fc_hz", "a cut-off in Hz")
    if not 0 < fc <= fs / 2:
        raise InputError(
            f"expected a SPARC cut-off between 0 Hz and half the sampling rate ({fs / 2:g} Hz), found {fc_hz!r}",
            field="fc_hz",
        )
    return fs, int(padlevel), fc, _fraction(amplitude_threshold, "amplitude_threshold", allow_one=False)


def sparc(speed, fs_hz, padlevel=4, fc_hz=10.0, amplitude_threshold=0.05):
    """Spectral arc length (SPARC) smoothness of one movement's speed profile.

    After Balasubramanian et al. (2012, IEEE TBME 59:2126; 2015, J NeuroEng Rehabil 12:112): the
    arc length of the Fourier magnitude spectrum of the speed, normalised to 1 at 0 Hz, from 0 Hz
    to an adaptive cut-off ``w_c = min(fc_hz, last frequency where the normalised magnitude is
    >= amplitude_threshold)``, with the frequency axis scaled by ``w_c``. The spectrum is sampled
    finely by zero-padding to ``2 ** (ceil(log2(n_samples)) + padlevel)`` points.

    A single minimum-jerk movement gives -1.41 whatever its duration; intermittency (sub-movements,
    tremor) makes SPARC more negative.

    Parameters
    ----------
    speed : array_like, shape (n_samples,)
        Speed profile of one segmented movement (any unit), non-negative, not all zero.
    fs_hz : float
        Sampling rate in Hz.
    padlevel : int
        Zero-padding level (0 to 10).
    fc_hz : float
        Upper bound of the adaptive cut-off in Hz, at most ``fs_hz / 2``.
    amplitude_threshold : float
        Normalised magnitude below which the spectrum is considered noise, between 0 and 1.

    Returns
    -------
    float
        SPARC (dimensionless, negative; more negative = less smooth).

    Raises
    ------
    InputError
        Not 1-D, non-finite, negative or all-zero speed, or bad parameters.
    """
    fs, pad, fc, threshold = _sparc_args(fs_hz, padlevel, fc_hz, amplitude_threshold)
    s = _speed_profile(speed, fs)
    if not s.any():
        raise InputError("expected a movement's speed profile, found a speed of zero throughout", field="speed")
    return float(_sparc_ragged(s, np.array([0]), np.array([s.size]), fs, pad, fc, threshold)[0])


def _median_by_row(values, rows, n_rows):
    """Median of the values belonging to each row (rows sorted); NaN for rows without values."""
    counts = np.bincount(rows, minlength=n_rows)
    column = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
    grid = np.full((n_rows, max(int(counts.max(initial=0)), 1)), np.nan)
    grid[rows, column] = values
    return _nan_median(grid)


def kinematic_features(position_mm, fs_hz, tremor_band_hz=(4.0, 6.0)):
    """Reaching and tremor features from 3-D marker trajectories.

    Steps, per recording:

    1. Speed: :func:`speed_mm_s` (15 Hz zero-phase low-pass).
    2. Movements: found as in :func:`movement_segments`, but on a second speed smoothed by a
       Gaussian that attenuates the tremor band's lower edge 20-fold, so that rest tremor is not
       taken for movement; a record whose smoothed speed stays below 20 mm/s has no movement.
       Each movement's ends are then placed on the 15 Hz speed: where it rises above (falls below)
       5% of the movement's own peak, walked outwards to the local speed minimum. Where tremor
       keeps the 15 Hz speed above that level up to the neighbouring movement, that end is where
       the smoothed speed crosses 5% of its own peak instead (this overestimates a 0.5 s reach
       by about 0.15 s, longer reaches by less).
    3. Per movement: peak speed, duration (first to last sample) and :func:`sparc` of the 15 Hz
       speed; the record's value is the median over its movements.
    4. Tremor: power of the position in the tremor band, summed over x, y, z. The spectrum is the
       periodogram of the whole record after removing the line through its end points (which
       removes the drift a reach leaves and joins the ends), so the band holds tremor, not
       leakage from the reaches.

    Parameters
    ----------
    position_mm : array_like, shape (..., n_samples, 3)
        Marker position (x, y, z) in mm, at least 4 / (band width) s long (2 s for 4-6 Hz).
    fs_hz : float
        Sampling rate in Hz, above 30 Hz (twice the 15 Hz low-pass) and above twice the tremor
        band's upper edge.
    tremor_band_hz : (float, float)
        Tremor band in Hz.

    Returns
    -------
    dict of ndarray
        With ``batch = position_mm.shape[:-2]``:

        ``peak_velocity_m_s`` : float, shape batch
            Median over movements of each movement's peak speed, m/s.
        ``movement_time_s`` : float, shape batch
            Median movement duration, s.
        ``sparc`` : float, shape batch
            Median SPARC over movements (dimensionless).
        ``tremor_band_power_mm2`` : float, shape batch
            Position power in the tremor band summed over the three axes, mm^2 (a sinusoid of
            amplitude a mm on k axes gives k a^2 / 2).
        ``n_movements`` : int, shape batch
            Number of movements found.

        Movement features are NaN for records without movements.

    Raises
    ------
    InputError
        Wrong shape, non-finite samples, too short a record, or a sampling rate too low.
    """
    p, fs = _positions(position_mm, fs_hz)
    low, high = _band(tremor_band_hz, fs, field="tremor_band_hz")
    sparc_args = _sparc_args(fs, 4, 10.0, 0.05)[1:]  # the published defaults
    n = p.shape[-2]
    _require_length(n, int(np.ceil(4 * fs / (high - low))), fs, "position_mm", "to resolve the tremor band")

    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    velocity, smooth_velocity = _reach_filters(n, fs, low)
    band = np.flatnonzero((freqs >= low) & (freqs <= high))
    band_weight = _one_sided_weights(n)[band]
    band_ramp = _ramp_spectrum(n)[band]

    n_rows = int(np.prod(p.shape[:-2]))
    names = ("peak_velocity_m_s", "movement_time_s", "sparc", "tremor_band_power_mm2")
    out = {name: np.empty(n_rows) for name in names}
    n_movements = np.empty(n_rows, dtype=np.int64)
    for sl, spectrum, slope in _position_blocks(p):
        tremor = spectrum[..., band] - slope[..., None] * band_ramp  # end-joined record's spectrum
        out["tremor_band_power_mm2"][sl] = ((tremor.real**2 + tremor.imag**2) * band_weight).sum(axis=(1, 2))
        speed, rows, start, stop = _reach_movements(spectrum, slope, velocity, smooth_velocity, n, fs)

        flat = speed.ravel()
        lengths = stop - start
        idx, offsets = _ragged(rows * n + start, lengths)
        peak = np.maximum.reduceat(flat[idx], offsets) if len(offsets) else np.empty(0)
        values = {
            "peak_velocity_m_s": peak / 1000.0,
            "movement_time_s": (lengths - 1) / fs,
            "sparc": _sparc_ragged(flat, rows * n + start, lengths, fs, *sparc_args),
        }
        block_rows = sl.stop - sl.start
        for name, v in values.items():
            out[name][sl] = _median_by_row(v, rows, block_rows)
        n_movements[sl] = np.bincount(rows, minlength=block_rows)

    batch = p.shape[:-2]
    result = {name: v.reshape(batch) for name, v in out.items()}
    result["n_movements"] = n_movements.reshape(batch)
    return result


def _reach_filters(n, fs, tremor_low_hz):
    """Velocity filters: the 15 Hz one for speed, and the tremor-rejecting one for segmentation."""
    lowpass = _cutoff(15.0, fs, "lowpass_hz")
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    velocity = _velocity_filter(n, fs, _zero_phase_gain(n, fs, _LOWPASS_ORDER, lowpass, "lowpass"))
    width_hz = tremor_low_hz / np.sqrt(2 * np.log(_SEGMENTATION_TREMOR_ATTENUATION))
    return velocity, _velocity_filter(n, fs, np.exp(-0.5 * (freqs / width_hz) ** 2))


def _reach_movements(spectrum, slope, velocity, smooth_velocity, n, fs):
    """15 Hz speed of a block of records, and its movements as (row, start, stop) arrays."""
    speed = _speed(spectrum, slope, velocity, n)
    smooth = _speed(spectrum, slope, smooth_velocity, n)
    rows, run0, run1, win0, win1 = _segment_rows(
        smooth, fs, _REACH_THRESHOLD_FRACTION, _REACH_MIN_DURATION_S, _MIN_MOVEMENT_SPEED_MM_S
    )
    start, stop = _movement_ends(speed, smooth, rows, run0, run1, win0, win1)
    return speed, rows, start, stop


def reach_segments(position_mm, fs_hz, tremor_band_hz=(4.0, 6.0)):
    """Movements of ONE recording exactly as :func:`kinematic_features` finds them.

    Parameters
    ----------
    position_mm : array_like, shape (n_samples, 3), marker position in mm.
    fs_hz : float, sampling rate in Hz.

    Returns
    -------
    list of (start, stop) sample indices, ``stop`` exclusive; robust to rest tremor, unlike
    :func:`movement_segments` on the raw speed.
    """
    p, fs = _positions(position_mm, fs_hz)
    if p.ndim != 2:
        raise InputError(f"expected one recording of shape (n_samples, 3), found shape {p.shape}.", field="position_mm")
    low, _ = _band(tremor_band_hz, fs, field="tremor_band_hz")
    n = p.shape[0]
    velocity, smooth_velocity = _reach_filters(n, fs, low)
    (_, spectrum, slope), = _position_blocks(p[None])
    _, rows, start, stop = _reach_movements(spectrum, slope, velocity, smooth_velocity, n, fs)
    return [(int(a), int(b)) for a, b in zip(start, stop)]


def _movement_ends(speed, smooth, rows, run0, run1, win0, win1):
    """Place each detected movement's ends (see :func:`kinematic_features`).

    ``speed`` is the 15 Hz speed, ``smooth`` the tremor-free one the movements were found on;
    ``run0, run1`` their threshold runs and ``win0, win1`` their extents on ``smooth``.
    """
    n = speed.shape[1]
    lengths = win1 - win0
    idx, offsets = _ragged(rows * n + win0, lengths)
    threshold = np.full(speed.shape, np.inf)
    smooth_start, smooth_stop = win0, win1
    if len(offsets):
        peak = np.maximum.reduceat(speed.ravel()[idx], offsets)
        threshold.ravel()[idx] = np.repeat(_REACH_THRESHOLD_FRACTION * peak, lengths)
        # Fallback ends: where the smooth speed crosses 5% of the movement's own smooth peak.
        values = smooth.ravel()[idx]
        above = values > np.repeat(_REACH_THRESHOLD_FRACTION * np.maximum.reduceat(values, offsets), lengths)
        position = np.arange(len(idx))
        smooth_start = win0 + np.minimum.reduceat(np.where(above, position, len(idx)), offsets) - offsets
        smooth_stop = win0 + np.maximum.reduceat(np.where(above, position, -1), offsets) - offsets + 1
    above = speed > threshold
    opens = np.ones(speed.shape, dtype=bool)  # first sample of each above-threshold stretch
    opens[:, 1:] = ~above[:, :-1]
    closes = np.ones(speed.shape, dtype=bool)  # last sample of each
    closes[:, :-1] = ~above[:, 1:]

    first = _first_true(above, rows, run0)
    first = np.where(first < run1, _last_true(opens, rows, np.minimum(first, n - 1)), run0)
    last = _last_true(above, rows, run1 - 1)
    last = np.where(last >= run0, _first_true(closes, rows, np.maximum(last, 0)), run1 - 1)
    # A stretch that runs into the neighbouring movement or the record's end means the 15 Hz
    # speed never settled (tremor): its ends there are unreliable, the smooth speed's are used.
    start = np.where(first > win0, np.maximum(_downhill_left(speed, rows, np.maximum(first, win0)), win0), smooth_start)
    stop = np.where(
        last < win1 - 1, np.minimum(_downhill_right(speed, rows, np.minimum(last, win1 - 1)), win1 - 1) + 1, smooth_stop
    )
    return start, stop
