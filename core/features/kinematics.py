"""Kinematic features of reaching: peak speed, movement time, smoothness (SPARC), tremor power."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fft

from core.errors import InputError
from core.features.dsp import as_samples, check_band, check_fraction, check_number, check_rate, nan_median, one_sided_weights, ramp_spectrum, require_length, row_blocks, zero_phase_gain

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


def _cutoff(cutoff_hz, fs, field):
    cutoff = check_number(cutoff_hz, field, "a cut-off in Hz")
    if not cutoff > 0:
        raise InputError(f"expected a positive cut-off in Hz, found {cutoff_hz!r}", field=field)
    if cutoff >= fs / 2:
        raise InputError(
            f"sampling rate {fs:g} Hz is too low for a {cutoff:g} Hz cut-off: "
            f"expected more than {2 * cutoff:g} Hz (twice the cut-off)",
            field="fs_hz",
        )
    return cutoff


def _ragged(starts, lengths):
    """Flat indices of the ranges [start, start + length) laid end to end, and each range's offset."""
    offsets = np.zeros(len(lengths), dtype=np.intp)
    np.cumsum(lengths[:-1], out=offsets[1:])
    return np.arange(lengths.sum()) - np.repeat(offsets - starts, lengths), offsets


def _positions(position_mm, fs_hz, field="position_mm"):
    fs = check_rate(fs_hz)
    p = as_samples(position_mm, field, "mm")
    if p.ndim < 2 or p.shape[-1] != 3:
        raise InputError(f"expected marker positions of shape (..., n_samples, 3) (x, y, z in mm), found shape {p.shape}", field=field)
    return p, fs


def _position_blocks(p):
    """Yield (block slice, position spectra (b, 3, n_bins), slope of the joining line per sample (b, 3))."""
    n = p.shape[-2]
    rows = p.reshape(-1, n, 3)
    for sl in row_blocks(len(rows), 3 * n):
        block = np.swapaxes(rows[sl], 1, 2).astype(np.float64, order="C")
        yield sl, np.fft.rfft(block, axis=-1), (block[..., -1] - block[..., 0]) / max(n - 1, 1)


def _velocity_filter(n, fs, smoothing):
    """Differentiator times a zero-phase low-pass (amplitude response ``smoothing`` at the rfft
    bins, 1 at 0 Hz), and the velocity that the joining line ``0, 1, ..., n - 1`` contributes
    beyond its own slope: filtering the raw spectrum and adding slope x this is the same as
    filtering the end-joined record and adding its slope back, at no cost per record."""
    gain = smoothing * (2j * np.pi * np.fft.rfftfreq(n, 1.0 / fs))
    return gain, fs - np.fft.irfft(ramp_spectrum(n) * gain, n)


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
    require_length(n, 2, fs, "position_mm", "to compute a speed")
    velocity = _velocity_filter(n, fs, zero_phase_gain(n, fs, _LOWPASS_ORDER, cutoff, "lowpass"))
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
    fraction = check_fraction(threshold_fraction, "threshold_fraction", allow_one=False)
    min_duration = check_number(min_duration_s, "min_duration_s", "a duration in s")
    if not min_duration >= 0:
        raise InputError(f"expected a duration of 0 s or more, found {min_duration_s!r}", field="min_duration_s")
    return check_rate(fs_hz), fraction, min_duration


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
    s = as_samples(speed, "speed", "mm/s")
    if s.ndim != 1:
        raise InputError(f"expected one recording's speed profile of shape (n_samples,), found shape {s.shape}", field="speed")
    require_length(s.size, 2, fs, "speed", "for a speed profile")
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
        for sl in row_blocks(len(group), int(size)):
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
    fs = check_rate(fs_hz)
    if isinstance(padlevel, bool) or not isinstance(padlevel, (int, np.integer)) or not 0 <= padlevel <= 10:
        raise InputError(f"expected an integer zero-padding level from 0 to 10, found {padlevel!r}", field="padlevel")
    fc = check_number(fc_hz, "fc_hz", "a cut-off in Hz")
    if not 0 < fc <= fs / 2:
        raise InputError(
            f"expected a SPARC cut-off between 0 Hz and half the sampling rate ({fs / 2:g} Hz), found {fc_hz!r}",
            field="fc_hz",
        )
    return fs, int(padlevel), fc, check_fraction(amplitude_threshold, "amplitude_threshold", allow_one=False)


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
    return nan_median(grid)


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
    low, high = check_band(tremor_band_hz, fs, field="tremor_band_hz")
    sparc_args = _sparc_args(fs, 4, 10.0, 0.05)[1:]  # the published defaults
    n = p.shape[-2]
    require_length(n, int(np.ceil(4 * fs / (high - low))), fs, "position_mm", "to resolve the tremor band")

    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    velocity, smooth_velocity = _reach_filters(n, fs, low)
    band = np.flatnonzero((freqs >= low) & (freqs <= high))
    band_weight = one_sided_weights(n)[band]
    band_ramp = ramp_spectrum(n)[band]

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
    velocity = _velocity_filter(n, fs, zero_phase_gain(n, fs, _LOWPASS_ORDER, lowpass, "lowpass"))
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
    low, _ = check_band(tremor_band_hz, fs, field="tremor_band_hz")
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


def kinematic_feature_table(position_mm, fs_hz, index) -> pd.DataFrame:
    """Kinematic features of a batch of trajectories (n, n_samples, 3) in mm."""
    kin = kinematic_features(position_mm, fs_hz)
    return pd.DataFrame(
        {
            "kin.peak_velocity_m_s": kin["peak_velocity_m_s"],
            "kin.movement_time_s": kin["movement_time_s"],
            "kin.sparc": kin["sparc"],
            "kin.tremor_band_power_mm2": kin["tremor_band_power_mm2"],
        },
        index=index,
    )
